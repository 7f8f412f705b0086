//! The job history query ([`Store::history_page`]) against SQLite (a file in a tempdir)
//! and PostgreSQL (`RETZ_TEST_DATABASE_URL`, one fresh schema per test). Without the
//! variable the PostgreSQL half is skipped, unless `CI=true`, where it fails.

use chrono::{DateTime, Duration, Utc};
use retz_placement::PlacementFeatures;
use retz_proto::api::{Grant, Job, JobState, TIME_FORMAT};
use retz_scheduler::store::{Backend, HistoryFilter, Store};

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/retz.db", dir.path().display());
    (Store::open(&url).await.unwrap(), dir)
}

/// A store in a fresh schema of the test server, and the schema (to drop).
async fn postgres() -> Option<(Store, String, String)> {
    let Ok(url) = std::env::var("RETZ_TEST_DATABASE_URL") else {
        retz_testkit::require(
            false,
            "the PostgreSQL half of the history tests: RETZ_TEST_DATABASE_URL is not set",
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
    Some((store, url, schema))
}

fn at(t: DateTime<Utc>) -> String {
    t.format(TIME_FORMAT).to_string()
}

/// Stores a job of `owner` for `app` that started at `start` and ended at `end` in
/// `state` (never started when `start` is `None`), with `features`.
async fn ended(
    store: &Store,
    owner: &str,
    app: &str,
    start: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    state: JobState,
    features: Option<PlacementFeatures>,
) -> u64 {
    let mut job = store
        .insert_job(owner, Job::new(app, "true"))
        .await
        .unwrap();
    job.state = state;
    job.started = start.map(at);
    job.finished = Some(at(end));
    job.granted = start.map(|_| Grant {
        cpu: 2,
        mem_mb: 64,
        gpu: 0,
        cpuset: Some("0-1".into()),
        numa_nodes: Some("0".into()),
        pinned: true,
        ports: Vec::new(),
        user: None,
        features,
        gpu_ids: None,
    });
    assert!(store.update_job(&job, JobState::Queued).await.unwrap());
    job.id
}

/// Every job of the history under `filter`, read `limit` rows a page.
async fn all(store: &Store, filter: &HistoryFilter, limit: usize) -> (Vec<Job>, usize) {
    let (mut jobs, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let page = store.history_page(filter, after, limit).await.unwrap();
        pages += 1;
        jobs.extend(page.jobs.into_iter().map(|(_, j)| j));
        match page.next {
            Some(c) => after = Some(c),
            None => return (jobs, pages),
        }
    }
}

async fn history(store: Store) {
    let t0 = Utc::now() - Duration::hours(3);
    let f = PlacementFeatures {
        nodes_spanned: 1,
        l3_spanned: 2,
        smt_shared: false,
        remote_mem_share: 0.0,
        co_runners: 3,
    };
    let m = |min: i64| t0 + Duration::minutes(min);
    // Stored out of end order; two end at the same millisecond.
    let c = ended(
        &store,
        "k1",
        "etl",
        Some(m(0)),
        m(30),
        JobState::Finished,
        Some(f),
    )
    .await;
    let a = ended(
        &store,
        "k1",
        "etl",
        Some(m(0)),
        m(10),
        JobState::Finished,
        Some(f),
    )
    .await;
    let b = ended(
        &store,
        "k2",
        "web",
        Some(m(5)),
        m(20),
        JobState::Killed,
        None,
    )
    .await;
    let b2 = ended(
        &store,
        "k2",
        "etl",
        Some(m(6)),
        m(20),
        JobState::Finished,
        None,
    )
    .await;
    // Killed while queued: ended, never started, not history.
    ended(&store, "k1", "etl", None, m(15), JobState::Killed, None).await;
    // Still queued.
    store
        .insert_job("k1", Job::new("etl", "true"))
        .await
        .unwrap();

    for limit in [1, 2, 3, 100] {
        let (jobs, pages) = all(&store, &HistoryFilter::default(), limit).await;
        let ids: Vec<u64> = jobs.iter().map(|j| j.id).collect();
        assert_eq!(ids, [a, b, b2, c], "by end time then id, limit {limit}");
        assert!(
            pages >= 5usize.div_ceil(limit),
            "limit {limit}: {pages} pages"
        );
    }
    let page = store
        .history_page(&HistoryFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(page.next, None);
    assert_eq!(page.jobs[0].0, "k1", "with the owner");
    assert_eq!(
        page.jobs[0].1.granted.as_ref().unwrap().features,
        Some(f),
        "features round-trip through the store"
    );

    let since = |t: DateTime<Utc>| HistoryFilter {
        since: Some(t),
        app: None,
    };
    let ids = |jobs: Vec<Job>| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(ids(all(&store, &since(m(20)), 1).await.0), [b, b2, c]);
    assert_eq!(ids(all(&store, &since(m(21)), 2).await.0), [c]);
    assert!(all(&store, &since(m(31)), 2).await.0.is_empty());
    let etl = HistoryFilter {
        since: Some(m(11)),
        app: Some("etl".into()),
    };
    assert_eq!(ids(all(&store, &etl, 1).await.0), [b2, c]);
    let none = HistoryFilter {
        since: None,
        app: Some("nothing".into()),
    };
    assert!(all(&store, &none, 10).await.0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_sqlite() {
    let (store, _dir) = sqlite().await;
    history(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_postgres() {
    let Some((store, url, schema)) = postgres().await else {
        return;
    };
    history(store.clone()).await;
    store.close().await;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}

/// A job stored before grants had features still reads, with none.
#[tokio::test]
async fn grants_stored_before_features_load() {
    let (store, _dir) = sqlite().await;
    let t = Utc::now();
    let id = ended(&store, "k", "a", Some(t), t, JobState::Finished, None).await;
    let (_, job) = store.get_job(id).await.unwrap().unwrap();
    let mut old = serde_json::to_value(&job).unwrap();
    assert!(old["granted"].get("features").is_none(), "{old}");
    old["granted"] = serde_json::json!({"cpu": 1, "memMB": 32});
    let old: Job = serde_json::from_value(old).unwrap();
    assert!(store.update_job(&old, JobState::Finished).await.unwrap());
    let page = store
        .history_page(&HistoryFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].1.granted.as_ref().unwrap().features, None);
    store.close().await;
}
