//! Parsers for the procfs files the executor reads back: `/proc/<pid>/status` (allowed
//! CPUs and memory nodes, process state), `/proc/<pid>/cgroup` (cgroup membership) and
//! `/proc/<pid>/stat` (state and process group).
//!
//! Pure functions over text; reading the files is the caller's job (through the
//! [`Sys`](crate::sys::Sys) seam). Unknown lines are ignored; a malformed line of a field
//! we need is an error naming the line.

use retz_placement::{CpuSet, NodeSet, SetParseError};

/// What the executor needs from `/proc/<pid>/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// The state letter (`R`, `S`, `Z`, …).
    pub state: Option<char>,
    /// `Cpus_allowed_list`.
    pub cpus_allowed: Option<CpuSet>,
    /// `Mems_allowed_list`.
    pub mems_allowed: Option<NodeSet>,
}

impl ProcStatus {
    /// Whether the process has exited and awaits reaping.
    pub fn is_zombie(&self) -> bool {
        self.state == Some('Z')
    }
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEntry {
    /// Hierarchy id (0 for cgroup v2).
    pub hierarchy: u32,
    /// Controllers bound to the hierarchy (empty for v2; may include `name=…`).
    pub controllers: Vec<String>,
    /// Path relative to the hierarchy's mount, starting with `/`.
    pub path: String,
}

/// A procfs file we could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcError {
    /// A list field does not parse.
    #[error("{field} in /proc status: {source}")]
    List {
        field: &'static str,
        source: SetParseError,
    },
    /// A `/proc/<pid>/cgroup` line is not `id:controllers:path`.
    #[error("malformed /proc cgroup line {line:?} (expected `id:controllers:/path`)")]
    CgroupLine { line: String },
}

/// Parses `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> Result<ProcStatus, ProcError> {
    let mut status = ProcStatus::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "State" => status.state = value.chars().next(),
            "Cpus_allowed_list" => {
                status.cpus_allowed = Some(value.parse().map_err(|source| ProcError::List {
                    field: "Cpus_allowed_list",
                    source,
                })?);
            }
            "Mems_allowed_list" => {
                status.mems_allowed = Some(value.parse().map_err(|source| ProcError::List {
                    field: "Mems_allowed_list",
                    source,
                })?);
            }
            _ => {}
        }
    }
    Ok(status)
}

/// What the executor needs from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter.
    pub state: char,
    /// The process group id.
    pub pgrp: u32,
    /// The kernel's task flags (0 when the line is cut short).
    pub flags: u32,
}

/// `PF_EXITING`: the task is in `exit()` (it may already have left its cgroups while
/// `/proc` still shows it running or in `D`).
pub const PF_EXITING: u32 = 0x4;

impl ProcStat {
    /// Exiting, a zombie or dead: no longer where it was put.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x') || self.flags & PF_EXITING != 0
    }
}

/// Parses `/proc/<pid>/stat` (`pid (comm) state ppid pgrp session tty tpgid flags ...`;
/// `comm` may hold spaces and parentheses, so fields are read after the last `)`).
/// `None` when malformed.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    let flags = fields.nth(3).and_then(|f| f.parse().ok()).unwrap_or(0);
    Some(ProcStat { state, pgrp, flags })
}

/// Parses `/proc/<pid>/cgroup`.
pub fn parse_cgroup(text: &str) -> Result<Vec<CgroupEntry>, ProcError> {
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = || ProcError::CgroupLine {
            line: line.to_owned(),
        };
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let hierarchy = id.parse().map_err(|_| bad())?;
        if !path.starts_with('/') {
            return Err(bad());
        }
        entries.push(CgroupEntry {
            hierarchy,
            controllers: controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            path: path.to_owned(),
        });
    }
    Ok(entries)
}

/// The path of the v1 hierarchy that holds `controller`.
pub fn v1_path<'a>(entries: &'a [CgroupEntry], controller: &str) -> Option<&'a str> {
    entries
        .iter()
        .find(|e| e.hierarchy != 0 && e.controllers.iter().any(|c| c == controller))
        .map(|e| e.path.as_str())
}

/// The cgroup v2 path (`0::/path`).
pub fn v2_path(entries: &[CgroupEntry]) -> Option<&str> {
    entries
        .iter()
        .find(|e| e.hierarchy == 0 && e.controllers.is_empty())
        .map(|e| e.path.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATUS: &str = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\n\
        Cpus_allowed:\t2\nCpus_allowed_list:\t1\nMems_allowed:\t00000000,00000001\n\
        Mems_allowed_list:\t0\nvoluntary_ctxt_switches:\t1\n";

    #[test]
    fn stat_fields() {
        let s = parse_stat("42 (a) b) (c) S 1 40 40 0 -1 4194560 ...\n").unwrap();
        assert_eq!(
            s,
            ProcStat {
                state: 'S',
                pgrp: 40,
                flags: 4194560
            }
        );
        assert!(!s.has_exited());
        assert!(parse_stat("7 (z) Z 1 7").unwrap().has_exited());
        let exiting = parse_stat("7 (sh) D 1 7 7 0 -1 4194564 0").unwrap();
        assert!(exiting.has_exited(), "PF_EXITING");
        for bad in ["", "42 sleep S 1 40", "42 (x) S 1", "42 (x) S 1 x"] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_fields() {
        let s = parse_status(STATUS).unwrap();
        assert_eq!(s.state, Some('S'));
        assert_eq!(s.cpus_allowed.unwrap().to_string(), "1");
        assert_eq!(s.mems_allowed.unwrap().to_string(), "0");
        assert!(parse_status("State:\tZ (zombie)\n").unwrap().is_zombie());
        assert_eq!(parse_status("").unwrap(), ProcStatus::default());
        let err = parse_status("Cpus_allowed_list:\tx\n").unwrap_err();
        assert!(err.to_string().contains("Cpus_allowed_list"), "{err}");
    }

    #[test]
    fn cgroup_lines_v1_hybrid_v2() {
        let text = "9:name=systemd:/\n4:memory:/process_api/cec\n3:cpuset:/retz/s/t\n\
                    1:cpu,cpuacct:/\n0::/\n";
        let e = parse_cgroup(text).unwrap();
        assert_eq!(v1_path(&e, "cpuset"), Some("/retz/s/t"));
        assert_eq!(v1_path(&e, "memory"), Some("/process_api/cec"));
        assert_eq!(v1_path(&e, "cpuacct"), Some("/"));
        assert_eq!(v2_path(&e), Some("/"));
        assert_eq!(v1_path(&e, "hugetlb"), None);
        let e = parse_cgroup("0::/a/b:c\n").unwrap();
        assert_eq!(v2_path(&e), Some("/a/b:c"), "colons in paths survive");
        for bad in ["x", "1:cpuset", "a:cpuset:/", "1:cpuset:rel"] {
            assert!(parse_cgroup(bad).is_err(), "{bad}");
        }
    }

    /// The inputs a fuzzer found worth keeping, run on every test pass.
    #[test]
    fn nasty_corpus() {
        for input in [
            "",
            ":",
            "::",
            ":::",
            "0::",
            "Cpus_allowed_list:",
            "Cpus_allowed_list:\t-",
            "Cpus_allowed_list:\t0-99999999999",
            "State:",
            "\u{0}:\u{0}:/\u{0}",
            "4294967296::/",
            "1:,,,:/",
            "Mems_allowed_list:\t1,,2",
        ] {
            let _ = parse_status(input);
            let _ = parse_cgroup(input);
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}") {
            let _ = parse_status(&s);
            let _ = parse_cgroup(&s);
        }
    }
}
