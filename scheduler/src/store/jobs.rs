//! Jobs: insert (group-committed), read, list, the planner's queue order, compare-and-set
//! updates, counts, usage and garbage collection.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use retz_proto::api::{Job, JobState, Sandbox, TIME_FORMAT};
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::oneshot;

use super::writer::InsertRequest;
use super::{Store, StoreError, to_i64, to_u64};

/// How many jobs are in each state, and totals the metrics need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Jobs per state (states with no job are absent).
    pub by_state: BTreeMap<JobState, u64>,
    /// Sum of `retry` over all stored jobs.
    pub retries: u64,
    /// CPUs granted to STARTING and STARTED jobs.
    pub cpus_used: u64,
    /// CPUs granted to STARTING and STARTED jobs, per owner (users with none absent).
    pub cpus_by_user: BTreeMap<String, u64>,
    /// Memory (MB) granted to STARTING and STARTED jobs.
    pub mem_mb_used: u64,
    /// GPUs granted to STARTING and STARTED jobs.
    pub gpus_used: u64,
    /// Ports granted to STARTING and STARTED jobs.
    pub ports_used: u64,
    /// Disk (MB) STARTING and STARTED jobs asked for (disk is not placed, only offered).
    pub disk_mb_used: u64,
}

impl JobCounts {
    /// Jobs in `state`.
    pub fn get(&self, state: JobState) -> u64 {
        self.by_state.get(&state).copied().unwrap_or(0)
    }

    /// STARTING + STARTED jobs.
    pub fn running(&self) -> u64 {
        self.get(JobState::Starting) + self.get(JobState::Started)
    }
}

/// The current time in the job time format.
pub fn now_string() -> String {
    Utc::now().format(TIME_FORMAT).to_string()
}

/// Milliseconds since the epoch of a job time (the Retz format or RFC 3339).
pub fn time_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_str(s, TIME_FORMAT)
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.timestamp_millis())
}

pub(super) fn decode_job(row: &AnyRow) -> Result<Job, StoreError> {
    let id: i64 = row.try_get("id")?;
    let json: String = row.try_get("json")?;
    let mut job: Job = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
        what: "job",
        key: id.to_string(),
        detail: e.to_string(),
    })?;
    job.id = to_u64(id);
    // Rows written before the sandbox was stored as data carry only the browse URL.
    if let Some(url) = job.url.take()
        && job.sandbox.is_none()
    {
        job.sandbox = legacy_sandbox(&url);
    }
    Ok(job)
}

/// The sandbox of a browse URL (`AGENT/files/browse?path=DIR`) stored by earlier
/// versions; `None` when it is not one.
fn legacy_sandbox(url: &str) -> Option<Sandbox> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let agent = match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    };
    let directory = u
        .query_pairs()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.into_owned())
        .filter(|d| !d.is_empty());
    Some(Sandbox { agent, directory })
}

fn decode_all(rows: &[AnyRow]) -> Result<Vec<Job>, StoreError> {
    rows.iter().map(decode_job).collect()
}

fn encode_job(job: &Job) -> Result<String, StoreError> {
    // The URL is the API's view of the sandbox, never stored; a job that comes with
    // only a URL (imported from an original Retz) keeps it as its sandbox.
    let stripped;
    let job = if let Some(url) = &job.url {
        stripped = Job {
            url: None,
            sandbox: job.sandbox.clone().or_else(|| legacy_sandbox(url)),
            ..job.clone()
        };
        &stripped
    } else {
        job
    };
    serde_json::to_string(job).map_err(|e| StoreError::Corrupt {
        what: "job",
        key: job.id.to_string(),
        detail: e.to_string(),
    })
}

impl Store {
    /// Stores `job` of `owner` as a new QUEUED job (`scheduled` = now, no placement, no
    /// retries) and returns it with its id. Returns only after the commit.
    pub async fn insert_job(&self, owner: &str, job: Job) -> Result<Job, StoreError> {
        self.insert_job_keyed(owner, job, None).await
    }

    /// [`Store::insert_job`], remembering the submission's `idempotency_key`: a second
    /// insert of `owner` with the same key fails ([`StoreError::Insert`]) and
    /// [`Store::job_by_idempotency_key`] finds the first.
    pub async fn insert_job_keyed(
        &self,
        owner: &str,
        mut job: Job,
        idempotency_key: Option<&str>,
    ) -> Result<Job, StoreError> {
        job.id = 0;
        job.state = JobState::Queued;
        job.scheduled = Some(now_string());
        job.retry = 0;
        job.clear_run_state();
        let (reply, answer) = oneshot::channel();
        let request = InsertRequest {
            owner: owner.to_owned(),
            job,
            idempotency_key: idempotency_key.map(str::to_owned),
            reply,
        };
        let stopped = || StoreError::Insert("the store's writer has stopped".to_owned());
        self.inner
            .inserts
            .send(request)
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(StoreError::Insert)
    }

    /// `owner`'s job created by the submission with `key`, if any.
    pub async fn job_by_idempotency_key(
        &self,
        owner: &str,
        key: &str,
    ) -> Result<Option<Job>, StoreError> {
        let row =
            sqlx::query("SELECT id, json FROM jobs WHERE owner = $1 AND idempotency_key = $2")
                .bind(owner)
                .bind(key)
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(decode_job).transpose()
    }

    /// The job with `id` and its owner's key.
    pub async fn get_job(&self, id: u64) -> Result<Option<(String, Job)>, StoreError> {
        let row = sqlx::query("SELECT id, owner, json FROM jobs WHERE id = $1")
            .bind(to_i64(id))
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get("owner")?, decode_job(&r)?)))
            .transpose()
    }

    /// `owner`'s jobs in `state` (with `tag`, if given), newest first, at most `limit`;
    /// the flag says whether more matched.
    pub async fn list_jobs(
        &self,
        owner: &str,
        state: JobState,
        tag: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Job>, bool), StoreError> {
        const SQL: &str =
            "SELECT id, json FROM jobs WHERE owner = $1 AND state = $2 ORDER BY id DESC";
        let mut jobs = Vec::new();
        match tag {
            None => {
                let rows = sqlx::query(&format!("{SQL} LIMIT $3"))
                    .bind(owner)
                    .bind(state.as_str())
                    .bind(to_i64(limit as u64).saturating_add(1))
                    .fetch_all(self.pool())
                    .await?;
                jobs = decode_all(&rows)?;
            }
            Some(tag) => {
                let mut rows = sqlx::query(SQL)
                    .bind(owner)
                    .bind(state.as_str())
                    .fetch(self.pool());
                while let Some(row) = rows.try_next().await? {
                    let job = decode_job(&row)?;
                    if job.tags.contains(tag) {
                        jobs.push(job);
                        if jobs.len() > limit {
                            break;
                        }
                    }
                }
            }
        }
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        Ok((jobs, more))
    }

    /// The queue keys `(priority, id)` of every QUEUED job, in planner order (priority
    /// ascending, then id ascending). Streamed: memory is the keys, not the rows.
    pub async fn queued_keys(&self) -> Result<Vec<(i32, u64)>, StoreError> {
        let mut rows = sqlx::query(
            "SELECT id, priority FROM jobs WHERE state = 'QUEUED' ORDER BY priority ASC, id ASC",
        )
        .fetch(self.pool());
        let mut keys = Vec::new();
        while let Some(row) = rows.try_next().await? {
            let id: i64 = row.try_get("id")?;
            let priority: i64 = row.try_get("priority")?;
            let priority = i32::try_from(priority).map_err(|_| StoreError::Corrupt {
                what: "job priority",
                key: id.to_string(),
                detail: format!("{priority} is out of range"),
            })?;
            keys.push((priority, to_u64(id)));
        }
        Ok(keys)
    }

    /// Calls `f` with every QUEUED job and its owner's key, in id order. Streamed: the
    /// caller keeps what it needs (the planner's fair queue keeps keys, not records).
    pub async fn for_each_queued(&self, mut f: impl FnMut(&str, &Job)) -> Result<u64, StoreError> {
        let mut rows =
            sqlx::query("SELECT id, owner, json FROM jobs WHERE state = 'QUEUED' ORDER BY id ASC")
                .fetch(self.pool());
        let mut n = 0;
        while let Some(row) = rows.try_next().await? {
            let owner: String = row.try_get("owner")?;
            f(&owner, &decode_job(&row)?);
            n += 1;
        }
        Ok(n)
    }

    /// The jobs with these ids (any state; ids not stored are absent), in no particular
    /// order. Asked in chunks, so any number of ids works on both backends.
    pub async fn jobs_by_ids(&self, ids: &[u64]) -> Result<Vec<Job>, StoreError> {
        const CHUNK: usize = 500;
        let mut jobs = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, json FROM jobs WHERE id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(to_i64(*id));
            }
            let rows = q.fetch_all(self.pool()).await?;
            for row in &rows {
                jobs.push(decode_job(row)?);
            }
        }
        Ok(jobs)
    }

    /// How many jobs are STARTING or STARTED (an index range, not a table scan).
    pub async fn running_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state IN ('STARTING', 'STARTED')")
                .fetch_one(self.pool())
                .await?;
        Ok(to_u64(n))
    }

    /// Every STARTING or STARTED job (to reconcile), by id.
    pub async fn active_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, json FROM jobs WHERE state IN ('STARTING', 'STARTED') ORDER BY id ASC",
        )
        .fetch_all(self.pool())
        .await?;
        decode_all(&rows)
    }

    /// Every STARTING or STARTED job with its owner's key, by id (for the web page).
    pub async fn active_jobs_owned(&self) -> Result<Vec<(String, Job)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, owner, json FROM jobs WHERE state IN ('STARTING', 'STARTED') \
             ORDER BY id ASC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("owner")?, decode_job(r)?)))
            .collect()
    }

    /// The first `limit` QUEUED jobs in planner order (priority, then id) with their
    /// owners' keys: position `i` in the answer is queue position `i`.
    pub async fn queue_head(&self, limit: usize) -> Result<Vec<(String, Job)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, owner, json FROM jobs WHERE state = 'QUEUED' \
             ORDER BY priority ASC, id ASC LIMIT $1",
        )
        .bind(to_i64(limit as u64))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("owner")?, decode_job(r)?)))
            .collect()
    }

    /// The job whose current task id is `task_id`.
    pub async fn job_by_task_id(&self, task_id: &str) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query("SELECT id, json FROM jobs WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(decode_job).transpose()
    }

    /// Stores `job` (found by id) if its stored state is still `expected`; returns whether
    /// it did. One statement, so one transaction: a concurrent transition wins or loses
    /// whole.
    pub async fn update_job(&self, job: &Job, expected: JobState) -> Result<bool, StoreError> {
        let json = encode_job(job)?;
        let cpus = if job.state.is_active() {
            job.granted.as_ref().map_or(0, |g| i64::from(g.cpu))
        } else {
            0
        };
        let finished_ms = job.finished.as_deref().and_then(time_ms);
        let pinning = job.pinning.as_ref();
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, priority = $2, task_id = $3, retry = $4, cpus = $5, \
             finished_ms = $6, json = $7, pin_mechanism = $10, pin_outcome = $11 \
             WHERE id = $8 AND state = $9",
        )
        .bind(job.state.as_str())
        .bind(i64::from(job.priority))
        .bind(job.task_id.as_deref())
        .bind(i64::from(job.retry))
        .bind(cpus)
        .bind(finished_ms)
        .bind(json)
        .bind(to_i64(job.id))
        .bind(expected.as_str())
        .bind(pinning.map(|p| p.mechanism.as_str()))
        .bind(pinning.map(|p| p.outcome.as_str()))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many QUEUED jobs run before job `id` (0 = next); `None` unless it is QUEUED.
    pub async fn queue_position(&self, id: u64) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT priority FROM jobs WHERE id = $1 AND state = 'QUEUED'")
            .bind(to_i64(id))
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let priority: i64 = row.try_get("priority")?;
        let before: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state = 'QUEUED' \
             AND (priority < $1 OR (priority = $1 AND id < $2))",
        )
        .bind(priority)
        .bind(to_i64(id))
        .fetch_one(self.pool())
        .await?;
        Ok(Some(to_u64(before)))
    }

    /// Jobs per state, total retries, CPUs granted to running jobs (all and per owner),
    /// and the memory, GPUs, ports and disk running jobs hold.
    pub async fn counts(&self) -> Result<JobCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n, CAST(SUM(retry) AS BIGINT) AS retries, \
             CAST(SUM(cpus) AS BIGINT) AS cpus FROM jobs GROUP BY state",
        )
        .fetch_all(self.pool())
        .await?;
        let mut counts = JobCounts::default();
        for row in rows {
            let state: String = row.try_get("state")?;
            let state: JobState = state.parse().map_err(|e| StoreError::Corrupt {
                what: "job state",
                key: state.clone(),
                detail: format!("{e}"),
            })?;
            let n: i64 = row.try_get("n")?;
            let retries: Option<i64> = row.try_get("retries")?;
            let cpus: Option<i64> = row.try_get("cpus")?;
            counts.by_state.insert(state, to_u64(n));
            counts.retries += to_u64(retries.unwrap_or(0));
            if state.is_active() {
                counts.cpus_used += to_u64(cpus.unwrap_or(0));
            }
        }
        let rows = sqlx::query(
            "SELECT owner, CAST(SUM(cpus) AS BIGINT) AS cpus FROM jobs \
             WHERE state IN ('STARTING', 'STARTED') GROUP BY owner",
        )
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            let owner: String = row.try_get("owner")?;
            let cpus: Option<i64> = row.try_get("cpus")?;
            let cpus = to_u64(cpus.unwrap_or(0));
            if cpus > 0 {
                counts.cpus_by_user.insert(owner, cpus);
            }
        }
        // Running jobs are bounded by the cluster's size: their grants are summed here
        // rather than kept in more columns.
        for job in self.active_jobs().await? {
            match &job.granted {
                Some(g) => {
                    counts.mem_mb_used += g.mem_mb;
                    counts.gpus_used += u64::from(g.gpu);
                    counts.ports_used += g.ports.len() as u64;
                }
                None => {
                    counts.mem_mb_used += job.resources.mem_mb.min;
                    counts.gpus_used += u64::from(job.resources.gpu);
                    counts.ports_used += u64::from(job.resources.ports);
                }
            }
            counts.disk_mb_used += job.resources.disk_mb;
        }
        Ok(counts)
    }

    /// How many stored jobs' current attempts reported each pinning outcome
    /// (`verified`, `drift`, `exited`, `unverifiable`) with each mechanism (`cgroup-v1`,
    /// ...), keyed `(outcome, mechanism)`; pairs no job has are absent.
    pub async fn pinning_counts(&self) -> Result<BTreeMap<(String, String), u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT pin_outcome, pin_mechanism, COUNT(*) AS n FROM jobs \
             WHERE pin_outcome IS NOT NULL GROUP BY pin_outcome, pin_mechanism",
        )
        .fetch_all(self.pool())
        .await?;
        let mut counts = BTreeMap::new();
        for row in rows {
            let outcome: String = row.try_get("pin_outcome")?;
            let mechanism: Option<String> = row.try_get("pin_mechanism")?;
            let n: i64 = row.try_get("n")?;
            let mechanism = mechanism.unwrap_or_else(|| "unknown".to_owned());
            *counts.entry((outcome, mechanism)).or_insert(0) += to_u64(n);
        }
        Ok(counts)
    }

    /// Jobs that ended (FINISHED or KILLED) in `[start, end)`, by end time, with owners.
    pub async fn finished_between(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, json FROM jobs WHERE finished_ms >= $1 AND finished_ms < $2 \
             AND state IN ('FINISHED', 'KILLED') ORDER BY finished_ms ASC, id ASC",
        )
        .bind(start.timestamp_millis())
        .bind(end.timestamp_millis())
        .fetch_all(self.pool())
        .await?;
        decode_all(&rows)
    }

    /// Deletes FINISHED and KILLED jobs that ended more than `leeway_s` seconds ago;
    /// returns how many.
    pub async fn gc(&self, leeway_s: u64) -> Result<u64, StoreError> {
        let leeway_ms = to_i64(leeway_s).saturating_mul(1000);
        let cutoff = Utc::now().timestamp_millis().saturating_sub(leeway_ms);
        let done = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('FINISHED', 'KILLED') AND finished_ms < $1",
        )
        .bind(cutoff)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_verified_pinning_is_stored_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/retz.db", dir.path().display()))
            .await
            .unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(store.insert_job("k", Job::new("a", "true")).await.unwrap());
        }
        assert!(store.pinning_counts().await.unwrap().is_empty());
        let pinning = |outcome: &str| {
            serde_json::from_str(&format!(
                r#"{{"affinity":"numa-strict","mechanism":"cgroup-v1","outcome":"{outcome}",
                    "cpus":"1","cpus_seen":"1"}}"#
            ))
            .unwrap()
        };
        for (job, outcome) in ids.iter_mut().zip(["verified", "verified", "exited"]) {
            job.pinning = Some(pinning(outcome));
            assert!(store.update_job(job, JobState::Queued).await.unwrap());
        }
        let counts = store.pinning_counts().await.unwrap();
        let key = |o: &str| (o.to_owned(), "cgroup-v1".to_owned());
        assert_eq!(
            counts,
            BTreeMap::from([(key("exited"), 1), (key("verified"), 2)])
        );
        let (_, back) = store.get_job(ids[0].id).await.unwrap().unwrap();
        assert_eq!(back.pinning, ids[0].pinning);
        // A resubmitted job starts without one.
        let fresh = store.insert_job("k", back).await.unwrap();
        assert_eq!(fresh.pinning, None);
        store.close().await;
    }

    #[tokio::test]
    async fn the_sandbox_is_stored_as_data_and_old_urls_are_read_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/retz.db", dir.path().display()))
            .await
            .unwrap();
        let mut job = store.insert_job("k", Job::new("a", "true")).await.unwrap();
        job.sandbox = Some(Sandbox {
            agent: "http://10.0.0.1:5051".into(),
            directory: Some("/var/lib/mesos/s 1".into()),
        });
        job.url = Some("http://stale/files/browse?path=/x".into());
        assert!(store.update_job(&job, JobState::Queued).await.unwrap());
        let raw: String = sqlx::query_scalar("SELECT json FROM jobs WHERE id = $1")
            .bind(to_i64(job.id))
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(!raw.contains("\"url\""), "{raw}");
        let (_, back) = store.get_job(job.id).await.unwrap().unwrap();
        assert_eq!(back.sandbox, job.sandbox);
        assert_eq!(back.url, None);

        // A row an earlier version wrote: only the browse URL, the directory encoded.
        let mut old = serde_json::to_value(Job::new("a", "true")).unwrap();
        old["url"] = "http://10.0.0.2:5051/files/browse?path=/var/lib/mesos/s%202".into();
        sqlx::query("UPDATE jobs SET json = $1 WHERE id = $2")
            .bind(old.to_string())
            .bind(to_i64(job.id))
            .execute(store.pool())
            .await
            .unwrap();
        let (_, back) = store.get_job(job.id).await.unwrap().unwrap();
        assert_eq!(
            back.sandbox,
            Some(Sandbox {
                agent: "http://10.0.0.2:5051".into(),
                directory: Some("/var/lib/mesos/s 2".into()),
            })
        );
        assert_eq!(back.url, None);
        store.close().await;
    }
}
