//! The fetcher: file:// and http:// URIs, archives, `executable`, `output_file`, cache.

mod agent_support;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use agent_support::*;
use retz_mesos_local::agent::fetcher::{FetchError, Fetcher};
use retz_proto::mesos::TaskState;
use retz_proto::mesos::command_info::Uri;

fn uri(value: &str) -> Uri {
    Uri {
        value: value.into(),
        ..Default::default()
    }
}

/// A .tar.gz holding `bin/hello.sh` (mode 0755) printing `greeting`.
fn app_tarball(path: &Path, greeting: &str) {
    let file = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let script = format!("#!/bin/sh\necho {greeting}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "bin/hello.sh", script.as_bytes())
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

fn sandbox(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[tokio::test]
async fn tarball_is_extracted_and_the_cache_serves_the_second_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("app.tar.gz");
    app_tarball(&archive, "first");
    let fetcher = Fetcher::new(tmp.path().join("cache"));
    let cached = Uri {
        cache: Some(true),
        ..uri(&format!("file://{}", archive.display()))
    };

    let s1 = sandbox(tmp.path(), "s1");
    let got = fetcher.fetch(&cached, &s1).await.unwrap();
    assert!(!got.from_cache);
    assert!(got.extracted);
    assert_eq!(got.path, s1.join("app.tar.gz"));
    let script = s1.join("bin/hello.sh");
    assert_eq!(read(&script), "#!/bin/sh\necho first\n");
    assert_eq!(
        std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(fetcher.cache_path(&cached.value).exists());

    // the source changes; a cached fetch still gets the first version
    app_tarball(&archive, "second");
    let s2 = sandbox(tmp.path(), "s2");
    let got = fetcher.fetch(&cached, &s2).await.unwrap();
    assert!(got.from_cache);
    assert_eq!(read(&s2.join("bin/hello.sh")), "#!/bin/sh\necho first\n");
    // ... and an uncached one the new version
    let s3 = sandbox(tmp.path(), "s3");
    let got = fetcher
        .fetch(&uri(&format!("file://{}", archive.display())), &s3)
        .await
        .unwrap();
    assert!(!got.from_cache);
    assert_eq!(read(&s3.join("bin/hello.sh")), "#!/bin/sh\necho second\n");
    // the cached copy survives the source's removal
    std::fs::remove_file(&archive).unwrap();
    let s4 = sandbox(tmp.path(), "s4");
    assert!(fetcher.fetch(&cached, &s4).await.unwrap().from_cache);
}

#[tokio::test]
async fn executable_output_file_extract_false_and_plain_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tool");
    std::fs::write(&src, "#!/bin/sh\necho tool\n").unwrap();
    let archive = tmp.path().join("keep.tgz");
    app_tarball(&archive, "kept");
    let fetcher = Fetcher::new(tmp.path().join("cache"));
    let sb = sandbox(tmp.path(), "sb");

    let got = fetcher
        .fetch(
            &Uri {
                executable: Some(true),
                output_file: Some("bin/run-me".into()),
                ..uri(&src.to_string_lossy())
            },
            &sb,
        )
        .await
        .unwrap();
    assert_eq!(got.path, sb.join("bin/run-me"));
    assert_eq!(
        std::fs::metadata(&got.path).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // extract: false keeps the archive as it is
    let got = fetcher
        .fetch(
            &Uri {
                extract: Some(false),
                ..uri(&format!("file://{}", archive.display()))
            },
            &sb,
        )
        .await
        .unwrap();
    assert!(!got.extracted);
    assert!(!sb.join("bin/hello.sh").exists());
    // executable wins over extract
    let got = fetcher
        .fetch(
            &Uri {
                executable: Some(true),
                ..uri(&format!("file://{}", archive.display()))
            },
            &sb,
        )
        .await
        .unwrap();
    assert!(!got.extracted);

    // errors name the URI and say what to do
    let e = fetcher
        .fetch(
            &Uri {
                output_file: Some("../escape".into()),
                ..uri(&src.to_string_lossy())
            },
            &sb,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::BadOutputFile { .. }), "{e}");
    let e = fetcher.fetch(&uri("relative/tool"), &sb).await.unwrap_err();
    assert!(e.to_string().contains("absolute path"), "{e}");
    let e = fetcher.fetch(&uri("https://h/x"), &sb).await.unwrap_err();
    assert!(e.to_string().contains("unsupported scheme"), "{e}");
    let e = fetcher
        .fetch(&uri(&format!("file://{}", tmp.path().display())), &sb)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
}

#[tokio::test]
async fn gz_bz2_and_zip_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(tmp.path().join("cache"));
    let sb = sandbox(tmp.path(), "sb");
    // .gz is gunzipped next to itself
    let gz = tmp.path().join("data.txt.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(b"plain data\n").unwrap();
    enc.finish().unwrap();
    assert!(
        fetcher
            .fetch(&uri(&gz.to_string_lossy()), &sb)
            .await
            .unwrap()
            .extracted
    );
    assert_eq!(read(&sb.join("data.txt")), "plain data\n");

    // .tar.bz2 and .zip go through the system tools, as in Mesos
    let content = tmp.path().join("content");
    std::fs::create_dir_all(content.join("d")).unwrap();
    std::fs::write(content.join("d/f"), "from archive\n").unwrap();
    let have = |tool: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut cases = Vec::new();
    if have("bzip2") {
        let bz = tmp.path().join("a.tar.bz2");
        let ok = std::process::Command::new("tar")
            .arg("-C")
            .arg(&content)
            .arg("-cjf")
            .arg(&bz)
            .arg("d")
            .status()
            .unwrap()
            .success();
        assert!(ok);
        cases.push((bz, "bz2"));
    } else {
        skip_or_fail("bzip2");
    }
    if have("zip") && have("unzip") {
        let zip = tmp.path().join("a.zip");
        let ok = std::process::Command::new("zip")
            .current_dir(&content)
            .arg("-qr")
            .arg(&zip)
            .arg("d")
            .status()
            .unwrap()
            .success();
        assert!(ok);
        cases.push((zip, "zip"));
    } else {
        skip_or_fail("zip/unzip");
    }
    for (archive, what) in cases {
        let sb = sandbox(tmp.path(), what);
        let got = fetcher
            .fetch(&uri(&archive.to_string_lossy()), &sb)
            .await
            .unwrap();
        assert!(got.extracted, "{what}");
        assert_eq!(read(&sb.join("d/f")), "from archive\n", "{what}");
    }
    // a corrupt archive is a clear error
    let bad = tmp.path().join("bad.tgz");
    std::fs::write(&bad, "not gzip").unwrap();
    let e = fetcher
        .fetch(&uri(&bad.to_string_lossy()), &sb)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot extract"), "{e}");
}

fn skip_or_fail(tool: &str) {
    retz_testkit::require(
        false,
        &format!("the {tool} archive case: {tool} is not installed"),
    );
}

/// A tiny HTTP server: `/app.tgz` (the bytes), `/moved` (302 to `/app.tgz`), else 404.
async fn http_server(bytes: Vec<u8>) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/app.tgz", get(move || async move { bytes.clone() }))
        .route(
            "/moved",
            get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [(axum::http::header::LOCATION, "/app.tgz")],
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

#[tokio::test]
async fn http_fetch_follows_redirects_and_caches() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("app.tgz");
    app_tarball(&archive, "over http");
    let (addr, server) = http_server(std::fs::read(&archive).unwrap()).await;
    let fetcher = Fetcher::new(tmp.path().join("cache"));

    let s1 = sandbox(tmp.path(), "s1");
    let got = fetcher
        .fetch(&uri(&format!("http://{addr}/moved?x=1")), &s1)
        .await;
    // the file is named after the URI's last segment
    let got = got.unwrap();
    assert_eq!(got.path, s1.join("moved"));
    assert!(!got.extracted, "no archive extension on 'moved'");

    let cached = Uri {
        cache: Some(true),
        ..uri(&format!("http://{addr}/app.tgz"))
    };
    let s2 = sandbox(tmp.path(), "s2");
    let got = fetcher.fetch(&cached, &s2).await.unwrap();
    assert!(got.extracted);
    assert_eq!(
        read(&s2.join("bin/hello.sh")),
        "#!/bin/sh\necho over http\n"
    );

    let e = fetcher
        .fetch(&uri(&format!("http://{addr}/missing.tgz")), &s2)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");

    // the server goes away: the cached URI still fetches
    server.abort();
    let _ = server.await;
    let s3 = sandbox(tmp.path(), "s3");
    let got = fetcher.fetch(&cached, &s3).await.unwrap();
    assert!(got.from_cache);
    assert_eq!(
        read(&s3.join("bin/hello.sh")),
        "#!/bin/sh\necho over http\n"
    );
}

#[tokio::test]
async fn a_task_runs_what_the_fetcher_extracted() {
    let mut h = Harness::start().await;
    let archive = h.dir.path().join("app.tar.gz");
    app_tarball(&archive, "fetched and run");
    let command = retz_proto::mesos::CommandInfo {
        uris: vec![Uri {
            cache: Some(true),
            ..uri(&format!("file://{}", archive.display()))
        }],
        ..shell("./bin/hello.sh")
    };
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("app", command.clone())],
    );
    h.expect_update("app", TaskState::TaskRunning).await;
    h.expect_update("app", TaskState::TaskFinished).await;
    h.expect_exited("app").await;
    assert_eq!(read(&h.sandbox("app").join("stdout")), "fetched and run\n");
    // the agent's cache lives in its work dir
    let cache = h.dir.path().join("work/fetch/slaves/M-S0");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);

    // second task, source gone: served from the agent's cache
    std::fs::remove_file(&archive).unwrap();
    h.agent
        .launch(&framework(), None, vec![command_task("app2", command)]);
    h.expect_update("app2", TaskState::TaskRunning).await;
    h.expect_update("app2", TaskState::TaskFinished).await;
    h.expect_exited("app2").await;
    assert_eq!(read(&h.sandbox("app2").join("stdout")), "fetched and run\n");
}
