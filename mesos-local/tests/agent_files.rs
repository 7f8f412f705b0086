//! `/files/browse`, `/files/read`, `/files/download` and `/state` over a real sandbox.

mod agent_support;

use agent_support::*;
use retz_proto::mesos::TaskState;

/// Runs a command task to completion and returns the harness and the task's sandbox.
async fn finished(script: &str) -> (Harness, std::path::PathBuf) {
    let mut h = Harness::start().await;
    h.agent
        .launch(&framework(), None, vec![command_task("f", shell(script))]);
    h.expect_update("f", TaskState::TaskRunning).await;
    h.expect_update("f", TaskState::TaskFinished).await;
    h.expect_exited("f").await;
    let sandbox = h.sandbox("f");
    (h, sandbox)
}

const VIRTUAL: &str = "/frameworks/M-0000/executors/f/runs/latest";

fn q(s: &str) -> String {
    // the few characters our paths hold that need escaping in a query
    s.replace('%', "%25")
        .replace(' ', "%20")
        .replace('&', "%26")
}

#[tokio::test]
async fn read_offsets_lengths_and_cap() {
    let (h, sandbox) = finished("head -c 100000 /dev/zero | tr '\\0' a; printf xyz").await;
    let http = h.http();
    let stdout = format!("{VIRTUAL}/stdout");
    let read = |path: String, extra: &'static str| {
        let http = &http;
        async move {
            http.get(&format!("/files/read?path={}{extra}", q(&path)))
                .await
        }
    };
    // offset -1 (or none): the size
    let r = read(stdout.clone(), "&offset=-1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"data": "", "offset": 100003}));
    assert_eq!(read(stdout.clone(), "").await.json()["offset"], 100003);
    // a window
    let r = read(stdout.clone(), "&offset=99998&length=4").await.json();
    assert_eq!(r, serde_json::json!({"data": "aaxy", "offset": 99998}));
    // to EOF
    let r = read(stdout.clone(), "&offset=100000").await.json();
    assert_eq!(r["data"], "xyz");
    let r = read(stdout.clone(), "&offset=100000&length=-1")
        .await
        .json();
    assert_eq!(r["data"], "xyz");
    // capped at 64 KiB
    let r = read(stdout.clone(), "&offset=0").await.json();
    assert_eq!(r["data"].as_str().unwrap().len(), 65536);
    let r = read(stdout.clone(), "&offset=10&length=1000000")
        .await
        .json();
    assert_eq!(r["data"].as_str().unwrap().len(), 65536);
    assert_eq!(r["offset"], 10);
    // at or past EOF
    let r = read(stdout.clone(), "&offset=100003&length=10")
        .await
        .json();
    assert_eq!(r, serde_json::json!({"data": "", "offset": 100003}));
    let r = read(stdout.clone(), "&offset=500000").await.json();
    assert_eq!(r["data"], "");
    // the real path reads the same file
    let real = sandbox.join("stdout").to_string_lossy().into_owned();
    let r = read(real, "&offset=100000").await.json();
    assert_eq!(r["data"], "xyz");
    // errors
    assert_eq!(read(stdout.clone(), "&offset=-2").await.status, 400);
    assert_eq!(read(stdout.clone(), "&offset=abc").await.status, 400);
    assert_eq!(
        read(stdout.clone(), "&offset=0&length=-5").await.status,
        400
    );
    assert_eq!(
        read(VIRTUAL.to_string(), "&offset=0").await.status,
        400,
        "a directory"
    );
    assert_eq!(http.get("/files/read").await.status, 400, "no path");
    assert_eq!(read(format!("{VIRTUAL}/nope"), "").await.status, 404);
    // JSONP
    let r = read(stdout, "&offset=100000&jsonp=cb").await;
    assert_eq!(r.text(), r#"cb({"data":"xyz","offset":100000});"#);
}

#[tokio::test]
async fn browse_shape() {
    let (h, sandbox) = finished("mkdir sub; echo hi > sub/x; chmod 640 sub/x; echo out").await;
    let http = h.http();
    let r = http.get(&format!("/files/browse?path={VIRTUAL}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let entries = r.json();
    let entries = entries.as_array().unwrap();
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec![
            format!("{VIRTUAL}/stderr"),
            format!("{VIRTUAL}/stdout"),
            format!("{VIRTUAL}/sub"),
        ]
    );
    // the task's user owns its sandbox (the agent's own user when it is not root)
    let me = job_user();
    for e in entries {
        let obj = e.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            vec!["gid", "mode", "mtime", "nlink", "path", "size", "uid"]
        );
        assert_eq!(e["uid"], me.as_str());
        assert!(e["gid"].is_string());
        assert!(e["mtime"].as_i64().unwrap() > 1_600_000_000);
    }
    assert_eq!(entries[1]["size"], 4);
    // under root the agent hands the task its stdout, private to it
    let stdout_mode = if running_as_root() {
        "-rw-------"
    } else {
        "-rw-r--r--"
    };
    assert_eq!(entries[1]["mode"], stdout_mode);
    assert!(entries[2]["mode"].as_str().unwrap().starts_with('d'));

    let r = http
        .get(&format!("/files/browse?path={VIRTUAL}/sub"))
        .await
        .json();
    assert_eq!(r[0]["path"], format!("{VIRTUAL}/sub/x"));
    assert_eq!(r[0]["mode"], "-rw-r-----");
    assert_eq!(r[0]["size"], 3);
    // a file browses as itself
    let r = http
        .get(&format!("/files/browse?path={VIRTUAL}/sub/x"))
        .await
        .json();
    assert_eq!(r.as_array().unwrap().len(), 1);
    // the real path, and the container id instead of `latest`
    let r = http
        .get(&format!(
            "/files/browse?path={}",
            q(&sandbox.to_string_lossy())
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), 3);
    let cid = sandbox.file_name().unwrap().to_string_lossy().into_owned();
    let r = http
        .get(&format!(
            "/files/browse?path=/frameworks/M-0000/executors/f/runs/{cid}"
        ))
        .await;
    assert_eq!(r.status, 200);
    // errors
    assert_eq!(http.get("/files/browse").await.status, 400);
    assert_eq!(
        http.get(&format!("/files/browse?path={VIRTUAL}/none"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn paths_outside_the_sandboxes_are_refused() {
    let (h, sandbox) =
        finished("ln -s /etc etc; ln -s ../../../../../../../../.. up; echo ok").await;
    let http = h.http();
    for (path, want) in [
        (format!("{VIRTUAL}/../../../../../../etc/passwd"), 403),
        (format!("{VIRTUAL}/etc/passwd"), 403),
        (format!("{VIRTUAL}/up"), 403),
        ("/etc/passwd".to_string(), 404),
        ("/frameworks/M-0000".to_string(), 404),
        (format!("{}/../../x", sandbox.display()), 403),
        (
            h.dir
                .path()
                .join("work/fetch")
                .to_string_lossy()
                .into_owned(),
            404,
        ),
        ("relative/path".to_string(), 400),
    ] {
        for endpoint in ["read", "browse", "download"] {
            let r = http
                .get(&format!("/files/{endpoint}?path={}&offset=0", q(&path)))
                .await;
            assert_eq!(r.status.as_u16(), want, "{endpoint} {path}: {}", r.text());
            assert!(!r.text().contains("root:"), "{endpoint} {path} leaked");
        }
    }
}

/// The `data` bytes of a Mesos-style `/files/read` body `{"data":"...","offset":n}`
/// (raw bytes, `\\`, `\"`, `\/`, `\n`, `\t`, `\r`, `\b`, `\f`, `\u00XX` escapes).
fn raw_data(body: &[u8]) -> Vec<u8> {
    let start = b"{\"data\":\"".len();
    assert!(body.starts_with(b"{\"data\":\""), "{body:?}");
    let end = body
        .windows(b"\",\"offset\":".len())
        .rposition(|w| w == b"\",\"offset\":")
        .unwrap();
    let mut out = Vec::new();
    let mut i = start;
    while i < end {
        if body[i] == b'\\' {
            let c = body[i + 1];
            i += 2;
            out.push(match c {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                b'b' => 8,
                b'f' => 12,
                b'u' => {
                    let hex = std::str::from_utf8(&body[i..i + 4]).unwrap();
                    i += 4;
                    u8::from_str_radix(hex, 16).unwrap()
                }
                other => other,
            });
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test]
async fn reads_are_byte_exact_across_the_cap_and_for_binary() {
    // 65,535 'a', then 日本 (its first byte at 65,535, cut by the 64 KiB cap), then
    // every byte value.
    let (h, sandbox) = finished(
        "head -c 65535 /dev/zero | tr '\\0' a > f; printf '\\346\\227\\245\\346\\234\\254' >> f; \
         i=0; while [ $i -lt 256 ]; do printf \"\\\\$(printf %o $i)\" >> f; i=$((i+1)); done",
    )
    .await;
    let want = std::fs::read(sandbox.join("f")).unwrap();
    assert_eq!(want.len(), 65535 + 6 + 256);
    assert_eq!(&want[65535..65541], "日本".as_bytes());
    let http = h.http();
    let mut got = Vec::new();
    let mut offset = 0usize;
    let mut reads = 0;
    loop {
        let r = http
            .get(&format!("/files/read?path={VIRTUAL}/f&offset={offset}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let data = raw_data(&r.body);
        if data.is_empty() {
            break;
        }
        offset += data.len();
        got.extend(data);
        reads += 1;
    }
    assert_eq!(reads, 2, "64 KiB, then the rest");
    assert_eq!(got, want);
    // the second read starts in the middle of nothing: at the character's first byte
    let r = http
        .get(&format!(
            "/files/read?path={VIRTUAL}/f&offset=65536&length=2"
        ))
        .await;
    assert_eq!(raw_data(&r.body), &want[65536..65538]);
    assert!(r.body.ends_with(b"\",\"offset\":65536}"), "{}", r.text());
    // download: the whole file, its length announced
    let r = http.get(&format!("/files/download?path={VIRTUAL}/f")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("content-length").unwrap(),
        &want.len().to_string()
    );
    assert_eq!(&r.body[..], &want[..]);
}

#[tokio::test]
async fn download_and_state() {
    let (h, sandbox) = finished("printf 'a\\0b' > bin.dat; echo log").await;
    let http = h.http();
    let r = http
        .get(&format!("/files/download?path={VIRTUAL}/bin.dat"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"a\0b");
    assert_eq!(
        r.headers.get("content-disposition").unwrap(),
        "attachment; filename=bin.dat"
    );
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/octet-stream"
    );
    let r = http
        .get(&format!("/files/download?path={VIRTUAL}/stdout"))
        .await;
    assert_eq!(r.text(), "log\n");
    assert_eq!(
        http.get(&format!("/files/download?path={VIRTUAL}"))
            .await
            .status,
        400,
        "a directory"
    );

    let state = http.get("/state").await;
    assert_eq!(state.status, 200);
    let state = state.json();
    assert_eq!(state, h.agent.state_json());
    assert_eq!(state["id"], "M-S0");
    assert_eq!(state["hostname"], "localhost");
    assert_eq!(state["port"], h.agent.endpoint().port());
    assert_eq!(state["resources"]["cpus"], 2.0);
    assert_eq!(state["resources"]["cpuids"], "[0-1]");
    assert_eq!(state["attributes"]["retz_numa"], "v1");
    let fw = &state["frameworks"][0];
    assert_eq!(fw["id"], FID);
    let done = &fw["completed_executors"][0];
    assert_eq!(done["id"], "f");
    assert_eq!(done["directory"], sandbox.to_string_lossy().as_ref());
    assert_eq!(done["virtual_directory"], VIRTUAL);
    assert_eq!(done["completed_tasks"][0]["state"], "TASK_FINISHED");
    let statuses: Vec<&str> = done["completed_tasks"][0]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["TASK_RUNNING", "TASK_FINISHED"]);
    let info = h.agent.info();
    assert_eq!(info.port, Some(i32::from(h.agent.endpoint().port())));
    assert_eq!(info.id.unwrap().value, "M-S0");
    assert!(!info.attributes.is_empty());
}

#[tokio::test]
async fn files_and_state_need_the_agents_credentials() {
    let cred = retz_proto::credentials::Credential::new("ops", "ops-secret").unwrap();
    let mut h = Harness::start_with(|c| {
        c.credentials = Some(retz_proto::credentials::Credentials::single(cred.clone()));
    })
    .await;
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("f", shell("echo out-6d1f"))],
    );
    h.expect_update("f", TaskState::TaskRunning).await;
    h.expect_update("f", TaskState::TaskFinished).await;
    h.expect_exited("f").await;
    let anonymous = h.http();
    let wrong = h
        .http()
        .with_basic(&retz_proto::credentials::Credential::new("ops", "guess").unwrap());
    let ops = h.http().with_basic(&cred);
    for path in [
        format!("/files/read?path={VIRTUAL}/stdout&offset=0"),
        format!("/files/download?path={VIRTUAL}/stdout"),
        format!("/files/browse?path={VIRTUAL}"),
        "/state".to_string(),
    ] {
        for client in [&anonymous, &wrong] {
            let r = client.get(&path).await;
            assert_eq!(r.status, 401, "{path}: {}", r.text());
            assert_eq!(
                r.headers.get("www-authenticate").unwrap(),
                "Basic realm=\"mesos-agent-readonly\""
            );
            assert!(!r.text().contains("out-6d1f"), "{path} leaked");
        }
        assert_eq!(ops.get(&path).await.status, 200, "{path}");
    }
    assert_eq!(
        ops.get(&format!("/files/download?path={VIRTUAL}/stdout"))
            .await
            .text(),
        "out-6d1f\n"
    );
}

/// The layout an executor leaves in its run dir: `tasks/<key>/` owned by the job's
/// user (here nobody), with links planted by a hostile job.
struct Planted {
    h: Harness,
    /// `/frameworks/.../runs/latest/tasks`
    tasks: String,
}

async fn planted() -> Planted {
    use std::os::unix::fs::{PermissionsExt as _, chown, symlink};
    let (h, sandbox) = finished("echo run-dir-stdout").await;
    let (uid, gid) = ids_of("nobody");
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    // the run dir as the executor leaves it: root:<job gid> 0750
    chown(&sandbox, Some(0), Some(gid)).unwrap();
    mode(&sandbox, 0o750);
    let tasks = sandbox.join("tasks");
    std::fs::create_dir(&tasks).unwrap();
    mode(&tasks, 0o755);
    for key in ["k1", "k2"] {
        let d = tasks.join(key);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("stdout"), format!("{key} output\n")).unwrap();
        std::fs::write(d.join("sub/x"), "x\n").unwrap();
        for p in [d.join("stdout"), d.join("sub/x"), d.join("sub"), d.clone()] {
            chown(&p, Some(uid), Some(gid)).unwrap();
        }
        mode(&d, 0o700);
        mode(&d.join("stdout"), 0o600);
    }
    let k1 = tasks.join("k1");
    // what a hostile job in k1 can do itself
    symlink(tasks.join("k2/stdout"), k1.join("other")).unwrap();
    symlink("../k2/stdout", k1.join("other-rel")).unwrap();
    symlink("/etc/passwd", k1.join("passwd")).unwrap();
    symlink("/etc", k1.join("etc")).unwrap();
    // what it could get root to leave there: a hard link to a root-owned file outside
    // the sandbox, a root-owned 0600 file, a root-owned directory it cannot search
    let outside = h.dir.path().join("root-secret");
    std::fs::write(&outside, "root secret\n").unwrap();
    mode(&outside, 0o644);
    std::fs::hard_link(&outside, k1.join("hardlink")).unwrap();
    std::fs::write(k1.join("secret"), "root 0600\n").unwrap();
    mode(&k1.join("secret"), 0o600);
    std::fs::create_dir(k1.join("private")).unwrap();
    std::fs::write(k1.join("private/f"), "behind a 0700 root dir\n").unwrap();
    mode(&k1.join("private"), 0o700);
    mode(&k1.join("private/f"), 0o644);
    // the job's own hard link to its own file is fine
    std::fs::hard_link(k1.join("sub/x"), k1.join("x-again")).unwrap();
    // the application's tree as retz-executor lays it out: root-owned files in
    // app/<name>/, linked at the same relative path in the task directory
    let app = sandbox.join("app/myapp/bin");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
    mode(&app.join("tool.sh"), 0o755);
    std::fs::create_dir(k1.join("bin")).unwrap();
    chown(k1.join("bin"), Some(uid), Some(gid)).unwrap();
    std::fs::hard_link(app.join("tool.sh"), k1.join("bin/tool.sh")).unwrap();
    // the same file at another path is not the laid-out tree
    std::fs::hard_link(app.join("tool.sh"), k1.join("tool-elsewhere")).unwrap();
    Planted {
        h,
        tasks: format!("{VIRTUAL}/tasks"),
    }
}

#[tokio::test]
async fn links_and_unreadable_files_in_a_task_dir_are_refused() {
    if !need_root("links_and_unreadable_files_in_a_task_dir_are_refused") {
        return;
    }
    let p = planted().await;
    let http = p.h.http();
    let k1 = format!("{}/k1", p.tasks);
    for (name, want, needle) in [
        ("stdout", 200, "k1 output"),
        ("sub/x", 200, "x"),
        ("x-again", 200, "x"),
        ("other", 403, "is a symbolic link"),
        ("other-rel", 403, "is a symbolic link"),
        ("passwd", 403, "is a symbolic link"),
        ("etc/passwd", 403, "etc is a symbolic link"),
        ("hardlink", 403, "hard link"),
        ("bin/tool.sh", 200, "echo tool"),
        ("tool-elsewhere", 403, "hard link"),
        ("secret", 403, "not readable by nobody"),
        ("private/f", 403, "cannot be searched by nobody"),
        ("../k2/stdout", 403, "'..'"),
    ] {
        let path = format!("{k1}/{name}");
        for endpoint in ["read", "download", "browse"] {
            let r = http
                .get(&format!("/files/{endpoint}?path={}&offset=0", q(&path)))
                .await;
            assert_eq!(r.status.as_u16(), want, "{endpoint} {name}: {}", r.text());
            let text = r.text();
            if want == 200 {
                if endpoint != "browse" {
                    assert!(text.contains(needle), "{endpoint} {name}: {text}");
                }
            } else {
                assert!(text.contains(needle), "{endpoint} {name}: {text}");
                assert_eq!(text.lines().count(), 1, "{text}");
                for leak in ["root:", "k2 output", "root secret", "root 0600", "behind"] {
                    assert!(!text.contains(leak), "{endpoint} {name} leaked {leak}");
                }
            }
        }
    }
    // the symlink's message names the path as requested
    let r = http
        .get(&format!("/files/read?path={k1}/other&offset=0"))
        .await;
    assert_eq!(
        r.text(),
        format!("{k1}/other is a symbolic link; /files does not follow symbolic links")
    );
    // browse lists links as links, with their own metadata, and follows none
    let r = http.get(&format!("/files/browse?path={k1}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let listing = r.json();
    let entry = |name: &str| {
        listing
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == format!("{k1}/{name}"))
            .unwrap_or_else(|| panic!("{name} not listed: {listing:#}"))
            .clone()
    };
    for link in ["other", "passwd", "etc"] {
        let e = entry(link);
        assert!(e["mode"].as_str().unwrap().starts_with('l'), "{e}");
        assert_eq!(e["uid"], "root");
    }
    assert_eq!(entry("stdout")["size"], 10);
    assert_eq!(entry("etc")["size"], 4, "the link itself, not /etc");
    // the task dir of another job, and the run dir, as before
    let r = http
        .get(&format!("/files/read?path={}/k2/stdout&offset=0", p.tasks))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"], "k2 output\n");
    let r = http
        .get(&format!("/files/read?path={VIRTUAL}/stdout&offset=0"))
        .await;
    assert_eq!(r.json()["data"], "run-dir-stdout\n");
}

#[tokio::test]
async fn a_hard_link_outside_a_task_dir_must_belong_to_the_run_dirs_owner() {
    if !need_root("a_hard_link_outside_a_task_dir_must_belong_to_the_run_dirs_owner") {
        return;
    }
    use std::os::unix::fs::chown;
    let (h, sandbox) = finished("echo hi").await;
    let (uid, gid) = ids_of("nobody");
    // a command task's sandbox belongs to its user (nobody); a hard link in it to a
    // root-owned file is refused, one to the user's own file is served
    let outside = h.dir.path().join("root-file");
    std::fs::write(&outside, "root\n").unwrap();
    std::fs::hard_link(&outside, sandbox.join("hl")).unwrap();
    let own = sandbox.join("own");
    std::fs::write(&own, "own\n").unwrap();
    chown(&own, Some(uid), Some(gid)).unwrap();
    std::fs::hard_link(&own, sandbox.join("own2")).unwrap();
    let http = h.http();
    let r = http
        .get(&format!("/files/read?path={VIRTUAL}/hl&offset=0"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("root\n"));
    let r = http
        .get(&format!("/files/read?path={VIRTUAL}/own2&offset=0"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"], "own\n");
}
