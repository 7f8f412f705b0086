//! Per-user shares and quota overrides (`user_limits`), and the count a queued-jobs
//! quota is checked against. A user without a row has share 1 and no overrides.

use retz_proto::api::{Quota, UserLimits};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

fn decode(row: &AnyRow) -> Result<UserLimits, StoreError> {
    let user: String = row.try_get("key_id")?;
    let limit = |col: &str| -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = row.try_get(col)?;
        v.map(|n| {
            u64::try_from(n).map_err(|_| StoreError::Corrupt {
                what: "user limit",
                key: user.clone(),
                detail: format!("{col} is {n}"),
            })
        })
        .transpose()
    };
    Ok(UserLimits {
        share: row.try_get("share")?,
        quota: Quota {
            max_queued_jobs: limit("max_queued_jobs")?,
            max_running_cpus: limit("max_running_cpus")?,
            max_running_mem_mb: limit("max_running_mem_mb")?,
        },
        user,
    })
}

/// A limit as a column value (saturating: no limit is that large).
fn column(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

const COLUMNS: &str = "key_id, share, max_queued_jobs, max_running_cpus, max_running_mem_mb";

impl Store {
    /// The share and quota overrides of `user` (share 1, none, if never set).
    pub async fn user_limits(&self, user: &str) -> Result<UserLimits, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM user_limits WHERE key_id = $1"
        ))
        .bind(user)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => decode(&r),
            None => Ok(UserLimits::new(user)),
        }
    }

    /// Every user with a share or an override set, by key.
    pub async fn list_user_limits(&self) -> Result<Vec<UserLimits>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM user_limits ORDER BY key_id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Stores `limits` (replacing what was stored for its user); a user back at share 1
    /// without overrides loses its row.
    pub async fn put_user_limits(&self, limits: &UserLimits) -> Result<(), StoreError> {
        if limits.share == 1.0 && limits.quota.is_empty() {
            sqlx::query("DELETE FROM user_limits WHERE key_id = $1")
                .bind(&limits.user)
                .execute(self.pool())
                .await?;
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO user_limits \
             (key_id, share, max_queued_jobs, max_running_cpus, max_running_mem_mb) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key_id) DO UPDATE SET share = excluded.share, \
             max_queued_jobs = excluded.max_queued_jobs, \
             max_running_cpus = excluded.max_running_cpus, \
             max_running_mem_mb = excluded.max_running_mem_mb",
        )
        .bind(&limits.user)
        .bind(limits.share)
        .bind(column(limits.quota.max_queued_jobs))
        .bind(column(limits.quota.max_running_cpus))
        .bind(column(limits.quota.max_running_mem_mb))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// How many QUEUED jobs `owner` has (one index range: owner, state).
    pub async fn queued_count(&self, owner: &str) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE owner = $1 AND state = $2")
                .bind(owner)
                .bind("QUEUED")
                .fetch_one(self.pool())
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
