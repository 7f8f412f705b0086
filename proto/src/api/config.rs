//! [`ClientConfig`]: what `retz-client` and `retz-admin` need to reach a server, as
//! written by `retz-server --data-dir` (`DIR/client.toml`) and by `retz-admin
//! create-user`, and as read from an original `retz.properties`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A client's connection settings (`client.toml`).
///
/// ```toml
/// server = "http://127.0.0.1:9090"
/// access_key = "0123456789abcdef0123456789abcdef"
/// secret = "fedcba9876543210fedcba9876543210"
/// authentication = true
/// tls_insecure = false
/// # with https://: trust this PEM file (a private CA, or the server's own
/// # self-signed certificate) besides the usual public CAs
/// ca_cert = "/etc/retz/server-cert.pem"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Server URL (`http://host:port` or `https://...`).
    pub server: String,
    /// Access key.
    pub access_key: String,
    /// Secret (required when `authentication` is on).
    #[serde(default)]
    pub secret: String,
    /// Whether requests are signed (the server's `authentication` must agree).
    #[serde(default = "yes")]
    pub authentication: bool,
    /// Accept any TLS certificate, unverified (testing only; the original's
    /// `retz.tls.insecure`).
    #[serde(default)]
    pub tls_insecure: bool,
    /// PEM file of extra trusted certificates for `https://` servers: a private CA, or
    /// the server's own self-signed certificate. A relative path is relative to the
    /// config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// A `retz.properties` that cannot be read or lacks a key the client needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PropertiesError {
    /// A key is missing or its value is wrong.
    #[error("{what}; add it to the properties file")]
    Key {
        /// What is missing or wrong.
        what: String,
    },
    /// The text is not properties (a malformed escape), at a line.
    #[error("retz.properties {0}")]
    Syntax(#[from] crate::properties::ParseError),
}

impl ClientConfig {
    /// Reads the client keys of an original `retz.properties` (`retz.server.uri`,
    /// `retz.authentication`, `retz.access.key`, `retz.access.secret`,
    /// `retz.tls.insecure`, and `retz.tls.ca.cert`, a PEM file like [`Self::ca_cert`]
    /// that the original, which used the JVM's trust store, did not have).
    ///
    /// A server's own `retz.properties` (which the original `retz-admin` read) has no
    /// `retz.server.uri`: its `retz.bind` is used then (`0.0.0.0` as `127.0.0.1`). A
    /// Java trust store (`retz.tls.truststore.*`) cannot be read: without
    /// `retz.tls.ca.cert` it is an error saying how to convert it. The server's other
    /// keys are not the client's and are not read.
    pub fn from_properties(text: &str) -> Result<ClientConfig, PropertiesError> {
        let mut server = None;
        let mut bind = None;
        let mut truststore = None;
        let mut key = None;
        let mut secret = String::new();
        let mut authentication = true;
        let mut tls_insecure = false;
        let mut ca_cert = None;
        for entry in &crate::properties::parse(text)? {
            let (k, v) = (entry.key.as_str(), entry.value.as_str());
            let flag = |v: &str| -> Result<bool, PropertiesError> {
                match v.to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(PropertiesError::Key {
                        what: format!("{k} must be true or false, not {v:?}"),
                    }),
                }
            };
            match k {
                "retz.server.uri" => server = Some(v.to_owned()),
                "retz.bind" => bind = Some(v.replace("://0.0.0.0:", "://127.0.0.1:")),
                k if k.starts_with("retz.tls.truststore.") => truststore = Some(k.to_owned()),
                "retz.access.key" => key = Some(v.to_owned()),
                "retz.access.secret" => secret = v.to_owned(),
                "retz.authentication" => authentication = flag(v)?,
                "retz.tls.insecure" => tls_insecure = flag(v)?,
                "retz.tls.ca.cert" if !v.is_empty() => ca_cert = Some(PathBuf::from(v)),
                _ => {}
            }
        }
        let missing = |what: &str| PropertiesError::Key {
            what: format!("retz.properties has no {what}"),
        };
        if let Some(k) = truststore
            && ca_cert.is_none()
        {
            return Err(PropertiesError::Key {
                what: format!(
                    "{k}: a Java trust store cannot be read; export its CA certificate to PEM (keytool -exportcert -rfc -keystore FILE -alias ALIAS -file ca.pem) and set retz.tls.ca.cert = ca.pem"
                ),
            });
        }
        let config = ClientConfig {
            server: server.or(bind).ok_or_else(|| missing("retz.server.uri"))?,
            access_key: key.ok_or_else(|| missing("retz.access.key"))?,
            secret,
            authentication,
            tls_insecure,
            ca_cert,
        };
        if config.authentication && config.secret.is_empty() {
            return Err(missing(
                "retz.access.secret (required when authentication is on)",
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_properties_are_read() {
        let c = ClientConfig::from_properties(
            "# client\nretz.server.uri = http://localhost:9090\nretz.access.key=deadbeef\n\
             retz.access.secret : cafe\nretz.tls.insecure=TRUE\nother.key=1\n",
        )
        .unwrap();
        assert_eq!(c.server, "http://localhost:9090");
        assert_eq!(c.access_key, "deadbeef");
        assert_eq!(c.secret, "cafe");
        assert!(c.authentication && c.tls_insecure);
        assert_eq!(c.ca_cert, None);
        let c = ClientConfig::from_properties(
            "retz.server.uri = https://h:9443\nretz.access.key=k\nretz.access.secret=s\n\
             retz.tls.ca.cert = /etc/retz/ca.pem\n",
        )
        .unwrap();
        assert_eq!(c.ca_cert, Some(PathBuf::from("/etc/retz/ca.pem")));
        assert!(!c.tls_insecure);
    }

    #[test]
    fn a_servers_properties_serve_retz_admin_and_trust_stores_are_refused_clearly() {
        // The original retz-admin read the server's own file: retz.bind names the server.
        let c = ClientConfig::from_properties(
            "retz.mesos = m:5050
retz.bind = http://0.0.0.0:9090
retz.access.key = k
             retz.access.secret = s
retz.jmx.port = 9999
",
        )
        .unwrap();
        assert_eq!(c.server, "http://127.0.0.1:9090");
        let c = ClientConfig::from_properties(
            "retz.server.uri = http://a:1
retz.bind = http://b:2
retz.access.key = k
             retz.access.secret = s
",
        )
        .unwrap();
        assert_eq!(c.server, "http://a:1");
        let e = ClientConfig::from_properties(
            "retz.server.uri = https://a:1
retz.access.key = k
retz.access.secret = s
             retz.tls.truststore.file = /etc/retz/trust.jks
",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("retz.tls.truststore.file") && e.contains("retz.tls.ca.cert"),
            "{e}"
        );
        ClientConfig::from_properties(
            "retz.server.uri = https://a:1
retz.access.key = k
retz.access.secret = s
             retz.tls.truststore.file = /etc/retz/trust.jks
retz.tls.ca.cert = /etc/ca.pem
",
        )
        .unwrap();
        let e = ClientConfig::from_properties(
            "retz.access.key = k
retz.access.secret = s
",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("retz.server.uri"), "{e}");
    }

    /// The one properties reader: escapes are read, and a malformed one names its line.
    #[test]
    fn properties_escapes_and_syntax_errors() {
        let c = ClientConfig::from_properties(
            "retz.server.uri = http\\://h:9090\nretz.access.key=k\\\n  ey\nretz.access.secret=s\n",
        )
        .unwrap();
        assert_eq!(c.server, "http://h:9090");
        assert_eq!(c.access_key, "key");
        let e = ClientConfig::from_properties("retz.server.uri=x\n\nretz.access.key=\\u12")
            .unwrap_err();
        assert!(
            matches!(e, PropertiesError::Syntax(ref p) if p.line() == 3),
            "{e}"
        );
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    #[test]
    fn ca_cert_is_optional_and_round_trips() {
        let c: ClientConfig =
            serde_json::from_str(r#"{"server": "https://h:1", "access_key": "k", "secret": "s"}"#)
                .unwrap();
        assert_eq!(c.ca_cert, None);
        assert!(!serde_json::to_string(&c).unwrap().contains("ca_cert"));
        let c = ClientConfig {
            ca_cert: Some("/x/ca.pem".into()),
            ..c
        };
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains(r#""ca_cert":"/x/ca.pem""#), "{text}");
        assert_eq!(serde_json::from_str::<ClientConfig>(&text).unwrap(), c);
    }

    #[test]
    fn missing_keys_are_named() {
        let e =
            ClientConfig::from_properties("retz.access.key=a\nretz.access.secret=b").unwrap_err();
        assert!(e.to_string().contains("retz.server.uri"), "{e}");
        let e = ClientConfig::from_properties("retz.server.uri=x\nretz.access.key=a").unwrap_err();
        assert!(e.to_string().contains("retz.access.secret"), "{e}");
        let e = ClientConfig::from_properties(
            "retz.server.uri=x\nretz.access.key=a\nretz.authentication=maybe",
        )
        .unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
        let ok = ClientConfig::from_properties(
            "retz.server.uri=x\nretz.access.key=a\nretz.authentication=false",
        )
        .unwrap();
        assert!(!ok.authentication);
    }
}
