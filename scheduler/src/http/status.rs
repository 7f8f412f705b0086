//! Unauthenticated endpoints: `/ping`, `/status` and `/metrics` (Prometheus text); the
//! web page `/` is `super::web`, which reads the same [`current`] counts. Store counts are cached for one second (as the
//! original did) and the cache is dropped whenever the API changes a job.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use retz_proto::api::{JobState, StatusResponse};

use super::{ApiResult, AppState};
use crate::store::JobCounts;

const CACHE_FOR: Duration = Duration::from_secs(1);

/// The store's job counts, at most [`CACHE_FOR`] old.
#[derive(Default)]
pub(super) struct CountsCache {
    cached: Mutex<Option<(Instant, JobCounts)>>,
}

impl CountsCache {
    /// Forgets the cached counts (after a change made through the API).
    pub(super) fn invalidate(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, JobCounts)>> {
        // The cache holds plain data: a panic elsewhere cannot leave it inconsistent.
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get(&self, state: &AppState) -> ApiResult<JobCounts> {
        if let Some((at, counts)) = &*self.lock()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(counts.clone());
        }
        let counts = state.store.counts().await?;
        *self.lock() = Some((Instant::now(), counts.clone()));
        Ok(counts)
    }
}

/// `GET /ping`: `"OK"`.
pub(super) async fn ping() -> Json<&'static str> {
    Json("OK")
}

pub(super) async fn current(state: &AppState) -> ApiResult<(JobCounts, StatusResponse)> {
    let counts = state.counts.get(state).await?;
    let p = state.planner.status();
    let status = StatusResponse {
        queue_length: counts.get(JobState::Queued),
        running_length: counts.running(),
        total_used: counts.cpus_used as f64,
        num_slaves: p.agents,
        offers: p.offers,
        total_offered: p.offered_cpus,
        master: p.master,
        stanchion_queue_length: p.events_waiting,
        server_version: state.config.server_version.clone(),
    };
    Ok((counts, status))
}

/// `GET /status`.
pub(super) async fn status(State(state): State<AppState>) -> ApiResult<Json<StatusResponse>> {
    Ok(Json(current(&state).await?.1))
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
    );
}

/// The Prometheus text of the store counts and planner status (without the planner's own
/// metrics).
fn render_metrics(counts: &JobCounts, s: &StatusResponse) -> String {
    let mut out = String::new();
    gauge(
        &mut out,
        "retz_queue_length",
        "Jobs waiting (QUEUED).",
        s.queue_length,
    );
    gauge(
        &mut out,
        "retz_running_jobs",
        "Jobs STARTING or STARTED.",
        s.running_length,
    );
    out.push_str("# HELP retz_jobs Stored jobs per state.\n# TYPE retz_jobs gauge\n");
    for st in &JobState::ALL[1..] {
        let _ = writeln!(out, "retz_jobs{{state=\"{st}\"}} {}", counts.get(*st));
    }
    gauge(
        &mut out,
        "retz_job_retries",
        "Sum of retry counts over stored jobs (drops when gc deletes jobs).",
        counts.retries,
    );
    gauge(
        &mut out,
        "retz_cpus_used",
        "CPUs granted to running jobs.",
        counts.cpus_used,
    );
    gauge(
        &mut out,
        "retz_agents",
        "Agents that sent offers recently.",
        s.num_slaves,
    );
    gauge(
        &mut out,
        "retz_offers_held",
        "Offers held by the planner.",
        s.offers,
    );
    gauge(
        &mut out,
        "retz_offered_cpus",
        "CPUs in the offers held.",
        s.total_offered,
    );
    gauge(
        &mut out,
        "retz_events_waiting",
        "Mesos events waiting for the planner loop.",
        s.stanchion_queue_length,
    );
    out
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let (counts, s) = current(&state).await?;
    let mut out = render_metrics(&counts, &s);
    let planner = state.planner.metrics_text();
    out.push_str(&planner);
    if !planner.is_empty() && !planner.ends_with('\n') {
        out.push('\n');
    }
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_list_every_state_and_the_queue() {
        let mut counts = JobCounts::default();
        counts.by_state.insert(JobState::Queued, 3);
        counts.retries = 2;
        let s = StatusResponse {
            queue_length: 3,
            running_length: 0,
            total_used: 0.0,
            num_slaves: 1,
            offers: 2,
            total_offered: 8.0,
            master: "local".into(),
            stanchion_queue_length: 0,
            server_version: "x".into(),
        };
        let text = render_metrics(&counts, &s);
        assert!(text.contains("retz_queue_length 3\n"), "{text}");
        assert!(text.contains("retz_jobs{state=\"QUEUED\"} 3\n"), "{text}");
        assert!(text.contains("retz_jobs{state=\"KILLED\"} 0\n"), "{text}");
        assert!(text.contains("retz_job_retries 2\n"), "{text}");
        assert!(!text.contains("CREATED"), "{text}");
    }
}
