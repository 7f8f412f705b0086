//! Reading an original Retz 0.4 database (PostgreSQL) for `retz-admin import`: its
//! `users(key_id, secret, enabled, json)`, `applications(appid, owner, json)` and
//! `jobs(id, ..., json)` tables, with the `json` columns authoritative (Jackson's field
//! names: `cmd`, `appid`, `props`, `resources{cpu,memMB,gpu,ports,diskMB,nodes}`,
//! `taskId`, `slaveId`, `largeFiles`, `gracePeriod`, `container{type,...}`, ...), mapped to
//! this server's types. The `properties` table (the old framework id) is not imported: a
//! new server registers as a new framework. A job's owner is the owner of its
//! application (the original stored none on the job); a job whose application is gone
//! from the database cannot be attributed and is reported, not imported.

use std::collections::BTreeMap;

use retz_proto::api::{Application, ImportedJob, Job, User};
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::postgres::PgPoolOptions;

/// What an original database holds, as this server's records.
#[derive(Debug, Default)]
pub struct OriginalDb {
    /// Users.
    pub users: Vec<User>,
    /// Applications.
    pub applications: Vec<Application>,
    /// Jobs, with their owners, by original id.
    pub jobs: Vec<ImportedJob>,
    /// Rows that could not be read, one line each.
    pub unreadable: Vec<String>,
}

/// Reading the original database failed.
#[derive(Debug, thiserror::Error)]
pub enum OriginalDbError {
    /// Not a PostgreSQL URL.
    #[error(
        "{0:?} is not a PostgreSQL URL; give postgres://USER:PASSWORD@HOST:PORT/DB of the \
         original Retz database (for H2, export it to PostgreSQL first, see \
         docs/migrating-from-retz-0.4.md)"
    )]
    NotPostgres(String),
    /// The database refused or failed.
    #[error("original database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Reads users, applications and jobs from the original database at `url`.
pub async fn read(url: &str) -> Result<OriginalDb, OriginalDbError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        let shown = url.split('@').next_back().unwrap_or(url).to_owned();
        return Err(OriginalDbError::NotPostgres(shown));
    }
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    let mut db = OriginalDb::default();
    let rows = sqlx::query(
        "SELECT key_id::text AS key_id, secret::text AS secret, enabled::text AS enabled, \
         json::text AS json FROM users ORDER BY key_id",
    )
    .fetch_all(&pool)
    .await?;
    for row in rows {
        let (key, secret, enabled, json): (String, String, String, Option<String>) = (
            row.try_get("key_id")?,
            row.try_get("secret")?,
            row.try_get("enabled")?,
            row.try_get("json")?,
        );
        db.users
            .push(user_from(&key, &secret, &enabled, json.as_deref()));
    }
    let rows = sqlx::query(
        "SELECT appid::text AS appid, owner::text AS owner, json::text AS json \
         FROM applications ORDER BY appid",
    )
    .fetch_all(&pool)
    .await?;
    let mut owners = BTreeMap::new();
    for row in rows {
        let (appid, owner, json): (String, String, String) = (
            row.try_get("appid")?,
            row.try_get("owner")?,
            row.try_get("json")?,
        );
        owners.insert(appid.clone(), owner.clone());
        match application_from(&appid, &owner, &json) {
            Ok(app) => db.applications.push(app),
            Err(e) => db.unreadable.push(format!("application {appid}: {e}")),
        }
    }
    let rows = sqlx::query("SELECT id::bigint AS id, json::text AS json FROM jobs ORDER BY id")
        .fetch_all(&pool)
        .await?;
    for row in rows {
        let (id, json): (i64, String) = (row.try_get("id")?, row.try_get("json")?);
        match job_from(id, &json, &owners) {
            Ok(job) => db.jobs.push(job),
            Err(e) => db.unreadable.push(format!("job {id}: {e}")),
        }
    }
    pool.close().await;
    Ok(db)
}

/// A user row: the columns are authoritative for key, secret and enabled (`true`, `t`
/// or `1`); `info` comes from the json.
pub fn user_from(key: &str, secret: &str, enabled: &str, json: Option<&str>) -> User {
    let info = json
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .and_then(|v| v.get("info").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    User {
        key_id: key.trim().to_owned(),
        secret: secret.trim().to_owned(),
        enabled: matches!(enabled.trim(), "true" | "t" | "1" | "TRUE"),
        info,
    }
}

/// Keeps the fields of `obj` named in `keep`, dropping nulls (so defaults apply).
fn only(obj: &Map<String, Value>, keep: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, v)| keep.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn object(json: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("its json is not an object".into()),
        Err(e) => Err(format!("its json does not parse: {e}")),
    }
}

/// An application row (`appid` and `owner` from the columns).
pub fn application_from(appid: &str, owner: &str, json: &str) -> Result<Application, String> {
    let obj = object(json)?;
    let mut app = only(
        &obj,
        &["files", "largeFiles", "user", "gracePeriod", "enabled"],
    );
    if let Some(Value::Object(c)) = obj.get("container") {
        let container = match c.get("type").and_then(Value::as_str) {
            Some("docker") => {
                let mut d = only(c, &["image", "volumes"]);
                d.insert("type".into(), "docker".into());
                Value::Object(d)
            }
            _ => serde_json::json!({ "type": "mesos" }),
        };
        app.insert("container".into(), container);
    }
    app.insert("appid".into(), appid.into());
    app.insert("owner".into(), owner.into());
    serde_json::from_value(Value::Object(app)).map_err(|e| e.to_string())
}

/// A job row: `id` from the column, the rest from the json; its owner is its
/// application's (`owners`: appid → owner key).
pub fn job_from(
    id: i64,
    json: &str,
    owners: &BTreeMap<String, String>,
) -> Result<ImportedJob, String> {
    let id = u64::try_from(id).map_err(|_| "negative id".to_owned())?;
    let obj = object(json)?;
    let mut job = only(
        &obj,
        &[
            "name",
            "appid",
            "cmd",
            "props",
            "tags",
            "priority",
            "attributes",
            "scheduled",
            "started",
            "finished",
            "result",
            "reason",
            "retry",
            "url",
            "taskId",
            "slaveId",
            "state",
        ],
    );
    if !job.contains_key("props")
        && let Some(env) = obj.get("env").filter(|v| !v.is_null())
    {
        job.insert("props".into(), env.clone());
    }
    if let Some(Value::Object(r)) = obj.get("resources") {
        let mut res = only(r, &["cpu", "memMB", "gpu", "ports", "diskMB", "nodes"]);
        if res.get("nodes").and_then(Value::as_u64) == Some(0) {
            res.remove("nodes");
        }
        job.insert("resources".into(), Value::Object(res));
    }
    job.insert("id".into(), id.into());
    let job: Job = serde_json::from_value(Value::Object(job)).map_err(|e| e.to_string())?;
    let owner = owners.get(&job.appid).cloned().ok_or_else(|| {
        format!(
            "its application {} is not in the database, so its owner is unknown",
            job.appid
        )
    })?;
    Ok(ImportedJob { owner, job })
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::api::{Container, JobState};

    #[test]
    fn original_rows_map_to_records() {
        let u = user_from(
            "k1",
            "s1",
            "true",
            Some(r#"{"key_id":"k1","info":"alice"}"#),
        );
        assert_eq!(
            (u.key_id.as_str(), u.secret.as_str(), u.enabled),
            ("k1", "s1", true)
        );
        assert_eq!(u.info, "alice");
        assert!(!user_from("k", "s", "f", None).enabled);

        let app = application_from(
            "asakusa",
            "k1",
            r#"{"appid":"asakusa","files":["http://x/a.tgz"],"largeFiles":[],"user":null,
                "owner":"k1","gracePeriod":0,"container":{"type":"mesos"},"enabled":true}"#,
        )
        .unwrap();
        assert_eq!(app.files, ["http://x/a.tgz"]);
        assert_eq!(app.owner, "k1");
        assert_eq!(app.container, Container::Mesos);

        let owners = BTreeMap::from([("asakusa".to_owned(), "k1".to_owned())]);
        let j = job_from(
            42,
            r#"{"cmd":"bin/yaess.sh","appid":"asakusa","id":42,"name":"n","tags":["t"],
                "props":{"YAESS_OPTS":"-Xmx$RETZ_MEMm"},
                "resources":{"cpu":2,"memMB":512,"gpu":0,"ports":0,"diskMB":32,"nodes":0},
                "priority":1,"attributes":null,"scheduled":"2017-11-01T10:00:00.000+09:00",
                "started":null,"finished":null,"result":-1,"reason":null,"retry":0,
                "url":null,"taskId":null,"slaveId":null,"state":"QUEUED","ignored":1}"#,
            &owners,
        )
        .unwrap();
        assert_eq!(j.owner, "k1");
        assert_eq!(j.job.id, 42);
        assert_eq!(j.job.state, JobState::Queued);
        assert_eq!(j.job.cmd, "bin/yaess.sh");
        assert_eq!(j.job.props["YAESS_OPTS"], "-Xmx$RETZ_MEMm");
        assert_eq!(j.job.resources.mem_mb.min, 512);
        assert_eq!(j.job.priority, 1);
        let e = job_from(
            1,
            r#"{"cmd":"x","appid":"gone","state":"FINISHED"}"#,
            &owners,
        );
        assert!(e.unwrap_err().contains("gone"));
        assert!(job_from(1, "[]", &owners).is_err());
    }
}
