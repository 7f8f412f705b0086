//! `--record-events FILE`: every Mesos event the server receives (offers, rescinds,
//! updates, failures), one JSON line each with its arrival time, in the format
//! `retz-sim` replays ([`retz_proto::recording`]). Lines are flushed as written, so a
//! crash loses at most the event being written.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use retz_proto::recording::encode_line;
use retz_proto::scheduler::{Event, event};

use crate::mesos::SchedulerEvent;

/// An open recording.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    file: File,
}

impl Recorder {
    /// Opens `path` for appending (created if missing).
    pub fn open(path: &Path) -> io::Result<Recorder> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Recorder {
            path: path.to_owned(),
            file,
        })
    }

    /// Writes `ev` if it is one the simulator reads; errors are logged, never fatal.
    pub fn record(&mut self, ev: &SchedulerEvent) {
        let Some(event) = to_event(ev) else {
            return;
        };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut line = encode_line(ts, &event);
        line.push('\n');
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the event recording");
        }
    }
}

/// The Mesos event behind a client event.
fn to_event(ev: &SchedulerEvent) -> Option<Event> {
    let mut out = Event::default();
    match ev {
        SchedulerEvent::Offers(offers) => {
            out.r#type = Some(event::Type::Offers as i32);
            out.offers = Some(event::Offers {
                offers: offers.clone(),
            });
        }
        SchedulerEvent::Rescind(id) => {
            out.r#type = Some(event::Type::Rescind as i32);
            out.rescind = Some(event::Rescind {
                offer_id: id.clone(),
            });
        }
        SchedulerEvent::Update(status) => {
            out.r#type = Some(event::Type::Update as i32);
            out.update = Some(event::Update {
                status: status.clone(),
            });
        }
        SchedulerEvent::Failure {
            agent_id,
            executor_id,
            status,
        } => {
            out.r#type = Some(event::Type::Failure as i32);
            out.failure = Some(event::Failure {
                agent_id: agent_id.clone(),
                executor_id: executor_id.clone(),
                status: *status,
            });
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::{AgentId, FrameworkId, Offer, OfferId};

    #[test]
    fn offers_are_written_as_replayable_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut r = Recorder::open(&path).unwrap();
        let offer = Offer {
            id: OfferId { value: "o1".into() },
            framework_id: FrameworkId { value: "f".into() },
            agent_id: AgentId { value: "a1".into() },
            hostname: "h1".into(),
            ..Offer::default()
        };
        r.record(&SchedulerEvent::Offers(vec![offer]));
        r.record(&SchedulerEvent::Error("ignored".into()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        let line: retz_proto::recording::RecordLine =
            serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(line.ts > 0.0);
        assert_eq!(line.event["type"], "OFFERS");
        assert_eq!(line.event["offers"]["offers"][0]["hostname"], "h1");
    }
}
