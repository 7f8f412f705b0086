//! Where the client config comes from and how it is read.
//!
//! Precedence (first that applies wins): `-C FILE`; `$RETZ_CLIENT_CONFIG`;
//! `$XDG_CONFIG_HOME/retz/client.toml`, then `~/.config/retz/client.toml` (the first that
//! exists); the original `/opt/retz-client/etc/retz.properties`. `retz-admin` first tries
//! the original server's `/opt/retz-server/etc/retz.properties` (the original `retz-admin`'s
//! default; its `retz.bind` and admin key are read), then the same. A named file (`-C` or
//! the variable) must exist; the default places are only tried.
//!
//! A file is read as an original `retz.properties` when its name ends in `.properties` or
//! its text has a `retz.<key> =` line, otherwise as TOML ([`ClientConfig`]). Either way
//! the result is checked: a usable server URL and, with authentication on, a secret. A
//! relative `ca_cert` is taken relative to the config file's directory.

use std::path::{Path, PathBuf};

use retz_proto::api::ClientConfig;

/// The original client's default config file.
pub const ORIGINAL_DEFAULT: &str = "/opt/retz-client/etc/retz.properties";
/// The original server's config file, the original `retz-admin`'s default.
pub const ORIGINAL_SERVER_DEFAULT: &str = "/opt/retz-server/etc/retz.properties";
/// The environment variable naming a config file.
pub const ENV_VAR: &str = "RETZ_CLIENT_CONFIG";

/// A config that cannot be found, read or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No file in any of the places.
    #[error(
        "no client config found (tried {tried}); pass -C FILE, set {ENV_VAR}, or write ~/.config/retz/client.toml (see etc/client.toml)"
    )]
    NotFound {
        /// The places tried, comma separated.
        tried: String,
    },
    /// The file cannot be read.
    #[error("cannot read client config {path}: {source}; check the path given by {origin}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Where its name came from (`-C`, `$RETZ_CLIENT_CONFIG`, ...).
        origin: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("invalid client config {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to write instead.
        reason: String,
    },
}

/// The places a config may come from (the process environment, made explicit so that
/// the choice is a pure function).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    /// `-C FILE`.
    pub explicit: Option<PathBuf>,
    /// `$RETZ_CLIENT_CONFIG`.
    pub env: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// The original default files, tried in order after the others (normally
    /// [`ORIGINAL_DEFAULT`]; for `retz-admin`, [`ORIGINAL_SERVER_DEFAULT`] first).
    pub original_defaults: Vec<PathBuf>,
}

impl Sources {
    /// The sources of this process: `explicit` plus its environment.
    pub fn from_env(explicit: Option<PathBuf>) -> Sources {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Sources {
            explicit,
            env: var(ENV_VAR),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
            original_defaults: vec![PathBuf::from(ORIGINAL_DEFAULT)],
        }
    }

    /// The sources of `retz-admin`: as [`Sources::from_env`], with the original server's
    /// [`ORIGINAL_SERVER_DEFAULT`] tried before the client's original default.
    pub fn for_admin(explicit: Option<PathBuf>) -> Sources {
        let mut s = Sources::from_env(explicit);
        s.original_defaults
            .insert(0, PathBuf::from(ORIGINAL_SERVER_DEFAULT));
        s
    }

    /// The file to read and where its name came from, or [`ConfigError::NotFound`].
    /// `exists` says whether a default place holds a file.
    pub fn locate(
        &self,
        exists: impl Fn(&Path) -> bool,
    ) -> Result<(PathBuf, &'static str), ConfigError> {
        if let Some(p) = &self.explicit {
            return Ok((p.clone(), "-C"));
        }
        if let Some(p) = &self.env {
            return Ok((p.clone(), "$RETZ_CLIENT_CONFIG"));
        }
        let mut tried = Vec::new();
        let mut defaults = Vec::new();
        if let Some(x) = &self.xdg_config_home {
            defaults.push((x.join("retz/client.toml"), "$XDG_CONFIG_HOME"));
        }
        if let Some(h) = &self.home {
            defaults.push((h.join(".config/retz/client.toml"), "$HOME"));
        }
        for p in &self.original_defaults {
            defaults.push((p.clone(), "the original default"));
        }
        for (p, origin) in defaults {
            if exists(&p) {
                return Ok((p, origin));
            }
            tried.push(p.display().to_string());
        }
        Err(ConfigError::NotFound {
            tried: tried.join(", "),
        })
    }

    /// Locates, reads and parses the config; returns it with its file.
    pub fn load(&self) -> Result<(ClientConfig, PathBuf), ConfigError> {
        let (path, origin) = self.locate(Path::is_file)?;
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            origin,
            source,
        })?;
        let config = parse(&text, &path)?;
        Ok((config, path))
    }
}

/// Whether `text` (from `path`) is an original `retz.properties` rather than TOML.
pub fn is_properties(text: &str, path: &Path) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("properties") => return true,
        Some("toml") => return false,
        _ => {}
    }
    text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("retz.")
            && l.split_once(['=', ':'])
                .is_some_and(|(k, _)| !k.trim().contains(char::is_whitespace))
    })
}

/// Parses a config file's text (TOML or `retz.properties`) and checks it.
pub fn parse(text: &str, path: &Path) -> Result<ClientConfig, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let config = if is_properties(text, path) {
        ClientConfig::from_properties(text).map_err(|e| invalid(e.to_string()))?
    } else {
        toml::from_str::<ClientConfig>(text).map_err(|e| {
            let msg = e.message().trim().to_owned();
            let at = e
                .span()
                .map(|s| {
                    format!(
                        " at line {}",
                        1 + text[..s.start.min(text.len())].matches('\n').count()
                    )
                })
                .unwrap_or_default();
            invalid(format!(
                "{msg}{at}; expected TOML with server, access_key, secret (see etc/client.toml)"
            ))
        })?
    };
    check(&config).map_err(invalid)?;
    Ok(resolve_ca_cert(config, path))
}

/// `config` with a relative `ca_cert` made relative to the directory of `path` (the
/// config file), so a config keeps working from any working directory.
pub fn resolve_ca_cert(mut config: ClientConfig, path: &Path) -> ClientConfig {
    if let Some(ca) = &config.ca_cert
        && ca.is_relative()
        && let Some(dir) = path.parent()
    {
        config.ca_cert = Some(dir.join(ca));
    }
    config
}

/// What is wrong with a parsed config, if anything.
pub fn check(config: &ClientConfig) -> Result<(), String> {
    let server = config.server.trim();
    if server.is_empty() {
        return Err("server is empty; write e.g. server = \"http://127.0.0.1:9090\"".into());
    }
    match url::Url::parse(server) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => {
            return Err(format!(
                "server {server:?} is not an http(s) URL; write e.g. http://127.0.0.1:9090"
            ));
        }
    }
    if config.access_key.trim().is_empty() {
        return Err("access_key is empty; use the key retz-admin create-user printed".into());
    }
    if config.authentication && config.secret.is_empty() {
        return Err("secret is empty while authentication is on; add secret = \"...\"".into());
    }
    if config
        .ca_cert
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        return Err("ca_cert is empty; name a PEM file or leave the key out".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = "server = \"http://127.0.0.1:9090\"\naccess_key = \"k\"\nsecret = \"s\"\n";
    const PROPS: &str =
        "retz.server.uri = http://h:9090\nretz.access.key = k\nretz.access.secret = s\n";

    fn sources() -> Sources {
        Sources {
            explicit: None,
            env: None,
            xdg_config_home: Some("/x".into()),
            home: Some("/home/u".into()),
            original_defaults: vec![ORIGINAL_DEFAULT.into()],
        }
    }

    #[test]
    fn precedence_is_flag_env_xdg_home_original() {
        let all = |_: &Path| true;
        let mut s = sources();
        s.explicit = Some("/flag.toml".into());
        s.env = Some("/env.toml".into());
        assert_eq!(s.locate(all).unwrap().0, PathBuf::from("/flag.toml"));
        s.explicit = None;
        assert_eq!(s.locate(all).unwrap().0, PathBuf::from("/env.toml"));
        s.env = None;
        assert_eq!(
            s.locate(all).unwrap().0,
            PathBuf::from("/x/retz/client.toml")
        );
        let no_xdg = |p: &Path| !p.starts_with("/x");
        assert_eq!(
            s.locate(no_xdg).unwrap().0,
            PathBuf::from("/home/u/.config/retz/client.toml")
        );
        let only_orig = |p: &Path| p == Path::new(ORIGINAL_DEFAULT);
        assert_eq!(
            s.locate(only_orig).unwrap().0,
            PathBuf::from(ORIGINAL_DEFAULT)
        );
        let e = s.locate(|_| false).unwrap_err().to_string();
        assert!(
            e.contains("/x/retz/client.toml") && e.contains(ORIGINAL_DEFAULT),
            "{e}"
        );
        assert!(e.contains("-C FILE"), "{e}");
    }

    #[test]
    fn retz_admin_tries_the_original_servers_properties_before_the_clients() {
        let mut s = sources();
        s.original_defaults = Sources::for_admin(None).original_defaults;
        let originals = |p: &Path| p.starts_with("/opt");
        assert_eq!(
            s.locate(originals).unwrap().0,
            PathBuf::from(ORIGINAL_SERVER_DEFAULT)
        );
        let client_only = |p: &Path| p == Path::new(ORIGINAL_DEFAULT);
        assert_eq!(
            s.locate(client_only).unwrap().0,
            PathBuf::from(ORIGINAL_DEFAULT)
        );
        let e = s.locate(|_| false).unwrap_err().to_string();
        assert!(
            e.contains(ORIGINAL_SERVER_DEFAULT) && e.contains(ORIGINAL_DEFAULT),
            "{e}"
        );
        // A server's own properties (retz.bind, the admin key) make a client config.
        let server = "retz.bind = http://0.0.0.0:9090\nretz.access.key = admin\n\
                      retz.access.secret = s3cret\nretz.mesos = zk://zk1:2181/mesos\n";
        let c = parse(server, Path::new(ORIGINAL_SERVER_DEFAULT)).unwrap();
        assert_eq!(c.server, "http://127.0.0.1:9090");
        assert_eq!(c.access_key, "admin");
    }

    #[test]
    fn toml_and_properties_are_told_apart_by_name_and_content() {
        assert!(is_properties(PROPS, Path::new("a.conf")));
        assert!(is_properties("", Path::new("retz.properties")));
        assert!(!is_properties(TOML, Path::new("client")));
        assert!(!is_properties(PROPS, Path::new("x.toml")));
        let a = parse(TOML, Path::new("c")).unwrap();
        let b = parse(PROPS, Path::new("c")).unwrap();
        assert_eq!(a.access_key, b.access_key);
        assert_eq!(b.server, "http://h:9090");
    }

    #[test]
    fn bad_configs_say_what_and_where() {
        let e = parse(
            "server = \"http://h\"\naccess_key = 3\n",
            Path::new("/c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/c.toml") && e.contains("line 2"), "{e}");
        let e = parse(
            "server = \"h:9090\"\naccess_key=\"k\"\nsecret=\"s\"",
            Path::new("c"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = parse("server = \"http://h\"\naccess_key=\"k\"", Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("secret is empty"), "{e}");
        let e = parse("retz.access.key = k\n", Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("retz.server.uri"), "{e}");
        let e = parse("bogus = 1\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn load_reads_the_located_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client.toml");
        std::fs::write(&f, TOML).unwrap();
        let s = Sources {
            explicit: Some(f.clone()),
            ..sources()
        };
        assert_eq!(s.load().unwrap().1, f);
        let s = Sources {
            explicit: Some(dir.path().join("nope.toml")),
            ..sources()
        };
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("nope.toml") && e.contains("-C"), "{e}");
    }

    #[test]
    fn a_relative_ca_cert_is_relative_to_the_config_file() {
        let text = format!("{TOML}ca_cert = \"certs/ca.pem\"\n");
        let c = parse(&text, Path::new("/etc/retz/client.toml")).unwrap();
        assert_eq!(c.ca_cert, Some(PathBuf::from("/etc/retz/certs/ca.pem")));
        let text = format!("{TOML}ca_cert = \"/abs/ca.pem\"\n");
        let c = parse(&text, Path::new("/etc/retz/client.toml")).unwrap();
        assert_eq!(c.ca_cert, Some(PathBuf::from("/abs/ca.pem")));
        let e = parse(&format!("{TOML}ca_cert = \"\"\n"), Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ca_cert is empty"), "{e}");
    }

    #[test]
    fn the_sample_in_etc_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/client.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        let c = parse(&text, &p).unwrap();
        assert_eq!(c.server, "http://127.0.0.1:9090");
        assert!(c.authentication);
    }
}
