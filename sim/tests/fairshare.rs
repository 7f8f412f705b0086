//! The multi-user queue of the simulator: weighted dominant-resource fairness between
//! the users of a workload, per-user figures and Jain's index in `summary.json`, and
//! nothing new for single-user workloads.

use retz_sim::engine::{SimOptions, simulate};
use retz_sim::fairshare::{Share, Shares};
use retz_sim::metrics::summarize;
use retz_sim::report::to_json_pretty;
use retz_sim::workload::{Workload, jsonl, swf};
use retz_sim::{ClusterOptions, SimResult, Summary, load_cluster, load_policy};

/// A generated workload: `per_user[u]` one-CPU jobs of user `u`, all submitted in the
/// first minute, run times 60..=180 s from a fixed linear congruential sequence.
fn generated(per_user: &[u32], user_key: bool) -> Workload {
    let mut lines = Vec::new();
    let mut x: u64 = 12345;
    let mut id = 0;
    for (u, &n) in per_user.iter().enumerate() {
        for k in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            id += 1;
            let runtime = 60 + (x >> 33) % 121;
            let user = if user_key {
                format!(",\"user\":{}", u + 1)
            } else {
                String::new()
            };
            lines.push(format!(
                "{{\"id\":{id},\"submit\":{},\"runtime\":{runtime},\"cpus\":1,\"mem\":100{user}}}",
                k % 60
            ));
        }
    }
    jsonl::parse("generated.jsonl", &lines.join("\n")).unwrap()
}

fn run(w: &Workload, shares: &[Share]) -> (SimResult, Summary) {
    let c = load_cluster(
        "1x@pack:1 numa:2 core:15 pu:1",
        &ClusterOptions { node_mem_mb: 65536 },
    )
    .unwrap();
    let p = load_policy("numa-prefer").unwrap();
    let opts = SimOptions {
        shares: Shares::new(shares),
        ..SimOptions::default()
    };
    let r = simulate(&c, w, &p, &opts).unwrap();
    let s = summarize(w, c.total_cpus(), &p, &r);
    (r, s)
}

fn share(s: &str) -> Share {
    s.parse().unwrap()
}

#[test]
fn running_shares_converge_to_the_weights() {
    // User 1 (weight 2) and user 2 (weight 1), each with more work than the 30 CPUs can
    // run at once; user 1 has twice the jobs, so both stay busy to near the end.
    let w = generated(&[1200, 600], true);
    let (r, s) = run(&w, &[share("1=2"), share("2=1")]);
    let f = r.fairness.expect("two users");
    let (a, b) = (f.mean_share[&1], f.mean_share[&2]);
    let ratio = a / b;
    assert!(
        (ratio - 2.0).abs() <= 0.2,
        "shares {a:.4} : {b:.4} = {ratio:.3}, want 2 within 10 %"
    );
    let users = s.users.expect("per-user figures");
    assert_eq!(users["1"].jobs, 1200);
    assert_eq!(users["2"].jobs, 600);
    assert_eq!(users["1"].placed + users["2"].placed, 1800);
    // Weighted shares are equal, so Jain's index over them is close to 1.
    let j = s.jain_index.flatten().expect("counted time");
    assert!(j > 0.95, "{j}");
    // Without weights, the same workload splits the CPUs evenly: ratio about 1.
    let (r, _) = run(&w, &[]);
    let f = r.fairness.unwrap();
    let ratio = f.mean_share[&1] / f.mean_share[&2];
    assert!((ratio - 1.0).abs() <= 0.1, "{ratio}");
}

#[test]
fn equal_users_with_equal_shares_have_jain_index_one() {
    // Identical jobs (1 CPU, 100 s, all at t=0), 300 per user: 15 CPUs each at all times.
    let lines: Vec<String> = (1..=600)
        .map(|id| {
            format!(
                "{{\"id\":{id},\"submit\":0,\"runtime\":100,\"cpus\":1,\"user\":{}}}",
                id % 2 + 1
            )
        })
        .collect();
    let w = jsonl::parse("equal.jsonl", &lines.join("\n")).unwrap();
    let (_, s) = run(&w, &[]);
    let j = s.jain_index.flatten().expect("counted time");
    assert!((j - 1.0).abs() < 1e-9, "{j}");
    // Random run times keep it near 1, not at 1.
    let (_, s2) = run(&generated(&[300, 300], true), &[]);
    assert!(s2.jain_index.flatten().unwrap() > 0.98);
    let json = to_json_pretty(&vec![s]);
    assert!(json.contains("\"users\""), "{json}");
    assert!(json.contains("\"jain_index\""), "{json}");
    assert!(json.contains("\"p95_wait_s\""), "{json}");
}

#[test]
fn a_heavy_weight_takes_the_cluster_first() {
    // User 1 with weight 1000 is served first, user 2 gets what is left: user 1 waits
    // less.
    let w = generated(&[300, 300], true);
    let (_, s) = run(&w, &[share("1=1000")]);
    let users = s.users.unwrap();
    assert!(users["1"].mean_wait_s < users["2"].mean_wait_s, "{users:?}");
}

#[test]
fn single_user_workloads_give_the_same_summary_as_before() {
    // No `user` key (user 0) and one explicit user: the same figures, no new keys, and
    // shares change nothing.
    let plain = generated(&[500], false);
    let one = generated(&[500], true);
    let (r0, s0) = run(&plain, &[]);
    let (r1, s1) = run(&one, &[share("1=3")]);
    assert!(r0.fairness.is_none() && r1.fairness.is_none());
    assert_eq!(r0, r1);
    let (j0, j1) = (to_json_pretty(&vec![s0]), to_json_pretty(&vec![s1]));
    assert_eq!(j0, j1);
    assert!(
        !j0.contains("\"users\"") && !j0.contains("jain_index"),
        "{j0}"
    );
}

#[test]
fn swf_field_12_is_the_user() {
    let text = "; Version: 2.2\n\
        1 0 0 10 1 -1 -1 1 -1 -1 1 5 -1 -1 -1 -1 -1 -1\n\
        2 0 0 10 1 -1 -1 1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n";
    let w = swf::parse("t.swf", text).unwrap();
    let users: Vec<u32> = w.jobs.iter().map(|j| j.user).collect();
    assert_eq!(users, vec![5, 0]);
}
