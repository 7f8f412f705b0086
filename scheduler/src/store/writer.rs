//! The group-commit writer: one task that owns job inserts. Every insert waiting when a
//! batch starts goes into one transaction, so N concurrent submissions cost one commit
//! (one fsync) instead of N. Each caller is answered only after its batch committed.
//!
//! A failed batch is retried one insert per transaction, so one bad row cannot fail the
//! others' submissions.

use retz_proto::api::Job;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

/// Most inserts in one transaction.
const MAX_BATCH: usize = 512;

/// One job to insert, and where to send its stored version.
pub(super) struct InsertRequest {
    pub(super) owner: String,
    pub(super) job: Job,
    /// The submission's `Idempotency-Key` (unique per owner), if it had one.
    pub(super) idempotency_key: Option<String>,
    pub(super) reply: oneshot::Sender<Result<Job, String>>,
}

/// Starts the writer on `pool`; it stops when every sender is dropped.
pub(super) fn start(pool: AnyPool) -> mpsc::Sender<InsertRequest> {
    let (tx, mut rx) = mpsc::channel::<InsertRequest>(4 * MAX_BATCH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            commit_batch(&pool, std::mem::take(&mut batch)).await;
        }
    });
    tx
}

async fn commit_batch(pool: &AnyPool, batch: Vec<InsertRequest>) {
    match insert_all(pool, &batch).await {
        Ok(jobs) => {
            for (req, job) in batch.into_iter().zip(jobs) {
                // The caller may have gone away (request cancelled); the job is stored.
                let _ = req.reply.send(Ok(job));
            }
        }
        Err(e) if batch.len() > 1 => {
            tracing::warn!(error = %e, size = batch.len(), "job insert batch failed; retrying one by one");
            for req in batch {
                let result = insert_all(pool, std::slice::from_ref(&req))
                    .await
                    .map(|mut v| v.remove(0))
                    .map_err(|e| e.to_string());
                let _ = req.reply.send(result);
            }
        }
        Err(e) => {
            for req in batch {
                let _ = req.reply.send(Err(e.to_string()));
            }
        }
    }
}

async fn insert_all(pool: &AnyPool, reqs: &[InsertRequest]) -> Result<Vec<Job>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(reqs.len());
    for r in reqs {
        // The json is written with id 0: the id column is authoritative for the id (every
        // read sets it from there), which saves a second statement per job.
        let json = serde_json::to_string(&r.job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (owner, appid, name, state, priority, task_id, retry, cpus, \
             finished_ms, json, idempotency_key) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, 0, NULL, $7, $8) RETURNING id",
        )
        .bind(&r.owner)
        .bind(&r.job.appid)
        .bind(&r.job.name)
        .bind(r.job.state.as_str())
        .bind(i64::from(r.job.priority))
        .bind(i64::from(r.job.retry))
        .bind(json)
        .bind(r.idempotency_key.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        let mut job = r.job.clone();
        job.id = super::to_u64(id);
        out.push(job);
    }
    tx.commit().await?;
    Ok(out)
}
