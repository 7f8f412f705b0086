//! The recording format of `retz-server --record-events FILE`, and reading the cluster it
//! saw.
//!
//! Format: UTF-8 JSON lines, one per Mesos scheduler event the server received, in the
//! order received:
//!
//! ```text
//! {"ts": <f64 seconds since the Unix epoch>, "event": <mesos.v1.scheduler.Event in Mesos JSON>}
//! ```
//!
//! `ts` is the server's wall clock when the event arrived (finite, non-negative; it may
//! repeat). `event` is written exactly as the Mesos master sends it on the JSON event
//! stream (stout's JSON dialect, see `retz_proto::json`), e.g.
//! `{"type":"OFFERS","offers":{"offers":[{"id":{"value":"o1"},"framework_id":{"value":"f"},
//! "agent_id":{"value":"a1"},"hostname":"h1","resources":[...],"attributes":[...]}]}}`.
//! No other keys are allowed on a line; blank lines are skipped. [`encode_line`] writes
//! one line (the server's writer), [`read_recording`] reads a file back.
//!
//! What the simulator takes from a recording: every agent that appears in an `OFFERS`
//! event, with the largest amount of each resource it was ever offered (the agent's
//! capacity as far as the recording shows it; an agent offered only partly free is
//! under-estimated). Agents are sorted by agent id. The offer timing itself is not
//! replayed: the simulator's own allocation model (see `engine`) decides when resources
//! are free again. Offers are read without the Retz NUMA attributes for now: each agent is
//! a one-node, counts-only host (`numa_aware == false`), which is how the server treats an
//! offer without the NUMA convention.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use retz_placement::{CpuSet, Topology};
use retz_proto::mesos::{Resource, value};
use retz_proto::scheduler::{Event, event};
use serde::{Deserialize, Serialize};

use crate::cluster::Host;
use crate::error::{InputError, excerpt, read_text};

/// One line of a recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLine {
    /// Seconds since the Unix epoch when the event arrived.
    pub ts: f64,
    /// The Mesos scheduler event, in Mesos JSON.
    pub event: serde_json::Value,
}

/// Writes one recording line (no trailing newline) for `event` received at `ts`.
pub fn encode_line(ts: f64, event: &Event) -> String {
    let line = RecordLine {
        ts: if ts.is_finite() && ts >= 0.0 { ts } else { 0.0 },
        event: retz_proto::json::to_json(event),
    };
    // A struct of a finite f64 and a JSON value always serialises.
    serde_json::to_string(&line).unwrap_or_default()
}

/// One decoded recording line.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// 1-based line in the file.
    pub line: usize,
    /// When it arrived.
    pub ts: f64,
    /// The event.
    pub event: Event,
}

/// Decodes a recording held in `text`; `source` names it in errors.
pub fn parse_recording(source: &str, text: &str) -> Result<Vec<Recorded>, InputError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let rec: RecordLine = serde_json::from_str(raw).map_err(|e| {
            InputError::new(
                source,
                line,
                format!(
                    "not a recording line ({e}); each line is {{\"ts\": SECONDS, \"event\": MESOS_EVENT_JSON}}"
                ),
            )
        })?;
        if !rec.ts.is_finite() || rec.ts < 0.0 {
            return Err(InputError::new(
                source,
                line,
                format!("ts {} is not a non-negative number of seconds", rec.ts),
            ));
        }
        let event: Event = retz_proto::json::from_value(&rec.event)
            .map_err(|e| InputError::new(source, line, format!("event: {e}")))?;
        out.push(Recorded {
            line,
            ts: rec.ts,
            event,
        });
    }
    Ok(out)
}

/// Reads and decodes a recording file.
pub fn read_recording(path: &Path) -> Result<Vec<Recorded>, InputError> {
    let text = read_text(path)?;
    parse_recording(&path.display().to_string(), &text)
}

#[derive(Default)]
struct Seen {
    hostname: String,
    cpus: f64,
    cpuids: CpuSet,
    mem_mb: f64,
    gpus: f64,
}

fn scalar(r: &Resource) -> Option<f64> {
    if r.r#type == value::Type::Scalar as i32 {
        r.scalar
            .as_ref()
            .map(|s| s.value)
            .filter(|v| v.is_finite() && *v >= 0.0)
    } else {
        None
    }
}

/// The agents a recording's offers show, as simulated hosts (see the module docs).
pub fn hosts_from_events(source: &str, events: &[Recorded]) -> Result<Vec<Host>, InputError> {
    let mut agents: BTreeMap<String, Seen> = BTreeMap::new();
    for rec in events {
        if rec.event.r#type != Some(event::Type::Offers as i32) {
            continue;
        }
        let Some(offers) = &rec.event.offers else {
            continue;
        };
        for offer in &offers.offers {
            let id = offer.agent_id.value.clone();
            let mut cpus = 0.0;
            let mut mem = 0.0;
            let mut gpus = 0.0;
            let mut ids = CpuSet::new();
            for r in &offer.resources {
                match r.name.as_str() {
                    "cpus" => cpus += scalar(r).unwrap_or(0.0),
                    "mem" => mem += scalar(r).unwrap_or(0.0),
                    "gpus" => gpus += scalar(r).unwrap_or(0.0),
                    "cpuids" => {
                        if let Some(rs) = &r.ranges {
                            for range in &rs.range {
                                if range.begin > range.end
                                    || range.end > u64::from(retz_placement::MAX_SET_ID)
                                {
                                    return Err(InputError::new(
                                        source,
                                        rec.line,
                                        format!(
                                            "agent {}: cpuids range [{}-{}] is not a valid CPU id range",
                                            excerpt(&id, 60),
                                            range.begin,
                                            range.end
                                        ),
                                    ));
                                }
                                ids.union_with(&CpuSet::from_range(
                                    range.begin as u32,
                                    range.end as u32,
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
            let seen = agents.entry(id).or_default();
            seen.hostname.clone_from(&offer.hostname);
            seen.cpus = seen.cpus.max(cpus);
            seen.mem_mb = seen.mem_mb.max(mem);
            seen.gpus = seen.gpus.max(gpus);
            seen.cpuids.union_with(&ids);
        }
    }
    if agents.is_empty() {
        return Err(InputError::new(
            source,
            0,
            "the recording holds no OFFERS event, so no agent is known; record longer or check the file",
        ));
    }
    let mut hosts = Vec::with_capacity(agents.len());
    for (agent_id, seen) in agents {
        let count = (seen.cpus.floor() as u64).max(seen.cpuids.len() as u64);
        if count == 0 {
            continue;
        }
        if count > u64::from(retz_placement::MAX_SET_ID) + 1 {
            return Err(InputError::new(
                source,
                0,
                format!(
                    "agent {}: {count} CPUs is more than supported",
                    excerpt(&agent_id, 60)
                ),
            ));
        }
        let cpus = CpuSet::from_range(0, count as u32 - 1);
        let topology = Topology::single_node(&cpus, seen.mem_mb.floor() as u64).map_err(|e| {
            InputError::new(source, 0, format!("agent {}: {e}", excerpt(&agent_id, 60)))
        })?;
        hosts.push(Host {
            agent_id,
            hostname: seen.hostname,
            topology: Arc::new(topology),
            gpus: seen.gpus.floor().min(f64::from(u32::MAX)) as u32,
            numa_aware: false,
        });
    }
    if hosts.is_empty() {
        return Err(InputError::new(
            source,
            0,
            "no agent in the recording was ever offered a CPU",
        ));
    }
    Ok(hosts)
}

/// Reads a recording file and returns its agents as hosts.
pub fn load_recording_hosts(path: &Path) -> Result<Vec<Host>, InputError> {
    let events = read_recording(path)?;
    hosts_from_events(&path.display().to_string(), &events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::{AgentId, FrameworkId, Offer, OfferId};

    fn res_scalar(name: &str, v: f64) -> Resource {
        Resource {
            name: name.into(),
            r#type: value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: v }),
            ..Default::default()
        }
    }

    fn offers(agent: &str, cpus: f64, mem: f64) -> Event {
        Event {
            r#type: Some(event::Type::Offers as i32),
            offers: Some(event::Offers {
                offers: vec![Offer {
                    id: OfferId {
                        value: format!("o-{agent}"),
                    },
                    framework_id: FrameworkId { value: "f".into() },
                    agent_id: AgentId {
                        value: agent.into(),
                    },
                    hostname: format!("{agent}.example"),
                    resources: vec![res_scalar("cpus", cpus), res_scalar("mem", mem)],
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_and_capacity_is_the_largest_offer() {
        let heartbeat = Event {
            r#type: Some(event::Type::Heartbeat as i32),
            ..Default::default()
        };
        let text = [
            encode_line(1.5, &offers("b", 4.0, 1024.0)),
            String::new(),
            encode_line(2.0, &heartbeat),
            encode_line(3.0, &offers("a", 2.0, 512.0)),
            encode_line(4.0, &offers("b", 8.0, 256.0)),
        ]
        .join("\n");
        assert!(text.starts_with("{\"ts\":1.5,\"event\":{"), "{text}");
        let events = parse_recording("r", &text).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[1].line, 3);
        let hosts = hosts_from_events("r", &events).unwrap();
        let got: Vec<(String, usize, u64)> = hosts
            .iter()
            .map(|h| {
                (
                    h.agent_id.clone(),
                    h.topology.cpus().len(),
                    h.topology.total_memory_mb(),
                )
            })
            .collect();
        assert_eq!(got, vec![("a".into(), 2, 512), ("b".into(), 8, 1024)]);
        assert!(!hosts[0].numa_aware);
        assert_eq!(hosts[1].hostname, "b.example");
    }

    #[test]
    fn bad_lines_name_the_line() {
        for (text, line, want) in [
            ("{\"ts\":1}", 1, "not a recording line"),
            (
                "\n{\"ts\":1,\"event\":{},\"x\":2}",
                2,
                "not a recording line",
            ),
            ("{\"ts\":-1,\"event\":{}}", 1, "non-negative"),
            (
                "{\"ts\":1,\"event\":{\"type\":\"OFFERS\",\"offers\":{\"offers\":[{}]}}}",
                1,
                "event:",
            ),
            ("{\"ts\":1,\"event\":[]}", 1, "event:"),
        ] {
            let e = parse_recording("rec.jsonl", text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        let e = hosts_from_events("rec.jsonl", &[]).unwrap_err();
        assert!(e.to_string().contains("no OFFERS"), "{e}");
    }
}
