//! Mesos HTTP credentials: a principal and its secret, as frameworks authenticate to a
//! master with `--authenticate_http_frameworks` (HTTP Basic), and the credentials file a
//! master or agent is given with `--credentials`.
//!
//! File formats accepted by [`Credentials::parse`] (both are Mesos'):
//! * JSON: `{"credentials":[{"principal":"retz","secret":"s3cret"}, ...]}`;
//! * text: one `principal secret` pair per line (blank lines and `#` comments skipped).
//!
//! Invariants: a [`Credential`]'s principal is non-empty and holds no `:`, whitespace or
//! control characters; its secret is non-empty and holds no whitespace or control
//! characters (so both survive either file format and the Basic encoding). Secrets are
//! compared in constant time and never shown by `Debug`.
//!
//! No I/O here: callers read and write the files (0600) themselves.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// One principal and its secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Who (Mesos `principal`).
    pub principal: String,
    /// The shared secret.
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a credential or a credentials file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// A principal that cannot be used.
    #[error(
        "principal {0:?} is invalid: use 1-256 characters without ':', whitespace or control characters"
    )]
    Principal(String),
    /// A secret that cannot be used (the principal is named, never the secret).
    #[error(
        "the secret of principal {0:?} is invalid: use 1-4096 characters without whitespace or control characters"
    )]
    Secret(String),
    /// The JSON form does not parse.
    #[error(
        "credentials JSON: {0} (expected {{\"credentials\":[{{\"principal\":\"...\",\"secret\":\"...\"}}]}})"
    )]
    Json(String),
    /// A text line is not `principal secret`.
    #[error("credentials line {line}: expected `principal secret`")]
    Line {
        /// 1-based line number.
        line: usize,
    },
    /// The same principal twice.
    #[error("principal {0:?} is given twice")]
    Duplicate(String),
    /// Nothing in the file.
    #[error("no credentials in the file; give at least one principal and secret")]
    Empty,
}

fn valid_principal(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 256
        && !p
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

fn valid_secret(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4096 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Credential {
    /// A checked credential.
    pub fn new(
        principal: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Credential, CredentialsError> {
        let c = Credential {
            principal: principal.into(),
            secret: secret.into(),
        };
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), CredentialsError> {
        if !valid_principal(&self.principal) {
            return Err(CredentialsError::Principal(self.principal.clone()));
        }
        if !valid_secret(&self.secret) {
            return Err(CredentialsError::Secret(self.principal.clone()));
        }
        Ok(())
    }

    /// The `Authorization` header value: `Basic base64(principal:secret)`.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.principal, self.secret))
        )
    }
}

/// A set of credentials (what a master or agent accepts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    entries: Vec<Credential>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    credentials: Vec<Credential>,
}

impl Credentials {
    /// A set holding `entries` (checked, principals distinct).
    pub fn new(entries: Vec<Credential>) -> Result<Credentials, CredentialsError> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &entries {
            c.check()?;
            if !seen.insert(c.principal.as_str()) {
                return Err(CredentialsError::Duplicate(c.principal.clone()));
            }
        }
        Ok(Credentials { entries })
    }

    /// A set of one.
    pub fn single(credential: Credential) -> Credentials {
        Credentials {
            entries: vec![credential],
        }
    }

    /// Parses a credentials file (JSON or text, see the module docs).
    pub fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        let trimmed = text.trim_start();
        let entries = if trimmed.starts_with('{') {
            serde_json::from_str::<CredentialsFile>(trimmed)
                .map_err(|e| CredentialsError::Json(e.to_string()))?
                .credentials
        } else {
            let mut entries = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let mut parts = line.split_whitespace();
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(p), Some(s), None) => entries.push(Credential {
                        principal: p.to_owned(),
                        secret: s.to_owned(),
                    }),
                    _ => return Err(CredentialsError::Line { line: i + 1 }),
                }
            }
            entries
        };
        if entries.is_empty() {
            return Err(CredentialsError::Empty);
        }
        Credentials::new(entries)
    }

    /// The JSON file form (Mesos' `--credentials` format).
    pub fn to_json(&self) -> String {
        let file = CredentialsFile {
            credentials: self.entries.clone(),
        };
        // Strings only: always serialises.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// The credentials, in file order.
    pub fn entries(&self) -> &[Credential] {
        &self.entries
    }

    /// The principal an `Authorization: Basic ...` header value proves, if any: the
    /// secret is compared in constant time against the named principal's.
    pub fn verify_basic(&self, header_value: &str) -> Option<&str> {
        let (scheme, encoded) = header_value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = STANDARD.decode(encoded.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (principal, secret) = decoded.split_once(':')?;
        let entry = self.entries.iter().find(|c| c.principal == principal)?;
        constant_time_eq(entry.secret.as_bytes(), secret.as_bytes())
            .then_some(entry.principal.as_str())
    }
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_file_forms_parse_to_the_same_set() {
        let json = r#"{"credentials":[{"principal":"retz","secret":"s3cret"},{"principal":"ops","secret":"x"}]}"#;
        let text = "# Mesos credentials\nretz s3cret\n\n  ops   x  \n";
        let a = Credentials::parse(json).unwrap();
        let b = Credentials::parse(text).unwrap();
        assert_eq!(a, b);
        assert_eq!(Credentials::parse(&a.to_json()).unwrap(), a);
    }

    #[test]
    fn bad_files_are_refused_with_the_place() {
        assert_eq!(
            Credentials::parse("retz\n").unwrap_err(),
            CredentialsError::Line { line: 1 }
        );
        assert_eq!(
            Credentials::parse("a b\na c\n").unwrap_err(),
            CredentialsError::Duplicate("a".into())
        );
        assert_eq!(
            Credentials::parse("\n# none\n").unwrap_err(),
            CredentialsError::Empty
        );
        assert!(matches!(
            Credentials::parse(r#"{"credentials":[{"principal":"a:b","secret":"s"}]}"#),
            Err(CredentialsError::Principal(_))
        ));
        assert!(matches!(
            Credentials::parse(r#"{"credentials":[{"principal":"a","secret":""}]}"#),
            Err(CredentialsError::Secret(p)) if p == "a"
        ));
        assert!(matches!(
            Credentials::parse(r#"{"creds":[]}"#),
            Err(CredentialsError::Json(_))
        ));
    }

    #[test]
    fn basic_headers_prove_exactly_their_principal() {
        let c = Credential::new("retz", "s3cret").unwrap();
        let set = Credentials::single(c.clone());
        assert_eq!(set.verify_basic(&c.basic_header()), Some("retz"));
        let wrong = Credential::new("retz", "s3cres").unwrap();
        assert_eq!(set.verify_basic(&wrong.basic_header()), None);
        let other = Credential::new("nobody", "s3cret").unwrap();
        assert_eq!(set.verify_basic(&other.basic_header()), None);
        assert_eq!(set.verify_basic("Bearer abc"), None);
        assert_eq!(set.verify_basic("Basic !!!"), None);
        assert_eq!(set.verify_basic(""), None);
        // The scheme is case-insensitive (RFC 7617).
        let lower = c.basic_header().replacen("Basic", "basic", 1);
        assert_eq!(set.verify_basic(&lower), Some("retz"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credential::new("retz", "s3cret").unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{:?}", Credentials::single(c)).contains("s3cret"));
    }
}
