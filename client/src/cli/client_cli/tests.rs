//! Unit tests of the client commands: option parsing (the original's single-dash
//! options, ranges, policies) and the jobs and applications built from them.

use super::*;
use retz_placement::{AffinityPolicy, ResourceRange};

fn parse(args: &[&str]) -> Result<Cli, ExitCode> {
    parse_argv("retz-client", args.iter().map(Into::into).collect())
}

#[test]
fn original_single_dash_options_parse() {
    let cli = parse(&[
        "retz-client",
        "schedule",
        "-A",
        "app",
        "-cmd",
        "echo $RETZ_CPU",
        "-cpu",
        "2-4",
        "-mem",
        "512-",
        "-gpu",
        "1",
        "-ports",
        "2",
        "-prio",
        "-3",
        "-E",
        "K=a=b",
        "--tags",
        "x,y",
        "--affinity",
        "spread",
        "--cache",
        "spread",
    ])
    .unwrap();
    let Cmd::Schedule(s) = cli.cmd else {
        panic!("not schedule")
    };
    let job = build_job(&s.job, &dummy_config()).unwrap();
    assert_eq!(job.cmd, "echo $RETZ_CPU");
    assert_eq!(job.resources.cpu, ResourceRange::between(2, 4));
    assert_eq!(job.resources.mem_mb, ResourceRange::at_least(512));
    assert_eq!(
        (job.resources.gpu, job.resources.ports, job.priority),
        (1, 2, -3)
    );
    assert_eq!(job.props["K"], "a=b");
    assert_eq!(job.tags.len(), 2);
    assert_eq!(job.affinity, Some(AffinityPolicy::Spread));
    assert_eq!(job.cache, Some(retz_placement::CachePolicy::Spread));
    assert_eq!(
        parse_cache("l2").unwrap_err(),
        "unknown cache policy \"l2\"; expected one of: pack, spread"
    );
    let bad = [
        "retz-client",
        "schedule",
        "-A",
        "a",
        "-c",
        "x",
        "--cache",
        "l2",
    ];
    assert!(parse(&bad).is_err());
    let cli = parse(&["retz-client", "get-job", "-id", "5"]).unwrap();
    assert!(matches!(cli.cmd, Cmd::GetJob(IdArg { id: 5 })));
    let cli = parse(&["retz-client", "run", "-A", "a", "-c", "x", "-stderr"]).unwrap();
    assert!(matches!(cli.cmd, Cmd::Run(RunArgs { stderr: true, .. })));
}

#[test]
fn bad_values_are_usage_errors() {
    for bad in [
        &[
            "retz-client",
            "schedule",
            "-A",
            "a",
            "-c",
            "x",
            "--cpu",
            "4-2",
        ][..],
        &["retz-client", "schedule", "-A", "a", "-c", "x", "-E", "=v"],
        &[
            "retz-client",
            "schedule",
            "-A",
            "a",
            "-c",
            "x",
            "--priority",
            "20",
        ],
        &[
            "retz-client",
            "schedule",
            "-A",
            "a",
            "-c",
            "x",
            "--ports",
            "1001",
        ],
        &["retz-client", "schedule", "-A", "a"],
        &["retz-client", "frobnicate"],
        &[
            "retz-client",
            "load-app",
            "-A",
            "a",
            "--grace-period",
            "2000",
        ],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn apps_are_checked_before_sending() {
    let app = |args: &[&str]| {
        let mut v = vec!["retz-client", "load-app", "-A", "a"];
        v.extend_from_slice(args);
        let Cmd::LoadApp(a) = parse(&v).unwrap().cmd else {
            panic!()
        };
        build_app(a, &dummy_config())
    };
    let ok = app(&[
        "-F",
        "http://x/a.tgz",
        "http://x/b.tgz",
        "-L",
        "http://x/big",
    ])
    .unwrap();
    assert_eq!(ok.files.len(), 2);
    assert_eq!(ok.owner, "key");
    for root in ["root", " root", "ROOT", "0", "00"] {
        let e = app(&["-U", root]).unwrap_err().to_string();
        assert!(e.contains("never run as root"), "{root:?}: {e}");
    }
    assert_eq!(
        app(&["-U", "alice"]).unwrap().user.as_deref(),
        Some("alice")
    );
    assert!(app(&["--container", "docker"]).is_err());
    assert!(app(&["--image", "x"]).is_err());
    // Sent as asked: the server answers that containers are not supported yet.
    let d = app(&[
        "--container",
        "docker",
        "--image",
        "i",
        "--docker-volumes",
        "d:n:/a,d:m:/b:mode=RW",
    ])
    .unwrap();
    assert!(matches!(d.container, Container::Docker { ref volumes, .. } if volumes.len() == 2));
    assert!(!app(&["--enabled", "false"]).unwrap().enabled);
}

#[test]
fn exit_codes_of_ended_jobs() {
    let mut j = Job::new("a", "x");
    j.state = JobState::Finished;
    j.result = 3;
    assert_eq!(job_exit_code(&j), 3);
    j.result = 300;
    assert_eq!(job_exit_code(&j), 255);
    j.state = JobState::Killed;
    j.result = 3;
    assert_eq!(job_exit_code(&j), 3, "a command that exited 3");
    j.result = -1;
    assert_eq!(job_exit_code(&j), 255, "killed, never exited");
}

fn dummy_config() -> ClientConfig {
    ClientConfig {
        server: "http://127.0.0.1:1".into(),
        access_key: "key".into(),
        secret: "s".into(),
        authentication: true,
        tls_insecure: false,
        ca_cert: None,
    }
}
