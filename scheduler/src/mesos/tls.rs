//! TLS to https masters: the trust roots (`mesos.ca_cert`, else the webpki roots) and
//! the rustls client config that the SUBSCRIBE connection and the call pool share.
//!
//! Invariants:
//! - the masters' certificates are always verified (chain to a trusted root, name of
//!   the address used); there is no setting that skips verification;
//! - a CA file that cannot be read, holds no certificate or no usable one is one
//!   [`CaError`] line naming `mesos.ca_cert` and the file, at startup;
//! - the *ring* provider is passed explicitly, as for the API's own TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// Config key of the masters' CA file.
pub const CA_CERT_KEY: &str = "mesos.ca_cert";

/// Why `mesos.ca_cert` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    /// The file cannot be read.
    #[error(
        "{CA_CERT_KEY}: cannot read {path}: {reason}; check the path and that retz-server may read it"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file holds no usable CA certificate.
    #[error("{CA_CERT_KEY}: {path}: {reason}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to give instead.
        reason: String,
    },
}

/// The trust roots in PEM text; the error says what is wrong with it.
pub fn parse_roots(pem: &[u8]) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!("not a valid PEM file ({e}); give the CA certificate(s) of the masters in PEM")
        })?;
    if certs.is_empty() {
        return Err(
            "holds no certificate (no -----BEGIN CERTIFICATE----- block); give the CA \
             certificate(s) that signed the masters' certificates, in PEM"
                .into(),
        );
    }
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(
            "no certificate in it can be used as a trust root (not X.509 \
                    certificates); give the masters' CA certificate(s) in PEM"
                .into(),
        );
    }
    Ok(roots)
}

/// The roots of the CA file at `path`.
pub fn load_roots(path: &Path) -> Result<RootCertStore, CaError> {
    let pem = std::fs::read(path).map_err(|e| CaError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    parse_roots(&pem).map_err(|reason| CaError::Content {
        path: path.to_owned(),
        reason,
    })
}

/// The client config for https masters: trusting the CA file `ca` when given, else the
/// webpki (Mozilla) roots; HTTP/1.1 only (the scheduler API's streaming SUBSCRIBE).
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, CaError> {
    let roots = match ca {
        Some(path) => load_roots(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Content {
            path: ca.map(Path::to_owned).unwrap_or_default(),
            reason: format!("no TLS protocol version available ({e})"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A handshake failure as an operator reads it: rustls' reason, and for a certificate
/// that does not verify, what to check.
pub fn handshake_error(e: &std::io::Error, host: &str, ca: bool) -> String {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    if !certificate {
        return e.to_string();
    }
    let trusted = if ca {
        format!("a CA in {CA_CERT_KEY}")
    } else {
        format!("a public CA (or set {CA_CERT_KEY})")
    };
    format!(
        "certificate verification failed: {e}; the master's certificate must be signed by \
         {trusted} and name {host}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_files_are_one_line_naming_the_key_and_file() {
        let e = load_roots(Path::new("/nonexistent/ca.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("mesos.ca_cert: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let dir = tempfile::tempdir().unwrap();
        for (body, want) in [
            (&b""[..], "holds no certificate"),
            (&b"hello"[..], "holds no certificate"),
            (
                &b"-----BEGIN CERTIFICATE-----\nAAAA\n"[..],
                "not a valid PEM file",
            ),
            (
                &b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"[..],
                "trust root",
            ),
        ] {
            let path = dir.path().join("ca.pem");
            std::fs::write(&path, body).unwrap();
            let e = load_roots(&path).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("mesos.ca_cert: {}: ", path.display())),
                "{e}"
            );
            assert!(e.contains(want) && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_real_ca_is_a_root_and_no_file_means_the_public_roots() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let roots = parse_roots(ca.pem().as_bytes()).unwrap();
        assert_eq!(roots.len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        client_config(Some(&path)).unwrap();
        client_config(None).unwrap();
    }

    #[tokio::test]
    async fn the_client_refuses_to_start_with_a_bad_ca_file_in_one_line() {
        let mut cfg = crate::mesos::SchedulerConfig::new(
            vec!["https://m1:5050".into()],
            retz_proto::mesos::FrameworkInfo {
                user: "retz".into(),
                name: "Retz".into(),
                ..Default::default()
            },
        );
        cfg.ca_cert = Some("/nonexistent/mesos-ca.pem".into());
        let e = crate::mesos::start(cfg)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("mesos.ca_cert: cannot read /nonexistent/mesos-ca.pem")
                && !e.contains('\n'),
            "{e}"
        );
    }
}
