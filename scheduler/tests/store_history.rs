//! The job history query ([`Store::history_page`]) against SQLite (a file in a tempdir)
//! and PostgreSQL (`RETZ_TEST_DATABASE_URL`, one fresh schema per test). Without the
//! variable the PostgreSQL half is skipped, unless `CI=true`, where it fails.

mod store_support;

use chrono::{DateTime, Duration, Utc};
use retz_placement::PlacementFeatures;
use retz_proto::api::{Grant, Job, JobState};
use retz_scheduler::store::{HistoryFilter, Store};
use store_support::{grant, postgres, sqlite, store_ended};

/// Stores a job of `owner` for `app` that started at `start` and ended at `end` in
/// `state` (never started when `start` is `None`), pinned to CPUs 0-1 with `features`.
async fn ended(
    store: &Store,
    owner: &str,
    app: &str,
    start: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    state: JobState,
    features: Option<PlacementFeatures>,
) -> u64 {
    let granted = Grant {
        cpuset: Some("0-1".into()),
        numa_nodes: Some("0".into()),
        pinned: true,
        features,
        ..grant(2, 64)
    };
    store_ended(store, owner, app, start, end, state, granted, |_| {}).await
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
    let db = sqlite().await;
    history(db.store.clone()).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_postgres() {
    let Some(db) = postgres("the history tests").await else {
        return;
    };
    history(db.store.clone()).await;
    db.finish().await;
}

/// A job stored before grants had features still reads, with none.
#[tokio::test]
async fn grants_stored_before_features_load() {
    let db = sqlite().await;
    let store = db.store.clone();
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
