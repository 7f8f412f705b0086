//! Which GPU device ids a job gets, and how close free GPUs are to a set of NUMA nodes.
//!
//! Owns the GPU locality rules used by the planner, the baselines and the agent
//! bookkeeping:
//! - a GPU is *node-local* to a job when one of the nodes it is attached to
//!   ([`GpuSpec::nodes`]) holds some of the job's CPUs, *socket-local* when one of them
//!   is in the package (socket) of one of the job's CPU nodes, else *remote*; a GPU whose
//!   locality is unknown (not in the topology, or attached to no node: agents that
//!   advertise counts or ids only) is treated as node-local, so agents without locality
//!   information are placed exactly as before;
//! - [`choose`] picks the `want` free GPUs closest to the job's CPU nodes (node-local,
//!   then socket-local, then by SLIT distance), lowest ids first among equals;
//! - [`locality_cost`] is the cost-model term for a candidate set of CPU nodes: the mean
//!   rank (0 node-local, 1 socket-local, 2 remote) of the GPUs [`choose`] would give,
//!   times [`GPU_LOCALITY_WEIGHT`], large enough that a placement whose GPUs are on the
//!   CPUs' node (or socket) always wins when one fits;
//! - [`default_ids`]: the ids of `n` GPUs of an agent that states a count only: the `n`
//!   lowest GPUs of its topology when it lists that many, else `0..n`.
//!
//! Invariant: [`choose`] returns exactly `want` ids, all from `free`, or `None`.

use crate::sets::{GpuId, GpuSet, NodeSet};
use crate::topology::Topology;

/// Weight of the GPU locality term: a full rank step (node-local → socket-local) costs
/// more than every other term of a single-node placement together.
pub const GPU_LOCALITY_WEIGHT: f64 = 8.0;

/// How close one GPU is to a set of CPU nodes: (rank, distance), lower is closer.
/// Rank 0: attached to one of the nodes (or locality unknown); 1: same package as one of
/// them; 2: elsewhere. The distance is the smallest SLIT distance from the GPU's nodes to
/// the CPU nodes (0 when unknown).
pub fn closeness(topo: &Topology, gpu: GpuId, cpu_nodes: &NodeSet) -> (u32, u32) {
    let Some(spec) = topo.gpu(gpu) else {
        return (0, 0);
    };
    if spec.nodes.is_empty() || cpu_nodes.is_empty() {
        return (0, 0);
    }
    if !spec.nodes.is_disjoint(cpu_nodes) {
        return (0, 0);
    }
    let package = |n| topo.node(n).map(|x| x.package());
    let same_package = spec.nodes.iter().any(|g| {
        let pg = package(g);
        pg.is_some() && cpu_nodes.iter().any(|c| package(c) == pg)
    });
    let distance = spec
        .nodes
        .iter()
        .flat_map(|g| cpu_nodes.iter().map(move |c| topo.distance(g, c)))
        .min()
        .unwrap_or(0);
    (if same_package { 1 } else { 2 }, distance)
}

/// The `want` GPUs of `free` closest to `cpu_nodes` (see the module docs), or `None` when
/// fewer are free.
pub fn choose(topo: &Topology, free: &GpuSet, want: u32, cpu_nodes: &NodeSet) -> Option<GpuSet> {
    if (free.len() as u64) < u64::from(want) {
        return None;
    }
    let mut ranked: Vec<((u32, u32), GpuId)> = free
        .iter()
        .map(|g| (closeness(topo, g, cpu_nodes), g))
        .collect();
    ranked.sort_unstable();
    Some(
        ranked
            .into_iter()
            .take(want as usize)
            .map(|r| r.1)
            .collect(),
    )
}

/// The locality cost of giving a job `want` GPUs of `free` when its CPUs are on
/// `cpu_nodes`: [`GPU_LOCALITY_WEIGHT`] times the mean rank of the GPUs [`choose`] picks
/// (0 when `want` is 0, or when fewer than `want` are free: feasibility is checked
/// elsewhere).
pub fn locality_cost(topo: &Topology, free: &GpuSet, want: u32, cpu_nodes: &NodeSet) -> f64 {
    if want == 0 || topo.gpus().is_empty() {
        return 0.0;
    }
    let Some(chosen) = choose(topo, free, want, cpu_nodes) else {
        return 0.0;
    };
    let ranks: u32 = chosen.iter().map(|g| closeness(topo, g, cpu_nodes).0).sum();
    GPU_LOCALITY_WEIGHT * f64::from(ranks) / f64::from(want)
}

/// Whether every GPU of `gpus` is node-local to `cpu_nodes` (unknown locality counts as
/// local).
pub fn all_node_local(topo: &Topology, gpus: &GpuSet, cpu_nodes: &NodeSet) -> bool {
    gpus.iter().all(|g| closeness(topo, g, cpu_nodes).0 == 0)
}

/// Whether every GPU of `gpus` has a known locality in `topo` (it is listed there with at
/// least one node).
pub fn locality_known(topo: &Topology, gpus: &GpuSet) -> bool {
    gpus.iter()
        .all(|g| topo.gpu(g).is_some_and(|s| !s.nodes.is_empty()))
}

/// The ids of `n` GPUs on an agent stating a count only: the `n` lowest GPUs of `topo`
/// when it lists at least `n`, else `0..n`.
pub fn default_ids(topo: &Topology, n: u32) -> GpuSet {
    if n == 0 {
        return GpuSet::new();
    }
    if topo.gpu_ids().len() as u64 >= u64::from(n) {
        return topo.gpu_ids().iter().take(n as usize).collect();
    }
    GpuSet::from_range(0, n.min(crate::sets::MAX_SET_ID + 1) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{GpuSpec, TopologySpec};

    /// 2 packages × 2 nodes × 2 cores; GPU 0,1 on node 0, GPU 2 on node 1 (package 0),
    /// GPU 3 on node 3 (package 1), GPU 4 of unknown locality.
    fn topo() -> Topology {
        let base = Topology::from_synthetic("pack:2 numa:2 core:2 pu:1", 1000).unwrap();
        let mut spec: TopologySpec = base.spec().clone();
        let g = |id, nodes: &str| GpuSpec {
            id: GpuId(id),
            nodes: nodes.parse().unwrap(),
        };
        spec.gpus = vec![g(0, "0"), g(1, "0"), g(2, "1"), g(3, "3"), g(4, "")];
        Topology::new(spec).unwrap()
    }

    fn nodes(s: &str) -> NodeSet {
        s.parse().unwrap()
    }

    #[test]
    fn closeness_ranks_node_socket_remote() {
        let t = topo();
        assert_eq!(closeness(&t, GpuId(0), &nodes("0")), (0, 0));
        assert_eq!(closeness(&t, GpuId(2), &nodes("0")).0, 1);
        assert_eq!(closeness(&t, GpuId(3), &nodes("0")).0, 2);
        assert_eq!(closeness(&t, GpuId(4), &nodes("0")), (0, 0), "unknown");
        assert_eq!(closeness(&t, GpuId(9), &nodes("0")), (0, 0), "not listed");
        assert_eq!(closeness(&t, GpuId(3), &nodes("2-3")).0, 0);
    }

    #[test]
    fn choose_prefers_local_then_socket_then_lowest() {
        let t = topo();
        let all: GpuSet = "0-4".parse().unwrap();
        assert_eq!(choose(&t, &all, 2, &nodes("0")).unwrap().to_string(), "0-1");
        assert_eq!(choose(&t, &all, 1, &nodes("3")).unwrap().to_string(), "3");
        assert_eq!(choose(&t, &all, 1, &nodes("1")).unwrap().to_string(), "2");
        let some: GpuSet = "2-3".parse().unwrap();
        assert_eq!(
            choose(&t, &some, 1, &nodes("0")).unwrap().to_string(),
            "2",
            "socket-local before remote"
        );
        assert!(choose(&t, &some, 3, &nodes("0")).is_none());
        assert_eq!(choose(&t, &some, 0, &nodes("0")).unwrap().len(), 0);
    }

    #[test]
    fn locality_cost_orders_nodes() {
        let t = topo();
        let free: GpuSet = "0-3".parse().unwrap();
        let on = |n: &str| locality_cost(&t, &free, 1, &nodes(n));
        assert_eq!(on("0"), 0.0);
        assert_eq!(on("3"), 0.0);
        assert_eq!(on("2"), GPU_LOCALITY_WEIGHT);
        let only3: GpuSet = "3".parse().unwrap();
        assert_eq!(
            locality_cost(&t, &only3, 1, &nodes("0")),
            2.0 * GPU_LOCALITY_WEIGHT
        );
        assert!(all_node_local(&t, &"0-1".parse().unwrap(), &nodes("0")));
        assert!(!all_node_local(&t, &"0,3".parse().unwrap(), &nodes("0")));
        assert!(locality_known(&t, &"0-3".parse().unwrap()));
        assert!(!locality_known(&t, &"4".parse().unwrap()));
    }

    #[test]
    fn default_ids_use_the_topology_or_count() {
        let t = topo();
        assert_eq!(default_ids(&t, 2).to_string(), "0-1");
        assert_eq!(default_ids(&t, 7).to_string(), "0-6");
        let plain = Topology::from_synthetic("core:2 pu:1", 10).unwrap();
        assert_eq!(default_ids(&plain, 3).to_string(), "0-2");
        assert!(default_ids(&plain, 0).is_empty());
    }
}
