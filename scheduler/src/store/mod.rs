//! The durable store of users, applications, jobs and server properties (the framework
//! id), on SQLite (default, one file) or PostgreSQL (by URL), through sqlx.
//!
//! One code path for both databases: the store talks to an `sqlx::Any` pool, and every
//! statement is written in the SQL both accept (`$n` parameters, `RETURNING`,
//! `ON CONFLICT ... DO UPDATE`). Only the DDL differs (AUTOINCREMENT vs IDENTITY), so
//! there is one migration set per database, chosen by the URL's scheme.
//!
//! Invariants:
//! - the `json` column of a job or application is authoritative, except for a job's id,
//!   which is the `id` column's (a new row's json carries id 0; reads set the id from the
//!   column); the other columns are copies kept in the same statement, for indexes and
//!   filters;
//! - job ids come from the database (AUTOINCREMENT / IDENTITY), never `max + 1`, and are
//!   never reused;
//! - accepted means committed: [`Store::insert_job`] returns only after the transaction
//!   holding the job committed (SQLite runs in WAL mode with `synchronous=FULL`, so a
//!   commit survives `kill -9` and power loss). Concurrent inserts are group-committed by
//!   one writer task: one transaction, one fsync, for every insert waiting at that moment;
//! - users and applications are read through a [`cache::ReadCache`] that every write
//!   through the store invalidates, so one server must own its database (as one Mesos
//!   framework does anyway);
//! - job updates are compare-and-set on the state ([`Store::update_job`]), so the planner
//!   and the HTTP API never overwrite each other's transition;
//! - an SQLite store's files (the database, `-wal`, `-shm`, `-journal`) are mode 0600:
//!   the database file is created 0600 before SQLite opens it (SQLite gives the files it
//!   creates next to it the database file's mode), and existing ones are made 0600 at
//!   every open, before and after migrations. They hold users' secrets.

mod apps;
mod cache;
mod history;
mod import;
mod jobs;
mod properties;
mod quotas;
mod users;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use tokio::sync::mpsc;

pub use history::{HistoryCursor, HistoryFilter, HistoryPage};
pub use jobs::{JobCounts, now_string, time_ms};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one the store supports.
    #[error(
        "unsupported database URL {url:?}: use sqlite://PATH (created if missing) or postgres://USER:PASSWORD@HOST:PORT/DB"
    )]
    BadUrl {
        /// The URL, with any password removed.
        url: String,
    },
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not decode (written by another program, or damaged).
    #[error("stored {what} {key} is unreadable: {detail}")]
    Corrupt {
        /// `job`, `application`, ...
        what: &'static str,
        /// Its key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The group-commit writer failed a batch or has stopped.
    #[error("job insert failed: {0}")]
    Insert(String),
    /// The store's files cannot be created or made private (0600).
    #[error("store files: {0}")]
    Files(String),
}

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The store: cheap to clone, shareable across tasks.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    inserts: mpsc::Sender<writer::InsertRequest>,
    users: cache::ReadCache<retz_proto::api::User>,
    apps: cache::ReadCache<retz_proto::api::Application>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

/// `url` with the password (between `:` and `@` of the authority) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            // set_password cannot fail on a URL that already has one.
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

fn backend_of(url: &str) -> Result<Backend, StoreError> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        _ => Err(StoreError::BadUrl {
            url: redact_url(url),
        }),
    }
}

/// `sqlite://PATH` with `mode=rwc` added (create the file if missing) unless the URL names
/// a mode.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// The database file of an SQLite URL (`sqlite://PATH`, `sqlite:PATH`, with or without
/// `?options`); `None` for in-memory databases.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|o| o == "mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// The files SQLite keeps for the database `db`: itself, `-wal`, `-shm`, `-journal`.
pub fn sqlite_files(db: &std::path::Path) -> [std::path::PathBuf; 4] {
    let with = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    [db.to_owned(), with("-wal"), with("-shm"), with("-journal")]
}

/// Creates `db` 0600 if missing and makes every existing SQLite file of it 0600.
fn private_sqlite_files(db: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |what: String, e: std::io::Error| StoreError::Files(format!("{what}: {e}"));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(failed(format!("cannot create {}", db.display()), e));
        }
        _ => {}
    }
    for file in sqlite_files(db) {
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o777 != 0o600 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| failed(format!("cannot chmod 0600 {}", file.display()), e))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(format!("cannot stat {}", file.display()), e)),
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store at `url` (`sqlite://PATH` or
    /// `postgres://...`) and brings its schema up to date. Must be called inside a tokio
    /// runtime (it starts the group-commit writer task). SQLite files are kept 0600.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let db_file = match backend {
            Backend::Sqlite => sqlite_file(url),
            Backend::Postgres => None,
        };
        if let Some(db) = &db_file {
            private_sqlite_files(db)?;
        }
        let (url, max_conns) = match backend {
            Backend::Sqlite => (sqlite_url(url), 8),
            Backend::Postgres => (url.to_owned(), 16),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(|e| match e {
            sqlx::Error::Configuration(_) => StoreError::BadUrl {
                url: redact_url(&url),
            },
            other => StoreError::Db(other),
        })?;
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(max_conns)
            .acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options.connect_with(options).await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        if let Some(db) = &db_file {
            // -wal/-shm made by this open (or a migration) follow the database's mode;
            // check anyway.
            private_sqlite_files(db)?;
        }
        let inserts = writer::start(pool.clone());
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                inserts,
                users: cache::ReadCache::new(),
                apps: cache::ReadCache::new(),
            }),
        })
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Closes every connection; later calls fail. Waits for statements in flight.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }
}

/// Converts a stored integer to u64 (negative values are corrupt rows; read as 0).
fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Converts a u64 to the i64 the databases store (saturating; ids never get there).
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
