//! The original Retz's `retz.properties` mapped onto [`ServerConfig`]'s sections
//! (reference §5), read with the one properties reader, `retz_proto::properties`.
//!
//! Every key of the original either works, is mapped onto the closest behaviour with a
//! note (logged as a warning at start, [`ServerConfig::notes`]), or stops the server with
//! one line naming the key and what to do. Nothing is ignored silently.

use super::*;

/// The prefix of an original H2 database URL, which this server cannot open.
pub(super) const H2_PREFIX: &str = "jdbc:h2:";

/// What the keys of one file set, for the checks that need several keys.
#[derive(Default)]
struct Seen {
    https: bool,
    keystore: bool,
    db_url: Option<String>,
    db_user: Option<String>,
    db_pass: Option<String>,
    gc: GcSection,
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl ServerConfig {
    /// Maps the keys of an original `retz.properties` (reference §5) onto a config.
    ///
    /// TLS: as in the original, `retz.bind = https://...` turns HTTPS on. The original's
    /// Java keystore (`retz.tls.keystore.*`) cannot be read; the PEM files are named with
    /// `retz.tls.cert` and `retz.tls.key` instead (an https bind without them is an
    /// error saying how to convert the keystore).
    pub fn from_properties(text: &str) -> Result<ServerConfig, ConfigError> {
        let mut c = ServerConfig::default();
        let mut seen = Seen {
            gc: GcSection::original(),
            ..Seen::default()
        };
        for entry in retz_proto::properties::parse(text)? {
            apply_property(&mut c, &mut seen, &entry.key, &entry.value)?;
        }
        c.gc = seen.gc.clone();
        c.server.database = database_url(&seen)?;
        let pem = c.server.tls_cert.is_some() || c.server.tls_key.is_some();
        if seen.https && !pem {
            let why = if seen.keystore {
                "the original's Java keystore (retz.tls.keystore.*) cannot be read by this server"
            } else {
                "no certificate is named"
            };
            return Err(invalid(
                "retz.bind",
                format!(
                    "https needs a certificate and key, but {why}; export them to PEM (e.g. \
                     openssl pkcs12 -in keystore.p12 -nokeys -out cert.pem, and -nocerts -nodes \
                     -out key.pem) and set retz.tls.cert and retz.tls.key to those files"
                ),
            ));
        }
        if pem && !seen.https {
            return Err(invalid(
                "retz.bind",
                "retz.tls.cert/retz.tls.key are set but retz.bind is not https://; \
                 write retz.bind = https://HOST:PORT to serve HTTPS",
            ));
        }
        if seen.keystore && pem {
            c.notes.push(
                "retz.tls.keystore.*: not read (a Java keystore); HTTPS uses retz.tls.cert and \
                 retz.tls.key"
                    .into(),
            );
        }
        Ok(c)
    }

    /// The checks of the keys an original site brings (admin user, H2, bind host, GC);
    /// part of [`ServerConfig::validate`].
    pub(super) fn validate_site(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if let Some(db) = &s.database
            && db.starts_with(H2_PREFIX)
            && self.data_dir().is_none()
        {
            return Err(invalid(
                "retz.database.url",
                format!(
                    "{db} is an H2 database, which this server cannot open; start with \
                     --data-dir DIR (a new SQLite store) or set retz.database.url to a \
                     PostgreSQL database, and bring the old users, applications and jobs over \
                     with `retz-admin import` (docs/migrating-from-retz-0.4.md)"
                ),
            ));
        }
        match (&s.admin_access_key, &s.admin_secret) {
            (Some(k), _) if k.is_empty() || k.contains(char::is_whitespace) => {
                return Err(invalid(
                    "server.admin_access_key (retz.access.key)",
                    format!("{k:?} is not an access key (one word, e.g. 32 hex digits)"),
                ));
            }
            (Some(_), None) if s.authentication => {
                return Err(invalid(
                    "server.admin_secret (retz.access.secret)",
                    "the admin's access key is set but its secret is not, and authentication \
                     is on; set the secret (retz-admin create-user makes a pair)",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "server.admin_access_key (retz.access.key)",
                    "the admin's secret is set but its access key is not; set both",
                ));
            }
            (_, Some(secret)) if secret.is_empty() => {
                return Err(invalid(
                    "server.admin_secret (retz.access.secret)",
                    "is empty; set the admin's secret",
                ));
            }
            _ => {}
        }
        if s.bind_host.as_ref().is_some_and(|h| h.is_empty()) {
            return Err(invalid("server.bind_host", "is empty; name a host"));
        }
        if self.gc.enabled && self.gc.interval_s == 0 {
            return Err(invalid(
                "gc.interval_s (retz.gc.interval)",
                "must be at least 1 second",
            ));
        }
        Ok(())
    }
}

/// `retz.database.url` with `retz.database.user`/`.pass`: `jdbc:postgresql://HOST:PORT/DB`
/// becomes `postgres://USER:PASS@HOST:PORT/DB`; `jdbc:h2:` is kept for
/// [`ServerConfig::validate_site`] to explain.
fn database_url(seen: &Seen) -> Result<Option<String>, ConfigError> {
    let Some(v) = &seen.db_url else {
        if seen.db_user.is_some() || seen.db_pass.is_some() {
            return Err(invalid(
                "retz.database.user",
                "retz.database.user/.pass are set but retz.database.url is not; set \
                 retz.database.url = jdbc:postgresql://HOST:PORT/DB",
            ));
        }
        return Ok(None);
    };
    if v.starts_with(H2_PREFIX) {
        return Ok(Some(v.clone()));
    }
    let rest = v
        .strip_prefix("jdbc:postgresql:")
        .or_else(|| v.strip_prefix("postgresql:"))
        .or_else(|| v.strip_prefix("postgres:"));
    let Some(rest) = rest else {
        if v.starts_with("sqlite:") {
            return Ok(Some(v.clone()));
        }
        return Err(invalid(
            "retz.database.url",
            format!(
                "{v:?} is neither jdbc:postgresql://HOST:PORT/DB nor jdbc:h2:...; this \
                 server stores into PostgreSQL or SQLite (--data-dir DIR)"
            ),
        ));
    };
    let mut url = url::Url::parse(&format!("postgres:{rest}")).map_err(|e| {
        invalid(
            "retz.database.url",
            format!("{v:?} is not jdbc:postgresql://HOST:PORT/DB: {e}"),
        )
    })?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "retz.database.url",
            format!("{v:?} names no host; write jdbc:postgresql://HOST:PORT/DB"),
        ));
    }
    let cant = |_| {
        invalid(
            "retz.database.user",
            "cannot be set on this URL; write jdbc:postgresql://HOST:PORT/DB",
        )
    };
    if let Some(u) = &seen.db_user {
        url.set_username(u).map_err(cant)?;
    }
    if let Some(p) = &seen.db_pass {
        url.set_password(Some(p)).map_err(cant)?;
    }
    Ok(Some(url.to_string()))
}

/// `retz.bind`: `http[s]://HOST:PORT[/]`; a host name is kept in `server.bind_host` and
/// resolved at start.
fn bind(c: &mut ServerConfig, v: &str) -> Result<(), ConfigError> {
    let bad = || {
        invalid(
            "retz.bind",
            format!("{v:?} is not http://HOST:PORT (or https://HOST:PORT)"),
        )
    };
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .unwrap_or(v)
        .trim_end_matches('/');
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        c.server.bind = addr;
        c.server.bind_host = None;
        return Ok(());
    }
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let plain = |ch: char| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.' || ch == '_';
    if host.is_empty() || !host.chars().all(plain) {
        return Err(bad());
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        c.server.bind = SocketAddr::new(ip, port);
        c.server.bind_host = None;
    } else {
        c.server.bind = SocketAddr::new(c.server.bind.ip(), port);
        c.server.bind_host = Some(host.to_owned());
    }
    Ok(())
}

fn num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, ConfigError> {
    v.parse()
        .map_err(|_| invalid(key, format!("{v:?} is not a number")))
}

fn flag(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, format!("{v:?} is neither true nor false"))),
    }
}

/// `retz.planner.name`: the original's planners map onto this server's one planner.
fn planner(c: &mut ServerConfig, v: &str) -> Result<(), ConfigError> {
    let what = match v {
        "fifo" | "naive" => {
            "jobs are placed in (priority, id) order; with every job at the default \
             priority 0 this is first in, first out"
        }
        "priority" | "priority2" => "jobs are placed in (priority, id) order, lower first",
        _ => {
            return Err(invalid(
                "retz.planner.name",
                format!(
                    "{v:?}: custom planner classes cannot be loaded by this server; write \
                     fifo or priority2 (or remove the key) and tune placement in [planner] \
                     and [placement] of retz.toml"
                ),
            ));
        }
    };
    c.notes.push(format!(
        "retz.planner.name = {v}: this server has one NUMA-aware planner; {what}; queued \
         jobs that do not fit do not block the ones after them"
    ));
    Ok(())
}

fn apply_property(
    c: &mut ServerConfig,
    seen: &mut Seen,
    k: &str,
    v: &str,
) -> Result<(), ConfigError> {
    match k {
        "retz.mesos" => {
            // A zk:// address (servers comma separated) stays one entry.
            c.mesos.masters = if v.starts_with("zk://") {
                vec![v.trim().to_owned()]
            } else {
                v.split(',').map(|m| m.trim().to_owned()).collect()
            };
        }
        "retz.bind" => {
            seen.https = v.starts_with("https://");
            bind(c, v)?;
        }
        "retz.tls.cert" => c.server.tls_cert = Some(PathBuf::from(v)),
        "retz.tls.key" => c.server.tls_key = Some(PathBuf::from(v)),
        k if k.starts_with("retz.tls.keystore.") => seen.keystore = true,
        k if k.starts_with("retz.tls.truststore.") || k == "retz.tls.insecure" => {
            c.notes.push(format!(
                "{k}: not used by the server (it makes no TLS connection a truststore would \
                 check); clients set ca_cert or tls_insecure in their own config"
            ));
        }
        "retz.mesos.principal" => c.mesos.principal = v.to_owned(),
        "retz.mesos.secret.file" => c.mesos.secret_file = Some(PathBuf::from(v)),
        "retz.mesos.ca.cert" => c.mesos.ca_cert = Some(PathBuf::from(v)),
        "retz.mesos.tls" => c.mesos.tls = Some(flag("retz.mesos.tls", v)?),
        "retz.mesos.role" => c.mesos.role = v.to_owned(),
        "retz.mesos.refuse" => c.mesos.refuse_seconds = num("retz.mesos.refuse", v)?,
        "retz.mesos.failover.timeout" => {
            c.mesos.failover_timeout_s = num("retz.mesos.failover.timeout", v)?;
        }
        "retz.user" => c.jobs.default_user = Some(v.to_owned()),
        "retz.authentication" => c.server.authentication = flag("retz.authentication", v)?,
        "retz.access.key" => {
            c.server.admin_keys.push(v.to_owned());
            c.server.admin_access_key = Some(v.to_owned());
        }
        "retz.access.secret" => c.server.admin_secret = Some(v.to_owned()),
        "retz.max.running" => c.planner.max_running = num("retz.max.running", v)?,
        "retz.max.cpus" => c.limits.max_cpus = num("retz.max.cpus", v)?,
        "retz.max.mem" => c.limits.max_mem_mb = num("retz.max.mem", v)?,
        "retz.max.gpus" => {
            c.limits.max_gpus = num("retz.max.gpus", v)?;
            c.mesos.gpus = c.limits.max_gpus > 0;
        }
        "retz.max.ports" => c.limits.max_ports = num("retz.max.ports", v)?,
        "retz.max.disk" => c.limits.max_disk_mb = num("retz.max.disk", v)?,
        "retz.max.list-jobs" => c.server.max_list_jobs = num("retz.max.list-jobs", v)?,
        "retz.max.file-size" => c.server.max_file_size = num("retz.max.file-size", v)?,
        "retz.max.stock" => {
            let n: u32 = num("retz.max.stock", v)?;
            c.notes.push(format!(
                "retz.max.stock = {n}: this server keeps no offer stock; offers it cannot use \
                 are declined for mesos.refuse_seconds ({}s, retz.mesos.refuse) and come back",
                c.mesos.refuse_seconds
            ));
        }
        "retz.job-queue.type" | "retz.job-queue-strategy" => match v {
            "fit" | "all" => c.notes.push(format!(
                "{k} = {v}: this server's planner considers the first planner.window queued \
                 jobs ({}) in (priority, id) order and places every one that fits, without \
                 stopping at the first that does not",
                c.planner.window
            )),
            _ => {
                return Err(invalid(
                    "retz.job-queue.type",
                    format!("{v:?} is neither fit nor all"),
                ));
            }
        },
        "retz.job-queue.all.limit" => {
            let n: i64 = num("retz.job-queue.all.limit", v)?;
            if n > 0 {
                c.planner.window = u32::try_from(n).unwrap_or(u32::MAX);
                c.notes.push(format!(
                    "retz.job-queue.all.limit = {n}: one placement cycle considers at most {n} \
                     queued jobs (planner.window)"
                ));
            } else {
                c.notes.push(format!(
                    "retz.job-queue.all.limit = {n}: no limit asked; one placement cycle \
                     considers at most planner.window ({}) queued jobs",
                    c.planner.window
                ));
            }
        }
        "retz.planner.name" => planner(c, v)?,
        "retz.gc" => seen.gc.enabled = flag("retz.gc", v)?,
        "retz.gc.leeway" => seen.gc.leeway_s = num("retz.gc.leeway", v)?,
        "retz.gc.interval" => seen.gc.interval_s = num("retz.gc.interval", v)?,
        "retz.database.url" => seen.db_url = Some(v.to_owned()),
        "retz.database.user" => seen.db_user = Some(v.to_owned()),
        "retz.database.pass" => seen.db_pass = Some(v.to_owned()),
        "retz.database.driver" => match v {
            "org.postgresql.Driver" | "org.h2.Driver" => {}
            _ => {
                return Err(invalid(
                    "retz.database.driver",
                    format!(
                        "{v:?}: this server opens PostgreSQL (org.postgresql.Driver) or its own \
                         SQLite store; remove the key or name org.postgresql.Driver"
                    ),
                ));
            }
        },
        "retz.jmx.port" => c.notes.push(
            "retz.jmx.port: there is no JMX console; retz-admin talks to the HTTP API with \
             an admin key (server.admin_keys, retz.access.key)"
                .into(),
        ),
        "retz.classpath" => c.notes.push(
            "retz.classpath: no Java classes are loaded (custom planners are not supported)".into(),
        ),
        "retz.max.queue" | "retz.retry" => c.notes.push(format!(
            "{k}: unused by the original too; retries after lost tasks are \
             planner.max_retries ({})",
            c.planner.max_retries
        )),
        _ => c.notes.push(format!(
            "{k}: not a key of Retz 0.4's retz.properties; ignored"
        )),
    }
    Ok(())
}
