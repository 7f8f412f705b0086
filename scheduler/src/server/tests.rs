//! Unit tests of the server assembly (`server.rs`).

use super::*;
use retz_proto::mesos::framework_info::capability::Type;

fn capabilities(cfg: &ServerConfig) -> Vec<Type> {
    framework_info(cfg, None, &LaunchUsers::default(), None)
        .capabilities
        .iter()
        .filter_map(|c| c.r#type.and_then(|t| Type::try_from(t).ok()))
        .collect()
}

#[test]
fn gpu_offers_are_asked_for_only_when_the_config_enables_gpus() {
    let mut cfg = ServerConfig::default();
    let off = capabilities(&cfg);
    assert!(off.contains(&Type::PartitionAware), "{off:?}");
    assert!(!off.contains(&Type::GpuResources), "{off:?}");
    cfg.mesos.gpus = true;
    let on = capabilities(&cfg);
    assert!(on.contains(&Type::GpuResources), "{on:?}");
    assert_eq!(on.len(), off.len() + 1, "{on:?}");
    let info = framework_info(&cfg, Some("fw-7".into()), &LaunchUsers::default(), None);
    assert_eq!(info.id.map(|i| i.value).as_deref(), Some("fw-7"));
    assert_eq!(info.user, "nobody");
    assert_eq!(info.principal.as_deref(), Some("retz"));
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_framework_runs_as_the_default_job_user_with_the_credentials_principal() {
    let cfg = ServerConfig::default();
    let users = LaunchUsers {
        default_user: "batch".into(),
        ..LaunchUsers::default()
    };
    let c = Credential::new("local-p", "s").unwrap();
    let info = framework_info(&cfg, None, &users, Some(&c));
    assert_eq!(info.user, "batch");
    assert_eq!(info.principal.as_deref(), Some("local-p"));
}

#[test]
fn local_credentials_are_generated_once_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOCAL_CREDENTIALS_FILE);
    let a = local_credential(Some(dir.path()), "retz").unwrap();
    assert_eq!(a.principal, "retz");
    assert!(a.secret.len() >= 32, "at least 128 bits of hex");
    assert_eq!(mode(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        Credentials::parse(&text).unwrap().entries(),
        std::slice::from_ref(&a)
    );
    // Restart: the same credential, the file made private again.
    set_mode(&path, 0o644).unwrap();
    let b = local_credential(Some(dir.path()), "retz").unwrap();
    assert_eq!(a, b);
    assert_eq!(mode(&path), 0o600);
    // No data dir: fresh ones in memory, different each time.
    let m1 = local_credential(None, "retz").unwrap();
    let m2 = local_credential(None, "retz").unwrap();
    assert_ne!(m1.secret, m2.secret);
    assert_ne!(m1.secret, a.secret);
    std::fs::write(&path, "garbage").unwrap();
    let e = local_credential(Some(dir.path()), "retz")
        .unwrap_err()
        .to_string();
    assert!(e.contains(LOCAL_CREDENTIALS_FILE), "{e}");
}

#[test]
fn the_secret_file_is_a_secret_or_a_credentials_file_holding_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, "s3cret\n").unwrap();
    set_mode(&f, 0o600).unwrap();
    assert_eq!(
        framework_credential(&f, "retz").unwrap(),
        Credential::new("retz", "s3cret").unwrap()
    );
    std::fs::write(&f, "ops x\nretz s3cret\n").unwrap();
    assert_eq!(framework_credential(&f, "retz").unwrap().secret, "s3cret");
    std::fs::write(&f, r#"{"credentials":[{"principal":"retz","secret":"j"}]}"#).unwrap();
    assert_eq!(framework_credential(&f, "retz").unwrap().secret, "j");
    let e = framework_credential(&f, "other").unwrap_err().to_string();
    assert!(
        e.starts_with("config: mesos.secret_file:") && e.contains("\"other\""),
        "{e}"
    );
    std::fs::write(&f, "  \n").unwrap();
    let e = framework_credential(&f, "retz").unwrap_err().to_string();
    assert!(e.contains("is empty"), "{e}");
    let e = framework_credential(&dir.path().join("missing"), "retz")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config: mesos.secret_file: cannot read"),
        "{e}"
    );
}

#[test]
fn the_data_dir_is_private_and_its_parents_are_not() {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755).unwrap();
    let data = dir.path().join("a/b/data");
    private_dir(&data).unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_ne!(
        mode(&dir.path().join("a/b")) & 0o001,
        0,
        "parents stay traversable"
    );
    set_mode(&data, 0o755).unwrap();
    private_dir(&data).unwrap();
    assert_eq!(mode(&data), 0o700, "chmod'ed at every start");
}

#[test]
fn the_work_dir_must_be_reachable_by_job_users() {
    let dir = tempfile::tempdir().unwrap();
    // A private dir: a work dir below it is out of reach of other users.
    set_mode(dir.path(), 0o700).unwrap();
    let work = dir.path().join("x/data-work");
    let e = work_dir_for_jobs(&work, true).unwrap_err().to_string();
    assert!(
        e.starts_with("config: local.work_dir:")
            && e.contains(&format!("chmod o+x {}", dir.path().display())),
        "{e}"
    );
    assert_eq!(mode(&work), 0o755, "created traversable");
    assert_eq!(mode(&dir.path().join("x")), 0o755);
    // Not checked for a server that is not root (its jobs run as itself).
    work_dir_for_jobs(&work, false).unwrap();
    set_mode(dir.path(), 0o711).unwrap();
    work_dir_for_jobs(&work, true).unwrap();
    // Inside a private data dir: refused, naming the data dir.
    let data = dir.path().join("data");
    private_dir(&data).unwrap();
    let e = work_dir_for_jobs(&data.join("local"), true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{} has mode 0700", data.display())),
        "{e}"
    );
}

async fn sqlite_store(dir: &Path) -> Store {
    Store::open(&format!("sqlite://{}/retz.db", dir.display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_configured_admin_user_is_created_once_and_its_secret_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let mut cfg = ServerConfig::from_properties(
        "retz.access.key = deadbeef\nretz.access.secret = cafebabe\n",
    )
    .unwrap();
    assert!(
        site::configured_admin(&store, &ServerConfig::default())
            .await
            .unwrap()
            .is_none()
    );
    let made = site::configured_admin(&store, &cfg).await.unwrap().unwrap();
    assert_eq!(
        (made.key_id.as_str(), made.secret.as_str()),
        ("deadbeef", "cafebabe")
    );
    let stored = store.get_user("deadbeef").await.unwrap().unwrap();
    assert_eq!(stored.secret, "cafebabe");
    assert!(stored.enabled);
    // A second start finds it.
    let again = site::configured_admin(&store, &cfg).await.unwrap().unwrap();
    assert_eq!(again.secret, "cafebabe");
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    // Another secret for the same key stops the start with one line naming the key.
    cfg.server.admin_secret = Some("other".into());
    let e = site::configured_admin(&store, &cfg)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("retz.access.secret") && e.contains("deadbeef"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    // Without authentication no secret is needed: a random one is made.
    let mut open =
        ServerConfig::from_properties("retz.authentication = false\nretz.access.key = feedface\n")
            .unwrap();
    open.validate().unwrap();
    let u = site::configured_admin(&store, &open)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.secret.len(), 32);
    open.server.admin_secret = None;
    assert!(site::configured_admin(&store, &open).await.is_ok());
}

#[tokio::test]
async fn a_host_name_bind_resolves_at_start() {
    let cfg = ServerConfig::from_properties("retz.bind = http://localhost:9094\n").unwrap();
    let addr = site::bind_addr(&cfg).await.unwrap();
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_eq!(addr.port(), 9094);
    let plain = ServerConfig::default();
    assert_eq!(site::bind_addr(&plain).await.unwrap(), plain.server.bind);
    let bad =
        ServerConfig::from_properties("retz.bind = http://no-such-host.invalid:9090\n").unwrap();
    let e = site::bind_addr(&bad).await.unwrap_err().to_string();
    assert!(
        e.contains("retz.bind") && e.contains("no-such-host.invalid"),
        "{e}"
    );
}

#[tokio::test]
async fn the_periodic_gc_deletes_jobs_that_ended_before_the_leeway() {
    use retz_proto::api::{Job, JobState};
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let mut old = store.insert_job("k", Job::new("a", "true")).await.unwrap();
    old.state = JobState::Finished;
    old.finished = Some("2001-01-01T00:00:00.000+00:00".into());
    assert!(store.update_job(&old, JobState::Queued).await.unwrap());
    let mut recent = store.insert_job("k", Job::new("a", "true")).await.unwrap();
    recent.state = JobState::Killed;
    recent.finished = Some(crate::store::now_string());
    assert!(store.update_job(&recent, JobState::Queued).await.unwrap());
    let queued = store.insert_job("k", Job::new("a", "true")).await.unwrap();
    assert!(site::spawn_gc(&store, &crate::config::GcSection::default()).is_none());
    let gc = crate::config::GcSection {
        enabled: true,
        leeway_s: 3600,
        interval_s: 1,
    };
    let task = site::spawn_gc(&store, &gc).unwrap();
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if store.get_job(old.id).await.unwrap().is_none() {
            gone = true;
            break;
        }
    }
    task.abort();
    assert!(gone, "the old finished job is still there");
    assert!(store.get_job(recent.id).await.unwrap().is_some());
    assert!(store.get_job(queued.id).await.unwrap().is_some());
}
