//! The original Retz's `retz.properties` mapped onto [`ServerConfig`]'s sections
//! (reference §5), read with the one properties reader, `retz_proto::properties`.

use super::*;

impl ServerConfig {
    /// Maps the keys of an original `retz.properties` (reference §5) onto a config.
    /// Keys with no counterpart (JMX, class paths, H2 drivers) are ignored; their values
    /// are not checked.
    ///
    /// TLS: as in the original, `retz.bind = https://...` turns HTTPS on. The original's
    /// Java keystore (`retz.tls.keystore.*`) cannot be read; the PEM files are named with
    /// `retz.tls.cert` and `retz.tls.key` instead (an https bind without them is an
    /// error saying how to convert the keystore).
    pub fn from_properties(text: &str) -> Result<ServerConfig, ConfigError> {
        let mut c = ServerConfig::default();
        let mut https = false;
        let mut keystore = false;
        for entry in retz_proto::properties::parse(text)? {
            let (k, v) = (entry.key.as_str(), entry.value.as_str());
            match k {
                "retz.bind" => https = v.starts_with("https://"),
                k if k.starts_with("retz.tls.keystore.") => keystore = true,
                _ => {}
            }
            apply_property(&mut c, k, v)?;
        }
        let pem = c.server.tls_cert.is_some() || c.server.tls_key.is_some();
        if https && !pem {
            let why = if keystore {
                "the original's Java keystore (retz.tls.keystore.*) cannot be read by this server"
            } else {
                "no certificate is named"
            };
            return Err(ConfigError::Invalid {
                key: "retz.bind",
                message: format!(
                    "https needs a certificate and key, but {why}; export them to PEM (e.g. \
                     openssl pkcs12 -in keystore.p12 -nokeys -out cert.pem, and -nocerts -nodes \
                     -out key.pem) and set retz.tls.cert and retz.tls.key to those files"
                ),
            });
        }
        if pem && !https {
            return Err(ConfigError::Invalid {
                key: "retz.bind",
                message: "retz.tls.cert/retz.tls.key are set but retz.bind is not https://; \
                          write retz.bind = https://HOST:PORT to serve HTTPS"
                    .into(),
            });
        }
        Ok(c)
    }
}

fn apply_property(c: &mut ServerConfig, k: &str, v: &str) -> Result<(), ConfigError> {
    fn num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, ConfigError> {
        v.parse().map_err(|_| ConfigError::Invalid {
            key,
            message: format!("{v:?} is not a number"),
        })
    }
    fn flag(key: &'static str, v: &str) -> Result<bool, ConfigError> {
        match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ConfigError::Invalid {
                key,
                message: format!("{v:?} is neither true nor false"),
            }),
        }
    }
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
            let rest = v
                .strip_prefix("http://")
                .or_else(|| v.strip_prefix("https://"))
                .unwrap_or(v);
            let addr = rest.trim_end_matches('/');
            let addr = addr
                .replace("localhost", "127.0.0.1")
                .parse()
                .map_err(|_| ConfigError::Invalid {
                    key: "retz.bind",
                    message: format!("{v:?} is not http://HOST:PORT with a numeric host"),
                })?;
            c.server.bind = addr;
        }
        "retz.tls.cert" => c.server.tls_cert = Some(PathBuf::from(v)),
        "retz.tls.key" => c.server.tls_key = Some(PathBuf::from(v)),
        "retz.mesos.principal" => c.mesos.principal = v.to_owned(),
        "retz.mesos.role" => c.mesos.role = v.to_owned(),
        "retz.mesos.refuse" => c.mesos.refuse_seconds = num("retz.mesos.refuse", v)?,
        "retz.mesos.failover.timeout" => {
            c.mesos.failover_timeout_s = num("retz.mesos.failover.timeout", v)?;
        }
        "retz.user" => c.jobs.default_user = Some(v.to_owned()),
        "retz.authentication" => c.server.authentication = flag("retz.authentication", v)?,
        "retz.access.key" => c.server.admin_keys.push(v.to_owned()),
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
        "retz.database.url" => {
            if let Some(pg) = v.strip_prefix("jdbc:postgresql:") {
                c.server.database = Some(format!("postgres:{pg}"));
            } else if !v.starts_with("jdbc:h2:") {
                c.server.database = Some(v.to_owned());
            }
        }
        _ => {}
    }
    Ok(())
}
