//! Users' weights and running quotas as the fair queue applies them ([`UserBook`]), and
//! one cycle's running room per user ([`Room`]).
//!
//! The running quota is checked once per pick of a user, never per queued job: a user
//! whose next job would take its running CPUs or memory (what runs, plus what this
//! cycle already selected for it) past its limit is *held*: none of its jobs is
//! selected this cycle, and every one of them waits with the reason ("user at
//! running-CPU quota 64/64"). Selected jobs count against the room even if they do not
//! launch, so a cycle never starts more than the quota allows. A job's demand is its
//! minimum request: a job given more than its minimum (a CPU range) may take the user
//! past the limit by the difference.

use std::collections::{BTreeMap, HashMap};

use retz_proto::api::{Quota, UserLimits, quota_limit};

use super::Demand;

/// Weights and quota overrides per user, over the server's defaults.
#[derive(Clone, Debug, Default)]
pub struct UserBook {
    defaults: Quota,
    users: BTreeMap<String, UserLimits>,
}

impl UserBook {
    /// Sets the server's default quota.
    pub fn set_defaults(&mut self, defaults: Quota) {
        self.defaults = defaults;
    }

    /// Sets what is stored for one user (share, overrides).
    pub fn set(&mut self, limits: UserLimits) {
        self.users.insert(limits.user.clone(), limits);
    }

    /// Sets `user`'s weight, keeping its quota.
    pub fn set_weight(&mut self, user: &str, weight: f64) {
        self.users
            .entry(user.to_owned())
            .or_insert_with(|| UserLimits::new(user))
            .share = weight;
    }

    /// `user`'s weight (1 unless set; never 0 or below).
    pub fn weight(&self, user: &str) -> f64 {
        let w = self.users.get(user).map_or(1.0, |l| l.share);
        if w.is_finite() && w > 0.0 { w } else { 1e-6 }
    }

    /// `user`'s enforced quota: its overrides over the defaults.
    pub fn quota(&self, user: &str) -> Quota {
        match self.users.get(user) {
            Some(l) => l.quota.or(&self.defaults),
            None => self.defaults,
        }
    }

    /// Whether any running quota may apply (else the rooms are not even built).
    pub fn any_running_quota(&self) -> bool {
        let running = |q: &Quota| {
            quota_limit(q.max_running_cpus).is_some() || quota_limit(q.max_running_mem_mb).is_some()
        };
        running(&self.defaults) || self.users.values().any(|l| running(&l.quota))
    }
}

/// One user's running room during one selection.
#[derive(Clone, Debug)]
pub struct Room {
    used: Demand,
    cpus: Option<f64>,
    mem_mb: Option<f64>,
}

impl Room {
    /// The room of a user running `used` under `quota`.
    pub fn new(used: Demand, quota: &Quota) -> Room {
        Room {
            used,
            cpus: quota_limit(quota.max_running_cpus).map(|n| n as f64),
            mem_mb: quota_limit(quota.max_running_mem_mb).map(|n| n as f64),
        }
    }

    /// Takes `d` if it fits; else why the user is held.
    pub fn take(&mut self, d: &Demand) -> Result<(), String> {
        let over =
            |used: f64, want: f64, limit: Option<f64>| limit.filter(|&l| used + want > l + 1e-9);
        if let Some(l) = over(self.used.cpus, d.cpus, self.cpus) {
            return Err(held("CPU", self.used.cpus, l, d.cpus, "CPUs"));
        }
        if let Some(l) = over(self.used.mem_mb, d.mem_mb, self.mem_mb) {
            return Err(held("memory", self.used.mem_mb, l, d.mem_mb, "MB"));
        }
        self.used.cpus += d.cpus;
        self.used.mem_mb += d.mem_mb;
        Ok(())
    }
}

fn held(what: &str, used: f64, limit: f64, want: f64, unit: &str) -> String {
    if used + 1e-9 >= limit {
        format!("user at running-{what} quota {used}/{limit}")
    } else {
        format!("user at running-{what} quota {used}/{limit} (the next job needs {want} {unit})")
    }
}

/// The rooms of the users one selection touched, made on first use.
#[derive(Debug, Default)]
pub struct Rooms<'a> {
    rooms: HashMap<&'a str, Room>,
}

impl<'a> Rooms<'a> {
    /// Takes `d` from `user`'s room (made from `running` and `book` on first use).
    pub fn take(
        &mut self,
        user: &'a str,
        d: &Demand,
        running: &BTreeMap<String, Demand>,
        book: &UserBook,
    ) -> Result<(), String> {
        self.rooms
            .entry(user)
            .or_insert_with(|| {
                Room::new(
                    running.get(user).copied().unwrap_or_default(),
                    &book.quota(user),
                )
            })
            .take(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(cpus: f64, mem_mb: f64) -> Demand {
        Demand { cpus, mem_mb }
    }

    #[test]
    fn a_room_holds_at_the_limit_and_says_which() {
        let q = Quota {
            max_running_cpus: Some(4),
            max_running_mem_mb: Some(1000),
            ..Quota::default()
        };
        let mut r = Room::new(d(2.0, 0.0), &q);
        assert!(r.take(&d(2.0, 500.0)).is_ok());
        assert_eq!(
            r.take(&d(1.0, 1.0)).unwrap_err(),
            "user at running-CPU quota 4/4"
        );
        let mut r = Room::new(d(0.0, 900.0), &q);
        assert_eq!(
            r.take(&d(1.0, 200.0)).unwrap_err(),
            "user at running-memory quota 900/1000 (the next job needs 200 MB)"
        );
        // 0 is unlimited.
        let mut r = Room::new(
            d(1e6, 1e9),
            &Quota {
                max_running_cpus: Some(0),
                ..Quota::default()
            },
        );
        assert!(r.take(&d(1e6, 1e9)).is_ok());
    }

    #[test]
    fn overrides_win_over_defaults_and_weights_stay_positive() {
        let mut b = UserBook::default();
        assert!(!b.any_running_quota());
        b.set_defaults(Quota {
            max_queued_jobs: Some(10),
            max_running_cpus: Some(64),
            ..Quota::default()
        });
        assert!(b.any_running_quota());
        let mut alice = UserLimits::new("alice");
        alice.quota.max_running_cpus = Some(0);
        alice.share = 3.0;
        b.set(alice);
        assert_eq!(b.quota("alice").max_running_cpus, Some(0));
        assert_eq!(b.quota("alice").max_queued_jobs, Some(10));
        assert_eq!(b.quota("bob").max_running_cpus, Some(64));
        assert_eq!(b.weight("alice"), 3.0);
        assert_eq!(b.weight("bob"), 1.0);
        b.set_weight("bob", -1.0);
        assert!(b.weight("bob") > 0.0);
        // Setting a weight keeps the quota.
        b.set_weight("alice", 2.0);
        assert_eq!(b.quota("alice").max_running_cpus, Some(0));
    }
}
