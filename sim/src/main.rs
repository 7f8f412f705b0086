//! `retz-sim`: the command line (`run`, `tune`, `gen-workload`, `fit`, `gen-history`). Parses flags, loads the
//! inputs, calls the library, writes the outputs; every error is one line on stderr and a
//! non-zero exit (1 for bad input or I/O, 2 for bad flags).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use retz_placement::AffinityPolicy;
use retz_sim::generate::{GenOptions, rate_for_load, write_jsonl};
use retz_sim::policy::{NamedPolicy, load_policy, policy_toml, unique_names};
use retz_sim::report::{Timing, report_text, to_json_pretty, write_file, write_run};
use retz_sim::tune::{TuneOptions, toml_comments, tune};
use retz_sim::{
    ClusterOptions, Format, ImportOptions, RuntimeModel, SimOptions, fit, history, load_cluster,
    load_workload, run_policies_model,
};

// The placement engine rebuilds its working state every cycle, which is allocation-heavy;
// mimalloc makes a simulation about a third faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Placement simulation for Retz: replays a workload against a cluster through the Retz
/// placement engine on virtual time, compares policies, tunes the cost model.
#[derive(Parser, Debug)]
#[command(name = "retz-sim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate one or more policies and write summary.json, per-job CSVs and charts.
    Run(RunArgs),
    /// Search the cost-model weights and affinity choice; write the best policy file.
    Tune(TuneArgs),
    /// Write a synthetic workload (native JSON lines).
    GenWorkload(GenArgs),
    /// Fit the placement runtime model of each application to a job history.
    Fit(FitArgs),
    /// Write a synthetic job history with known placement factors (for `fit`).
    GenHistory(GenHistoryArgs),
}

#[derive(Args, Debug)]
struct FitArgs {
    /// The history: JSON lines as `retz-admin export-history` writes them.
    #[arg(long, value_name = "FILE")]
    history: PathBuf,
    /// Output directory: model.json and one chart per application.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Applications with fewer usable jobs are pooled into the model "*".
    #[arg(long, value_name = "N", default_value_t = 30)]
    min_jobs: usize,
    /// Do not print the table on stdout.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct GenHistoryArgs {
    /// Output file (history JSON lines).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// An application and its true factors, NAME:NODES,L3,SMT,REMOTE[@JOBS]
    /// (repeatable; default: etl:1.45,1.05,1.20,1.60@600, ml:1.02,1.25,1.35,1.10@400,
    /// tiny:1.30,1.00,1.00,1.30@20).
    #[arg(long = "app", value_name = "SPEC")]
    apps: Vec<String>,
    /// Standard deviation of the log-normal runtime noise.
    #[arg(long, default_value_t = 0.1)]
    noise: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug, Clone)]
struct Inputs {
    /// Hosts and topologies, e.g. `20x@pack:2 numa:2 core:4 pu:2,4x@topo.json` or
    /// `recording:events.jsonl`.
    #[arg(long, value_name = "SPEC")]
    cluster: String,
    /// The workload file (.swf, .jsonl, .csv for Alibaba batch_task).
    #[arg(long, value_name = "FILE")]
    workload: PathBuf,
    /// Workload format when the extension does not say: swf, jsonl or alibaba.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Memory of each NUMA node of a synthetic topology without `memory=`, MB.
    #[arg(long, value_name = "MB", default_value_t = 65_536)]
    node_mem_mb: u64,
    /// Alibaba traces: memory of one machine, MB, to turn plan_mem (0-100) into MB;
    /// 0 = memory not modelled.
    #[arg(long, value_name = "MB", default_value_t = 0)]
    alibaba_machine_mem_mb: u64,
    /// Plan only every S seconds of virtual time (a timer-driven server) instead of after
    /// every batch of arrivals and completions.
    #[arg(long, value_name = "S", default_value_t = 0)]
    cycle_interval: u64,
    /// Plan over at most N queued jobs per cycle, the most urgent by (priority, arrival),
    /// as retz-server does (its planner.window, default 10000); 0 = the whole queue.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    window: usize,
    /// Threads (one simulation per thread); default: the machine's CPUs.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// A policy file (TOML with a [placement] table), a built-in (retz, numa-strict,
    /// numa-prefer, spread, none) or a baseline (first-fit, node-blind); repeatable.
    #[arg(long = "policy", value_name = "FILE|NAME", required = true)]
    policies: Vec<String>,
    /// Lay every job over L3 cache domains this way (pack or spread) instead of its own
    /// choice, in every retz policy (the first-fit and node-blind baselines ignore it);
    /// a policy file's `cache` key does the same for one policy.
    #[arg(long, value_name = "pack|spread")]
    cache: Option<retz_placement::CachePolicy>,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Time each planning cycle with the real clock: fills decision_latency_p99_us and
    /// writes timing.json (outputs are then no longer byte-identical across runs).
    #[arg(long)]
    measure_latency: bool,
    /// Time bins of the over-time charts.
    #[arg(long, value_name = "N", default_value_t = 400)]
    bins: usize,
    /// A runtime model (model.json of `retz-sim fit` or `retz-executor calibrate`): each
    /// job's runtime is scaled to the placement it gets; summary.json gains
    /// throughput_jobs_per_h and modelled_makespan_s.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Do not print the report on stdout.
    #[arg(long, short)]
    quiet: bool,
    /// The weight of a user (the workload's user id) in the multi-user order (weighted
    /// dominant-resource fairness); repeatable; users not named have weight 1.
    #[arg(long = "share", value_name = "USER=WEIGHT")]
    shares: Vec<retz_sim::fairshare::Share>,
}

#[derive(Args, Debug)]
struct TuneArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// Output directory: best-policy.toml, tune.json and a run comparing the baselines,
    /// the start point and the tuned policy.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed of the coordinate order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most coordinate rounds.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Most simulations in all (the 7 baseline and start simulations always run).
    #[arg(long, value_name = "N", default_value_t = 120)]
    max_evals: usize,
    /// A runtime model: optimise throughput, then modelled makespan, and search the L3
    /// cache layout too.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Do not print the report on stdout.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct GenArgs {
    /// Output file (native JSON lines).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Number of jobs.
    #[arg(long, default_value_t = 1000)]
    jobs: u64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean arrivals per second (ignored with --load).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Offered load (e.g. 0.9) of --cluster's CPUs; sets the arrival rate.
    #[arg(long, requires = "cluster")]
    load: Option<f64>,
    /// The cluster SPEC --load refers to.
    #[arg(long, value_name = "SPEC")]
    cluster: Option<String>,
    /// CPU counts drawn uniformly (repeat one to weight it).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    cpus: Vec<u32>,
    /// Shortest runtime, s.
    #[arg(long, default_value_t = 60)]
    runtime_min: u64,
    /// Longest runtime, s (log-uniform between the two).
    #[arg(long, default_value_t = 3600)]
    runtime_max: u64,
    /// Memory per CPU, MB.
    #[arg(long, default_value_t = 1024)]
    mem_per_cpu_mb: u64,
    /// Affinity policies with weights, e.g. `numa-prefer=3,numa-strict=1`.
    #[arg(long, value_delimiter = ',', default_value = "numa-prefer=1")]
    policy_mix: Vec<String>,
}

fn threads(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1)
}

fn load_inputs(i: &Inputs) -> Result<(retz_sim::Cluster, retz_sim::Workload)> {
    let format = match &i.format {
        Some(f) => Some(
            f.parse::<Format>()
                .map_err(|e| anyhow::anyhow!("--format: {e}"))?,
        ),
        None => None,
    };
    let cluster = load_cluster(
        &i.cluster,
        &ClusterOptions {
            node_mem_mb: i.node_mem_mb,
        },
    )?;
    let workload = load_workload(
        &i.workload,
        format,
        &ImportOptions {
            alibaba_machine_mem_mb: i.alibaba_machine_mem_mb,
        },
    )?;
    Ok((cluster, workload))
}

fn cmd_run(a: &RunArgs) -> Result<()> {
    let mut policies: Vec<NamedPolicy> = a
        .policies
        .iter()
        .map(|p| load_policy(p))
        .collect::<Result<_, _>>()?;
    if let Some(cache) = a.cache {
        for p in &mut policies {
            p.config.cache = Some(cache);
        }
    }
    unique_names(&mut policies);
    let (cluster, workload) = load_inputs(&a.inputs)?;
    let opts = SimOptions {
        cycle_interval_s: a.inputs.cycle_interval,
        measure_latency: a.measure_latency,
        window: (a.inputs.window > 0).then_some(a.inputs.window),
        shares: retz_sim::fairshare::Shares::new(&a.shares),
    };
    // Timing is cleaner when simulations do not share the CPUs.
    let n = if a.measure_latency {
        1
    } else {
        threads(a.inputs.threads)
    };
    let model = a.model.as_deref().map(RuntimeModel::load).transpose()?;
    let done = run_policies_model(&cluster, &workload, &policies, &opts, n, model.as_ref())?;
    let timings: Option<Vec<Timing>> = a
        .measure_latency
        .then(|| done.iter().map(|(r, d)| Timing::of(r, *d)).collect());
    let results: Vec<_> = done.into_iter().map(|(r, _)| r).collect();
    let summaries = write_run(
        &a.out,
        &cluster,
        &workload,
        &policies,
        &results,
        &opts,
        a.bins,
        timings.as_deref(),
    )?;
    if !a.quiet {
        let mut text = report_text(&cluster, &workload, &summaries);
        text.push_str(&modelled_lines(&summaries));
        if let Some(t) = &timings {
            text.push_str("\nwall time per policy (not in the deterministic outputs):\n");
            for t in t {
                text.push_str(&format!(
                    "  {}: {:.1} ms, {} cycles ({:.1} ms planning), cycle p50 {:.1} us, p99 {:.1} us, max {:.1} us\n",
                    t.policy,
                    t.wall_ms,
                    t.cycles,
                    t.plan_total_ms,
                    t.cycle_p50_us,
                    t.cycle_p99_us,
                    t.cycle_max_us
                ));
            }
        }
        text.push_str(&format!("\noutputs in {}\n", a.out.display()));
        print!("{text}");
    }
    Ok(())
}

fn cmd_tune(a: &TuneArgs) -> Result<()> {
    let (cluster, workload) = load_inputs(&a.inputs)?;
    let opts = TuneOptions {
        seed: a.seed,
        rounds: a.rounds,
        max_evals: a.max_evals,
        sim: SimOptions {
            cycle_interval_s: a.inputs.cycle_interval,
            measure_latency: false,
            window: (a.inputs.window > 0).then_some(a.inputs.window),
            ..SimOptions::default()
        },
        threads: threads(a.inputs.threads),
        model: a.model.as_deref().map(RuntimeModel::load).transpose()?,
    };
    let report = tune(&cluster, &workload, &opts)?;
    fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let comments = toml_comments(&report, &cluster, &workload);
    let toml = policy_toml(&report.best_config, &comments)
        .context("cannot write the tuned policy as TOML")?;
    write_file(&a.out, "best-policy.toml", &toml)?;
    write_file(&a.out, "tune.json", &to_json_pretty(&report))?;
    // The figures that justify the choice, as a normal run.
    let start = &report.evaluations[report.start];
    let mut start_cfg = start.config.clone();
    start_cfg.name = format!("start:{}", start.affinity);
    let mut policies = vec![
        load_policy("first-fit")?,
        load_policy("node-blind")?,
        NamedPolicy {
            name: start_cfg.name.clone(),
            source: "tune start".to_string(),
            config: start_cfg,
        },
        NamedPolicy {
            name: "tuned".to_string(),
            source: "best-policy.toml".to_string(),
            config: report.best_config.clone(),
        },
    ];
    unique_names(&mut policies);
    let done = run_policies_model(
        &cluster,
        &workload,
        &policies,
        &opts.sim,
        opts.threads,
        opts.model.as_ref(),
    )?;
    let results: Vec<_> = done.into_iter().map(|(r, _)| r).collect();
    let summaries = write_run(
        &a.out, &cluster, &workload, &policies, &results, &opts.sim, 400, None,
    )?;
    if !a.quiet {
        let mut text = report_text(&cluster, &workload, &summaries);
        text.push_str(&modelled_lines(&summaries));
        text.push('\n');
        for c in &comments {
            text.push_str(&format!("# {c}\n"));
        }
        text.push_str(&format!(
            "\nbest policy: {}\n",
            a.out.join("best-policy.toml").display()
        ));
        print!("{text}");
    }
    Ok(())
}

/// The modelled figures of a run, when a model was given (else nothing).
fn modelled_lines(summaries: &[retz_sim::Summary]) -> String {
    let mut s = String::new();
    for x in summaries {
        if let (Some(t), Some(m)) = (x.throughput_jobs_per_h, x.modelled_makespan_s) {
            if s.is_empty() {
                s.push_str("\nunder the runtime model:\n");
            }
            s.push_str(&format!(
                "  {}: throughput {t:.3} jobs/h, makespan {m} s\n",
                x.policy
            ));
        }
    }
    s
}

fn cmd_fit(a: &FitArgs) -> Result<()> {
    let h = history::load(&a.history)?;
    let r = fit::fit(
        &h,
        &fit::FitOptions {
            min_jobs: a.min_jobs,
        },
    )
    .with_context(|| a.history.display().to_string())?;
    fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    write_file(&a.out, "model.json", &to_json_pretty(&fit::model_of(&r)))?;
    for f in &r.apps {
        write_file(&a.out, &fit::chart_name(&f.app), &fit::chart(f))?;
    }
    if !a.quiet {
        print!(
            "{}\nmodel: {}\n",
            fit::table(&r),
            a.out.join("model.json").display()
        );
    }
    Ok(())
}

fn cmd_gen_history(a: &GenHistoryArgs) -> Result<()> {
    let apps: Vec<history::SynthApp> = if a.apps.is_empty() {
        history::default_apps()
    } else {
        a.apps
            .iter()
            .map(|s| s.parse().map_err(|e| anyhow::anyhow!("--app {e}")))
            .collect::<Result<_>>()?
    };
    if !(a.noise.is_finite() && a.noise >= 0.0) {
        bail!("--noise {} must be a number >= 0", a.noise);
    }
    let text = history::generate(&apps, a.noise, a.seed);
    fs::write(&a.out, &text).with_context(|| format!("cannot write {}", a.out.display()))?;
    eprintln!(
        "wrote {} history lines to {}",
        text.lines().count(),
        a.out.display()
    );
    Ok(())
}

fn parse_mix(items: &[String]) -> Result<Vec<(AffinityPolicy, u32)>> {
    items
        .iter()
        .map(|it| {
            let (name, w) = it.split_once('=').unwrap_or((it.as_str(), "1"));
            let p: AffinityPolicy = name
                .parse()
                .map_err(|e| anyhow::anyhow!("--policy-mix: {e}"))?;
            let w: u32 = w.trim().parse().map_err(|_| {
                anyhow::anyhow!("--policy-mix: weight {w:?} of {name} is not a whole number")
            })?;
            Ok((p, w))
        })
        .collect()
}

fn cmd_gen(a: &GenArgs) -> Result<()> {
    let mut o = GenOptions {
        jobs: a.jobs,
        seed: a.seed,
        rate: a.rate,
        cpus: a.cpus.clone(),
        runtime_min_s: a.runtime_min,
        runtime_max_s: a.runtime_max,
        mem_per_cpu_mb: a.mem_per_cpu_mb,
        policies: parse_mix(&a.policy_mix)?,
    };
    if let (Some(load), Some(spec)) = (a.load, &a.cluster) {
        if !(load.is_finite() && load > 0.0) {
            bail!("--load {load} must be a positive number (e.g. 0.9)");
        }
        let c = load_cluster(spec, &ClusterOptions::default())?;
        o.rate = rate_for_load(&o, load, c.total_cpus());
    }
    o.validate().map_err(anyhow::Error::msg)?;
    write_gen(&o, &a.out)
}

fn write_gen(o: &GenOptions, path: &Path) -> Result<()> {
    let f = fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(f);
    write_jsonl(o, &mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote {} jobs to {} (rate {:.4} jobs/s)",
        o.jobs,
        path.display(),
        o.rate
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("retz-sim: error: {first} (see `retz-sim --help`)");
            return ExitCode::from(2);
        }
    };
    let r = match &cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Tune(a) => cmd_tune(a),
        Command::GenWorkload(a) => cmd_gen(a),
        Command::Fit(a) => cmd_fit(a),
        Command::GenHistory(a) => cmd_gen_history(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("retz-sim: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
