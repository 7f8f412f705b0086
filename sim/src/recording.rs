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
//! event, sorted by agent id, decoded with the Retz NUMA convention
//! (`retz_proto::numa::offer_topology`, the decoder the server uses):
//! - an agent whose offers carry the NUMA attributes (`retz_numa:v1`, `numa_n<ID>`, ...)
//!   becomes a NUMA-aware host with exactly the advertised layout — every node, core,
//!   SMT sibling, node memory and SLIT distance — whatever part of it was free when
//!   offered (the layout of its latest offer, should it change);
//! - an agent without them is a one-node, counts-only host (`numa_aware == false`, no
//!   pinning), as the server treats such offers, with the largest number of CPUs and the
//!   most memory it was ever offered (its capacity as far as the recording shows it: an
//!   agent that was never offered whole is under-estimated).
//!
//! GPUs are the most ever offered. The offer timing itself is not replayed: the simulator's
//! own allocation model (see `engine`) decides when resources are free again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use retz_placement::{CpuSet, Topology, TopologySpec};
use retz_proto::numa::offer_topology;
use retz_proto::scheduler::{Event, event};

use crate::cluster::Host;
use crate::error::{InputError, excerpt, read_text};

pub use retz_proto::recording::{RecordLine, encode_line};

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
    /// Layout of the latest NUMA-aware offer.
    layout: Option<TopologySpec>,
    /// Most CPUs and memory of offers without the NUMA attributes.
    plain_cpus: u64,
    plain_mem_mb: f64,
    gpus: f64,
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
            let id = &offer.agent_id.value;
            let decoded = offer_topology(&offer.resources, &offer.attributes).map_err(|e| {
                InputError::new(
                    source,
                    rec.line,
                    format!("offer of agent {}: {e}", excerpt(id, 60)),
                )
            })?;
            let seen = agents.entry(id.clone()).or_default();
            seen.hostname.clone_from(&offer.hostname);
            seen.gpus = seen.gpus.max(decoded.free.gpus);
            if decoded.numa_aware {
                seen.layout = Some(decoded.spec);
            } else {
                let cpus = (decoded.free.cpus.floor() as u64).max(decoded.free.cpuids.len() as u64);
                seen.plain_cpus = seen.plain_cpus.max(cpus);
                seen.plain_mem_mb = seen.plain_mem_mb.max(decoded.free.mem_mb);
            }
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
        let agent_err = |e: &dyn std::fmt::Display| {
            InputError::new(source, 0, format!("agent {}: {e}", excerpt(&agent_id, 60)))
        };
        let (topology, numa_aware) = match seen.layout {
            Some(spec) => (Topology::new(spec).map_err(|e| agent_err(&e))?, true),
            None => {
                if seen.plain_cpus == 0 {
                    continue;
                }
                if seen.plain_cpus > u64::from(retz_placement::MAX_SET_ID) + 1 {
                    return Err(agent_err(&format!(
                        "{} CPUs is more than supported",
                        seen.plain_cpus
                    )));
                }
                let cpus = CpuSet::from_range(0, seen.plain_cpus as u32 - 1);
                let t = Topology::single_node(&cpus, seen.plain_mem_mb.floor() as u64)
                    .map_err(|e| agent_err(&e))?;
                (t, false)
            }
        };
        hosts.push(Host {
            agent_id,
            hostname: seen.hostname,
            topology: Arc::new(topology),
            gpus: seen.gpus.floor().min(f64::from(u32::MAX)) as u32,
            numa_aware,
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
    use retz_proto::mesos::{AgentId, FrameworkId, Offer, OfferId, Resource, value};

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

    fn numa_offer(agent: &str, desc: &str, free: &str) -> Event {
        let spec = Topology::from_synthetic(desc, 2048).unwrap().spec().clone();
        let mut f = retz_proto::numa::FreeResources::whole_machine(&spec);
        f.cpuids = free.parse().unwrap();
        f.cpus = f.cpuids.len() as f64;
        let flags = retz_proto::numa::agent_flags(&spec, &f).unwrap();
        let parsed = retz_proto::numa::parse_agent_flags(&flags.to_flag_lines()).unwrap();
        let mut e = offers(agent, 0.0, 0.0);
        let o = &mut e.offers.as_mut().unwrap().offers[0];
        o.resources = parsed.resources;
        o.attributes = parsed.attributes;
        e
    }

    #[test]
    fn numa_attributes_give_the_whole_layout() {
        let text = [
            // Offered partly free: the layout is still the whole machine.
            encode_line(1.0, &numa_offer("n1", "pack:2 numa:1 core:2 pu:2", "2-5")),
            encode_line(2.0, &offers("plain", 3.0, 100.0)),
        ]
        .join("\n");
        let hosts = hosts_from_events("r", &parse_recording("r", &text).unwrap()).unwrap();
        assert_eq!(hosts.len(), 2);
        let n1 = &hosts[0];
        assert_eq!(n1.agent_id, "n1");
        assert!(n1.numa_aware);
        assert_eq!(n1.topology.num_nodes(), 2);
        assert_eq!(n1.topology.cpus().len(), 8);
        assert_eq!(n1.topology.smt_width(), 2);
        assert_eq!(n1.topology.total_memory_mb(), 4096);
        assert!(!hosts[1].numa_aware);
        // A NUMA attribute that does not decode names the line.
        let mut bad = numa_offer("n2", "pack:1 numa:1 core:1 pu:1", "0");
        let o = &mut bad.offers.as_mut().unwrap().offers[0];
        for a in &mut o.attributes {
            if a.name == "retz_numa" {
                a.text = Some(retz_proto::mesos::value::Text { value: "v9".into() });
            }
        }
        let text = format!("\n{}", encode_line(1.0, &bad));
        let e = hosts_from_events("r", &parse_recording("r", &text).unwrap()).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().contains("offer of agent n2"), "{e}");
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
