//! The ZooKeeper master detector: watches the masters' group and publishes the current
//! leader's scheduler API on a `watch` channel.
//!
//! Invariants:
//! * the channel holds `Some(leader)` while a master with a readable `MasterInfo` leads
//!   the group, `None` while none does (or before the first look);
//! * every change of the group's children is followed (one-shot watches, re-armed
//!   before the children are read, so no change falls between two reads);
//! * a lost ZooKeeper session is re-established with capped backoff; the leader last
//!   seen is kept meanwhile (a ZooKeeper outage does not unseat a running master);
//! * the task ends when `cancel` fires or every receiver is gone.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zookeeper_client as zk;

use super::backoff::Backoff;
use super::endpoint::Endpoint;
use super::zk::{ZkUrl, leader_znode, master_endpoint};

/// The ZooKeeper session timeout asked for.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to reach a ZooKeeper server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the detector on the current runtime; `https`: the leaders it names are
/// reached over TLS (`MasterInfo` names no scheme).
pub(crate) fn spawn(
    url: ZkUrl,
    https: bool,
    cancel: CancellationToken,
) -> watch::Receiver<Option<Endpoint>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tx.closed() => {}
            () = run(&url, https, &tx) => {}
        }
        debug!(zk = %url.servers, "master detector stopped");
    });
    rx
}

/// Why a watched session ended.
enum SessionEnd {
    /// Reconnect (session lost, or a ZooKeeper error).
    Reconnect(String),
}

async fn run(url: &ZkUrl, https: bool, tx: &watch::Sender<Option<Endpoint>>) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let connect = zk::Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_connection_timeout(CONNECT_TIMEOUT)
            .connect(&url.servers);
        let why = match timeout(CONNECT_TIMEOUT * 2, connect).await {
            Ok(Ok(client)) => {
                info!(zk = %url.servers, path = %url.path, "watching the Mesos masters in ZooKeeper");
                backoff.reset();
                let SessionEnd::Reconnect(why) = watch_group(&client, &url.path, https, tx).await;
                why
            }
            Ok(Err(e)) => format!("cannot connect: {e}"),
            Err(_) => format!("no session within {:?}", CONNECT_TIMEOUT * 2),
        };
        let delay = backoff.next_delay();
        warn!(zk = %url.servers, reason = %why, retry_in = ?delay, "ZooKeeper master detection interrupted");
        sleep(delay).await;
    }
}

/// Follows the group on one session until it is lost.
async fn watch_group(
    client: &zk::Client,
    path: &str,
    https: bool,
    tx: &watch::Sender<Option<Endpoint>>,
) -> SessionEnd {
    loop {
        let (children, watcher) = match client.list_and_watch_children(path).await {
            Ok(r) => r,
            Err(zk::Error::NoNode) => {
                // No group yet: no leader; wait for the path to appear.
                publish(tx, None);
                match client.check_and_watch_stat(path).await {
                    Ok((Some(_), _)) => continue,
                    Ok((None, w)) => {
                        let ev = w.changed().await;
                        if ev.session_state.is_terminated() {
                            return SessionEnd::Reconnect(format!(
                                "session {:?}",
                                ev.session_state
                            ));
                        }
                        continue;
                    }
                    Err(e) => return SessionEnd::Reconnect(e.to_string()),
                }
            }
            Err(e) => return SessionEnd::Reconnect(e.to_string()),
        };
        match leader_znode(&children) {
            None => publish(tx, None),
            Some(name) => match client.get_data(&format!("{path}/{name}")).await {
                Ok((data, _)) => match master_endpoint(&data, https) {
                    Ok(leader) => publish(tx, Some(leader)),
                    Err(e) => {
                        warn!(znode = %name, error = %e, "unusable leader znode");
                        publish(tx, None);
                    }
                },
                // The leader left between the two reads: the watch fires next.
                Err(zk::Error::NoNode) => {}
                Err(e) => return SessionEnd::Reconnect(e.to_string()),
            },
        }
        let ev = watcher.changed().await;
        if ev.session_state.is_terminated() {
            return SessionEnd::Reconnect(format!("session {:?}", ev.session_state));
        }
    }
}

fn publish(tx: &watch::Sender<Option<Endpoint>>, leader: Option<Endpoint>) {
    tx.send_if_modified(|cur| {
        if *cur == leader {
            return false;
        }
        match &leader {
            Some(l) => info!(leader = %l, "ZooKeeper names a new leading Mesos master"),
            None => warn!("no leading Mesos master in ZooKeeper"),
        }
        *cur = leader;
        true
    });
}
