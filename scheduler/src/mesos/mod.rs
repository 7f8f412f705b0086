//! The Mesos v1 scheduler client: typed events in, typed calls out, so the planner never
//! touches HTTP.
//!
//! [`start`] spawns a connection loop that SUBSCRIBEs on its own connection, keeps the
//! `Mesos-Stream-Id`, decodes the RecordIO event stream (JSON or protobuf, see
//! [`SchedulerConfig::content_type`]) and delivers [`SchedulerEvent`]s. The returned
//! [`SchedulerDriver`] sends calls (ACCEPT with LAUNCH or LAUNCH_GROUP, DECLINE, REVIVE,
//! SUPPRESS, KILL, SHUTDOWN, ACKNOWLEDGE, RECONCILE, MESSAGE, TEARDOWN) on a separate
//! keep-alive connection to the master that holds the subscription.
//!
//! Resilience: a heartbeat watchdog (reconnect after `heartbeat_misses` silent
//! intervals), reconnects with capped exponential backoff that re-subscribe with the same
//! framework id, 307 redirects (absolute or protocol-relative `Location`), 503 and
//! connection failures retried on the next master of the list. ERROR events and
//! SUBSCRIBE rejections (400/401/403) stop the client; call failures are typed
//! ([`CallError`]).
//!
//! Masters: a fixed list (tried in order, rotated on failure), or `zk://HOST:PORT,.../PATH`:
//! the `detector` watches the masters' ZooKeeper group (`zk` parses it) and the loop
//! subscribes to the leader it names, moving to the next leader (same framework id) as
//! soon as ZooKeeper names one.
//!
//! Authentication: with [`SchedulerConfig::credential`], SUBSCRIBE and every call carry
//! `Authorization: Basic` of the framework's principal and secret. A 401 to SUBSCRIBE
//! stops the client with an ERROR saying that the master refused the framework's
//! credentials (principal X) — no retry loop; a 401 to a call drops the subscription, so
//! that the re-SUBSCRIBE either succeeds or ends the client the same way.
//!
//! TLS: `https://` masters (or scheme-less ones with [`SchedulerConfig::tls`], implied
//! by [`SchedulerConfig::ca_cert`]; ZooKeeper's leaders likewise) are spoken to over
//! TLS, their certificates verified against the CA file or the webpki roots ([`tls`]);
//! a certificate that does not verify fails the attempt (logged, retried with backoff).
//!
//! Modules: [`calls`] (pure call builders), `events` (event mapping), `endpoint`
//! (addresses, redirects, master list), `backoff`, `heartbeat` (watchdog),
//! `transport` (HTTP), `connection` (the loop), `driver` (the handle), `config`,
//! `error`, `state`.

mod backoff;
pub mod calls;
mod config;
mod connection;
mod detector;
mod driver;
mod endpoint;
mod error;
mod events;
mod heartbeat;
mod state;
pub mod tls;
mod transport;
pub mod zk;

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

pub use backoff::Backoff;
pub use calls::AcknowledgeError;
pub use config::{ConfigError, Masters, SchedulerConfig};
pub use driver::SchedulerDriver;
pub use endpoint::{DEFAULT_MASTER_PORT, Endpoint, EndpointError, MasterList, SCHEDULER_PATH};
pub use error::CallError;
pub use events::{DisconnectReason, SchedulerEvent};
pub use heartbeat::{
    DEFAULT_HEARTBEAT_INTERVAL, MAX_HEARTBEAT_INTERVAL, MIN_HEARTBEAT_INTERVAL, heartbeat_interval,
};
pub use retz_proto::ContentType;
pub use transport::STREAM_ID_HEADER;

use connection::{Connection, LoopConfig};
use state::{Shared, State};
use transport::{Auth, CallClient, MasterTls};

/// Validates `cfg` and starts the client on the current tokio runtime (it must be
/// called from within one). Returns the call handle and the event receiver; dropping the
/// receiver, [`SchedulerDriver::stop`] or [`SchedulerDriver::teardown`] stops the client.
pub fn start(
    cfg: SchedulerConfig,
) -> Result<(SchedulerDriver, mpsc::Receiver<SchedulerEvent>), ConfigError> {
    let masters = cfg.validate()?;
    let https = cfg.masters_https();
    if cfg.framework_info.failover_timeout.unwrap_or(0.0) == 0.0 {
        warn!(
            "FrameworkInfo.failover_timeout is 0: the master kills every task as soon as the subscription drops"
        );
    }
    let roles = calls::framework_roles(&cfg.framework_info);
    let state = State {
        framework_id: cfg.framework_info.id.clone(),
        session: None,
        suppressed: cfg
            .suppressed_roles
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
    };
    let mut framework_info = cfg.framework_info;
    let auth = match &cfg.credential {
        Some(c) => {
            framework_info
                .principal
                .get_or_insert_with(|| c.principal.clone());
            Some(Auth::new(c).ok_or_else(|| {
                ConfigError::FrameworkInfo(format!(
                    "the credential of principal {:?} cannot be sent in an HTTP header",
                    c.principal
                ))
            })?)
        }
        None => None,
    };
    let tls = MasterTls {
        config: tls::client_config(cfg.ca_cert.as_deref())?,
        custom_ca: cfg.ca_cert.is_some(),
    };
    let call_client = CallClient::new(
        cfg.content_type,
        cfg.connect_timeout,
        cfg.call_timeout,
        auth.clone(),
        &tls,
    );
    let shared = Arc::new(Shared::new(state, call_client, roles));
    let (tx, rx) = mpsc::channel(cfg.event_buffer);
    let loop_cfg = LoopConfig {
        framework_info,
        auth,
        content_type: cfg.content_type,
        heartbeat_misses: cfg.heartbeat_misses,
        backoff_initial: cfg.backoff_initial,
        backoff_max: cfg.backoff_max,
        call_timeout: cfg.call_timeout,
        connect_timeout: cfg.connect_timeout,
        max_redirects: cfg.max_redirects,
        max_event_size: cfg.max_event_size,
        tls,
    };
    let (list, detector) = match masters {
        Masters::List(list) => (Some(list), None),
        Masters::Zk(url) => (
            None,
            Some(detector::spawn(url, https, shared.cancel.clone())),
        ),
    };
    tokio::spawn(Connection::new(Arc::clone(&shared), loop_cfg, list, detector, tx).run());
    Ok((SchedulerDriver::new(shared), rx))
}
