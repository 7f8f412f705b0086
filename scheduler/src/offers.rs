//! Mesos offers → placement agent states, and placement assignments → the resources of a
//! `TaskInfo`, by the Retz NUMA resource convention (`retz_proto::numa`).
//!
//! An offer carries only the agent's total free `mem`; the convention has each node's size,
//! so the free memory is split over the nodes in proportion to their size (a node never gets
//! more than it has). Task resources copy the `role`, `reservation(s)` and `allocation_info`
//! of the offered resource they are cut from, as the master's `contains` check requires;
//! granted ports are split over the offered `ports` entries that hold them, so a port
//! offered under one role is asked for under that role.

use std::sync::Arc;

use retz_placement::{AgentState, Assignment, Topology, TopologyError, TopologySpec};
use retz_proto::mesos::{Attribute, Offer, Resource, value};
use retz_proto::numa::{cpuset_to_ranges, offer_free_on, offer_topology};

use crate::planner::ports::{PORTS, PortPool, merged_ranges};

/// Why an offer cannot be turned into an agent state.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// The NUMA resources or attributes are malformed.
    #[error("offer {offer} from agent {agent}: {source}")]
    Convention {
        /// The offer id.
        offer: String,
        /// The agent id.
        agent: String,
        /// What is wrong.
        source: retz_proto::numa::NumaError,
    },
    /// The decoded layout is not a valid topology.
    #[error("offer {offer} from agent {agent}: {message}")]
    Topology {
        /// The offer id.
        offer: String,
        /// The agent id.
        agent: String,
        /// What is wrong.
        message: String,
    },
}

/// The placement engine's view of one offer.
pub fn agent_state(offer: &Offer) -> Result<AgentState, OfferError> {
    agent_state_shared(offer, &mut TopologyCache::default())
}

/// The topologies built for the offers of one batch, so agents of the same layout share
/// one (building a topology is most of an offer's conversion; a cluster has few layouts).
/// A NUMA-aware offer whose attributes equal an earlier one's is not decoded again: the
/// layout is a function of the attributes alone, so it takes that offer's topology and
/// only its free resources are read ([`retz_proto::numa::offer_free_on`]).
/// Holds at most [`TopologyCache::MAX`] layouts; others are built each time.
#[derive(Debug, Default)]
pub struct TopologyCache {
    built: Vec<Arc<Topology>>,
    /// The attributes of NUMA-aware offers and the topology they gave.
    by_attributes: Vec<(Vec<Attribute>, Arc<Topology>)>,
}

impl TopologyCache {
    /// How many distinct layouts are kept.
    pub const MAX: usize = 64;

    fn get(&mut self, spec: TopologySpec) -> Result<Arc<Topology>, TopologyError> {
        if let Some(t) = self.built.iter().find(|t| *t.spec() == spec) {
            return Ok(Arc::clone(t));
        }
        let t = Arc::new(Topology::new(spec)?);
        if self.built.len() < Self::MAX {
            self.built.push(Arc::clone(&t));
        }
        Ok(t)
    }

    fn by_attributes(&self, attributes: &[Attribute]) -> Option<&Arc<Topology>> {
        self.by_attributes
            .iter()
            .find(|(a, _)| a.as_slice() == attributes)
            .map(|(_, t)| t)
    }

    fn remember(&mut self, attributes: &[Attribute], topology: &Arc<Topology>) {
        if self.by_attributes.len() < Self::MAX {
            self.by_attributes
                .push((attributes.to_vec(), Arc::clone(topology)));
        }
    }
}

/// As [`agent_state`], with the topology taken from `cache` when an earlier offer had
/// the same layout (the state is the same either way).
pub fn agent_state_shared(
    offer: &Offer,
    cache: &mut TopologyCache,
) -> Result<AgentState, OfferError> {
    let ids = || (offer.id.value.clone(), offer.agent_id.value.clone());
    let convention = |source| {
        let (offer, agent) = ids();
        OfferError::Convention {
            offer,
            agent,
            source,
        }
    };
    let topology_error = |message: String| {
        let (offer, agent) = ids();
        OfferError::Topology {
            offer,
            agent,
            message,
        }
    };
    let (topology, free, numa_aware) = match cache.by_attributes(&offer.attributes) {
        Some(t) => {
            let t = Arc::clone(t);
            let free = offer_free_on(&offer.resources, &t).map_err(convention)?;
            (t, free, true)
        }
        None => {
            let decoded =
                offer_topology(&offer.resources, &offer.attributes).map_err(convention)?;
            let topology = cache
                .get(decoded.spec)
                .map_err(|e| topology_error(e.to_string()))?;
            if decoded.numa_aware {
                cache.remember(&offer.attributes, &topology);
            }
            (topology, decoded.free, decoded.numa_aware)
        }
    };
    let free_mem = split_memory(&topology, free.mem_mb);
    let gpus = free.gpus.max(0.0).floor() as u32;
    // An agent that names its GPUs (free `gpuids`, or a layout listing them) has exactly
    // those free; one stating a count only gets placeholder ids.
    let named = !free.gpuids.is_empty() || !topology.gpus().is_empty();
    // Unpinned tasks take `cpus` but no `cpuids`, so while they run the offer names more
    // CPU ids than it has CPUs: the `cpus` scalar is what may be taken, and no more ids
    // than that are planned on.
    let scalar = free.cpus.max(0.0).floor() as usize;
    let cpuids = if free.cpuids.len() > scalar {
        free.cpuids.iter().take(scalar).collect()
    } else {
        free.cpuids
    };
    let state = AgentState::new(
        offer.agent_id.value.clone(),
        offer.hostname.clone(),
        topology,
        cpuids,
        free_mem,
        gpus,
        numa_aware,
    );
    match state {
        Ok(s) if named => s.with_gpu_ids(free.gpuids),
        other => other,
    }
    .map_err(|e| topology_error(e.to_string()))
}

/// Splits `total_mb` of free memory over the nodes in proportion to their size. Nodes of
/// unknown size (0) share what the sized nodes leave, evenly.
fn split_memory(topology: &Topology, total_mb: f64) -> Vec<u64> {
    let total = total_mb.max(0.0).floor() as u64;
    let sizes: Vec<u64> = topology.nodes().iter().map(|n| n.memory_mb()).collect();
    let known: u64 = sizes.iter().sum();
    if sizes.is_empty() {
        return Vec::new();
    }
    if known == 0 {
        let each = total / sizes.len() as u64;
        return vec![each; sizes.len()];
    }
    let scale = (total as f64 / known as f64).min(1.0);
    let mut out: Vec<u64> = sizes
        .iter()
        .map(|&s| (s as f64 * scale).floor() as u64)
        .collect();
    let given: u64 = out.iter().sum();
    let unsized_nodes = sizes.iter().filter(|&&s| s == 0).count() as u64;
    if unsized_nodes > 0 && total > given {
        let each = (total - given) / unsized_nodes;
        for (o, s) in out.iter_mut().zip(&sizes) {
            if *s == 0 {
                *o = each;
            }
        }
    }
    out
}

/// The resources a task placed by `assignment` consumes from `offer`: `cpus`, `mem`, `gpus`
/// when granted with their `gpuids` when the offer names GPUs, — when `pinned` — the exact
/// `cpuids`, so Mesos never offers them twice,
/// and the granted `ports` (taken from the offer's `ports` ranges) as RANGES.
pub fn task_resources(
    offer: &Offer,
    assignment: &Assignment,
    pinned: bool,
    ports: &[u16],
) -> Vec<Resource> {
    let mut out = Vec::new();
    let mut scalar = |name: &str, amount: f64| {
        if amount <= 0.0 {
            return;
        }
        let mut r = template(offer, name);
        r.r#type = value::Type::Scalar as i32;
        r.scalar = Some(value::Scalar { value: amount });
        out.push(r);
    };
    scalar("cpus", f64::from(assignment.granted_cpus));
    scalar("mem", assignment.granted_mem_mb as f64);
    scalar("gpus", f64::from(assignment.granted_gpus));
    if assignment.gpus_named
        && !assignment.gpu_ids.is_empty()
        && offer
            .resources
            .iter()
            .any(|r| r.name == retz_proto::numa::GPUIDS)
    {
        let mut r = template(offer, retz_proto::numa::GPUIDS);
        r.r#type = value::Type::Ranges as i32;
        r.ranges = Some(retz_proto::numa::gpuset_to_ranges(&assignment.gpu_ids));
        out.push(r);
    }
    if pinned && !assignment.cpus.is_empty() {
        let mut r = template(offer, retz_proto::numa::CPUIDS);
        r.r#type = value::Type::Ranges as i32;
        r.ranges = Some(cpuset_to_ranges(&assignment.cpus));
        out.push(r);
    }
    out.extend(port_resources(offer, ports));
    out
}

/// `ports` as `ports` RANGES resources, one per offered `ports` entry holding some of them
/// (with that entry's role and allocation; entries alike are merged). A port no entry
/// holds is not asked for.
pub fn port_resources(offer: &Offer, ports: &[u16]) -> Vec<Resource> {
    let mut left: Vec<u16> = ports.to_vec();
    left.sort_unstable();
    left.dedup();
    let mut out: Vec<(Resource, Vec<u16>)> = Vec::new();
    for offered in offer
        .resources
        .iter()
        .filter(|r| r.name == PORTS && r.r#type == value::Type::Ranges as i32)
    {
        if left.is_empty() {
            break;
        }
        let pool = PortPool::from_resources(std::slice::from_ref(offered));
        let inside = |p: &u16| pool.runs().iter().any(|&(b, e)| (b..=e).contains(p));
        let (mine, rest): (Vec<u16>, Vec<u16>) = left.iter().partition(|p| inside(p));
        left = rest;
        if mine.is_empty() {
            continue;
        }
        let head = Resource {
            name: PORTS.to_string(),
            r#type: value::Type::Ranges as i32,
            role: offered.role.clone(),
            allocation_info: offered.allocation_info.clone(),
            reservation: offered.reservation.clone(),
            reservations: offered.reservations.clone(),
            ..Resource::default()
        };
        match out.iter_mut().find(|(h, _)| *h == head) {
            Some((_, ports)) => ports.extend(mine),
            None => out.push((head, mine)),
        }
    }
    out.into_iter()
        .map(|(mut r, ports)| {
            r.ranges = Some(merged_ranges(&ports));
            r
        })
        .collect()
}

/// A resource named `name` carrying the role and allocation of the offered one.
fn template(offer: &Offer, name: &str) -> Resource {
    let offered = offer.resources.iter().find(|r| r.name == name);
    Resource {
        name: name.to_string(),
        role: offered.and_then(|r| r.role.clone()),
        allocation_info: offered.and_then(|r| r.allocation_info.clone()),
        reservation: offered.and_then(|r| r.reservation.clone()),
        reservations: offered.map(|r| r.reservations.clone()).unwrap_or_default(),
        ..Resource::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::resource::AllocationInfo;

    fn ports(role: &str, runs: &[(u64, u64)]) -> Resource {
        Resource {
            role: Some(role.into()),
            allocation_info: Some(AllocationInfo {
                role: Some("retz".into()),
            }),
            ..crate::planner::ports::ports_resource(runs)
        }
    }

    fn runs(r: &Resource) -> Vec<(u64, u64)> {
        r.ranges
            .as_ref()
            .unwrap()
            .range
            .iter()
            .map(|r| (r.begin, r.end))
            .collect()
    }

    #[test]
    fn ports_are_asked_for_under_the_role_they_were_offered_with() {
        let offer = Offer {
            resources: vec![
                ports("*", &[(31000, 31001), (31010, 31010)]),
                ports("retz", &[(32000, 32005)]),
                ports("*", &[(31002, 31003)]),
            ],
            ..Offer::default()
        };
        let rs = port_resources(&offer, &[32001, 31000, 31001, 31002, 31010, 32000]);
        assert_eq!(rs.len(), 2, "{rs:#?}");
        assert_eq!(rs[0].role.as_deref(), Some("*"));
        assert_eq!(runs(&rs[0]), vec![(31000, 31002), (31010, 31010)]);
        assert_eq!(rs[1].role.as_deref(), Some("retz"));
        assert_eq!(runs(&rs[1]), vec![(32000, 32001)]);
        assert!(
            rs.iter()
                .all(|r| r.allocation_info.as_ref().unwrap().role.as_deref() == Some("retz"))
        );
        assert!(port_resources(&offer, &[]).is_empty());
        assert!(
            port_resources(&offer, &[40000]).is_empty(),
            "ports the offer does not hold are never asked for"
        );
    }

    #[test]
    fn no_more_cpu_ids_are_free_than_the_offer_has_cpus() {
        use retz_proto::numa::{FreeResources, agent_flags, parse_agent_flags};
        let spec = retz_placement::synthetic::parse("pack:1 numa:1 core:3 pu:1", 1024).unwrap();
        let offer = |cpus: f64| {
            let mut res = FreeResources::whole_machine(&spec);
            // Two unpinned tasks run: they took `cpus`, not `cpuids`.
            res.cpus = cpus;
            let flags = agent_flags(&spec, &res).unwrap();
            let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
            Offer {
                resources: parsed.resources,
                attributes: parsed.attributes,
                ..Offer::default()
            }
        };
        assert_eq!(agent_state(&offer(1.0)).unwrap().free_cpus().len(), 1);
        assert_eq!(agent_state(&offer(0.0)).unwrap().free_cpus().len(), 0);
        assert_eq!(agent_state(&offer(3.0)).unwrap().free_cpus().len(), 3);
    }
}
