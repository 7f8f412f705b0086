//! The discrete-event engine: one policy, one cluster, one workload, on virtual time.
//!
//! Time is whole seconds (`u64`), the clock of the placement engine. Events are job
//! arrivals (at `submit_s`) and completions (at `start + runtime_s`). A *batch* is every
//! event at one instant; after each batch the engine runs one planning cycle:
//!
//! 1. completions with `end <= t` give their CPUs, memory and GPUs back (in `(end, job)`
//!    order);
//! 2. arrivals with `submit <= t` join the queue (in `(submit, id)` order); a job that no
//!    idle host could ever hold under this policy is reported unplaced at once, with the
//!    packer's own reason (see [`Feasibility`]);
//! 3. if the queue is not empty, `Packer::plan(all agents, queue, t)` — the same call the
//!    server makes — and every assignment starts at `t` and holds exactly its CPU ids until
//!    its completion is processed.
//!
//! With [`SimOptions::cycle_interval_s`] = `S > 0` the server plans on a timer instead:
//! batches are the events up to the next multiple of `S`, and cycles run only at those
//! ticks (a job still runs for exactly its runtime; its resources come back at the first
//! tick at or after its end). Every agent is passed to every cycle, in cluster order, so
//! the packer's "never fits" judgement sees the whole cluster.
//!
//! When no event is left and jobs are still queued (e.g. the node-blind baseline chose a
//! host that has no NUMA room and will never have more), one last cycle is planned to get
//! each job's reason, and they are reported unplaced with it.
//!
//! Determinism: no hash map is iterated, the queue and the event heap have total orders,
//! the packer is deterministic, so the same inputs give the same [`SimResult`]. The one
//! exception is [`SimResult::cycle_latency_ns`], wall-clock durations of the `plan` calls,
//! filled only with [`SimOptions::measure_latency`] and never written to the
//! deterministic outputs unless asked.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use retz_placement::{
    AgentState, Assignment, CpuSet, JobRequest, NodeSet, Packer, PendingReason, PolicyConfig,
    Topology,
};

use crate::cluster::Cluster;
use crate::fairshare::{FairShare, Fairness, Shares};
use crate::model::{RuntimeModel, placement_features};
use crate::policy::NamedPolicy;
use crate::workload::{Job, Workload};

/// How the engine runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// 0: a cycle after every batch of events at one instant. `S > 0`: cycles only at
    /// multiples of `S` seconds (a timer-driven server).
    pub cycle_interval_s: u64,
    /// Measure each `plan` call with the real clock (non-deterministic).
    pub measure_latency: bool,
    /// Plan over at most this many queued jobs per cycle — the most urgent by (priority,
    /// arrival), as `retz-server` does with `planner.window` — or the whole queue (`None`).
    pub window: Option<usize>,
    /// Per-user weights of the multi-user order ([`crate::fairshare`]).
    pub shares: Shares,
}

/// The `w` most urgent jobs of `queue` (arrival order) by (priority, arrival), in that
/// order: the window `retz-server` hands the packer.
fn front(queue: &[JobRequest], w: usize) -> Vec<JobRequest> {
    let first = queue.first().map_or(0, |j| j.priority);
    if queue.iter().all(|j| j.priority == first) {
        return queue[..w.min(queue.len())].to_vec();
    }
    let mut idx: Vec<usize> = (0..queue.len()).collect();
    let key = |&i: &usize| (queue[i].priority, i);
    if w < idx.len() {
        idx.select_nth_unstable_by_key(w, key);
        idx.truncate(w);
    }
    idx.sort_unstable_by_key(key);
    idx.into_iter().map(|i| queue[i].clone()).collect()
}

/// Where and how a job ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Start time, seconds.
    pub start_s: u64,
    /// Index of the host in the cluster.
    pub host: u32,
    /// The exact CPU ids.
    pub cpuset: CpuSet,
    /// The NUMA nodes of those CPUs.
    pub cpu_nodes: NodeSet,
    /// Memory granted, MB.
    pub mem_mb: u64,
    /// Whether the job was pinned.
    pub pinned: bool,
    /// Whether its grant (CPUs and memory) fits in one NUMA node of its host.
    pub numa_fit: bool,
    /// Whether its CPUs and memory are all on one NUMA node (pinned there), or the host
    /// has only one NUMA node.
    pub numa_local: bool,
    /// Whether its CPUs fit in one last-level cache domain of a host whose nodes have
    /// several (always false on hosts with one L3 per node).
    pub l3_fit: bool,
    /// Whether its CPUs are all in one last-level cache domain (pinned there).
    pub l3_local: bool,
    /// How long it ran, s: the trace runtime, or with a runtime model the trace runtime
    /// scaled to this placement ([`crate::model`]).
    pub runtime_s: u64,
    /// Whether it was granted GPUs.
    pub gpu_job: bool,
    /// Whether every GPU it got is attached to a NUMA node holding some of its CPUs (GPUs
    /// of unknown locality never count as local).
    pub gpu_local: bool,
}

/// What happened to one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Index of the job in the workload.
    pub job: u32,
    /// Placement, if it ran.
    pub placed: Option<Placed>,
    /// Why not, if it did not.
    pub unplaced: Option<String>,
}

/// The cluster state after a batch: CPUs held, and how fragmented the free CPUs are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Virtual time, seconds; the state holds until the next sample.
    pub t: u64,
    /// CPUs held by jobs.
    pub held_cpus: u64,
    /// Free CPUs.
    pub free_cpus: u64,
    /// Free CPUs on NUMA nodes that are partly used (stranded in fragments).
    pub free_on_partial: u64,
    /// NUMA nodes partly used (some CPUs held, some free).
    pub partial_nodes: u64,
    /// Jobs waiting in the queue.
    pub queued: u64,
}

/// The result of one simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct SimResult {
    /// The policy label.
    pub policy: String,
    /// One per job, in workload order.
    pub outcomes: Vec<Outcome>,
    /// Cluster state after every batch, in time order.
    pub samples: Vec<Sample>,
    /// Planning cycles run.
    pub cycles: u64,
    /// Longest queue seen.
    pub max_queue: u64,
    /// Wall-clock duration of every `plan` call, ns (only with `measure_latency`).
    pub cycle_latency_ns: Option<Vec<u64>>,
    /// Whether runtimes came from a runtime model.
    pub modelled: bool,
    /// Fairness figures, when the workload has more than one user.
    pub fairness: Option<Fairness>,
}

/// The simulation stopped because the placement engine produced an assignment that does
/// not fit the state it was given (a bug in the packer, reported with the details).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "policy {policy}: at t={t}s the packer assigned job {job_id} {what}; this is a placement-engine bug, please report it with the inputs"
)]
pub struct SimError {
    /// The policy.
    pub policy: String,
    /// Virtual time.
    pub t: u64,
    /// The job.
    pub job_id: u64,
    /// What was wrong.
    pub what: String,
}

/// Decides up front whether a job could ever be placed by a policy: the job alone is
/// planned by a fresh packer of the same configuration on one idle host of each distinct
/// shape of the cluster. If no shape takes it, it never fits; the reason is the packer's
/// own, from the shape with the most CPUs. Memoised per request shape.
pub struct Feasibility {
    config: PolicyConfig,
    probes: Vec<AgentState>,
    memo: BTreeMap<ShapeKey, Option<String>>,
}

type ShapeKey = (u32, Option<u32>, u64, Option<u64>, u32, u8, Option<u32>, u8);

fn shape_key(j: &JobRequest) -> ShapeKey {
    (
        j.cpus.min,
        j.cpus.max,
        j.mem_mb.min,
        j.mem_mb.max,
        j.gpus,
        j.policy as u8,
        j.numanodes,
        j.smt as u8,
    )
}

impl Feasibility {
    /// Probes for `cluster` under `config`.
    pub fn new(cluster: &Cluster, config: &PolicyConfig) -> Feasibility {
        let agents = cluster.idle_agents();
        let mut seen: BTreeMap<(usize, bool, u32), usize> = BTreeMap::new();
        let mut probes: Vec<AgentState> = Vec::new();
        for (a, h) in agents.into_iter().zip(&cluster.hosts) {
            let key = (Arc::as_ptr(&h.topology) as usize, h.numa_aware, h.gpus);
            if let std::collections::btree_map::Entry::Vacant(e) = seen.entry(key) {
                e.insert(probes.len());
                probes.push(a);
            }
        }
        // Largest first, so the reason quoted is about the biggest host.
        probes.sort_by_key(|a| {
            (
                Reverse(a.topology().cpus().len()),
                Reverse(a.topology().total_memory_mb()),
                a.agent_id().to_string(),
            )
        });
        Feasibility {
            config: config.clone(),
            probes,
            memo: BTreeMap::new(),
        }
    }

    /// `None` if some idle host could hold the job, else why not.
    pub fn never_fits(&mut self, job: &JobRequest) -> Option<String> {
        let key = shape_key(job);
        if let Some(r) = self.memo.get(&key) {
            return r.clone();
        }
        let mut probe_job = job.clone();
        probe_job.job_id = 0;
        probe_job.submitted_at = 0;
        probe_job.priority = 0;
        let mut first_reason: Option<PendingReason> = None;
        let mut fits = false;
        for a in &self.probes {
            let plan = Packer::new(self.config.clone()).plan(
                std::slice::from_ref(a),
                std::slice::from_ref(&probe_job),
                0,
            );
            if !plan.assignments.is_empty() {
                fits = true;
                break;
            }
            if first_reason.is_none() {
                first_reason = plan.pending.into_iter().next().map(|p| p.reason);
            }
        }
        let r = if fits {
            None
        } else {
            Some(match first_reason {
                Some(PendingReason::NeverFits { message }) => message,
                Some(r) => format!("no idle host can take it: {r}"),
                None => "no idle host can take it".to_string(),
            })
        };
        self.memo.insert(key, r.clone());
        r
    }
}

/// Per-host bookkeeping for the fragmentation figures.
struct HostNodes {
    topology: Arc<Topology>,
    /// Free CPUs per node position.
    free: Vec<u32>,
    /// Usable CPUs per node position.
    total: Vec<u32>,
}

struct Frag {
    hosts: Vec<HostNodes>,
    free_cpus: u64,
    free_on_partial: u64,
    partial_nodes: u64,
    capacity: u64,
}

impl Frag {
    fn new(cluster: &Cluster) -> Frag {
        let hosts: Vec<HostNodes> = cluster
            .hosts
            .iter()
            .map(|h| {
                let total: Vec<u32> = h
                    .topology
                    .nodes()
                    .iter()
                    .map(|n| n.cpus().len() as u32)
                    .collect();
                HostNodes {
                    topology: h.topology.clone(),
                    free: total.clone(),
                    total,
                }
            })
            .collect();
        let capacity = cluster.total_cpus();
        Frag {
            hosts,
            free_cpus: capacity,
            free_on_partial: 0,
            partial_nodes: 0,
            capacity,
        }
    }

    fn contribution(free: u32, total: u32) -> (u64, u64) {
        if free > 0 && free < total {
            (u64::from(free), 1)
        } else {
            (0, 0)
        }
    }

    /// Applies `delta` (−1 take, +1 give back) for every CPU of `cpus` on host `h`.
    fn apply(&mut self, h: usize, cpus: &CpuSet, take: bool) {
        let host = &mut self.hosts[h];
        let mut per_node: BTreeMap<usize, u32> = BTreeMap::new();
        for c in cpus.iter() {
            if let Some(core) = host.topology.core_of(c) {
                *per_node
                    .entry(host.topology.node_index_of_core(core))
                    .or_default() += 1;
            }
        }
        for (i, k) in per_node {
            let (fp, pn) = Frag::contribution(host.free[i], host.total[i]);
            self.free_on_partial -= fp;
            self.partial_nodes -= pn;
            if take {
                host.free[i] = host.free[i].saturating_sub(k);
                self.free_cpus = self.free_cpus.saturating_sub(u64::from(k));
            } else {
                host.free[i] = (host.free[i] + k).min(host.total[i]);
                self.free_cpus += u64::from(k);
            }
            let (fp, pn) = Frag::contribution(host.free[i], host.total[i]);
            self.free_on_partial += fp;
            self.partial_nodes += pn;
        }
    }

    fn sample(&self, t: u64, queued: usize) -> Sample {
        Sample {
            t,
            held_cpus: self.capacity - self.free_cpus,
            free_cpus: self.free_cpus,
            free_on_partial: self.free_on_partial,
            partial_nodes: self.partial_nodes,
            queued: queued as u64,
        }
    }
}

fn numa_figures(topo: &Topology, numa_aware: bool, a: &Assignment) -> (bool, bool) {
    let fit = topo.nodes().iter().any(|n| {
        n.cpus().len() as u64 >= u64::from(a.granted_cpus) && n.memory_mb() >= a.granted_mem_mb
    });
    let one_node_host = topo.num_nodes() == 1 && numa_aware;
    let local = one_node_host || (a.pinned && a.cpu_nodes.len() == 1 && a.nodes.len() <= 1);
    (fit, local)
}

/// (fits one L3 domain of a split-cache host, got one): see [`Placed::l3_fit`].
fn l3_figures(topo: &Topology, a: &Assignment) -> (bool, bool) {
    if !topo.has_split_caches() {
        return (false, false);
    }
    let fit = topo
        .caches()
        .iter()
        .any(|c| c.cpus().len() as u64 >= u64::from(a.granted_cpus));
    let mut domains = a.cpus.iter().map(|cpu| topo.cache_of(cpu));
    let first = domains.next().flatten();
    let local = a.pinned && first.is_some() && domains.all(|d| d == first);
    (fit, local)
}

fn permanent(r: &PendingReason) -> bool {
    matches!(
        r,
        PendingReason::NeverFits { .. }
            | PendingReason::InvalidRequest { .. }
            | PendingReason::NoNumaLayout { .. }
            | PendingReason::DuplicateJobId
            | PendingReason::NoAgents
    )
}

/// Runs one policy over the workload on the cluster.
pub fn simulate(
    cluster: &Cluster,
    workload: &Workload,
    policy: &NamedPolicy,
    opts: &SimOptions,
) -> Result<SimResult, SimError> {
    simulate_model(cluster, workload, policy, opts, None)
}

/// [`simulate`], with each job's runtime scaled by `model` to the placement it gets.
pub fn simulate_model(
    cluster: &Cluster,
    workload: &Workload,
    policy: &NamedPolicy,
    opts: &SimOptions,
    model: Option<&RuntimeModel>,
) -> Result<SimResult, SimError> {
    let jobs: &[Job] = &workload.jobs;
    let mut agents: Vec<AgentState> = cluster.idle_agents();
    let host_of: BTreeMap<&str, u32> = cluster
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.agent_id.as_str(), i as u32))
        .collect();
    let index_of: HashMap<u64, u32> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.id, i as u32))
        .collect();
    let mut feasibility = Feasibility::new(cluster, &policy.config);
    let mut packer = Packer::new(policy.config.clone());
    let mut frag = Frag::new(cluster);
    let mut outcomes: Vec<Outcome> = (0..jobs.len())
        .map(|i| Outcome {
            job: i as u32,
            placed: None,
            unplaced: None,
        })
        .collect();
    let mut queue: Vec<JobRequest> = Vec::new();
    let mut running: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let mut held: HashMap<u32, Assignment> = HashMap::new();
    let mut samples = Vec::new();
    let mut latencies = opts.measure_latency.then(Vec::new);
    let mut cycles = 0u64;
    let mut max_queue = 0u64;
    // More than one user: users take turns by weighted DRF (crate::fairshare).
    let mut fair = (crate::fairshare::users(jobs).len() > 1).then(|| {
        let mem = cluster
            .hosts
            .iter()
            .map(|h| h.topology.total_memory_mb())
            .sum();
        FairShare::new(jobs, &opts.shares, cluster.total_cpus(), mem)
    });
    let mut next_arrival = 0usize;
    let interval = opts.cycle_interval_s;
    let tick = |t: u64| -> u64 {
        if interval == 0 {
            t
        } else {
            t.div_ceil(interval).saturating_mul(interval)
        }
    };
    let bug = |t: u64, job_id: u64, what: String| SimError {
        policy: policy.name.clone(),
        t,
        job_id,
        what,
    };

    loop {
        let next_event = match (
            jobs.get(next_arrival).map(|j| j.submit_s),
            running.peek().map(|r| r.0.0),
        ) {
            (Some(a), Some(c)) => a.min(c),
            (Some(a), None) => a,
            (None, Some(c)) => c,
            (None, None) => break,
        };
        let t = tick(next_event);
        // 1. completions
        while let Some(&Reverse((end, ji))) = running.peek() {
            if end > t {
                break;
            }
            running.pop();
            if let Some(a) = held.remove(&ji) {
                let h = host_of[a.agent_id.as_str()] as usize;
                agents[h]
                    .release(&a)
                    .map_err(|e| bug(t, jobs[ji as usize].id, format!("released wrongly: {e}")))?;
                frag.apply(h, &a.cpus, false);
            }
        }
        // 2. arrivals
        while let Some(j) = jobs.get(next_arrival) {
            if j.submit_s > t {
                break;
            }
            let req = j.request();
            match feasibility.never_fits(&req) {
                Some(reason) => outcomes[next_arrival].unplaced = Some(reason),
                None => queue.push(req),
            }
            next_arrival += 1;
        }
        max_queue = max_queue.max(queue.len() as u64);
        // 3. plan
        if !queue.is_empty() {
            cycles += 1;
            let started = latencies.as_ref().map(|_| Instant::now());
            let plan = if let Some(f) = &fair {
                let mut order = f.order(&queue, &held, &index_of, t, &policy.config.starvation);
                order.truncate(opts.window.unwrap_or(usize::MAX));
                packer.plan_in_order(&agents, &order, t)
            } else {
                match opts.window {
                    Some(w) if queue.len() > w => packer.plan(&agents, &front(&queue, w), t),
                    _ => packer.plan(&agents, &queue, t),
                }
            };
            if let (Some(l), Some(s)) = (latencies.as_mut(), started) {
                l.push(s.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64);
            }
            let mut gone: std::collections::HashSet<u64> = std::collections::HashSet::new();
            for a in plan.assignments {
                let Some(&ji) = index_of.get(&a.job_id) else {
                    return Err(bug(t, a.job_id, "a job id that is not queued".into()));
                };
                let Some(&h) = host_of.get(a.agent_id.as_str()) else {
                    return Err(bug(t, a.job_id, format!("unknown agent {}", a.agent_id)));
                };
                let h = h as usize;
                agents[h]
                    .allocate(&a)
                    .map_err(|e| bug(t, a.job_id, format!("resources that are not free: {e}")))?;
                frag.apply(h, &a.cpus, true);
                let host = &cluster.hosts[h];
                let (numa_fit, numa_local) = numa_figures(&host.topology, host.numa_aware, &a);
                let (l3_fit, l3_local) = l3_figures(&host.topology, &a);
                let gpu_job = a.granted_gpus > 0;
                let gpu_local = gpu_job
                    && retz_placement::gpus::locality_known(&host.topology, &a.gpu_ids)
                    && retz_placement::gpus::all_node_local(
                        &host.topology,
                        &a.gpu_ids,
                        &a.cpu_nodes,
                    );
                let job = &jobs[ji as usize];
                let runtime_s = model.map_or(job.runtime_s, |m| {
                    let f = placement_features(&agents[h], &a);
                    m.runtime_s(job.app.as_deref(), job.runtime_s, &f)
                });
                outcomes[ji as usize].placed = Some(Placed {
                    start_s: t,
                    host: h as u32,
                    cpuset: a.cpus.clone(),
                    cpu_nodes: a.cpu_nodes.clone(),
                    mem_mb: a.granted_mem_mb,
                    pinned: a.pinned,
                    numa_fit,
                    numa_local,
                    l3_fit,
                    l3_local,
                    runtime_s,
                    gpu_job,
                    gpu_local,
                });
                running.push(Reverse((t.saturating_add(runtime_s), ji)));
                gone.insert(a.job_id);
                held.insert(ji, a);
            }
            for p in plan.pending {
                if permanent(&p.reason)
                    && let Some(&ji) = index_of.get(&p.job_id)
                {
                    outcomes[ji as usize].unplaced = Some(p.reason.to_string());
                    gone.insert(p.job_id);
                }
            }
            if !gone.is_empty() {
                queue.retain(|q| !gone.contains(&q.job_id));
            }
        }
        samples.push(frag.sample(t, queue.len()));
        if let Some(f) = &mut fair {
            f.sample(t, &queue, &held, &index_of);
        }
    }
    if !queue.is_empty() {
        let t = samples.last().map_or(0, |s| s.t);
        let plan = packer.plan(&agents, &queue, t);
        let reasons: BTreeMap<u64, String> = plan
            .pending
            .into_iter()
            .map(|p| (p.job_id, p.reason.to_string()))
            .collect();
        for q in &queue {
            if let Some(&ji) = index_of.get(&q.job_id) {
                let why = reasons
                    .get(&q.job_id)
                    .map_or("no reason given", String::as_str);
                outcomes[ji as usize].unplaced = Some(format!(
                    "still waiting when no event was left (nothing more would ever free up): {why}"
                ));
            }
        }
    }
    Ok(SimResult {
        policy: policy.name.clone(),
        outcomes,
        samples,
        cycles,
        max_queue,
        cycle_latency_ns: latencies,
        modelled: model.is_some(),
        fairness: fair.map(FairShare::finish),
    })
}
