//! The plain selection, kept for tests: [`select`] walks the classes with a cursor per
//! class (the last id taken per level) and a search for the next job, as the module doc
//! of [`super`] words it; [`FairQueue::select`] must give the same selection.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::Bound::{Excluded, Unbounded};

use retz_placement::Starvation;

use super::quota::Rooms;
use super::{Class, ClassId, Demand, FairQueue, Head, Selection, aging, share_bits};

/// A user in the selection's turn order: (share / weight, its next job's submit time
/// and id, the user).
type UserKey<'a> = Reverse<(u64, (u64, u64), &'a str)>;

impl Class {
    /// The best of the level heads after the ids already taken (`taken`: level → last
    /// id taken), as (effective priority, submit time, id, level).
    fn best(&self, taken: &BTreeMap<i32, u64>, now: u64, s: &Starvation) -> Option<Head> {
        let mut best = None;
        for (&p, jobs) in &self.levels {
            let next = match taken.get(&p) {
                Some(&last) => jobs.range((Excluded(last), Unbounded)).next(),
                None => jobs.iter().next(),
            };
            let Some((&id, &at)) = next else {
                continue;
            };
            let eff = i64::from(p) - aging(now, at, s);
            let cand = (eff, at, id, p);
            if best.is_none_or(|b| cand < b) {
                best = Some(cand);
            }
        }
        best
    }
}

/// [`FairQueue::select`] as the module doc words it: per class, the last id taken per
/// level and a search for the next; the fast one must give the same selection.
pub(super) fn select(
    q: &FairQueue,
    now: u64,
    budget: usize,
    s: &Starvation,
    running: &BTreeMap<String, Demand>,
    total: &Demand,
) -> Selection {
    // Per class: the last id taken per level.
    let mut cursors: HashMap<ClassId, BTreeMap<i32, u64>> = HashMap::new();
    // Per user: its classes by their next job.
    type Next = Reverse<(Head, ClassId)>;
    let mut per_user: BTreeMap<&str, BinaryHeap<Next>> = BTreeMap::new();
    let empty = BTreeMap::new();
    for (&cid, class) in &q.classes {
        if let Some(b) = class.best(&empty, now, s) {
            per_user
                .entry(&class.owner)
                .or_default()
                .push(Reverse((b, cid)));
        }
    }
    // Users by (share / weight, then their next job's submit time and id: equal
    // shares go to the user waiting longest, so ties alternate instead of always
    // favouring one name).
    let oldest = |heap: &BinaryHeap<Next>| heap.peek().map_or((0, 0), |r| (r.0.0.1, r.0.0.2));
    let mut users: BinaryHeap<UserKey<'_>> = per_user
        .iter()
        .map(|(&u, heap)| {
            let share = running.get(u).map_or(0.0, |d| d.dominant(total)) / q.weight(u);
            Reverse((share_bits(share), oldest(heap), u))
        })
        .collect();
    let mut shares: HashMap<&str, f64> = HashMap::new();
    let mut ids = Vec::with_capacity(budget.min(q.jobs.len()));
    // Running room per user, only when a running quota may apply.
    let quotas = q.book.any_running_quota();
    let mut rooms = Rooms::default();
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    while ids.len() < budget {
        let Some(Reverse((bits, _, user))) = users.pop() else {
            break;
        };
        let heap = per_user.get_mut(user).expect("a user with classes");
        let Some(&Reverse(((_, _, id, level), cid))) = heap.peek() else {
            continue;
        };
        let class = &q.classes[&cid];
        if quotas && let Err(why) = rooms.take(user, &class.demand, running, &q.book) {
            // Held for this cycle: the user is not put back.
            held.insert(user.to_owned(), why);
            continue;
        }
        heap.pop();
        ids.push(id);
        let cursor = cursors.entry(cid).or_default();
        cursor.insert(level, id);
        if !class.never
            && let Some(b) = class.best(cursor, now, s)
        {
            heap.push(Reverse((b, cid)));
        }
        let share = shares.entry(user).or_insert_with(|| f64::from_bits(bits));
        *share += class.demand.dominant(total) / q.weight(user);
        if !heap.is_empty() {
            users.push(Reverse((share_bits(*share), oldest(heap), user)));
        }
    }
    // Every class at least once.
    let mut rest: Vec<(&str, Head, ClassId)> = q
        .classes
        .iter()
        .filter(|(cid, c)| !cursors.contains_key(cid) && !held.contains_key(&*c.owner))
        .filter_map(|(&cid, c)| Some((&*c.owner, c.best(&empty, now, s)?, cid)))
        .collect();
    rest.sort_unstable();
    for (user, head, cid) in rest {
        if quotas {
            if held.contains_key(user) {
                continue;
            }
            let demand = &q.classes[&cid].demand;
            if let Err(why) = rooms.take(user, demand, running, &q.book) {
                held.insert(user.to_owned(), why);
                continue;
            }
        }
        ids.push(head.2);
    }
    Selection {
        ids,
        classes: q.classes.len(),
        held,
    }
}
