//! `retz-client`: every subcommand and option of the original client, with the ranges
//! back (`-cpu 2-4`, `-mem 512-`), the affinity policy, `--json` on every read command
//! and shell completions.
//!
//! Output contract: data goes to stdout (tables, `--json`, file contents, the job's
//! stdout for `run`); every error is one line on stderr; `run`'s progress line (queue
//! position, pending reason) goes to stderr and only when stderr is a terminal.
//! `schedule` prints `Job (id=N): ok registered at <ts>` as the original, or only the id
//! with `--quiet`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use retz_proto::api::{Application, ClientConfig, Container, Job, JobState};
use serde::Serialize;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::cli::argv::OptionNames;
use crate::cli::exit::{CliError, clap_one_line};
use crate::cli::follow::{FileRead, ignore_broken_pipe, no_such_job, read_file};
use crate::cli::{output, parse};
use crate::config::Sources;
use crate::{Client, ClientOptions};

pub use super::client_args::Cli;
use super::client_args::*;
use super::get_file::deadline;

/// Entry point of the `retz-client` binary.
pub fn main() -> ExitCode {
    let cli: Cli = match parse_argv("retz-client", std::env::args_os().collect()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    finish(
        "retz-client",
        runtime().and_then(|rt| rt.block_on(dispatch(cli))),
    )
}

/// Parses `argv` (after rewriting single-dash long options); on failure prints help or
/// one error line and returns the exit code.
pub fn parse_argv<P: Parser>(program: &str, argv: Vec<std::ffi::OsString>) -> Result<P, ExitCode> {
    let names = OptionNames::of(&P::command());
    match P::try_parse_from(names.rewrite(super::argv::original_help(argv))) {
        Ok(p) => Ok(p),
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    Err(ExitCode::SUCCESS)
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    Err(ExitCode::from(super::exit::USAGE))
                }
                _ => {
                    eprintln!("{program}: {}; see {program} --help", clap_one_line(&e));
                    Err(ExitCode::from(super::exit::USAGE))
                }
            }
        }
    }
}

/// A single-threaded tokio runtime.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", &e))
}

/// Prints the error line (if any) and turns the outcome into the exit code.
pub fn finish(program: &str, r: Result<u8, CliError>) -> ExitCode {
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes `text` to stdout (a closed pipe is not an error).
pub fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .or_else(ignore_broken_pipe)
        .map_err(|e| CliError::io("cannot write to stdout", &e))
}

/// Writes `value` as pretty JSON plus a newline to stdout.
pub fn emit_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Local(format!("cannot render JSON: {e}")))?;
    emit(&format!("{text}\n"))
}

/// Loads the config for `-C` (or the defaults) and builds a client.
pub fn connect(
    config: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
) -> Result<(Client, PathBuf), CliError> {
    connect_from(&Sources::from_env(config), ca_cert)
}

/// Loads the config from `sources` and builds a client (`--ca-cert` wins over the
/// config's).
pub fn connect_from(
    sources: &Sources,
    ca_cert: Option<PathBuf>,
) -> Result<(Client, PathBuf), CliError> {
    let (mut cfg, path) = sources.load()?;
    if ca_cert.is_some() {
        cfg.ca_cert = ca_cert;
    }
    let client = Client::with_options(cfg, ClientOptions::default())?;
    Ok((client, path))
}

async fn dispatch(cli: Cli) -> Result<u8, CliError> {
    let json = cli.json;
    if let Cmd::Completions { shell } = cli.cmd {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "retz-client", &mut out);
        emit(&String::from_utf8_lossy(&out))?;
        return Ok(0);
    }
    let (client, path) = connect(cli.config, cli.ca_cert)?;
    if cli.verbose {
        eprintln!(
            "retz-client: config {}, server {}",
            path.display(),
            client.server()
        );
    }
    match cli.cmd {
        Cmd::Completions { .. } => Ok(0),
        Cmd::Config => {
            let masked = output::masked_config(client.config());
            if json {
                emit_json(&masked)?;
            } else {
                let text = toml::to_string(&masked)
                    .map_err(|e| CliError::Local(format!("cannot render the config: {e}")))?;
                emit(&format!("# {}\n{text}", path.display()))?;
            }
            Ok(0)
        }
        Cmd::List(a) => list(&client, &a, json).await,
        Cmd::Schedule(a) => {
            let job = build_job(&a.job, client.config())?;
            let job = client.schedule(job).await?;
            if json {
                emit_json(&job)?;
            } else if a.quiet {
                emit(&format!("{}\n", job.id))?;
            } else {
                emit(&format!(
                    "Job (id={}): ok registered at {}\n",
                    job.id,
                    job.scheduled.as_deref().unwrap_or("-")
                ))?;
            }
            Ok(0)
        }
        Cmd::Plan(a) => super::plan_cli::plan(&client, &a, json).await,
        Cmd::Run(a) => run(&client, &a, cli.verbose).await,
        Cmd::GetJob(a) => {
            let r = client.get_job(a.id).await?;
            let Some(job) = &r.job else {
                return Err(no_such_job(&client, a.id));
            };
            if json {
                emit_json(&r)?;
            } else {
                emit(&output::job_view(job, r.queue_position))?;
            }
            Ok(0)
        }
        Cmd::GetFile(a) => super::get_file::get_file(&client, &a, json).await,
        Cmd::ListFiles(a) => {
            let r = client.list_files(a.id, &a.path).await?;
            if json {
                emit_json(&r.entries)?;
            } else {
                emit(&output::files_table(&r.entries))?;
            }
            Ok(0)
        }
        Cmd::Kill(a) => {
            let job = client.kill(a.id).await?;
            if json {
                emit_json(&job)?;
            } else {
                emit(&format!("Job (id={}): {}\n", job.id, job.state))?;
            }
            Ok(0)
        }
        Cmd::Killall(a) => killall(&client, &a.tag, json).await,
        Cmd::LoadApp(a) => {
            let app = build_app(a, client.config())?;
            let app = client.load_app(app).await?;
            if json {
                emit_json(&app)?;
            } else {
                emit(&format!("Application {} loaded\n", app.appid))?;
            }
            Ok(0)
        }
        Cmd::GetApp(a) => {
            let app = client.get_app(&a.appname).await?;
            emit_json(&app)?;
            Ok(0)
        }
        Cmd::ListApp => {
            let apps = client.list_apps().await?;
            if json {
                emit_json(&apps)?;
            } else {
                emit(&output::apps_table(&apps))?;
            }
            Ok(0)
        }
        Cmd::UnloadApp(a) => {
            let app = client.unload_app(&a.appname).await?;
            if json {
                emit_json(&app)?;
            } else {
                emit(&format!("Application {} unloaded\n", app.appid))?;
            }
            Ok(0)
        }
        Cmd::Status => {
            let s = client.status().await?;
            if json {
                emit_json(&s)?;
            } else {
                emit(&format!(
                    "server {}\nmaster {}\nqueued {}\nrunning {}\ncpus used {}\nagents {}\noffers {} ({} cpus)\nplanner backlog {}\n",
                    s.server_version,
                    s.master,
                    s.queue_length,
                    s.running_length,
                    s.total_used,
                    s.num_slaves,
                    s.offers,
                    s.total_offered,
                    s.stanchion_queue_length
                ))?;
            }
            Ok(0)
        }
    }
}

async fn list(client: &Client, a: &ListArgs, json: bool) -> Result<u8, CliError> {
    let states = match a.state {
        Some(s) => vec![s],
        None => a.states.0.clone(),
    };
    let mut jobs = Vec::new();
    for st in states {
        let r = client.list_jobs(st, a.tag.as_deref()).await?;
        if r.more {
            eprintln!(
                "retz-client: the server cut the list of {st} jobs at its limit; narrow it with --tag"
            );
        }
        jobs.extend(r.jobs);
    }
    jobs.sort_by_key(|j| j.id);
    jobs.dedup_by_key(|j| j.id);
    if json {
        emit_json(&jobs)?;
    } else {
        emit(&output::jobs_table(&jobs))?;
    }
    Ok(0)
}

async fn killall(client: &Client, tag: &str, json: bool) -> Result<u8, CliError> {
    let mut targets = Vec::new();
    for st in [JobState::Queued, JobState::Starting, JobState::Started] {
        targets.extend(client.list_jobs(st, Some(tag)).await?.jobs);
    }
    targets.sort_by_key(|j| j.id);
    targets.dedup_by_key(|j| j.id);
    let mut killed = Vec::new();
    let mut failed = 0;
    for j in &targets {
        match client.kill(j.id).await {
            Ok(k) => {
                if !json {
                    emit(&format!("Job (id={}): {}\n", k.id, k.state))?;
                }
                killed.push(k);
            }
            Err(e) if e.is_refusal() => {
                eprintln!("retz-client: cannot kill job {}: {e}", j.id);
                failed += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if json {
        emit_json(&killed)?;
    }
    Ok(if failed > 0 { super::exit::REFUSED } else { 0 })
}

/// Reads the command, or stdin for `-`.
fn command_text(cmd: &str) -> Result<String, CliError> {
    if cmd != "-" {
        return Ok(cmd.to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| CliError::io("cannot read the command from stdin", &e))?;
    let s = s.trim_end_matches(['\n', '\r']).to_owned();
    if s.trim().is_empty() {
        return Err(CliError::Usage(
            "-c - read an empty command from stdin; pipe the command in".into(),
        ));
    }
    Ok(s)
}

pub(super) fn build_job(a: &JobArgs, _config: &ClientConfig) -> Result<Job, CliError> {
    let cmd = command_text(&a.command)?;
    if cmd.trim().is_empty() {
        return Err(CliError::Usage(
            "the command (-c) is empty; give the shell command to run".into(),
        ));
    }
    let mut job = Job::new(a.appname.clone(), cmd);
    job.props = a.env.iter().cloned().collect::<BTreeMap<_, _>>();
    job.resources.cpu = a.cpu;
    job.resources.mem_mb = a.mem;
    job.resources.disk_mb = a.disk;
    job.resources.gpu = a.gpu;
    job.resources.ports = a.ports;
    job.resources.nodes = a.nodes;
    job.priority = a.priority;
    job.attributes = a.attributes.clone();
    if let Some(n) = &a.name {
        job.name = n.clone();
    }
    if let Some(t) = &a.tags {
        job.tags = parse::tags(t);
    }
    job.affinity = a.affinity;
    job.cache = a.cache;
    job.max_retries = a.retries;
    job.retry_on_failure = a.retry_on_failure;
    Ok(job)
}

fn build_app(a: LoadAppArgs, config: &ClientConfig) -> Result<Application, CliError> {
    let container = match (a.container.as_str(), a.image) {
        ("docker", Some(image)) => Container::Docker {
            image,
            volumes: a.docker_volumes,
        },
        ("docker", None) => {
            return Err(CliError::Usage(
                "--container docker needs --image IMAGE".into(),
            ));
        }
        (_, Some(_)) => {
            return Err(CliError::Usage(
                "--image is only for --container docker".into(),
            ));
        }
        (_, None) if !a.docker_volumes.is_empty() => {
            return Err(CliError::Usage(
                "--docker-volumes is only for --container docker".into(),
            ));
        }
        _ => Container::Mesos,
    };
    if let Some(u) = a.user.as_deref().filter(|u| looks_like_root(u)) {
        return Err(CliError::Usage(format!(
            "-U {u:?} is root: jobs never run as root; name an unprivileged user the \
             operator allows, or omit -U to run as the server's default job user"
        )));
    }
    let mut app = Application::new(a.appname, config.access_key.clone());
    app.files = a.files;
    app.large_files = a.large_files;
    app.user = a.user;
    app.grace_period = a.grace_period;
    app.container = container;
    app.enabled = a.enabled;
    app.affinity = a.affinity;
    Ok(app)
}

/// Whether `user` is root in a spelling the client can tell (`root`, ` ROOT `, `0`,
/// `000`). The server decides for real (it also refuses names that are uid 0 there).
fn looks_like_root(user: &str) -> bool {
    let u = user.trim();
    u.eq_ignore_ascii_case("root") || (!u.is_empty() && u.bytes().all(|b| b == b'0'))
}

/// What `run` exits with for a job that ended.
pub fn job_exit_code(job: &Job) -> u8 {
    match job.state {
        JobState::Finished => u8::try_from(job.result).unwrap_or(255),
        // The command ran and exited non-zero (TASK_FAILED): its own code.
        JobState::Killed if job.result > 0 => u8::try_from(job.result).unwrap_or(255),
        _ => 255,
    }
}

async fn run(client: &Client, a: &RunArgs, verbose: bool) -> Result<u8, CliError> {
    let job = build_job(&a.job, client.config())?;
    let job = client.schedule(job).await?;
    let id = job.id;
    if verbose {
        eprintln!(
            "retz-client: job {id} registered at {}",
            job.scheduled.as_deref().unwrap_or("-")
        );
    }
    let until = deadline(a.timeout);
    let tty = std::io::stderr().is_terminal();
    let mut progress_shown = false;
    let mut backoff = Backoff::poll();
    let mut last_state = job.state;
    // wait until the job runs (or ended)
    loop {
        let r = client.get_job(id).await?;
        let job = r.job.ok_or_else(|| no_such_job(client, id))?;
        if job.state != last_state {
            backoff.reset();
            if verbose {
                eprintln!("retz-client: job {id} is {}", job.state);
            }
            last_state = job.state;
        }
        if !matches!(
            job.state,
            JobState::Queued | JobState::Starting | JobState::Created
        ) {
            break;
        }
        if tty {
            let pos = r
                .queue_position
                .map(|p| format!(", position {p} in the queue"))
                .unwrap_or_default();
            let why = job
                .pending
                .as_deref()
                .map(|p| format!(": {p}"))
                .unwrap_or_default();
            let line: String = format!("job {id} {}{pos}{why}", job.state)
                .chars()
                .take(200)
                .collect();
            eprint!("\r\x1b[2K{line}");
            progress_shown = true;
        }
        if until.is_some_and(|d| Instant::now() >= d) {
            return timed_out(client, id, a.timeout, progress_shown).await;
        }
        let mut pause = backoff.next_delay();
        if let Some(d) = until {
            pause = pause.min(d.saturating_duration_since(Instant::now()));
        }
        tokio::time::sleep(pause).await;
    }
    if progress_shown {
        eprint!("\r\x1b[2K");
    }
    let what = FileRead {
        id,
        path: "stdout",
        offset: 0,
        limit: None,
        poll: true,
        deadline: until,
    };
    let mut stdout = std::io::stdout();
    let end = read_file(client, &what, &mut stdout, &mut |_| {}).await?;
    if end.timed_out {
        return timed_out(client, id, a.timeout, false).await;
    }
    if a.stderr {
        let what = FileRead {
            path: "stderr",
            poll: false,
            deadline: None,
            ..what
        };
        let mut stderr = std::io::stderr();
        read_file(client, &what, &mut stderr, &mut |_| {}).await?;
    }
    let job = end.job;
    if job.state != JobState::Finished {
        eprintln!(
            "retz-client: job {id} ended {}: {}",
            job.state,
            job.reason.as_deref().unwrap_or("no reason given")
        );
    } else if verbose {
        eprintln!("retz-client: job {id} finished with {}", job.result);
    }
    Ok(job_exit_code(&job))
}

async fn timed_out(client: &Client, id: u64, minutes: f64, progress: bool) -> Result<u8, CliError> {
    if progress {
        eprint!("\r\x1b[2K");
    }
    client.kill(id).await?;
    eprintln!("retz-client: job {id} did not end within {minutes} min (--timeout); killed it");
    Ok(255)
}

#[cfg(test)]
mod tests;
