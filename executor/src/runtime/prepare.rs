//! Launch preparation: the application directory and the task cgroup.

use std::time::Duration;

use tokio::sync::watch;

use super::{FailReason, Inner, TaskUpdate, kill_requested};
use crate::cgroup::TaskCgroup;
use crate::pinning;

impl Inner {
    /// The application directory: unpacked by the first task, reused by the others.
    /// `Err` is the task's terminal update (killed meanwhile, or unpacking failed).
    pub(super) async fn prepare_app(
        &self,
        app: &str,
        kill_rx: &mut watch::Receiver<Option<Duration>>,
    ) -> Result<crate::sandbox::AppDir, TaskUpdate> {
        let path = self.sandbox.app_path(app);
        if path.join(crate::sandbox::MARKER).is_file() {
            // Fast path for every task after the first: one stat, no thread hop.
            return Ok(crate::sandbox::AppDir { path, reused: true });
        }
        let app_lock = self.app_lock(app);
        let sandbox = self.sandbox.clone();
        let app_name = app.to_owned();
        let prepare = async move {
            let guard = app_lock.lock_owned().await;
            // The guard moves into the blocking job so that a cancelled launch cannot let
            // another task start unpacking while this one still is.
            tokio::task::spawn_blocking(move || {
                let _guard = guard;
                sandbox.prepare_app(&app_name)
            })
            .await
        };
        let failed = |message| TaskUpdate::Failed {
            reason: FailReason::LaunchFailed,
            message,
            exit_code: None,
            signal: None,
            leftovers: 0,
            pinning: None,
        };
        tokio::select! {
            r = prepare => match r {
                Ok(Ok(app)) => Ok(app),
                Ok(Err(e)) => Err(failed(e.to_string())),
                Err(e) => Err(failed(format!("unpacking the application failed: {e}"))),
            },
            _ = kill_requested(kill_rx) => Err(TaskUpdate::Killed {
                during_launch: true,
                message: "killed before the task started".into(),
                leftovers: 0,
                pinning: None,
            }),
        }
    }

    /// The task's cgroup, or why it has none (it is then pinned by affinity alone).
    pub(super) async fn create_cgroup(
        &self,
        key: &str,
        spec: &crate::spec::ValidSpec,
        plan: &pinning::PinPlan,
    ) -> (Option<TaskCgroup>, Option<String>) {
        let cgs = match &self.cgroups {
            Ok(cgs) => cgs,
            Err(why) => return (None, Some(why.clone())),
        };
        let limit = (spec.spec.mem_mb > 0 && cgs.has_memory())
            .then(|| spec.spec.mem_mb.saturating_mul(1 << 20));
        match cgs
            .create_task(
                self.sys.as_ref(),
                key,
                plan.cpus.as_ref(),
                plan.mems.as_ref(),
                limit,
            )
            .await
        {
            Ok(mut cg) => {
                // The agent names its GPUs: every GPU not granted is denied.
                if let Some(granted) = &spec.spec.gpu_ids {
                    let rules = cgs.gpu_deny_rules(granted);
                    if let Err(e) = cgs
                        .deny_devices(self.sys.as_ref(), &mut cg, key, &rules)
                        .await
                    {
                        tracing::warn!(
                            task = key,
                            "the task can reach GPUs it was not granted: {e}"
                        );
                    }
                }
                (Some(cg), None)
            }
            Err(e) => (None, Some(e.to_string())),
        }
    }
}
