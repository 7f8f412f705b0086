//! Exit codes of both command lines and [`CliError`], the one error a subcommand ends
//! with. Invariant: every failure is printed as exactly one line on stderr
//! (`<program>: <what, where, what to do>`) and maps to exactly one exit code.

use crate::Error;
use crate::config::ConfigError;

/// Success.
pub const OK: u8 = 0;
/// The server was reached and said no (an HTTP error answer), or what was asked for does
/// not exist.
pub const REFUSED: u8 = 1;
/// Usage error (bad or missing option, bad value), as clap reports.
pub const USAGE: u8 = 2;
/// The server cannot be reached, the config is missing or wrong, or a local file cannot
/// be read or written.
pub const UNREACHABLE: u8 = 3;

/// The `after_help` text documenting the exit codes.
pub const EXIT_CODES_HELP: &str = "\
Exit status:
  0  success
  1  the server refused the request (HTTP 4xx/5xx) or the job/app/user does not exist
  2  usage error (unknown subcommand, bad or missing option)
  3  cannot reach the server, config missing or invalid, or a local file problem";

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A client call failed.
    #[error(transparent)]
    Api(#[from] Error),
    /// The config cannot be found or read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A bad combination of options found after parsing.
    #[error("{0}")]
    Usage(String),
    /// The thing asked for does not exist, or the server's answer says no.
    #[error("{0}")]
    Refused(String),
    /// A local file or stream problem.
    #[error("{0}")]
    Local(String),
}

impl CliError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api(e) if e.is_refusal() => REFUSED,
            CliError::Api(_) | CliError::Config(_) | CliError::Local(_) => UNREACHABLE,
            CliError::Usage(_) => USAGE,
            CliError::Refused(_) => REFUSED,
        }
    }

    /// A local I/O error on `what`.
    pub fn io(what: &str, e: &std::io::Error) -> CliError {
        CliError::Local(format!("{what}: {e}"))
    }
}

/// The one-line form of a clap error (no usage block, no blank lines), e.g.
/// `unrecognized subcommand 'lst'; tip: a similar subcommand exists: 'list'`.
pub fn clap_one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_kind_of_failure() {
        let refused = Error::Server {
            server: "s".into(),
            method: "GET".into(),
            resource: "/x".into(),
            code: 404,
            message: "no".into(),
        };
        assert_eq!(CliError::Api(refused).exit_code(), REFUSED);
        let unreachable = Error::Unreachable {
            server: "s".into(),
            cause: "refused".into(),
        };
        assert_eq!(CliError::Api(unreachable).exit_code(), UNREACHABLE);
        assert_eq!(CliError::Usage("u".into()).exit_code(), USAGE);
        assert_eq!(CliError::Local("l".into()).exit_code(), UNREACHABLE);
    }
}
