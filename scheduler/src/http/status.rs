//! Unauthenticated endpoints: `/ping`, `/status` and `/metrics` (OpenMetrics,
//! [`crate::metrics`]); the web page `/` is `super::web`, which reads the same [`current`]
//! counts. Store counts are cached for one second (as the
//! original did) and the cache is dropped whenever the API changes a job.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use retz_proto::api::{JobState, ResourceQuantity, StatusResponse};

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
        used: ResourceQuantity {
            cpu: counts.cpus_used,
            mem_mb: counts.mem_mb_used,
            gpu: counts.gpus_used,
            ports: counts.ports_used,
            disk_mb: counts.disk_mb_used,
            nodes: 0,
        },
        offered: ResourceQuantity {
            // Whole CPUs, as the original's integer quantity.
            cpu: p.offered_cpus.max(0.0).floor() as u64,
            mem_mb: p.offered_mem_mb,
            gpu: p.offered_gpus,
            ports: p.offered_ports,
            disk_mb: p.offered_disk_mb,
            nodes: p.agents,
        },
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

/// `GET /metrics`: OpenMetrics text, or the Prometheus text format when the `Accept`
/// header asks for it ([`crate::metrics`]).
pub(super) async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<impl IntoResponse> {
    use crate::metrics::{self as m};
    let counts = state.counts.get(&state).await?;
    let text = state
        .planner
        .metrics()
        .render(&counts, &state.planner.status());
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    Ok(if m::wants_prometheus_text(accept) {
        (
            [(CONTENT_TYPE, m::TEXT_CONTENT_TYPE)],
            m::to_prometheus_text(&text),
        )
    } else {
        ([(CONTENT_TYPE, m::CONTENT_TYPE)], text)
    })
}
