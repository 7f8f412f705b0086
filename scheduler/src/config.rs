//! [`ServerConfig`]: everything `retz-server` reads, parsed once into typed sections.
//!
//! Sources, later ones winning: built-in defaults → a config file (`retz.toml`, or an
//! original `retz.properties`, detected by its `.properties` extension) → command-line
//! flags (applied by the binary). `retz-server --local --data-dir DIR` needs no file.
//! Every value is checked by [`ServerConfig::validate`] so the server never starts on a
//! config it would trip over later; errors name the key and say what to write instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use retz_placement::{AffinityPolicy, CachePolicy, PolicyConfig, SmtPolicy};
use serde::{Deserialize, Serialize};

use crate::identity::{LaunchUsers, check_job_user, is_plain_user_name};

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where.
        message: String,
    },
    /// An original `retz.properties` is malformed.
    #[error("config: retz.properties {0}")]
    Properties(#[from] retz_proto::properties::ParseError),
    /// A value is out of range or inconsistent.
    #[error("config: {key}: {message}")]
    Invalid {
        /// The key, as written in `retz.toml` (`section.key`).
        key: &'static str,
        /// What is wrong and what to write instead.
        message: String,
    },
}

/// The whole server config (`retz.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `[server]`: HTTP, storage, authentication.
    pub server: ServerSection,
    /// `[mesos]`: the master, the framework, the executor.
    pub mesos: MesosSection,
    /// `[planner]`: placement policy, retries, running limits.
    pub planner: PlannerSection,
    /// `[limits]`: the most one job may ask for.
    pub limits: LimitsSection,
    /// `[local]`: the embedded local cluster (used with `mesos.local = true`).
    pub local: LocalSection,
    /// `[jobs]`: the Unix users jobs run as.
    pub jobs: JobsSection,
    /// `[placement]`: cost-model weights, starvation protection and search bounds — the
    /// same section a `retz-sim` policy file holds (`retz-sim tune` writes one), so a
    /// tuned policy is pasted here verbatim or given with `retz-server --policy FILE`.
    pub placement: PolicyConfig,
    /// `[gc]`: periodic deletion of jobs that ended long ago.
    pub gc: GcSection,
    /// `[quota]`: default per-user limits (queued jobs, running CPUs and memory).
    pub quota: QuotaSection,
    /// What the config's source asked for that this server does differently (the keys
    /// of an original `retz.properties` mapped onto a close behaviour), one line each;
    /// logged as warnings at start.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Address of the HTTP API.
    pub bind: SocketAddr,
    /// A host name to listen on instead of `bind`'s address (at `bind`'s port): resolved
    /// at start, the first address it names is used (`retz.bind = http://NAME:PORT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_host: Option<String>,
    /// Directory for the SQLite store, `client.toml` and (local) the embedded cluster's
    /// credentials. Kept 0700 (created so and chmod'ed at every start).
    pub data_dir: Option<PathBuf>,
    /// Store URL: `sqlite://PATH` or `postgres://USER:PASS@HOST:PORT/DB`. Default:
    /// `sqlite://DATA_DIR/retz.db`.
    pub database: Option<String>,
    /// Write every Mesos event received to this JSON-lines file (replayable by retz-sim).
    pub record_events: Option<PathBuf>,
    /// Require `Retz-auth-v1` signatures (users must exist and be enabled either way).
    pub authentication: bool,
    /// Accepted difference between a request's `Date` and the server clock, seconds.
    pub date_skew_s: u64,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most jobs one `POST /jobs` returns.
    pub max_list_jobs: u32,
    /// Largest file `/job/{id}/download` serves, bytes; negative = no limit.
    pub max_file_size: i64,
    /// Access keys allowed to use `/admin/*` (the admin user made at first start is
    /// added automatically).
    pub admin_keys: Vec<String>,
    /// An admin user with this access key (and `admin_secret`) is created at start if
    /// missing; if it exists, its secret must match (`retz.access.key`). Its key is an
    /// admin key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_access_key: Option<String>,
    /// The secret of `admin_access_key` (`retz.access.secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_secret: Option<String>,
    /// Admit `/admin/*` requests that carry no `Authorization` header when their TCP
    /// peer is a loopback address (the operator on the server's host). Signed requests
    /// still need an admin key. Leave off behind a reverse proxy on the same host: every
    /// request would then come from loopback.
    pub admin_loopback: bool,
    /// TLS certificate chain (PEM, the server's certificate first); with `tls_key`, the
    /// API is served over HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; not encrypted).
    pub tls_key: Option<PathBuf>,
    /// Most HTTP connections open at once; more are shed at once (503, closed).
    pub max_connections: u32,
    /// Longest wait for a request's headers, and for the next request on a kept-alive
    /// HTTP/1 connection, seconds.
    pub header_read_timeout_s: u64,
    /// Longest time a request body may take to arrive, seconds (else 408).
    pub body_read_timeout_s: u64,
    /// A connection with no request in progress for this long is closed, seconds.
    pub idle_timeout_s: u64,
    /// Most bytes of request bodies buffered at once across all connections; a body
    /// that would pass it is answered 503 at once.
    pub max_body_buffer_bytes: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            bind: SocketAddr::from(([127, 0, 0, 1], 9090)),
            bind_host: None,
            data_dir: None,
            database: None,
            record_events: None,
            authentication: true,
            date_skew_s: 300,
            max_body_bytes: 1024 * 1024,
            max_list_jobs: 65536,
            max_file_size: 64 * 1024 * 1024,
            admin_keys: Vec::new(),
            admin_access_key: None,
            admin_secret: None,
            admin_loopback: false,
            tls_cert: None,
            tls_key: None,
            max_connections: 4096,
            header_read_timeout_s: 10,
            body_read_timeout_s: 30,
            idle_timeout_s: 60,
            max_body_buffer_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[mesos]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MesosSection {
    /// Run the embedded local cluster instead of connecting to masters.
    pub local: bool,
    /// Master addresses, `HOST:PORT`, `http://` or `https://HOST:PORT`, or one
    /// `zk://HOST:PORT,.../PATH`; tried in order.
    pub masters: Vec<String>,
    /// PEM file of the CA certificate(s) https masters' certificates must chain to
    /// (default: the public webpki roots). Setting it implies `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Whether masters given without a scheme, and those found in ZooKeeper, speak
    /// https. Default: true exactly when `ca_cert` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// Framework name.
    pub framework_name: String,
    /// Framework principal (`FrameworkInfo.principal`; with `secret_file`, the HTTP
    /// Basic credential sent to the masters and to the agents' `/files`).
    pub principal: String,
    /// A file holding the framework's secret (read once at start): the secret alone, or
    /// a Mesos credentials file (JSON or `principal secret` lines) holding `principal`.
    /// Absent: the framework does not authenticate. Ignored with `local`, which makes
    /// its own credentials (`DATA_DIR/local-credentials.json`).
    pub secret_file: Option<PathBuf>,
    /// Framework role.
    pub role: String,
    /// Deprecated spelling of `jobs.default_user` (read when that is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The Unix user agents start `retz-executor` as (`ExecutorInfo.command.user`; never
    /// the job's user). Default `root`: the executor needs its privileges for cgroups and
    /// drops them in the job before exec. With `local` and a server that is not root,
    /// the default is the server's own user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_user: Option<String>,
    /// Seconds the master keeps tasks while the server is away.
    pub failover_timeout_s: f64,
    /// Seconds a declined offer's resources stay away.
    pub refuse_seconds: f64,
    /// The `retz-executor` the agents run: an absolute path on the agents, or a URI
    /// (`http://...`) the Mesos fetcher downloads into the sandbox. Default: the
    /// `retz-executor` next to the `retz-server` binary.
    pub executor: Option<String>,
    /// Ask for GPU offers (the GPU_RESOURCES capability); jobs may then ask for `gpus`.
    pub gpus: bool,
    /// The body encoding of the v1 scheduler API: `protobuf` (default) or `json` (for
    /// proxies and debugging setups that need text).
    pub content_type: MesosContentType,
}

/// `mesos.content_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MesosContentType {
    /// `application/x-protobuf`.
    #[default]
    Protobuf,
    /// `application/json` (the Mesos JSON dialect).
    Json,
}

impl From<MesosContentType> for retz_proto::ContentType {
    fn from(c: MesosContentType) -> Self {
        match c {
            MesosContentType::Protobuf => retz_proto::ContentType::Protobuf,
            MesosContentType::Json => retz_proto::ContentType::Json,
        }
    }
}

impl Default for MesosSection {
    fn default() -> Self {
        MesosSection {
            local: false,
            masters: vec!["127.0.0.1:5050".to_owned()],
            ca_cert: None,
            tls: None,
            framework_name: "Retz-Framework".to_owned(),
            principal: "retz".to_owned(),
            secret_file: None,
            role: "*".to_owned(),
            user: None,
            executor_user: None,
            failover_timeout_s: 604_800.0,
            refuse_seconds: 3.0,
            executor: None,
            gpus: false,
            content_type: MesosContentType::Protobuf,
        }
    }
}

/// `[planner]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerSection {
    /// The cluster's affinity policy (applications and jobs may override it).
    pub affinity: AffinityPolicy,
    /// Use of SMT siblings.
    pub smt: SmtPolicy,
    /// Use of a node's L3 cache domains (`pack` or `spread`; jobs may override it).
    pub cache: CachePolicy,
    /// At most this many jobs STARTING or STARTED at once.
    pub max_running: u32,
    /// Retries after a lost task (TASK_LOST, DROPPED, GONE, unreachable too long); jobs
    /// may override it.
    pub max_retries: u32,
    /// Seconds a task may stay TASK_UNREACHABLE before it counts as lost.
    pub unreachable_timeout_s: u64,
    /// Seconds an executor may run no task before it is shut down (an unloaded or
    /// replaced application's executors go as soon as their tasks ended).
    pub executor_idle_timeout_s: u64,
    /// How many queued jobs (in priority, id order) one placement cycle considers; the
    /// planner holds full records only for these, the rest of the queue as keys.
    pub window: u32,
}

impl Default for PlannerSection {
    fn default() -> Self {
        PlannerSection {
            affinity: AffinityPolicy::NumaPrefer,
            smt: SmtPolicy::WholeCores,
            cache: CachePolicy::Pack,
            max_running: 128,
            max_retries: 5,
            unreachable_timeout_s: 600,
            executor_idle_timeout_s: 600,
            window: 10_000,
        }
    }
}

/// `[local]`: the embedded cluster's agents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalSection {
    /// Number of agents.
    pub agents: u32,
    /// Give every agent this hwloc synthetic topology (`pack:2 numa:1 core:4 pu:1`)
    /// instead of this machine's.
    pub synthetic: Option<String>,
    /// Give every agent the topology of this hwloc XML file.
    pub xml: Option<PathBuf>,
    /// Seconds between offer rounds.
    pub allocation_interval_s: f64,
    /// GPUs each agent offers (device ids `0..N` with their NUMA locality; on a machine
    /// without GPUs they are attached to NUMA node 0). When non-zero the server asks for
    /// GPU offers (`mesos.gpus`) and, unless `limits.max_gpus` is set, lets a job ask
    /// for up to this many.
    pub gpus: u32,
    /// The agents' work directory (sandboxes). Default `<DATA_DIR>-work` (a sibling of
    /// the data dir, which is 0700: job users must reach their sandboxes), or a fresh
    /// directory under the system's temp dir without a data dir. A root server refuses
    /// to start when a directory on its path is not traversable by others (o+x).
    pub work_dir: Option<PathBuf>,
}

impl Default for LocalSection {
    fn default() -> Self {
        LocalSection {
            agents: 1,
            synthetic: None,
            xml: None,
            allocation_interval_s: 0.5,
            gpus: 0,
            work_dir: None,
        }
    }
}

/// `[jobs]`: the Unix users jobs run as (see [`crate::identity`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct JobsSection {
    /// Jobs of applications that name no allowed user run as this user. Unset: `nobody`,
    /// or the server's own user when it runs `local` and is not root (it cannot switch
    /// users then). Never root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_user: Option<String>,
    /// Users an application may name with `load-app -U` (besides the default user).
    /// Empty: none. Never root.
    pub allowed_users: Vec<String>,
}

impl ServerConfig {
    /// Reads `path`: TOML, or an original `retz.properties` when it ends in
    /// `.properties`.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "properties") {
            return ServerConfig::from_properties(&text);
        }
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().replace('\n', " ").trim().to_owned(),
        })
    }

    /// Reads a policy file (`[placement]`, as `retz-sim tune` writes) into
    /// `self.placement`.
    pub fn load_policy(&mut self, path: &Path) -> Result<(), ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PolicyFile {
            placement: PolicyConfig,
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: PolicyFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().replace('\n', " ").trim().to_owned(),
        })?;
        self.placement = file.placement;
        Ok(())
    }

    /// The data directory, if any.
    pub fn data_dir(&self) -> Option<&Path> {
        self.server.data_dir.as_deref()
    }

    /// The store URL: `server.database`, else SQLite in the data dir.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        if let Some(url) = &self.server.database
            && !url.starts_with(H2_PREFIX)
        {
            return Ok(url.clone());
        }
        match self.data_dir() {
            Some(dir) => Ok(format!("sqlite://{}", dir.join("retz.db").display())),
            None => Err(ConfigError::Invalid {
                key: "server.database",
                message: "no store configured; set server.database (sqlite://PATH or \
                          postgres://...) or server.data_dir, or pass --data-dir DIR"
                    .into(),
            }),
        }
    }

    /// The Unix users of launches for a server running as `server` (effective uid and
    /// its name; see [`crate::identity::server_user`]). Unset `jobs.default_user` (and
    /// `mesos.executor_user`): `nobody` (`root`), or with `local` and a server that is
    /// not root, the server's own user — it cannot switch users; a default user other
    /// than its own is then refused.
    pub fn launch_users_for(
        &self,
        server: (u32, Option<&str>),
    ) -> Result<LaunchUsers, ConfigError> {
        let (uid, name) = server;
        let own = || {
            name.map(str::to_owned).ok_or_else(|| ConfigError::Invalid {
                key: "jobs.default_user",
                message: format!(
                    "the server runs as uid {uid}, which has no user name; set \
                     jobs.default_user and mesos.executor_user to its name"
                ),
            })
        };
        let unprivileged_local = self.mesos.local && uid != 0;
        let configured = self.jobs.default_user.clone().or(self.mesos.user.clone());
        let default_user = match configured {
            Some(u) => {
                if unprivileged_local && name != Some(u.as_str()) {
                    return Err(ConfigError::Invalid {
                        key: "jobs.default_user",
                        message: format!(
                            "is {u:?}, but the server runs --local as {} (not root) and \
                             cannot start jobs as another user; leave jobs.default_user unset \
                             or run the server as root",
                            name.unwrap_or("an unnamed uid")
                        ),
                    });
                }
                u
            }
            None if unprivileged_local => own()?,
            None => "nobody".to_owned(),
        };
        let executor_user = match &self.mesos.executor_user {
            Some(u) => u.clone(),
            None if unprivileged_local => own()?,
            None => "root".to_owned(),
        };
        Ok(LaunchUsers {
            default_user,
            allowed_users: self.jobs.allowed_users.iter().cloned().collect(),
            executor_user,
        })
    }

    /// [`ServerConfig::launch_users_for`] this process.
    pub fn launch_users(&self) -> Result<LaunchUsers, ConfigError> {
        let (uid, name) = crate::identity::server_user();
        self.launch_users_for((uid, name.as_deref()))
    }

    /// The embedded cluster's work dir: `local.work_dir`, else `<DATA_DIR>-work` (next
    /// to the data dir, never inside it), else `None` (the server makes a temporary one).
    pub fn local_work_dir(&self) -> Option<PathBuf> {
        if let Some(w) = &self.local.work_dir {
            return Some(w.clone());
        }
        let data = self.data_dir()?;
        let data = std::fs::canonicalize(data)
            .or_else(|_| std::path::absolute(data))
            .unwrap_or_else(|_| data.to_owned());
        // `/var/lib/retz/` and `/var/lib/retz/.` name /var/lib/retz: drop such tails.
        let mut parts: Vec<_> = data
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let last = parts.pop()?;
        let std::path::Component::Normal(name) = last else {
            // The root dir or `..`: no sibling name to derive.
            return None;
        };
        let mut work: PathBuf = parts.iter().collect();
        let mut name = name.to_owned();
        name.push("-work");
        work.push(name);
        Some(work)
    }

    /// Checks every value; the error names the key and what to write.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        self.validate_site()?;
        if !self.mesos.local && self.mesos.masters.is_empty() {
            return bad(
                "mesos.masters",
                "no master given; list HOST:PORT addresses or run with --local".into(),
            );
        }
        let job_user = |key: &'static str, name: &str| {
            check_job_user(name).map_err(|e| ConfigError::Invalid {
                key,
                message: format!("{e}; name an unprivileged user (e.g. nobody)"),
            })
        };
        if let Some(u) = &self.jobs.default_user {
            job_user("jobs.default_user", u)?;
        }
        if let Some(u) = &self.mesos.user {
            job_user("mesos.user", u)?;
            if self.jobs.default_user.as_ref().is_some_and(|d| d != u) {
                return bad(
                    "mesos.user",
                    "is the old name of jobs.default_user, and both are set differently; \
                     remove mesos.user"
                        .into(),
                );
            }
        }
        for u in &self.jobs.allowed_users {
            job_user("jobs.allowed_users", u)?;
        }
        if let Some(u) = &self.mesos.executor_user
            && u != "root"
            && !is_plain_user_name(u)
        {
            return bad(
                "mesos.executor_user",
                format!("{u:?} is not a plain user name (default: root)"),
            );
        }
        if self
            .mesos
            .secret_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return bad(
                "mesos.secret_file",
                "is empty; name the file holding the framework's secret".into(),
            );
        }
        if self
            .local
            .work_dir
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return bad("local.work_dir", "is empty; name a directory".into());
        }
        if !(self.mesos.failover_timeout_s.is_finite() && self.mesos.failover_timeout_s >= 0.0) {
            return bad(
                "mesos.failover_timeout_s",
                "must be a number of seconds ≥ 0".into(),
            );
        }
        if !(self.mesos.refuse_seconds.is_finite() && self.mesos.refuse_seconds >= 0.0) {
            return bad(
                "mesos.refuse_seconds",
                "must be a number of seconds ≥ 0".into(),
            );
        }
        if self.server.max_connections == 0 {
            return bad(
                "server.max_connections",
                "must be at least 1 (a few thousand is usual)".into(),
            );
        }
        for (key, v) in [
            (
                "server.header_read_timeout_s",
                self.server.header_read_timeout_s,
            ),
            (
                "server.body_read_timeout_s",
                self.server.body_read_timeout_s,
            ),
            ("server.idle_timeout_s", self.server.idle_timeout_s),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1 second".into());
            }
        }
        if self.server.max_body_buffer_bytes < self.server.max_body_bytes as u64 {
            return bad(
                "server.max_body_buffer_bytes",
                format!(
                    "is below server.max_body_bytes ({}); no body of the largest size could be \
                     read",
                    self.server.max_body_bytes
                ),
            );
        }
        if self.server.max_body_bytes < 1024 {
            return bad(
                "server.max_body_bytes",
                "must be at least 1024 bytes".into(),
            );
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(_), None) => {
                return bad(
                    "server.tls_key",
                    "tls_cert is set but tls_key is not; HTTPS needs both (PEM files)".into(),
                );
            }
            (None, Some(_)) => {
                return bad(
                    "server.tls_cert",
                    "tls_key is set but tls_cert is not; HTTPS needs both (PEM files)".into(),
                );
            }
            (Some(cert), Some(key)) => {
                if cert.as_os_str().is_empty() {
                    return bad("server.tls_cert", "is empty; name a PEM file".into());
                }
                if key.as_os_str().is_empty() {
                    return bad("server.tls_key", "is empty; name a PEM file".into());
                }
            }
            (None, None) => {}
        }
        if self.planner.max_running == 0 {
            return bad("planner.max_running", "must be at least 1".into());
        }
        if self.planner.window == 0 {
            return bad(
                "planner.window",
                "must be at least 1 (queued jobs one placement cycle considers)".into(),
            );
        }
        if self.limits.max_cpus == 0 {
            return bad("limits.max_cpus", "must be at least 1".into());
        }
        if self.local.agents == 0 || self.local.agents > 1024 {
            return bad("local.agents", "must be between 1 and 1024".into());
        }
        if self.local.synthetic.is_some() && self.local.xml.is_some() {
            return bad(
                "local.synthetic",
                "give either local.synthetic or local.xml, not both".into(),
            );
        }
        if !(self.local.allocation_interval_s.is_finite() && self.local.allocation_interval_s > 0.0)
        {
            return bad(
                "local.allocation_interval_s",
                "must be a positive number of seconds".into(),
            );
        }
        if let Some(db) = &self.server.database
            && !db.starts_with(H2_PREFIX)
            && !(db.starts_with("sqlite:")
                || db.starts_with("postgres:")
                || db.starts_with("postgresql:"))
        {
            return bad(
                "server.database",
                format!("{db:?} is neither sqlite://PATH nor postgres://..."),
            );
        }
        Ok(())
    }
}

mod gc;
mod limits;
mod properties;

pub use gc::GcSection;
pub use limits::{LimitsSection, QuotaSection};
use properties::H2_PREFIX;

#[cfg(test)]
mod tests;
