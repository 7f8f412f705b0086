//! [`Error`]: everything a [`crate::Client`] call can fail with, each variant one line
//! that says what failed, where, and what to do.
//!
//! Invariant: an answer of the server with an error status is always [`Error::Server`],
//! carrying the HTTP code and the server's [`retz_proto::api::ErrorBody`] `status` text
//! (or the body text when it is not an `ErrorBody`).

/// A failed client call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server URL in the config cannot be used.
    #[error(
        "invalid server URL {url:?} ({reason}); set server in the client config, e.g. http://127.0.0.1:9090"
    )]
    BadUrl {
        /// The configured URL.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// No connection could be made (refused, unknown host, TLS failure, connect timeout).
    #[error(
        "cannot reach {server} ({cause}); is retz-server running? check server in the client config"
    )]
    Unreachable {
        /// The server URL.
        server: String,
        /// What the network layer said.
        cause: String,
    },
    /// The server's TLS certificate is not accepted (unknown issuer, wrong name,
    /// expired, ...).
    #[error("{server} presented a TLS certificate this client does not accept ({cause}); {hint}")]
    Untrusted {
        /// The server URL.
        server: String,
        /// What the TLS layer said.
        cause: String,
        /// What to do about it.
        hint: String,
    },
    /// The `ca_cert` file cannot be used.
    #[error(
        "cannot use ca_cert {path}: {reason}; name a PEM file holding the server's certificate or the CA that issued it"
    )]
    CaCert {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The server did not answer in time.
    #[error(
        "{server} did not answer {method} {resource} within {secs} s; the server may be overloaded, retry later"
    )]
    Timeout {
        /// The server URL.
        server: String,
        /// HTTP method.
        method: String,
        /// Path and query.
        resource: String,
        /// The timeout.
        secs: u64,
    },
    /// The server answered with an error status.
    #[error("{server} refused {method} {resource}: {message} (HTTP {code})")]
    Server {
        /// The server URL.
        server: String,
        /// HTTP method.
        method: String,
        /// Path and query.
        resource: String,
        /// HTTP status code.
        code: u16,
        /// The server's `ErrorBody.status` (or its raw body text).
        message: String,
    },
    /// The answer could not be read or decoded.
    #[error(
        "unreadable answer from {server} to {method} {resource} ({cause}); is it a retz-server speaking protocol {}?",
        retz_proto::api::PROTOCOL_VERSION
    )]
    Decode {
        /// The server URL.
        server: String,
        /// HTTP method.
        method: String,
        /// Path and query.
        resource: String,
        /// What went wrong.
        cause: String,
    },
    /// Writing downloaded bytes failed.
    #[error("cannot write the download of {resource}: {source}")]
    Write {
        /// Path and query.
        resource: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP code the server answered with, for [`Error::Server`].
    pub fn http_code(&self) -> Option<u16> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's error message (`ErrorBody.status`), for [`Error::Server`].
    pub fn server_message(&self) -> Option<&str> {
        match self {
            Error::Server { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Whether the server was reached and said no (as opposed to not being reachable).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Server { .. })
    }
}
