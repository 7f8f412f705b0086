//! The library against the fake server: typed calls, retries of idempotent calls only,
//! error values that keep the server's message and HTTP code.

mod common;

use std::time::Duration;

use common::*;
use retz_client::{Client, ClientOptions, Error};
use retz_proto::api::{ClientConfig, Job, JobState};

fn config(url: &str, secret: &str) -> ClientConfig {
    ClientConfig {
        server: url.to_owned(),
        access_key: KEY.to_owned(),
        secret: secret.to_owned(),
        authentication: true,
        tls_insecure: false,
        ca_cert: None,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn patient() -> ClientOptions {
    ClientOptions {
        retries: 200,
        retry_delay: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(50),
        ..ClientOptions::default()
    }
}

#[test]
fn typed_calls_round_trip() {
    let f = Fake::start();
    let c = Client::new(config(&f.url(), SECRET)).unwrap();
    rt().block_on(async {
        assert_eq!(c.ping().await.unwrap(), "OK");
        let mut job = Job::new("app", "work pieces 1 exit 0");
        job.resources.cpu = "2-".parse().unwrap();
        let job = c.schedule(job).await.unwrap();
        assert_eq!((job.id, job.state), (1, JobState::Queued));
        let r = c.get_job(1).await.unwrap();
        assert_eq!(r.queue_position, Some(1));
        assert!(r.job.unwrap().pending.is_some());
        let l = c.list_jobs(JobState::Queued, None).await.unwrap();
        assert_eq!(l.jobs.len(), 1);
        let mut out = Vec::new();
        f.add_file(1, "a b+ü", b"\x00\x01\xffdata");
        assert_eq!(c.download(1, "a b+ü", &mut out).await.unwrap(), 7);
        assert_eq!(out, b"\x00\x01\xffdata");
        assert_eq!(c.kill(1).await.unwrap().state, JobState::Killed);
        assert_eq!(c.status().await.unwrap().master, "local");
    });
}

#[test]
fn server_errors_keep_the_message_and_code() {
    let f = Fake::start();
    let c = Client::new(config(&f.url(), "wrong")).unwrap();
    let e = rt().block_on(c.list_apps()).unwrap_err();
    assert_eq!(e.http_code(), Some(401));
    assert!(
        e.server_message()
            .unwrap()
            .starts_with("Authentication failed"),
        "{e}"
    );
    let c = Client::new(config(&f.url(), SECRET)).unwrap();
    let e = rt().block_on(c.get_app("nope")).unwrap_err();
    assert_eq!(e.http_code(), Some(404));
    assert_eq!(e.server_message(), Some("No such application: nope"));
}

#[test]
fn idempotent_calls_retry_until_the_server_comes_up() {
    let port = free_port();
    let c = Client::with_options(
        config(&format!("http://127.0.0.1:{port}"), SECRET),
        patient(),
    )
    .unwrap();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        Fake::start_at(port)
    });
    let r = rt().block_on(c.list_apps());
    let fake = starter.join().unwrap();
    assert!(r.unwrap().is_empty());
    assert_eq!(fake.log(), ["GET /apps"]);
}

/// A submission carries an Idempotency-Key, so it is retried like a read: a server
/// that comes up within the retry window gets it once.
#[test]
fn schedule_is_retried_with_its_key() {
    let port = free_port();
    let c = Client::with_options(
        config(&format!("http://127.0.0.1:{port}"), SECRET),
        patient(),
    )
    .unwrap();
    let starter = std::thread::spawn(move || {
        // long after the one attempt, well within the retry window (200 x 50 ms)
        std::thread::sleep(Duration::from_millis(1000));
        Fake::start_at(port)
    });
    let r = rt().block_on(c.schedule(Job::new("app", "true")));
    let fake = starter.join().unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(fake.log(), ["POST /job"]);
}

#[test]
fn bad_server_urls_are_refused_up_front() {
    for bad in ["ftp://h", "not a url", "http://h/?q=1", "http://"] {
        let e = Client::new(config(bad, SECRET)).unwrap_err();
        assert!(matches!(e, Error::BadUrl { .. }), "{bad}: {e}");
    }
}
