//! Human output: aligned tables (jobs, files, apps, users), the multi-line view of one
//! job, durations and the masked config. Pure functions returning strings; `--json`
//! output is plain `serde_json` of the API types and lives with the subcommands.

use chrono::DateTime;
use retz_proto::api::{Application, ClientConfig, Container, DirEntry, Job, TIME_FORMAT, User};

/// Columns padded to the widest cell, two spaces apart; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = row_line(&widths, headers);
    out.push('\n');
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&row_line(&widths, &cells));
        out.push('\n');
    }
    out
}

fn row_line(widths: &[usize], cells: &[&str]) -> String {
    let mut s = String::new();
    for (i, c) in cells.iter().enumerate() {
        s.push_str(c);
        if i + 1 < widths.len() {
            let pad = widths[i].saturating_sub(c.chars().count()) + 2;
            s.extend(std::iter::repeat_n(' ', pad));
        }
    }
    s.trim_end().to_owned()
}

fn or_dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_owned()
}

/// Seconds between two job times, e.g. `12.345`; `-` when either is missing or
/// unreadable.
pub fn duration(started: Option<&str>, finished: Option<&str>) -> String {
    let parse = |s: &str| {
        DateTime::parse_from_str(s, TIME_FORMAT)
            .or_else(|_| DateTime::parse_from_rfc3339(s))
            .ok()
    };
    match (started.and_then(parse), finished.and_then(parse)) {
        (Some(a), Some(b)) => {
            let ms = (b - a).num_milliseconds();
            format!("{}.{:03}", ms / 1000, (ms % 1000).abs())
        }
        _ => "-".to_owned(),
    }
}

/// CPUs of a job: the grant when there is one, else the requested range.
pub fn cpus(job: &Job) -> String {
    match &job.granted {
        Some(g) => g.cpu.to_string(),
        None => job.resources.cpu.to_string(),
    }
}

/// The `list` table: the original's columns plus Cpus, Cpuset and Pinning (the
/// mechanism and outcome retz-executor verified, e.g. `cgroup-v1 verified`), and Pending
/// (why a queued job waits) when a listed job has such a reason.
pub fn jobs_table(jobs: &[Job]) -> String {
    let with_pending = jobs.iter().any(|j| j.pending.is_some());
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let mut row = vec![
                j.id.to_string(),
                j.state.to_string(),
                j.appid.clone(),
                j.cmd.replace('\n', " "),
                j.result.to_string(),
                duration(j.started.as_deref(), j.finished.as_deref()),
                or_dash(j.scheduled.as_deref()),
                or_dash(j.started.as_deref()),
                or_dash(j.finished.as_deref()),
                j.tags.iter().cloned().collect::<Vec<_>>().join(","),
                cpus(j),
                or_dash(j.granted.as_ref().and_then(|g| g.cpuset.as_deref())),
                or_dash(j.pinning.as_ref().map(|p| p.short()).as_deref()),
            ];
            if with_pending {
                row.push(or_dash(j.pending.as_deref()));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "TaskId",
        "State",
        "AppName",
        "Command",
        "Result",
        "Duration",
        "Scheduled",
        "Started",
        "Finished",
        "Tags",
        "Cpus",
        "Cpuset",
        "Pinning",
    ];
    if with_pending {
        headers.push("Pending");
    }
    table(&headers, &rows)
}

/// One job, one `key: value` per line (`get-job`).
pub fn job_view(job: &Job, queue_position: Option<u64>) -> String {
    let mut lines: Vec<(String, String)> = vec![
        ("id".into(), job.id.to_string()),
        ("name".into(), job.name.clone()),
        ("state".into(), job.state.to_string()),
        ("app".into(), job.appid.clone()),
        ("command".into(), job.cmd.clone()),
        ("result".into(), job.result.to_string()),
    ];
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            lines.push((k.to_owned(), v));
        }
    };
    add("reason", job.reason.clone());
    add("pending", job.pending.clone());
    add("queue position", queue_position.map(|p| p.to_string()));
    let r = &job.resources;
    add(
        "requested",
        Some(format!(
            "cpu={} mem={}MB gpu={} disk={}MB ports={}{}",
            r.cpu,
            r.mem_mb,
            r.gpu,
            r.disk_mb,
            r.ports,
            r.nodes.map(|n| format!(" nodes={n}")).unwrap_or_default()
        )),
    );
    if let Some(g) = &job.granted {
        add(
            "granted",
            Some(format!(
                "cpu={} mem={}MB gpu={}{} cpuset={} numa-nodes={} pinned={}{}",
                g.cpu,
                g.mem_mb,
                g.gpu,
                g.gpu_ids
                    .as_deref()
                    .map_or_else(String::new, |ids| format!(" gpu-ids={ids}")),
                g.cpuset.as_deref().unwrap_or("-"),
                g.numa_nodes.as_deref().unwrap_or("-"),
                g.pinned,
                if g.ports.is_empty() {
                    String::new()
                } else {
                    let ports: Vec<String> = g.ports.iter().map(u16::to_string).collect();
                    format!(" ports={}", ports.join(","))
                }
            )),
        );
        add("unix user", g.user.clone());
    }
    add("pinning", job.pinning.as_ref().map(|p| p.summary()));
    add("affinity", job.affinity.map(|a| a.to_string()));
    add("priority", Some(job.priority.to_string()));
    add(
        "tags",
        Some(job.tags.iter().cloned().collect::<Vec<_>>().join(",")),
    );
    add(
        "env",
        Some(
            job.props
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    );
    add("attributes", job.attributes.clone());
    add("scheduled", job.scheduled.clone());
    add("started", job.started.clone());
    add("finished", job.finished.clone());
    let d = duration(job.started.as_deref(), job.finished.as_deref());
    add("duration", (d != "-").then_some(d));
    add(
        "retry",
        Some(format!("{} (attempt {})", job.retry, job.attempt)),
    );
    add("task id", job.task_id.clone());
    add("agent", job.slave_id.clone());
    add("sandbox", job.url.clone());
    let w = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    lines
        .iter()
        .map(|(k, v)| format!("{k:<w$}  {v}\n"))
        .collect()
}

/// The `list-files` table: the original's columns.
pub fn files_table(entries: &[DirEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let mtime = DateTime::from_timestamp(e.mtime as i64, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string())
                .unwrap_or_else(|| e.mtime.to_string());
            vec![
                e.gid.clone(),
                e.mode.clone(),
                e.uid.clone(),
                mtime,
                e.size.to_string(),
                e.path.clone(),
            ]
        })
        .collect();
    table(&["gid", "mode", "uid", "mtime", "size", "path"], &rows)
}

/// The `list-app` table.
pub fn apps_table(apps: &[Application]) -> String {
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            let container = match &a.container {
                Container::Mesos => "mesos".to_owned(),
                Container::Docker { image, .. } => format!("docker:{image}"),
            };
            vec![
                a.appid.clone(),
                a.owner.clone(),
                a.enabled.to_string(),
                container,
                or_dash(a.user.as_deref()),
                a.grace_period.to_string(),
                a.affinity.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                (a.files.len() + a.large_files.len()).to_string(),
            ]
        })
        .collect();
    table(
        &[
            "AppName",
            "Owner",
            "Enabled",
            "Container",
            "User",
            "Grace",
            "Affinity",
            "Files",
        ],
        &rows,
    )
}

/// The `list-user` table.
pub fn users_table(users: &[User]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| vec![u.key_id.clone(), u.enabled.to_string(), u.info.clone()])
        .collect();
    table(&["KeyId", "Enabled", "Info"], &rows)
}

/// The config as TOML with the secret masked (`config`).
pub fn masked_config(c: &ClientConfig) -> ClientConfig {
    let mut m = c.clone();
    if !m.secret.is_empty() {
        m.secret = "********".to_owned();
    }
    m
}

/// A ready client config for `user` on `server` (`retz-admin create-user`); it trusts
/// the server the way `admin` (the config in use) does (`ca_cert`, `tls_insecure`).
pub fn user_config_toml(server: &str, admin: &ClientConfig, user: &User) -> String {
    let c = ClientConfig {
        server: server.to_owned(),
        access_key: user.key_id.clone(),
        secret: user.secret.clone(),
        authentication: true,
        tls_insecure: admin.tls_insecure,
        ca_cert: admin.ca_cert.clone(),
    };
    let body = toml::to_string(&c).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
    format!(
        "# Retz client config for {} ({})\n{body}",
        user.key_id, user.info
    )
}

/// The same client config as an original `retz.properties` (what the original
/// `retz-admin create-user` printed, plus `retz.server.uri` and the TLS keys so that the
/// file works as it is). Values are written with the properties escapes.
pub fn user_config_properties(server: &str, admin: &ClientConfig, user: &User) -> String {
    let esc = retz_proto::properties::escape_value;
    let mut out = format!(
        "# Retz client config for {} ({})\nretz.server.uri = {}\nretz.authentication = true\n\
         retz.access.key = {}\nretz.access.secret = {}\n",
        user.key_id,
        user.info.replace(['\n', '\r'], " "),
        esc(server),
        esc(&user.key_id),
        esc(&user.secret),
    );
    if admin.tls_insecure {
        out.push_str("retz.tls.insecure = true\n");
    }
    if let Some(ca) = &admin.ca_cert {
        out.push_str(&format!(
            "retz.tls.ca.cert = {}\n",
            esc(&ca.display().to_string())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::api::Grant;

    #[test]
    fn a_properties_config_reads_back_as_the_same_client_config() {
        let admin = ClientConfig {
            server: "https://retz:9090".into(),
            access_key: "admin".into(),
            secret: "x".into(),
            authentication: true,
            tls_insecure: false,
            ca_cert: Some("/etc/retz/ca dir/ca.pem".into()),
        };
        let user = User {
            key_id: "0123abcd".into(),
            secret: "s\\e c=r:e#t ".into(),
            enabled: true,
            info: "two\nlines".into(),
        };
        let text = user_config_properties(&admin.server, &admin, &user);
        assert!(text.contains("retz.access.key = 0123abcd\n"), "{text}");
        let back = ClientConfig::from_properties(&text).unwrap();
        assert_eq!(back.server, admin.server);
        assert_eq!(back.access_key, user.key_id);
        assert_eq!(back.secret, user.secret);
        assert_eq!(back.ca_cert, admin.ca_cert);
        assert!(back.authentication && !back.tls_insecure);
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["A", "Bee", "C"],
            &[vec!["xx".into(), "y".into(), "z z".into()]],
        );
        assert_eq!(t, "A   Bee  C\nxx  y    z z\n");
    }

    #[test]
    fn job_table_shows_the_grant_and_duration() {
        let mut j = Job::new("app", "echo hi");
        j.id = 7;
        j.started = Some("2026-11-22T07:30:00.000+00:00".into());
        j.finished = Some("2026-11-22T07:30:02.500+00:00".into());
        j.tags.insert("t1".into());
        j.granted = Some(Grant {
            cpu: 2,
            mem_mb: 64,
            gpu: 0,
            gpu_ids: None,
            cpuset: Some("0-1".into()),
            numa_nodes: Some("0".into()),
            pinned: true,
            ports: vec![31000, 31005],
            user: Some("nobody".into()),
            features: None,
        });
        let t = jobs_table(&[j.clone()]);
        let header = t.lines().next().unwrap();
        assert!(header.starts_with("TaskId  State"), "{t}");
        assert!(header.ends_with("Cpus  Cpuset  Pinning"), "{t}");
        let row = t.lines().nth(1).unwrap();
        for want in ["7", "CREATED", "echo hi", "2.500", "t1", "0-1"] {
            assert!(row.contains(want), "{want} in {row}");
        }
        assert!(row.trim_end().ends_with('-'), "not reported yet: {row}");
        assert!(!job_view(&j, None).contains("pinning"));
        let mut p = j.clone();
        p.pinning = Some(
            serde_json::from_str(
                r#"{"affinity":"numa-strict","mechanism":"cgroup-v1","outcome":"verified",
                    "cpus":"0-1","mems":"0","cpus_seen":"0-1"}"#,
            )
            .unwrap(),
        );
        let t = jobs_table(&[p.clone()]);
        let row = t.lines().nth(1).unwrap();
        assert!(row.trim_end().ends_with("cgroup-v1 verified"), "{t}");
        let v = job_view(&p, None);
        assert!(
            v.lines().any(|l| l.starts_with("pinning ")
                && l.ends_with("  cgroup-v1 CPUs 0-1 nodes 0: verified")),
            "{v}"
        );
        let mut q = j.clone();
        q.pending = Some("behind 3 jobs of the same class".into());
        let t = jobs_table(&[q, j.clone()]);
        assert!(
            t.lines().next().unwrap().ends_with("Pinning  Pending"),
            "{t}"
        );
        assert!(
            t.lines()
                .nth(1)
                .unwrap()
                .ends_with("behind 3 jobs of the same class"),
            "{t}"
        );
        let v = job_view(&j, Some(3));
        assert!(
            v.contains("cpuset=0-1")
                && v.contains("ports=31000,31005")
                && v.contains("queue position  3")
                && v.contains("unix user       nobody"),
            "{v}"
        );
    }

    #[test]
    fn durations_need_both_times() {
        assert_eq!(duration(None, Some("x")), "-");
        assert_eq!(duration(Some("bad"), Some("bad")), "-");
        assert_eq!(
            duration(
                Some("2026-01-01T00:00:00Z"),
                Some("2026-01-01T00:01:00.020Z")
            ),
            "60.020"
        );
    }

    #[test]
    fn created_user_config_is_a_valid_client_config() {
        let u = User {
            key_id: "k".into(),
            secret: "s".into(),
            enabled: true,
            info: "alice".into(),
        };
        let admin = ClientConfig {
            server: "https://h:1".into(),
            access_key: "admin".into(),
            secret: "x".into(),
            authentication: true,
            tls_insecure: false,
            ca_cert: Some("/etc/retz/ca.pem".into()),
        };
        let text = user_config_toml("https://h:1", &admin, &u);
        let c: ClientConfig = toml::from_str(&text).unwrap();
        assert_eq!((c.server.as_str(), c.secret.as_str()), ("https://h:1", "s"));
        assert_eq!(
            c.ca_cert, admin.ca_cert,
            "the new user trusts the server as the admin does"
        );
        assert_eq!(masked_config(&c).secret, "********");
    }
}
