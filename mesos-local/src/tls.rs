//! TLS shared by the workspace's servers: PEM certificate chains and private keys read
//! into rustls with the *ring* provider (never aws-lc-rs), and the accept loop that
//! serves an axum router over TLS. `retz-server` builds its HTTPS API config from
//! [`parse_certs`], [`parse_key`] and [`provider`] (adding its own key-name messages);
//! the local master serves its scheduler API with [`load`] and [`serve`] (for
//! `retz-mesos-local --tls-cert FILE --tls-key FILE`).
//!
//! Invariants:
//! - nothing here panics on the files' contents; every failure is one line saying what
//!   is wrong and what to give instead;
//! - [`load`] returns a config only when the key belongs to the chain's first
//!   certificate, so a mismatch is a startup error, not a failure of every handshake;
//! - [`serve`] runs every handshake on the connection's own task, bounded by
//!   [`HANDSHAKE_TIMEOUT`]; a failed handshake (an untrusting client, plain HTTP on the
//!   TLS port) is logged at debug level and ends only that connection; on shutdown the
//!   listener closes and the open connections are dropped.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

/// Longest time a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The crypto provider (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates in PEM text; the error says what is wrong with it.
pub fn parse_certs(pem_bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "not a valid PEM file ({}); give the certificate chain in PEM",
                pem_error(&e)
            )
        })?;
    if certs.is_empty() {
        return Err(
            "holds no certificate (no -----BEGIN CERTIFICATE----- block); give the \
                    server's certificate chain in PEM, the server's certificate first"
                .into(),
        );
    }
    Ok(certs)
}

/// The private key in PEM text; the error says what is wrong with it.
pub fn parse_key(pem_bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    match PrivateKeyDer::from_pem_slice(pem_bytes) {
        Ok(k) => Ok(k),
        Err(pem::Error::NoItemsFound) => {
            if contains(pem_bytes, b"ENCRYPTED PRIVATE KEY") {
                Err(
                    "the private key is encrypted, which is not supported; decrypt it, e.g. \
                     openssl pkey -in KEY -out plain-key.pem (and keep that file private)"
                        .into(),
                )
            } else {
                Err(
                    "holds no private key (no -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or \
                     EC PRIVATE KEY block); give the server's private key in PEM"
                        .into(),
                )
            }
        }
        Err(e) => Err(format!(
            "not a valid PEM file ({}); give the private key in PEM",
            pem_error(&e)
        )),
    }
}

/// Reads the certificate chain at `cert` and the key at `key` into a server config
/// (HTTP/2 and HTTP/1.1 offered). The error is one line naming the file (`cert_flag` and
/// `key_flag` name the settings, e.g. `--tls-cert`).
pub fn load(
    cert: &Path,
    key: &Path,
    cert_flag: &str,
    key_flag: &str,
) -> Result<Arc<ServerConfig>, String> {
    let read = |flag: &str, path: &Path| {
        std::fs::read(path).map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))
    };
    let certs = parse_certs(&read(cert_flag, cert)?)
        .map_err(|e| format!("{cert_flag} {}: {e}", cert.display()))?;
    let key_der = parse_key(&read(key_flag, key)?)
        .map_err(|e| format!("{key_flag} {}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|e| {
            format!(
                "{cert_flag} {} with {key_flag} {}: rustls refused them ({e}); give the \
                 certificate and the key it was issued for",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves (see the module
/// invariants).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(config);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let router = router.clone();
                connections.spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => return debug!(%peer, "TLS handshake timed out"),
                    };
                    let service = TowerToHyperService::new(router);
                    if let Err(e) = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await
                    {
                        debug!(%peer, error = %e, "TLS connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    connections.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a PEM block is not valid base64".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_one_line_naming_the_flag_and_file() {
        let e = load(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
            "--tls-cert",
            "--tls-key",
        )
        .unwrap_err();
        assert!(
            e.starts_with("--tls-cert /nonexistent/c.pem: cannot read it"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, "hello").unwrap();
        std::fs::write(&k, "hello").unwrap();
        let e = load(&c, &k, "--tls-cert", "--tls-key").unwrap_err();
        assert!(e.contains("no certificate") && !e.contains('\n'), "{e}");
    }
}
