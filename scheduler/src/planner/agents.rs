//! [`AgentBook`]: the agents the planner knows, and what each has free.
//!
//! The planner answers every offer at once (launch or decline) and suppresses offers
//! while the queue is empty, so an idle agent may send no offer for hours: "agents that
//! offered recently" says 0 while one is connected. An agent is therefore known from its
//! first offer until the master reports it lost (a FAILURE event without an executor);
//! a newer offer of the agent replaces what it has free.
//!
//! Free resources: the agent's latest offers (as a placement [`AgentState`]), less what
//! was launched from them, plus what tasks launched since gave back when they ended. This
//! is what `retz-client plan` places a job on; Mesos offers the same CPUs again when it is
//! asked (REVIVE), unless another framework took them meanwhile.

use std::collections::{BTreeMap, HashMap, HashSet};

use retz_placement::{AgentState, Assignment, CpuSet, PlacementFeatures, placement_features};
use retz_proto::mesos::{Offer, OfferId, Resource, value};
use tracing::debug;

use super::ports::PortPool;

use super::fairq::Demand;

/// One known agent.
#[derive(Clone, Debug)]
pub struct AgentView {
    /// Its latest offers (already answered).
    pub offer_ids: Vec<OfferId>,
    /// What it has free; `None` when its offers break the NUMA convention (it is still
    /// connected, but nothing is planned on it).
    pub state: Option<AgentState>,
}

/// What the known agents have free, as `/status` shows it (`totalOffered`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FreeTotals {
    /// CPUs free (latest offers, less launches, plus ends since).
    pub cpus: u64,
    /// Memory free, MB (the same way).
    pub mem_mb: u64,
    /// GPUs free (the same way).
    pub gpus: u64,
    /// Ports in the agents' latest offers.
    pub ports: u64,
    /// Disk in the agents' latest offers, MB.
    pub disk_mb: u64,
}

/// The known agents by id, and the tasks launched on them since their latest offers.
#[derive(Clone, Debug, Default)]
pub struct AgentBook {
    agents: BTreeMap<String, AgentView>,
    /// Ports and disk (MB) of each agent's latest batch of offers: Retz does not place
    /// them per node, so they are counted as offered.
    offered_extras: BTreeMap<String, (u64, u64)>,
    /// Task id → what it took on which agent, until it ends.
    tasks: HashMap<String, Assignment>,
    /// Agent id → the ids of its tasks in `tasks` (so a launch's features look at its
    /// agent's tasks only, not at every task of the cluster).
    on_agent: HashMap<String, HashSet<String>>,
}

impl AgentBook {
    /// `agent_id` offered `offer_ids`, which give `state` free (replaces what was known).
    pub fn offered(&mut self, agent_id: &str, offer_ids: Vec<OfferId>, state: Option<AgentState>) {
        self.agents
            .insert(agent_id.to_owned(), AgentView { offer_ids, state });
    }

    /// Task `task_id` was launched with `asg` from the agent's latest offers.
    pub fn launched(&mut self, task_id: &str, asg: &Assignment) {
        if let Some(state) = self
            .agents
            .get_mut(&asg.agent_id)
            .and_then(|a| a.state.as_mut())
            && let Err(e) = state.allocate(asg)
        {
            debug!(task = task_id, error = %e, "launch not in the agent's known free resources");
        }
        if let Some(old) = self.tasks.insert(task_id.to_owned(), asg.clone()) {
            self.unindex(task_id, &old.agent_id);
        }
        self.on_agent
            .entry(asg.agent_id.clone())
            .or_default()
            .insert(task_id.to_owned());
    }

    /// Drops `task_id` from the tasks of `agent_id` in `on_agent`.
    fn unindex(&mut self, task_id: &str, agent_id: &str) {
        if let Some(ids) = self.on_agent.get_mut(agent_id) {
            ids.remove(task_id);
            if ids.is_empty() {
                self.on_agent.remove(agent_id);
            }
        }
    }

    /// The placement features of launching `asg` now: against what its agent has free
    /// before the launch and the tasks launched there that have not ended (an unpinned
    /// one counts on every node). `None` for an unknown agent and unpinned launches.
    /// Tasks launched before a restart of the server are not known, so not counted.
    pub fn features(&self, asg: &Assignment) -> Option<PlacementFeatures> {
        let state = self.agents.get(&asg.agent_id)?.state.as_ref()?;
        let running: Vec<CpuSet> = self
            .on_agent
            .get(&asg.agent_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id))
            .filter(|t| t.agent_id == asg.agent_id && t.job_id != asg.job_id)
            .map(|t| {
                if t.pinned {
                    t.cpus.clone()
                } else {
                    state.topology().cpus().clone()
                }
            })
            .collect();
        placement_features(state, asg, &running)
    }

    /// Task `task_id` ended: what it took is free again (unless a newer offer of its
    /// agent already counts it free).
    pub fn ended(&mut self, task_id: &str) {
        let Some(asg) = self.tasks.remove(task_id) else {
            return;
        };
        self.unindex(task_id, &asg.agent_id);
        if let Some(state) = self
            .agents
            .get_mut(&asg.agent_id)
            .and_then(|a| a.state.as_mut())
            && let Err(e) = state.release(&asg)
        {
            debug!(task = task_id, error = %e, "ended task already counted free");
        }
    }

    /// Notes the ports and disk of each agent's offers in this batch (its latest).
    pub fn observe_offers(&mut self, offers: &[Offer]) {
        let mut batch: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
        for o in offers {
            batch
                .entry(o.agent_id.value.as_str())
                .or_default()
                .extend(o.resources.iter());
        }
        for (agent, resources) in batch {
            let owned: Vec<Resource> = resources.iter().map(|r| (*r).clone()).collect();
            let ports = u64::from(PortPool::from_resources(&owned).free());
            let disk = owned
                .iter()
                .filter(|r| r.name == "disk" && r.r#type == value::Type::Scalar as i32)
                .filter_map(|r| r.scalar.as_ref())
                .map(|s| s.value.max(0.0))
                .sum::<f64>();
            self.offered_extras
                .insert(agent.to_owned(), (ports, disk.floor() as u64));
        }
    }

    /// What the known agents have free ([`FreeTotals`]).
    pub fn free_totals(&self) -> FreeTotals {
        let mut t = self
            .states()
            .fold(FreeTotals::default(), |t, s| FreeTotals {
                cpus: t.cpus + s.free_cpus().len() as u64,
                mem_mb: t.mem_mb + s.free_mem_total_mb(),
                gpus: t.gpus + u64::from(s.free_gpus()),
                ..t
            });
        for (agent, (ports, disk)) in &self.offered_extras {
            if self.agents.contains_key(agent) {
                t.ports += ports;
                t.disk_mb += disk;
            }
        }
        t
    }

    /// The master reports `agent_id` lost.
    pub fn lost(&mut self, agent_id: &str) {
        self.offered_extras.remove(agent_id);
        self.agents.remove(agent_id);
        for id in self.on_agent.remove(agent_id).unwrap_or_default() {
            self.tasks.remove(&id);
        }
    }

    /// Known agents.
    pub fn count(&self) -> usize {
        self.agents.len()
    }

    /// Offers in the agents' latest batches.
    pub fn offers(&self) -> usize {
        self.agents.values().map(|a| a.offer_ids.len()).sum()
    }

    /// The CPUs and memory of the known agents (whole machines, free or not): the
    /// denominators of the fair share.
    pub fn totals(&self) -> Demand {
        self.states().fold(Demand::default(), |d, s| Demand {
            cpus: d.cpus + s.topology().cpus().len() as f64,
            mem_mb: d.mem_mb + s.topology().total_memory_mb() as f64,
        })
    }

    /// The free resources of every agent that can be planned on, in agent-id order.
    pub fn states(&self) -> impl Iterator<Item = &AgentState> {
        self.agents.values().filter_map(|a| a.state.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use retz_placement::{AffinityPolicy, JobRequest, PolicyConfig, Topology};

    /// A 2-node agent, 4 CPUs a node, all free.
    fn state(agent: &str) -> AgentState {
        let spec = retz_placement::synthetic::parse("pack:2 numa:1 core:4 pu:1", 2048).unwrap();
        let topo = Arc::new(Topology::new(spec).unwrap());
        AgentState::idle(agent, format!("{agent}.example"), topo, 0)
    }

    fn place(book: &AgentBook, cpus: u32, id: u64) -> Assignment {
        let states: Vec<AgentState> = book.states().cloned().collect();
        let job = JobRequest::new(id, cpus, 0).with_policy(AffinityPolicy::NumaStrict);
        let plan = retz_placement::plan(&states, &[job], 0, &PolicyConfig::default());
        plan.assignments[0].clone()
    }

    #[test]
    fn an_idle_agent_stays_known_until_lost() {
        let mut book = AgentBook::default();
        let o = |v: &str| OfferId { value: v.into() };
        book.offered("a1", vec![o("o1")], Some(state("a1")));
        book.offered("a2", vec![o("o2"), o("o3")], None);
        assert_eq!(
            (book.count(), book.offers(), book.free_totals().cpus),
            (2, 3, 8)
        );
        // A newer offer replaces the agent's view; no count grows.
        book.offered("a1", vec![o("o4")], Some(state("a1")));
        assert_eq!((book.count(), book.offers()), (2, 3));
        book.lost("a2");
        assert_eq!((book.count(), book.offers()), (1, 1));
        book.lost("nobody");
        assert_eq!(book.count(), 1);
    }

    #[test]
    fn launches_take_cpus_and_ends_give_them_back_once() {
        let mut book = AgentBook::default();
        book.offered("a1", vec![], Some(state("a1")));
        let asg = place(&book, 3, 1);
        book.launched("t1", &asg);
        assert_eq!(book.free_totals().cpus, 5);
        assert!(
            asg.cpus
                .iter()
                .all(|c| !book.states().next().unwrap().is_free(c))
        );
        // A second launch beside it: the first is its co-runner while it runs.
        let next = place(&book, 1, 3);
        let f = book.features(&next).expect("pinned on a NUMA-aware agent");
        assert_eq!((f.nodes_spanned, f.co_runners), (1, 1));
        book.ended("t1");
        assert_eq!(book.features(&next).unwrap().co_runners, 0);
        assert_eq!(book.free_totals().cpus, 8);
        book.ended("t1");
        assert_eq!(book.free_totals().cpus, 8, "an end is counted once");
        // A task that ends after a newer offer already counted it free.
        let asg = place(&book, 2, 2);
        book.launched("t2", &asg);
        book.offered("a1", vec![], Some(state("a1")));
        book.ended("t2");
        assert_eq!(book.free_totals().cpus, 8);
    }

    #[test]
    fn a_launch_counts_the_running_tasks_of_its_own_agent_only() {
        let mut book = AgentBook::default();
        book.offered("a1", vec![], Some(state("a1")));
        let asg = place(&book, 3, 1);
        book.launched("t1", &asg);
        let on_a2 = |mut a: Assignment, job_id: u64| {
            a.agent_id = "a2".into();
            a.job_id = job_id;
            a
        };
        book.launched("t2", &on_a2(asg.clone(), 2));
        let next = place(&book, 1, 3);
        assert_eq!(book.features(&next).unwrap().co_runners, 1);
        // The same task id launched again elsewhere leaves a1.
        book.launched("t1", &on_a2(asg.clone(), 1));
        assert_eq!(book.features(&next).unwrap().co_runners, 0);
        // A lost agent's tasks are forgotten; the others stay.
        book.launched("t3", &asg);
        book.lost("a2");
        assert_eq!(book.features(&next).unwrap().co_runners, 1);
        book.ended("t3");
        assert_eq!(book.features(&next).unwrap().co_runners, 0);
        assert!(book.tasks.is_empty() && book.on_agent.is_empty());
    }

    #[test]
    fn free_totals_count_memory_and_the_latest_offers_ports_and_disk() {
        use retz_proto::mesos::AgentId;
        let offer = |agent: &str, resources: Vec<Resource>| Offer {
            agent_id: AgentId {
                value: agent.into(),
            },
            resources,
            ..Default::default()
        };
        let disk = |mb: f64| Resource {
            name: "disk".into(),
            r#type: value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: mb }),
            ..Default::default()
        };
        let mut book = AgentBook::default();
        book.offered("a1", vec![], Some(state("a1")));
        book.offered("a2", vec![], None);
        // Two offers of a1 in one batch add up; a2 has no NUMA state but offers ports.
        book.observe_offers(&[
            offer(
                "a1",
                vec![super::super::ports::ports_resource(&[(31000, 31009)])],
            ),
            offer("a1", vec![disk(100.5)]),
            offer(
                "a2",
                vec![super::super::ports::ports_resource(&[(1, 5)]), disk(50.0)],
            ),
        ]);
        let t = book.free_totals();
        assert_eq!(
            (t.cpus, t.mem_mb, t.gpus, t.ports, t.disk_mb),
            (8, 4096, 0, 15, 150)
        );
        // A newer batch replaces the agent's figures; a lost agent counts no more.
        book.observe_offers(&[offer("a1", vec![disk(10.0)])]);
        book.lost("a2");
        let t = book.free_totals();
        assert_eq!((t.ports, t.disk_mb), (0, 10));
        // Launches take memory as they take CPUs.
        let asg = place(&book, 2, 1);
        book.launched("t1", &asg);
        assert_eq!(book.free_totals().cpus, 6);
        assert!(book.free_totals().mem_mb <= 4096);
    }
}
