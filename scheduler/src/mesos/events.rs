//! What the client tells its user: typed [`SchedulerEvent`]s, and the pure mapping from
//! the master's [`Event`]s to them.
//!
//! Invariants: HEARTBEAT never reaches the user; SUBSCRIBED and ERROR are handled by the
//! connection loop before they are delivered (it must update its session first); an
//! event whose payload is missing or whose type is unknown is dropped with a reason, never
//! delivered half-filled.

use std::time::Duration;

use retz_proto::mesos::{AgentId, ExecutorId, FrameworkId, MasterInfo, Offer, OfferId, TaskStatus};
use retz_proto::scheduler::{Event, event};

/// An event for the scheduler's planner.
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerEvent {
    /// The client (re-)subscribed. Offers made before are gone; the framework id stays
    /// the same across re-subscriptions.
    Subscribed {
        /// The framework's id (keep it: it is needed to fail over after a restart).
        framework_id: FrameworkId,
        /// The master's heartbeat interval, as used by the watchdog.
        heartbeat_interval: Duration,
        /// The master that accepted the subscription, if it said.
        master_info: Option<MasterInfo>,
    },
    /// New offers.
    Offers(Vec<Offer>),
    /// An offer is no longer valid.
    Rescind(OfferId),
    /// A task status update; pass it to `SchedulerDriver::acknowledge` once handled.
    Update(TaskStatus),
    /// Opaque data from an executor.
    Message {
        /// The agent the executor runs on.
        agent_id: AgentId,
        /// The sender.
        executor_id: ExecutorId,
        /// The data.
        data: Vec<u8>,
    },
    /// An agent or an executor is gone.
    Failure {
        /// The agent.
        agent_id: Option<AgentId>,
        /// The executor, when an executor terminated.
        executor_id: Option<ExecutorId>,
        /// The executor's wait status.
        status: Option<i32>,
    },
    /// The master sent ERROR (for example "Framework has been removed" or "Framework
    /// failed over") or rejected the subscription for good. The client has stopped: no
    /// more events follow and calls fail with `CallError::Stopped`.
    Error(String),
    /// The subscription is down (or could not be made); the client retries after
    /// `retry_in`. Calls fail with `CallError::NotSubscribed` until the next
    /// [`SchedulerEvent::Subscribed`].
    Disconnected {
        /// The master that was tried.
        master: String,
        /// What happened.
        reason: DisconnectReason,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
}

/// Why a subscription attempt failed or a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    /// The TCP connection could not be made (refused, unreachable, timed out).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The TLS handshake with an https master failed: most often its certificate does
    /// not verify against `mesos.ca_cert` (or the system roots) or does not name the
    /// address used. Retried like other connection errors, never ignored.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The master answered SUBSCRIBE with an unexpected status (503 while it recovers
    /// or has no leader, 5xx, ...).
    #[error("SUBSCRIBE answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A 307 without a usable `Location`, or too many redirects in a row.
    #[error("bad redirect: {0}")]
    Redirect(String),
    /// A 200 to SUBSCRIBE without a `Mesos-Stream-Id` header.
    #[error("SUBSCRIBE answered 200 without a Mesos-Stream-Id header")]
    MissingStreamId,
    /// No answer, or no bytes on the stream, for this long (for a subscription, this
    /// many missed heartbeats).
    #[error("master silent for {0:?}")]
    Silent(Duration),
    /// The master closed the stream.
    #[error("the master closed the event stream")]
    StreamEnded,
    /// An HTTP or I/O error on the connection.
    #[error("connection error: {0}")]
    Transport(String),
    /// The stream carried bytes that are not RecordIO, or a record that does not decode.
    #[error("undecodable event stream: {0}")]
    Decode(String),
    /// A call was answered 401 (the master refused the framework's credentials): the
    /// client subscribes again, which ends it with an ERROR if the master refuses that too.
    #[error("a call was refused for the framework's credentials (401); subscribing again")]
    Unauthorized,
    /// ZooKeeper names another master as the leader: the client subscribes to it.
    #[error("ZooKeeper names another leading master: {0}")]
    LeaderChanged(String),
}

/// A master event, sorted by what the connection loop must do with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// Liveness only.
    Heartbeat,
    /// SUBSCRIBED: the session starts.
    Subscribed(event::Subscribed),
    /// ERROR: the client stops.
    Error(String),
    /// To deliver as is.
    Deliver(SchedulerEvent),
    /// Not for the planner (unknown type, inverse offers, operation updates, or a
    /// missing payload); the text says why, for the log.
    Ignored(String),
}

fn missing(name: &str) -> Incoming {
    Incoming::Ignored(format!("{name} event without its payload"))
}

/// Sorts a decoded master event.
pub(crate) fn classify(ev: Event) -> Incoming {
    use event::Type;
    let Some(raw) = ev.r#type else {
        return Incoming::Ignored("event without a type".into());
    };
    let Ok(ty) = Type::try_from(raw) else {
        return Incoming::Ignored(format!("event of unknown type {raw}"));
    };
    match ty {
        Type::Heartbeat => Incoming::Heartbeat,
        Type::Subscribed => ev
            .subscribed
            .map_or_else(|| missing("SUBSCRIBED"), Incoming::Subscribed),
        Type::Error => Incoming::Error(
            ev.error
                .map_or_else(|| "ERROR event without a message".to_owned(), |e| e.message),
        ),
        Type::Offers => ev.offers.map_or_else(
            || missing("OFFERS"),
            |o| Incoming::Deliver(SchedulerEvent::Offers(o.offers)),
        ),
        Type::Rescind => ev.rescind.map_or_else(
            || missing("RESCIND"),
            |r| Incoming::Deliver(SchedulerEvent::Rescind(r.offer_id)),
        ),
        Type::Update => ev.update.map_or_else(
            || missing("UPDATE"),
            |u| Incoming::Deliver(SchedulerEvent::Update(u.status)),
        ),
        Type::Message => ev.message.map_or_else(
            || missing("MESSAGE"),
            |m| {
                Incoming::Deliver(SchedulerEvent::Message {
                    agent_id: m.agent_id,
                    executor_id: m.executor_id,
                    data: m.data,
                })
            },
        ),
        Type::Failure => ev.failure.map_or_else(
            || missing("FAILURE"),
            |f| {
                Incoming::Deliver(SchedulerEvent::Failure {
                    agent_id: f.agent_id,
                    executor_id: f.executor_id,
                    status: f.status,
                })
            },
        ),
        Type::InverseOffers
        | Type::RescindInverseOffer
        | Type::UpdateOperationStatus
        | Type::Unknown => {
            Incoming::Ignored(format!("{} events are not used by Retz", ty.as_str_name()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::TaskId;

    fn typed(ty: event::Type) -> Event {
        Event {
            r#type: Some(ty as i32),
            ..Event::default()
        }
    }

    #[test]
    fn heartbeat_subscribed_error() {
        assert_eq!(classify(typed(event::Type::Heartbeat)), Incoming::Heartbeat);
        let sub = event::Subscribed {
            framework_id: FrameworkId { value: "f".into() },
            heartbeat_interval_seconds: Some(15.0),
            master_info: None,
        };
        let ev = Event {
            subscribed: Some(sub.clone()),
            ..typed(event::Type::Subscribed)
        };
        assert_eq!(classify(ev), Incoming::Subscribed(sub));
        let ev = Event {
            error: Some(event::Error {
                message: "Framework has been removed".into(),
            }),
            ..typed(event::Type::Error)
        };
        assert_eq!(
            classify(ev),
            Incoming::Error("Framework has been removed".into())
        );
        assert!(
            matches!(classify(typed(event::Type::Error)), Incoming::Error(m) if m.contains("without"))
        );
    }

    #[test]
    fn payloads_are_delivered() {
        let status = TaskStatus {
            task_id: TaskId { value: "t".into() },
            uuid: Some(vec![1; 16]),
            ..TaskStatus::default()
        };
        let ev = Event {
            update: Some(event::Update {
                status: status.clone(),
            }),
            ..typed(event::Type::Update)
        };
        assert_eq!(
            classify(ev),
            Incoming::Deliver(SchedulerEvent::Update(status))
        );
        let ev = Event {
            rescind: Some(event::Rescind {
                offer_id: OfferId { value: "o".into() },
            }),
            ..typed(event::Type::Rescind)
        };
        assert_eq!(
            classify(ev),
            Incoming::Deliver(SchedulerEvent::Rescind(OfferId { value: "o".into() }))
        );
        let ev = Event {
            offers: Some(event::Offers {
                offers: vec![Offer::default()],
            }),
            ..typed(event::Type::Offers)
        };
        assert_eq!(
            classify(ev),
            Incoming::Deliver(SchedulerEvent::Offers(vec![Offer::default()]))
        );
        let ev = Event {
            failure: Some(event::Failure {
                agent_id: Some(AgentId { value: "a".into() }),
                executor_id: None,
                status: Some(9),
            }),
            ..typed(event::Type::Failure)
        };
        assert!(matches!(
            classify(ev),
            Incoming::Deliver(SchedulerEvent::Failure {
                status: Some(9),
                ..
            })
        ));
        let ev = Event {
            message: Some(event::Message {
                agent_id: AgentId { value: "a".into() },
                executor_id: ExecutorId { value: "e".into() },
                data: b"x".to_vec(),
            }),
            ..typed(event::Type::Message)
        };
        assert!(
            matches!(classify(ev), Incoming::Deliver(SchedulerEvent::Message { data, .. }) if data == b"x")
        );
    }

    #[test]
    fn malformed_or_unused_events_are_ignored() {
        for ty in [
            event::Type::Subscribed,
            event::Type::Offers,
            event::Type::Rescind,
            event::Type::Update,
            event::Type::Message,
            event::Type::Failure,
            event::Type::InverseOffers,
            event::Type::UpdateOperationStatus,
            event::Type::Unknown,
        ] {
            assert!(
                matches!(classify(typed(ty)), Incoming::Ignored(_)),
                "{ty:?}"
            );
        }
        assert!(matches!(classify(Event::default()), Incoming::Ignored(_)));
        let ev = Event {
            r#type: Some(99),
            ..Event::default()
        };
        assert_eq!(
            classify(ev),
            Incoming::Ignored("event of unknown type 99".into())
        );
    }
}
