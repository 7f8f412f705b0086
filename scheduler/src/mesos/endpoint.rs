//! Where the scheduler API lives: master addresses, `Location` resolution and the
//! rotating master list.
//!
//! Invariants:
//! * an [`Endpoint`] is always `http` or `https` with an explicit port and an absolute
//!   path; a scheme-less address takes the scheme the caller chose (https when the
//!   operator says the masters speak TLS, see [`Endpoint::parse_master_with`]);
//! * a `Location` keeps the scheme of the master that sent it unless it names one
//!   itself, and never downgrades https to plain http;
//! * [`MasterList`] never becomes empty, and a redirect target (the leader a master
//!   pointed at) is tried before the list, once, until it fails.

use std::fmt;

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};

/// The path of the scheduler API on a master.
pub const SCHEDULER_PATH: &str = "/api/v1/scheduler";

/// The default port of a Mesos master.
pub const DEFAULT_MASTER_PORT: u16 = 5050;

/// A master's scheduler API: `http[s]://<authority><path>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Always has the `http` or `https` scheme, `authority` and a path.
    uri: Uri,
    /// `host:port`, always with a port.
    authority: Authority,
}

/// A master address or a `Location` header that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Empty text.
    #[error("empty master address: expected HOST:PORT")]
    Empty,
    /// Not `host[:port]`, `http://host[:port][/path]` or `//host[:port][/path]`.
    #[error("invalid master address {text:?}: {why}; expected HOST:PORT such as 10.0.0.1:5050")]
    Invalid {
        /// The offending text.
        text: String,
        /// What is wrong with it.
        why: String,
    },
    /// A scheme other than `http` or `https`.
    #[error("master address {text:?} uses scheme {scheme:?}; use http:// or https://")]
    UnsupportedScheme {
        /// The offending text.
        text: String,
        /// The scheme found.
        scheme: String,
    },
    /// An https master redirected to a plain http one.
    #[error(
        "Location {text:?} would move the connection from https to plain http; refused \
         (a master speaking TLS redirects to other TLS masters)"
    )]
    Downgrade {
        /// The offending Location.
        text: String,
    },
}

fn invalid(text: &str, why: impl Into<String>) -> EndpointError {
    EndpointError::Invalid {
        text: text.to_owned(),
        why: why.into(),
    }
}

/// Parses `host[:port]`, adding the default master port when it is missing.
fn parse_authority(text: &str, whole: &str) -> Result<Authority, EndpointError> {
    if text.is_empty() {
        return Err(invalid(whole, "no host"));
    }
    if text.contains('@') {
        return Err(invalid(whole, "user information is not supported"));
    }
    let authority: Authority = text
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(whole, e.to_string()))?;
    if authority.host().is_empty() {
        return Err(invalid(whole, "no host"));
    }
    match authority.port_u16() {
        Some(0) => Err(invalid(whole, "port 0")),
        Some(_) => Ok(authority),
        None if authority.as_str().ends_with(':') => Err(invalid(whole, "empty port")),
        None => format!("{}:{DEFAULT_MASTER_PORT}", authority.as_str())
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(whole, e.to_string())),
    }
}

fn parse_path(text: &str, whole: &str) -> Result<PathAndQuery, EndpointError> {
    if text.is_empty() || text == "/" {
        return Ok(PathAndQuery::from_static(SCHEDULER_PATH));
    }
    text.parse()
        .map_err(|e: http::uri::InvalidUri| invalid(whole, e.to_string()))
}

impl Endpoint {
    /// Parses a configured master address: `HOST[:PORT]` (port 5050 by default),
    /// optionally written as `http://HOST[:PORT][/path]` or `https://...`. Without a
    /// path the scheduler API path `/api/v1/scheduler` is used. A scheme-less address
    /// is plain http ([`parse_master_with`](Self::parse_master_with) chooses).
    pub fn parse_master(text: &str) -> Result<Self, EndpointError> {
        Self::parse_master_with(text, false)
    }

    /// [`parse_master`](Self::parse_master), with `https` as the scheme of an address
    /// that names none (`HOST:PORT`, and the leaders ZooKeeper names).
    pub fn parse_master_with(text: &str, https: bool) -> Result<Self, EndpointError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(EndpointError::Empty);
        }
        if trimmed.contains('#') {
            return Err(invalid(
                text,
                "a fragment (#...) means nothing in a master address; remove it",
            ));
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (Scheme::HTTP, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (Scheme::HTTPS, rest),
            Some((scheme, _)) => {
                return Err(EndpointError::UnsupportedScheme {
                    text: text.to_owned(),
                    scheme: scheme.to_owned(),
                });
            }
            None if https => (Scheme::HTTPS, trimmed),
            None => (Scheme::HTTP, trimmed),
        };
        Self::from_authority_and_path(scheme, rest, text)
    }

    fn from_authority_and_path(
        scheme: Scheme,
        rest: &str,
        whole: &str,
    ) -> Result<Self, EndpointError> {
        let (auth, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        Self::build(
            scheme,
            parse_authority(auth, whole)?,
            parse_path(path, whole)?,
            whole,
        )
    }

    fn build(
        scheme: Scheme,
        authority: Authority,
        path: PathAndQuery,
        whole: &str,
    ) -> Result<Self, EndpointError> {
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| invalid(whole, e.to_string()))?;
        Ok(Endpoint { uri, authority })
    }

    /// Resolves a `Location` header received from this endpoint: absolute
    /// (`http[s]://host:port/path`), protocol-relative (`//host:port/path`, what a Mesos
    /// master sends; it keeps this endpoint's scheme) or a path on the same host
    /// (`/path`). An https endpoint never resolves to plain http.
    pub fn resolve_location(&self, location: &str) -> Result<Self, EndpointError> {
        // A fragment is never sent to a server (RFC 9110 §10.2.2 lets a Location carry
        // one), so it is dropped: `//b:2/#x` is `//b:2/`.
        let loc = location.trim();
        let loc = loc.split_once('#').map_or(loc, |(before, _)| before);
        if loc.is_empty() {
            return Err(invalid(location, "empty Location header"));
        }
        if let Some(rest) = loc.strip_prefix("//") {
            return Self::from_authority_and_path(self.scheme(), rest, location);
        }
        if loc.starts_with('/') {
            return Self::build(
                self.scheme(),
                self.authority().clone(),
                parse_path(loc, location)?,
                location,
            );
        }
        if loc.contains("://") {
            let target = Self::parse_master(loc)?;
            if self.is_https() && !target.is_https() {
                return Err(EndpointError::Downgrade {
                    text: location.to_owned(),
                });
            }
            return Ok(target);
        }
        Err(invalid(
            location,
            "a Location must be absolute, protocol-relative (//host:port/path) or a path",
        ))
    }

    /// Whether the master is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.uri.scheme() == Some(&Scheme::HTTPS)
    }

    fn scheme(&self) -> Scheme {
        if self.is_https() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        }
    }

    /// The host, without the brackets of an IPv6 address (the TLS server name).
    pub fn host(&self) -> &str {
        let h = self.authority.host();
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h)
    }

    /// `host:port`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The request path (and query, if any).
    pub fn path(&self) -> &str {
        self.uri
            .path_and_query()
            .map_or(SCHEDULER_PATH, PathAndQuery::as_str)
    }

    /// The full `http://` or `https://` URI of the scheduler API.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.uri)
    }
}

/// The configured masters, tried in order and rotated on failure, plus the leader a
/// master redirected to.
#[derive(Debug, Clone)]
pub struct MasterList {
    masters: Vec<Endpoint>,
    next: usize,
    leader: Option<Endpoint>,
}

impl MasterList {
    /// A list over `masters`; `None` if it is empty.
    pub fn new(masters: Vec<Endpoint>) -> Option<Self> {
        if masters.is_empty() {
            return None;
        }
        Some(MasterList {
            masters,
            next: 0,
            leader: None,
        })
    }

    /// The endpoint to try now: the redirect target if there is one, else the current
    /// entry of the list.
    pub fn current(&self) -> &Endpoint {
        self.leader.as_ref().unwrap_or(&self.masters[self.next])
    }

    /// Records that `current()` pointed at `leader` (a 307).
    pub fn redirect(&mut self, leader: Endpoint) {
        self.leader = Some(leader);
    }

    /// Records that `current()` failed: forget a redirect target, else move to the next
    /// configured master.
    pub fn fail(&mut self) {
        if self.leader.take().is_none() {
            self.next = (self.next + 1) % self.masters.len();
        }
    }

    /// The configured masters.
    pub fn masters(&self) -> &[Endpoint] {
        &self.masters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ep(s: &str) -> Endpoint {
        Endpoint::parse_master(s).unwrap()
    }

    #[test]
    fn parses_master_addresses() {
        assert_eq!(
            ep("10.0.0.1:5051").to_string(),
            "http://10.0.0.1:5051/api/v1/scheduler"
        );
        assert_eq!(
            ep("master").to_string(),
            "http://master:5050/api/v1/scheduler"
        );
        assert_eq!(
            ep(" http://m:1/ ").to_string(),
            "http://m:1/api/v1/scheduler"
        );
        assert_eq!(ep("HTTP://m:1/x/api").to_string(), "http://m:1/x/api");
        assert_eq!(ep("[::1]:7").to_string(), "http://[::1]:7/api/v1/scheduler");
        assert_eq!(ep("[::1]").authority().as_str(), "[::1]:5050");
        assert_eq!(ep("m:1").uri().to_string(), "http://m:1/api/v1/scheduler");
    }

    #[test]
    fn rejects_bad_master_addresses() {
        assert_eq!(Endpoint::parse_master("  "), Err(EndpointError::Empty));
        for bad in [
            "m:", "m:0", "m:99999", ":5050", "u@m:1", "m:x", "a b:1", "http://", "//", "a/#",
            "m:1/x#y", "#",
        ] {
            assert!(
                matches!(
                    Endpoint::parse_master(bad),
                    Err(EndpointError::Invalid { .. })
                ),
                "{bad:?} -> {:?}",
                Endpoint::parse_master(bad)
            );
        }
        assert!(matches!(
            Endpoint::parse_master("ftp://m:1"),
            Err(EndpointError::UnsupportedScheme { .. })
        ));
        let msg = Endpoint::parse_master("m:x").unwrap_err().to_string();
        assert!(
            msg.contains("\"m:x\"") && msg.contains("HOST:PORT"),
            "{msg}"
        );
    }

    #[test]
    fn resolves_locations() {
        let base = ep("a:1");
        let to = |l: &str| base.resolve_location(l).map(|e| e.to_string());
        assert_eq!(
            to("//b:2/api/v1/scheduler").unwrap(),
            "http://b:2/api/v1/scheduler"
        );
        assert_eq!(to("//b:2").unwrap(), "http://b:2/api/v1/scheduler");
        assert_eq!(
            to("http://c:3/api/v1/scheduler").unwrap(),
            "http://c:3/api/v1/scheduler"
        );
        assert_eq!(to("/other").unwrap(), "http://a:1/other");
        assert!(to("").is_err());
        assert!(to("b:2").is_err());
        assert_eq!(to("https://c:3/").unwrap(), "https://c:3/api/v1/scheduler");
        assert!(to("//").is_err());
    }

    #[test]
    fn https_masters_are_accepted_and_keep_their_scheme() {
        let tls = ep("https://m:1");
        assert!(tls.is_https());
        assert_eq!(tls.to_string(), "https://m:1/api/v1/scheduler");
        assert_eq!(
            ep("HTTPS://[::1]:7/x").to_string(),
            "https://[::1]:7/x",
            "scheme is case-insensitive"
        );
        assert_eq!(ep("https://[::1]:7").host(), "::1");
        assert_eq!(tls.host(), "m");
        assert!(!ep("m:1").is_https());
        // Scheme-less addresses take the operator's choice; explicit ones keep theirs.
        let chosen = Endpoint::parse_master_with("m:1", true).unwrap();
        assert_eq!(chosen.to_string(), "https://m:1/api/v1/scheduler");
        assert!(
            !Endpoint::parse_master_with("http://m:1", true)
                .unwrap()
                .is_https()
        );
        // A Mesos Location (protocol-relative) keeps https; a path too.
        let to = |l: &str| tls.resolve_location(l).map(|e| e.to_string());
        assert_eq!(
            to("//b:2/api/v1/scheduler").unwrap(),
            "https://b:2/api/v1/scheduler"
        );
        assert_eq!(to("/other").unwrap(), "https://m:1/other");
        assert_eq!(to("https://c:3").unwrap(), "https://c:3/api/v1/scheduler");
        let e = tls.resolve_location("http://c:3/").unwrap_err();
        assert!(matches!(e, EndpointError::Downgrade { .. }), "{e}");
        assert!(e.to_string().contains("from https to plain http"), "{e}");
    }

    #[test]
    fn master_list_rotates_and_prefers_the_leader() {
        let mut list = MasterList::new(vec![ep("a:1"), ep("b:2"), ep("c:3")]).unwrap();
        assert_eq!(list.current(), &ep("a:1"));
        list.fail();
        assert_eq!(list.current(), &ep("b:2"));
        list.redirect(ep("z:9"));
        assert_eq!(list.current(), &ep("z:9"));
        // The redirect target failed: back to where the list was.
        list.fail();
        assert_eq!(list.current(), &ep("b:2"));
        list.fail();
        list.fail();
        assert_eq!(list.current(), &ep("a:1"));
        assert!(MasterList::new(Vec::new()).is_none());
    }

    #[test]
    fn nasty_locations_are_errors_or_sane_endpoints() {
        let base = ep("a:1");
        let long = format!("//{}:1/", "h".repeat(70_000));
        let nasty = [
            "//[::1",
            "//[::1]:",
            "//a:99999999999999999999",
            "http://a:1/\0",
            "//@",
            "///",
            "//a:1?x",
            "//a:1#frag",
            "//ä:1/",
            "//a b:1",
            "http://a:1:2/",
            "//:1",
            "/\r\nX-Injected: 1",
            "\u{0}",
            "http:///x",
            "//a:-1/",
            long.as_str(),
        ];
        for l in nasty {
            if let Ok(e) = base.resolve_location(l) {
                assert!(
                    e.authority().port_u16().is_some_and(|p| p > 0),
                    "{l:?} -> {e}"
                );
                assert!(e.path().starts_with('/'), "{l:?} -> {e}");
            }
        }
        // A fragment is dropped, never turned into a path.
        for (loc, want) in [
            ("//b:2/#x", "http://b:2/api/v1/scheduler"),
            ("//b:2/api/v1/scheduler#frag", "http://b:2/api/v1/scheduler"),
            ("http://b:2/x?q=1#f", "http://b:2/x?q=1"),
            ("/#", "http://a:1/api/v1/scheduler"),
        ] {
            assert_eq!(
                base.resolve_location(loc).unwrap().to_string(),
                want,
                "{loc:?}"
            );
        }
        assert!(base.resolve_location("#only").is_err());
        // A query on a path is kept.
        assert_eq!(
            base.resolve_location("//b:2/api/v1/scheduler?x=1")
                .unwrap()
                .to_string(),
            "http://b:2/api/v1/scheduler?x=1"
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(s in ".{0,64}") {
            let base = ep("a:1");
            let _ = base.resolve_location(&s);
            if let Ok(e) = Endpoint::parse_master(&s) {
                // Whatever parsed must build a URI and re-parse to itself.
                let _ = e.uri().to_string();
                prop_assert_eq!(Endpoint::parse_master(&e.to_string()).unwrap(), e);
            }
        }

        #[test]
        fn master_like_text_that_parses_round_trips(
            s in "(https?://|HTTP://)?[a-z0-9:\\[\\]@/%.?#& -]{0,32}"
        ) {
            if let Ok(e) = Endpoint::parse_master(&s) {
                prop_assert_eq!(Endpoint::parse_master(&e.to_string()).unwrap(), e);
            }
        }

        #[test]
        fn never_panics_on_location_like_text(s in "(//|/|http://)?[a-z0-9:\\[\\]@/%.?#-]{0,40}") {
            let base = ep("a:1");
            if let Ok(e) = base.resolve_location(&s) {
                let _ = e.uri().to_string();
            }
        }
    }
}
