//! The fake's procfs: `/proc/self/{status,cgroup}`, `/proc/<pid>/{status,cgroup,stat}`
//! and the listing of `/proc`, generated from the fake's state.

use std::io;
use std::path::{Path, PathBuf};

use super::cgroupfs::{find_member, read_trim};
use super::{FakeSys, State, errno};
use crate::sys::ExitStatus;

impl FakeSys {
    /// Reads a procfs file; a process told to exit during verification does so right
    /// after its first `status` read, staying a zombie.
    pub(super) fn read_proc(&self, st: &mut State, who: &str, file: &str) -> io::Result<String> {
        let text = self.proc_file(st, who, file)?;
        if file == "status"
            && let Ok(pid) = who.parse::<u32>()
            && let Some(p) = st.procs.get_mut(&pid)
            && std::mem::take(&mut p.exit_during_verify)
        {
            self.die(st, pid, ExitStatus::Code(0));
            if let Some(p) = st.procs.get_mut(&pid) {
                p.zombie = true;
            }
        }
        Ok(text)
    }

    /// `/proc/<pid>` of every live or zombie process, and `/proc/self`.
    pub(super) fn proc_listing(&self, st: &State) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = st
            .procs
            .iter()
            .filter(|(_, p)| p.alive || p.zombie)
            .map(|(pid, _)| self.proc_root.join(pid.to_string()))
            .collect();
        dirs.push(self.proc_root.join("self"));
        dirs
    }

    fn proc_file(&self, st: &State, who: &str, file: &str) -> io::Result<String> {
        let (cpus, mems, pid) = if who == "self" {
            (st.machine_cpus.clone(), st.machine_mems.clone(), None)
        } else {
            let pid: u32 = who.parse().map_err(|_| errno(libc::ENOENT))?;
            let p = st
                .procs
                .get(&pid)
                .filter(|p| p.alive || p.zombie)
                .ok_or_else(|| errno(libc::ENOENT))?;
            if file == "stat" {
                let state = if p.zombie { 'Z' } else { 'S' };
                return Ok(format!(
                    "{pid} (fake) {state} 1 {pgid} {pgid} 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0\n",
                    pgid = p.pgid
                ));
            }
            let cpuset_dir = self
                .hierarchies()
                .into_iter()
                .filter_map(|(_, root)| find_member(&root, pid))
                .find(|d| d.join("cpuset.cpus").is_file());
            let from_cgroup = |f: &str| {
                cpuset_dir
                    .as_ref()
                    .map(|d| read_trim(&d.join(f)))
                    .filter(|l| !l.is_empty())
            };
            let cpus = p
                .reported_cpus
                .clone()
                .or_else(|| p.affinity.clone())
                .or_else(|| from_cgroup("cpuset.cpus").and_then(|l| l.parse().ok()))
                .unwrap_or_else(|| st.machine_cpus.clone());
            let mems = from_cgroup("cpuset.mems")
                .and_then(|l| l.parse().ok())
                .unwrap_or_else(|| st.machine_mems.clone());
            (cpus, mems, Some(pid))
        };
        let zombie = pid.is_some_and(|pid| st.procs.get(&pid).is_some_and(|p| p.zombie));
        match file {
            "status" => Ok(format!(
                "Name:\tfake\nState:\t{}\nPid:\t{}\nCpus_allowed:\tff\n\
                 Cpus_allowed_list:\t{cpus}\nMems_allowed:\t1\nMems_allowed_list:\t{mems}\n",
                if zombie { "Z (zombie)" } else { "S (sleeping)" },
                pid.unwrap_or(1)
            )),
            "cgroup" => {
                let mut lines = Vec::new();
                let hierarchies = self.hierarchies();
                let n = hierarchies.len();
                for (i, (name, root)) in hierarchies.into_iter().enumerate() {
                    let path = match pid {
                        Some(pid) => find_member(&root, pid)
                            .and_then(|d| d.strip_prefix(&root).ok().map(Path::to_path_buf))
                            .map(|rel| format!("/{}", rel.display()))
                            .unwrap_or_else(|| "/".into()),
                        None => st
                            .own_cgroups
                            .get(&name)
                            .cloned()
                            .unwrap_or_else(|| "/".into()),
                    };
                    let path = if path == "/" {
                        path
                    } else {
                        path.trim_end_matches('/').to_owned()
                    };
                    if name.is_empty() {
                        lines.push(format!("0::{path}"));
                    } else {
                        lines.push(format!("{}:{name}:{path}", n - i));
                    }
                }
                lines.sort_by(|a, b| b.cmp(a));
                Ok(lines.join("\n") + "\n")
            }
            _ => Err(errno(libc::ENOENT)),
        }
    }
}
