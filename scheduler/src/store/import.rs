//! Jobs imported from an original Retz database (`POST /admin/import`): stored in the
//! state the original left them (QUEUED, FINISHED or KILLED, with their times and
//! results), under the idempotency key [`import_key`] of their owner, so an import run
//! twice stores each job once. A job keeps its original id when that id is free here
//! (and not 0), else it gets a new one; either way later ids stay above it (PostgreSQL's
//! identity sequence is moved past it, SQLite's AUTOINCREMENT does so by itself).

use retz_proto::api::{Job, import_key};

use super::jobs::time_ms;
use super::{Backend, Store, StoreError, to_i64, to_u64};

impl Store {
    /// Whether `owner` has the job imported from original id `original_id`.
    pub async fn imported_job_exists(
        &self,
        owner: &str,
        original_id: u64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .job_by_idempotency_key(owner, &import_key(original_id))
            .await?
            .is_some())
    }

    /// Whether a job with `id` is stored.
    pub async fn job_id_taken(&self, id: u64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT id FROM jobs WHERE id = $1")
            .bind(to_i64(id))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Stores `job` of `owner` as it is (its state, times, result), keyed by its
    /// original id `job.id`; returns the id it got here. The caller checked that it was
    /// not imported before ([`Store::imported_job_exists`]).
    pub async fn import_job(&self, owner: &str, job: &Job) -> Result<u64, StoreError> {
        let original = job.id;
        let keep = original != 0 && !self.job_id_taken(original).await?;
        let mut stored = job.clone();
        stored.id = 0;
        let json = serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt {
            what: "job",
            key: original.to_string(),
            detail: e.to_string(),
        })?;
        let columns = "owner, appid, name, state, priority, task_id, retry, cpus, finished_ms, \
                       json, idempotency_key";
        let values = "$1, $2, $3, $4, $5, NULL, $6, 0, $7, $8, $9";
        let sql = match (keep, self.backend()) {
            (false, _) => format!("INSERT INTO jobs ({columns}) VALUES ({values}) RETURNING id"),
            (true, Backend::Sqlite) => {
                format!("INSERT INTO jobs (id, {columns}) VALUES ($10, {values}) RETURNING id")
            }
            (true, Backend::Postgres) => format!(
                "INSERT INTO jobs (id, {columns}) OVERRIDING SYSTEM VALUE \
                 VALUES ($10, {values}) RETURNING id"
            ),
        };
        let mut query = sqlx::query_scalar::<_, i64>(&sql)
            .bind(owner)
            .bind(&job.appid)
            .bind(&job.name)
            .bind(job.state.as_str())
            .bind(i64::from(job.priority))
            .bind(i64::from(job.retry))
            .bind(job.finished.as_deref().and_then(time_ms))
            .bind(json)
            .bind(import_key(original));
        if keep {
            query = query.bind(to_i64(original));
        }
        let id = query.fetch_one(self.pool()).await?;
        if keep && self.backend() == Backend::Postgres {
            // Later ids go above the kept one, and never back below ids handed out.
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('jobs', 'id'), \
                 GREATEST($1, nextval(pg_get_serial_sequence('jobs', 'id'))))",
            )
            .bind(id)
            .execute(self.pool())
            .await?;
        }
        Ok(to_u64(id))
    }
}
