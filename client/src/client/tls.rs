//! TLS for the client: the extra trusted certificates of `ca_cert`, and the errors of an
//! untrusted server certificate told apart and explained.

use super::*;

/// The certificates of the PEM file `path` (one or more).
pub(super) fn trusted_certificates(
    path: &std::path::Path,
) -> Result<Vec<reqwest::Certificate>, Error> {
    let fail = |reason: String| Error::CaCert {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| fail(format!("not a PEM file ({})", root_cause(&e))))?;
    if certs.is_empty() {
        return Err(fail("holds no -----BEGIN CERTIFICATE----- block".into()));
    }
    Ok(certs)
}

/// The TLS certificate error inside a reqwest error, if that is why it failed.
pub(super) fn certificate_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls @ rustls::Error::InvalidCertificate(_)) = err.downcast_ref() {
            return Some(tls);
        }
        // The TLS layer wraps its error in io::Errors (possibly nested), whose `source`
        // skips the wrapped error itself: descend through `get_ref` instead.
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

pub(super) fn is_untrusted(e: &reqwest::Error) -> bool {
    certificate_error(e).is_some()
}

/// What to do about a refused server certificate.
pub(super) fn untrusted_hint(e: &rustls::Error, has_ca_cert: bool) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => "use a server URL whose host name the certificate holds".into(),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired; the operator must renew it".into()
        }
        _ if has_ca_cert => "ca_cert does not hold the server's certificate or its CA; \
                             point ca_cert (or --ca-cert) at the right PEM file"
            .into(),
        _ => "trust it with ca_cert = \"FILE.pem\" in the client config or --ca-cert FILE \
              (the server's certificate or the CA that issued it)"
            .into(),
    }
}

/// The innermost cause of a reqwest error, e.g. `Connection refused (os error 111)`.
pub(super) fn root_cause(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let s = cur.to_string();
    if s.is_empty() { e.to_string() } else { s }
}
