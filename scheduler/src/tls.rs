//! HTTPS settings of the API: the PEM certificate chain and private key named by
//! `server.tls_cert` / `server.tls_key`, checked and turned into a rustls
//! [`ServerConfig`] that uses the *ring* crypto provider (never aws-lc-rs).
//!
//! Invariants:
//! - every failure is one [`TlsError`] naming the config key and the file, and saying
//!   what to do; nothing here panics on the files' contents;
//! - a config is only returned when the key belongs to the first certificate of the chain
//!   (the end-entity certificate), so a mismatch is a startup error, not a handshake
//!   failure on every connection;
//! - the provider is passed explicitly ([`provider`]): no process-wide default is
//!   installed or needed.
//!
//! The PEM parsing and the provider are shared with the local master's TLS
//! (`retz_mesos_local::tls`); this module adds the `server.*` key names and checks.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use retz_mesos_local::tls::{parse_certs, parse_key, provider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ParsedCertificate, ServerConfig};
use rustls::sign::CertifiedKey;

/// Config key of the certificate chain.
pub const CERT_KEY: &str = "server.tls_cert";
/// Config key of the private key.
pub const KEY_KEY: &str = "server.tls_key";

/// Why the HTTPS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{key}: cannot read {path}: {source}; check the path and that retz-server may read it")]
    Read {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no certificate, or a broken PEM block.
    #[error("{CERT_KEY}: {path}: {reason}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to give instead.
        reason: String,
    },
    /// The key file holds no usable private key.
    #[error("{KEY_KEY}: {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to give instead.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error(
        "{KEY_KEY}: the key in {key} does not belong to the certificate in {CERT_KEY} {cert}; \
         give the key the certificate was issued for (the first certificate of the file must be \
         the server's own)"
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// The certificates of a PEM file, end-entity first (as the file lists them).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(CERT_KEY, path)?;
    parse_certs(&bytes).map_err(|reason| TlsError::Cert {
        path: path.to_owned(),
        reason,
    })
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(KEY_KEY, path)?;
    parse_key(&bytes).map_err(|reason| TlsError::Key {
        path: path.to_owned(),
        reason,
    })
}

/// The rustls config serving `certs` with `key`: checks that the key is usable and
/// belongs to the first certificate. `cert_path` and `key_path` only name the files in
/// errors.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::Key {
            path: key_path.to_owned(),
            reason: format!(
                "the key cannot be used ({e}); give an RSA, ECDSA (P-256/P-384) or Ed25519 key"
            ),
        })?;
    let first = certs.first().ok_or_else(|| TlsError::Cert {
        path: cert_path.to_owned(),
        reason: "holds no certificate".into(),
    })?;
    ParsedCertificate::try_from(first).map_err(|e| TlsError::Cert {
        path: cert_path.to_owned(),
        reason: format!("the first certificate cannot be parsed ({e}); give an X.509 certificate"),
    })?;
    match CertifiedKey::new(certs.clone(), signing_key).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::Mismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            });
        }
        Err(e) => {
            return Err(TlsError::Cert {
                path: cert_path.to_owned(),
                reason: format!("the certificate cannot be used with the key ({e})"),
            });
        }
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| TlsError::Cert {
            path: cert_path.to_owned(),
            reason: format!("rustls refused the certificate and key ({e})"),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads both files and builds the config ([`server_config`]).
pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    server_config(certs, key, cert_path, key_path)
}

/// The host a local client should use to reach a server at `ip` presenting `cert`: `ip`
/// itself when the certificate names it, else `localhost` when it names that, else
/// `None` (the certificate names neither; a client on this host will refuse it).
pub fn local_host_name(cert: &CertificateDer<'_>, ip: IpAddr) -> Option<String> {
    let parsed = ParsedCertificate::try_from(cert).ok()?;
    let valid = |name: &ServerName<'_>| rustls::client::verify_server_name(&parsed, name).is_ok();
    if valid(&ServerName::IpAddress(ip.into())) {
        return Some(match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    let localhost = ServerName::try_from("localhost").ok()?;
    valid(&localhost).then(|| "localhost".to_owned())
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_files_are_named() {
        let e = parse_certs(b"").unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        let e = parse_certs(b"-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap_err();
        assert!(e.contains("END"), "{e}");
        let e = parse_key(b"hello").unwrap_err();
        assert!(e.contains("no private key"), "{e}");
        let e = parse_key(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.contains("encrypted"), "{e}");
        let e = parse_key(b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(e.contains("base64"), "{e}");
    }

    #[test]
    fn a_key_that_is_not_a_key_is_refused_with_the_config_key() {
        let key = PrivateKeyDer::Pkcs8(vec![1, 2, 3].into());
        let cert = CertificateDer::from(vec![1, 2, 3]);
        let e = server_config(vec![cert], key, Path::new("c.pem"), Path::new("k.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("server.tls_key: k.pem"), "{e}");
    }

    proptest::proptest! {
        /// Whatever an operator's files hold, parsing answers with certificates or one
        /// error text, never a panic; PEM-looking garbage included.
        #[test]
        fn any_bytes_parse_or_fail_cleanly(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            armour in 0usize..4,
        ) {
            let label = ["CERTIFICATE", "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"][armour];
            let mut text = format!("-----BEGIN {label}-----\n").into_bytes();
            text.extend_from_slice(&body);
            text.extend_from_slice(format!("\n-----END {label}-----\n").as_bytes());
            for input in [&body[..], &text[..]] {
                match parse_certs(input) {
                    Ok(certs) => proptest::prop_assert!(!certs.is_empty()),
                    Err(e) => proptest::prop_assert!(!e.is_empty()),
                }
                if let Ok(key) = parse_key(input) {
                    // A decoded key that is not a key is refused by name, not a panic.
                    let cert = CertificateDer::from(body.clone());
                    let r = server_config(vec![cert], key, Path::new("c"), Path::new("k"));
                    proptest::prop_assert!(r.is_err());
                }
            }
        }
    }

    #[test]
    fn missing_files_name_the_config_key_and_path() {
        let e = load(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("server.tls_cert: cannot read /nonexistent/c.pem"),
            "{e}"
        );
    }
}
