//! GPUs end to end on `retz-server --local --gpus 2` (this machine has no GPU: the local
//! agent offers GPUs 0 and 1 on NUMA node 0, with their ids and locality by the NUMA
//! convention). A `-gpu 1` job sees exactly one device in `CUDA_VISIBLE_DEVICES` and
//! `NVIDIA_VISIBLE_DEVICES`, the one its grant records (`get-job --json`, `get-job`);
//! two such jobs running at the same time get different devices; a job without GPUs sees
//! none; a third concurrent GPU job waits until a GPU is free.

use std::time::Duration;

use retz_e2e_tests::{Server, client_ok, job_file, schedule, wait_finished};

const LONG: Duration = Duration::from_secs(180);

/// The text after `label` on the line of `stdout` that starts with it.
fn printed<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {stdout:?}"))
}

const SHOW: &str =
    "echo CUDA=$CUDA_VISIBLE_DEVICES; echo NVIDIA=$NVIDIA_VISIBLE_DEVICES; echo GPU=$RETZ_GPU";

#[test]
fn gpu_jobs_see_exactly_their_granted_devices() {
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local", "--gpus", "2"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "gpu"]);

    // One GPU job alone.
    let id = schedule(c, &["-A", "gpu", "-gpu", "1", "-cmd", SHOW]);
    let job = wait_finished(c, id, LONG);
    assert_eq!(job["granted"]["gpu"], 1, "{job}");
    let ids = job["granted"]["gpuIds"]
        .as_str()
        .unwrap_or_else(|| panic!("no granted gpuIds: {job}"))
        .to_owned();
    assert!(ids == "0" || ids == "1", "one of the agent's GPUs: {job}");
    let out = job_file(c, id, "stdout");
    assert_eq!(printed(&out, "CUDA="), ids, "{out}");
    assert_eq!(printed(&out, "NVIDIA="), ids, "{out}");
    assert_eq!(printed(&out, "GPU="), "1", "{out}");
    let view = client_ok(c, &["get-job", "-i", &id.to_string()]);
    assert!(view.contains(&format!("gpu=1 gpu-ids={ids}")), "{view}");

    // A job without GPUs sees none.
    let id = schedule(c, &["-A", "gpu", "-cmd", SHOW]);
    let job = wait_finished(c, id, LONG);
    assert!(job["granted"].get("gpuIds").is_none(), "{job}");
    let out = job_file(c, id, "stdout");
    assert_eq!(printed(&out, "CUDA="), "", "{out}");
    assert_eq!(printed(&out, "NVIDIA="), "", "{out}");
    assert_eq!(printed(&out, "GPU="), "0", "{out}");

    // Two GPU jobs alive at the same time get different devices; a third GPU job can
    // only start when one of them has ended (the agent has two GPUs).
    // Written by the jobs, which run as another user than the test.
    let flags = retz_e2e_tests::job_writable_dir(dir.path());
    let wait_for = |name: &str| {
        let f = flags.join(name);
        format!(
            "i=0; while [ ! -e '{f}' ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; \
             [ -e '{f}' ]",
            f = f.display()
        )
    };
    let touch = |name: &str| format!("touch '{}'", flags.join(name).display());
    let first = schedule(
        c,
        &[
            "-A",
            "gpu",
            "-gpu",
            "1",
            "-cmd",
            &format!("{SHOW}; {}; {}", touch("first-up"), wait_for("second-up")),
        ],
    );
    let second = schedule(
        c,
        &[
            "-A",
            "gpu",
            "-gpu",
            "1",
            "-cmd",
            &format!("{SHOW}; {}; {}", touch("second-up"), wait_for("first-up")),
        ],
    );
    let third = schedule(
        c,
        &[
            "-A",
            "gpu",
            "-gpu",
            "1",
            "-cmd",
            &format!(
                "{SHOW}; [ -e '{}' ] && [ -e '{}' ]",
                flags.join("first-up").display(),
                flags.join("second-up").display()
            ),
        ],
    );
    let (a, b, t) = (
        wait_finished(c, first, LONG),
        wait_finished(c, second, LONG),
        wait_finished(c, third, LONG),
    );
    let (ga, gb) = (
        a["granted"]["gpuIds"].as_str().unwrap().to_owned(),
        b["granted"]["gpuIds"].as_str().unwrap().to_owned(),
    );
    assert_ne!(ga, gb, "jobs running together share no GPU: {a} {b}");
    let mut both = [ga.clone(), gb.clone()];
    both.sort();
    assert_eq!(both, ["0".to_owned(), "1".to_owned()]);
    for (id, ids) in [(first, &ga), (second, &gb)] {
        let out = job_file(c, id, "stdout");
        assert_eq!(printed(&out, "CUDA="), ids.as_str(), "{out}");
        assert_eq!(printed(&out, "NVIDIA="), ids.as_str(), "{out}");
    }
    let gt = t["granted"]["gpuIds"].as_str().unwrap();
    assert!(gt == "0" || gt == "1", "{t}");
    assert_eq!(printed(&job_file(c, third, "stdout"), "CUDA="), gt);
}
