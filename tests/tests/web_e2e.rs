//! The web page end to end, in a real browser: `retz-server --local` runs two one-CPU
//! `sleep` jobs (and a third that cannot fit waits), headless Chromium (Debian's
//! `chromium`) renders `/`, and the DOM it dumps shows each running job on exactly the
//! CPUs of its grant (`get-job --json`), the waiting job in the queue with its reason,
//! and no command text or user key. The signed-in view is checked over plain HTTP against
//! the same server (sign-in with the admin's key and secret shows the commands; a wrong
//! secret gets 401 and no cookie). Chromium also takes a screenshot; with
//! `RETZ_UPDATE_SCREENSHOT=1` it is written to `docs/web-page.png` (the README's picture).
//!
//! Without chromium the test skips, except under `CI=true`, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use retz_e2e_tests::{Server, client_ok, job_json, wait_until};
use retz_testkit::require;

const LONG: Duration = Duration::from_secs(180);
const MARKER: &str = "web-e2e-command-marker";

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Runs headless Chromium with `args` then `url`, at most two minutes; returns stdout.
fn run_chromium(bin: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} {url} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().expect("chromium output")
}

/// `schedule -q -A web args...`.
fn schedule(config: &Path, args: &[&str]) -> u64 {
    retz_e2e_tests::schedule(config, &[&["-A", "web"], args].concat())
}

/// The CPU ids of a Linux list (`0-2,5`).
fn cpu_list(list: &str) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
        out.extend(a..=b);
    }
    out
}

/// `key = "value"` of a TOML file (flat keys only).
fn toml_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// One HTTP/1.1 request; returns status, headers (lower-case names) and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

#[test]
fn chromium_shows_each_running_job_on_exactly_its_granted_cpus() {
    let Some(chromium) = chromium() else {
        require(
            false,
            "needs Debian's chromium (scripts/setup-debian.sh --test installs it)",
        );
        return;
    };
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "web"]);

    let cmd = format!("sleep 300 # {MARKER}");
    let running: Vec<u64> = (0..2)
        .map(|_| schedule(c, &["-cpu", "1", "-cmd", &cmd]))
        .collect();
    // Bigger than any agent here: it waits, with a reason, in the queue.
    let waiting = schedule(c, &["-cpu", "200", "-cmd", &cmd]);
    let mut grants: BTreeMap<u64, (String, BTreeSet<u32>)> = BTreeMap::new();
    for &id in &running {
        let job = wait_until(&format!("job {id} runs"), LONG, || {
            let j = job_json(c, id)["job"].take();
            (j["state"] == "STARTED").then_some(j)
        });
        let agent = job["slaveId"].as_str().expect("agent id").to_owned();
        let cpus = cpu_list(job["granted"]["cpuset"].as_str().unwrap_or_else(|| {
            panic!("job {id} is not pinned: {job}");
        }));
        assert_eq!(cpus.len(), 1, "{job}");
        grants.insert(id, (agent, cpus));
    }
    // The planner has planned the waiting job (it has a reason) before the page is read.
    wait_until("the big job has a pending reason", LONG, || {
        job_json(c, waiting)["job"]["pending"]
            .as_str()
            .map(str::to_owned)
    });

    let url = format!("http://{}/", server.addr);
    let profile = tempfile::tempdir().expect("profile dir");
    let dom = run_chromium(&chromium, profile.path(), &["--dump-dom"], &url);
    let doc = scraper::Html::parse_document(&dom);
    let cells = scraper::Selector::parse(".cpumap [data-cpu]").unwrap();
    let mut held: BTreeMap<u64, (BTreeSet<String>, BTreeSet<u32>)> = BTreeMap::new();
    let mut all_cells = 0;
    for cell in doc.select(&cells) {
        all_cells += 1;
        let v = cell.value();
        let agent = v.attr("data-agent").expect("every cell has data-agent");
        let cpu: u32 = v.attr("data-cpu").unwrap().parse().expect("a CPU id");
        if let Some(job) = v.attr("data-job") {
            let e = held.entry(job.parse().expect("a job id")).or_default();
            e.0.insert(agent.to_owned());
            e.1.insert(cpu);
            let href = v.attr("href").unwrap_or_default();
            assert_eq!(href, format!("/ui/job/{job}"), "a held cell links its job");
            assert!(
                v.attr("title")
                    .unwrap_or_default()
                    .contains(&format!("job {job}"))
            );
        }
    }
    assert!(all_cells >= 2, "the map shows this machine's CPUs: {dom}");
    for (id, (agent, cpus)) in &grants {
        let (agents, seen) = held
            .get(id)
            .unwrap_or_else(|| panic!("job {id} has no cell: {dom}"));
        assert_eq!(agents, &BTreeSet::from([agent.clone()]), "job {id}");
        assert_eq!(seen, cpus, "job {id}'s cells are its granted CPUs");
    }
    assert_eq!(
        held.keys().copied().collect::<BTreeSet<u64>>(),
        grants.keys().copied().collect(),
        "only running jobs hold cells"
    );
    let queue_row =
        scraper::Selector::parse(&format!("#queue tr[data-job=\"{waiting}\"]")).unwrap();
    assert!(
        doc.select(&queue_row).next().is_some(),
        "the waiting job is queued: {dom}"
    );
    // Anonymous: no command, no user key.
    let config = std::fs::read_to_string(c).expect("client.toml");
    let key = toml_value(&config, "access_key");
    let secret = toml_value(&config, "secret");
    assert!(!dom.contains(MARKER) && !dom.contains("sleep 300"), "{dom}");
    assert!(!dom.contains(&key), "{dom}");

    // Signed in (over HTTP): the operator sees the commands; a wrong secret does not.
    let origin = format!("http://{}", server.addr);
    let form_headers = [
        ("Origin", origin.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (s, h, _) = http(
        server.addr,
        "POST",
        "/login",
        &form_headers,
        &format!("key={key}&secret=wrong"),
    );
    assert_eq!(s, 401);
    assert!(!h.iter().any(|(k, _)| k == "set-cookie"), "{h:?}");
    let (s, h, _) = http(
        server.addr,
        "POST",
        "/login",
        &form_headers,
        &format!("key={key}&secret={secret}"),
    );
    assert_eq!(s, 303);
    let set = h
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone())
        .expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let (s, _, page) = http(server.addr, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(s, 200);
    assert!(
        page.contains(MARKER),
        "the operator sees the commands: {page}"
    );

    // The screenshot (anonymous view): docs/web-page.png when asked to update it.
    let update = std::env::var("RETZ_UPDATE_SCREENSHOT").as_deref() == Ok("1");
    let shot = if update {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/web-page.png")
    } else {
        dir.path().join("web-page.png")
    };
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &chromium,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a PNG"
    );

    for id in running.iter().chain([&waiting]) {
        client_ok(c, &["kill", "-i", &id.to_string()]);
    }
}
