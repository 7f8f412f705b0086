//! [`SchedulerConfig`]: what the client needs to know, and its validation.
//!
//! Invariant: a config that passed [`SchedulerConfig::validate`] has at least one usable
//! master, non-zero timeouts and buffer, and a FrameworkInfo the master can accept as far
//! as can be checked locally (user and name set, failover timeout finite and ≥ 0, the
//! principal equal to the credential's when both are given).

use std::path::PathBuf;
use std::time::Duration;

use retz_proto::ContentType;
use retz_proto::credentials::Credential;
use retz_proto::mesos::FrameworkInfo;

use super::endpoint::{Endpoint, EndpointError, MasterList};
use super::tls::CaError;
use super::zk::{ZkUrl, ZkUrlError, is_zk};

/// Settings of the Mesos scheduler client. Build with [`SchedulerConfig::new`] and
/// adjust the public fields.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Master addresses, `HOST:PORT` (port 5050 if omitted, `http://` or `https://`
    /// allowed), tried in order and rotated on failure. A 307 from one of them is
    /// followed (keeping the scheme). A scheme-less address, and a leader ZooKeeper
    /// names, is https when [`masters_https`](Self::masters_https).
    pub masters: Vec<String>,
    /// The framework. Its `id`, when set, is re-used to fail over a previous instance;
    /// set `failover_timeout` (seconds) to how long the master keeps the framework's
    /// tasks while the client is disconnected: the master's default of 0 kills them at
    /// once, so production wants days or weeks.
    pub framework_info: FrameworkInfo,
    /// The body encoding of calls and of the event stream.
    pub content_type: ContentType,
    /// Missed heartbeats before the master is declared lost and the client reconnects.
    pub heartbeat_misses: u32,
    /// First delay between reconnect attempts.
    pub backoff_initial: Duration,
    /// Cap of the doubling reconnect delay.
    pub backoff_max: Duration,
    /// Time for a call's complete answer, and for SUBSCRIBE's response headers and its
    /// SUBSCRIBED event.
    pub call_timeout: Duration,
    /// Time to open a TCP connection to a master.
    pub connect_timeout: Duration,
    /// Redirects followed in a row before the attempt counts as failed.
    pub max_redirects: u32,
    /// Events buffered for a slow consumer before the stream is no longer read.
    pub event_buffer: usize,
    /// The largest event accepted on the stream, in bytes.
    pub max_event_size: usize,
    /// Roles whose offers start suppressed at the first SUBSCRIBE. Afterwards the client
    /// tracks SUPPRESS/REVIVE calls and re-subscribes with the roles suppressed then.
    pub suppressed_roles: Vec<String>,
    /// The framework's credential: sent as `Authorization: Basic` on SUBSCRIBE and every
    /// call (as masters with `--authenticate_http_frameworks` require). Its principal is
    /// the framework's (`framework_info.principal` is set to it when unset). `None`: no
    /// authentication.
    pub credential: Option<Credential>,
    /// A PEM file of the CA certificate(s) that https masters' certificates must chain
    /// to; `None`: the webpki (Mozilla) roots. Read at [`start`](super::start).
    pub ca_cert: Option<PathBuf>,
    /// Whether the masters speak TLS, for addresses that name no scheme (`HOST:PORT`
    /// and ZooKeeper's `MasterInfo`). `None`: yes exactly when `ca_cert` is set.
    pub tls: Option<bool>,
}

impl SchedulerConfig {
    /// A config with the defaults: protobuf, 5 missed heartbeats, backoff 500 ms doubling
    /// to 15 s, 10 s call timeout, 5 s connect timeout, 8 redirects, 1024 buffered
    /// events, 16 MiB events, nothing suppressed.
    pub fn new(masters: Vec<String>, framework_info: FrameworkInfo) -> Self {
        SchedulerConfig {
            masters,
            framework_info,
            content_type: ContentType::Protobuf,
            heartbeat_misses: 5,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(15),
            call_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_redirects: 8,
            event_buffer: 1024,
            max_event_size: 16 * 1024 * 1024,
            suppressed_roles: Vec::new(),
            credential: None,
            ca_cert: None,
            tls: None,
        }
    }

    /// Whether scheme-less master addresses and ZooKeeper's leaders are https:
    /// `tls`, else whether a `ca_cert` is given.
    pub fn masters_https(&self) -> bool {
        self.tls.unwrap_or(self.ca_cert.is_some())
    }

    /// Checks the config and parses the master addresses: a list of masters, or one
    /// `zk://` address (which a comma-splitting command line or properties file may
    /// have cut into pieces: they are joined again).
    pub fn validate(&self) -> Result<Masters, ConfigError> {
        let info = &self.framework_info;
        if info.user.is_empty() {
            return Err(ConfigError::FrameworkInfo(
                "user is empty; set the Unix user tasks run as".into(),
            ));
        }
        if info.name.is_empty() {
            return Err(ConfigError::FrameworkInfo("name is empty".into()));
        }
        if let Some(t) = info.failover_timeout
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(ConfigError::FrameworkInfo(format!(
                "failover_timeout {t} is not a finite number of seconds ≥ 0"
            )));
        }
        if let (Some(c), Some(p)) = (&self.credential, &info.principal)
            && c.principal != *p
        {
            return Err(ConfigError::FrameworkInfo(format!(
                "principal {p:?} differs from the credential's principal {:?}; the master \
                 refuses a framework that authenticates as another principal",
                c.principal
            )));
        }
        if info.id.as_ref().is_some_and(|id| id.value.is_empty()) {
            return Err(ConfigError::FrameworkInfo(
                "id is set but empty; leave it unset for a new framework".into(),
            ));
        }
        for (name, value) in [
            ("heartbeat_misses", u64::from(self.heartbeat_misses)),
            ("event_buffer", self.event_buffer as u64),
            ("max_event_size", self.max_event_size as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        for (name, value) in [
            ("call_timeout", self.call_timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.masters.first().is_some_and(|m| is_zk(m)) {
            let joined = self
                .masters
                .iter()
                .map(|m| m.trim())
                .collect::<Vec<_>>()
                .join(",");
            return ZkUrl::parse(&joined)
                .map(Masters::Zk)
                .map_err(ConfigError::Zk);
        }
        let masters = self
            .masters
            .iter()
            .enumerate()
            .map(|(index, m)| {
                Endpoint::parse_master_with(m, self.masters_https())
                    .map_err(|source| ConfigError::Master { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        MasterList::new(masters)
            .map(Masters::List)
            .ok_or(ConfigError::NoMasters)
    }
}

/// Where the masters are found.
#[derive(Debug, Clone)]
pub enum Masters {
    /// A fixed list, tried in order.
    List(MasterList),
    /// The leader of a ZooKeeper group, followed as it changes.
    Zk(ZkUrl),
}

/// A [`SchedulerConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `masters` is empty.
    #[error("no Mesos master configured: give at least one HOST:PORT")]
    NoMasters,
    /// A master address does not parse.
    #[error("Mesos master #{} in the list: {source}", index + 1)]
    Master {
        /// Its position in `masters` (0-based).
        index: usize,
        /// What is wrong.
        #[source]
        source: EndpointError,
    },
    /// A `zk://` master address does not parse.
    #[error("Mesos masters: {0}")]
    Zk(#[source] ZkUrlError),
    /// A setting that must be positive is zero.
    #[error("scheduler client setting {0} must be greater than zero")]
    Zero(&'static str),
    /// The FrameworkInfo would be refused.
    #[error("invalid FrameworkInfo: {0}")]
    FrameworkInfo(String),
    /// `ca_cert` cannot be used.
    #[error(transparent)]
    CaCert(#[from] CaError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::FrameworkId;

    fn ok() -> SchedulerConfig {
        SchedulerConfig::new(
            vec!["m1:5050".into(), "m2".into()],
            FrameworkInfo {
                user: "retz".into(),
                name: "Retz".into(),
                failover_timeout: Some(7.0 * 86400.0),
                ..FrameworkInfo::default()
            },
        )
    }

    #[test]
    fn accepts_a_sane_config() {
        let Masters::List(list) = ok().validate().unwrap() else {
            panic!("a list of masters")
        };
        assert_eq!(list.masters().len(), 2);
        assert_eq!(list.current().authority().as_str(), "m1:5050");
    }

    #[test]
    fn a_zk_address_cut_at_its_commas_is_joined_again() {
        let mut c = ok();
        c.masters = vec!["zk://z1:2181".into(), " z2:2182/mesos".into()];
        let Masters::Zk(url) = c.validate().unwrap() else {
            panic!("ZooKeeper")
        };
        assert_eq!(url.servers, "z1:2181,z2:2182");
        assert_eq!(url.path, "/mesos");
        c.masters = vec!["zk://z1/mesos".into(), "m2:5050".into()];
        let e = c.validate().unwrap_err();
        assert!(matches!(e, ConfigError::Zk(_)), "{e}");
        assert!(e.to_string().contains("other masters"), "{e}");
        c.masters = vec!["zk://z1".into()];
        assert!(c.validate().unwrap_err().to_string().contains("no path"));
    }

    #[test]
    fn https_masters_are_accepted_and_tls_names_the_scheme_of_bare_addresses() {
        let mut c = ok();
        c.masters = vec!["https://m1:5050".into(), "m2".into()];
        let Masters::List(list) = c.validate().unwrap() else {
            panic!("a list")
        };
        assert!(list.masters()[0].is_https());
        assert!(!list.masters()[1].is_https(), "no TLS setting: plain http");
        assert!(!c.masters_https());
        c.ca_cert = Some("/etc/retz/mesos-ca.pem".into());
        assert!(c.masters_https(), "a CA file says the masters speak TLS");
        let Masters::List(list) = c.validate().unwrap() else {
            panic!("a list")
        };
        assert!(list.masters().iter().all(Endpoint::is_https));
        c.tls = Some(false);
        assert!(!c.masters_https(), "an explicit tls = false wins");
        c.masters.push("http://m3".into());
        c.tls = Some(true);
        let Masters::List(list) = c.validate().unwrap() else {
            panic!("a list")
        };
        assert!(!list.masters()[2].is_https(), "an explicit http:// stays");
    }

    #[test]
    fn rejects_each_bad_setting_with_a_clear_error() {
        let mut c = ok();
        c.masters.clear();
        assert_eq!(c.validate().unwrap_err(), ConfigError::NoMasters);
        let mut c = ok();
        c.masters[1] = "m2:notaport".into();
        let e = c.validate().unwrap_err();
        assert!(matches!(e, ConfigError::Master { index: 1, .. }));
        assert!(e.to_string().starts_with("Mesos master #2"), "{e}");
        let mut c = ok();
        c.heartbeat_misses = 0;
        assert_eq!(
            c.validate().unwrap_err(),
            ConfigError::Zero("heartbeat_misses")
        );
        let mut c = ok();
        c.call_timeout = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err(), ConfigError::Zero("call_timeout"));
        let mut c = ok();
        c.event_buffer = 0;
        assert_eq!(c.validate().unwrap_err(), ConfigError::Zero("event_buffer"));
        for f in [
            |i: &mut FrameworkInfo| i.user.clear(),
            |i: &mut FrameworkInfo| i.name.clear(),
            |i: &mut FrameworkInfo| i.failover_timeout = Some(f64::NAN),
            |i: &mut FrameworkInfo| i.failover_timeout = Some(-1.0),
            |i: &mut FrameworkInfo| i.id = Some(FrameworkId::default()),
        ] {
            let mut c = ok();
            f(&mut c.framework_info);
            assert!(matches!(c.validate(), Err(ConfigError::FrameworkInfo(_))));
        }
        let mut c = ok();
        c.credential = Some(Credential::new("retz", "s3cret").unwrap());
        c.validate().unwrap();
        c.framework_info.principal = Some("retz".into());
        c.validate().unwrap();
        c.framework_info.principal = Some("other".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("\"other\"") && e.contains("\"retz\""), "{e}");
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug hides the secret"
        );
    }
}
