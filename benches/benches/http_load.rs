//! The HTTP API under hostile load (issue 21): `retz-server`'s API (the library's
//! `Server`, in this process, over an SQLite store and a Mesos master nobody answers)
//! while one client holds N idle connections (default 20,000; `RETZ_BENCH_IDLE`), and
//! while 400 clients each send half of a 1 MB body and stall.
//!
//! Printed: `/ping` latency (p50, p99, max over 1,000 pings, each on a fresh connection)
//! with no load and with the idle connections held; the process's resident set (VmRSS)
//! at rest, with the 400 stalled bodies, and after they closed. The soft and hard
//! `RLIMIT_NOFILE` is raised first, as far as the hard limit allows; the idle clients
//! live in child processes (this binary again, `RETZ_BENCH_HOLD=ADDR:N`), so the server
//! process spends its descriptors on the server's ends only.
//!
//! Not a criterion bench: the figures are latency percentiles and one process's
//! memory, measured once. `cargo bench -p retz-benches --bench http_load`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use retz_scheduler::config::ServerConfig;
use retz_scheduler::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Raises the open files limit to `want` (root may raise the hard limit too); returns
/// the soft limit in force.
fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let soft = lim.current.unwrap_or(u64::MAX);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    let wanted = Rlimit {
        current: Some(want),
        maximum: Some(want.max(hard)),
    };
    if setrlimit(Resource::Nofile, wanted).is_ok() {
        return want;
    }
    let capped = Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    if setrlimit(Resource::Nofile, capped).is_ok() {
        hard
    } else {
        soft
    }
}

async fn ping(addr: SocketAddr) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    t.elapsed()
}

async fn pings(addr: SocketAddr, n: usize) -> String {
    let mut d = Vec::with_capacity(n);
    for _ in 0..n {
        d.push(ping(addr).await);
    }
    d.sort();
    let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        d[d.len() - 1].as_secs_f64() * 1e3
    )
}

/// A child: opens N connections to ADDR, says so on stdout, holds them until stdin
/// closes.
fn hold(spec: &str) {
    let (addr, n) = spec.rsplit_once(':').expect("ADDR:N");
    let addr: SocketAddr = addr.parse().expect("addr");
    let n: usize = n.parse().expect("N");
    raise_nofile(n as u64 + 64);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(TcpStream::connect(addr).await.expect("connect idle"));
        }
        println!("held {n}");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        drop(held);
    });
}

fn main() {
    if let Ok(spec) = std::env::var("RETZ_BENCH_HOLD") {
        return hold(&spec);
    }
    let idle: usize = std::env::var("RETZ_BENCH_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let nofile = raise_nofile(idle as u64 + 1024);
    let idle = idle.min((nofile as usize).saturating_sub(600));
    println!("open files limit {nofile}; holding {idle} idle connections");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = ServerConfig::default();
        cfg.server.bind = "127.0.0.1:0".parse().expect("addr");
        cfg.server.database = Some(format!("sqlite://{}/retz.db", dir.path().display()));
        cfg.server.max_connections = u32::try_from(idle + 1000).unwrap_or(u32::MAX);
        // Hold the idle connections for the whole measurement.
        cfg.server.header_read_timeout_s = 600;
        cfg.server.idle_timeout_s = 600;
        cfg.mesos.masters = vec!["127.0.0.1:9".into()];
        let server = Server::start(cfg).await.expect("server");
        let addr = server.addr();
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!("RSS at rest: {:.1} MiB", rss_mib());
        println!("/ping, no load: {}", pings(addr, 1000).await);

        let t = Instant::now();
        let per_child = 9_000;
        let mut children = Vec::new();
        let mut left = idle;
        while left > 0 {
            let n = left.min(per_child);
            left -= n;
            let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
                .env("RETZ_BENCH_HOLD", format!("{addr}:{n}"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn holder");
            let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
            let mut line = String::new();
            std::io::BufRead::read_line(&mut out, &mut line).expect("holder");
            assert!(line.starts_with("held"), "holder: {line:?}");
            children.push(child);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!(
            "{idle} idle connections opened in {:.1} s; RSS {:.1} MiB",
            t.elapsed().as_secs_f64(),
            rss_mib()
        );
        println!(
            "/ping, {idle} idle connections held: {}",
            pings(addr, 1000).await
        );
        for mut c in children {
            drop(c.stdin.take());
            let _ = c.wait();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;

        // 400 clients send half of a 1 MB body and stall.
        let half = vec![b' '; 512 * 1024];
        let mut stalled = Vec::new();
        let mut answered_at_once = 0usize;
        for _ in 0..400 {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(
                b"POST /job HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                  content-length: 1048576\r\n\r\n",
            )
            .await
            .expect("head");
            // A refused body is answered before the server reads it: the write may
            // then stall or fail; do not wait for it.
            let _ = tokio::time::timeout(Duration::from_millis(200), s.write_all(&half)).await;
            let mut first = [0u8; 12];
            if let Ok(Ok(12)) =
                tokio::time::timeout(Duration::from_millis(1), s.peek(&mut first)).await
            {
                answered_at_once += 1;
            }
            stalled.push(s);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "400 half-sent 1 MB bodies ({answered_at_once} answered at once): RSS {:.1} MiB",
            rss_mib()
        );
        println!("/ping meanwhile: {}", pings(addr, 200).await);
        drop(stalled);
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!("after they closed: RSS {:.1} MiB", rss_mib());
        server.stop().await;
    });
}
