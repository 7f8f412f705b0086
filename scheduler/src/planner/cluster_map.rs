//! [`ClusterMap`]: the agents the planner has had offers from, with their NUMA layout, for
//! the web page's CPU map ([`crate::http::ClusterView`]).
//!
//! Invariants:
//! - an agent's layout comes from the NUMA resource convention of its offers' attributes
//!   (`retz_proto::numa::offer_topology`), decoded again only when the attributes change;
//! - an agent stays known while it offers nothing — in particular while all its CPUs are
//!   granted, when Mesos has nothing to offer — until Mesos reports the agent removed
//!   ([`ClusterMap::forget`]);
//! - an agent without the NUMA attributes is one node of placeholder ids `0..n`, `n` the
//!   most CPUs it ever offered;
//! - an offer that breaks the convention changes nothing (the cycle declines it and logs
//!   why).

use std::collections::BTreeMap;
use std::sync::Mutex;

use prost::Message;
use retz_proto::mesos::Offer;
use retz_proto::numa::offer_topology;

use crate::http::{AgentView, ClusterView, NodeView};

/// One known agent.
#[derive(Debug)]
struct Known {
    /// The encoded attributes its layout was decoded from.
    attributes: Vec<u8>,
    view: AgentView,
}

/// The agents seen, by id (shared between the planner loop and the HTTP API).
#[derive(Debug, Default)]
pub struct ClusterMap {
    agents: Mutex<BTreeMap<String, Known>>,
}

impl ClusterMap {
    /// Learns the layout of the agents of `offers`.
    pub fn observe(&self, offers: &[Offer]) {
        let mut agents = super::link::lock(&self.agents);
        for offer in offers {
            let attributes: Vec<u8> = offer
                .attributes
                .iter()
                .flat_map(Message::encode_to_vec)
                .collect();
            let known = agents.get(&offer.agent_id.value);
            if let Some(k) = known
                && k.attributes == attributes
                && k.view.numa_aware
                && k.view.hostname == offer.hostname
            {
                continue;
            }
            let Ok(decoded) = offer_topology(&offer.resources, &offer.attributes) else {
                continue;
            };
            let mut nodes: Vec<NodeView> = decoded
                .spec
                .nodes
                .iter()
                .map(|n| {
                    let mut cpus: Vec<u32> = n
                        .cores
                        .iter()
                        .flat_map(|c| c.cpus.iter().map(|id| id.0))
                        .collect();
                    cpus.sort_unstable();
                    cpus.dedup();
                    let caches = if n.caches.len() >= 2 {
                        n.caches
                            .iter()
                            .map(|c| c.cpus.iter().map(|id| id.0).collect())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    NodeView {
                        id: n.id.0,
                        memory_mb: n.memory_mb,
                        cpus,
                        caches,
                    }
                })
                .collect();
            if !decoded.numa_aware
                && let Some(k) = known
                && !k.view.numa_aware
                && k.attributes == attributes
            {
                // Placeholder ids: keep the most CPUs ever offered.
                let before = k.view.nodes.first().map_or(0, |n| n.cpus.len());
                let now = nodes.first().map_or(0, |n| n.cpus.len());
                if before >= now {
                    nodes.clone_from(&k.view.nodes);
                }
            }
            let view = AgentView {
                id: offer.agent_id.value.clone(),
                hostname: offer.hostname.clone(),
                numa_aware: decoded.numa_aware,
                nodes,
            };
            agents.insert(offer.agent_id.value.clone(), Known { attributes, view });
        }
    }

    /// Forgets agent `id` (Mesos reported it removed).
    pub fn forget(&self, id: &str) {
        super::link::lock(&self.agents).remove(id);
    }

    /// The agents known now, by id.
    pub fn view(&self) -> ClusterView {
        ClusterView {
            agents: super::link::lock(&self.agents)
                .values()
                .map(|k| k.view.clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_placement::sets::CpuSet;
    use retz_placement::topology::TopologySpec;
    use retz_proto::mesos::{AgentId, FrameworkId, OfferId, Resource, value};
    use retz_proto::numa::{FreeResources, agent_flags, parse_agent_flags};

    fn spec() -> TopologySpec {
        retz_placement::synthetic::parse("pack:2 numa:1 core:2 pu:2", 2048).expect("synthetic")
    }

    /// An offer of agent `agent` with `free` CPUs free, by the convention.
    fn offer(agent: &str, spec: &TopologySpec, free: &CpuSet) -> Offer {
        let mut res = FreeResources::whole_machine(spec);
        res.cpus = free.len() as f64;
        res.cpuids = free.clone();
        let flags = agent_flags(spec, &res).expect("flags");
        let parsed = parse_agent_flags(&flags.to_flag_lines()).expect("flags parse");
        Offer {
            id: OfferId {
                value: format!("o-{agent}"),
            },
            framework_id: FrameworkId { value: "f".into() },
            agent_id: AgentId {
                value: agent.into(),
            },
            hostname: format!("{agent}.example"),
            resources: parsed.resources,
            attributes: parsed.attributes,
            ..Default::default()
        }
    }

    #[test]
    fn l3_cache_domains_of_the_offer_reach_the_view() {
        let book = ClusterMap::default();
        let l3 = retz_placement::synthetic::parse("pack:1 numa:1 l3:2 core:2 pu:2", 2048)
            .expect("synthetic");
        book.observe(&[offer("a1", &l3, &CpuSet::new())]);
        let view = book.view();
        let node = &view.agents[0].nodes[0];
        assert_eq!(
            node.caches,
            vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]],
            "{node:?}"
        );
        // One domain per node is no grouping worth drawing.
        let book = ClusterMap::default();
        book.observe(&[offer("a2", &spec(), &CpuSet::new())]);
        assert!(
            book.view().agents[0]
                .nodes
                .iter()
                .all(|n| n.caches.is_empty())
        );
    }

    #[test]
    fn an_agent_keeps_its_whole_layout_whatever_is_free() {
        let book = ClusterMap::default();
        let spec = spec();
        let mut free = CpuSet::new();
        free.insert(retz_placement::sets::CpuId(3));
        book.observe(&[offer("a1", &spec, &free)]);
        let view = book.view();
        assert_eq!(view.agents.len(), 1);
        let a = &view.agents[0];
        assert_eq!((a.id.as_str(), a.hostname.as_str()), ("a1", "a1.example"));
        assert!(a.numa_aware);
        assert_eq!(a.nodes.len(), 2, "{a:?}");
        let all: Vec<u32> = a.nodes.iter().flat_map(|n| n.cpus.clone()).collect();
        assert_eq!(all, (0..8).collect::<Vec<u32>>(), "{a:?}");
        // No more offers (all CPUs granted): the agent stays, whole.
        book.observe(&[]);
        assert_eq!(book.view(), view);
        book.forget("a1");
        assert!(book.view().agents.is_empty());
    }

    #[test]
    fn a_broken_offer_changes_nothing() {
        let book = ClusterMap::default();
        let mut o = offer("a1", &spec(), &CpuSet::from_range(0, 7));
        for a in &mut o.attributes {
            if a.name.starts_with("numa_n") {
                a.text = Some(retz_proto::mesos::value::Text {
                    value: "garbage".into(),
                });
            }
        }
        book.observe(&[o]);
        assert!(book.view().agents.is_empty());
    }

    #[test]
    fn an_agent_without_the_convention_shows_the_most_cpus_it_offered() {
        let plain = |cpus: f64| {
            let mut o = offer("p", &spec(), &CpuSet::new());
            o.attributes.clear();
            o.resources = vec![Resource {
                name: "cpus".into(),
                r#type: value::Type::Scalar as i32,
                scalar: Some(value::Scalar { value: cpus }),
                ..Resource::default()
            }];
            o
        };
        let book = ClusterMap::default();
        book.observe(&[plain(4.0)]);
        book.observe(&[plain(1.0)]);
        let a = &book.view().agents[0];
        assert!(!a.numa_aware);
        assert_eq!(a.nodes.len(), 1);
        assert_eq!(a.nodes[0].cpus, vec![0, 1, 2, 3]);
    }
}
