//! The job history: every job that started and ended (FINISHED or KILLED), in order of
//! its end, read page by page so that an export of a big store never holds it whole.
//!
//! Paging is by key, not offset: a page ends at a [`HistoryCursor`] (end time, id) and the
//! next page starts strictly after it, so a page costs an index range scan
//! (`jobs_finished`) however deep the export is, and jobs that end while an export runs
//! come after the cursor instead of shifting the pages.

use chrono::{DateTime, Utc};
use retz_proto::api::Job;
use sqlx::Row;

use super::jobs::decode_job;
use super::{Store, StoreError, to_i64};

/// Which ended jobs a history read returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Jobs that ended at or after this time (all when `None`).
    pub since: Option<DateTime<Utc>>,
    /// Jobs of this application only.
    pub app: Option<String>,
}

/// Where a history page ended: the (end time in ms, id) of its last row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryCursor {
    finished_ms: i64,
    id: i64,
}

/// One page of the history.
#[derive(Debug, Default)]
pub struct HistoryPage {
    /// The jobs that started and ended, with their owners' keys, by (end time, id).
    pub jobs: Vec<(String, Job)>,
    /// Where to read on; `None` when this was the last page.
    pub next: Option<HistoryCursor>,
}

impl Store {
    /// The ended jobs matching `filter` after `after` (from the start when `None`), at
    /// most `limit` rows read; jobs that ended without ever starting (killed while
    /// queued) are read but left out, so a page may hold fewer jobs than `limit` and
    /// still have a next one.
    pub async fn history_page(
        &self,
        filter: &HistoryFilter,
        after: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let after = after.unwrap_or(HistoryCursor {
            finished_ms: filter.since.map_or(i64::MIN, |t| t.timestamp_millis()),
            // Ids start at 1: the first page holds every job that ended at `since`.
            id: 0,
        });
        let app = if filter.app.is_some() {
            "AND appid = $4 "
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, owner, finished_ms, json FROM jobs \
             WHERE state IN ('FINISHED', 'KILLED') AND finished_ms >= $1 \
             AND (finished_ms > $1 OR id > $2) {app}\
             ORDER BY finished_ms ASC, id ASC LIMIT $3"
        );
        let limit = limit.max(1);
        let mut q = sqlx::query(&sql)
            .bind(after.finished_ms)
            .bind(after.id)
            .bind(to_i64(limit as u64));
        if let Some(app) = &filter.app {
            q = q.bind(app.as_str());
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut page = HistoryPage::default();
        let mut last = None;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let finished_ms: i64 = row.try_get("finished_ms")?;
            last = Some(HistoryCursor { finished_ms, id });
            let job = decode_job(row)?;
            if job.started.is_some() {
                page.jobs.push((row.try_get("owner")?, job));
            }
        }
        page.next = last.filter(|_| rows.len() == limit);
        Ok(page)
    }
}
