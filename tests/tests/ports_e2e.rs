//! Ports end to end on `retz-server --local`: a job run with `-ports 2` gets two distinct
//! ports of the local agent's default `ports:[31000-32000]`, sees them as `$PORT0 $PORT1`
//! (and `$RETZ_PORTS`, and substituted in `-E` values), and they are the grant's ports of
//! `get-job --json`; two jobs that run at the same time never share a port.

use std::collections::BTreeSet;
use std::time::Duration;

use retz_e2e_tests::{Server, client_ok, schedule, wait_finished};

const LONG: Duration = Duration::from_secs(180);

/// The grant's ports of a job's JSON.
fn granted_ports(job: &serde_json::Value) -> Vec<u16> {
    job["granted"]["ports"]
        .as_array()
        .unwrap_or_else(|| panic!("no granted ports: {job}"))
        .iter()
        .map(|p| u16::try_from(p.as_u64().unwrap()).unwrap())
        .collect()
}

/// The numbers following `label` on the line of `stdout` that starts with it.
fn printed(stdout: &str, label: &str) -> Vec<u16> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {stdout:?}"));
    line.split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap_or_else(|_| panic!("{w:?} in {line:?}")))
        .collect()
}

#[test]
fn a_job_gets_its_ports_as_port0_port1_and_in_its_grant() {
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "web"]);

    let id = schedule(
        c,
        &[
            "-A",
            "web",
            "-ports",
            "2",
            "-E",
            "LISTEN=127.0.0.1:$PORT1",
            "-cmd",
            "echo PORTS $PORT0 $PORT1; echo LIST $RETZ_PORTS; echo LISTEN ${LISTEN#*:}; \
             echo QUOTED '$PORT0'",
        ],
    );
    let job = wait_finished(c, id, LONG);
    let ports = granted_ports(&job);
    assert_eq!(ports.len(), 2, "{job}");
    assert_ne!(ports[0], ports[1], "{job}");
    assert!(
        ports.iter().all(|p| (31000..=32000).contains(p)),
        "inside the agent's default ports: {job}"
    );
    let stdout = client_ok(c, &["get-file", "-i", &id.to_string(), "--path", "stdout"]);
    assert_eq!(printed(&stdout, "PORTS "), ports, "{stdout}");
    assert_eq!(printed(&stdout, "LIST "), ports, "{stdout}");
    assert_eq!(
        printed(&stdout, "LISTEN "),
        vec![ports[1]],
        "-E value: {stdout}"
    );
    assert_eq!(
        printed(&stdout, "QUOTED "),
        vec![ports[0]],
        "substituted by the executor, not the shell: {stdout}"
    );
    let view = client_ok(c, &["get-job", "-i", &id.to_string()]);
    assert!(
        view.contains(&format!("ports={},{}", ports[0], ports[1])),
        "{view}"
    );

    // Two jobs alive at the same time: the first waits until the second has run.
    // Written by a job, which runs as another user than the test.
    let flag = retz_e2e_tests::job_writable_dir(dir.path()).join("second-ran");
    let flag = flag.display();
    let first = schedule(
        c,
        &[
            "-A",
            "web",
            "-ports",
            "3",
            "-cmd",
            &format!(
                "echo PORTS $RETZ_PORTS; i=0; while [ ! -e '{flag}' ] && [ $i -lt 1200 ]; \
                 do sleep 0.1; i=$((i+1)); done; [ -e '{flag}' ]"
            ),
        ],
    );
    let second = schedule(
        c,
        &[
            "-A",
            "web",
            "-ports",
            "2",
            "-cmd",
            &format!("echo PORTS $RETZ_PORTS; touch '{flag}'"),
        ],
    );
    let (a, b) = (
        wait_finished(c, first, LONG),
        wait_finished(c, second, LONG),
    );
    let (pa, pb) = (granted_ports(&a), granted_ports(&b));
    assert_eq!((pa.len(), pb.len()), (3, 2), "{a} {b}");
    let all: BTreeSet<u16> = pa.iter().chain(&pb).copied().collect();
    assert_eq!(
        all.len(),
        5,
        "jobs running together share no port: {pa:?} {pb:?}"
    );
    for (id, ports) in [(first, &pa), (second, &pb)] {
        let stdout = client_ok(c, &["get-file", "-i", &id.to_string(), "--path", "stdout"]);
        assert_eq!(&printed(&stdout, "PORTS "), ports, "{stdout}");
    }
}
