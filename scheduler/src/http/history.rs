//! `GET /admin/history?since=T&app=A` (operator only): the job history as JSON lines
//! (`application/x-ndjson`), one [`HistoryLine`] per job that started and ended, by end
//! time. The format is a contract (`sim/README.md`, "Job history format"; `retz-sim fit`
//! reads it): the field names never change, fields are only added.
//!
//! The answer is streamed page by page from the store ([`Store::history_page`]), so
//! exporting a big store holds one page, not the history. The first page is read before
//! the answer starts, so a store that fails at once answers a JSON 500; a failure later
//! cuts the stream off (the client sees a broken transfer, never a short success).

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use retz_proto::api::Job;
use serde::Serialize;

use super::admin::usage_bound;
use super::operator::Operator;
use super::{ApiError, ApiResult, AppState};
use crate::store::{HistoryCursor, HistoryFilter, HistoryPage, time_ms};

/// Rows one store read takes.
const PAGE: usize = 500;

/// One line of the history (field names and order are the contract).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryLine {
    /// Job id.
    pub job: u64,
    /// Application.
    pub app: String,
    /// The owner's access key.
    pub user: String,
    /// `FINISHED` or `KILLED`.
    pub state: String,
    /// CPUs granted.
    pub cpus: u32,
    /// Memory granted, MB.
    pub mem_mb: u64,
    /// GPUs granted.
    pub gpus: u32,
    /// The agent's host (from its sandbox URL), else its agent id.
    pub agent: String,
    /// The granted CPU ids (Linux list format); null when unpinned.
    pub granted_cpus: Option<String>,
    /// Placement features; null when the job ran unpinned or was granted before they
    /// were recorded.
    pub nodes_spanned: Option<u32>,
    /// L3 cache domains spanned.
    pub l3_spanned: Option<u32>,
    /// An SMT sibling of a granted CPU was held by another job at grant time.
    pub smt_shared: Option<bool>,
    /// Share of the memory on nodes holding none of the job's CPUs, 0..1.
    pub remote_mem_share: Option<f64>,
    /// Other jobs running on the spanned nodes at grant time.
    pub co_runners: Option<u32>,
    /// Seconds from start to end (millisecond precision).
    pub runtime_s: f64,
    /// When it ended, RFC 3339 UTC.
    pub finished: String,
}

impl HistoryLine {
    /// The line of `job` (owned by `owner`); `None` unless it started and ended with
    /// readable times.
    pub fn of(owner: &str, job: &Job) -> Option<HistoryLine> {
        let started = time_ms(job.started.as_deref()?)?;
        let finished = time_ms(job.finished.as_deref()?)?;
        let grant = job.granted.as_ref();
        let features = grant.and_then(|g| g.features);
        let agent = job
            .sandbox
            .as_ref()
            .and_then(|s| url::Url::parse(&s.agent).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .or_else(|| job.slave_id.clone())
            .unwrap_or_default();
        Some(HistoryLine {
            job: job.id,
            app: job.appid.clone(),
            user: owner.to_owned(),
            state: job.state.as_str().to_owned(),
            cpus: grant.map_or(job.resources.cpu.min, |g| g.cpu),
            mem_mb: grant.map_or(job.resources.mem_mb.min, |g| g.mem_mb),
            gpus: grant.map_or(job.resources.gpu, |g| g.gpu),
            agent,
            granted_cpus: grant.and_then(|g| g.cpuset.clone()),
            nodes_spanned: features.map(|f| f.nodes_spanned),
            l3_spanned: features.map(|f| f.l3_spanned),
            smt_shared: features.map(|f| f.smt_shared),
            remote_mem_share: features.map(|f| f.remote_mem_share),
            co_runners: features.map(|f| f.co_runners),
            runtime_s: finished.saturating_sub(started).max(0) as f64 / 1000.0,
            finished: DateTime::<Utc>::from_timestamp_millis(finished)?
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        })
    }
}

/// The filter of a query: `since` (a date or time, as `retz-admin usage` takes) and
/// `app`; anything else is a 400.
fn filter(query: Option<&str>) -> Result<HistoryFilter, ApiError> {
    let mut f = HistoryFilter::default();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "since" => {
                f.since = Some(usage_bound(&v).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "since={v:?} is not a time; use a date (2026-01-02) or an RFC 3339 \
                         time (2026-01-02T00:00:00Z)"
                    ))
                })?);
            }
            "app" if v.is_empty() => {
                return Err(ApiError::bad_request("app= is empty; name an application"));
            }
            "app" => f.app = Some(v.into_owned()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}; use since and app"
                )));
            }
        }
    }
    Ok(f)
}

/// The JSON lines of a page's jobs.
fn lines(page: &HistoryPage) -> Bytes {
    let mut out = Vec::new();
    for (owner, job) in &page.jobs {
        if let Some(line) = HistoryLine::of(owner, job)
            && serde_json::to_writer(&mut out, &line).is_ok()
        {
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}

/// Where a history stream is.
enum Step {
    /// A page read, to send.
    Page(HistoryPage),
    /// The next page starts after this.
    Read(HistoryCursor),
    /// Nothing more.
    Done,
}

/// `GET /admin/history?since=T&app=A`: see the module doc.
pub(super) async fn history(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    _op: Operator,
) -> ApiResult<Response> {
    let filter = filter(query.as_deref())?;
    let first = state.store.history_page(&filter, None, PAGE).await?;
    let stream = futures_util::stream::unfold(
        (state.store.clone(), filter, Step::Page(first)),
        |(store, filter, step)| async move {
            let page = match step {
                Step::Done => return None,
                Step::Page(page) => page,
                Step::Read(cursor) => match store.history_page(&filter, Some(cursor), PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "job history export cut off");
                        let e = std::io::Error::other(e.to_string());
                        return Some((Err(e), (store, filter, Step::Done)));
                    }
                },
            };
            let next = page.next.map_or(Step::Done, Step::Read);
            Some((Ok(lines(&page)), (store, filter, next)))
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
