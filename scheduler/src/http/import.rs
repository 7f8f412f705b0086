//! `POST /admin/import` (operator only, as every `/admin` endpoint): users, applications
//! and jobs read from an original Retz 0.4 database by `retz-admin import`.
//!
//! - Users keep their keys and secrets (old client configs keep working). A key already
//!   here is left as it is (a different secret is noted).
//! - Applications keep their name and owner and get a fresh `generation`; they pass the
//!   checks of `PUT /app` (name, limits, Unix user; Docker containers are refused). A name
//!   already owned here by the same key is left as it is; by another key, refused.
//! - Jobs: QUEUED ones are queued here and run (their runtime fields cleared, their
//!   `scheduled` kept); FINISHED and KILLED ones are stored as history; STARTING and
//!   STARTED ones (running on the old cluster, which this server cannot see) are stored
//!   KILLED with a reason saying so, never run twice. Each is stored once per owner
//!   ([`retz_proto::api::import_key`]), with its original id when free
//!   ([`crate::store`]'s import), so importing again imports nothing new.
//! - A record whose owner is not a user (here or in the same import) is refused.
//!
//! With `dryRun` nothing is written and the answer counts what would be imported.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use retz_proto::api::limits::{check_app, check_job};
use retz_proto::api::{Container, ImportRequest, ImportResponse, Job, JobState};

use super::apps::{check_name, check_user};
use super::operator::Operator;
use super::{ApiResult, AppState, parse_json};

/// The reason given to jobs that were running in the original Retz when imported.
pub const WAS_RUNNING: &str = "was running in the original Retz when imported; \
                               not run here (schedule it again to run it)";

/// `POST /admin/import`.
pub(super) async fn import(
    State(state): State<AppState>,
    op: Operator,
) -> ApiResult<Json<ImportResponse>> {
    let req: ImportRequest = parse_json(&op.body)?;
    let dry = req.dry_run;
    let mut out = ImportResponse {
        dry_run: dry,
        ..ImportResponse::default()
    };
    let limits = state.config.limits();
    // Keys that are users once this import is done (a dry run writes none).
    let mut new_users = BTreeSet::new();
    for user in req.users {
        let plain =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
        if !plain(&user.key_id) || !plain(&user.secret) {
            out.users.refused += 1;
            out.notes.push(format!(
                "user {:?}: key and secret must be 1 to 64 printable characters",
                user.key_id
            ));
            continue;
        }
        match state.store.get_user(&user.key_id).await? {
            Some(here) => {
                out.users.present += 1;
                if here.secret != user.secret {
                    out.notes.push(format!(
                        "user {}: exists here with another secret; kept as it is",
                        user.key_id
                    ));
                }
            }
            None => {
                if !dry {
                    state.store.put_user(&user).await?;
                }
                new_users.insert(user.key_id.clone());
                out.users.imported += 1;
            }
        }
    }
    let is_user = async |key: &str| -> ApiResult<bool> {
        Ok(new_users.contains(key) || state.store.get_user(key).await?.is_some())
    };

    let mut new_apps = BTreeSet::new();
    for mut app in req.applications {
        let name = app.appid.clone();
        let refusal = if let Err(e) = check_name(&name) {
            Some(e.message)
        } else if !matches!(app.container, Container::Mesos) {
            Some("Docker containers are not supported here".to_owned())
        } else if let Some(Err(e)) = app
            .user
            .as_deref()
            .map(|u| check_user(&state.config.users, u))
        {
            Some(e.message)
        } else if let Err(e) = check_app(&app, &limits) {
            Some(e.to_string())
        } else if !is_user(&app.owner).await? {
            Some(format!("its owner {:?} is not a user", app.owner))
        } else {
            None
        };
        if let Some(why) = refusal {
            out.applications.refused += 1;
            out.notes.push(format!("application {name}: {why}"));
            continue;
        }
        match state.store.get_app(&name).await? {
            Some(here) if here.owner == app.owner => out.applications.present += 1,
            Some(_) => {
                out.applications.refused += 1;
                out.notes.push(format!(
                    "application {name}: the name is another user's here"
                ));
            }
            None => {
                app.generation = uuid::Uuid::new_v4().simple().to_string();
                if !dry && !state.store.put_app(&app).await? {
                    out.applications.refused += 1;
                    out.notes.push(format!(
                        "application {name}: the name is another user's here"
                    ));
                    continue;
                }
                new_apps.insert(name);
                out.applications.imported += 1;
            }
        }
    }

    let mut wrote = false;
    for imported in req.jobs {
        let (owner, original) = (imported.owner, imported.job);
        let id = original.id;
        if state.store.imported_job_exists(&owner, id).await? {
            out.jobs.present += 1;
            continue;
        }
        let refusal = if !is_user(&owner).await? {
            Some(format!("its owner {owner:?} is not a user"))
        } else {
            None
        };
        let job = match refusal.map_or_else(|| as_imported(original, &limits), Err) {
            Ok(job) => job,
            Err(why) => {
                out.jobs.refused += 1;
                out.notes.push(format!("job {id}: {why}"));
                continue;
            }
        };
        if job.state == JobState::Queued
            && !new_apps.contains(&job.appid)
            && state.store.get_app(&job.appid).await?.is_none()
        {
            out.notes.push(format!(
                "job {id}: queued, but its application {} is not here; it will not run until \
                 the application is loaded",
                job.appid
            ));
        }
        let new_id = if dry {
            if id == 0 || state.store.job_id_taken(id).await? {
                None
            } else {
                Some(id)
            }
        } else {
            wrote = true;
            let new_id = state.store.import_job(&owner, &job).await?;
            if job.state == JobState::Queued {
                let mut queued = job.clone();
                queued.id = new_id;
                state.planner.job_queued(&queued);
            }
            Some(new_id)
        };
        if new_id != Some(id) {
            out.renumbered.push([id, new_id.unwrap_or(0)]);
        }
        out.jobs.imported += 1;
        if job.state == JobState::Queued {
            out.queued += 1;
        }
    }
    if wrote {
        state.counts.invalidate();
    }
    Ok(Json(out))
}

/// `job` as it is stored here, or why it cannot be.
fn as_imported(mut job: Job, limits: &retz_proto::api::limits::Limits) -> Result<Job, String> {
    match job.state {
        JobState::Queued => {
            check_job(&job, limits).map_err(|e| format!("queued, but {e}"))?;
            job.clear_run_state();
        }
        JobState::Starting | JobState::Started => {
            job.state = JobState::Killed;
            job.reason = Some(WAS_RUNNING.to_owned());
            job.finished = job
                .finished
                .or_else(|| job.started.clone())
                .or_else(|| job.scheduled.clone());
        }
        JobState::Finished | JobState::Killed => {}
        JobState::Created => return Err("in state CREATED (never accepted by a server)".into()),
    }
    Ok(job)
}
