//! [`LocalCluster`]: a master plus N agents in this process, as `retz-server --local` and
//! the tests use it, with fault injection (dropped framework streams, master failover,
//! non-leader mode, agent and executor deaths).
//!
//! Agents advertise their topology by the Retz NUMA convention (`agent_resources`): this
//! machine read with hwloc by default, or an hwloc XML export or synthetic description
//! per agent; each also offers ports, `[31000-32000]` as a Mesos agent does unless its
//! [`AgentSpec::ports`] say otherwise. Each agent's events reach the master through a forwarder task that survives
//! master restarts; after a restart every agent re-registers with what runs on it and
//! resends its unacknowledged status updates. Started again on the work directory of a
//! cluster that crashed, each agent comes back with its id and port and recovers its
//! checkpointed executors (see [`crate::agent::checkpoint`]).
//!
//! Credentials: [`ClusterConfig::credentials`] go to the master (framework
//! authentication on the scheduler API, and its read-only endpoints) and to every agent
//! (`/files/*`, `/state`); each executor gets its own executor API token regardless.
//!
//! Invariants: `agents()` lists the agents that are alive and registered; a killed agent
//! is removed from the master (offers rescinded, tasks lost) before the call returns; the
//! directories the cluster creates on the way to the sandboxes are mode 0755, so the
//! users tasks run as can reach their sandboxes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retz_proto::mesos::{
    AgentId, AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, KillPolicy,
    TaskGroupInfo, TaskId, TaskInfo,
};
use retz_topology::{TopologySource, load};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::agent::{
    Agent, AgentConfig, AgentError, DEFAULT_EXECUTOR_REGISTRATION_TIMEOUT,
    DEFAULT_EXECUTOR_SHUTDOWN_GRACE_PERIOD, DEFAULT_PORTS, agent_resources_with_gpus,
    spec_with_gpus,
};
use crate::master::{
    AgentLink, AgentReport, AgentSnapshot, Leadership, Master, MasterConfig, MasterError,
    RunningExecutor, RunningTask,
};

/// One agent of a cluster.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Its topology: this machine, an hwloc XML export or a synthetic description.
    pub topology: TopologySource,
    /// Its hostname in offers (default `localhost`).
    pub hostname: String,
    /// Disk to advertise, MB; `None`: derived from the free space of the work directory
    /// as a Mesos agent does (all but 5 GB when there are 10 GB or more, else half).
    pub disk_mb: Option<u64>,
    /// The `ports` RANGES to offer: sorted, disjoint inclusive ranges (see
    /// [`crate::agent::parse_port_ranges`]); empty offers none. Default
    /// [`DEFAULT_PORTS`], a Mesos agent's `[31000-32000]`.
    pub ports: Vec<(u64, u64)>,
    /// GPUs to offer (default 0): the topology's first `gpus` GPUs, or GPUs `0..gpus`
    /// on its first NUMA node when it lists fewer (see
    /// [`crate::agent::spec_with_gpus`]).
    pub gpus: u32,
}

impl AgentSpec {
    /// An agent on `topology` named `localhost` with the default disk.
    pub fn new(topology: TopologySource) -> AgentSpec {
        AgentSpec {
            topology,
            hostname: "localhost".into(),
            disk_mb: None,
            ports: DEFAULT_PORTS.to_vec(),
            gpus: 0,
        }
    }
}

/// Settings of a [`LocalCluster`].
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The master's settings.
    pub master: MasterConfig,
    /// The agents, in id order (`<master-id>-S0`, `-S1`, ...).
    pub agents: Vec<AgentSpec>,
    /// Root of the agents' work directories (`<work_dir>/agents/<n>`).
    pub work_dir: PathBuf,
    /// How long an executor may take to SUBSCRIBE (default 60 s).
    pub executor_registration_timeout: Duration,
    /// Default executor shutdown grace period (default 5 s).
    pub executor_shutdown_grace_period: Duration,
    /// The credentials frameworks must present (HTTP Basic) to the master's scheduler
    /// API and its read-only endpoints, and operators to the agents' `/files` and
    /// `/state`. When `None`, `master.credentials` (if any) serve the same purpose for
    /// the master and the agents; with neither, the cluster is open (tests and demos
    /// only).
    pub credentials: Option<retz_proto::credentials::Credentials>,
}

impl ClusterConfig {
    /// A cluster with one agent on this machine, the master on `127.0.0.1:5050`.
    pub fn new(work_dir: impl Into<PathBuf>) -> ClusterConfig {
        ClusterConfig {
            master: MasterConfig::default(),
            agents: vec![AgentSpec::new(TopologySource::ThisMachine)],
            work_dir: work_dir.into(),
            executor_registration_timeout: DEFAULT_EXECUTOR_REGISTRATION_TIMEOUT,
            executor_shutdown_grace_period: DEFAULT_EXECUTOR_SHUTDOWN_GRACE_PERIOD,
            credentials: None,
        }
    }
}

/// Why a cluster cannot start or act.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The master failed.
    #[error(transparent)]
    Master(#[from] MasterError),
    /// An agent's topology cannot be loaded.
    #[error("agent {index}: {error}")]
    Topology {
        /// Which agent (0-based).
        index: usize,
        /// Why.
        error: retz_topology::TopologyError,
    },
    /// An agent failed to start.
    #[error("agent {index}: {error}")]
    Agent {
        /// Which agent (0-based).
        index: usize,
        /// Why.
        error: AgentError,
    },
    /// The work directory is unusable.
    #[error("cannot create the work directory {path}: {error}; pick another with --work-dir")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// The master -> agent seam for the real agent.
impl AgentLink for Agent {
    fn info(&self) -> AgentInfo {
        Agent::info(self)
    }

    fn launch(
        &self,
        framework: &FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    ) {
        Agent::launch(self, framework, executor, tasks);
    }

    fn launch_group(
        &self,
        framework: &FrameworkInfo,
        executor: ExecutorInfo,
        group: TaskGroupInfo,
    ) {
        Agent::launch_group(self, framework, executor, group);
    }

    fn kill_task(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        kill_policy: Option<KillPolicy>,
    ) {
        Agent::kill_task(self, framework_id, task_id, kill_policy);
    }

    fn shutdown_executor(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        Agent::shutdown_executor(self, framework_id, executor_id);
    }

    fn shutdown_framework(&self, framework_id: &FrameworkId) {
        Agent::shutdown_framework(self, framework_id);
    }

    fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &[u8]) {
        Agent::acknowledge(self, framework_id, task_id, uuid);
    }

    fn send_message(&self, framework_id: &FrameworkId, executor_id: &ExecutorId, data: Vec<u8>) {
        Agent::send_message(self, framework_id, executor_id, data);
    }

    fn snapshot(&self) -> AgentSnapshot {
        AgentSnapshot {
            executors: self
                .active_executors()
                .into_iter()
                .map(|e| RunningExecutor {
                    framework: e.framework,
                    info: e.info,
                })
                .collect(),
            tasks: self
                .active_tasks()
                .into_iter()
                .map(|t| RunningTask {
                    framework: t.framework,
                    task: t.task,
                    executor_id: t.executor_id,
                    state: t.state,
                })
                .collect(),
        }
    }

    fn reregistered(&self) {
        self.resend_unacknowledged();
    }
}

/// Disk to advertise for a work directory, Mesos' rule: all but 5 GB when there are 10 GB
/// or more free, else half (and 0 when it cannot be measured).
pub fn default_disk_mb(work_dir: &Path) -> u64 {
    const GB: u64 = 1024;
    let Ok(st) = nix::sys::statvfs::statvfs(work_dir) else {
        return 0;
    };
    // The statvfs field types differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    let free_mb =
        (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64) / (1024 * 1024);
    if free_mb >= 10 * GB {
        free_mb - 5 * GB
    } else {
        free_mb / 2
    }
}

struct Live {
    agent: Agent,
    forwarder: JoinHandle<()>,
}

/// Agents not started yet (see [`LocalCluster::start_master`]).
struct Pending {
    config: ClusterConfig,
    specs: Vec<retz_placement::topology::TopologySpec>,
    credentials: Option<retz_proto::credentials::Credentials>,
}

/// A running local cluster (see the module doc).
pub struct LocalCluster {
    master: Master,
    agents: Arc<Mutex<Vec<Live>>>,
    work_dir: PathBuf,
    pending: tokio::sync::Mutex<Option<Pending>>,
}

impl LocalCluster {
    /// Starts the master, then the agents (each registers at once).
    pub async fn start(config: ClusterConfig) -> Result<LocalCluster, ClusterError> {
        let cluster = LocalCluster::start_master(config).await?;
        if let Err(e) = cluster.start_agents().await {
            cluster.shutdown().await;
            return Err(e);
        }
        Ok(cluster)
    }

    /// Starts the master alone; the agents (topologies already loaded, so bad input
    /// fails here) wait for [`LocalCluster::start_agents`]. A standby master of a
    /// ZooKeeper group starts its agents when it first leads, so that, sharing the
    /// work directory with the master it replaces, its agents take over that master's
    /// agents (ids, ports, sandboxes, running executors) as Mesos agents re-register
    /// with a new leader.
    pub async fn start_master(config: ClusterConfig) -> Result<LocalCluster, ClusterError> {
        crate::agent::sandbox::create_dirs(&config.work_dir).map_err(|error| {
            ClusterError::WorkDir {
                path: config.work_dir.clone(),
                error,
            }
        })?;
        // Load every topology before anything listens, so bad input fails fast.
        let mut specs = Vec::with_capacity(config.agents.len());
        for (index, a) in config.agents.iter().enumerate() {
            let loaded =
                load(&a.topology).map_err(|error| ClusterError::Topology { index, error })?;
            specs.push(loaded.spec);
        }
        let credentials = config
            .credentials
            .clone()
            .or_else(|| config.master.credentials.clone());
        let mut master_config = config.master.clone();
        master_config.credentials.clone_from(&credentials);
        let master = Master::start(master_config).await?;
        Ok(LocalCluster {
            master,
            agents: Arc::new(Mutex::new(Vec::new())),
            work_dir: config.work_dir.clone(),
            pending: tokio::sync::Mutex::new(Some(Pending {
                config,
                specs,
                credentials,
            })),
        })
    }

    /// Starts the agents of [`LocalCluster::start_master`] (each registers at once); a
    /// second call does nothing. After a crash (or on the work directory of a master
    /// that was killed) each agent comes back with its id and port.
    pub async fn start_agents(&self) -> Result<(), ClusterError> {
        let Some(Pending {
            config,
            specs,
            credentials,
        }) = self.pending.lock().await.take()
        else {
            return Ok(());
        };
        for (index, (a, spec)) in config.agents.iter().zip(specs).enumerate() {
            let work_dir = config.work_dir.join("agents").join(index.to_string());
            let disk = a.disk_mb.unwrap_or_else(|| {
                crate::agent::sandbox::create_dirs(&work_dir).ok();
                default_disk_mb(&work_dir)
            });
            let spec = if a.gpus > 0 {
                spec_with_gpus(&spec, a.gpus)
            } else {
                spec
            };
            let (resources, attributes) = agent_resources_with_gpus(&spec, disk, &a.ports, a.gpus);
            // After a crash the agent comes back with its id and port, so its executors
            // (which outlived it) re-subscribe and the master learns their tasks.
            let previous = crate::agent::checkpoint::read_agent_meta(&work_dir);
            let id = previous.as_ref().map_or_else(
                || self.master.agent_id(index),
                |m| AgentId {
                    value: m.id.clone(),
                },
            );
            let mut cfg = AgentConfig::new(id, work_dir);
            cfg.hostname = a.hostname.clone();
            cfg.resources = resources;
            cfg.attributes = attributes;
            cfg.executor_registration_timeout = config.executor_registration_timeout;
            cfg.executor_shutdown_grace_period = config.executor_shutdown_grace_period;
            cfg.credentials.clone_from(&credentials);
            let port = previous.map_or(0, |m| m.port);
            self.add_agent(index, cfg, port).await?;
        }
        Ok(())
    }

    async fn add_agent(
        &self,
        index: usize,
        cfg: AgentConfig,
        port: u16,
    ) -> Result<(), ClusterError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<AgentReport>();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let agent = match Agent::start_on(cfg.clone(), addr, tx.clone()).await {
            Err(AgentError::Bind { .. }) if port != 0 => {
                tracing::warn!(
                    port,
                    "the agent's previous port is taken: its executors cannot re-subscribe"
                );
                Agent::start(cfg, tx).await
            }
            other => other,
        }
        .map_err(|error| ClusterError::Agent { index, error })?;
        let reporter = self.master.reporter();
        let forwarder = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if !reporter.report(ev) {
                    break;
                }
            }
        });
        self.master.add_agent(Arc::new(agent.clone())).await?;
        agent.resume_recovery();
        self.lock().push(Live { agent, forwarder });
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Live>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The master's address (`host:port` for `--mesos`, or `http://<addr>`).
    pub fn master_addr(&self) -> SocketAddr {
        self.master.addr()
    }

    /// The master.
    pub fn master(&self) -> &Master {
        &self.master
    }

    /// The live agents, in id order.
    pub fn agents(&self) -> Vec<Agent> {
        self.lock().iter().map(|l| l.agent.clone()).collect()
    }

    /// A live agent by id.
    pub fn agent(&self, agent_id: &AgentId) -> Option<Agent> {
        self.lock()
            .iter()
            .find(|l| l.agent.id() == agent_id)
            .map(|l| l.agent.clone())
    }

    /// The cluster's work directory.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Fault injection: closes a framework's SUBSCRIBE stream (see
    /// [`Master::drop_framework_stream`]).
    pub async fn drop_framework_stream(
        &self,
        framework_id: &FrameworkId,
    ) -> Result<bool, ClusterError> {
        Ok(self.master.drop_framework_stream(framework_id).await?)
    }

    /// Fault injection: master failover (see [`Master::restart`]); agents re-register
    /// with their running tasks and resend unacknowledged updates.
    pub async fn restart_master(&self) -> Result<(), ClusterError> {
        Ok(self.master.restart().await?)
    }

    /// Fault injection: answer as a non-leader (307/503) or as the leader again.
    pub fn set_leadership(&self, leadership: Leadership) {
        self.master.set_leadership(leadership);
    }

    /// Fault injection: the agent crashes (its executors are SIGKILLed, its listener
    /// stops) and the master removes it. `false` if no such live agent.
    pub async fn kill_agent(&self, agent_id: &AgentId) -> Result<bool, ClusterError> {
        let live = {
            let mut agents = self.lock();
            let Some(pos) = agents.iter().position(|l| l.agent.id() == agent_id) else {
                return Ok(false);
            };
            agents.remove(pos)
        };
        live.agent.kill_agent().await;
        live.forwarder.abort();
        self.master.remove_agent(agent_id).await?;
        Ok(true)
    }

    /// Fault injection: SIGKILL an executor (the agent reports TASK_FAILED and the exit).
    /// `false` if no such live agent.
    pub fn kill_executor(
        &self,
        agent_id: &AgentId,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> bool {
        match self.agent(agent_id) {
            Some(a) => {
                a.kill_executor(framework_id, executor_id);
                true
            }
            None => false,
        }
    }

    /// Stops everything: agents shut their executors down gracefully, then the master.
    pub async fn shutdown(&self) {
        let live: Vec<Live> = std::mem::take(&mut *self.lock());
        for l in &live {
            l.agent.stop().await;
        }
        self.master.shutdown().await;
        for l in live {
            l.forwarder.abort();
        }
    }
}
