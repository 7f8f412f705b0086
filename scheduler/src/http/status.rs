//! Unauthenticated endpoints: `/ping`, `/status`, `/metrics` (OpenMetrics, [`crate::metrics`]) and `/`
//! (a plain HTML status page, no scripts). Store counts are cached for one second (as the
//! original did) and the cache is dropped whenever the API changes a job.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse};
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

async fn current(state: &AppState) -> ApiResult<(JobCounts, StatusResponse)> {
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

fn escape(s: &str) -> String {
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

/// `GET /`: a plain status page, refreshed by the browser every 5 s.
pub(super) async fn index(State(state): State<AppState>) -> ApiResult<Html<String>> {
    let (counts, s) = current(&state).await?;
    let mut rows = String::new();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(
            rows,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(&v)
        );
    };
    row("Server version", s.server_version.clone());
    row(
        "Mesos master",
        if s.master.is_empty() {
            "(none yet)".into()
        } else {
            s.master.clone()
        },
    );
    row("Queued jobs", s.queue_length.to_string());
    row("Running jobs", s.running_length.to_string());
    row("CPUs used", s.total_used.to_string());
    row("Agents", s.num_slaves.to_string());
    row("Offers held", s.offers.to_string());
    row("CPUs offered", s.total_offered.to_string());
    row("Events waiting", s.stanchion_queue_length.to_string());
    row("Finished jobs", counts.get(JobState::Finished).to_string());
    row("Killed jobs", counts.get(JobState::Killed).to_string());
    Ok(Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>Retz</title>\
         <style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:2em}}</style>\
         </head><body><h1>Retz</h1><table>\n{rows}</table>\
         <p><a href=\"/status\">status (JSON)</a> · <a href=\"/metrics\">metrics</a></p>\
         </body></html>\n"
    )))
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
    }
}
