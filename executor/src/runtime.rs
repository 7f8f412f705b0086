//! The task runtime: launches tasks pinned to their CPUs, watches them, kills them, and
//! reports each state change on a channel. Independent of the Mesos transport.
//!
//! Per task, in order: validate the spec → resolve its Unix user ([`crate::identity`];
//! the first task's user becomes the executor's owner and gets the sandbox, see
//! [`crate::sandbox`]; a later task of another user fails) → decide the pinning
//! ([`crate::pinning::plan`]) → unpack the application once (serialised per application)
//! → create the task directory, owned by the job's user → create the task cgroup with its
//! cpuset and memory limit → spawn `sh -c` in its own process group, joining the cgroup,
//! setting affinity and memory policy, entering its own PID namespace (when the executor
//! has `CAP_SYS_ADMIN`) and switching to the job's user before exec ([`crate::sys`]) →
//! read back `/proc/<pid>/{status,cgroup}` → emit [`TaskUpdate::Running`] with the
//! [`PinningReport`] → wait for exit or kill → kill what is left of the cgroup (or the
//! process group), remove the cgroup → emit the terminal update ([`TaskUpdate::Finished`],
//! [`TaskUpdate::Failed`] or [`TaskUpdate::Killed`]), whose message and `leftovers` say
//! how many processes were left behind and killed (by the namespace's PID 1, plus those
//! found in the cgroup or process group).
//!
//! Invariants: every launched task gets exactly one terminal update, preceded by at most
//! one `Running`; when a task's terminal update is emitted none of its processes is left
//! (namespace, cgroup and process group swept) and its cgroup is gone (or the message says
//! why not); [`TaskRuntime::shutdown`] ends with no task and no cgroup of this executor
//! left. A job never runs as root: a task without a valid non-root user fails. Without the
//! right to manage cgroups a task is pinned by affinity alone and its report says so;
//! without a PID namespace (no `CAP_SYS_ADMIN`, or entering one failed) the report says
//! so too; only a spec with `pin_required` whose CPUs cannot be had fails for pinning.
//!
//! Kill: `SIGTERM` to the process group, `SIGKILL` to it after the grace period (the
//! kill's, else the launch's `KillPolicy`, else the configured default of 3 s), then
//! `SIGKILL` to every process left in the cgroup.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cgroup::{CgroupConfig, Cgroups};
use crate::identity::{DEFAULT_USER, JobUser};
use retz_proto::task::{Verification, VerifiedPinning};

use crate::pinning::{self, Machine, PinningReport};
use crate::procfs::parse_status;
use crate::sandbox::{Owner, Sandbox, SandboxError, task_key};
use crate::spec::TaskSpec;
use crate::sys::{ExitStatus, SpawnError, SpawnPlan, Sys};
use crate::taskenv;

mod ending;
mod owner;
mod prepare;

/// Default grace period between `SIGTERM` and `SIGKILL`.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// How long to wait for a process to die after `SIGKILL` before reporting it.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Configuration of a [`TaskRuntime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The executor's sandbox (`MESOS_SANDBOX`).
    pub sandbox: PathBuf,
    /// Application artifacts fetched into the sandbox (relative paths).
    pub artifacts: Vec<PathBuf>,
    /// Where task cgroups go.
    pub cgroups: CgroupConfig,
    /// The procfs mount (`/proc`).
    pub proc_root: PathBuf,
    /// Grace period when neither the kill nor the launch gives one.
    pub default_kill_grace: Duration,
    /// Environment passed to every task before its own (usually the executor's; its
    /// credentials are never passed on, see [`crate::taskenv`]).
    pub base_env: Vec<(String, String)>,
    /// The job user of tasks whose spec names none (`--default-user`).
    pub default_user: String,
    /// Start each job in its own PID namespace when the executor may (`CAP_SYS_ADMIN`).
    pub pid_namespace: bool,
}

impl RuntimeConfig {
    /// Defaults for a sandbox at `sandbox`: cgroups under `/sys/fs/cgroup`, parent `retz`,
    /// `/proc`, a 3 s grace period, empty base environment, no artifacts, default user
    /// `nobody`, PID namespaces when possible.
    pub fn new(sandbox: impl Into<PathBuf>) -> Self {
        Self {
            sandbox: sandbox.into(),
            artifacts: Vec::new(),
            cgroups: CgroupConfig::default(),
            proc_root: PathBuf::from("/proc"),
            default_kill_grace: DEFAULT_KILL_GRACE,
            base_env: Vec::new(),
            default_user: DEFAULT_USER.into(),
            pid_namespace: true,
        }
    }
}

/// A task to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLaunch {
    /// The Mesos task id.
    pub task_id: String,
    /// What to run and how to pin it.
    pub spec: TaskSpec,
    /// The task's `KillPolicy` grace period, if any.
    pub kill_grace: Option<Duration>,
}

/// A state change of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// The task.
    pub task_id: String,
    /// What happened.
    pub update: TaskUpdate,
}

/// Why a task failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The task data or id is unusable.
    InvalidTask,
    /// The spec demands pinning that cannot be done, or verification showed drift.
    PinningImpossible,
    /// The sandbox, cgroup or process could not be set up.
    LaunchFailed,
    /// The command exited non-zero or was killed by a signal it did not get from us.
    CommandFailed,
    /// The task's Unix user cannot be used (root, unknown, another owner's).
    UserRefused,
}

/// A task state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskUpdate {
    /// The task runs.
    Running {
        /// Its main process (also its process group).
        pid: u32,
        /// Its working directory.
        work_dir: PathBuf,
        /// What pinning was applied and observed.
        pinning: Box<PinningReport>,
    },
    /// Exit status 0.
    Finished {
        /// Human-readable summary.
        message: String,
        /// Processes left behind by the job and killed before this update.
        leftovers: u32,
        /// The pinning applied and verified.
        pinning: Option<Box<VerifiedPinning>>,
    },
    /// It failed.
    Failed {
        /// Category (maps to a Mesos reason).
        reason: FailReason,
        /// Human-readable cause.
        message: String,
        /// The command's exit code, when it ran and exited (not when killed by a signal).
        exit_code: Option<i32>,
        /// The signal that ended the command, when one did.
        signal: Option<i32>,
        /// Processes left behind by the job and killed before this update.
        leftovers: u32,
        /// The pinning applied and verified, when the command started.
        pinning: Option<Box<VerifiedPinning>>,
    },
    /// It was killed on request.
    Killed {
        /// The kill came before the process started.
        during_launch: bool,
        /// How it went.
        message: String,
        /// Processes left behind by the job (beyond those the kill reached) and killed.
        leftovers: u32,
        /// The pinning applied and verified, when the command started.
        pinning: Option<Box<VerifiedPinning>>,
    },
}

impl TaskUpdate {
    /// Whether this is the last update of the task.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, TaskUpdate::Running { .. })
    }
}

/// Why a launch was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// A task with this id is already running here.
    #[error("task {0} is already running in this executor")]
    Duplicate(String),
    /// The runtime is shutting down.
    #[error("the executor is shutting down; task {0} not launched")]
    ShuttingDown(String),
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The executor's own allowed CPUs/nodes could not be read.
    #[error("cannot read this process's allowed CPUs and memory nodes from {path}: {message}")]
    Machine { path: PathBuf, message: String },
    /// The sandbox configuration is unusable.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

struct TaskEntry {
    kill: watch::Sender<Option<Duration>>,
}

struct Inner {
    sys: Arc<dyn Sys>,
    sandbox: Sandbox,
    proc_root: PathBuf,
    default_grace: Duration,
    base_env: Vec<(String, String)>,
    default_user: String,
    /// `Err`: why jobs get no PID namespace.
    pid_namespace: Result<(), String>,
    /// The user of this executor's jobs, set by the first task.
    owner: Mutex<Option<JobUser>>,
    machine: Machine,
    cgroups: Result<Cgroups, String>,
    events: mpsc::UnboundedSender<TaskEvent>,
    tasks: Mutex<HashMap<String, TaskEntry>>,
    drivers: Mutex<JoinSet<()>>,
    apps: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    closed: AtomicBool,
}

/// The task runtime. Cheap to clone (shared).
#[derive(Clone)]
pub struct TaskRuntime {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The runtime's critical sections cannot panic; recover the data if one did.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TaskRuntime {
    /// Starts the runtime: reads this process's allowed CPUs and nodes, prepares the
    /// cgroup scope (or records why cgroups cannot be used) and sweeps leftovers of a
    /// previous run. Events of every task arrive on the returned receiver.
    pub async fn start(
        sys: Arc<dyn Sys>,
        config: RuntimeConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<TaskEvent>), RuntimeError> {
        let status_path = config.proc_root.join("self/status");
        let machine_err = |message: String| RuntimeError::Machine {
            path: status_path.clone(),
            message,
        };
        let status = sys
            .read_file(&status_path)
            .map_err(|e| machine_err(e.to_string()))?;
        let status = parse_status(&status).map_err(|e| machine_err(e.to_string()))?;
        let (Some(cpus), Some(mems)) = (status.cpus_allowed, status.mems_allowed) else {
            return Err(machine_err("no Cpus_allowed_list/Mems_allowed_list".into()));
        };
        let machine = Machine { cpus, mems };
        let sandbox = Sandbox::new(&config.sandbox, config.artifacts.clone())?;
        let cgroups = Cgroups::setup(sys.as_ref(), &config.cgroups, &config.proc_root);
        match &cgroups {
            Ok(cg) => {
                tracing::info!(version = %cg.version(), scope = %cg.scope().display(), "task cgroups");
                for note in cg.notes() {
                    tracing::warn!("{note}");
                }
                for failure in cg.sweep(sys.as_ref()).await {
                    tracing::warn!("leftover of a previous run: {failure}");
                }
            }
            Err(why) => tracing::warn!("no task cgroups, pinning by affinity alone: {why}"),
        }
        let pid_namespace = if !config.pid_namespace {
            Err("disabled by configuration".to_owned())
        } else {
            match sys.has_cap_sys_admin() {
                Ok(true) => Ok(()),
                Ok(false) => Err("the executor lacks CAP_SYS_ADMIN".to_owned()),
                Err(e) => Err(format!("cannot read the executor's capabilities: {e}")),
            }
        };
        if let Err(why) = &pid_namespace {
            tracing::warn!("jobs run without their own PID namespace: {why}");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            sys,
            sandbox,
            proc_root: config.proc_root,
            default_grace: config.default_kill_grace,
            base_env: config.base_env,
            default_user: config.default_user,
            pid_namespace,
            owner: Mutex::new(None),
            machine,
            cgroups,
            events: tx,
            tasks: Mutex::new(HashMap::new()),
            drivers: Mutex::new(JoinSet::new()),
            apps: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            rx,
        ))
    }

    /// The prepared cgroups, or why there are none.
    pub fn cgroups(&self) -> Result<&Cgroups, &str> {
        self.inner.cgroups.as_ref().map_err(String::as_str)
    }

    /// The CPUs and nodes this executor may hand out.
    pub fn machine(&self) -> &Machine {
        &self.inner.machine
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.inner.sandbox
    }

    /// Ids of the tasks not yet terminal.
    pub fn active_tasks(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.inner.tasks).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Launches a task. Its updates arrive on the event channel; launch problems become a
    /// [`TaskUpdate::Failed`] there. Refused only for a duplicate id or during shutdown.
    pub fn launch(&self, launch: TaskLaunch) -> Result<(), LaunchError> {
        let task_id = launch.task_id.clone();
        let (kill_tx, kill_rx) = watch::channel(None);
        {
            let mut tasks = lock(&self.inner.tasks);
            if self.inner.closed.load(Ordering::SeqCst) {
                return Err(LaunchError::ShuttingDown(task_id));
            }
            if tasks.contains_key(&task_id) {
                return Err(LaunchError::Duplicate(task_id));
            }
            tasks.insert(task_id.clone(), TaskEntry { kill: kill_tx });
        }
        let inner = self.inner.clone();
        let mut drivers = lock(&self.inner.drivers);
        while drivers.try_join_next().is_some() {}
        drivers.spawn(async move {
            let grace = launch.kill_grace;
            let update = inner.run(&task_id, launch.spec, grace, kill_rx).await;
            lock(&inner.tasks).remove(&task_id);
            inner.emit(&task_id, update);
        });
        Ok(())
    }

    /// Asks task `task_id` to stop (grace: the given one, else the launch's, else the
    /// default). Returns false if no such task is active.
    pub fn kill(&self, task_id: &str, grace: Option<Duration>) -> bool {
        let tasks = lock(&self.inner.tasks);
        match tasks.get(task_id) {
            Some(entry) => {
                entry.kill.send_modify(|g| {
                    // The first request wins; a later one may only shorten the grace.
                    let new = grace.unwrap_or(Duration::MAX);
                    *g = Some(g.map_or(new, |old| old.min(new)));
                });
                true
            }
            None => false,
        }
    }

    /// Kills every task with `grace`, waits for their terminal updates, and removes this
    /// executor's cgroups. Later launches are refused.
    pub async fn shutdown(&self, grace: Duration) {
        {
            let tasks = lock(&self.inner.tasks);
            self.inner.closed.store(true, Ordering::SeqCst);
            for entry in tasks.values() {
                entry.kill.send_replace(Some(grace));
            }
        }
        let mut drivers = std::mem::take(&mut *lock(&self.inner.drivers));
        while drivers.join_next().await.is_some() {}
        if let Ok(cg) = &self.inner.cgroups {
            for failure in cg.remove_scope(self.inner.sys.as_ref()).await {
                tracing::error!("cgroup cleanup at shutdown: {failure}");
            }
        }
    }
}

async fn kill_requested(rx: &mut watch::Receiver<Option<Duration>>) -> Duration {
    loop {
        if let Some(grace) = *rx.borrow_and_update() {
            return grace;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Inner {
    fn emit(&self, task_id: &str, update: TaskUpdate) {
        // A closed receiver means nobody listens any more (shutdown); nothing to do.
        let _ = self.events.send(TaskEvent {
            task_id: task_id.to_owned(),
            update,
        });
    }

    fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.apps).entry(app.to_owned()).or_default().clone()
    }

    async fn run(
        &self,
        task_id: &str,
        spec: TaskSpec,
        launch_grace: Option<Duration>,
        mut kill_rx: watch::Receiver<Option<Duration>>,
    ) -> TaskUpdate {
        let failed = |reason, message: String| TaskUpdate::Failed {
            reason,
            message,
            exit_code: None,
            signal: None,
            leftovers: 0,
            pinning: None,
        };
        let killed_early = || TaskUpdate::Killed {
            during_launch: true,
            message: "killed before the task started".into(),
            leftovers: 0,
            pinning: None,
        };
        let started = std::time::Instant::now();
        let spec = match spec.validate() {
            Ok(s) => s,
            Err(e) => return failed(FailReason::InvalidTask, e.to_string()),
        };
        let Some(key) = task_key(task_id) else {
            return failed(
                FailReason::InvalidTask,
                SandboxError::TaskId(task_id.to_owned()).to_string(),
            );
        };
        let user = match self.job_user(spec.spec.user.as_deref()) {
            Ok(u) => u,
            Err(message) => return failed(FailReason::UserRefused, message),
        };
        let plan = match pinning::plan(&spec, &self.machine) {
            Ok(p) => p,
            Err(e) => return failed(FailReason::PinningImpossible, e.to_string()),
        };

        let app = match self.prepare_app(&spec.app, &mut kill_rx).await {
            Ok(app) => app,
            Err(update) => return update,
        };
        let owner = Owner {
            uid: user.uid,
            gid: user.gid,
        };
        // Off the async threads: laying out a large application takes a while.
        let (sys, sandbox, id) = (self.sys.clone(), self.sandbox.clone(), task_id.to_owned());
        let app_path = app.path.clone();
        let made = tokio::task::spawn_blocking(move || {
            sandbox.task_dir(sys.as_ref(), &id, Some(owner), Some(&app_path))
        })
        .await;
        let dir = match made {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return failed(FailReason::LaunchFailed, e.to_string()),
            Err(e) => return failed(FailReason::LaunchFailed, format!("task directory: {e}")),
        };

        let vars = taskenv::retz_vars(task_id, &spec, &plan, &app.path);
        let mut spawn_plan = SpawnPlan {
            argv: taskenv::argv(&spec, &vars),
            env: taskenv::environment(&self.base_env, Some(&user), &spec, &vars),
            cwd: dir.dir.clone(),
            stdout: dir.stdout.clone(),
            stderr: dir.stderr.clone(),
            cgroup_procs: Vec::new(),
            affinity: plan.cpus.clone(),
            mem_policy: plan.mem_policy.clone(),
            identity: user.identity(),
            pid_namespace: self.pid_namespace.is_ok(),
        };
        let mut no_namespace = self.pid_namespace.clone().err();

        let sys = self.sys.as_ref();
        let prepared = started.elapsed();
        let (mut cgroup, mut unavailable) = self.create_cgroup(&key, &spec, &plan).await;
        let with_cgroup = started.elapsed();
        if let Some(cg) = &cgroup {
            spawn_plan.cgroup_procs = cg.procs_files();
        }
        // A kill that came while the cgroup was being made (a plain read: no timer).
        if kill_rx.borrow().is_some() {
            self.cleanup(cgroup.as_ref(), None).await;
            return killed_early();
        }

        let before_spawn = started.elapsed();
        let spawned = loop {
            match sys.spawn(&spawn_plan) {
                // Joining the cgroup failed (e.g. no permission): pin by affinity alone.
                Err(e @ SpawnError::Attach { .. }) if !spawn_plan.cgroup_procs.is_empty() => {
                    unavailable = Some(e.to_string());
                    self.cleanup(cgroup.take().as_ref(), None).await;
                    spawn_plan.cgroup_procs.clear();
                }
                // No PID namespace here after all: leftovers are found in the cgroup.
                Err(e @ SpawnError::Namespace { .. }) if spawn_plan.pid_namespace => {
                    tracing::warn!(task = task_id, "{e}; starting it without one");
                    no_namespace = Some(e.to_string());
                    spawn_plan.pid_namespace = false;
                }
                other => break other,
            }
        };
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                self.cleanup(cgroup.as_ref(), None).await;
                return failed(FailReason::LaunchFailed, e.to_string());
            }
        };
        let spawned_at = started.elapsed();
        let pid = spawned.pid;
        let mut exit = spawned.exit;

        let mut report = PinningReport::new(spec.spec.affinity, &plan, cgroup.as_ref());
        report.cgroup_unavailable = unavailable;
        report.user = Some(user.describe());
        report.pid_namespace = spawn_plan.pid_namespace;
        report.pid_namespace_unavailable = no_namespace;
        let proc_dir = self.proc_root.join(pid.to_string());
        pinning::verify(&mut report, &plan, cgroup.as_ref(), |file| {
            sys.read_file(&proc_dir.join(file))
        });
        let verified = Some(Box::new(report.verified()));
        // Only drift with evidence (a live task seen elsewhere) fails a task; an exited or
        // unverifiable one never does (issue 21).
        if spec.spec.pin_required && report.outcome == Some(Verification::Drift) {
            let _ = sys.signal(
                crate::sys::SignalTarget::Group(pid),
                crate::sys::Signal::Kill,
            );
            let _ = tokio::time::timeout(KILL_WAIT, &mut exit).await;
            let (_, cleanup) = self.cleanup(cgroup.as_ref(), Some(pid)).await;
            return TaskUpdate::Failed {
                reason: FailReason::PinningImpossible,
                message: format!(
                    "pinning verification failed: {}{cleanup}",
                    report.drift.join("; ")
                ),
                exit_code: None,
                signal: None,
                leftovers: 0,
                pinning: verified,
            };
        }
        tracing::debug!(
            task = task_id,
            pid,
            prepare_us = prepared.as_micros() as u64,
            cgroup_us = (with_cgroup - prepared).as_micros() as u64,
            spawn_us = (spawned_at - before_spawn).as_micros() as u64,
            verify_us = (started.elapsed() - spawned_at).as_micros() as u64,
            "task running"
        );
        self.emit(
            task_id,
            TaskUpdate::Running {
                pid,
                work_dir: dir.dir.clone(),
                pinning: Box::new(report),
            },
        );

        tokio::select! {
            exited = &mut exit => {
                let (found, cleanup) = self.cleanup(cgroup.as_ref(), Some(pid)).await;
                let reaped = exited.as_ref().map_or(0, |e| e.reaped);
                let leftovers = reaped.saturating_add(found);
                let left = ending::leftover_note(leftovers);
                match exited.map(|e| e.status) {
                    Ok(s) if s.success() => TaskUpdate::Finished {
                        message: format!("command exited with code 0{left}{cleanup}"),
                        leftovers,
                        pinning: verified,
                    },
                    Ok(s) => TaskUpdate::Failed {
                        reason: FailReason::CommandFailed,
                        message: format!("command {s}{left}{cleanup}"),
                        exit_code: match s {
                            ExitStatus::Code(c) => Some(c),
                            ExitStatus::Signal(_) => None,
                        },
                        signal: match s {
                            ExitStatus::Code(_) => None,
                            ExitStatus::Signal(n) => Some(n),
                        },
                        leftovers,
                        pinning: verified,
                    },
                    Err(e) => TaskUpdate::Failed {
                        reason: FailReason::CommandFailed,
                        message: format!(
                            "lost track of the task's process {pid}: {e}{left}{cleanup}"
                        ),
                        exit_code: None,
                        signal: None,
                        leftovers,
                        pinning: verified,
                    },
                }
            }
            requested = kill_requested(&mut kill_rx) => {
                let grace = if requested == Duration::MAX {
                    launch_grace.unwrap_or(self.default_grace)
                } else {
                    requested
                };
                let (how, reaped) = self.terminate(pid, grace, &mut exit).await;
                let (found, cleanup) = self.cleanup(cgroup.as_ref(), Some(pid)).await;
                let leftovers = reaped.saturating_add(found);
                TaskUpdate::Killed {
                    during_launch: false,
                    message: format!(
                        "killed on request: {how}{}{cleanup}",
                        ending::leftover_note(leftovers)
                    ),
                    leftovers,
                    pinning: verified,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
