//! The quickstart's main job, as a library: start the embedded local cluster on this
//! machine, subscribe a framework with the Retz scheduler client, place a few jobs with the
//! NUMA placement engine on the offers, launch them through the real `retz-executor`, and
//! collect what each job printed (its `$RETZ_CPU`, `$RETZ_CPUSET` and its own
//! `Cpus_allowed_list`). `retz-server --local` will grow out of the same steps; until then
//! this is what `scripts/quickstart.sh` runs and what `tests/quickstart.rs` checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use retz_executor::spec::{Affinity, TaskSpec};
use retz_executor::topology::TopologySource;
use retz_mesos_local::cluster::{AgentSpec, ClusterConfig, LocalCluster};
use retz_placement::{AffinityPolicy, JobRequest, Packer, PolicyConfig, ResourceRange};
use retz_proto::mesos::{
    CommandInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Offer, TaskId, TaskInfo,
    TaskState,
};
use retz_scheduler::mesos::{SchedulerConfig, SchedulerEvent, start};
use retz_scheduler::offers::{agent_state, task_resources};

/// The command every quickstart job runs.
pub const JOB_COMMAND: &str = "echo \"job $RETZ_JOB_ID: RETZ_CPU=$RETZ_CPU \
RETZ_CPUSET=$RETZ_CPUSET $(grep Cpus_allowed_list /proc/self/status | tr -d '\\t')\"";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `retz-executor` binary the agent starts.
    pub executor: PathBuf,
    /// Work directory of the local cluster (sandboxes live below it).
    pub work_dir: PathBuf,
    /// How many jobs; each asks for exactly `cpus_per_job` CPUs under `numa-prefer`.
    pub jobs: u64,
    /// CPUs per job.
    pub cpus_per_job: u32,
    /// Give up after this long.
    pub timeout: Duration,
}

/// One finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// The job id (1, 2, ...).
    pub job_id: u64,
    /// The CPUs the placement engine granted, Linux list format.
    pub cpuset: String,
    /// The terminal state.
    pub state: String,
    /// What the job printed on stdout.
    pub stdout: String,
}

/// Why the quickstart could not finish.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    /// Something the run needs is missing or broken.
    #[error("{0}")]
    Setup(String),
    /// The jobs did not all finish in time.
    #[error("timed out after {0:?} with jobs still running: {1}")]
    Timeout(Duration, String),
}

fn setup(e: impl std::fmt::Display) -> QuickstartError {
    QuickstartError::Setup(e.to_string())
}

/// Runs the quickstart's jobs and returns their results in job-id order.
pub async fn run(opts: &Options) -> Result<Vec<JobResult>, QuickstartError> {
    if !opts.executor.is_file() {
        return Err(setup(format!(
            "retz-executor not found at {} (build it first: cargo build -p retz-executor)",
            opts.executor.display()
        )));
    }
    let mut config = ClusterConfig::new(&opts.work_dir);
    config.master.bind = "127.0.0.1:0".parse().map_err(setup)?;
    config.master.allocation_interval = Duration::from_millis(200);
    config.agents = vec![AgentSpec::new(TopologySource::ThisMachine)];
    let cluster = LocalCluster::start(config).await.map_err(setup)?;
    let result = tokio::time::timeout(opts.timeout, drive(&cluster, opts)).await;
    cluster.shutdown().await;
    match result {
        Ok(r) => r,
        Err(_) => Err(QuickstartError::Timeout(
            opts.timeout,
            "see the agent sandboxes".into(),
        )),
    }
}

async fn drive(cluster: &LocalCluster, opts: &Options) -> Result<Vec<JobResult>, QuickstartError> {
    let framework = FrameworkInfo {
        user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        name: "retz-quickstart".into(),
        failover_timeout: Some(60.0),
        ..FrameworkInfo::default()
    };
    let cfg = SchedulerConfig::new(vec![cluster.master_addr().to_string()], framework);
    let (driver, mut events) = start(cfg).map_err(setup)?;

    let mut queue: Vec<JobRequest> = (1..=opts.jobs)
        .map(|id| JobRequest {
            job_id: id,
            cpus: ResourceRange::exactly(opts.cpus_per_job),
            mem_mb: ResourceRange::exactly(32),
            gpus: 0,
            policy: AffinityPolicy::NumaPrefer,
            numanodes: None,
            smt: Default::default(),
            priority: 0,
            submitted_at: 0,
        })
        .collect();
    let mut packer = Packer::new(PolicyConfig::default());
    let mut granted: BTreeMap<u64, String> = BTreeMap::new();
    let mut done: BTreeMap<u64, JobResult> = BTreeMap::new();
    let mut framework_id: Option<FrameworkId> = None;
    let executor_id = ExecutorId {
        value: "retz-quickstart".into(),
    };

    while done.len() < opts.jobs as usize {
        let Some(event) = events.recv().await else {
            return Err(setup("the scheduler client stopped"));
        };
        match event {
            SchedulerEvent::Subscribed {
                framework_id: id, ..
            } => framework_id = Some(id),
            SchedulerEvent::Offers(offers) => {
                for offer in offers {
                    launch_on(
                        &driver,
                        &offer,
                        &mut packer,
                        &mut queue,
                        &mut granted,
                        opts,
                        &executor_id,
                    )
                    .await?;
                }
            }
            SchedulerEvent::Update(status) => {
                driver.acknowledge(&status).await.map_err(setup)?;
                let state = status.state();
                let terminal = !matches!(
                    state,
                    TaskState::TaskStaging
                        | TaskState::TaskStarting
                        | TaskState::TaskRunning
                        | TaskState::TaskKilling
                );
                let job_id: u64 = status
                    .task_id
                    .value
                    .trim_start_matches("quickstart-")
                    .parse()
                    .map_err(|_| setup(format!("unexpected task id {}", status.task_id.value)))?;
                if terminal {
                    let stdout = framework_id
                        .as_ref()
                        .and_then(|fid| {
                            read_task_stdout(cluster, fid, &executor_id, &status.task_id)
                        })
                        .unwrap_or_default();
                    let mut state_name = state.as_str_name().to_string();
                    if let Some(message) = status.message.as_ref().filter(|m| !m.is_empty())
                        && state != TaskState::TaskFinished
                    {
                        state_name = format!("{state_name}: {message}");
                    }
                    done.insert(
                        job_id,
                        JobResult {
                            job_id,
                            cpuset: granted.get(&job_id).cloned().unwrap_or_default(),
                            state: state_name,
                            stdout,
                        },
                    );
                }
            }
            SchedulerEvent::Error(message) => return Err(setup(format!("master said: {message}"))),
            _ => {}
        }
    }
    let _ = driver.teardown().await;
    Ok(done.into_values().collect())
}

#[allow(clippy::too_many_arguments)]
async fn launch_on(
    driver: &retz_scheduler::mesos::SchedulerDriver,
    offer: &Offer,
    packer: &mut Packer,
    queue: &mut Vec<JobRequest>,
    granted: &mut BTreeMap<u64, String>,
    opts: &Options,
    executor_id: &ExecutorId,
) -> Result<(), QuickstartError> {
    let agent = agent_state(offer).map_err(setup)?;
    let plan = packer.plan(std::slice::from_ref(&agent), queue, 0);
    if plan.assignments.is_empty() {
        driver
            .decline(vec![offer.id.clone()], Some(1.0))
            .await
            .map_err(setup)?;
        return Ok(());
    }
    let executor = ExecutorInfo {
        executor_id: executor_id.clone(),
        name: Some("retz-executor (quickstart)".into()),
        command: Some(CommandInfo {
            value: Some(opts.executor.display().to_string()),
            shell: Some(false),
            ..CommandInfo::default()
        }),
        ..ExecutorInfo::default()
    };
    let mut tasks = Vec::new();
    for asg in &plan.assignments {
        let pinned = asg.pinned;
        let spec = TaskSpec {
            command: JOB_COMMAND.to_string(),
            env: BTreeMap::new(),
            cpus: asg.granted_cpus,
            mem_mb: asg.granted_mem_mb,
            gpus: asg.granted_gpus,
            cpuset: pinned.then(|| asg.cpus.to_string()),
            mem_nodes: pinned.then(|| asg.nodes.to_string()),
            affinity: Affinity::NumaPrefer,
            mem_policy: None,
            pin_required: pinned,
            job_id: Some(asg.job_id),
            app: Some("quickstart".into()),
        };
        granted.insert(asg.job_id, asg.cpus.to_string());
        tasks.push(TaskInfo {
            name: format!("quickstart job {}", asg.job_id),
            task_id: TaskId {
                value: format!("quickstart-{}", asg.job_id),
            },
            agent_id: offer.agent_id.clone(),
            resources: task_resources(offer, asg, pinned),
            executor: Some(executor.clone()),
            data: Some(serde_json::to_vec(&spec).map_err(setup)?),
            ..TaskInfo::default()
        });
    }
    queue.retain(|j| plan.assignment(j.job_id).is_none());
    driver
        .launch(vec![offer.id.clone()], tasks, None)
        .await
        .map_err(setup)?;
    Ok(())
}

/// The retz-executor writes each task's output to `<sandbox>/tasks/<task id>/stdout`.
fn read_task_stdout(
    cluster: &LocalCluster,
    framework_id: &FrameworkId,
    executor_id: &ExecutorId,
    task_id: &TaskId,
) -> Option<String> {
    cluster.agents().iter().find_map(|agent| {
        let sandbox = agent.sandbox_dir(framework_id, executor_id)?;
        read(&sandbox.join("tasks").join(&task_id.value).join("stdout"))
    })
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}
