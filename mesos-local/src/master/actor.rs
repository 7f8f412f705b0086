//! The actor that owns the master's [`Core`]: one task receives [`Command`]s (from HTTP
//! handlers, agents and the public handle), runs allocation rounds every allocation
//! interval and, after any command or timer that freed resources, at once (see
//! `allocation`), and fires timers. Nothing else touches the state.
//!
//! Invariants: commands are applied one at a time in arrival order; a scheduler call is
//! authorized (see `auth`) before it is applied, and a refused one changes nothing; a master restart
//! swaps the core inside the actor, so every sender (HTTP handlers, agent reporters) stays
//! valid across restarts; dropping the old core closes every framework stream.

use std::sync::Arc;
use std::time::Duration;

use retz_proto::ContentType;
use retz_proto::mesos::{AgentId, FrameworkId};
use retz_proto::scheduler::Call;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::agent_link::{AgentLink, AgentReport};
use super::core::{CallError, CallOutcome, Core, CoreConfig, Subscription};
use super::state_json::Flags;
use super::validation::CallType;

/// A request to the actor.
pub enum Command {
    /// A validated SUBSCRIBE by `principal` (`None`: the master has no credentials); the
    /// stream is encoded as `content_type`. `Err` is a 403's message.
    Subscribe {
        call: Call,
        content_type: ContentType,
        principal: Option<String>,
        reply: oneshot::Sender<Result<Subscription, String>>,
    },
    /// A validated non-SUBSCRIBE call by `principal`.
    Call {
        ty: CallType,
        call: Call,
        stream_id: Option<String>,
        principal: Option<String>,
        reply: oneshot::Sender<Result<CallOutcome, CallError>>,
    },
    /// A SUBSCRIBE body was dropped.
    StreamClosed {
        framework_id: String,
        stream_id: String,
    },
    /// An agent's report.
    Report(AgentReport),
    /// Register an agent.
    AddAgent {
        link: Arc<dyn AgentLink>,
        reply: oneshot::Sender<Result<AgentId, String>>,
    },
    /// Remove a dead agent.
    RemoveAgent {
        agent_id: String,
        reply: oneshot::Sender<bool>,
    },
    /// Fault injection: close a framework's stream.
    DropStream {
        framework_id: FrameworkId,
        reply: oneshot::Sender<bool>,
    },
    /// Fault injection: lose all state, re-register the agents under a new master id.
    Restart {
        config: CoreConfig,
        reply: oneshot::Sender<()>,
    },
    /// Read-only views.
    State {
        reply: oneshot::Sender<serde_json::Value>,
    },
    /// `/state-summary`.
    StateSummary {
        reply: oneshot::Sender<serde_json::Value>,
    },
    /// `/metrics/snapshot`.
    Metrics {
        reply: oneshot::Sender<serde_json::Value>,
    },
    /// Check the state's invariants (tests).
    CheckInvariants {
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Run an allocation round now.
    Allocate,
    /// Stop the actor.
    Stop,
}

/// Runs the actor until `Stop` or until every sender is gone.
pub async fn run(
    mut core: Core,
    mut rx: mpsc::UnboundedReceiver<Command>,
    allocation_interval: Duration,
    flags: Flags,
) {
    let every = allocation_interval.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let deadline = core.next_deadline().map(Instant::from_std);
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                let now = Instant::now().into_std();
                match cmd {
                    Command::Stop => break,
                    Command::Subscribe { call, content_type, principal, reply } => {
                        match core.authorize_subscribe(&call, principal.as_deref()) {
                            Err(m) => {
                                let _ = reply.send(Err(m));
                            }
                            Ok(()) => {
                                let sub = core.subscribe(call, content_type, now);
                                if let Err(Ok(sub)) = reply.send(Ok(sub))
                                    && let Some(fid) = sub.framework_id
                                {
                                    // The HTTP request went away before its reply: the
                                    // stream is already gone.
                                    core.stream_closed(&fid, &sub.stream_id, now);
                                }
                            }
                        }
                    }
                    Command::Call { ty, call, stream_id, principal, reply } => {
                        let r = core
                            .authorize_call(&call, principal.as_deref())
                            .and_then(|()| core.handle_call(ty, call, stream_id.as_deref(), now));
                        let _ = reply.send(r);
                    }
                    Command::StreamClosed { framework_id, stream_id } => {
                        core.stream_closed(&framework_id, &stream_id, now);
                    }
                    Command::Report(r) => core.agent_report(r),
                    Command::AddAgent { link, reply } => {
                        let r = core.add_agent(link, now);
                        if r.is_ok() {
                            core.allocate(now);
                        }
                        let _ = reply.send(r);
                    }
                    Command::RemoveAgent { agent_id, reply } => {
                        let _ = reply.send(core.remove_agent(&agent_id));
                    }
                    Command::DropStream { framework_id, reply } => {
                        let _ = reply.send(core.drop_stream(&framework_id.value, now));
                    }
                    Command::Restart { config, reply } => {
                        let links: Vec<Arc<dyn AgentLink>> =
                            core.agents.values().map(|a| a.link.clone()).collect();
                        core = Core::new(config, now);
                        for link in links {
                            match core.add_agent(link.clone(), now) {
                                Ok(_) => link.reregistered(),
                                Err(e) => tracing::warn!(
                                    "agent could not re-register after the master restart: {e}"
                                ),
                            }
                        }
                        let _ = reply.send(());
                    }
                    Command::State { reply } => {
                        let _ = reply.send(core.state_json(&flags));
                    }
                    Command::StateSummary { reply } => {
                        let _ = reply.send(core.state_summary_json());
                    }
                    Command::Metrics { reply } => {
                        let _ = reply.send(core.metrics_json(now));
                    }
                    Command::CheckInvariants { reply } => {
                        let _ = reply.send(core.check_invariants());
                    }
                    Command::Allocate => core.allocate(now),
                }
            }
            _ = tick.tick() => {
                let now = Instant::now().into_std();
                core.on_timers(now);
                core.allocate(now);
            }
            () = timer => {
                core.on_timers(Instant::now().into_std());
            }
        }
        // Freed resources are offered at once, not at the next interval.
        core.allocate_if_wanted(Instant::now().into_std());
        #[cfg(debug_assertions)]
        if let Err(e) = core.check_invariants() {
            tracing::error!("master state invariant broken: {e}");
        }
    }
}
