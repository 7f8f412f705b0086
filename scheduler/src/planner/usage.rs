//! [`RunningUsage`]: what each user's STARTING and STARTED jobs hold (granted CPUs and
//! memory), the running side of the fair share ([`super::fairq`]).
//!
//! Loaded from the store when the planner starts, then kept by the loop: a launch adds
//! the job's grant, any state that is not STARTING/STARTED removes it (once).

use std::collections::{BTreeMap, HashMap};

use retz_proto::api::Job;

use super::fairq::Demand;

/// Running demand by job and by user.
#[derive(Debug, Default)]
pub struct RunningUsage {
    by_job: HashMap<u64, (String, Demand)>,
    by_user: BTreeMap<String, Demand>,
    jobs_of: HashMap<String, usize>,
}

impl RunningUsage {
    /// `job` of `owner` runs with its grant (or, without one, what it asked at least).
    pub fn started(&mut self, owner: &str, job: &Job) {
        let d = match &job.granted {
            Some(g) => Demand {
                cpus: f64::from(g.cpu),
                mem_mb: g.mem_mb as f64,
            },
            None => Demand {
                cpus: f64::from(job.resources.cpu.min),
                mem_mb: job.resources.mem_mb.min as f64,
            },
        };
        self.ended(job.id);
        let u = self.by_user.entry(owner.to_owned()).or_default();
        u.cpus += d.cpus;
        u.mem_mb += d.mem_mb;
        *self.jobs_of.entry(owner.to_owned()).or_default() += 1;
        self.by_job.insert(job.id, (owner.to_owned(), d));
    }

    /// Job `id` no longer runs (idempotent).
    pub fn ended(&mut self, id: u64) {
        let Some((owner, d)) = self.by_job.remove(&id) else {
            return;
        };
        if let Some(u) = self.by_user.get_mut(&owner) {
            u.cpus -= d.cpus;
            u.mem_mb -= d.mem_mb;
            let n = self.jobs_of.entry(owner.clone()).or_default();
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_user.remove(&owner);
                self.jobs_of.remove(&owner);
            }
        }
    }

    /// Each user's running demand.
    pub fn by_user(&self) -> &BTreeMap<String, Demand> {
        &self.by_user
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::api::Grant;

    fn job(id: u64, cpu: u32, mem: u64) -> Job {
        let mut j = Job::new("a", "true");
        j.id = id;
        j.granted = Some(Grant {
            cpu,
            mem_mb: mem,
            gpu: 0,
            gpu_ids: None,
            cpuset: None,
            numa_nodes: None,
            pinned: false,
            ports: vec![],
            user: None,
            features: None,
        });
        j
    }

    #[test]
    fn grants_add_up_per_user_and_leave_once() {
        let mut u = RunningUsage::default();
        u.started("alice", &job(1, 2, 100));
        u.started("alice", &job(2, 3, 50));
        u.started("bob", &job(3, 1, 10));
        assert_eq!(
            u.by_user()["alice"],
            Demand {
                cpus: 5.0,
                mem_mb: 150.0
            }
        );
        u.ended(1);
        u.ended(1);
        assert_eq!(u.by_user()["alice"].cpus, 3.0);
        u.ended(3);
        assert!(!u.by_user().contains_key("bob"));
        // Started twice (a relaunch) counts once.
        u.started("alice", &job(2, 3, 50));
        assert_eq!(u.by_user()["alice"].cpus, 3.0);
    }
}
