//! The in-process Mesos v1 master: the scheduler API (`POST /api/v1/scheduler`), offers,
//! resource bookkeeping, status update forwarding and the state endpoints, for agents
//! reached through [`AgentLink`].
//!
//! Layout: [`resources`] (resource arithmetic), [`validation`] (stateless checks),
//! `core` (the state machine, with `accept`, `allocation`, `updates`, `state_json` and
//! `auth` adding to it), `stream` (event streams), `actor` (the task owning the state),
//! `http` (the axum surface) and `sim` ([`SimAgent`], an agent running no process).
//! [`Master`] is the handle.
//!
//! With [`MasterConfig::credentials`], every scheduler call and the read-only endpoints
//! need HTTP Basic of a known principal (401 otherwise), and a framework belongs to the
//! principal that subscribed it (403 for anyone else), as a Mesos master with
//! `--authenticate_http_frameworks --authenticate_http_readonly --credentials`.
//!
//! Invariant: only the actor task touches master state; every public method talks to it
//! through its command channel, so a handle is cheap to clone and safe to share.

mod accept;
mod actor;
mod agent_link;
mod allocation;
mod auth;
mod core;
#[cfg(test)]
mod core_tests;
mod http;
pub mod resources;
mod sim;
mod state_json;
mod stream;
mod updates;
pub mod validation;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use retz_proto::credentials::Credentials;
use retz_proto::mesos::{Address, AgentId, FrameworkId, MasterInfo};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use self::agent_link::{AgentLink, AgentReport, AgentSnapshot, RunningExecutor, RunningTask};
pub use self::allocation::{DEFAULT_REFUSE_SECONDS, MAX_REFUSE_SECONDS};
pub use self::http::{Leadership, STREAM_ID_HEADER};
pub use self::sim::{SimAgent, SimBehaviour};
pub use self::state_json::MESOS_VERSION;

use self::actor::Command;
use self::core::{Core, CoreConfig};
use self::state_json::Flags;

/// Settings of a [`Master`].
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Listen address; port 0 picks a free port. Default `127.0.0.1:5050`.
    pub bind: SocketAddr,
    /// Hostname in `MasterInfo` and `/state`. Default `localhost`.
    pub hostname: String,
    /// Interval between HEARTBEAT events (Mesos hard-codes 15 s). Default 15 s.
    pub heartbeat_interval: Duration,
    /// Interval between allocation rounds (Mesos' `--allocation_interval`). Default 1 s.
    pub allocation_interval: Duration,
    /// Rescind offers outstanding for this long (Mesos' `--offer_timeout`). Default none.
    pub offer_timeout: Option<Duration>,
    /// Largest accepted call body, bytes (413 above). Default 16 MiB.
    pub max_body_size: usize,
    /// Extra entries shown under `flags` in `/state` (e.g. `work_dir`).
    pub flags: BTreeMap<String, String>,
    /// The principals frameworks and operators authenticate as (HTTP Basic) on the
    /// scheduler API and the read-only endpoints. `None` (the default) leaves the master
    /// open: anyone who reaches it can launch tasks (tests and demos only).
    pub credentials: Option<Credentials>,
    /// Serve the HTTP endpoints over TLS with this config (see [`crate::tls::load`]).
    /// `None` (the default): plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 5050)),
            hostname: "localhost".into(),
            heartbeat_interval: Duration::from_secs(15),
            allocation_interval: Duration::from_secs(1),
            offer_timeout: None,
            max_body_size: retz_proto::recordio::DEFAULT_MAX_RECORD_SIZE,
            flags: BTreeMap::new(),
            credentials: None,
            tls: None,
        }
    }
}

/// Why the master cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// The listen address is unusable.
    #[error("cannot listen on {addr}: {error} (pick another address with --bind, or port 0)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The master has been shut down.
    #[error("the master has been shut down")]
    Stopped,
    /// An agent could not register.
    #[error("agent cannot register: {0}")]
    Agent(String),
}

/// Sends agent reports to a master; stays valid across master restarts.
#[derive(Clone, Debug)]
pub struct AgentReporter {
    commands: mpsc::UnboundedSender<Command>,
}

impl AgentReporter {
    /// Delivers a report; `false` once the master has shut down.
    pub fn report(&self, report: AgentReport) -> bool {
        self.commands.send(Command::Report(report)).is_ok()
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("master::Command")
    }
}

struct Inner {
    addr: SocketAddr,
    config: MasterConfig,
    commands: mpsc::UnboundedSender<Command>,
    leadership: Arc<RwLock<Leadership>>,
    master_id: Mutex<String>,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running master (cheap to clone: a handle).
#[derive(Clone)]
pub struct Master {
    inner: Arc<Inner>,
}

fn master_info(id: &str, addr: SocketAddr, hostname: &str) -> MasterInfo {
    let ip = match addr.ip() {
        // Mesos stores the IPv4 address in network byte order inside a uint32.
        IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
        IpAddr::V6(_) => 0,
    };
    MasterInfo {
        id: id.to_string(),
        ip,
        port: u32::from(addr.port()),
        pid: Some(format!("master@{}:{}", addr.ip(), addr.port())),
        hostname: Some(hostname.to_string()),
        version: Some(MESOS_VERSION.to_string()),
        address: Some(Address {
            hostname: Some(hostname.to_string()),
            ip: Some(addr.ip().to_string()),
            port: i32::from(addr.port()),
        }),
        ..Default::default()
    }
}

fn core_config(config: &MasterConfig, addr: SocketAddr) -> CoreConfig {
    let id = uuid::Uuid::new_v4().to_string();
    CoreConfig {
        master_info: master_info(&id, addr, &config.hostname),
        master_id: id,
        heartbeat_interval: config.heartbeat_interval,
        offer_timeout: config.offer_timeout,
    }
}

impl Master {
    /// Binds the listener and starts the master.
    pub async fn start(config: MasterConfig) -> Result<Master, MasterError> {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|error| MasterError::Bind {
                addr: config.bind,
                error,
            })?;
        let addr = listener.local_addr().map_err(|error| MasterError::Bind {
            addr: config.bind,
            error,
        })?;
        let core_cfg = core_config(&config, addr);
        let master_id = core_cfg.master_id.clone();
        let now = tokio::time::Instant::now().into_std();
        let core = Core::new(core_cfg, now);
        let (commands, rx) = mpsc::unbounded_channel();
        let mut flags = Flags::default();
        flags.0.insert("hostname".into(), config.hostname.clone());
        flags.0.insert("ip".into(), addr.ip().to_string());
        flags.0.insert("port".into(), addr.port().to_string());
        flags.0.insert(
            "allocation_interval".into(),
            format!("{}secs", config.allocation_interval.as_secs_f64()),
        );
        flags.0.insert(
            "offer_timeout".into(),
            config
                .offer_timeout
                .map_or_else(String::new, |t| format!("{}secs", t.as_secs_f64())),
        );
        flags.0.insert("root_submissions".into(), "true".into());
        let authenticate = config.credentials.is_some().to_string();
        flags
            .0
            .insert("authenticate_http_frameworks".into(), authenticate.clone());
        flags
            .0
            .insert("authenticate_http_readonly".into(), authenticate);
        flags.0.extend(config.flags.clone());
        let actor = tokio::spawn(actor::run(core, rx, config.allocation_interval, flags));
        let leadership = Arc::new(RwLock::new(Leadership::Leader));
        let app = http::router(http::HttpState {
            commands: commands.clone(),
            leadership: leadership.clone(),
            heartbeat_interval: config.heartbeat_interval,
            max_body_size: config.max_body_size,
            self_address: format!("{}:{}", config.hostname, addr.port()),
            credentials: config.credentials.clone().map(Arc::new),
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let tls = config.tls.clone();
        let https = tls.is_some();
        let server = tokio::spawn(async move {
            let stopped = async move {
                let _ = shutdown_rx.await;
            };
            if let Some(tls) = tls {
                crate::tls::serve(listener, app, tls, stopped).await;
                return;
            }
            let serve = axum::serve(listener, app).with_graceful_shutdown(stopped);
            if let Err(e) = serve.await {
                tracing::error!("master HTTP server failed: {e}");
            }
        });
        tracing::info!(%addr, master_id, https, "master started");
        Ok(Master {
            inner: Arc::new(Inner {
                addr,
                config,
                commands,
                leadership,
                master_id: Mutex::new(master_id),
                shutdown: Mutex::new(Some(shutdown_tx)),
                tasks: Mutex::new(vec![actor, server]),
            }),
        })
    }

    /// The address the master listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The current master id (it changes on [`restart`](Self::restart)).
    pub fn id(&self) -> String {
        self.inner
            .master_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The next agent id for this master: `<master-id>-S<n>`.
    pub fn agent_id(&self, n: usize) -> AgentId {
        AgentId {
            value: format!("{}-S{n}", self.id()),
        }
    }

    /// A sender of agent reports.
    pub fn reporter(&self) -> AgentReporter {
        AgentReporter {
            commands: self.inner.commands.clone(),
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, MasterError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(make(tx))
            .map_err(|_| MasterError::Stopped)?;
        rx.await.map_err(|_| MasterError::Stopped)
    }

    /// Registers an agent (its resources are offered from the next allocation).
    pub async fn add_agent(&self, link: Arc<dyn AgentLink>) -> Result<AgentId, MasterError> {
        self.ask(|reply| Command::AddAgent { link, reply })
            .await?
            .map_err(MasterError::Agent)
    }

    /// Removes an agent that died: offers rescinded, tasks lost, FAILURE to frameworks.
    pub async fn remove_agent(&self, agent_id: &AgentId) -> Result<bool, MasterError> {
        let agent_id = agent_id.value.clone();
        self.ask(|reply| Command::RemoveAgent { agent_id, reply })
            .await
    }

    /// Fault injection: closes a framework's SUBSCRIBE stream as if the connection broke
    /// (the framework becomes inactive and its failover timeout starts). `false` if it
    /// was not connected.
    pub async fn drop_framework_stream(
        &self,
        framework_id: &FrameworkId,
    ) -> Result<bool, MasterError> {
        let framework_id = framework_id.clone();
        self.ask(|reply| Command::DropStream {
            framework_id,
            reply,
        })
        .await
    }

    /// Fault injection: the master fails over. All state is lost (streams close,
    /// frameworks, offers and tasks are forgotten) and a new master id is used; agents
    /// re-register at once with what runs on them, and frameworks re-subscribe with
    /// their ids.
    pub async fn restart(&self) -> Result<(), MasterError> {
        let config = core_config(&self.inner.config, self.inner.addr);
        let id = config.master_id.clone();
        self.ask(|reply| Command::Restart { config, reply }).await?;
        *self
            .inner
            .master_id
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = id;
        Ok(())
    }

    /// Whether this master answers as the leader now.
    pub fn leadership(&self) -> Leadership {
        self.inner
            .leadership
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fault injection: answer scheduler calls as a non-leader (307 to `leader`, or 503
    /// without one), or as the leader again.
    pub fn set_leadership(&self, leadership: Leadership) {
        *self
            .inner
            .leadership
            .write()
            .unwrap_or_else(|e| e.into_inner()) = leadership;
    }

    /// Runs an allocation round now instead of waiting for the next interval.
    pub fn allocate_now(&self) {
        let _ = self.inner.commands.send(Command::Allocate);
    }

    /// The `/state` document.
    pub async fn state(&self) -> Result<serde_json::Value, MasterError> {
        self.ask(|reply| Command::State { reply }).await
    }

    /// The `/metrics/snapshot` document.
    pub async fn metrics(&self) -> Result<serde_json::Value, MasterError> {
        self.ask(|reply| Command::Metrics { reply }).await
    }

    /// Checks the bookkeeping invariants (used + offered within total per agent, ...).
    pub async fn check_invariants(&self) -> Result<Result<(), String>, MasterError> {
        self.ask(|reply| Command::CheckInvariants { reply }).await
    }

    /// Stops the master: streams end, the listener closes.
    pub async fn shutdown(&self) {
        let _ = self.inner.commands.send(Command::Stop);
        if let Some(tx) = self
            .inner
            .shutdown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = tx.send(());
        }
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
