//! The HTML of the web pages: `/` (summary, CPU map, running jobs, queue, per-user
//! usage), `/login` and `/ui/job/{id}`, written by hand with one escaping function.
//!
//! Invariants:
//! - every piece of text that is not a literal of this file goes through [`escape`]
//!   (text and double-quoted attribute values alike);
//! - what a job's owner typed (command, name, application, environment, tags) and user
//!   keys or infos are written only where [`Viewer::may_see`] allows: the owner sees
//!   their own jobs, the operator everything, an anonymous visitor aggregates and job ids;
//! - no scripts: pages refresh with `<meta http-equiv=refresh>` (not the sign-in form).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use retz_proto::api::{Job, JobState};

use super::cpumap;
use super::{PageData, Viewer};

/// `s` safe as HTML text and as a double- or single-quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
h1{margin:0 0 .3em}h2{margin:1.2em 0 .4em;font-size:1.2em}h3{margin:.2em 0;font-size:1em}\
small{color:#666;font-weight:normal}\
table{border-collapse:collapse}th,td{text-align:left;padding:.15em .8em .15em 0;vertical-align:top}\
th{border-bottom:1px solid #ccc}\
.bar{display:flex;justify-content:space-between;align-items:baseline}\
.summary td{padding-right:2em}\
.agent{border:1px solid #ccc;border-radius:4px;padding:.4em .6em;margin:.4em 0}\
.node{display:inline-block;vertical-align:top;margin:.2em 1em .2em 0}\
.nodehead{font-size:.8em;color:#555}.cells{max-width:34em}\
.l3{display:inline-block;border:1px dashed #aaa;border-radius:3px;padding:1px;margin:1px 3px 1px 0}\
.cpu{display:inline-block;width:2.2em;height:1.6em;line-height:1.6em;margin:1px;\
text-align:center;font-size:.75em;border-radius:3px;text-decoration:none}\
.free{background:#e8e8e8;color:#888}.held{color:#fff}\
code{background:#f3f3f3;padding:0 .2em;white-space:pre-wrap;word-break:break-all}\
.err{color:#b00}.muted{color:#777}form{display:inline}";

/// A whole page: head, the sign-in bar of `viewer`, and `body`.
fn layout(title: &str, refresh: bool, viewer: &Viewer, body: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{}\
         <title>{}</title><style>{STYLE}</style></head><body>\
         <div class=\"bar\"><h1><a href=\"/\" style=\"color:inherit;text-decoration:none\">Retz</a></h1><div>",
        if refresh {
            "<meta http-equiv=\"refresh\" content=\"5\">"
        } else {
            ""
        },
        escape(title)
    );
    match viewer.user() {
        None => out.push_str("<a href=\"/login\">Sign in</a>"),
        Some(u) => {
            let _ = write!(
                out,
                "Signed in as <b>{}</b>{} · <form method=\"post\" action=\"/logout\">\
                 <button type=\"submit\">Sign out</button></form>",
                escape(&label(&u.key_id, &u.info)),
                if matches!(viewer, Viewer::Operator(_)) {
                    " (operator)"
                } else {
                    ""
                }
            );
        }
    }
    out.push_str("</div></div>\n");
    out.push_str(body);
    out.push_str("</body></html>\n");
    out
}

/// `info (key)`, or the key alone.
fn label(key: &str, info: &str) -> String {
    if info.is_empty() {
        key.to_owned()
    } else {
        format!("{info} ({key})")
    }
}

fn mb(mem: u64) -> String {
    if mem >= 10 * 1024 {
        format!("{:.1} GB", mem as f64 / 1024.0)
    } else {
        format!("{mem} MB")
    }
}

/// The cells of what the owner typed, or a muted dash for viewers who may not see it.
fn private_cells(out: &mut String, viewer: &Viewer, owner: &str, job: &Job, users: &Users) {
    if viewer.may_see(owner) {
        let who = users
            .get(owner)
            .map_or(owner.to_owned(), |i| label(owner, i));
        let _ = write!(
            out,
            "<td>{}</td><td>{}</td><td><code>{}</code></td>",
            escape(&who),
            escape(&job.appid),
            escape(&job.cmd)
        );
    } else {
        out.push_str(
            "<td class=\"muted\">–</td><td class=\"muted\">–</td><td class=\"muted\">–</td>",
        );
    }
}

type Users = BTreeMap<String, String>;

fn summary(out: &mut String, d: &PageData) {
    let s = &d.status;
    let rows: [(&str, String); 9] = [
        ("Queued jobs", s.queue_length.to_string()),
        ("Running jobs", s.running_length.to_string()),
        ("CPUs used", s.total_used.to_string()),
        (
            "Agents",
            d.cluster
                .agents
                .len()
                .max(s.num_slaves as usize)
                .to_string(),
        ),
        ("Offers held", s.offers.to_string()),
        ("CPUs offered", s.total_offered.to_string()),
        (
            "Finished jobs",
            d.counts.get(JobState::Finished).to_string(),
        ),
        ("Killed jobs", d.counts.get(JobState::Killed).to_string()),
        (
            "Mesos master",
            if s.master.is_empty() {
                "(none yet)".into()
            } else {
                s.master.clone()
            },
        ),
    ];
    out.push_str("<table class=\"summary\"><tr>");
    for (k, _) in &rows {
        let _ = write!(out, "<th>{}</th>", escape(k));
    }
    out.push_str("</tr><tr>");
    for (_, v) in &rows {
        let _ = write!(out, "<td>{}</td>", escape(v));
    }
    out.push_str("</tr></table>\n");
}

fn running_table(out: &mut String, d: &PageData, viewer: &Viewer) {
    let _ = write!(out, "<h2>Running jobs ({})</h2>", d.running.len());
    if d.running.is_empty() {
        out.push_str("<p class=\"muted\">None.</p>");
        return;
    }
    out.push_str(
        "<table id=\"running\"><tr><th>Job</th><th>State</th><th>Agent</th><th>CPUs</th>\
         <th>NUMA nodes</th><th>Memory</th><th>Verified pinning</th><th>User</th>\
         <th>Application</th><th>Command</th></tr>\n",
    );
    for (owner, job) in &d.running {
        let g = job.granted.as_ref();
        let cpus = match g {
            Some(g) => match &g.cpuset {
                Some(set) => format!("{} ({set})", g.cpu),
                None => format!("{} (not pinned)", g.cpu),
            },
            None => "–".into(),
        };
        let _ = write!(
            out,
            "<tr id=\"job-{id}\" data-job=\"{id}\"><td><a href=\"/ui/job/{id}\">{id}</a> \
             <span class=\"cpu held\" style=\"background:{colour};width:1em\"></span></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            job.state,
            escape(job.slave_id.as_deref().unwrap_or("–")),
            escape(&cpus),
            escape(g.and_then(|g| g.numa_nodes.as_deref()).unwrap_or("–")),
            g.map_or("–".into(), |g| mb(g.mem_mb)),
            escape(
                &job.pinning
                    .as_ref()
                    .map_or("not reported yet".into(), |p| p.summary())
            ),
            id = job.id,
            colour = cpumap::job_colour(job.id),
        );
        private_cells(out, viewer, owner, job, &d.users);
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn queue_table(out: &mut String, d: &PageData, viewer: &Viewer) {
    let total = d.status.queue_length;
    let _ = write!(out, "<h2>Queue ({total})</h2>");
    if d.queue.is_empty() {
        out.push_str("<p class=\"muted\">Empty.</p>");
        return;
    }
    out.push_str(
        "<table id=\"queue\"><tr><th>Position</th><th>Job</th><th>Priority</th><th>CPUs</th>\
         <th>Memory</th><th>Waiting because</th><th>User</th><th>Application</th>\
         <th>Command</th></tr>\n",
    );
    for (pos, (owner, job, reason)) in d.queue.iter().enumerate() {
        let r = &job.resources;
        let _ = write!(
            out,
            "<tr data-job=\"{id}\"><td>{pos}</td><td><a href=\"/ui/job/{id}\">{id}</a></td>\
             <td>{}</td><td>{}</td><td>{} MB</td><td>{}</td>",
            job.priority,
            escape(&r.cpu.to_string()),
            escape(&r.mem_mb.to_string()),
            escape(reason.as_deref().unwrap_or("not planned yet")),
            id = job.id,
        );
        private_cells(out, viewer, owner, job, &d.users);
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    if (d.queue.len() as u64) < total {
        let _ = write!(
            out,
            "<p class=\"muted\">… and {} more.</p>",
            total - d.queue.len() as u64
        );
    }
}

/// Per user: running jobs, CPUs, memory.
fn usage(out: &mut String, d: &PageData, viewer: &Viewer) {
    let mut per: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for (owner, job) in &d.running {
        let e = per.entry(owner.as_str()).or_default();
        e.0 += 1;
        if let Some(g) = &job.granted {
            e.1 += u64::from(g.cpu);
            e.2 += g.mem_mb;
        }
    }
    out.push_str("<h2>Usage per user</h2><table id=\"usage\"><tr><th>User</th><th>Running jobs</th><th>CPUs</th><th>Memory</th></tr>\n");
    let row = |out: &mut String, who: &str, (n, c, m): (u64, u64, u64)| {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{n}</td><td>{c}</td><td>{}</td></tr>",
            escape(who),
            mb(m)
        );
    };
    let mut others = (0u64, 0u64, 0u64);
    let mut other_users = 0;
    for (owner, u) in &per {
        if viewer.may_see(owner) {
            let who = d
                .users
                .get(*owner)
                .map_or((*owner).to_owned(), |i| label(owner, i));
            row(out, &who, *u);
        } else {
            other_users += 1;
            others = (others.0 + u.0, others.1 + u.1, others.2 + u.2);
        }
    }
    if other_users > 0 {
        let who = match viewer {
            Viewer::Anonymous => format!(
                "{other_users} user{}",
                if other_users == 1 { "" } else { "s" }
            ),
            _ => format!(
                "{other_users} other user{}",
                if other_users == 1 { "" } else { "s" }
            ),
        };
        row(out, &who, others);
    }
    if per.is_empty() {
        out.push_str("<tr><td class=\"muted\" colspan=\"4\">Nobody runs a job.</td></tr>");
    }
    out.push_str("</table>\n");
}

/// The page `/`.
pub fn index(d: &PageData, viewer: &Viewer) -> String {
    let mut body = String::new();
    summary(&mut body, d);
    body.push_str("<h2>CPU map</h2>");
    let running: Vec<&Job> = d.running.iter().map(|(_, j)| j).collect();
    cpumap::render(&mut body, &d.cluster, &running);
    running_table(&mut body, d, viewer);
    queue_table(&mut body, d, viewer);
    usage(&mut body, d, viewer);
    let _ = write!(
        body,
        "<p class=\"muted\">retz-server {} · <a href=\"/status\">status (JSON)</a> · \
         <a href=\"/metrics\">metrics</a> · refreshed every 5 s</p>",
        escape(&d.status.server_version)
    );
    layout("Retz", true, viewer, &body)
}

/// The sign-in form, with `error` above it.
pub fn login(viewer: &Viewer, error: Option<&str>) -> String {
    let mut body = String::from("<h2>Sign in</h2>");
    if let Some(e) = error {
        let _ = write!(body, "<p class=\"err\" id=\"error\">{}</p>", escape(e));
    }
    body.push_str(
        "<form method=\"post\" action=\"/login\" style=\"display:block\"><table>\
         <tr><th><label for=\"key\">Access key</label></th><td><input id=\"key\" name=\"key\" \
         autocomplete=\"username\" required size=\"40\"></td></tr>\
         <tr><th><label for=\"secret\">Secret</label></th><td><input id=\"secret\" name=\"secret\" \
         type=\"password\" autocomplete=\"current-password\" size=\"40\"></td></tr>\
         </table><button type=\"submit\">Sign in</button></form>\
         <p class=\"muted\">The key and secret of your client config (<code>retz-client config</code>).</p>",
    );
    layout("Retz · sign in", false, viewer, &body)
}

/// The page of one job (`position`: its queue position while QUEUED).
pub fn job(
    owner: &str,
    job: &Job,
    reason: Option<&str>,
    position: Option<u64>,
    viewer: &Viewer,
) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("State", job.state.to_string()),
        ("Priority", job.priority.to_string()),
        ("CPUs asked", job.resources.cpu.to_string()),
        ("Memory asked", format!("{} MB", job.resources.mem_mb)),
    ];
    if let Some(p) = position {
        rows.push(("Queue position", p.to_string()));
    }
    if let Some(r) = reason {
        rows.push(("Waiting because", r.to_owned()));
    }
    if let Some(a) = &job.slave_id {
        rows.push(("Agent", a.clone()));
    }
    if let Some(g) = &job.granted {
        rows.push(("CPUs granted", g.cpu.to_string()));
        rows.push(("CPU ids", g.cpuset.clone().unwrap_or("not pinned".into())));
        rows.push(("NUMA nodes", g.numa_nodes.clone().unwrap_or("–".into())));
        rows.push(("Memory granted", mb(g.mem_mb)));
    }
    if let Some(p) = &job.pinning {
        rows.push(("Verified pinning", p.summary()));
    }
    for (k, v) in [
        ("Scheduled", &job.scheduled),
        ("Started", &job.started),
        ("Finished", &job.finished),
    ] {
        if let Some(v) = v {
            rows.push((k, v.clone()));
        }
    }
    if job.state.is_terminal() {
        rows.push(("Exit code", job.result.to_string()));
    }
    if viewer.may_see(owner) {
        rows.push(("User", owner.to_owned()));
        rows.push(("Application", job.appid.clone()));
        rows.push(("Name", job.name.clone()));
        rows.push(("Command", job.cmd.clone()));
        if let Some(r) = &job.reason {
            rows.push(("Reason", r.clone()));
        }
    }
    let mut body = format!("<h2>Job {}</h2><table id=\"job\">", job.id);
    for (k, v) in rows {
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            if k == "Command" {
                format!("<code>{}</code>", escape(&v))
            } else {
                escape(&v)
            }
        );
    }
    body.push_str("</table>");
    if !viewer.may_see(owner) {
        body.push_str("<p class=\"muted\">Sign in as its owner to see its command.</p>");
    }
    let refresh = !job.state.is_terminal();
    layout(&format!("Retz · job {}", job.id), refresh, viewer, &body)
}

/// A page saying `message` (404 and the like).
pub fn message(viewer: &Viewer, message: &str) -> String {
    layout(
        "Retz",
        false,
        viewer,
        &format!("<p class=\"err\">{}</p>", escape(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(escape("plain text 1-2"), "plain text 1-2");
    }
}
