//! The state shared by the connection loop and every [`super::SchedulerDriver`] handle.
//!
//! Invariants: `session` is `Some` exactly while a subscription is up (set before the
//! Subscribed event is delivered, cleared before Disconnected is); `framework_id` is the
//! latest id the master gave (or the configured one) and is never cleared; once `cancel`
//! is cancelled the client never subscribes again.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use retz_proto::mesos::FrameworkId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::endpoint::Endpoint;
use super::transport::CallClient;

/// The current subscription: where calls go and with which stream id.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub endpoint: Endpoint,
    pub stream_id: String,
    pub framework_id: FrameworkId,
}

/// What the loop and the handles both read and write.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub framework_id: Option<FrameworkId>,
    pub session: Option<Session>,
    /// Roles suppressed by SUPPRESS calls (and the config), re-sent on SUBSCRIBE.
    pub suppressed: BTreeSet<String>,
}

/// The shared part of the client.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    pub cancel: CancellationToken,
    pub calls: CallClient,
    /// The framework's roles (what an empty SUPPRESS/REVIVE role list means).
    pub roles: Vec<String>,
    /// Notified when a call was answered 401: the stream being read is dropped and the
    /// client subscribes again (only a waiting reader is woken; no permit is stored).
    pub unauthorized: Notify,
}

impl Shared {
    pub(crate) fn new(state: State, calls: CallClient, roles: Vec<String>) -> Self {
        Shared {
            state: Mutex::new(state),
            cancel: CancellationToken::new(),
            calls,
            roles,
            unauthorized: Notify::new(),
        }
    }

    /// Locks the state; a poisoned lock is recovered (the state stays consistent:
    /// every writer sets whole fields).
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
