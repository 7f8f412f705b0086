//! GPU-CPU locality on the DGX-2 export (`4intel64-2p-16gpu-dgx2.xml`: two sockets, one
//! NUMA node each, GPUs 0-7 behind socket 0 and 8-15 behind socket 1; the export is of a
//! process confined to CPUs 0-1 and 24-25). The topology goes through the agent flags and
//! an offer, as a real agent's would, and the packer places GPU jobs on it.

use std::path::PathBuf;
use std::sync::Arc;

use retz_placement::{
    AffinityPolicy, AgentState, Assignment, CpuSet, GpuSet, JobRequest, NodeId, Packer,
    PolicyConfig, Topology,
};
use retz_proto::numa::{FreeResources, agent_flags, offer_topology, parse_agent_flags};
use retz_topology::hwloc::load_xml_file;

fn shared_dir() -> PathBuf {
    match std::env::var_os("RETZ_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// The DGX-2 as its agent offers it with `free_cpus` and `free_gpus` free.
fn dgx2_agent(free_cpus: &str, free_gpus: &str) -> AgentState {
    let loaded =
        load_xml_file(&shared_dir().join("topologies/4intel64-2p-16gpu-dgx2.xml")).unwrap();
    let mut free = FreeResources::whole_machine(&loaded.spec).with_gpus(&loaded.spec, 16);
    free.cpuids = free_cpus.parse().unwrap();
    free.cpus = free.cpuids.len() as f64;
    free.gpuids = free_gpus.parse().unwrap();
    free.gpus = free.gpuids.len() as f64;
    let flags = agent_flags(&loaded.spec, &free).unwrap();
    let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
    let offer = offer_topology(&parsed.resources, &parsed.attributes).unwrap();
    assert!(offer.numa_aware);
    let topo = Arc::new(Topology::new(offer.spec).unwrap());
    let mem = topo.nodes().iter().map(|n| n.memory_mb()).collect();
    AgentState::new("dgx", "dgx", topo, offer.free.cpuids, mem, 0, true)
        .unwrap()
        .with_gpu_ids(offer.free.gpuids)
        .unwrap()
}

fn gpu_job(id: u64, cpus: u32, gpus: u32) -> JobRequest {
    let mut j = JobRequest::new(id, cpus, 1024).with_policy(AffinityPolicy::NumaPrefer);
    j.gpus = gpus;
    j
}

fn place(agent: &AgentState, jobs: &[JobRequest]) -> Vec<Assignment> {
    let plan = Packer::new(PolicyConfig::default()).plan(std::slice::from_ref(agent), jobs, 0);
    assert!(plan.pending.is_empty(), "{:?}", plan.pending);
    plan.assignments
}

/// The sockets of the assignment's CPUs and of its GPUs.
fn sockets(agent: &AgentState, a: &Assignment) -> (Vec<u32>, Vec<u32>) {
    let topo = agent.topology();
    let mut cpu: Vec<u32> = a
        .cpu_nodes
        .iter()
        .map(|n| topo.node(n).unwrap().package())
        .collect();
    let mut gpu: Vec<u32> = a
        .gpu_ids
        .iter()
        .flat_map(|g| topo.gpu(g).unwrap().nodes.iter())
        .map(|n| topo.node(n).unwrap().package())
        .collect();
    cpu.dedup();
    gpu.sort_unstable();
    gpu.dedup();
    (cpu, gpu)
}

#[test]
fn a_gpu_job_gets_cpus_and_gpus_on_one_socket() {
    let agent = dgx2_agent("0-1,24-25", "0-15");
    assert!(agent.gpus_named());
    let a = &place(&agent, &[gpu_job(1, 2, 1)])[0];
    assert_eq!(a.gpu_ids.len(), 1);
    let (cpu, gpu) = sockets(&agent, a);
    assert_eq!(cpu.len(), 1, "{}", a.cpus);
    assert_eq!(cpu, gpu, "CPUs {} GPUs {}", a.cpus, a.gpu_ids);
}

#[test]
fn cpus_follow_the_free_gpus_to_their_socket() {
    // Socket 0's GPUs are all taken: the CPUs go to socket 1, where GPUs are free.
    let agent = dgx2_agent("0-1,24-25", "8-15");
    let a = &place(&agent, &[gpu_job(1, 1, 2)])[0];
    assert!(
        a.cpus.is_subset(&"24-25".parse::<CpuSet>().unwrap()),
        "{}",
        a.cpus
    );
    assert_eq!(a.gpu_ids, "8-9".parse::<GpuSet>().unwrap());
    assert_eq!(a.cpu_nodes.iter().collect::<Vec<_>>(), [NodeId(1)]);
}

#[test]
fn gpus_follow_the_free_cpus_to_their_socket() {
    // Socket 0's CPUs are taken: the job runs on socket 1 and gets socket 1's GPUs.
    let agent = dgx2_agent("24-25", "0-15");
    let a = &place(&agent, &[gpu_job(1, 2, 3)])[0];
    assert_eq!(a.cpus.to_string(), "24-25");
    assert_eq!(a.gpu_ids.to_string(), "8-10");
}

#[test]
fn the_nearest_gpus_when_none_is_local() {
    // Only socket 1 has free CPUs and only socket 0 has free GPUs: it still runs.
    let agent = dgx2_agent("24-25", "0-1");
    let a = &place(&agent, &[gpu_job(1, 1, 1)])[0];
    assert_eq!(a.gpu_ids.to_string(), "0");
    assert!(a.cpus.is_subset(&"24-25".parse::<CpuSet>().unwrap()));
}

#[test]
fn several_gpu_jobs_get_distinct_gpus_on_their_cpus_socket() {
    let agent = dgx2_agent("0-1,24-25", "0-15");
    let jobs: Vec<JobRequest> = (1..=4).map(|i| gpu_job(i, 1, 1)).collect();
    let placed = place(&agent, &jobs);
    assert_eq!(placed.len(), 4);
    let mut all = GpuSet::new();
    for a in &placed {
        assert!(all.is_disjoint(&a.gpu_ids), "{} twice", a.gpu_ids);
        all.union_with(&a.gpu_ids);
        let (cpu, gpu) = sockets(&agent, a);
        assert_eq!(
            cpu, gpu,
            "job {}: CPUs {} GPUs {}",
            a.job_id, a.cpus, a.gpu_ids
        );
    }
    assert_eq!(all.len(), 4);
}
