//! Shared by the store tests (`store`, `store_history`) and the HTTP tests that seed a
//! store directly: a store over SQLite in a tempdir or in a fresh schema of the test
//! PostgreSQL (`RETZ_TEST_DATABASE_URL`; without it the PostgreSQL half is skipped,
//! unless `CI=true`, where it fails), grants, and jobs stored as having run and ended.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use retz_proto::api::{Grant, Job, JobState, TIME_FORMAT};
use retz_scheduler::store::{Backend, Store};

/// A store for one test, and what to clean up after it.
pub struct TestDb {
    /// The store.
    pub store: Store,
    /// SQLite: the directory of its file.
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the server URL and the test's schema, dropped by [`TestDb::finish`].
    pg: Option<(String, String)>,
}

impl TestDb {
    /// Closes the store and drops the PostgreSQL schema, if any.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some((url, schema)) = self.pg {
            let admin = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

/// A store in a fresh SQLite file in a tempdir.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/retz.db", dir.path().display());
    TestDb {
        store: Store::open(&url).await.unwrap(),
        _dir: Some(dir),
        pg: None,
    }
}

/// A store in a fresh schema of the test PostgreSQL; `None` when
/// `RETZ_TEST_DATABASE_URL` is not set (after a "skipping" line naming `what`; under
/// `CI=true` a failure).
pub async fn postgres(what: &str) -> Option<TestDb> {
    let Ok(url) = std::env::var("RETZ_TEST_DATABASE_URL") else {
        retz_testkit::require(
            false,
            &format!("the PostgreSQL half of {what}: RETZ_TEST_DATABASE_URL is not set"),
        );
        return None;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = Store::open(&format!("{url}{sep}options[search_path]={schema}"))
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    Some(TestDb {
        store,
        _dir: None,
        pg: Some((url, schema)),
    })
}

/// `t` as the API writes times ([`TIME_FORMAT`]).
pub fn at(t: DateTime<Utc>) -> String {
    t.format(TIME_FORMAT).to_string()
}

/// A grant of `cpu` CPUs and `mem_mb` MB, unpinned, with nothing else.
pub fn grant(cpu: u32, mem_mb: u64) -> Grant {
    Grant {
        cpu,
        mem_mb,
        gpu: 0,
        gpu_ids: None,
        cpuset: None,
        numa_nodes: None,
        pinned: false,
        ports: Vec::new(),
        user: None,
        features: None,
    }
}

/// Stores a job of `owner` for `app` (command `true`) that started at `start` with
/// `granted` and ended at `end` in `state` (never started, and no grant, when `start` is
/// `None`); `edit` changes the record before it is saved. Returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn store_ended(
    store: &Store,
    owner: &str,
    app: &str,
    start: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    state: JobState,
    granted: Grant,
    edit: impl FnOnce(&mut Job),
) -> u64 {
    let mut job = store
        .insert_job(owner, Job::new(app, "true"))
        .await
        .unwrap();
    job.state = state;
    job.started = start.map(at);
    job.finished = Some(at(end));
    job.granted = start.map(|_| granted);
    edit(&mut job);
    assert!(store.update_job(&job, JobState::Queued).await.unwrap());
    job.id
}
