//! The store against SQLite (a file in a tempdir) and PostgreSQL (`RETZ_TEST_DATABASE_URL`,
//! one fresh schema per test). Without the variable the PostgreSQL half is skipped, unless
//! `CI=true`, where it fails.

mod store_support;

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use retz_proto::api::{Application, Grant, Job, JobState, Sandbox, User};
use retz_proto::mesos::TaskState;
use retz_scheduler::statem::{self, Launch, StatusInput, Transition};
use retz_scheduler::store::{Backend, Store, StoreError, now_string};
use store_support::{grant, postgres, sqlite};

/// Runs `check` against SQLite, then PostgreSQL when available.
macro_rules! both {
    ($name:ident, $check:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::sqlite().await;
                super::$check(db.store.clone()).await;
                db.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::postgres("the store tests").await {
                    super::$check(db.store.clone()).await;
                    db.finish().await;
                }
            }
        }
    };
}

fn job(app: &str, cmd: &str) -> Job {
    Job::new(app, cmd)
}

fn launch(j: &Job, grant: Grant) -> Job {
    statem::on_launch(
        j,
        Launch {
            agent_id: "agent".into(),
            sandbox: Some(Sandbox {
                agent: "http://127.0.0.1:1".into(),
                directory: Some("/s".into()),
            }),
            grant,
        },
    )
    .unwrap()
}

async fn users(store: Store) {
    let u = store.create_user("alice").await.unwrap();
    assert_eq!(u.key_id.len(), 32);
    assert_eq!(u.secret.len(), 32);
    assert!(u.key_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(u.key_id, u.secret);
    assert!(u.enabled);
    assert_eq!(store.get_user(&u.key_id).await.unwrap(), Some(u.clone()));
    assert_eq!(store.get_user("nobody").await.unwrap(), None);
    let v = store.create_user("bob").await.unwrap();
    let mut all = store.list_users().await.unwrap();
    all.sort_by(|a, b| a.info.cmp(&b.info));
    assert_eq!(all, vec![u.clone(), v]);
    let off = store
        .set_user_enabled(&u.key_id, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!off.enabled);
    assert!(!store.get_user(&u.key_id).await.unwrap().unwrap().enabled);
    assert!(
        store
            .set_user_enabled(&u.key_id, true)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert_eq!(store.set_user_enabled("nobody", true).await.unwrap(), None);
    let fixed = User {
        key_id: "admin".into(),
        secret: "s".into(),
        enabled: true,
        info: "admin".into(),
    };
    assert!(store.put_user(&fixed).await.unwrap());
    assert!(
        !store.put_user(&fixed).await.unwrap(),
        "second put is a no-op"
    );
}
both!(users_roundtrip, users);

async fn apps(store: Store) {
    let mut a = Application::new("app1", "alice");
    a.files = vec!["http://example/x.tgz".into()];
    assert!(store.put_app(&a).await.unwrap());
    assert_eq!(store.get_app("app1").await.unwrap(), Some(a.clone()));
    a.files.push("http://example/y.tgz".into());
    assert!(store.put_app(&a).await.unwrap(), "owner may overwrite");
    assert_eq!(store.get_app("app1").await.unwrap().unwrap().files.len(), 2);
    let stolen = Application::new("app1", "mallory");
    assert!(!store.put_app(&stolen).await.unwrap(), "others may not");
    assert_eq!(store.get_app("app1").await.unwrap().unwrap().owner, "alice");
    store
        .put_app(&Application::new("app0", "alice"))
        .await
        .unwrap();
    store
        .put_app(&Application::new("zzz", "bob"))
        .await
        .unwrap();
    let names: Vec<_> = store
        .list_apps("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.appid)
        .collect();
    assert_eq!(names, ["app0", "app1"]);
    assert!(store.delete_app("app1").await.unwrap());
    assert!(!store.delete_app("app1").await.unwrap());
    assert_eq!(store.get_app("app1").await.unwrap(), None);
}
both!(apps_roundtrip, apps);

async fn jobs(store: Store) {
    let mut j = job("app", "echo hi");
    j.state = JobState::Killed; // the store ignores client-set state
    j.result = 5;
    j.tags = BTreeSet::from(["a".to_owned()]);
    let a = store.insert_job("alice", j).await.unwrap();
    assert!(a.id > 0);
    assert_eq!(a.state, JobState::Queued);
    assert_eq!(a.result, -1);
    assert!(a.scheduled.is_some());
    let mut with_disk = job("app", "b");
    with_disk.resources.disk_mb = 64;
    let b = store.insert_job("alice", with_disk).await.unwrap();
    assert!(b.id > a.id);
    let (owner, got) = store.get_job(a.id).await.unwrap().unwrap();
    assert_eq!((owner.as_str(), &got), ("alice", &a));
    assert_eq!(store.get_job(999_999).await.unwrap(), None);

    // list: newest first, per owner, per state, per tag, with `more`.
    let c = store.insert_job("bob", job("app", "c")).await.unwrap();
    let (l, more) = store
        .list_jobs("alice", JobState::Queued, None, 10)
        .await
        .unwrap();
    assert_eq!(l.iter().map(|j| j.id).collect::<Vec<_>>(), [b.id, a.id]);
    assert!(!more);
    let (l, more) = store
        .list_jobs("alice", JobState::Queued, None, 1)
        .await
        .unwrap();
    assert_eq!((l.len(), more), (1, true));
    let (l, _) = store
        .list_jobs("alice", JobState::Queued, Some("a"), 10)
        .await
        .unwrap();
    assert_eq!(l.iter().map(|j| j.id).collect::<Vec<_>>(), [a.id]);
    let (l, _) = store
        .list_jobs("alice", JobState::Finished, None, 10)
        .await
        .unwrap();
    assert!(l.is_empty());
    let (l, _) = store
        .list_jobs("bob", JobState::Queued, None, 10)
        .await
        .unwrap();
    assert_eq!(l, vec![c.clone()]);

    // launch, task id lookup, compare-and-set.
    let started = launch(
        &b,
        Grant {
            gpu: 1,
            ports: vec![31000, 31001],
            ..grant(3, 32)
        },
    );
    assert!(store.update_job(&started, JobState::Queued).await.unwrap());
    assert!(
        !store.update_job(&started, JobState::Queued).await.unwrap(),
        "CAS on a stale state fails"
    );
    let tid = started.task_id.clone().unwrap();
    assert_eq!(
        store.job_by_task_id(&tid).await.unwrap(),
        Some(started.clone())
    );
    assert_eq!(store.job_by_task_id("retz-none").await.unwrap(), None);
    assert_eq!(store.active_jobs().await.unwrap(), vec![started.clone()]);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.get(JobState::Queued), 2);
    assert_eq!(counts.get(JobState::Starting), 1);
    assert_eq!(counts.running(), 1);
    assert_eq!(counts.cpus_used, 3);
    assert_eq!(
        counts.cpus_by_user,
        std::collections::BTreeMap::from([("alice".to_owned(), 3)])
    );
    assert_eq!(
        (
            counts.mem_mb_used,
            counts.gpus_used,
            counts.ports_used,
            counts.disk_mb_used
        ),
        (32, 1, 2, 64)
    );

    // Finish it through the state machine; it leaves active_jobs.
    let Transition::Changed(done) = statem::on_status(
        &started,
        &StatusInput::new(tid, TaskState::TaskFinished),
        &Default::default(),
        &now_string(),
    ) else {
        panic!("no transition")
    };
    assert!(store.update_job(&done, JobState::Starting).await.unwrap());
    assert!(store.active_jobs().await.unwrap().is_empty());
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.get(JobState::Finished), 1);
    assert_eq!(counts.cpus_used, 0);
    assert!(counts.cpus_by_user.is_empty(), "{counts:?}");
    assert_eq!(
        (counts.mem_mb_used, counts.gpus_used, counts.ports_used),
        (0, 0, 0)
    );

    // usage and gc.
    let hour = Duration::hours(1);
    let usage = store
        .finished_between(Utc::now() - hour, Utc::now() + hour)
        .await
        .unwrap();
    assert_eq!(usage.iter().map(|j| j.id).collect::<Vec<_>>(), [b.id]);
    assert!(
        store
            .finished_between(Utc::now() + hour, Utc::now() + hour + hour)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.gc(3600).await.unwrap(), 0, "too recent");
    let mut old = done.clone();
    old.finished = Some("2000-01-01T00:00:00.000+00:00".into());
    assert!(store.update_job(&old, JobState::Finished).await.unwrap());
    assert_eq!(store.gc(3600).await.unwrap(), 1);
    assert_eq!(store.get_job(b.id).await.unwrap(), None);
    // ids are never reused after gc.
    let d = store.insert_job("alice", job("app", "d")).await.unwrap();
    assert!(d.id > c.id);
}
both!(jobs_roundtrip, jobs);

/// A grant's GPU device ids survive the store; a grant stored before they existed (no
/// `gpuIds`) reads back without them.
async fn gpu_grants(store: Store) {
    let a = store.insert_job("alice", job("app", "gpu")).await.unwrap();
    let mut started = launch(&a, grant(2, 32));
    let g = started.granted.as_mut().unwrap();
    g.gpu = 2;
    g.gpu_ids = Some("1,3".into());
    assert!(store.update_job(&started, JobState::Queued).await.unwrap());
    let (_, got) = store.get_job(a.id).await.unwrap().unwrap();
    assert_eq!(got, started);
    assert_eq!(
        got.granted.as_ref().unwrap().gpu_ids.as_deref(),
        Some("1,3")
    );
    let text = serde_json::to_value(&got).unwrap();
    assert_eq!(text["granted"]["gpuIds"], "1,3");
    let mut old = text;
    old["granted"].as_object_mut().unwrap().remove("gpuIds");
    let old: Job = serde_json::from_value(old).unwrap();
    assert_eq!(old.granted.as_ref().unwrap().gpu_ids, None);
    assert_eq!(old.granted.as_ref().unwrap().gpu, 2);
}
both!(gpu_grant_roundtrip, gpu_grants);

async fn queue_order(store: Store) {
    let mut ids = Vec::new();
    for p in [5, -3, 0, -3, 19] {
        let mut j = job("app", "q");
        j.priority = p;
        ids.push(store.insert_job("alice", j).await.unwrap().id);
    }
    let order: Vec<(i32, u64)> = store.queued_keys().await.unwrap();
    assert_eq!(
        order,
        [
            (-3, ids[1]),
            (-3, ids[3]),
            (0, ids[2]),
            (5, ids[0]),
            (19, ids[4])
        ]
    );
    assert_eq!(store.running_count().await.unwrap(), 0);
    let mut started = store.get_job(ids[2]).await.unwrap().unwrap().1;
    started.state = JobState::Starting;
    started.task_id = Some("t-1".into());
    assert!(store.update_job(&started, JobState::Queued).await.unwrap());
    assert_eq!(store.running_count().await.unwrap(), 1);
    assert_eq!(
        store.queued_keys().await.unwrap(),
        [(-3, ids[1]), (-3, ids[3]), (5, ids[0]), (19, ids[4])]
    );
    // Any number of ids, unknown ones absent, any state.
    let mut wanted: Vec<u64> = (1_000_000..1_001_200).collect();
    wanted.extend(&ids);
    let mut got: Vec<(u64, JobState)> = store
        .jobs_by_ids(&wanted)
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.id, j.state))
        .collect();
    got.sort_unstable();
    let mut expected: Vec<(u64, JobState)> = ids
        .iter()
        .map(|&id| {
            let state = if id == ids[2] {
                JobState::Starting
            } else {
                JobState::Queued
            };
            (id, state)
        })
        .collect();
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(store.queue_position(ids[1]).await.unwrap(), Some(0));
    assert_eq!(store.queue_position(ids[0]).await.unwrap(), Some(2));
    assert_eq!(store.queue_position(ids[4]).await.unwrap(), Some(3));
    assert_eq!(store.queue_position(ids[2]).await.unwrap(), None);
    assert_eq!(store.queue_position(999_999).await.unwrap(), None);
}
both!(queue_is_priority_then_id, queue_order);

async fn framework(store: Store) {
    assert_eq!(store.framework_id().await.unwrap(), None);
    store.set_framework_id("fw-1").await.unwrap();
    store.set_framework_id("fw-2").await.unwrap();
    assert_eq!(store.framework_id().await.unwrap().as_deref(), Some("fw-2"));
}
both!(framework_id_roundtrip, framework);

async fn concurrent(store: Store) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(
                async move { s.insert_job("alice", job("app", &format!("job {i}"))).await },
            )
        })
        .collect();
    let mut ids = BTreeSet::new();
    for t in tasks {
        let j = t.await.unwrap().unwrap();
        assert!(ids.insert(j.id), "duplicate id {}", j.id);
        let (_, read) = store.get_job(j.id).await.unwrap().unwrap();
        assert_eq!(read, j);
    }
    assert_eq!(ids.len(), 64);
    let (all, more) = store
        .list_jobs("alice", JobState::Queued, None, 100)
        .await
        .unwrap();
    assert_eq!((all.len(), more), (64, false));
}
both!(concurrent_inserts_get_distinct_ids, concurrent);

/// The `idempotency_key` column (migration 0003): one job per owner and key, however
/// many inserts race; the key finds it; another owner's key is another job.
async fn idempotency(store: Store) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.insert_job_keyed("alice", job("app", &format!("try {i}")), Some("k-1"))
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(j) => created.push(j),
            Err(e) => assert!(matches!(e, StoreError::Insert(_)), "{e}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    let found = store.job_by_idempotency_key("alice", "k-1").await.unwrap();
    assert_eq!(found.as_ref(), Some(&created[0]));
    assert_eq!(
        store.job_by_idempotency_key("alice", "k-2").await.unwrap(),
        None
    );
    assert_eq!(
        store.job_by_idempotency_key("bob", "k-1").await.unwrap(),
        None
    );
    let bobs = store
        .insert_job_keyed("bob", job("app", "x"), Some("k-1"))
        .await
        .unwrap();
    assert_ne!(bobs.id, created[0].id);
    // Without a key, inserts never collide.
    store.insert_job("alice", job("app", "y")).await.unwrap();
    store.insert_job("alice", job("app", "y")).await.unwrap();
    let (all, _) = store
        .list_jobs("alice", JobState::Queued, None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
}
both!(idempotency_keys_are_unique_per_owner, idempotency);

/// Imported jobs keep their original id when free, get a new one otherwise, are found
/// by their import key, and later ids go above the kept ones (PostgreSQL's sequence too).
async fn imports(store: Store) {
    let native = store.insert_job("k", job("a", "native")).await.unwrap();
    let mut old = job("a", "old");
    old.id = 500;
    old.state = JobState::Finished;
    old.result = 0;
    old.finished = Some(now_string());
    assert!(!store.imported_job_exists("k", 500).await.unwrap());
    assert_eq!(store.import_job("k", &old).await.unwrap(), 500);
    assert!(store.imported_job_exists("k", 500).await.unwrap());
    assert!(!store.imported_job_exists("other", 500).await.unwrap());
    let (owner, stored) = store.get_job(500).await.unwrap().unwrap();
    assert_eq!(
        (owner.as_str(), stored.state, stored.result),
        ("k", JobState::Finished, 0)
    );
    // Taken ids (and 0) are renumbered.
    let mut clash = job("a", "clash");
    clash.id = native.id;
    clash.state = JobState::Queued;
    let renumbered = store.import_job("k", &clash).await.unwrap();
    assert!(renumbered > 500, "{renumbered}");
    assert!(store.imported_job_exists("k", native.id).await.unwrap());
    let next = store.insert_job("k", job("a", "later")).await.unwrap();
    assert!(next.id > renumbered, "{} after {renumbered}", next.id);
    let queue = store.queue_head(10).await.unwrap();
    assert!(queue.iter().any(|(_, j)| j.id == renumbered));
}

both!(imported_jobs_keep_free_ids, imports);

async fn updates(store: Store) {
    let j = store.insert_job("alice", job("app", "x")).await.unwrap();
    let mut broken = j.clone();
    broken.cmd = "y".into();
    assert!(store.update_job(&broken, JobState::Queued).await.unwrap());
    assert_eq!(store.get_job(j.id).await.unwrap().unwrap().1.cmd, "y");
}
both!(updates_are_read_back, updates);

#[tokio::test]
async fn unreadable_rows_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let j = store.insert_job("alice", job("app", "x")).await.unwrap();
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE jobs SET json = '{not json' WHERE id = $1")
        .bind(j.id as i64)
        .execute(&raw)
        .await
        .unwrap();
    let e = store.get_job(j.id).await.unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { what: "job", .. }), "{e}");
    assert!(e.to_string().contains(&j.id.to_string()), "{e}");
}

#[tokio::test]
async fn sqlite_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sub.db", dir.path().display());
    let id = {
        let store = Store::open(&url).await.unwrap();
        let u = store.create_user("x").await.unwrap();
        store
            .put_app(&Application::new("app", &u.key_id))
            .await
            .unwrap();
        store.set_framework_id("fw").await.unwrap();
        let id = store
            .insert_job(&u.key_id, job("app", "x"))
            .await
            .unwrap()
            .id;
        store.close().await;
        id
    };
    let store = Store::open(&url).await.unwrap();
    let (owner, j) = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.cmd, "x");
    assert_eq!(store.get_user(&owner).await.unwrap().unwrap().info, "x");
    assert!(store.get_app("app").await.unwrap().is_some());
    assert_eq!(store.framework_id().await.unwrap().as_deref(), Some("fw"));
    let next = store.insert_job(&owner, job("app", "y")).await.unwrap();
    assert!(next.id > id);
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/w.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.insert_job("alice", job("app", "x")).await.unwrap();
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(dir.path().join("w.db-wal").exists());
}

#[tokio::test]
async fn bad_urls_are_refused_clearly() {
    for url in ["mysql://x/y", "", "/tmp/x.db"] {
        let e = Store::open(url).await.unwrap_err();
        assert!(matches!(e, StoreError::BadUrl { .. }), "{url}: {e}");
        assert!(e.to_string().contains("sqlite://PATH"), "{e}");
    }
    let e = Store::open("sqlite:///nonexistent-dir/sub/x.db")
        .await
        .unwrap_err();
    // Refused before SQLite opens it (the file is created 0600 first), naming the file.
    assert!(matches!(e, StoreError::Files(_)), "{e}");
    assert!(e.to_string().contains("/nonexistent-dir/sub/x.db"), "{e}");
}

/// Shares and quota overrides: absent until set, replaced whole, gone at the defaults;
/// the queued count is per user and state.
async fn user_limits(store: Store) {
    use retz_proto::api::{Quota, UserLimits};
    let none = store.user_limits("alice").await.unwrap();
    assert_eq!(none, UserLimits::new("alice"));
    let mut alice = UserLimits::new("alice");
    alice.share = 2.5;
    alice.quota = Quota {
        max_queued_jobs: Some(1000),
        max_running_cpus: Some(0),
        max_running_mem_mb: None,
    };
    store.put_user_limits(&alice).await.unwrap();
    let mut bob = UserLimits::new("bob");
    bob.quota.max_running_mem_mb = Some(u64::MAX);
    store.put_user_limits(&bob).await.unwrap();
    assert_eq!(store.user_limits("alice").await.unwrap(), alice);
    let got = store.user_limits("bob").await.unwrap();
    assert_eq!(
        got.quota.max_running_mem_mb,
        Some(i64::MAX as u64),
        "saturated"
    );
    alice.quota.max_queued_jobs = None;
    store.put_user_limits(&alice).await.unwrap();
    assert_eq!(store.user_limits("alice").await.unwrap(), alice);
    let all = store.list_user_limits().await.unwrap();
    let users: Vec<&str> = all.iter().map(|l| l.user.as_str()).collect();
    assert_eq!(users, ["alice", "bob"]);
    // Back to share 1 without overrides: nothing stored.
    store
        .put_user_limits(&UserLimits::new("bob"))
        .await
        .unwrap();
    assert_eq!(store.list_user_limits().await.unwrap().len(), 1);

    store
        .put_app(&Application::new("qa", "alice"))
        .await
        .unwrap();
    for _ in 0..3 {
        store.insert_job("alice", job("qa", "true")).await.unwrap();
    }
    assert_eq!(store.queued_count("alice").await.unwrap(), 3);
    assert_eq!(store.queued_count("bob").await.unwrap(), 0);
}
both!(user_limits_are_stored, user_limits);
