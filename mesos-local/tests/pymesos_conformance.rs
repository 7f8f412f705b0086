//! Conformance with a real third-party Mesos client: a pymesos 0.3.15 scheduler
//! (`tests/pymesos/scheduler.py`) runs 3 tasks on a pymesos executor
//! (`tests/pymesos/executor.py`) through a LocalCluster of two agents with credentials,
//! over the JSON scheduler and executor APIs. The scheduler authenticates with pymesos'
//! `principal`/`secret` (HTTP Basic); pymesos 0.3.15's executor driver does not read
//! `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, so the test's executor adds the bearer token
//! itself. Every task must go TASK_RUNNING then TASK_FINISHED, with pymesos'
//! acknowledgements counted by the master.
//!
//! pymesos is installed once into a venv under `$CARGO_TARGET_TMPDIR/pymesos-venv`. Its
//! dependency http-parser 0.9.0 ships a Cython `parser.c` that does not build on Python
//! 3.11, so it is installed from its sdist with the C extension disabled: `http_parser.http`
//! then uses its pure-Python parser (`http_parser.pyparser`), which pymesos supports.
//! pymesos' `kazoo` dependency is only needed for `zk://` masters and is left out.
//!
//! Skipped with a message when python3 or its venv module is missing, unless `CI=true`.

mod master_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use master_support::{Http, credential, credentials};
use retz_mesos_local::cluster::{AgentSpec, ClusterConfig, LocalCluster};
use retz_mesos_local::master::MasterConfig;
use retz_proto::mesos::{ExecutorId, FrameworkId};
use retz_topology::TopologySource;

const PYMESOS: &str = "0.3.15";
const HTTP_PARSER: &str = "0.9.0";

enum Setup {
    /// A missing prerequisite of the machine (skip unless CI).
    Missing(String),
    /// Something that should have worked did not.
    Failed(String),
}

fn run(cmd: &mut Command, what: &str) -> Result<String, Setup> {
    let out = cmd
        .output()
        .map_err(|e| Setup::Failed(format!("{what}: cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(Setup::Failed(format!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn system_python() -> Result<PathBuf, Setup> {
    let python =
        std::env::var_os("RETZ_PYTHON3").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    match Command::new(&python).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            return Err(Setup::Missing(format!(
                "{} not found (install python3, or set RETZ_PYTHON3)",
                python.display()
            )));
        }
    }
    let venv = Command::new(&python)
        .args(["-c", "import venv, ensurepip"])
        .output()
        .map_err(|e| Setup::Missing(format!("cannot run python3: {e}")))?;
    if !venv.status.success() {
        return Err(Setup::Missing(
            "python3 has no venv/ensurepip module (apt-get install python3-venv)".into(),
        ));
    }
    Ok(python)
}

/// The venv's python, with pymesos installed (once).
fn pymesos_venv() -> Result<PathBuf, Setup> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pymesos-venv");
    let vpy = dir.join("bin").join("python");
    let marker = dir.join(format!(".retz-pymesos-{PYMESOS}"));
    if marker.is_file() && vpy.is_file() {
        return Ok(vpy);
    }
    let python = system_python()?;
    run(
        Command::new(&python)
            .args(["-m", "venv", "--clear"])
            .arg(&dir),
        "creating the venv",
    )?;
    let pip = |args: &[&str]| {
        let mut c = Command::new(&vpy);
        c.args([
            "-m",
            "pip",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
        ])
        .args(args);
        c
    };
    run(
        &mut pip(&["install", "six", "addict", "setuptools", "wheel"]),
        "pip install six addict setuptools wheel",
    )?;
    let src = dir.join("src");
    let src_s = src.to_string_lossy().into_owned();
    run(
        &mut pip(&[
            "download",
            &format!("http-parser=={HTTP_PARSER}"),
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            &src_s,
        ]),
        "pip download http-parser",
    )?;
    let tarball = src.join(format!("http-parser-{HTTP_PARSER}.tar.gz"));
    run(
        Command::new(&vpy)
            .args([
                "-c",
                "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])",
            ])
            .arg(&tarball)
            .arg(&src),
        "unpacking http-parser",
    )?;
    let pkg = src.join(format!("http-parser-{HTTP_PARSER}"));
    let setup_py = pkg.join("setup.py");
    let text = std::fs::read_to_string(&setup_py)
        .map_err(|e| Setup::Failed(format!("reading {}: {e}", setup_py.display())))?;
    let patched = text.replace("run_setup(not IS_PYPY)", "run_setup(False)");
    if patched == text {
        return Err(Setup::Failed(format!(
            "{}: no `run_setup(not IS_PYPY)` to disable the C extension",
            setup_py.display()
        )));
    }
    std::fs::write(&setup_py, patched)
        .map_err(|e| Setup::Failed(format!("writing {}: {e}", setup_py.display())))?;
    run(
        &mut pip(&[
            "install",
            "--no-deps",
            "--no-build-isolation",
            &pkg.to_string_lossy(),
        ]),
        "pip install http-parser (pure Python)",
    )?;
    run(
        &mut pip(&[
            "install",
            "--no-deps",
            "--no-build-isolation",
            &format!("pymesos=={PYMESOS}"),
        ]),
        "pip install pymesos",
    )?;
    let parser = run(
        Command::new(&vpy).args([
            "-c",
            "import pymesos, addict, six; from http_parser.http import HttpParser; print(HttpParser.__module__)",
        ]),
        "importing pymesos",
    )?;
    if parser.trim() != "http_parser.pyparser" {
        return Err(Setup::Failed(format!(
            "unexpected http-parser implementation: {parser}"
        )));
    }
    std::fs::write(&marker, PYMESOS)
        .map_err(|e| Setup::Failed(format!("writing the marker: {e}")))?;
    Ok(vpy)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("pymesos")
        .join(name)
}

#[test]
fn pymesos_scheduler_and_executor_run_tasks_to_completion() {
    let vpy = match pymesos_venv() {
        Ok(p) => p,
        Err(Setup::Missing(why)) if !retz_testkit::under_ci() => {
            eprintln!("skipping the pymesos conformance test: {why}");
            return;
        }
        Err(Setup::Missing(why) | Setup::Failed(why)) => panic!("pymesos setup: {why}"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ClusterConfig::new(dir.path());
        config.master = MasterConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            allocation_interval: Duration::from_millis(100),
            ..MasterConfig::default()
        };
        config.credentials = Some(credentials(&["pymesos"]));
        config.agents = (0..2)
            .map(|_| AgentSpec {
                disk_mb: Some(1024),
                ..AgentSpec::new(TopologySource::Synthetic(
                    "pack:2 numa:2 core:4 pu:2".into(),
                ))
            })
            .collect();
        let cluster = LocalCluster::start(config).await.expect("cluster starts");
        let master = cluster.master_addr().to_string();
        let cred = credential("pymesos");
        let scheduler = tokio::process::Command::new(&vpy)
            .env("PYMESOS_PRINCIPAL", &cred.principal)
            .env("PYMESOS_SECRET", &cred.secret)
            .arg(script("scheduler.py"))
            .args(["--master", &master, "--tasks", "3", "--timeout", "120"])
            .arg("--executor")
            .arg(script("executor.py"))
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(180), scheduler)
            .await
            .expect("the pymesos scheduler ends")
            .expect("the pymesos scheduler runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.lines().any(|l| l == "DONE"),
            "pymesos scheduler failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
        let fid = stdout
            .lines()
            .find_map(|l| l.strip_prefix("REGISTERED "))
            .expect("REGISTERED line")
            .to_string();
        for i in 0..3 {
            for state in ["TASK_RUNNING", "TASK_FINISHED"] {
                let line = format!("UPDATE task-{i} {state}");
                assert!(
                    stdout.lines().any(|l| l == line),
                    "no `{line}` in:\n{stdout}"
                );
            }
        }
        // The master saw pymesos acknowledge every update, and completed the tasks.
        let anonymous = Http::new(cluster.master_addr());
        let r = anonymous
            .request(hyper::Method::GET, "/state", &[], Vec::new())
            .await;
        assert_eq!(r.status, hyper::StatusCode::UNAUTHORIZED);
        let http = Http::with_credential(cluster.master_addr(), &cred);
        let metrics = http.get_json("/metrics/snapshot").await;
        let acks = metrics["master/messages_status_update_acknowledgement"]
            .as_u64()
            .unwrap();
        assert!(acks >= 6, "acknowledgements: {acks}");
        assert_eq!(metrics["master/tasks_finished"], 3);
        let state = http.get_json("/state").await;
        let fw = state["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .chain(state["completed_frameworks"].as_array().unwrap())
            .find(|f| f["id"] == fid.as_str())
            .expect("the framework in /state")
            .clone();
        assert_eq!(fw["name"], "pymesos-conformance");
        assert_eq!(fw["principal"], "pymesos");
        assert_eq!(fw["capabilities"], serde_json::json!(["GPU_RESOURCES"]));
        let finished = fw["completed_tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "TASK_FINISHED")
            .count();
        assert_eq!(finished, 3, "{fw:#}");
        // The executor wrote each task's data into its sandbox.
        let fid = FrameworkId { value: fid };
        let eid = ExecutorId {
            value: "pymesos-executor".into(),
        };
        let mut outputs = 0;
        for agent in cluster.agents() {
            if let Some(sandbox) = agent.sandbox_dir(&fid, &eid) {
                for i in 0..3 {
                    if let Ok(text) = std::fs::read_to_string(sandbox.join(format!("task-{i}.out")))
                    {
                        assert_eq!(text, format!("{{\"task\": \"task-{i}\"}}"));
                        outputs += 1;
                    }
                }
            }
        }
        assert_eq!(outputs, 3);
        // TEARDOWN (pymesos' stop) shut the executors down.
        let deadline = Instant::now() + Duration::from_secs(60);
        while cluster
            .agents()
            .iter()
            .any(|a| a.is_executor_running(&fid, &eid))
        {
            assert!(
                Instant::now() < deadline,
                "executors still running after TEARDOWN"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cluster.shutdown().await;
    });
}
