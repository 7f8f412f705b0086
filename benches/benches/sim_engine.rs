//! retz-sim: one policy over a generated workload on a 50-host NUMA cluster (the engine
//! plus the placement engine it drives), and the SWF importer.

use criterion::{Criterion, criterion_group, criterion_main};
use retz_sim::generate::{GenOptions, jobs, rate_for_load};
use retz_sim::workload::{Format, Workload};
use retz_sim::{ClusterOptions, SimOptions, load_cluster, load_policy, simulate};

fn workload(n: u64, cluster_cpus: u64) -> Workload {
    let mut o = GenOptions {
        jobs: n,
        seed: 42,
        cpus: vec![1, 2, 4, 8, 12],
        runtime_min_s: 30,
        runtime_max_s: 1800,
        ..GenOptions::default()
    };
    o.rate = rate_for_load(&o, 0.9, cluster_cpus);
    Workload {
        source: "generated".into(),
        format: Format::Jsonl,
        jobs: jobs(&o).collect(),
        header: vec![],
        notes: vec![],
        skipped: Default::default(),
    }
}

fn bench(c: &mut Criterion) {
    let cluster =
        load_cluster("50x@pack:2 numa:2 core:4 pu:2", &ClusterOptions::default()).expect("cluster");
    let w = workload(5_000, cluster.total_cpus());
    let mut g = c.benchmark_group("sim_engine");
    g.sample_size(10);
    for name in ["numa-prefer", "numa-strict", "first-fit", "node-blind"] {
        let p = load_policy(name).expect("policy");
        g.bench_function(format!("5k_jobs_50_hosts/{name}"), |b| {
            b.iter(|| simulate(&cluster, &w, &p, &SimOptions::default()).expect("sim"))
        });
    }
    let dir = std::env::var("RETZ_SHARED_DIR").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        std::path::PathBuf::from,
    );
    if let Ok(text) = std::fs::read_to_string(dir.join("traces/hpc2n.swf")) {
        g.bench_function("swf_import_hpc2n", |b| {
            b.iter(|| retz_sim::workload::swf::parse("hpc2n.swf", &text).expect("swf"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
