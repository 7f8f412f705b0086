//! ZooKeeper membership of a local master, as Mesos masters do it: the master joins the
//! group at `zk://HOST:PORT[,...]/PATH` as an ephemeral sequential znode
//! `json.info_<seq>` holding its `MasterInfo` JSON; the member with the lowest sequence
//! leads. A master that does not lead answers the scheduler API as a Mesos non-leader
//! does (307 to the leader, 503 while the leader's address is unknown).
//!
//! Invariants: the master's leadership follows every change of the group (one-shot
//! watches re-armed before each read); a lost session re-joins with a new znode (and so
//! a new, later sequence), counting as a non-leader until then.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use zookeeper_client as zk;

use crate::master::{Leadership, MESOS_VERSION, Master};

/// The name prefix of a master's znode.
pub const MASTER_ZNODE_PREFIX: &str = "json.info_";

/// A `zk://` address that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --zk {0:?}: expected zk://HOST:PORT[,HOST:PORT...]/PATH")]
pub struct ZkAddressError(pub String);

/// `zk://HOST:PORT[,...]/PATH` split into the servers and the group path.
pub fn parse_zk(text: &str) -> Result<(String, String), ZkAddressError> {
    let bad = || ZkAddressError(text.to_owned());
    let rest = text.trim().strip_prefix("zk://").ok_or_else(bad)?;
    let slash = rest.find('/').ok_or_else(bad)?;
    let (servers, path) = rest.split_at(slash);
    let path = path.trim_end_matches('/');
    if servers.is_empty()
        || servers.split(',').any(|s| s.trim().is_empty())
        || servers.contains('@')
        || path.is_empty()
        || path.contains("//")
        || path.contains(',')
    {
        return Err(bad());
    }
    Ok((servers.to_owned(), path.to_owned()))
}

/// The `MasterInfo` JSON a Mesos master writes into its znode.
pub fn master_info_json(id: &str, addr: SocketAddr, hostname: &str) -> Vec<u8> {
    let ip = addr.ip().to_string();
    json!({
        "id": id,
        "hostname": hostname,
        "port": addr.port(),
        "pid": format!("master@{addr}"),
        "version": MESOS_VERSION,
        "address": {"hostname": hostname, "ip": ip, "port": addr.port()},
    })
    .to_string()
    .into_bytes()
}

/// `host:port` of the master whose `MasterInfo` JSON is `data`.
pub fn leader_address(data: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(data).ok()?;
    let addr = v.get("address");
    let host = addr
        .and_then(|a| a.get("ip").or_else(|| a.get("hostname")))
        .or_else(|| v.get("hostname"))?
        .as_str()?;
    let port = addr
        .and_then(|a| a.get("port"))
        .or_else(|| v.get("port"))?
        .as_u64()?;
    if host.contains(':') {
        Some(format!("[{host}]:{port}"))
    } else {
        Some(format!("{host}:{port}"))
    }
}

/// The lowest-sequence master znode among `children`.
pub fn leader_znode(children: &[String]) -> Option<&str> {
    children
        .iter()
        .filter_map(|c| {
            let d = c.strip_prefix(MASTER_ZNODE_PREFIX)?;
            (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .then(|| d.parse::<u64>().ok().map(|s| (s, c.as_str())))
                .flatten()
        })
        .min()
        .map(|(_, c)| c)
}

/// Work run once, when the master is first elected, before it answers as the leader
/// (a standby master starts its agents there, so they have re-registered with what
/// runs on them before any framework re-subscribes and reconciles).
pub type OnElected = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Joins the group and keeps `master`'s leadership in line with it until aborted.
pub fn join(servers: String, path: String, master: Master, info: Vec<u8>) -> JoinHandle<()> {
    join_electing(servers, path, master, info, None)
}

/// As [`join`], running `on_elected` to completion when the master is first elected,
/// before it answers as the leader.
pub fn join_electing(
    servers: String,
    path: String,
    master: Master,
    info: Vec<u8>,
    mut on_elected: Option<OnElected>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            master.set_leadership(Leadership::NotLeader { leader: None });
            if let Err(e) = member(&servers, &path, &master, &info, &mut on_elected).await {
                warn!(zk = %servers, error = %e, "ZooKeeper membership lost; joining again");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

async fn member(
    servers: &str,
    path: &str,
    master: &Master,
    info: &[u8],
    on_elected: &mut Option<OnElected>,
) -> Result<(), zk::Error> {
    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(servers)
        .await?;
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.mkdir(path, &persistent).await {
        Ok(()) | Err(zk::Error::NodeExists) => {}
        Err(e) => return Err(e),
    }
    let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (_, seq) = client
        .create(&format!("{path}/{MASTER_ZNODE_PREFIX}"), info, &ephemeral)
        .await?;
    let mine = format!("{MASTER_ZNODE_PREFIX}{seq}");
    info!(zk = %servers, znode = %format!("{path}/{mine}"), "joined the masters' group");
    loop {
        let (children, watcher) = client.list_and_watch_children(path).await?;
        let leadership = match leader_znode(&children) {
            Some(l) if l == mine => Leadership::Leader,
            Some(l) => match client.get_data(&format!("{path}/{l}")).await {
                Ok((data, _)) => Leadership::NotLeader {
                    leader: leader_address(&data),
                },
                Err(zk::Error::NoNode) => Leadership::NotLeader { leader: None },
                Err(e) => return Err(e),
            },
            // Our own znode is gone (session expired): join again.
            None => return Err(zk::Error::SessionExpired),
        };
        if !children.contains(&mine) {
            return Err(zk::Error::SessionExpired);
        }
        info!(?leadership, "leadership from ZooKeeper");
        if leadership == Leadership::Leader
            && let Some(work) = on_elected.take()
        {
            work.await;
        }
        master.set_leadership(leadership);
        let ev = watcher.changed().await;
        if ev.session_state.is_terminated() {
            return Err(zk::Error::SessionExpired);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zk_addresses() {
        assert_eq!(
            parse_zk("zk://a:1,b:2/mesos/").unwrap(),
            ("a:1,b:2".to_owned(), "/mesos".to_owned())
        );
        for bad in [
            "zk://a:1",
            "zk:///m",
            "http://a/m",
            "zk://a,,b/m",
            "zk://a/",
            "zk://u@a/m",
        ] {
            assert!(parse_zk(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn master_info_round_trips_to_the_leader_address() {
        let data = master_info_json("m1", "127.0.0.1:5051".parse().unwrap(), "localhost");
        assert_eq!(leader_address(&data).as_deref(), Some("127.0.0.1:5051"));
        assert_eq!(leader_address(b"{}"), None);
        assert_eq!(leader_address(b"nope"), None);
        let children: Vec<String> = [
            "json.info_0000000003",
            "json.info_0000000002",
            "log_replicas",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(leader_znode(&children), Some("json.info_0000000002"));
        assert_eq!(leader_znode(&["info_0000000001".to_owned()]), None);
    }
}
