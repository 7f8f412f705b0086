//! The fake's cgroupfs: hierarchies in a directory, with the kernel's rules for
//! attaching processes and writing control files (see the parent module).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use super::{FakeSys, Op, State, errno};
use crate::sys::ExitStatus;
use retz_placement::{CpuId, CpuSet};

impl FakeSys {
    pub(super) fn hierarchy_root(&self, dir: &Path) -> Option<PathBuf> {
        let mut found = None;
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if !d.starts_with(&self.cg_root) {
                break;
            }
            if d.join("cgroup.procs").is_file() {
                found = Some(d.to_path_buf());
            }
            cur = d.parent();
        }
        found
    }

    pub(super) fn attach(&self, st: &mut State, dir: &Path, pid: u32) -> io::Result<()> {
        if let Some(&code) = st.write_failures.get(&dir.join("cgroup.procs")) {
            return Err(errno(code));
        }
        let root = self
            .hierarchy_root(dir)
            .ok_or_else(|| errno(libc::ENOENT))?;
        if !dir.join("cgroup.procs").is_file() {
            return Err(errno(libc::ENOENT));
        }
        if is_v2(&root) {
            if dir != root && !read_words(&dir.join("cgroup.subtree_control")).is_empty() {
                return Err(errno(libc::EBUSY));
            }
        } else if dir.join("cpuset.cpus").is_file()
            && (read_trim(&dir.join("cpuset.cpus")).is_empty()
                || read_trim(&dir.join("cpuset.mems")).is_empty())
        {
            return Err(errno(libc::ENOSPC));
        }
        for other in cgroups_under(&root) {
            let procs = read_procs(&other);
            if procs.contains(&pid) {
                write_procs(&other, procs.into_iter().filter(|p| *p != pid));
            }
        }
        let mut procs = read_procs(dir);
        procs.push(pid);
        write_procs(dir, procs.into_iter());
        st.ops.push(Op::Attach {
            procs: dir.join("cgroup.procs"),
            pid,
        });
        Ok(())
    }

    pub(super) fn populate_cgroup(&self, dir: &Path) -> io::Result<()> {
        let Some(parent) = dir.parent() else {
            return Ok(());
        };
        let Some(root) = self.hierarchy_root(parent) else {
            return Ok(());
        };
        std::fs::write(dir.join("cgroup.procs"), "")?;
        if is_v2(&root) {
            let enabled = read_words(&parent.join("cgroup.subtree_control"));
            std::fs::write(
                dir.join("cgroup.controllers"),
                format!("{}\n", enabled.join(" ")),
            )?;
            std::fs::write(dir.join("cgroup.subtree_control"), "\n")?;
            std::fs::write(dir.join("cgroup.kill"), "")?;
            for c in enabled {
                create_controller_files(dir, &c)?;
            }
        } else {
            std::fs::write(dir.join("tasks"), "")?;
            if root.join("cpuset.cpus").is_file() {
                std::fs::write(dir.join("cpuset.cpus"), "\n")?;
                std::fs::write(dir.join("cpuset.mems"), "\n")?;
            }
            if root.join("memory.limit_in_bytes").is_file() {
                std::fs::write(dir.join("memory.limit_in_bytes"), "9223372036854771712\n")?;
            }
            if root.file_name().is_some_and(|n| n == "freezer") {
                std::fs::write(dir.join("freezer.state"), "THAWED\n")?;
            }
            if root.join("devices.deny").is_file() {
                std::fs::write(dir.join("devices.deny"), "")?;
                std::fs::write(dir.join("devices.allow"), "")?;
            }
        }
        Ok(())
    }

    pub(super) fn write_cgroup_file(
        &self,
        st: &mut State,
        path: &Path,
        contents: &str,
    ) -> io::Result<()> {
        let dir = path.parent().ok_or_else(|| errno(libc::EINVAL))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let root = self.hierarchy_root(dir);
        match (name, root) {
            ("cgroup.procs" | "tasks", Some(_)) => {
                let pid: u32 = contents.trim().parse().map_err(|_| errno(libc::EINVAL))?;
                if !st.procs.get(&pid).is_some_and(|p| p.alive) {
                    return Err(errno(libc::ESRCH));
                }
                self.attach(st, dir, pid)
            }
            ("cpuset.cpus" | "cpuset.mems", Some(root)) => {
                // Both files hold id lists; the fake checks them as plain id sets.
                let list: CpuSet = contents.parse().map_err(|_| errno(libc::EINVAL))?;
                let machine = if name == "cpuset.cpus" {
                    st.machine_cpus.clone()
                } else {
                    st.machine_mems.iter().map(|n| CpuId(n.0)).collect()
                };
                if !list.is_subset(&machine) {
                    return Err(errno(libc::EINVAL));
                }
                if !is_v2(&root) && dir != root {
                    let parent = dir.parent().map(|p| p.join(name)).unwrap_or_default();
                    let parent_list: CpuSet = read_trim(&parent)
                        .parse()
                        .map_err(|_| errno(libc::EINVAL))?;
                    if !list.is_subset(&parent_list) {
                        return Err(errno(libc::EINVAL));
                    }
                }
                std::fs::write(path, format!("{list}\n"))
            }
            ("cgroup.subtree_control", Some(root)) => {
                let available = read_words(&dir.join("cgroup.controllers"));
                let mut enabled: BTreeSet<String> = read_words(path).into_iter().collect();
                for token in contents.split_whitespace() {
                    let (add, c) = match token.split_at(1) {
                        ("+", c) => (true, c),
                        ("-", c) => (false, c),
                        _ => return Err(errno(libc::EINVAL)),
                    };
                    if !available.iter().any(|a| a == c) {
                        return Err(errno(libc::ENOENT));
                    }
                    if add && dir != root && !read_procs(dir).is_empty() {
                        return Err(errno(libc::EBUSY));
                    }
                    if add {
                        enabled.insert(c.to_owned());
                    } else {
                        enabled.remove(c);
                    }
                }
                let list: Vec<String> = enabled.into_iter().collect();
                std::fs::write(path, format!("{}\n", list.join(" ")))?;
                for child in subdirs(dir) {
                    std::fs::write(
                        child.join("cgroup.controllers"),
                        format!("{}\n", list.join(" ")),
                    )?;
                    for c in &list {
                        create_controller_files(&child, c)?;
                    }
                }
                Ok(())
            }
            ("cgroup.kill", Some(_)) => {
                if contents.trim() != "1" {
                    return Err(errno(libc::EINVAL));
                }
                let pids: Vec<u32> = cgroups_under(dir)
                    .iter()
                    .flat_map(|d| read_procs(d))
                    .collect();
                for pid in pids {
                    self.die(st, pid, ExitStatus::Signal(libc::SIGKILL));
                }
                Ok(())
            }
            ("devices.deny" | "devices.allow", Some(_)) => {
                // The kernel takes one `TYPE MAJOR:MINOR ACCESS` rule per write; the fake
                // keeps every rule written, one a line, for tests to read.
                if !valid_device_rule(contents.trim()) {
                    return Err(errno(libc::EINVAL));
                }
                let mut text = read_trim(path);
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(contents.trim());
                text.push('\n');
                std::fs::write(path, text)
            }
            ("freezer.state", Some(_)) => match contents.trim() {
                "FROZEN" | "THAWED" => std::fs::write(path, format!("{}\n", contents.trim())),
                _ => Err(errno(libc::EINVAL)),
            },
            ("memory.limit_in_bytes" | "memory.max", Some(_)) => {
                let v = contents.trim();
                if v != "max" && v.parse::<u64>().is_err() {
                    return Err(errno(libc::EINVAL));
                }
                std::fs::write(path, format!("{v}\n"))
            }
            _ => std::fs::write(path, contents),
        }
    }

    /// (name, root) of each mounted hierarchy; `""` names cgroup v2.
    pub(super) fn hierarchies(&self) -> Vec<(String, PathBuf)> {
        if self.cg_root.join("cgroup.procs").is_file() {
            return vec![(String::new(), self.cg_root.clone())];
        }
        subdirs(&self.cg_root)
            .into_iter()
            .filter(|d| d.join("cgroup.procs").is_file())
            .map(|d| {
                let name = if is_v2(&d) {
                    String::new()
                } else {
                    d.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                (name, d)
            })
            .collect()
    }
}

/// `a`, or `TYPE MAJOR:MINOR ACCESS` with TYPE `a`/`b`/`c`, numbers or `*`, ACCESS of
/// `rwm` (what the v1 devices controller accepts).
fn valid_device_rule(rule: &str) -> bool {
    if rule == "a" {
        return true;
    }
    let num = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    match rule.split(' ').collect::<Vec<_>>()[..] {
        [kind, nums, access] => {
            matches!(kind, "a" | "b" | "c")
                && nums.split_once(':').is_some_and(|(a, b)| num(a) && num(b))
                && !access.is_empty()
                && access.bytes().all(|b| matches!(b, b'r' | b'w' | b'm'))
        }
        _ => false,
    }
}

pub(super) fn is_v2(root: &Path) -> bool {
    root.join("cgroup.controllers").is_file()
}

pub(super) fn create_controller_files(dir: &Path, controller: &str) -> io::Result<()> {
    let files: &[(&str, &str)] = match controller {
        "cpuset" => &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
        "memory" => &[("memory.max", "max\n")],
        _ => &[],
    };
    for (f, v) in files {
        let p = dir.join(f);
        if !p.exists() {
            std::fs::write(p, v)?;
        }
    }
    Ok(())
}

pub(super) fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

pub(super) fn read_words(path: &Path) -> Vec<String> {
    read_trim(path)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

pub(super) fn read_procs(dir: &Path) -> Vec<u32> {
    read_trim(&dir.join("cgroup.procs"))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

pub(super) fn write_procs(dir: &Path, pids: impl Iterator<Item = u32>) {
    let text: String = pids.map(|p| format!("{p}\n")).collect();
    // The directory exists (we just read it); a failure here means the test's tempdir
    // vanished, which the next read reports.
    let _ = std::fs::write(dir.join("cgroup.procs"), text);
}

pub(super) fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every cgroup directory under (and including) `dir`.
pub(super) fn cgroups_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if d.join("cgroup.procs").is_file() {
            out.push(d.clone());
        }
        todo.extend(subdirs(&d));
    }
    out
}

pub(super) fn all_cgroups(root: &Path) -> Vec<PathBuf> {
    cgroups_under(root)
}

pub(super) fn find_member(root: &Path, pid: u32) -> Option<PathBuf> {
    cgroups_under(root)
        .into_iter()
        .find(|d| read_procs(d).contains(&pid))
}
