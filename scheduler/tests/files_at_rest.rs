//! Files at rest hold secrets (users' keys, the admin's client.toml, the embedded
//! cluster's credentials): the data dir is 0700 and every store file 0600 — on a first
//! start, and again after a restart that finds them loosened (by an operator, a restore,
//! an older version).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use retz_scheduler::config::ServerConfig;
use retz_scheduler::server::Server;
use retz_scheduler::store::{Store, sqlite_files};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The database, -wal, -shm and -journal files that exist now, with their modes.
fn existing(db: &Path) -> Vec<(String, u32)> {
    sqlite_files(db)
        .iter()
        .filter(|f| f.exists())
        .map(|f| (f.display().to_string(), mode(f)))
        .collect()
}

#[tokio::test]
async fn sqlite_files_are_0600_when_created_and_after_being_loosened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("retz.db");
    let url = format!("sqlite://{}", db.display());
    let first = Store::open(&url).await.unwrap();
    first.create_user("someone").await.unwrap();
    let files = existing(&db);
    let names: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    assert!(
        names.iter().any(|f| f.ends_with("-wal")) && names.iter().any(|f| f.ends_with("-shm")),
        "WAL mode keeps -wal and -shm while open: {files:?}"
    );
    assert!(files.iter().all(|(_, m)| *m == 0o600), "{files:?}");

    // Loosened while a store has them open (as after a restore or by hand): the next
    // open makes them private again, -wal and -shm included.
    for f in sqlite_files(&db).iter().filter(|f| f.exists()) {
        chmod(f, 0o644);
    }
    let second = Store::open(&url).await.unwrap();
    let files = existing(&db);
    assert!(files.iter().all(|(_, m)| *m == 0o600), "{files:?}");
    second.close().await;
    first.close().await;

    // A restart after a clean stop, with the database loosened.
    chmod(&db, 0o666);
    let third = Store::open(&url).await.unwrap();
    third.create_user("another").await.unwrap();
    let files = existing(&db);
    assert!(files.iter().all(|(_, m)| *m == 0o600), "{files:?}");
    third.close().await;

    // In-memory databases have no files to guard.
    Store::open("sqlite::memory:").await.unwrap().close().await;
}

fn config(data: &Path) -> ServerConfig {
    let mut cfg = ServerConfig::default();
    cfg.server.bind = "127.0.0.1:0".parse().unwrap();
    cfg.server.data_dir = Some(data.to_owned());
    // Nothing listens there: the scheduler client just keeps trying.
    cfg.mesos.masters = vec!["127.0.0.1:1".into()];
    cfg
}

#[tokio::test]
async fn the_data_dir_is_0700_and_its_secrets_0600_at_every_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(config(&data)).await.unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("client.toml")), 0o600);
    let db = data.join("retz.db");
    let files = existing(&db);
    assert!(files.len() >= 2, "{files:?}");
    assert!(files.iter().all(|(_, m)| *m == 0o600), "{files:?}");
    server.stop().await;

    // Loosened between runs.
    chmod(&data, 0o755);
    for f in sqlite_files(&db).iter().filter(|f| f.exists()) {
        chmod(f, 0o644);
    }
    chmod(&data.join("client.toml"), 0o644);
    let server = Server::start(config(&data)).await.unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("client.toml")), 0o600);
    let files = existing(&db);
    assert!(files.iter().all(|(_, m)| *m == 0o600), "{files:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_unreadable_or_empty_secret_file_stops_the_server_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("data"));
    cfg.mesos.secret_file = Some(dir.path().join("missing-secret"));
    let e = Server::start(cfg.clone()).await.err().unwrap().to_string();
    assert!(
        e.starts_with("config: mesos.secret_file: cannot read") && e.contains("missing-secret"),
        "{e}"
    );
    let empty = dir.path().join("empty-secret");
    std::fs::write(&empty, "\n").unwrap();
    cfg.mesos.secret_file = Some(empty);
    let e = Server::start(cfg).await.err().unwrap().to_string();
    assert!(e.contains("is empty"), "{e}");
}
