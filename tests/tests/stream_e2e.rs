//! Byte-exact sandbox files on `retz-server --local`: what a job writes comes back byte
//! for byte through `run`, `get-file`, `get-file --poll` and `get-file --binary` —
//! a 3-byte character at offset 65,535 (cut by the 64 KiB pieces), binary bytes and
//! 200 KB of mixed Japanese text — and a download over the server's max file size is
//! refused before any byte, leaving no file behind.

use std::path::Path;

use retz_e2e_tests::{Server, client, client_ok, job_writable_dir, test_dir};

/// 65,535 ASCII bytes then `日本` (its first byte at offset 65,535).
fn cut_character() -> Vec<u8> {
    let mut v = vec![b'a'; 65535];
    v.extend_from_slice("日本".as_bytes());
    v
}

/// 300,000 bytes of every value (a fixed pseudo-random sequence).
fn binary() -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// About 200 KB of Japanese mixed with ASCII, Latin and symbols.
fn japanese() -> Vec<u8> {
    let line = "2026-12-03 07:00:00 INFO [asakusa] バッチ「日次集計」開始 – résumé ✓ 進捗 42%\n";
    line.repeat(200_000 / line.len() + 1).into_bytes()
}

/// Writes the three contents where the job's user can read them; returns their paths.
fn sources(dir: &Path) -> Vec<String> {
    let out = job_writable_dir(dir);
    [
        ("cut", cut_character()),
        ("bin", binary()),
        ("jp", japanese()),
    ]
    .into_iter()
    .map(|(name, data)| {
        let p = out.join(name);
        std::fs::write(&p, data).expect("write a source file");
        p.display().to_string()
    })
    .collect()
}

fn expected() -> Vec<u8> {
    [cut_character(), binary(), japanese()].concat()
}

fn get_file(config: &Path, id: &str, path: &str, dir: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "get-file",
        "-i",
        id,
        "--path",
        path,
        "-R",
        dir.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    client_ok(config, &args);
    std::fs::read(dir.join(path)).expect("get-file wrote the file")
}

#[test]
fn run_and_get_file_reproduce_any_bytes() {
    let dir = test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "stream"]);
    let src = sources(dir.path());
    let want = expected();
    assert_eq!(&want[65535..65541], "日本".as_bytes());

    // `run` prints the job's stdout as it is written.
    let cmd = format!("cat {} {} {}", src[0], src[1], src[2]);
    let out = client(c, &["run", "-A", "stream", "-cmd", &cmd]);
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == want, "run: {} bytes differ", out.stdout.len());

    // `get-file --poll` follows a job that writes in three steps.
    let cmd = format!(
        "cat {}; sleep 1; cat {}; sleep 1; cat {}",
        src[0], src[1], src[2]
    );
    let id = client_ok(c, &["schedule", "-q", "-A", "stream", "-cmd", &cmd])
        .trim()
        .to_owned();
    let polled = dir.path().join("polled");
    let got = get_file(c, &id, "stdout", &polled, &["--poll"]);
    assert!(got == want, "get-file --poll: {} bytes differ", got.len());
    // ... and once it ended: plain get-file and the raw download agree with it.
    let plain = dir.path().join("plain");
    let got = get_file(c, &id, "stdout", &plain, &[]);
    assert!(got == want, "get-file: {} bytes differ", got.len());
    let raw = dir.path().join("raw");
    let own = get_file(c, &id, "stdout", &raw, &["--binary"]);
    assert!(
        own == want,
        "the job's own stdout: {} bytes differ",
        own.len()
    );
    // a piece from inside the character
    let piece = get_file(
        c,
        &id,
        "stdout",
        &dir.path().join("piece"),
        &["--offset", "65536", "--length", "70000"],
    );
    assert!(piece == want[65536..135536]);
}

#[test]
fn a_download_over_the_limit_is_refused_whole() {
    let dir = test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "dl"]);
    // 100 MB (over the default max_file_size of 64 MiB) and 8 MB of bytes.
    let out = client_ok(
        c,
        &[
            "run",
            "-A",
            "dl",
            "-cmd",
            "head -c 104857600 /dev/zero > big && \
             head -c 8000000 /dev/urandom > mid && sha256sum mid",
        ],
    );
    let id = client_ok(c, &["list", "--states", "ALL", "--json"]);
    let jobs: serde_json::Value = serde_json::from_str(&id).expect("list --json");
    let id = jobs
        .as_array()
        .and_then(|a| a.first())
        .or_else(|| jobs["jobs"].as_array().and_then(|a| a.first()))
        .and_then(|j| j["id"].as_u64())
        .expect("the job's id")
        .to_string();
    let target = dir.path().join("dl");
    std::fs::create_dir_all(&target).expect("mkdir");
    let o = client(
        c,
        &[
            "get-file",
            "-i",
            &id,
            "--path",
            "big",
            "--binary",
            "-R",
            target.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("104857600 bytes") && stderr.contains("max file size of 67108864"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&target).expect("ls").collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    // Within the limit: every byte.
    let got = get_file(c, &id, "mid", &target, &["--binary"]);
    assert_eq!(got.len(), 8_000_000);
    let sum = out.split_whitespace().next().expect("the job's sha256sum");
    let check = std::process::Command::new("sha256sum")
        .arg(target.join("mid"))
        .output()
        .expect("sha256sum");
    assert!(
        String::from_utf8_lossy(&check.stdout).starts_with(sum),
        "the download differs from the job's file"
    );
}
