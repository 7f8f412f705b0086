//! ZooKeeper master detection, the pure parts: `zk://` addresses, the leader among the
//! master group's znodes, and the master's scheduler API from its `MasterInfo` JSON.
//!
//! Mesos masters join a group under the configured path as ephemeral sequential znodes
//! `json.info_<10-digit sequence>` holding `MasterInfo` as JSON; the member with the
//! lowest sequence is the leader. Other children (the protobuf `info_` members of old
//! masters, the replicated log's `log_replicas`) are ignored.

use http::uri::Authority;
use serde::Deserialize;

use super::endpoint::{Endpoint, EndpointError};

/// The name prefix of a master's znode in the group.
pub const MASTER_ZNODE_PREFIX: &str = "json.info_";

/// The default ZooKeeper client port.
pub const DEFAULT_ZK_PORT: u16 = 2181;

/// A parsed `zk://HOST:PORT[,HOST:PORT...]/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkUrl {
    /// `host:port,host:port` as the ZooKeeper client takes it (ports always given).
    pub servers: String,
    /// The group's absolute path, without a trailing `/` (never `/` alone).
    pub path: String,
}

/// A `zk://` address that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ZooKeeper address {text:?}: {why}; expected zk://HOST:PORT[,HOST:PORT...]/PATH")]
pub struct ZkUrlError {
    /// The offending text.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

/// Whether a configured master address names ZooKeeper (`zk://`).
pub fn is_zk(text: &str) -> bool {
    text.trim()
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("zk://"))
}

impl ZkUrl {
    /// Parses `zk://HOST[:PORT][,HOST[:PORT]...]/PATH` (port 2181 by default).
    pub fn parse(text: &str) -> Result<Self, ZkUrlError> {
        let bad = |why: &str| ZkUrlError {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let trimmed = text.trim();
        if !is_zk(trimmed) {
            return Err(bad("it does not start with zk://"));
        }
        let rest = &trimmed[5..];
        let Some(slash) = rest.find('/') else {
            return Err(bad("no path (the masters' group, e.g. /mesos)"));
        };
        let (hosts, path) = rest.split_at(slash);
        if hosts.contains('@') {
            return Err(bad(
                "ZooKeeper credentials in the address are not supported",
            ));
        }
        let mut servers = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            if host.is_empty() {
                return Err(bad("an empty server"));
            }
            let auth: Authority = host
                .parse()
                .map_err(|_| bad(&format!("server {host:?} is not HOST[:PORT]")))?;
            match auth.port_u16() {
                Some(0) => return Err(bad(&format!("server {host:?} has port 0"))),
                Some(_) => servers.push(auth.as_str().to_owned()),
                None if auth.as_str() != auth.host() => {
                    return Err(bad(&format!("server {host:?} has an empty or bad port")));
                }
                None => servers.push(format!("{}:{DEFAULT_ZK_PORT}", auth.as_str())),
            }
        }
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Err(bad("no path (the masters' group, e.g. /mesos)"));
        }
        if path.contains(',') {
            return Err(bad(
                "a comma in the path: a ZooKeeper address cannot be combined with other masters",
            ));
        }
        if path.contains("//") || path.chars().any(char::is_whitespace) {
            return Err(bad("the path has an empty segment or white space"));
        }
        Ok(ZkUrl {
            servers: servers.join(","),
            path: path.to_owned(),
        })
    }
}

/// The sequence number of a master's znode name, `None` for other children.
pub fn master_sequence(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(MASTER_ZNODE_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The leader's znode name among the group's children: the master member with the
/// lowest sequence; `None` when no master is registered.
pub fn leader_znode<S: AsRef<str>>(children: &[S]) -> Option<&str> {
    children
        .iter()
        .map(AsRef::as_ref)
        .filter_map(|c| master_sequence(c).map(|s| (s, c)))
        .min()
        .map(|(_, c)| c)
}

/// A `MasterInfo` znode that does not name a usable scheduler API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterInfoError {
    /// Not the JSON of a MasterInfo.
    #[error("the leader's MasterInfo is not valid JSON: {0}")]
    Json(String),
    /// Neither `address.ip`/`address.hostname` nor `hostname` with a port.
    #[error("the leader's MasterInfo names no address and port")]
    NoAddress,
    /// The address does not make an endpoint.
    #[error("the leader's MasterInfo address: {0}")]
    Endpoint(#[from] EndpointError),
}

#[derive(Deserialize)]
struct MasterInfoJson {
    #[serde(default)]
    address: Option<AddressJson>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    port: Option<u32>,
}

#[derive(Deserialize)]
struct AddressJson {
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    port: Option<u32>,
}

/// The scheduler API of the master whose `MasterInfo` JSON is `data`: `address.ip`
/// (else `address.hostname`, else `hostname`) with `address.port` (else `port`).
/// `MasterInfo` names no scheme: `https` says whether the masters speak TLS (the
/// operator's `mesos.tls`, implied by `mesos.ca_cert`).
pub fn master_endpoint(data: &[u8], https: bool) -> Result<Endpoint, MasterInfoError> {
    let info: MasterInfoJson =
        serde_json::from_slice(data).map_err(|e| MasterInfoError::Json(e.to_string()))?;
    let address = info.address.as_ref();
    let host = address
        .and_then(|a| a.ip.clone().or_else(|| a.hostname.clone()))
        .or(info.hostname)
        .filter(|h| !h.is_empty())
        .ok_or(MasterInfoError::NoAddress)?;
    let port = address
        .and_then(|a| a.port)
        .or(info.port)
        .filter(|p| *p > 0)
        .ok_or(MasterInfoError::NoAddress)?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(Endpoint::parse_master_with(
        &format!("{host}:{port}"),
        https,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zk_addresses() {
        let u = ZkUrl::parse(" zk://zk1:2181,zk2/mesos/ ").unwrap();
        assert_eq!(u.servers, "zk1:2181,zk2:2181");
        assert_eq!(u.path, "/mesos");
        let u = ZkUrl::parse("ZK://[::1]:2182/a/b").unwrap();
        assert_eq!(u.servers, "[::1]:2182");
        assert_eq!(u.path, "/a/b");
        assert!(is_zk("zk://x/y") && !is_zk("http://x") && !is_zk("zk:"));
    }

    #[test]
    fn rejects_bad_zk_addresses() {
        for bad in [
            "zk://",
            "zk://h:2181",
            "zk://h:2181/",
            "zk:///mesos",
            "zk://h:0/m",
            "zk://h:/m",
            "zk://h:x/m",
            "zk://a,,b/m",
            "zk://u:p@h/m",
            "zk://h/a//b",
            "http://h/m",
        ] {
            let e = ZkUrl::parse(bad).unwrap_err();
            assert!(e.to_string().contains("zk://HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_lowest_master_sequence_leads() {
        let children = [
            "json.info_0000000012",
            "log_replicas",
            "info_0000000001",
            "json.info_0000000009",
            "json.info_",
            "json.info_12x",
            "json.info_0000000010",
        ];
        assert_eq!(leader_znode(&children), Some("json.info_0000000009"));
        assert_eq!(leader_znode(&["log_replicas", "info_0000000001"]), None);
        assert_eq!(leader_znode::<&str>(&[]), None);
        assert_eq!(master_sequence("json.info_0000000042"), Some(42));
        assert_eq!(master_sequence("json.info_-1"), None);
    }

    #[test]
    fn master_info_json_makes_the_endpoint() {
        // What a Mesos 1.x master writes.
        let real = br#"{"address":{"hostname":"m1","ip":"10.0.0.7","port":5050},
            "hostname":"m1","id":"abc","ip":117440522,"pid":"master@10.0.0.7:5050",
            "port":5050,"version":"1.11.0"}"#;
        assert_eq!(
            master_endpoint(real, false).unwrap().to_string(),
            "http://10.0.0.7:5050/api/v1/scheduler"
        );
        let host_only = br#"{"hostname":"m2","port":5051}"#;
        assert_eq!(
            master_endpoint(host_only, false).unwrap().to_string(),
            "http://m2:5051/api/v1/scheduler"
        );
        // The operator says the masters speak TLS: ZooKeeper's leaders are https.
        assert_eq!(
            master_endpoint(real, true).unwrap().to_string(),
            "https://10.0.0.7:5050/api/v1/scheduler"
        );
        let v6 = br#"{"address":{"ip":"::1","port":7}}"#;
        assert_eq!(
            master_endpoint(v6, false).unwrap().authority().as_str(),
            "[::1]:7"
        );
        assert!(matches!(
            master_endpoint(b"not json", false),
            Err(MasterInfoError::Json(_))
        ));
        assert_eq!(
            master_endpoint(br#"{"address":{"ip":"10.0.0.1"}}"#, false),
            Err(MasterInfoError::NoAddress)
        );
        assert_eq!(
            master_endpoint(br#"{"port":5050}"#, false),
            Err(MasterInfoError::NoAddress)
        );
        assert!(matches!(
            master_endpoint(br#"{"hostname":"a b","port":5050}"#, false),
            Err(MasterInfoError::Endpoint(_))
        ));
        assert!(matches!(
            master_endpoint(br#"{"hostname":"a","port":70000}"#, false),
            Err(MasterInfoError::Endpoint(_))
        ));
    }
}
