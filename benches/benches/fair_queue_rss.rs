//! Memory of the planner's fair queue at scale: 1,000,000 QUEUED jobs in 10,000 request
//! classes (100 users × 100 shapes, as `fair_queue`) inserted into a
//! `retz_scheduler::planner::fairq::FairQueue`, then one selection of the 10,000-job
//! window with the window's full records held (as the planner's `hot` cache does).
//! Printed: this process's resident set (VmRSS) and its peak (VmHWM) from
//! `/proc/self/status` before, after the fill, and after the selection.
//!
//! Not a criterion bench: the figure is one process's memory. It measures the queue the
//! server keeps, in-process; `server_rss` measures the whole `retz-server` (one class).
//! Goal (issue 15): the server's RSS with this queue < 1 GiB.
//!
//! `cargo bench -p retz-benches --bench fair_queue_rss`

use std::collections::BTreeMap;

use retz_placement::{AffinityPolicy, ResourceRange, Starvation};
use retz_proto::api::Job;
use retz_scheduler::planner::fairq::{Demand, FairQueue};

const USERS: u64 = 100;
const SHAPES: u64 = 100;
const JOBS: u64 = 1_000_000;
const WINDOW: usize = 10_000;

/// Job `id` as in the `fair_queue` bench: user `id % USERS`, shape `(id / USERS) % SHAPES`.
fn job(id: u64) -> (String, Job) {
    let shape = (id / USERS) % SHAPES;
    let mut j = Job::new("app", "java -jar app.jar");
    j.id = id;
    j.resources.cpu = ResourceRange::exactly(1 + shape as u32);
    j.resources.mem_mb = ResourceRange::exactly(256 * (1 + shape % 4));
    j.affinity = Some(AffinityPolicy::NumaPrefer);
    j.priority = (id % 5) as i32 - 2;
    (format!("user{}", id % USERS), j)
}

/// (VmRSS, VmHWM) in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

fn report(what: &str) {
    let (now, peak) = rss();
    println!("fair_queue_rss: {what}: VmRSS {now:.1} MiB, VmHWM {peak:.1} MiB");
}

fn main() {
    report("empty");
    let mut q = FairQueue::default();
    for id in 1..=JOBS {
        let (owner, j) = job(id);
        q.insert(&owner, &j, 0);
    }
    assert_eq!(q.class_count(), (USERS * SHAPES) as usize);
    report(&format!(
        "{} jobs in {} classes queued",
        q.len(),
        q.class_count()
    ));
    let total = Demand {
        cpus: 64_000.0,
        mem_mb: 16_384_000.0,
    };
    let sel = q.select(0, WINDOW, &Starvation::default(), &BTreeMap::new(), &total);
    let hot: BTreeMap<u64, Job> = sel.ids.iter().map(|&id| (id, job(id).1)).collect();
    report(&format!(
        "after one selection, {} window records held",
        hot.len()
    ));
}
