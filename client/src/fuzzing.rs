//! Entry points of the fuzz targets in `client/fuzz` (and of the unit test that feeds
//! them nasty inputs). Each takes arbitrary bytes, must never panic, and asserts the
//! parsers' invariants.

use std::ffi::OsString;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::argv::OptionNames;
use crate::cli::client_cli::Cli;
use crate::cli::parse;
use crate::config;

/// A config file's text, read both as TOML and as properties: never panics; an accepted
/// config passes [`config::check`].
pub fn client_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for name in ["client.toml", "retz.properties", "client"] {
        if let Ok(c) = config::parse(&text, Path::new(name)) {
            assert!(config::check(&c).is_ok(), "accepted an invalid config");
        }
    }
}

/// One option value through every value parser, and the text split at NULs as an argv
/// through the single-dash rewriter (which must keep the number of arguments and leave
/// arguments without a leading `-` alone).
pub fn option_values(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = parse::cpu_range(&text) {
        assert!(r.max.is_none_or(|m| m >= r.min && m > 0));
    }
    if let Ok(r) = parse::mem_range(&text) {
        assert!(r.max.is_none_or(|m| m >= r.min));
    }
    if let Ok((k, v)) = parse::env_pair(&text) {
        assert!(!k.is_empty());
        assert!(text.contains(&format!("={v}")));
    }
    if let Ok(p) = parse::priority(&text) {
        assert!((-20..=19).contains(&p));
    }
    let _ = parse::states(&text);
    let _ = parse::docker_volume(&text);
    let _ = parse::tags(&text);
    let argv: Vec<OsString> = std::iter::once("retz-client")
        .chain(text.split('\0'))
        .map(OsString::from)
        .collect();
    let out = OptionNames::of(&Cli::command()).rewrite(argv.clone());
    assert_eq!(out.len(), argv.len());
    for (a, b) in argv.iter().zip(&out) {
        if !a.to_string_lossy().starts_with('-') {
            assert_eq!(a, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &[&[u8]] = &[
        b"",
        b"\0",
        b"\xff\xfe\xfd",
        b"-",
        b"--",
        b"-cpu\0-cmd\0-\0--\0-id",
        b"4294967296",
        b"99999999999999999999999999-",
        b"-0",
        b"0-0",
        b"1--2",
        b"=",
        b"==",
        b"K=\xff",
        b"a:b:/c:mode=\0",
        b"::::::",
        b"ALL,",
        b"server = \"http://h\"\naccess_key = \"k\"\nsecret = \"s\"\n",
        b"server = \"http://\"\naccess_key = \"k\"\nsecret = \"s\"\n",
        b"server = \"file:///etc/passwd\"\naccess_key = \"k\"\nsecret = \"s\"\n",
        b"retz.server.uri=\nretz.access.key=\n",
        b"retz.server.uri=http://h\nretz.access.key= \nretz.authentication=false\n",
        b"[[[[",
        b"server = 1e999\n",
        b"retz.",
        b"\xef\xbb\xbfretz.server.uri=http://h:1\nretz.access.key=k\nretz.access.secret=s",
    ];

    #[test]
    fn nasty_inputs_do_not_break_the_parsers() {
        for input in NASTY {
            client_config(input);
            option_values(input);
        }
        let long = vec![b'9'; 10_000];
        client_config(&long);
        option_values(&long);
    }
}
