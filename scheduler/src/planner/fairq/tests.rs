//! Tests of the fair queue.
use super::*;
use retz_placement::ResourceRange;

fn job(id: u64, app: &str, cpus: u32, priority: i32) -> Job {
    let mut j = Job::new(app, "true");
    j.id = id;
    j.priority = priority;
    j.resources.cpu = ResourceRange::exactly(cpus);
    j
}

fn no_aging() -> Starvation {
    Starvation {
        aging_step_s: 0,
        ..Starvation::default()
    }
}

fn select(q: &FairQueue, budget: usize) -> Vec<u64> {
    q.select(0, budget, &no_aging(), &BTreeMap::new(), &Demand::default())
        .ids
}

#[test]
fn every_class_is_considered_however_long_the_queue() {
    let mut q = FairQueue::default();
    for id in 1..=500 {
        q.insert("alice", &job(id, "a", 200, 0), 0);
    }
    q.insert("bob", &job(1000, "b", 1, 0), 0);
    q.insert("alice", &job(1001, "a", 1, 0), 0);
    assert_eq!((q.len(), q.class_count()), (502, 3));
    let ids = select(&q, 10);
    // The budget in fair order, then the head of the one class it did not reach.
    assert_eq!(ids.len(), 11, "{ids:?}");
    assert!(ids[..10].contains(&1000), "bob's job: {ids:?}");
    assert_eq!(ids[10], 1001, "alice's other class: {ids:?}");
    // A budget of 1 still plans every class head.
    let ids = select(&q, 1);
    let mut sorted = ids;
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 1000, 1001]);
}

#[test]
fn a_class_that_never_fits_gives_its_head_only() {
    let mut q = FairQueue::default();
    for id in 1..=100 {
        q.insert("alice", &job(id, "a", 200, 0), 0);
    }
    for id in 101..=110 {
        q.insert("bob", &job(id, "b", 1, 0), 0);
    }
    let first = select(&q, 50);
    assert_eq!(first.len(), 50, "the budget is filled");
    let waiting: BTreeMap<u64, (String, bool)> = first
        .iter()
        .filter(|&&id| id <= 100)
        .map(|&id| (id, ("needs 200 CPUs".to_owned(), true)))
        .collect();
    q.set_outcome(&first, &waiting);
    let next = select(&q, 50);
    assert_eq!(next.iter().filter(|&&id| id <= 100).count(), 1, "{next:?}");
    assert_eq!(next.iter().filter(|&&id| id > 100).count(), 10, "{next:?}");
    // The jobs behind the head say why.
    assert_eq!(
        q.waiting_reason(5).unwrap(),
        "behind 4 jobs of the same class; the first of them waits: needs 200 CPUs"
    );
    assert_eq!(q.waiting_reason(1).unwrap(), "needs 200 CPUs");
    assert_eq!(
        q.waiting_reason(102).unwrap(),
        "behind 1 job of the same class; waiting for the next planning cycle"
    );
}

#[test]
fn removed_jobs_leave_at_once_and_empty_classes_go() {
    let mut q = FairQueue::default();
    let mut big = job(1, "a", 1, 0);
    big.resources.ports = 1_000_000;
    q.insert("alice", &big, 0);
    q.insert("alice", &job(2, "a", 1, 0), 0);
    assert!(!q.insert("alice", &job(2, "a", 1, 0), 0), "no duplicate");
    assert_eq!(q.class_count(), 2);
    assert!(q.remove(1));
    assert!(!q.remove(1));
    assert_eq!((q.len(), q.class_count()), (1, 1));
    assert_eq!(select(&q, 10), vec![2]);
    assert_eq!(q.waiting_reason(1), None);
    assert_eq!(q.owner(2).as_deref(), Some("alice"));
}

#[test]
fn within_a_user_priority_then_fifo_and_aging_lifts_old_jobs() {
    let mut q = FairQueue::default();
    q.insert("alice", &job(1, "a", 1, 5), 0);
    q.insert("alice", &job(2, "a", 1, 0), 0);
    q.insert("alice", &job(3, "b", 2, 0), 0);
    q.insert("alice", &job(4, "a", 1, 0), 0);
    assert_eq!(select(&q, 10), vec![2, 3, 4, 1]);
    // Job 1 waited 5 aging steps: it now ranks with priority 0 and is the oldest.
    let mut old = job(10, "a", 1, 5);
    old.scheduled = Some("1970-01-01T00:00:00.000+00:00".into());
    let mut q = FairQueue::default();
    q.insert("alice", &old, 0);
    q.insert("alice", &job(11, "a", 1, 0), 100);
    let s = Starvation {
        aging_step_s: 10,
        max_age_boost: 39,
        ..Starvation::default()
    };
    let ids = q
        .select(100, 10, &s, &BTreeMap::new(), &Demand::default())
        .ids;
    assert_eq!(ids, vec![10, 11]);
}

#[test]
fn users_take_turns_by_dominant_share_and_weight() {
    let mut q = FairQueue::default();
    for id in 1..=100 {
        q.insert("alice", &job(id, "a", 1, 0), 0);
        q.insert("bob", &job(1000 + id, "b", 1, 0), 0);
    }
    q.set_weight("bob", 3.0);
    let total = Demand {
        cpus: 100.0,
        mem_mb: 1e9,
    };
    let ids = q.select(0, 40, &no_aging(), &BTreeMap::new(), &total).ids;
    let bob = ids.iter().filter(|&&id| id > 1000).count();
    assert!(
        (29..=31).contains(&bob),
        "bob's weight is 3 to alice's 1: {ids:?}"
    );
    // Alice already runs half the cluster: bob goes first.
    q.set_weight("bob", 1.0);
    let running = BTreeMap::from([(
        "alice".to_owned(),
        Demand {
            cpus: 50.0,
            mem_mb: 0.0,
        },
    )]);
    let ids = q.select(0, 50, &no_aging(), &running, &total).ids;
    assert!(ids[..50].iter().all(|&id| id > 1000), "{ids:?}");
    assert_eq!(ids[50..], [1], "alice's class is still considered: {ids:?}");
}

#[test]
fn a_user_at_its_running_quota_is_held_with_the_reason() {
    let mut q = FairQueue::default();
    for id in 1..=20 {
        q.insert("alice", &job(id, "a", 1, 0), 0);
        q.insert("bob", &job(100 + id, "b", 1, 0), 0);
    }
    q.insert("alice", &job(50, "other", 2, 0), 0);
    let mut limits = retz_proto::api::UserLimits::new("alice");
    limits.quota.max_running_cpus = Some(4);
    q.book_mut().set(limits);
    let total = Demand {
        cpus: 100.0,
        mem_mb: 1e9,
    };
    let at = |cpus: f64| BTreeMap::from([("alice".to_owned(), Demand { cpus, mem_mb: 0.0 })]);
    // At the limit: none of alice's jobs, in the budget or as a class head.
    let sel = q.select(0, 30, &no_aging(), &at(4.0), &total);
    assert!(sel.ids.iter().all(|&id| id > 100), "{:?}", sel.ids);
    assert_eq!(sel.held["alice"], "user at running-CPU quota 4/4");
    q.set_held(&sel.held);
    assert_eq!(
        q.waiting_reason(20).as_deref(),
        Some("user at running-CPU quota 4/4")
    );
    assert!(
        q.waiting_reason(120).unwrap().contains("behind 19 jobs"),
        "bob is not held"
    );
    // One CPU below: exactly one more 1-CPU job of alice, none of her 2-CPU class.
    let sel = q.select(0, 30, &no_aging(), &at(3.0), &total);
    let alice: Vec<u64> = sel.ids.iter().copied().filter(|&id| id <= 100).collect();
    assert_eq!(alice, [1], "{:?}", sel.ids);
    // Memory quotas hold the same way; a cleared quota holds nothing.
    let mut limits = retz_proto::api::UserLimits::new("alice");
    limits.quota.max_running_mem_mb = Some(100);
    q.book_mut().set(limits);
    let mut mem = at(0.0);
    mem.get_mut("alice").unwrap().mem_mb = 100.0;
    let mut j = job(60, "a", 1, 0);
    j.resources.mem_mb = ResourceRange::exactly(10);
    q.insert("alice", &j, 0);
    let sel = q.select(0, 60, &no_aging(), &mem, &total);
    assert_eq!(sel.held["alice"], "user at running-memory quota 100/100");
    assert!(!sel.ids.contains(&60));
    q.book_mut().set(retz_proto::api::UserLimits::new("alice"));
    let sel = q.select(0, 60, &no_aging(), &mem, &total);
    assert!(sel.held.is_empty() && sel.ids.contains(&60), "{sel:?}");
    q.set_held(&sel.held);
    assert!(!q.waiting_reason(20).unwrap().contains("quota"));
}

/// Starts `n` jobs on a cluster of `slots` 1-CPU slots, one per free slot, the oldest
/// running job finishing when all are busy; returns the users of the starts in order.
fn run_shares(q: &mut FairQueue, slots: usize, n: usize) -> Vec<String> {
    let total = Demand {
        cpus: slots as f64,
        mem_mb: 1e9,
    };
    let mut running: std::collections::VecDeque<String> = Default::default();
    let mut usage: BTreeMap<String, Demand> = BTreeMap::new();
    let mut starts = Vec::new();
    for _ in 0..n {
        if running.len() == slots {
            let done = running.pop_front().unwrap();
            usage.get_mut(&done).unwrap().cpus -= 1.0;
        }
        let ids = q.select(0, 1, &no_aging(), &usage, &total).ids;
        let user = q.owner(ids[0]).unwrap();
        q.remove(ids[0]);
        usage.entry(user.clone()).or_default().cpus += 1.0;
        starts.push(user.clone());
        running.push_back(user);
    }
    starts
}

#[test]
fn one_user_flooding_does_not_delay_another_and_weights_set_the_split() {
    let mut q = FairQueue::default();
    for id in 1..=10_000 {
        q.insert("flood", &job(id, "a", 1, 0), 0);
    }
    for id in 20_001..=20_010 {
        q.insert("late", &job(id, "b", 1, 0), 10);
    }
    // Two slots: of the first 20 starts, the late user's ten jobs take every other
    // one (its running share stays at or below the flooder's), all done by start 20.
    let starts = run_shares(&mut q, 2, 20);
    let late: Vec<usize> = (0..20).filter(|&i| starts[i] == "late").collect();
    assert_eq!(late.len(), 10, "{starts:?}");
    assert!(late.windows(2).all(|w| w[1] - w[0] <= 2), "{starts:?}");
    // Weights 2:1 on three slots: two thirds of the starts are a's (a runs 2, b 1).
    let mut q = FairQueue::default();
    for id in 1..=1_000 {
        q.insert("a", &job(2 * id, "a", 1, 0), 2 * id);
        q.insert("b", &job(2 * id + 1, "b", 1, 0), 2 * id + 1);
    }
    q.set_weight("a", 2.0);
    let starts = run_shares(&mut q, 3, 600);
    let a = starts.iter().filter(|u| *u == "a").count() as f64 / 600.0;
    assert!((a - 2.0 / 3.0).abs() < 0.01, "{a}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// (user, app, cpus, priority) of each job; ids follow the order.
    fn queue_spec() -> impl Strategy<Value = Vec<(u8, u8, u32, i32)>> {
        prop::collection::vec((0u8..4, 0u8..3, 1u32..4, -2i32..3), 1..120)
    }

    fn build(spec: &[(u8, u8, u32, i32)]) -> FairQueue {
        let mut q = FairQueue::default();
        for (i, &(u, a, c, p)) in spec.iter().enumerate() {
            q.insert(
                &format!("u{u}"),
                &job(i as u64 + 1, &format!("a{a}"), c, p),
                0,
            );
        }
        q
    }

    fn classes_of(spec: &[(u8, u8, u32, i32)], ids: &[u64]) -> std::collections::BTreeSet<String> {
        ids.iter()
            .map(|id| {
                let (u, a, c, _) = spec[*id as usize - 1];
                class_key(&format!("u{u}"), &job(0, &format!("a{a}"), c, 0))
            })
            .collect()
    }

    proptest! {
        /// Every cycle considers the head of every class, each job once, queued jobs only.
        #[test]
        fn every_class_head_in_every_selection(spec in queue_spec(), budget in 0usize..40) {
            let q = build(&spec);
            let ids = select(&q, budget);
            let mut seen = std::collections::BTreeSet::new();
            for id in &ids {
                prop_assert!(seen.insert(*id), "{id} twice");
                prop_assert!(q.contains(*id));
            }
            prop_assert!(ids.len() >= budget.min(q.len()));
            // One head per class: the selection's classes are all the classes.
            prop_assert_eq!(classes_of(&spec, &ids).len(), q.class_count());
        }

        /// With weights w_a:w_b and both users always queued, the starts split in
        /// proportion to the weights, within what whole slots allow: a user's running
        /// jobs settle within one slot of its weighted share of the slots (and exactly on
        /// it when the slots divide by w_a + w_b).
        #[test]
        fn starts_follow_the_weights(wa in 1u32..5, wb in 1u32..5, slots in 2usize..12) {
            let mut q = FairQueue::default();
            // Interleaved submissions (as two users submitting over time).
            for id in 1..=1_000 {
                q.insert("a", &job(2 * id, "a", 1, 0), 2 * id);
                q.insert("b", &job(2 * id + 1, "b", 1, 0), 2 * id + 1);
            }
            q.set_weight("a", f64::from(wa));
            q.set_weight("b", f64::from(wb));
            let n = 800;
            let starts = run_shares(&mut q, slots, n);
            let got = starts.iter().filter(|u| *u == "a").count() as f64 / n as f64;
            let want = f64::from(wa) / f64::from(wa + wb);
            let slack = if slots % (wa + wb) as usize == 0 { 0.02 } else { 1.0 / slots as f64 + 0.02 };
            prop_assert!((got - want).abs() <= slack, "a got {got}, want {want} on {slots} slots");
        }

        /// No class is starved across cycles: whatever the outcome of the cycles before
        /// (jobs launched from the front, classes marked never fitting), each cycle still
        /// considers every class, and a class's jobs are taken in its own order.
        #[test]
        fn no_class_starves_across_cycles(
            spec in queue_spec(),
            budget in 1usize..10,
            never in prop::collection::vec(any::<bool>(), 64),
        ) {
            let mut q = build(&spec);
            let mut cycle = 0;
            while !q.is_empty() {
                let ids = select(&q, budget);
                prop_assert_eq!(classes_of(&spec, &ids).len(), q.class_count());
                let mut last: BTreeMap<String, (i32, u64)> = BTreeMap::new();
                for &id in &ids {
                    let (u, a, c, p) = spec[id as usize - 1];
                    let class = class_key(&format!("u{u}"), &job(0, &format!("a{a}"), c, 0));
                    if let Some(prev) = last.insert(class, (p, id)) {
                        prop_assert!(prev < (p, id), "{prev:?} before {:?}", (p, id));
                    }
                }
                let waiting: BTreeMap<u64, (String, bool)> = ids
                    .iter()
                    .skip(1)
                    .map(|&id| (id, ("busy".to_owned(), never[(id as usize + cycle) % 64])))
                    .collect();
                q.set_outcome(&ids, &waiting);
                q.remove(ids[0]);
                cycle += 1;
            }
        }

        /// The selection (dense indexes, one iterator per level) is the plain walk's
        /// (`reference`): same ids in the same order and the same held users, over
        /// queues with several users, levels, submit times (aging), weights, quotas,
        /// running demand, classes marked never fitting and jobs removed.
        #[test]
        fn the_selection_is_the_plain_walks(
            spec in queue_spec(),
            ats in prop::collection::vec(0u64..400, 120),
            budget in 0usize..40,
            weights in prop::collection::vec(0u32..4, 4),
            quota in prop::option::of(1u64..6),
            running in prop::collection::vec(0u32..6, 4),
            never in prop::collection::vec(any::<bool>(), 16),
            removed in prop::collection::vec(any::<bool>(), 120),
            now in 0u64..500,
        ) {
            let mut q = FairQueue::default();
            let jobs: Vec<(String, Job)> = spec
                .iter()
                .enumerate()
                .map(|(i, &(u, a, c, p))| {
                    let mut j = job(i as u64 + 1, &format!("a{a}"), c, p);
                    j.resources.mem_mb = ResourceRange::exactly(u64::from(c % 2) * 100);
                    (format!("u{u}"), j)
                })
                .collect();
            for (i, (owner, j)) in jobs.iter().enumerate() {
                q.insert(owner, j, ats[i]);
            }
            for (u, &w) in weights.iter().enumerate() {
                q.set_weight(&format!("u{u}"), f64::from(w));
            }
            if let Some(cpus) = quota {
                let mut limits = retz_proto::api::UserLimits::new("u1");
                limits.quota.max_running_cpus = Some(cpus);
                q.book_mut().set(limits);
            }
            let s = Starvation { aging_step_s: 60, max_age_boost: 3, ..Starvation::default() };
            let total = Demand { cpus: 16.0, mem_mb: 1000.0 };
            let running: BTreeMap<String, Demand> = running
                .iter()
                .enumerate()
                .map(|(u, &c)| (format!("u{u}"), Demand { cpus: f64::from(c), mem_mb: 0.0 }))
                .collect();
            // A first cycle marks some classes never fitting, then some jobs leave.
            let first = q.select(now, budget, &s, &running, &total);
            let waiting: BTreeMap<u64, (String, bool)> = first
                .ids
                .iter()
                .map(|&id| (id, ("busy".to_owned(), never[id as usize % 16])))
                .collect();
            q.set_outcome(&first.ids, &waiting);
            for (i, &r) in removed.iter().enumerate().take(spec.len()) {
                if r && i % 3 == 0 {
                    q.remove(i as u64 + 1);
                }
            }
            // Some come back (a retried job queued again): an older id ahead of newer
            // ones in its level, at a later submit time.
            for (i, &r) in removed.iter().enumerate().take(spec.len()) {
                if r && i % 6 == 0 {
                    let (owner, j) = &jobs[i];
                    q.insert(owner, j, ats[i] + 1);
                }
            }
            let fast = q.select(now, budget, &s, &running, &total);
            let slow = super::super::reference::select(&q, now, budget, &s, &running, &total);
            prop_assert_eq!(fast, slow);
        }
    }
}
