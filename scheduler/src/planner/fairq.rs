//! The planner's queue: every QUEUED job's key, grouped by request class, and the
//! choice of what one planning cycle considers ([`FairQueue::select`]).
//!
//! A **class** is what makes jobs interchangeable for placement: the owner (user), the
//! application, and the request's shape (resources, affinity, cache policy, ports,
//! whole nodes). Jobs of a class are kept per priority level, FIFO inside a level, as
//! `id → submit time` (about 60 bytes a job with the indexes; the full records stay in
//! the store). Inside a class the next job is the best *effective* priority (priority
//! lowered by aging, [`retz_placement::effective_priority`]) among the level heads:
//! since a level is FIFO, its head is its oldest and most aged job, so the merge is
//! exact and costs at most one comparison per priority level.
//!
//! **Selection** (once per cycle): users take turns by dominant-resource fairness
//! (DRF): the user whose running dominant share (the larger of its CPU and memory
//! fractions of the cluster) divided by its weight is lowest takes its next job, and its
//! share grows by that job's demand (progressive filling). A user's next job is the best
//! effective priority, then the oldest, over the heads of its classes. Filling stops at
//! the window budget; then the head of every class not yet taken is added, so every
//! class is considered in every cycle, however long the queue. A class whose head could
//! never fit any agent in the latest cycle ([`FairQueue::set_outcome`]) gives its head
//! only: it costs one check a cycle, not one per job.
//!
//! **Quotas**: a user at its running-CPU or memory quota is held for the cycle (checked
//! once per pick of the user, see [`quota`]); its jobs are not selected and wait with
//! that reason.
//!
//! Jobs not selected still have a reason ([`FairQueue::waiting_reason`]): their user's
//! quota, or how many jobs of their class are ahead and why the first of those waits.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use retz_placement::{Starvation, effective_priority};
use retz_proto::api::Job;
use rustc_hash::{FxHashMap, FxHashSet};

use super::request::unix_seconds;

pub mod quota;

use quota::{Rooms, UserBook};

/// A class's index in the queue.
type ClassId = u32;

/// A class's next job: (effective priority, submit time, id, priority level).
type Head = (i64, u64, u64, i32);

/// A user in the selection's turn order: (share / weight, its next job's submit time
/// and id, the user, its index in the selection).
type UserTurn<'a> = Reverse<(u64, (u64, u64), &'a str, u32)>;

/// The resources a job asks at least (the fair-share demand of its class).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Demand {
    /// CPUs.
    pub cpus: f64,
    /// Memory, MB.
    pub mem_mb: f64,
}

impl Demand {
    /// `self` as a dominant share of `total` (the larger fraction).
    pub fn dominant(&self, total: &Demand) -> f64 {
        let f = |x: f64, t: f64| if t > 0.0 { x / t } else { x };
        f(self.cpus, total.cpus).max(f(self.mem_mb, total.mem_mb))
    }
}

#[derive(Debug)]
struct Class {
    owner: Arc<str>,
    /// Priority level → job id → submit time (Unix s). Ids grow with submission, so a
    /// level iterates FIFO.
    levels: BTreeMap<i32, BTreeMap<u64, u64>>,
    len: usize,
    demand: Demand,
    /// Why the first of its jobs waited in the latest cycle that planned one.
    reason: Option<Arc<str>>,
    /// That job could not fit any agent: only the head is planned next cycle.
    never: bool,
}

fn aging(now: u64, at: u64, s: &Starvation) -> i64 {
    // Same as the packer's, on the fields the queue keeps.
    let req = retz_placement::JobRequest {
        priority: 0,
        submitted_at: at,
        ..retz_placement::JobRequest::new(0, 1, 0)
    };
    -effective_priority(&req, now, s)
}

/// What a cycle considers, in planning order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Job ids, fair-share order first, then the heads of the classes not yet taken.
    pub ids: Vec<u64>,
    /// How many classes the queue holds.
    pub classes: usize,
    /// Users held by their running quota this cycle, with why.
    pub held: BTreeMap<String, String>,
}

/// The queued jobs by class; see the module doc.
#[derive(Debug, Default)]
pub struct FairQueue {
    // Maps keyed by the ids the server assigns use the fast hash; the class keys
    // (built from users' requests) keep the DoS-resistant one.
    classes: FxHashMap<ClassId, Class>,
    by_key: HashMap<Arc<str>, ClassId>,
    keys: FxHashMap<ClassId, Arc<str>>,
    next_class: ClassId,
    /// Job id → (class, priority).
    jobs: FxHashMap<u64, (ClassId, i32)>,
    /// Per-user weights and quotas.
    book: UserBook,
    /// Users held by their running quota in the latest selection, with why.
    held: HashMap<String, Arc<str>>,
}

/// The class key of `job` of `owner`.
pub fn class_key(owner: &str, job: &Job) -> String {
    let shape = serde_json::json!([job.resources, job.affinity, job.cache]);
    format!("{owner}\u{1f}{}\u{1f}{shape}", job.appid)
}

impl FairQueue {
    /// Queued jobs.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job is queued.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Distinct classes.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// The owner of queued job `id`.
    pub fn owner(&self, id: u64) -> Option<String> {
        let (cid, _) = self.jobs.get(&id)?;
        Some(self.classes.get(cid)?.owner.to_string())
    }

    /// Whether job `id` is queued.
    pub fn contains(&self, id: u64) -> bool {
        self.jobs.contains_key(&id)
    }

    /// Sets `user`'s weight (share); weights at or below 0 count as the smallest
    /// positive one.
    pub fn set_weight(&mut self, user: &str, weight: f64) {
        self.book.set_weight(user, weight);
    }

    /// The users' weights and quotas.
    pub fn book(&self) -> &UserBook {
        &self.book
    }

    /// The users' weights and quotas, to change.
    pub fn book_mut(&mut self) -> &mut UserBook {
        &mut self.book
    }

    /// Takes the weights and quotas of `other` (when a queue is reloaded).
    pub fn copy_weights(&mut self, other: &FairQueue) {
        self.book.clone_from(&other.book);
    }

    /// Records the users the latest selection held by quota (their jobs' reason).
    pub fn set_held(&mut self, held: &BTreeMap<String, String>) {
        self.held = held
            .iter()
            .map(|(u, why)| (u.clone(), why.as_str().into()))
            .collect();
    }

    fn weight(&self, user: &str) -> f64 {
        self.book.weight(user)
    }

    /// Adds QUEUED `job` of `owner` (its submit time from `scheduled`, else `now`).
    /// Returns false if it was already there.
    pub fn insert(&mut self, owner: &str, job: &Job, now: u64) -> bool {
        if self.jobs.contains_key(&job.id) {
            return false;
        }
        let key: Arc<str> = class_key(owner, job).into();
        let cid = match self.by_key.get(&key) {
            Some(&c) => c,
            None => {
                let c = self.next_class;
                self.next_class = self.next_class.wrapping_add(1);
                self.by_key.insert(Arc::clone(&key), c);
                self.keys.insert(c, key);
                self.classes.insert(
                    c,
                    Class {
                        owner: owner.into(),
                        levels: BTreeMap::new(),
                        len: 0,
                        demand: Demand {
                            cpus: f64::from(job.resources.cpu.min),
                            mem_mb: job.resources.mem_mb.min as f64,
                        },
                        reason: None,
                        never: false,
                    },
                );
                c
            }
        };
        let at = job
            .scheduled
            .as_deref()
            .and_then(unix_seconds)
            .unwrap_or(now);
        let class = self.classes.get_mut(&cid).expect("class just found");
        class
            .levels
            .entry(job.priority)
            .or_default()
            .insert(job.id, at);
        class.len += 1;
        self.jobs.insert(job.id, (cid, job.priority));
        true
    }

    /// Removes job `id` (launched, killed, ended); a class left empty is forgotten.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some((cid, p)) = self.jobs.remove(&id) else {
            return false;
        };
        if let Some(class) = self.classes.get_mut(&cid) {
            if let Some(level) = class.levels.get_mut(&p) {
                level.remove(&id);
                if level.is_empty() {
                    class.levels.remove(&p);
                }
            }
            class.len -= 1;
            if class.len == 0 {
                self.classes.remove(&cid);
                if let Some(key) = self.keys.remove(&cid) {
                    self.by_key.remove(&key);
                }
            }
        }
        true
    }

    /// Queued jobs of a priority at most `priority` (all would be planned before a new
    /// job of that priority and owner).
    pub fn count_at_most(&self, priority: i32) -> u64 {
        self.jobs.values().filter(|(_, p)| *p <= priority).count() as u64
    }

    /// Records what became of the jobs of the latest cycle: `waiting` (id, reason, never
    /// fits) for those left queued. A class keeps the reason of its first waiting job; a
    /// class none of whose jobs waited has no reason.
    pub fn set_outcome(&mut self, selected: &[u64], waiting: &BTreeMap<u64, (String, bool)>) {
        self.set_outcome_by(selected, |id| {
            waiting.get(&id).map(|(why, never)| (why.as_str(), *never))
        });
    }

    /// [`FairQueue::set_outcome`] from a cycle's outcome as it comes: `pending` (id,
    /// reason) are the jobs left queued, `never` those of them that fit no agent.
    pub fn record_cycle(
        &mut self,
        selected: &[u64],
        pending: &[(u64, String)],
        never: &BTreeSet<u64>,
    ) {
        let waiting: FxHashMap<u64, &str> = pending
            .iter()
            .map(|(id, why)| (*id, why.as_str()))
            .collect();
        self.set_outcome_by(selected, |id| {
            waiting.get(&id).map(|why| (*why, never.contains(&id)))
        });
    }

    /// The class of each first job of a class in `selected` takes `waiting(id)` (reason,
    /// never fits), or no reason.
    fn set_outcome_by<'w>(
        &mut self,
        selected: &[u64],
        waiting: impl Fn(u64) -> Option<(&'w str, bool)>,
    ) {
        let mut seen: FxHashSet<ClassId> = FxHashSet::with_capacity_and_hasher(
            self.classes.len().min(selected.len()),
            Default::default(),
        );
        for id in selected {
            let Some(&(cid, _)) = self.jobs.get(id) else {
                continue;
            };
            if !seen.insert(cid) {
                continue;
            }
            if let Some(class) = self.classes.get_mut(&cid) {
                match waiting(*id) {
                    Some((why, never)) => {
                        // Mostly the same reason cycle after cycle: kept, not copied.
                        if class.reason.as_deref() != Some(why) {
                            class.reason = Some(why.into());
                        }
                        class.never = never;
                    }
                    None => {
                        class.reason = None;
                        class.never = false;
                    }
                }
            }
        }
    }

    /// Why queued job `id`, not planned in the latest cycle, waits: the jobs of its
    /// class ahead of it and why the first of them waits.
    pub fn waiting_reason(&self, id: u64) -> Option<String> {
        let &(cid, p) = self.jobs.get(&id)?;
        let class = self.classes.get(&cid)?;
        if let Some(why) = self.held.get(&*class.owner) {
            return Some(why.to_string());
        }
        let ahead: usize = class.levels.range(..p).map(|(_, l)| l.len()).sum::<usize>()
            + class.levels.get(&p).map_or(0, |l| l.range(..id).count());
        let of = if ahead == 1 { "job" } else { "jobs" };
        Some(match &class.reason {
            Some(why) if ahead > 0 => {
                format!("behind {ahead} {of} of the same class; the first of them waits: {why}")
            }
            Some(why) => why.to_string(),
            None if ahead > 0 => format!(
                "behind {ahead} {of} of the same class; waiting for the next planning cycle"
            ),
            None => "waiting for the next planning cycle".to_owned(),
        })
    }

    /// The jobs one cycle considers: see the module doc. `running` is each user's
    /// running demand, `total` the cluster's resources, `budget` the window.
    ///
    /// Classes and users are indexed densely for the cycle, and each priority level of a
    /// class is walked with one iterator, so taking a class's next job costs a step, not
    /// a search (the result is that of the plain walk, see `reference` in the tests).
    pub fn select(
        &self,
        now: u64,
        budget: usize,
        s: &Starvation,
        running: &BTreeMap<String, Demand>,
        total: &Demand,
    ) -> Selection {
        let mut walk = Walk::new(self, now, s);
        // Per user: its classes by their next job.
        type Next = Reverse<(Head, u32)>;
        let mut heaps: Vec<BinaryHeap<Next>> = vec![BinaryHeap::new(); walk.users.len()];
        for k in 0..walk.classes.len() {
            if let Some(b) = walk.best(k) {
                heaps[walk.classes[k].1 as usize].push(Reverse((b, k as u32)));
            }
        }
        let weights: Vec<f64> = walk.users.iter().map(|u| self.weight(u)).collect();
        // Users by (share / weight, then their next job's submit time and id: equal
        // shares go to the user waiting longest, so ties alternate instead of always
        // favouring one name).
        let oldest = |heap: &BinaryHeap<Next>| heap.peek().map_or((0, 0), |r| (r.0.0.1, r.0.0.2));
        let mut users: BinaryHeap<UserTurn<'_>> = walk
            .users
            .iter()
            .enumerate()
            .filter(|(ui, _)| !heaps[*ui].is_empty())
            .map(|(ui, &u)| {
                let share = running.get(u).map_or(0.0, |d| d.dominant(total)) / weights[ui];
                Reverse((share_bits(share), oldest(&heaps[ui]), u, ui as u32))
            })
            .collect();
        let mut shares: Vec<Option<f64>> = vec![None; walk.users.len()];
        let mut taken = vec![false; walk.classes.len()];
        let mut ids = Vec::with_capacity(budget.min(self.jobs.len()));
        // Running room per user, only when a running quota may apply.
        let quotas = self.book.any_running_quota();
        let mut rooms = Rooms::default();
        let mut held: BTreeMap<String, String> = BTreeMap::new();
        while ids.len() < budget {
            let Some(Reverse((bits, _, user, ui))) = users.pop() else {
                break;
            };
            let heap = &mut heaps[ui as usize];
            let Some(&Reverse(((_, _, id, level), k))) = heap.peek() else {
                continue;
            };
            let class = walk.classes[k as usize].0;
            if quotas && let Err(why) = rooms.take(user, &class.demand, running, &self.book) {
                // Held for this cycle: the user is not put back.
                held.insert(user.to_owned(), why);
                continue;
            }
            heap.pop();
            ids.push(id);
            taken[k as usize] = true;
            walk.advance(k as usize, level);
            if !class.never
                && let Some(b) = walk.best(k as usize)
            {
                heap.push(Reverse((b, k)));
            }
            let share = shares[ui as usize].get_or_insert_with(|| f64::from_bits(bits));
            *share += class.demand.dominant(total) / weights[ui as usize];
            if !heap.is_empty() {
                users.push(Reverse((share_bits(*share), oldest(heap), user, ui)));
            }
        }
        // Every class at least once (an untaken class's walk is still at its head).
        let mut rest: Vec<(&str, Head, ClassId)> = (0..walk.classes.len())
            .filter(|&k| !taken[k] && !held.contains_key(&*walk.classes[k].0.owner))
            .filter_map(|k| Some((&*walk.classes[k].0.owner, walk.best(k)?, walk.ids[k])))
            .collect();
        rest.sort_unstable();
        for (user, head, cid) in rest {
            if quotas {
                if held.contains_key(user) {
                    continue;
                }
                let demand = &self.classes[&cid].demand;
                if let Err(why) = rooms.take(user, demand, running, &self.book) {
                    held.insert(user.to_owned(), why);
                    continue;
                }
            }
            ids.push(head.2);
        }
        Selection {
            ids,
            classes: self.classes.len(),
            held,
        }
    }
}

/// One priority level of a class during a selection: its jobs in FIFO order and the
/// next one not yet taken, (id, submit time).
struct Level<'q> {
    priority: i32,
    jobs: std::collections::btree_map::Iter<'q, u64, u64>,
    next: Option<(u64, u64)>,
}

/// The classes of one selection, densely indexed, with a walk over their levels.
struct Walk<'q> {
    /// Per class: the class and its user's index.
    classes: Vec<(&'q Class, u32)>,
    /// Per class: its id in the queue.
    ids: Vec<ClassId>,
    /// Per class: where its levels start in `levels` (one more entry at the end).
    starts: Vec<usize>,
    levels: Vec<Level<'q>>,
    /// The users, by index.
    users: Vec<&'q str>,
    now: u64,
    s: &'q Starvation,
}

impl<'q> Walk<'q> {
    fn new(q: &'q FairQueue, now: u64, s: &'q Starvation) -> Walk<'q> {
        let n = q.classes.len();
        let mut w = Walk {
            classes: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            starts: Vec::with_capacity(n + 1),
            levels: Vec::with_capacity(n),
            users: Vec::new(),
            now,
            s,
        };
        let mut user_ix: HashMap<&str, u32> = HashMap::new();
        for (&cid, class) in &q.classes {
            let ui = *user_ix.entry(&class.owner).or_insert_with(|| {
                w.users.push(&class.owner);
                (w.users.len() - 1) as u32
            });
            w.classes.push((class, ui));
            w.ids.push(cid);
            w.starts.push(w.levels.len());
            for (&priority, jobs) in &class.levels {
                let mut jobs = jobs.iter();
                let next = jobs.next().map(|(&id, &at)| (id, at));
                w.levels.push(Level {
                    priority,
                    jobs,
                    next,
                });
            }
        }
        w.starts.push(w.levels.len());
        w
    }

    /// Class `k`'s next job: the best of its level heads (see [`Class::best`]).
    fn best(&self, k: usize) -> Option<Head> {
        let mut best = None;
        for l in &self.levels[self.starts[k]..self.starts[k + 1]] {
            let Some((id, at)) = l.next else {
                continue;
            };
            let eff = i64::from(l.priority) - aging(self.now, at, self.s);
            let cand = (eff, at, id, l.priority);
            if best.is_none_or(|b| cand < b) {
                best = Some(cand);
            }
        }
        best
    }

    /// Takes the head of class `k`'s level `priority`.
    fn advance(&mut self, k: usize, priority: i32) {
        let (from, to) = (self.starts[k], self.starts[k + 1]);
        if let Some(l) = self.levels[from..to]
            .iter_mut()
            .find(|l| l.priority == priority)
        {
            l.next = l.jobs.next().map(|(&id, &at)| (id, at));
        }
    }
}

/// A non-negative share as bits that order as the numbers do.
fn share_bits(share: f64) -> u64 {
    if share.is_finite() && share > 0.0 {
        share.to_bits()
    } else if share.is_nan() || share > 0.0 {
        f64::MAX.to_bits()
    } else {
        0
    }
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
