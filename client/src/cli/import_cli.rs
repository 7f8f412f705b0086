//! `retz-admin import --from postgres://... [--dry-run]`: reads an original Retz 0.4
//! database ([`crate::original_db`]) and sends its users, then its applications, then
//! its jobs in batches of [`BATCH`] to `POST /admin/import`; prints what was imported,
//! what was already there and what was refused (with one line per refusal). Exit 0 when
//! nothing was refused, 1 otherwise.

use retz_proto::api::{ImportCounts, ImportRequest, ImportResponse};

use crate::Client;
use crate::cli::client_cli::{emit, emit_json};
use crate::cli::exit::{CliError, OK, REFUSED};

/// Jobs per request (keeps every body well under the server's limit).
pub const BATCH: usize = 200;

fn add(into: &mut ImportCounts, from: &ImportCounts) {
    into.imported += from.imported;
    into.present += from.present;
    into.refused += from.refused;
}

fn merge(total: &mut ImportResponse, part: ImportResponse) {
    add(&mut total.users, &part.users);
    add(&mut total.applications, &part.applications);
    add(&mut total.jobs, &part.jobs);
    total.queued += part.queued;
    total.renumbered.extend(part.renumbered);
    total.notes.extend(part.notes);
}

/// Runs the import; returns the exit code.
pub async fn run(client: &Client, from: &str, dry_run: bool, json: bool) -> Result<u8, CliError> {
    let db = crate::original_db::read(from)
        .await
        .map_err(|e| CliError::Local(e.to_string()))?;
    let mut total = ImportResponse {
        dry_run,
        ..ImportResponse::default()
    };
    let first = ImportRequest {
        users: db.users,
        applications: db.applications,
        jobs: Vec::new(),
        dry_run,
    };
    merge(&mut total, client.import(&first).await?);
    // A dry run wrote no user or application: send them again with each batch so that
    // the jobs' owners are known.
    let (users, applications) = if dry_run {
        (first.users, first.applications)
    } else {
        (Vec::new(), Vec::new())
    };
    for chunk in db.jobs.chunks(BATCH) {
        let req = ImportRequest {
            users: users.clone(),
            applications: applications.clone(),
            jobs: chunk.to_vec(),
            dry_run,
        };
        let mut part = client.import(&req).await?;
        if dry_run {
            part.users = ImportCounts::default();
            part.applications = ImportCounts::default();
            part.notes.retain(|n| n.starts_with("job "));
        }
        merge(&mut total, part);
    }
    total
        .notes
        .extend(db.unreadable.iter().map(|u| format!("not read: {u}")));
    if json {
        emit_json(&total)?;
    } else {
        emit(&report(&total, db.unreadable.len()))?;
    }
    let refused = total.users.refused + total.applications.refused + total.jobs.refused;
    Ok(if refused == 0 && db.unreadable.is_empty() {
        OK
    } else {
        REFUSED
    })
}

/// The text report.
pub fn report(r: &ImportResponse, unreadable: usize) -> String {
    let verb = if r.dry_run {
        "would import"
    } else {
        "imported"
    };
    let line = |what: &str, c: &ImportCounts| {
        format!(
            "{what}: {verb} {}, already here {}, refused {}\n",
            c.imported, c.present, c.refused
        )
    };
    let mut out = String::new();
    out.push_str(&line("users", &r.users));
    out.push_str(&line("applications", &r.applications));
    out.push_str(&line("jobs", &r.jobs));
    out.push_str(&format!(
        "jobs queued to run: {}; unreadable rows: {unreadable}\n",
        r.queued
    ));
    for [old, new] in &r.renumbered {
        if *new == 0 {
            out.push_str(&format!("job {old}: id taken here, will get a new id\n"));
        } else {
            out.push_str(&format!("job {old}: id taken here, now job {new}\n"));
        }
    }
    for note in &r.notes {
        out.push_str(note);
        out.push('\n');
    }
    out
}
