//! Memory comes back after a burst (issue 21): the API on a real socket holds thousands of
//! idle connections (half of them with half a request head) and 400 half-sent 1 MB
//! bodies; once they are closed, the process's resident set returns near its baseline
//! instead of staying at the burst's peak. Alone in its test binary, so no other test's
//! allocations move the figures.

mod http_support;

use std::time::{Duration, Instant};

use http_support::Env;
use retz_scheduler::http::HttpConfig;
use retz_scheduler::serve::{ConnLimits, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Liveness bound of the waits below (never a speed assertion).
const PATIENCE: Duration = Duration::from_secs(60);

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Raises the soft open files limit to the hard one; returns it.
fn open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

async fn ping(addr: std::net::SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf))
        .await
        .expect("/ping answers")
        .unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200"), "{buf:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_to_its_baseline_after_a_connection_burst() {
    // Each idle connection costs two descriptors here (client and server ends).
    let limit = open_files_limit();
    let idle = usize::try_from((limit.saturating_sub(1200)) / 2)
        .unwrap_or(usize::MAX)
        .min(4000);
    assert!(
        idle >= 1000,
        "open files limit {limit} is too low for this test (needs 3,200)"
    );
    let env = Env::new(HttpConfig::default()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = ConnLimits {
        max_connections: idle + 1000,
        header_read_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
    };
    let server = tokio::spawn(serve_with(
        listener,
        env.router.clone(),
        None,
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    for _ in 0..200 {
        ping(addr).await;
    }
    let baseline = rss_kib();

    let mut held = Vec::with_capacity(idle + 400);
    for i in 0..idle {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /ping HTTP/1.1\r\nhost:").await.unwrap();
        }
        held.push(s);
    }
    let half = vec![b' '; 512 * 1024];
    for _ in 0..400 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"POST /job HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 1048576\r\n\r\n",
        )
        .await
        .unwrap();
        // A body refused at once is not read: the write may stall; do not wait for it.
        let _ = tokio::time::timeout(Duration::from_millis(100), s.write_all(&half)).await;
        held.push(s);
    }
    ping(addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = rss_kib();
    assert!(
        peak > baseline + 16 * 1024,
        "the burst should have cost memory: baseline {baseline} KiB, peak {peak} KiB"
    );

    drop(held);
    // Back near the baseline: within a tenth of what the burst cost, or 8 MiB.
    let allowed = baseline + ((peak - baseline) / 10).max(8 * 1024);
    let deadline = Instant::now() + PATIENCE;
    let mut now = rss_kib();
    while now > allowed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = rss_kib();
    }
    eprintln!("RSS: baseline {baseline} KiB, burst {peak} KiB, after {now} KiB");
    assert!(
        now <= allowed,
        "resident set stayed at {now} KiB after the burst closed (baseline {baseline} KiB, \
         peak {peak} KiB, allowed {allowed} KiB)"
    );
    // The server is still fine.
    ping(addr).await;
    let _ = stop.send(());
    server.await.unwrap();
}
