//! The connection loop: subscribe, read the event stream, reconnect.
//!
//! Invariants:
//! * one subscription at a time; calls go to the master that accepted it;
//! * every re-subscription carries the latest framework id in both `Call.framework_id`
//!   and `framework_info.id`, and the roles suppressed at that time;
//! * a failed attempt or a lost subscription is reported as `Disconnected` before the
//!   backoff delay, and moves to the next master (or back from a redirect target);
//! * the backoff starts over only after a SUBSCRIBED;
//! * ERROR, a rejected SUBSCRIBE, `stop`, TEARDOWN, or a dropped event receiver end the
//!   loop for good, and the client is marked stopped; a SUBSCRIBE refused with 401 says
//!   that the master refused the framework's credentials, naming the principal;
//! * a call answered 401 ends the subscription (see [`Shared::unauthorized`]), so the
//!   next SUBSCRIBE settles whether the credentials still hold (after the backoff
//!   delay, which such a loss does not reset).
//! * with ZooKeeper detection, every SUBSCRIBE goes to the leader ZooKeeper names (or a
//!   master it redirects to); the loop waits while none leads, and a subscription ends
//!   as soon as ZooKeeper names another leader.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use retz_proto::ContentType;
use retz_proto::mesos::FrameworkInfo;
use retz_proto::recordio::RecordDecoder;
use retz_proto::scheduler::Event;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, timeout};
use tracing::{debug, error, info, trace, warn};

use super::backoff::Backoff;
use super::calls;
use super::endpoint::{Endpoint, MasterList};
use super::error::refusal;
use super::events::{DisconnectReason, Incoming, SchedulerEvent, classify};
use super::heartbeat::Watchdog;
use super::state::{Session, Shared};
use super::transport::{self, Auth, MasterTls, SubscribeOutcome, Subscription};

/// The loop's settings, taken from the validated config.
#[derive(Debug, Clone)]
pub(crate) struct LoopConfig {
    pub framework_info: FrameworkInfo,
    pub auth: Option<Auth>,
    pub content_type: ContentType,
    pub heartbeat_misses: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub call_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_redirects: u32,
    pub max_event_size: usize,
    pub tls: MasterTls,
}

/// How reading a subscription's stream ended.
enum StreamEnd {
    /// Stop for good (stop, teardown, receiver dropped).
    Stop,
    /// The master sent ERROR.
    Error(String),
    /// The subscription is lost; `subscribed` tells whether SUBSCRIBED arrived.
    Lost {
        reason: DisconnectReason,
        subscribed: bool,
    },
}

/// The loop task.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    cfg: LoopConfig,
    /// The masters to try; `None` in ZooKeeper mode until a leader is known.
    masters: Option<MasterList>,
    /// The ZooKeeper detector's leader, in ZooKeeper mode.
    detector: Option<watch::Receiver<Option<Endpoint>>>,
    /// The leader ZooKeeper named when `masters` was last set from it.
    zk_leader: Option<Endpoint>,
    events: mpsc::Sender<SchedulerEvent>,
}

impl Connection {
    pub(crate) fn new(
        shared: Arc<Shared>,
        cfg: LoopConfig,
        masters: Option<MasterList>,
        detector: Option<watch::Receiver<Option<Endpoint>>>,
        events: mpsc::Sender<SchedulerEvent>,
    ) -> Self {
        Connection {
            shared,
            cfg,
            masters,
            detector,
            zk_leader: None,
            events,
        }
    }

    /// In ZooKeeper mode, waits for a leader and points the list at it when it is new;
    /// `false` if the client must stop.
    async fn follow_detector(&mut self) -> bool {
        let Some(rx) = self.detector.as_mut() else {
            return true;
        };
        let leader = tokio::select! {
            () = self.shared.cancel.cancelled() => return false,
            () = self.events.closed() => return false,
            r = rx.wait_for(Option::is_some) => match r {
                Ok(l) => l.clone(),
                Err(_) => return false,
            },
        };
        if self.masters.is_none() || leader != self.zk_leader {
            self.masters = leader.clone().and_then(|l| MasterList::new(vec![l]));
            self.zk_leader = leader;
        }
        self.masters.is_some()
    }

    /// Runs until the client stops.
    pub(crate) async fn run(mut self) {
        self.run_loop().await;
        self.shared.state().session = None;
        self.shared.cancel.cancel();
        info!("Mesos scheduler client stopped");
    }

    async fn run_loop(&mut self) {
        let mut backoff = Backoff::new(self.cfg.backoff_initial, self.cfg.backoff_max);
        let mut redirects = 0u32;
        loop {
            if !self.follow_detector().await {
                return;
            }
            let Some(masters) = self.masters.as_ref() else {
                return;
            };
            let endpoint = masters.current().clone();
            let body = self.subscribe_body();
            debug!(master = %endpoint, "subscribing");
            let attempt = transport::subscribe(
                &endpoint,
                body,
                self.cfg.content_type,
                self.cfg.connect_timeout,
                self.cfg.call_timeout,
                self.cfg.auth.as_ref(),
                &self.cfg.tls,
            );
            let outcome = tokio::select! {
                () = self.shared.cancel.cancelled() => return,
                () = self.events.closed() => return,
                o = attempt => o,
            };
            let reason = match outcome {
                SubscribeOutcome::Redirect(location) => {
                    redirects += 1;
                    match self.redirect_target(&endpoint, location.as_deref(), redirects) {
                        Ok(leader) => {
                            info!(from = %endpoint, to = %leader, "master redirected SUBSCRIBE to the leader");
                            if let Some(m) = self.masters.as_mut() {
                                m.redirect(leader);
                            }
                            continue;
                        }
                        Err(reason) => reason,
                    }
                }
                SubscribeOutcome::Rejected { status, body } => {
                    let msg = if status == 401 {
                        let principal = self.cfg.auth.as_ref().map(|a| a.principal.as_str());
                        format!(
                            "the master {} (SUBSCRIBE to {endpoint} answered 401: {body})",
                            refusal(principal)
                        )
                    } else {
                        format!("master {endpoint} rejected SUBSCRIBE with {status}: {body}")
                    };
                    error!("{msg}");
                    self.emit(SchedulerEvent::Error(msg)).await;
                    return;
                }
                SubscribeOutcome::Failed(reason) => reason,
                SubscribeOutcome::Stream(sub) => match self.read_stream(sub, &endpoint).await {
                    StreamEnd::Stop => return,
                    StreamEnd::Error(msg) => {
                        warn!(master = %endpoint, error = %msg, "master sent ERROR; stopping");
                        self.shared.state().session = None;
                        self.emit(SchedulerEvent::Error(msg)).await;
                        return;
                    }
                    StreamEnd::Lost { reason, subscribed } => {
                        // Refused credentials keep backing off: a master that accepts
                        // SUBSCRIBE but refuses calls is not hammered.
                        if subscribed && reason != DisconnectReason::Unauthorized {
                            backoff.reset();
                        }
                        reason
                    }
                },
            };
            redirects = 0;
            self.shared.state().session = None;
            if let Some(m) = self.masters.as_mut() {
                m.fail();
            }
            let retry_in = backoff.next_delay();
            warn!(master = %endpoint, %reason, ?retry_in, "Mesos subscription down; retrying");
            let event = SchedulerEvent::Disconnected {
                master: endpoint.to_string(),
                reason,
                retry_in,
            };
            if !self.emit(event).await {
                return;
            }
            tokio::select! {
                () = self.shared.cancel.cancelled() => return,
                () = self.events.closed() => return,
                () = sleep(retry_in) => {}
            }
        }
    }

    /// The encoded SUBSCRIBE for the current framework id and suppressed roles.
    fn subscribe_body(&self) -> Bytes {
        let state = self.shared.state();
        let call = calls::subscribe(
            &self.cfg.framework_info,
            state.framework_id.as_ref(),
            state.suppressed.iter().cloned().collect(),
        );
        Bytes::from(self.cfg.content_type.encode(&call))
    }

    fn redirect_target(
        &self,
        from: &Endpoint,
        location: Option<&str>,
        redirects: u32,
    ) -> Result<Endpoint, DisconnectReason> {
        if redirects > self.cfg.max_redirects {
            return Err(DisconnectReason::Redirect(format!(
                "more than {} redirects in a row",
                self.cfg.max_redirects
            )));
        }
        let Some(location) = location else {
            return Err(DisconnectReason::Redirect(
                "307 without a Location header".into(),
            ));
        };
        from.resolve_location(location)
            .map_err(|e| DisconnectReason::Redirect(e.to_string()))
    }

    /// Delivers an event; `false` if the client must stop (receiver gone or stopped).
    async fn emit(&self, event: SchedulerEvent) -> bool {
        tokio::select! {
            () = self.shared.cancel.cancelled() => false,
            r = self.events.send(event) => r.is_ok(),
        }
    }

    /// Reads one subscription's events until it ends.
    async fn read_stream(&self, sub: Subscription, endpoint: &Endpoint) -> StreamEnd {
        let Subscription {
            mut body,
            stream_id,
            content_type,
            ..
        } = sub;
        let mut watchdog = Watchdog::new(self.cfg.heartbeat_misses, self.cfg.call_timeout);
        let mut decoder = RecordDecoder::new(self.cfg.max_event_size);
        let mut subscribed = false;
        let lost = |reason, subscribed| StreamEnd::Lost { reason, subscribed };
        let moved = leader_moved(self.detector.clone(), self.zk_leader.clone());
        tokio::pin!(moved);
        loop {
            let silence = watchdog.allowed_silence();
            let frame = tokio::select! {
                () = self.shared.cancel.cancelled() => return StreamEnd::Stop,
                () = self.events.closed() => return StreamEnd::Stop,
                () = self.shared.unauthorized.notified() => {
                    return lost(DisconnectReason::Unauthorized, subscribed);
                }
                to = &mut moved => {
                    return lost(DisconnectReason::LeaderChanged(to.to_string()), subscribed);
                }
                f = timeout(silence, body.frame()) => f,
            };
            let data = match frame {
                Err(_) => return lost(DisconnectReason::Silent(silence), subscribed),
                Ok(None) => {
                    let reason = match decoder.finish() {
                        Ok(()) => DisconnectReason::StreamEnded,
                        Err(e) => DisconnectReason::Decode(e.to_string()),
                    };
                    return lost(reason, subscribed);
                }
                Ok(Some(Err(e))) => {
                    return lost(DisconnectReason::Transport(e.to_string()), subscribed);
                }
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            decoder.push(&data);
            loop {
                let record = match decoder.next_record() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => return lost(DisconnectReason::Decode(e.to_string()), subscribed),
                };
                let event: Event = match content_type.decode(&record) {
                    Ok(ev) => ev,
                    Err(e) => return lost(DisconnectReason::Decode(e.to_string()), subscribed),
                };
                match classify(event) {
                    Incoming::Heartbeat => trace!("heartbeat"),
                    Incoming::Subscribed(s) => {
                        let heartbeat_interval = watchdog.subscribed(s.heartbeat_interval_seconds);
                        {
                            let mut state = self.shared.state();
                            state.framework_id = Some(s.framework_id.clone());
                            state.session = Some(Session {
                                endpoint: endpoint.clone(),
                                stream_id: stream_id.clone(),
                                framework_id: s.framework_id.clone(),
                            });
                        }
                        subscribed = true;
                        info!(
                            master = %endpoint,
                            framework_id = %s.framework_id.value,
                            ?heartbeat_interval,
                            "subscribed to Mesos"
                        );
                        let event = SchedulerEvent::Subscribed {
                            framework_id: s.framework_id,
                            heartbeat_interval,
                            master_info: s.master_info,
                        };
                        if !self.emit(event).await {
                            return StreamEnd::Stop;
                        }
                    }
                    Incoming::Error(msg) => return StreamEnd::Error(msg),
                    Incoming::Deliver(event) => {
                        if !subscribed {
                            warn!(master = %endpoint, ?event, "event before SUBSCRIBED ignored");
                        } else if !self.emit(event).await {
                            return StreamEnd::Stop;
                        }
                    }
                    Incoming::Ignored(why) => debug!(master = %endpoint, "{why}"),
                }
            }
        }
    }
}

/// Resolves when the detector names a leader other than `current`; never without a
/// detector (or once the detector is gone).
async fn leader_moved(
    detector: Option<watch::Receiver<Option<Endpoint>>>,
    current: Option<Endpoint>,
) -> Endpoint {
    if let Some(mut rx) = detector {
        loop {
            if let Some(l) = rx.borrow_and_update().as_ref()
                && Some(l) != current.as_ref()
            {
                return l.clone();
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    }
    std::future::pending().await
}
