//! A real custom executor: a python3 script (standard library only) speaking the JSON
//! executor API over the chunked RecordIO stream, fetched into the sandbox by the agent,
//! authenticating with the token the agent gave it (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`).
//! Skipped (with a message) when python3 is missing, unless `CI=true`.

mod agent_support;

use agent_support::*;
use retz_mesos_local::agent::{AgentReport, process};
use retz_proto::mesos::task_status::{Reason, Source};
use retz_proto::mesos::{CommandInfo, TaskGroupInfo, TaskState};

const EXECUTOR_PY: &str = r#"
import base64, http.client, json, os, sys, uuid

EP = os.environ["MESOS_AGENT_ENDPOINT"]
FID = os.environ["MESOS_FRAMEWORK_ID"]
EID = os.environ["MESOS_EXECUTOR_ID"]
AUTH = "Bearer " + os.environ["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"]
HOST, PORT = EP.rsplit(":", 1)
log = open("events.log", "a", buffering=1)
running = {}

def call(kind, **payload):
    c = {"executor_id": {"value": EID}, "framework_id": {"value": FID}, "type": kind}
    c.update(payload)
    return c

def post(c):
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=60)
    conn.request("POST", "/api/v1/executor", body=json.dumps(c),
                 headers={"Content-Type": "application/json", "Authorization": AUTH})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    if r.status != 202:
        log.write("ERROR %s %s\n" % (r.status, body))
        sys.exit(3)

def update(tid, state, message=None):
    st = {"task_id": {"value": tid}, "state": state, "source": "SOURCE_EXECUTOR",
          "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
          "executor_id": {"value": EID}}
    if message:
        st["message"] = message
    post(call("UPDATE", update={"status": st}))
    log.write("UPDATE %s %s\n" % (tid, state))

def launch(task):
    tid = task["task_id"]["value"]
    data = base64.b64decode(task.get("data", "")).decode()
    update(tid, "TASK_RUNNING")
    if data == "sleep":
        running[tid] = True
        return
    with open(tid + ".out", "w") as f:
        f.write(data)
    update(tid, "TASK_FINISHED", "wrote " + tid + ".out")

conn = http.client.HTTPConnection(HOST, int(PORT))
conn.request("POST", "/api/v1/executor", body=json.dumps(call("SUBSCRIBE", subscribe={})),
             headers={"Content-Type": "application/json", "Accept": "application/json",
                      "Authorization": AUTH})
resp = conn.getresponse()
if resp.status != 200:
    log.write("ERROR subscribe %s %s\n" % (resp.status, resp.read()))
    sys.exit(2)
log.write("STREAM %s %s\n" % (resp.getheader("Content-Type"), resp.getheader("Transfer-Encoding")))
while True:
    line = resp.readline()
    if not line:
        log.write("EOF\n")
        sys.exit(4)
    ev = json.loads(resp.read(int(line)))
    kind = ev["type"]
    log.write("EVENT %s\n" % kind)
    if kind == "SUBSCRIBED":
        with open("subscribed.json", "w") as f:
            json.dump(ev["subscribed"], f)
    elif kind == "LAUNCH":
        launch(ev["launch"]["task"])
    elif kind == "LAUNCH_GROUP":
        for task in ev["launch_group"]["task_group"]["tasks"]:
            launch(task)
    elif kind == "KILL":
        tid = ev["kill"]["task_id"]["value"]
        running.pop(tid, None)
        update(tid, "TASK_KILLED")
    elif kind == "MESSAGE":
        post(call("MESSAGE", message={"data": ev["message"]["data"]}))
    elif kind == "ACKNOWLEDGED":
        log.write("ACK %s\n" % ev["acknowledged"]["task_id"]["value"])
    elif kind == "SHUTDOWN":
        for tid in list(running):
            update(tid, "TASK_KILLED")
        log.write("SHUTDOWN\n")
        sys.exit(0)
"#;

fn have_python() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg("import http.client, json, base64, uuid")
        .status()
        .is_ok_and(|s| s.success());
    retz_testkit::require(ok, "python3 is not available")
}

fn data_task(id: &str, data: &str) -> retz_proto::mesos::TaskInfo {
    let mut t = executor_task(id);
    t.data = Some(data.as_bytes().to_vec());
    t
}

/// The executor, fetched from a file:// URI into the sandbox.
fn python_executor(h: &Harness, id: &str) -> retz_proto::mesos::ExecutorInfo {
    let script = h.dir.path().join("executor.py");
    std::fs::write(&script, EXECUTOR_PY).unwrap();
    executor_info(
        id,
        CommandInfo {
            uris: vec![retz_proto::mesos::command_info::Uri {
                value: format!("file://{}", script.display()),
                ..Default::default()
            }],
            ..shell("exec python3 executor.py")
        },
    )
}

/// Collects updates (acknowledging each) until every task in `tasks` reached `state`.
async fn until_all(h: &mut Harness, tasks: &[&str], state: TaskState) -> Vec<String> {
    let mut seen = Vec::new();
    let mut done = std::collections::BTreeSet::new();
    while done.len() < tasks.len() {
        let s = h.next_update().await;
        assert_eq!(s.source(), Source::Executor, "{s:?}");
        h.ack(&s);
        seen.push(format!("{} {}", s.task_id.value, s.state().as_str_name()));
        if s.state() == state {
            done.insert(s.task_id.value.clone());
        }
    }
    seen
}

#[tokio::test]
async fn python_executor_runs_tasks_and_is_reused() {
    if !have_python() {
        return;
    }
    let mut h = Harness::start().await;
    let ex = python_executor(&h, "py");
    h.agent.launch(
        &framework(),
        Some(ex.clone()),
        vec![data_task("t1", "hello")],
    );
    let running = h.expect_update("t1", TaskState::TaskRunning).await;
    assert_eq!(running.source(), Source::Executor);
    let fin = h.expect_update("t1", TaskState::TaskFinished).await;
    assert_eq!(fin.message.as_deref(), Some("wrote t1.out"));
    let sandbox = h.sandbox("py");
    assert_eq!(read(&sandbox.join("t1.out")), "hello");
    let pid = h.agent.executor_pid(&fid(), &eid("py")).unwrap();

    // reuse: the second task goes to the same process
    h.agent.launch(
        &framework(),
        Some(ex.clone()),
        vec![data_task("t2", "world")],
    );
    h.expect_update("t2", TaskState::TaskRunning).await;
    h.expect_update("t2", TaskState::TaskFinished).await;
    assert_eq!(read(&sandbox.join("t2.out")), "world");
    assert_eq!(h.agent.executor_pid(&fid(), &eid("py")), Some(pid));

    // a task group
    let group = TaskGroupInfo {
        tasks: vec![data_task("g1", "a"), data_task("g2", "b")],
    };
    h.agent.launch_group(&framework(), ex.clone(), group);
    let seen = until_all(&mut h, &["g1", "g2"], TaskState::TaskFinished).await;
    assert_eq!(seen.len(), 4, "{seen:?}");

    // framework -> executor -> framework message round trip
    h.agent.send_message(&fid(), &eid("py"), b"ping".to_vec());
    match h.next_event().await {
        AgentReport::FrameworkMessage {
            executor_id, data, ..
        } => {
            assert_eq!(executor_id.value, "py");
            assert_eq!(data, b"ping");
        }
        other => panic!("expected the echoed message, got {other:?}"),
    }

    // kill a running task
    h.agent.launch(
        &framework(),
        Some(ex.clone()),
        vec![data_task("t3", "sleep")],
    );
    h.expect_update("t3", TaskState::TaskRunning).await;
    h.agent.kill_task(&fid(), &tid("t3"), None);
    h.expect_update("t3", TaskState::TaskKilled).await;

    // shutdown: the executor kills its task and exits 0
    h.agent
        .launch(&framework(), Some(ex), vec![data_task("t4", "sleep")]);
    h.expect_update("t4", TaskState::TaskRunning).await;
    h.agent.shutdown_executor(&fid(), &eid("py"));
    h.expect_update("t4", TaskState::TaskKilled).await;
    assert_eq!(h.expect_exited("py").await, 0);
    assert!(!process::group_alive(pid));

    let log = read(&sandbox.join("events.log"));
    let count = |prefix: &str| log.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("EVENT SUBSCRIBED"), 1, "{log}");
    assert_eq!(count("ERROR"), 0, "{log}");
    assert_eq!(count("UPDATE"), 12, "{log}");
    // every accepted update is acknowledged; the executor exits right after sending its
    // last one (TASK_KILLED on SHUTDOWN), so it never reads that acknowledgement
    assert_eq!(count("ACK "), 11, "{log}");
    assert!(
        log.starts_with("STREAM application/json chunked\n"),
        "{log}"
    );
    let sub: serde_json::Value =
        serde_json::from_str(&read(&sandbox.join("subscribed.json"))).unwrap();
    assert_eq!(sub["executor_info"]["executor_id"]["value"], "py");
    assert_eq!(sub["framework_info"]["id"]["value"], FID);
    assert_eq!(sub["agent_info"]["hostname"], "localhost");
    assert_eq!(sub["agent_info"]["id"]["value"], "M-S0");
    assert_eq!(
        sub["container_id"]["value"],
        sandbox.file_name().unwrap().to_string_lossy().as_ref()
    );
}

#[tokio::test]
async fn python_executor_killed_fails_its_running_task() {
    if !have_python() {
        return;
    }
    let mut h = Harness::start().await;
    let ex = python_executor(&h, "doomed");
    h.agent
        .launch(&framework(), Some(ex), vec![data_task("long", "sleep")]);
    h.expect_update("long", TaskState::TaskRunning).await;
    let pid = h.agent.executor_pid(&fid(), &eid("doomed")).unwrap();
    h.agent.kill_executor(&fid(), &eid("doomed"));
    let failed = h.expect_update("long", TaskState::TaskFailed).await;
    assert_eq!(failed.source(), Source::Agent);
    assert_eq!(failed.reason(), Reason::ExecutorTerminated);
    assert_eq!(failed.message.as_deref(), Some("Executor terminated"));
    assert_eq!(h.expect_exited("doomed").await & 0x7f, 9);
    assert!(!process::group_alive(pid));
}
