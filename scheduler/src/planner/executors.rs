//! The executors this server has on agents, and when to shut one down.
//!
//! Mesos keeps a custom executor alive until its framework shuts it down, so an
//! application's `retz-executor` processes would outlive `unload-app`, a reload with
//! other files, and any idle stretch. The book follows each executor (agent id and
//! executor id) with the tasks it runs, learnt from launches and from status updates
//! (which also rebuild it after a server restart, through reconciliation), and
//! [`ExecutorBook::reap`] names the executors with no task left that should go:
//! - **unloaded**: its application no longer exists;
//! - **replaced**: its application now launches under another executor id (loaded again
//!   with other files, another owner generation or another job user);
//! - **idle**: no task for the idle timeout.
//!
//! An executor that still runs a task is never named, whatever its application became:
//! it is shut down once its last task ended. Executors started by an earlier server that
//! ran no task since this one started are learnt from offers (`Offer.executor_ids`: the
//! framework's executors on that agent, [`ExecutorBook::offered`]) as idle from then on;
//! since their tasks may not have been reconciled yet, such an executor is named only
//! once it stayed idle for the idle timeout (whatever its application became), unless a
//! task was seen on it meanwhile.
//!
//! Pure: time comes in as an argument; the planner sends the SHUTDOWN calls.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

/// An executor on an agent: (agent id, executor id).
pub type ExecutorKey = (String, String);

/// Why an executor is shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Its application was unloaded.
    Unloaded,
    /// Its application now launches under another executor id.
    Replaced,
    /// It ran no task for the idle timeout.
    Idle,
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShutdownReason::Unloaded => "application unloaded",
            ShutdownReason::Replaced => "application loaded again with another executor",
            ShutdownReason::Idle => "idle",
        })
    }
}

#[derive(Debug)]
struct Entry {
    appid: String,
    tasks: HashSet<String>,
    /// When its last task ended (or when it was learnt with none).
    idle_since: Instant,
    /// Learnt from an offer, no task seen on it yet: named only once idle for the idle
    /// timeout.
    adopted: bool,
}

/// The executors known to run (or to have run) this framework's tasks.
#[derive(Debug, Default)]
pub struct ExecutorBook {
    executors: HashMap<ExecutorKey, Entry>,
    /// Task id → its executor.
    tasks: HashMap<String, ExecutorKey>,
}

/// The application of an executor id made by the planner (`retz-<appid>-<digest>`).
pub fn appid_of(executor_id: &str) -> Option<&str> {
    let rest = executor_id.strip_prefix("retz-")?;
    let (appid, digest) = rest.rsplit_once('-')?;
    (!appid.is_empty() && !digest.is_empty()).then_some(appid)
}

impl ExecutorBook {
    /// `task` runs (or was launched) on `key`, an executor of `appid`.
    pub fn task_running(&mut self, key: ExecutorKey, appid: &str, task: &str, now: Instant) {
        if let Some(old) = self.tasks.get(task)
            && *old != key
        {
            let old = old.clone();
            self.task_ended(task, now);
            debug_assert!(!self.tasks.contains_key(task), "{old:?}");
        }
        let entry = self.executors.entry(key.clone()).or_insert_with(|| Entry {
            appid: appid.to_owned(),
            tasks: HashSet::new(),
            idle_since: now,
            adopted: false,
        });
        entry.adopted = false;
        entry.tasks.insert(task.to_owned());
        self.tasks.insert(task.to_owned(), key);
    }

    /// `task` reached a terminal state (unknown tasks are ignored).
    pub fn task_ended(&mut self, task: &str, now: Instant) {
        let Some(key) = self.tasks.remove(task) else {
            return;
        };
        if let Some(e) = self.executors.get_mut(&key) {
            e.tasks.remove(task);
            if e.tasks.is_empty() {
                e.idle_since = now;
            }
        }
    }

    /// An offer from `agent` lists `executor_ids`, this framework's executors running
    /// there: those of Retz applications not known yet (started by an earlier server,
    /// no task seen since) are learnt as idle since `now`. Returns how many were new.
    pub fn offered<'a>(
        &mut self,
        agent: &str,
        executor_ids: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) -> usize {
        let mut new = 0;
        for exec in executor_ids {
            let Some(appid) = appid_of(exec) else {
                continue;
            };
            let key = (agent.to_owned(), exec.to_owned());
            if self.executors.contains_key(&key) {
                continue;
            }
            self.executors.insert(
                key,
                Entry {
                    appid: appid.to_owned(),
                    tasks: HashSet::new(),
                    idle_since: now,
                    adopted: true,
                },
            );
            new += 1;
        }
        new
    }

    /// An executor is gone (it exited, its agent was removed): forget it and its tasks.
    pub fn forget(&mut self, key: &ExecutorKey) {
        if let Some(e) = self.executors.remove(key) {
            for t in e.tasks {
                self.tasks.remove(&t);
            }
        }
    }

    /// An agent is gone: forget its executors.
    pub fn forget_agent(&mut self, agent: &str) {
        let keys: Vec<ExecutorKey> = self
            .executors
            .keys()
            .filter(|k| k.0 == agent)
            .cloned()
            .collect();
        for k in keys {
            self.forget(&k);
        }
    }

    /// The applications of the executors that run no task (those [`Self::reap`] asks
    /// about).
    pub fn idle_apps(&self) -> HashSet<String> {
        self.executors
            .values()
            .filter(|e| e.tasks.is_empty())
            .map(|e| e.appid.clone())
            .collect()
    }

    /// Executors known.
    pub fn len(&self) -> usize {
        self.executors.len()
    }

    /// Whether no executor is known.
    pub fn is_empty(&self) -> bool {
        self.executors.is_empty()
    }

    /// Removes and returns the executors with no task that should be shut down now.
    /// `current(appid)` is the executor id the application's next task would get, `None`
    /// when the application no longer exists.
    pub fn reap(
        &mut self,
        now: Instant,
        idle_timeout: Duration,
        mut current: impl FnMut(&str) -> Option<String>,
    ) -> Vec<(ExecutorKey, ShutdownReason)> {
        let mut out = Vec::new();
        for (key, e) in &self.executors {
            if !e.tasks.is_empty() {
                continue;
            }
            let idle_long = now.saturating_duration_since(e.idle_since) >= idle_timeout;
            if e.adopted && !idle_long {
                continue;
            }
            let why = match current(&e.appid) {
                None => ShutdownReason::Unloaded,
                Some(id) if id != key.1 => ShutdownReason::Replaced,
                Some(_) if idle_long => ShutdownReason::Idle,
                Some(_) => continue,
            };
            out.push((key.clone(), why));
        }
        for (key, _) in &out {
            self.executors.remove(key);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(agent: &str, exec: &str) -> ExecutorKey {
        (agent.to_owned(), exec.to_owned())
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn executor_ids_name_their_application() {
        assert_eq!(appid_of("retz-asakusa-0a1b2c"), Some("asakusa"));
        assert_eq!(appid_of("retz-my-app-0a1b2c"), Some("my-app"));
        assert_eq!(appid_of("retz--0a1b"), None);
        assert_eq!(appid_of("other-x-1"), None);
        assert_eq!(appid_of("retz-x-"), None);
    }

    #[test]
    fn an_executor_with_a_task_is_never_shut_down() {
        let t0 = Instant::now();
        let mut b = ExecutorBook::default();
        b.task_running(key("a1", "retz-app-1"), "app", "t1", t0);
        // Unloaded, replaced and long idle: still running t1.
        assert!(b.reap(t0 + 10 * MIN, MIN, |_| None).is_empty());
        assert!(
            b.reap(t0 + 10 * MIN, MIN, |_| Some("retz-app-2".into()))
                .is_empty()
        );
        b.task_ended("t1", t0 + 10 * MIN);
        assert_eq!(
            b.reap(t0 + 10 * MIN, MIN, |_| None),
            vec![(key("a1", "retz-app-1"), ShutdownReason::Unloaded)]
        );
        assert!(b.is_empty());
    }

    #[test]
    fn replaced_and_idle_executors_go_and_current_busy_ones_stay() {
        let t0 = Instant::now();
        let mut b = ExecutorBook::default();
        b.task_running(key("a1", "retz-app-old"), "app", "t1", t0);
        b.task_running(key("a1", "retz-app-new"), "app", "t2", t0);
        b.task_running(key("a2", "retz-app-new"), "app", "t3", t0);
        b.task_running(key("a2", "retz-b-1"), "b", "t4", t0);
        for t in ["t1", "t2", "t4"] {
            b.task_ended(t, t0);
        }
        let current = |app: &str| {
            Some(format!(
                "retz-{app}-{}",
                if app == "app" { "new" } else { "1" }
            ))
        };
        // At once: only the replaced one.
        assert_eq!(
            b.reap(t0, MIN, current),
            vec![(key("a1", "retz-app-old"), ShutdownReason::Replaced)]
        );
        // Before the timeout nothing else; after it the idle ones, not the busy one.
        assert!(b.reap(t0 + MIN / 2, MIN, current).is_empty());
        assert_eq!(
            b.reap(t0 + MIN, MIN, current),
            vec![
                (key("a1", "retz-app-new"), ShutdownReason::Idle),
                (key("a2", "retz-b-1"), ShutdownReason::Idle),
            ]
        );
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_new_task_restarts_the_idle_clock_and_forget_drops_tasks() {
        let t0 = Instant::now();
        let mut b = ExecutorBook::default();
        let k = key("a1", "retz-app-1");
        let current = |_: &str| Some("retz-app-1".to_owned());
        b.task_running(k.clone(), "app", "t1", t0);
        b.task_ended("t1", t0);
        b.task_running(k.clone(), "app", "t2", t0 + MIN / 2);
        b.task_ended("t2", t0 + MIN / 2);
        assert!(b.reap(t0 + MIN, MIN, current).is_empty());
        assert_eq!(b.reap(t0 + MIN + MIN / 2, MIN, current).len(), 1);
        b.task_running(key("a2", "retz-app-1"), "app", "t9", t0);
        assert!(b.idle_apps().is_empty(), "a busy executor is not idle");
        b.task_ended("t9", t0);
        assert_eq!(b.idle_apps(), HashSet::from(["app".to_owned()]));
        b.forget_agent("a2");
        assert!(b.is_empty());
        // An ended task of a forgotten executor changes nothing.
        b.task_running(k.clone(), "app", "t3", t0);
        b.forget(&k);
        b.task_ended("t3", t0);
        assert!(b.is_empty());
        // Repeated updates for one task count it once.
        b.task_running(k.clone(), "app", "t4", t0);
        b.task_running(k.clone(), "app", "t4", t0);
        b.task_ended("t4", t0);
        assert_eq!(b.reap(t0 + MIN, MIN, current).len(), 1);
    }

    #[test]
    fn executors_of_offers_are_learnt_idle_and_go_after_the_idle_timeout() {
        let t0 = Instant::now();
        let mut b = ExecutorBook::default();
        let current = |_: &str| Some("retz-app-1".to_owned());
        b.task_running(key("a1", "retz-app-1"), "app", "t1", t0);
        // Known, unknown, not Retz's: only the unknown Retz executor is learnt, once.
        let offered = ["retz-app-1", "retz-app-0", "other"];
        assert_eq!(b.offered("a1", offered, t0), 1);
        assert_eq!(b.offered("a1", offered, t0 + MIN), 0);
        assert_eq!(b.len(), 2);
        assert_eq!(b.idle_apps(), HashSet::from(["app".to_owned()]));
        // Replaced, but its tasks may not be reconciled yet: it waits for the timeout.
        assert!(b.reap(t0 + MIN / 2, MIN, current).is_empty());
        assert!(b.reap(t0 + MIN / 2, MIN, |_| None).is_empty());
        assert_eq!(
            b.reap(t0 + MIN, MIN, current),
            vec![(key("a1", "retz-app-0"), ShutdownReason::Replaced)]
        );
        // An idle current one goes as idle; a task seen on it makes it an ordinary entry.
        b.offered("a2", ["retz-app-1"], t0);
        b.offered("a3", ["retz-app-1"], t0);
        assert_eq!(
            b.reap(t0 + MIN, MIN, current),
            vec![
                (key("a2", "retz-app-1"), ShutdownReason::Idle),
                (key("a3", "retz-app-1"), ShutdownReason::Idle),
            ]
        );
        b.offered("a4", ["retz-app-1"], t0);
        b.task_running(key("a4", "retz-app-1"), "app", "t4", t0);
        b.task_ended("t4", t0);
        assert_eq!(
            b.reap(t0, MIN, |_| None),
            vec![(key("a4", "retz-app-1"), ShutdownReason::Unloaded)]
        );
        // Forgetting the agent drops learnt executors too.
        b.offered("a5", ["retz-app-1"], t0);
        b.forget_agent("a5");
        assert_eq!(b.len(), 1, "only a1's busy executor is left");
    }
}
