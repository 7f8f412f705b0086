//! The end of a task: terminating it on request, and sweeping what it left behind.

use std::time::Duration;

use super::{Inner, KILL_WAIT};
use crate::cgroup::TaskCgroup;
use crate::procfs::parse_stat;
use crate::sys::{ExitFuture, Signal, SignalTarget, TaskExit};

/// `"; N leftover process(es) killed"`, or `""` for none.
pub(super) fn leftover_note(count: u32) -> String {
    match count {
        0 => String::new(),
        1 => "; 1 leftover process killed".into(),
        n => format!("; {n} leftover processes killed"),
    }
}

fn describe(status: std::io::Result<TaskExit>) -> (String, u32) {
    match status {
        Ok(e) => (e.status.to_string(), e.reaped),
        Err(e) => (format!("lost track of it ({e})"), 0),
    }
}

impl Inner {
    /// `SIGTERM` to the group, `SIGKILL` after `grace`. Says how it ended, and how many
    /// leftovers the task's PID namespace reaped.
    pub(super) async fn terminate(
        &self,
        pid: u32,
        grace: Duration,
        exit: &mut ExitFuture,
    ) -> (String, u32) {
        let sys = self.sys.as_ref();
        if let Err(e) = sys.signal(SignalTarget::Group(pid), Signal::Term)
            && !crate::sys::is_gone(&e)
        {
            tracing::warn!(pid, "SIGTERM to the task's process group: {e}");
        }
        match tokio::time::timeout(grace, &mut *exit).await {
            Ok(status) => {
                let (how, reaped) = describe(status);
                (
                    format!("SIGTERM, then {how} within the {grace:?} grace period"),
                    reaped,
                )
            }
            Err(_) => {
                let _ = sys.signal(SignalTarget::Group(pid), Signal::Kill);
                match tokio::time::timeout(KILL_WAIT, &mut *exit).await {
                    Ok(status) => {
                        let (how, reaped) = describe(status);
                        (
                            format!(
                                "SIGTERM, no exit within the {grace:?} grace period, SIGKILL, \
                                 then {how}"
                            ),
                            reaped,
                        )
                    }
                    Err(_) => (
                        format!(
                            "SIGTERM, SIGKILL after {grace:?}, but process {pid} did not exit \
                             within {KILL_WAIT:?}"
                        ),
                        0,
                    ),
                }
            }
        }
    }

    /// Kills what is left of the task (its cgroup, else its process group; then the
    /// process group in any case) and removes the cgroup. Returns how many processes were
    /// found and killed, and `""` or `"; cleanup failed: …"` for the status message.
    pub(super) async fn cleanup(
        &self,
        cgroup: Option<&TaskCgroup>,
        pgid: Option<u32>,
    ) -> (u32, String) {
        let sys = self.sys.as_ref();
        let mut found = 0;
        let mut failure = String::new();
        match (cgroup, &self.cgroups) {
            (Some(cg), Ok(cgs)) => match cgs.destroy_task(sys, cg).await {
                Ok(n) => found = n,
                Err(e) => {
                    tracing::error!("task cgroup cleanup: {e}");
                    failure = format!("; cleanup failed: {e}");
                }
            },
            _ => {
                if let Some(pgid) = pgid {
                    found = self.group_members(pgid);
                }
            }
        }
        if let Some(pgid) = pgid {
            // Background processes of the task outlive its main process; they go too.
            let _ = sys.signal(SignalTarget::Group(pgid), Signal::Kill);
        }
        (found, failure)
    }

    /// Live (not zombie) processes of process group `pgid`, from `/proc/<pid>/stat`.
    fn group_members(&self, pgid: u32) -> u32 {
        let sys = self.sys.as_ref();
        let Ok(dirs) = sys.list_dirs(&self.proc_root) else {
            return 0;
        };
        let count = dirs
            .iter()
            .filter(|d| {
                d.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .filter_map(|d| sys.read_file(&d.join("stat")).ok())
            .filter_map(|text| parse_stat(&text))
            .filter(|stat| stat.pgrp == pgid && stat.state != 'Z')
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_notes() {
        assert_eq!(leftover_note(0), "");
        assert_eq!(leftover_note(1), "; 1 leftover process killed");
        assert_eq!(leftover_note(2), "; 2 leftover processes killed");
    }
}
