//! `retz-server` put together: store, admin user, (local cluster), Mesos client, planner
//! loop and HTTP API, with a clean shutdown. The binary only parses flags and calls
//! [`Server::start`]; tests start servers in-process the same way.
//!
//! First start with a data dir: an admin user is created (its key kept in the store's
//! properties) and `DATA_DIR/client.toml` is written (mode 0600, atomically), so
//! `retz-client -C DATA_DIR/client.toml` and `retz-admin -C DATA_DIR/client.toml` work.
//! With `server.tls_cert` / `server.tls_key` the API is served over HTTPS only; the
//! certificate and key are checked before anything else starts, and `client.toml` then
//! names an `https://` URL and `ca_cert = <tls_cert>` so the admin trusts the server's
//! own (possibly self-signed) certificate.
//!
//! Files at rest: the data dir is made 0700 at every start (created so); the store keeps
//! its files 0600 (see [`crate::store`]); `client.toml` and `local-credentials.json` are
//! written 0600, atomically.
//!
//! Credentials: `--local` generates the embedded cluster's principal and secret at first
//! start into `DATA_DIR/local-credentials.json` (kept in memory without a data dir) and
//! reuses them after; the cluster requires them, and the scheduler client and the file
//! proxy present them. Not local, `mesos.principal` with `mesos.secret_file` are sent
//! the same way. The local cluster's work dir (`local.work_dir`, default
//! `<DATA_DIR>-work`) is outside the data dir; a root server refuses to start when a job
//! user could not traverse to it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use retz_mesos_local::cluster::{AgentSpec, ClusterConfig, LocalCluster};
use retz_proto::api::ClientConfig;
use retz_proto::credentials::{Credential, Credentials};
use retz_proto::mesos::{FrameworkId, FrameworkInfo, framework_info};
use retz_topology::TopologySource;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{ConfigError, ServerConfig};
use crate::http::{AppState, HttpConfig, app};
use crate::identity::LaunchUsers;
use crate::mesos::{SchedulerConfig, start};
use crate::planner::{ExecutorLocation, Planner, PlannerError, PlannerOptions};
use crate::store::Store;

/// The property holding the admin user's key.
const ADMIN_KEY_PROPERTY: &str = "admin_key";

/// The embedded cluster's credentials in the data dir.
pub const LOCAL_CREDENTIALS_FILE: &str = "local-credentials.json";

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A file or socket could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The embedded local cluster failed to start.
    #[error("local cluster: {0}")]
    Local(String),
    /// The Mesos client refused the settings.
    #[error("Mesos client: {0}")]
    Mesos(String),
    /// The planner loop stopped.
    #[error("planner: {0}")]
    Planner(#[from] PlannerError),
    /// The HTTPS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    https: bool,
    client_config: Option<PathBuf>,
    cluster: Option<LocalCluster>,
    planner: JoinHandle<Result<(), PlannerError>>,
    http: JoinHandle<()>,
    stop_http: oneshot::Sender<()>,
    gc: Option<JoinHandle<()>>,
    store: Store,
}

/// The HTTPS settings of `cfg`, loaded and checked, or `None` for plain HTTP.
fn tls_settings(cfg: &ServerConfig) -> Result<Option<TlsSettings>, ServerError> {
    let (Some(cert), Some(key)) = (&cfg.server.tls_cert, &cfg.server.tls_key) else {
        return Ok(None);
    };
    let certs = crate::tls::load_certs(cert)?;
    let key_der = crate::tls::load_key(key)?;
    // `load_certs` never returns an empty chain; say so rather than index.
    let leaf = certs
        .first()
        .cloned()
        .ok_or_else(|| crate::tls::TlsError::Cert {
            path: cert.clone(),
            reason: "holds no certificate".into(),
        })?;
    let config = crate::tls::server_config(certs, key_der, cert, key)?;
    Ok(Some(TlsSettings {
        config,
        cert: cert.clone(),
        leaf,
    }))
}

/// What HTTPS serving needs.
struct TlsSettings {
    config: Arc<rustls::ServerConfig>,
    /// `server.tls_cert`, as configured.
    cert: PathBuf,
    /// The server's own certificate.
    leaf: rustls::pki_types::CertificateDer<'static>,
}

impl Server {
    /// Starts everything `cfg` asks for. `cfg` must have passed `validate`.
    pub async fn start(cfg: ServerConfig) -> Result<Server, ServerError> {
        cfg.validate()?;
        site::log_notes(&cfg);
        let users = cfg.launch_users()?;
        info!(
            default_user = %users.default_user,
            allowed_users = ?users.allowed_users,
            executor_user = %users.executor_user,
            "jobs run as their application's allowed user, else as the default user"
        );
        if cfg.mesos.user.is_some() {
            warn!("mesos.user is the old name of jobs.default_user; write [jobs] default_user");
        }
        if cfg.mesos.local {
            let others: Vec<&String> = users
                .allowed_users
                .iter()
                .filter(|u| **u != users.default_user)
                .collect();
            let (uid, _) = crate::identity::server_user();
            if uid != 0 && !others.is_empty() {
                warn!(
                    ?others,
                    server_user = %users.default_user,
                    "jobs.allowed_users: the server runs --local without root and cannot start \
                     jobs as another user; applications naming these users will fail"
                );
            }
        }
        let tls = tls_settings(&cfg)?;
        if let Some(dir) = cfg.data_dir() {
            private_dir(dir)?;
        }
        // Before anything is opened: a work dir job users cannot reach stops the start.
        let local_work_dir = if cfg.mesos.local {
            let work_dir = cfg.local_work_dir().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("retz-local-{}", std::process::id()))
            });
            let (uid, _) = crate::identity::server_user();
            work_dir_for_jobs(&work_dir, uid == 0)?;
            Some(work_dir)
        } else {
            None
        };
        let credential = if cfg.mesos.local {
            Some(local_credential(cfg.data_dir(), &cfg.mesos.principal)?)
        } else if let Some(path) = &cfg.mesos.secret_file {
            Some(framework_credential(path, &cfg.mesos.principal)?)
        } else {
            info!(
                principal = %cfg.mesos.principal,
                "no mesos.secret_file: the framework does not authenticate to the masters"
            );
            None
        };
        let url = cfg.database_url()?;
        let store = Store::open(&url).await?;
        info!(database = %crate::store::redact_url(&url), "store open");

        let bind = site::bind_addr(&cfg).await?;
        let listener = TcpListener::bind(bind)
            .await
            .map_err(io(format!("cannot listen on {bind}")))?;
        let addr = listener.local_addr().map_err(io("listener address"))?;

        let mut admin_keys: BTreeSet<String> = cfg.server.admin_keys.iter().cloned().collect();
        let configured = site::configured_admin(&store, &cfg).await?;
        if let Some(u) = &configured {
            admin_keys.insert(u.key_id.clone());
        }
        let mut client_config = None;
        if let Some(dir) = cfg.data_dir() {
            let (key, path) = ensure_admin(&store, dir, addr, tls.as_ref(), configured).await?;
            admin_keys.insert(key);
            client_config = Some(path);
        }

        let (masters, cluster, executor) = if let Some(work_dir) = &local_work_dir {
            // Always set for a local cluster (above): never start it open.
            let c = credential
                .as_ref()
                .ok_or_else(|| ServerError::Local("no credentials for the local cluster".into()))?;
            let cluster = start_local(&cfg, work_dir, c).await?;
            let exe = default_executor();
            (vec![cluster.master_addr().to_string()], Some(cluster), exe)
        } else {
            let exe = cfg.mesos.executor.clone().unwrap_or_else(default_executor);
            (cfg.mesos.masters.clone(), None, exe)
        };
        let framework = framework_info(
            &cfg,
            store.framework_id().await?,
            &users,
            credential.as_ref(),
        );
        let mut sched = SchedulerConfig::new(masters, framework);
        sched.backoff_max = Duration::from_secs(5);
        sched.credential = credential.clone();
        sched.content_type = cfg.mesos.content_type.into();
        sched.ca_cert = cfg.mesos.ca_cert.clone();
        sched.tls = cfg.mesos.tls;
        let (driver, events) = start(sched).map_err(|e| ServerError::Mesos(e.to_string()))?;
        let opts = PlannerOptions {
            cfg: cfg.planner.clone(),
            policy: cfg.placement.clone(),
            executor: ExecutorLocation::parse(&executor),
            users: users.clone(),
            refuse_seconds: cfg.mesos.refuse_seconds,
            record_events: cfg.server.record_events.clone(),
            window: cfg.planner.window as usize,
            quota: cfg.quota.defaults(),
        };
        let (planner, link) = Planner::new(store.clone(), driver, opts)
            .map_err(io("cannot open the event recording (server.record_events)"))?;
        let planner = tokio::spawn(planner.run(events));

        let http_cfg = HttpConfig {
            authentication: cfg.server.authentication,
            date_skew_s: cfg.server.date_skew_s,
            body_limit: cfg.server.max_body_bytes,
            max_list_jobs: cfg.server.max_list_jobs as usize,
            max_file_size: u64::try_from(cfg.server.max_file_size).unwrap_or(u64::MAX),
            max_cpus: cfg.limits.max_cpus,
            max_mem_mb: cfg.limits.max_mem_mb,
            max_gpus: if cfg.mesos.gpus {
                cfg.limits.max_gpus
            } else {
                0
            },
            max_disk_mb: cfg.limits.max_disk_mb,
            max_ports: cfg.limits.max_ports,
            max_retries: cfg.limits.max_retries,
            max_grace_period_s: cfg.limits.max_grace_period_s,
            body_read_timeout: Duration::from_secs(cfg.server.body_read_timeout_s),
            body_buffer_bytes: usize::try_from(cfg.server.max_body_buffer_bytes)
                .unwrap_or(usize::MAX),
            admin_keys,
            admin_loopback: cfg.server.admin_loopback,
            default_max_retries: cfg.planner.max_retries,
            users,
            agent_credential: credential,
            quota: cfg.quota.defaults(),
            ..HttpConfig::default()
        };
        let router = app(AppState::new(store.clone(), http_cfg, link));
        let https = tls.is_some();
        let (stop_http, stopped) = oneshot::channel::<()>();
        let limits = crate::serve::ConnLimits {
            max_connections: cfg.server.max_connections as usize,
            header_read_timeout: Duration::from_secs(cfg.server.header_read_timeout_s),
            idle_timeout: Duration::from_secs(cfg.server.idle_timeout_s),
        };
        file_descriptors_for(limits.max_connections);
        let http = tokio::spawn(crate::serve::serve_with(
            listener,
            router,
            tls.map(|t| t.config),
            limits,
            async move {
                // A dropped sender (the Server dropped without stop) stops serving too.
                let _ = stopped.await;
            },
        ));
        let gc = site::spawn_gc(&store, &cfg.gc);
        info!(%addr, https, local = cfg.mesos.local, "retz-server listening");
        Ok(Server {
            gc,
            addr,
            https,
            client_config,
            cluster,
            planner,
            http,
            stop_http,
            store,
        })
    }

    /// The HTTP API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the API is served over HTTPS.
    pub fn https(&self) -> bool {
        self.https
    }

    /// The API's base URL, e.g. `https://127.0.0.1:9090`.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The admin's `client.toml`, when the server has a data dir.
    pub fn client_config(&self) -> Option<&Path> {
        self.client_config.as_deref()
    }

    /// The embedded cluster, when local.
    pub fn cluster(&self) -> Option<&LocalCluster> {
        self.cluster.as_ref()
    }

    /// Waits until the planner stops (an error) or `shutdown` resolves, then stops
    /// everything.
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let result = tokio::select! {
            r = &mut self.planner => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(ServerError::Planner(e)),
                Err(e) => Err(ServerError::Mesos(format!("planner task failed: {e}"))),
            },
            () = shutdown => Ok(()),
        };
        self.stop().await;
        result
    }

    /// Stops the HTTP API (open connections get [`crate::serve::DRAIN_TIMEOUT`] to
    /// finish), the planner and the local cluster.
    pub async fn stop(self) {
        let _ = self.stop_http.send(());
        let mut http = self.http;
        let grace = crate::serve::DRAIN_TIMEOUT + Duration::from_secs(1);
        if tokio::time::timeout(grace, &mut http).await.is_err() {
            warn!("the HTTP API did not stop in time; aborting it");
            http.abort();
        }
        self.planner.abort();
        if let Some(gc) = &self.gc {
            gc.abort();
        }
        if let Some(c) = &self.cluster {
            c.shutdown().await;
        }
        self.store.close().await;
    }
}

/// File descriptors the server keeps for itself beyond its connections (store, local
/// cluster, agents' sockets, logs).
const RESERVED_FDS: u64 = 512;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit when `max_connections` (plus
/// [`RESERVED_FDS`]) would not fit under it, and warns when even the hard limit is too
/// low: the connection cap, not the descriptor table, must be what sheds a flood.
fn file_descriptors_for(max_connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let want = max_connections as u64 + RESERVED_FDS;
    let mut lim = getrlimit(Resource::Nofile);
    let soft = lim.current.unwrap_or(u64::MAX);
    if soft >= want {
        return;
    }
    let hard = lim.maximum.unwrap_or(u64::MAX);
    lim.current = Some(want.min(hard));
    let raised = setrlimit(Resource::Nofile, lim).is_ok();
    let now = if raised { want.min(hard) } else { soft };
    if now < want {
        warn!(
            max_connections,
            open_files_limit = now,
            "server.max_connections plus {RESERVED_FDS} is over the open files limit; \
             lower it or raise the limit (LimitNOFILE= in the unit, ulimit -n)"
        );
    }
}

/// The `retz-executor` next to this program (where `cargo build` and packages put it).
pub fn default_executor() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("retz-executor")))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "retz-executor".into())
}

/// The framework: its user is the default job user, its principal the credential's
/// (else `mesos.principal`).
fn framework_info(
    cfg: &ServerConfig,
    id: Option<String>,
    users: &LaunchUsers,
    credential: Option<&Credential>,
) -> FrameworkInfo {
    let user = users.default_user.clone();
    let principal = credential.map_or_else(|| cfg.mesos.principal.clone(), |c| c.principal.clone());
    let mut capabilities = vec![framework_info::Capability {
        r#type: Some(framework_info::capability::Type::PartitionAware as i32),
    }];
    if cfg.mesos.gpus {
        capabilities.push(framework_info::Capability {
            r#type: Some(framework_info::capability::Type::GpuResources as i32),
        });
    }
    FrameworkInfo {
        user,
        name: cfg.mesos.framework_name.clone(),
        id: id.map(|value| FrameworkId { value }),
        failover_timeout: Some(cfg.mesos.failover_timeout_s),
        checkpoint: Some(true),
        principal: Some(principal),
        roles: vec![cfg.mesos.role.clone()],
        capabilities: {
            capabilities.push(framework_info::Capability {
                r#type: Some(framework_info::capability::Type::MultiRole as i32),
            });
            capabilities
        },
        ..FrameworkInfo::default()
    }
}

async fn start_local(
    cfg: &ServerConfig,
    work_dir: &Path,
    credential: &Credential,
) -> Result<LocalCluster, ServerError> {
    let mut cc = ClusterConfig::new(work_dir);
    cc.credentials = Some(Credentials::single(credential.clone()));
    cc.master.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    cc.master.allocation_interval = Duration::from_secs_f64(cfg.local.allocation_interval_s);
    let source = match (&cfg.local.synthetic, &cfg.local.xml) {
        (Some(s), _) => TopologySource::Synthetic(s.clone()),
        (None, Some(x)) => TopologySource::XmlFile(x.clone()),
        (None, None) => TopologySource::ThisMachine,
    };
    cc.agents = (0..cfg.local.agents)
        .map(|i| {
            let mut a = AgentSpec::new(source.clone());
            a.gpus = cfg.local.gpus;
            if cfg.local.agents > 1 {
                a.hostname = format!("local-agent-{i}");
            }
            a
        })
        .collect();
    info!(agents = cfg.local.agents, topology = %source, work_dir = %work_dir.display(), "starting the embedded local cluster");
    LocalCluster::start(cc)
        .await
        .map_err(|e| ServerError::Local(e.to_string()))
}

/// Creates the admin user on first start (unless the config names one, `configured`)
/// and (re)writes `DIR/client.toml` for it.
async fn ensure_admin(
    store: &Store,
    dir: &Path,
    addr: SocketAddr,
    tls: Option<&TlsSettings>,
    configured: Option<retz_proto::api::User>,
) -> Result<(String, PathBuf), ServerError> {
    let user = match configured {
        Some(u) => u,
        None => stored_admin(store).await?,
    };
    write_client_config(user, dir, addr, tls).await
}

/// The admin user made at first start (created now if missing).
async fn stored_admin(store: &Store) -> Result<retz_proto::api::User, ServerError> {
    Ok(match store.property(ADMIN_KEY_PROPERTY).await? {
        Some(key) => match store.get_user(&key).await? {
            Some(u) => u,
            None => create_admin(store).await?,
        },
        None => create_admin(store).await?,
    })
}

/// Writes `DIR/client.toml` for `user`.
async fn write_client_config(
    user: retz_proto::api::User,
    dir: &Path,
    addr: SocketAddr,
    tls: Option<&TlsSettings>,
) -> Result<(String, PathBuf), ServerError> {
    let config = ClientConfig {
        server: admin_url(addr, tls),
        access_key: user.key_id.clone(),
        secret: user.secret.clone(),
        authentication: true,
        tls_insecure: false,
        ca_cert: match tls {
            Some(t) => Some(std::path::absolute(&t.cert).map_err(io(format!(
                "cannot make {} an absolute path for client.toml",
                t.cert.display()
            )))?),
            None => None,
        },
    };
    let text = format!(
        "# retz-client / retz-admin config of the admin user, written by retz-server.\n{}",
        toml::to_string(&config).unwrap_or_default()
    );
    let path = dir.join("client.toml");
    write_private(&path, &text).map_err(io(format!("cannot write {}", path.display())))?;
    Ok((user.key_id, path))
}

/// The URL the admin on this host reaches the API at: `http://IP:PORT`, or with TLS
/// `https://` and a host the certificate names (the IP, else `localhost`).
fn admin_url(addr: SocketAddr, tls: Option<&TlsSettings>) -> String {
    let ip = if addr.ip().is_unspecified() {
        if addr.is_ipv4() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        }
    } else {
        addr.ip()
    };
    let ip_text = SocketAddr::new(ip, addr.port()).to_string();
    let Some(tls) = tls else {
        return format!("http://{ip_text}");
    };
    match crate::tls::local_host_name(&tls.leaf, ip) {
        Some(host) => format!("https://{host}:{}", addr.port()),
        None => {
            warn!(
                cert = %tls.cert.display(),
                %ip,
                "the certificate names neither {ip} nor localhost: the admin's client.toml \
                 uses https://{ip_text}, which clients will refuse; edit its server URL to a \
                 name the certificate holds"
            );
            format!("https://{ip_text}")
        }
    }
}

async fn create_admin(store: &Store) -> Result<retz_proto::api::User, ServerError> {
    let user = store.create_user("admin (created by retz-server)").await?;
    store.set_property(ADMIN_KEY_PROPERTY, &user.key_id).await?;
    info!(key = %user.key_id, "created the admin user");
    Ok(user)
}

/// Writes `text` to `path` with mode 0600 via a fresh temporary file and a rename.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover of a crash may have another mode: never reuse it.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Creates `dir` 0700 if missing (its missing parents with the default mode, so that a
/// sibling such as `<DATA_DIR>-work` stays reachable) and makes it 0700 if it exists.
pub fn private_dir(dir: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(io(format!("cannot create data dir {}", dir.display())))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(io(format!("cannot create data dir {}", dir.display()))(e));
        }
        _ => {}
    }
    set_mode(dir, 0o700).map_err(io(format!(
        "cannot make data dir {} private (mode 0700)",
        dir.display()
    )))
}

/// Creates the local cluster's work dir (and missing parents) 0755 so that job users can
/// reach their sandboxes; with `check` (a root server, whose jobs run as other users),
/// refuses a work dir some directory on the way to which lacks o+x, naming it.
pub fn work_dir_for_jobs(work: &Path, check: bool) -> Result<(), ServerError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let work = std::path::absolute(work).map_err(io(format!(
        "cannot resolve the work dir {}",
        work.display()
    )))?;
    let missing: Vec<&Path> = work.ancestors().take_while(|d| !d.exists()).collect();
    for dir in missing.iter().rev() {
        match std::fs::DirBuilder::new().mode(0o755).create(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(io(format!("cannot create the work dir {}", dir.display()))(
                    e,
                ));
            }
            _ => {}
        }
        // Whatever the umask: traversable and readable, writable by the server only.
        set_mode(dir, 0o755).map_err(io(format!("cannot chmod 0755 {}", dir.display())))?;
    }
    if !check {
        return Ok(());
    }
    // The real path: a job user follows the same symlinks.
    let real = std::fs::canonicalize(&work).map_err(io(format!(
        "cannot resolve the work dir {}",
        work.display()
    )))?;
    for dir in real.ancestors() {
        let meta = std::fs::metadata(dir).map_err(io(format!("cannot stat {}", dir.display())))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o001 == 0 {
            return Err(ServerError::Config(ConfigError::Invalid {
                key: "local.work_dir",
                message: format!(
                    "job users cannot reach their sandboxes in {}: {} has mode {mode:04o}, \
                     without o+x (search for others); run `chmod o+x {}`, or choose a work dir \
                     outside it (local.work_dir, --local-work-dir DIR)",
                    work.display(),
                    dir.display(),
                    dir.display()
                ),
            }));
        }
    }
    Ok(())
}

mod credentials;
mod site;

pub use credentials::{framework_credential, local_credential};

#[cfg(test)]
mod tests;
