//! Applications, users, sandbox directory entries and file chunks, as the API shows them.

use retz_placement::AffinityPolicy;
use serde::{Deserialize, Serialize};

/// An application: the files a job's executor fetches, and who owns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Application name (a single safe path component).
    pub appid: String,
    /// URIs fetched for every executor, not cached (`-F`).
    #[serde(default)]
    pub files: Vec<String>,
    /// URIs fetched through the agent's cache (`-L`).
    #[serde(default)]
    pub large_files: Vec<String>,
    /// Unix user the jobs run as, when the server's operator allows it
    /// (`jobs.allowed_users`); absent: the server's default job user. Never root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Access key of the owner (set by the server from the signature).
    #[serde(default)]
    pub owner: String,
    /// Seconds between SIGTERM and SIGKILL on kill; 0 = the Mesos default.
    #[serde(default)]
    pub grace_period: u32,
    /// Container type.
    #[serde(default)]
    pub container: Container,
    /// Whether jobs of the application may be scheduled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The application's affinity policy; absent: the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<AffinityPolicy>,
    /// A fresh id the server gives the application at every load (clients' values are
    /// replaced). Executor ids cover it, so a reloaded application never shares an
    /// executor or a sandbox with its previous load. Empty in applications stored before
    /// it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generation: String,
}

fn yes() -> bool {
    true
}

impl Application {
    /// An enabled application with no files, owned by `owner`.
    pub fn new(appid: impl Into<String>, owner: impl Into<String>) -> Application {
        Application {
            appid: appid.into(),
            files: Vec::new(),
            large_files: Vec::new(),
            user: None,
            owner: owner.into(),
            grace_period: 0,
            container: Container::default(),
            enabled: true,
            affinity: None,
            generation: String::new(),
        }
    }
}

/// How an application's jobs are contained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Container {
    /// The Mesos containerizer (default).
    #[default]
    Mesos,
    /// A Docker image run by the Mesos containerizer.
    Docker {
        /// Image name.
        image: String,
        /// Volumes.
        #[serde(default)]
        volumes: Vec<DockerVolume>,
    },
}

/// One Docker volume (`driver:name:path[:mode=RO|RW][:k=v...]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerVolume {
    /// Volume driver.
    pub driver: String,
    /// Volume name.
    pub name: String,
    /// Mount point in the container.
    pub container_path: String,
    /// `RO` or `RW`.
    #[serde(default = "ro")]
    pub mode: String,
    /// Driver options.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

fn ro() -> String {
    "RO".to_owned()
}

/// A Retz user (an access key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Access key: 32 hex digits.
    #[serde(alias = "key_id")]
    pub key_id: String,
    /// Secret: 32 hex digits. Shown only to admins.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// Disabled users are refused (403).
    pub enabled: bool,
    /// Free text.
    #[serde(default)]
    pub info: String,
}

/// One sandbox directory entry (Mesos `/files/browse` shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirEntry {
    /// Group name.
    #[serde(default)]
    pub gid: String,
    /// Mode string, e.g. `-rw-r--r--`.
    #[serde(default)]
    pub mode: String,
    /// Modification time, seconds since the epoch.
    #[serde(default)]
    pub mtime: f64,
    /// Link count.
    #[serde(default)]
    pub nlink: u64,
    /// Absolute path on the agent.
    pub path: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// User name.
    #[serde(default)]
    pub uid: String,
}

/// A piece of a sandbox file (Mesos `/files/read` shape): `data` is text from `offset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChunk {
    /// The bytes read, as UTF-8 text (invalid sequences replaced).
    pub data: String,
    /// Offset of `data` in the file.
    pub offset: u64,
}
