//! `retz-admin`: user management, usage and garbage collection over the server's admin
//! API, signed with an admin key (the `DIR/client.toml` that `retz-server --data-dir`
//! writes). Same config rules, exit codes and one-line errors as `retz-client`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::cli::client_cli::{connect, emit, emit_json, finish, parse_argv, runtime};
use crate::cli::exit::{CliError, EXIT_CODES_HELP};
use crate::cli::output;

/// The command line of `retz-admin`.
#[derive(Debug, Parser)]
#[command(name = "retz-admin", version,
          about = "Administration of a Retz server: users, usage, garbage collection",
          after_help = EXIT_CODES_HELP, after_long_help = EXIT_CODES_HELP)]
pub struct AdminCli {
    /// Client config file of an admin user (same search order as retz-client).
    #[arg(short = 'C', long = "config", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Trust the certificates in this PEM file for an https:// server (overrides ca_cert
    /// of the config): the server's own certificate or the CA that issued it.
    #[arg(long = "ca-cert", global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Say more on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: AdminCmd,
}

#[derive(Debug, Subcommand)]
enum AdminCmd {
    /// Create a user; prints a ready client config (TOML) for it on stdout.
    CreateUser {
        /// Free text about the user (e.g. who it is).
        #[arg(long, default_value = "")]
        info: String,
    },
    /// List users.
    ListUser,
    /// Show one user.
    GetUser(UserId),
    /// Enable a user.
    EnableUser(UserId),
    /// Disable a user (its requests are refused).
    DisableUser(UserId),
    /// Print the jobs that finished in [start, end) as JSON.
    Usage {
        /// Start (inclusive), compared as text with the finish time, e.g. 2026-11-01.
        #[arg(long, default_value = "0000-01-01")]
        start: String,
        /// End (exclusive).
        #[arg(long, default_value = "9999-12-32")]
        end: String,
    },
    /// Delete FINISHED and KILLED jobs that ended more than LEEWAY seconds ago.
    Gc {
        /// Age in seconds.
        #[arg(long, value_name = "S")]
        leeway: u64,
    },
    /// Import users, applications and jobs from an original Retz 0.4 database.
    Import {
        /// The original database: postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long, value_name = "URL")]
        from: String,
        /// Only report what would be imported.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
struct UserId {
    /// Access key of the user.
    #[arg(short = 'i', long = "id", alias = "user-id", value_name = "KEY")]
    id: String,
}

/// Entry point of the `retz-admin` binary.
pub fn main() -> ExitCode {
    let cli: AdminCli = match parse_argv("retz-admin", std::env::args_os().collect()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    finish(
        "retz-admin",
        runtime().and_then(|rt| rt.block_on(dispatch(cli))),
    )
}

async fn dispatch(cli: AdminCli) -> Result<u8, CliError> {
    if let AdminCmd::Completions { shell } = cli.cmd {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut AdminCli::command(), "retz-admin", &mut out);
        emit(&String::from_utf8_lossy(&out))?;
        return Ok(0);
    }
    let (client, path) = connect(cli.config, cli.ca_cert)?;
    if cli.verbose {
        eprintln!(
            "retz-admin: config {}, server {}",
            path.display(),
            client.server()
        );
    }
    let json = cli.json;
    let show_user = |u: &retz_proto::api::User| {
        if json {
            emit_json(u)
        } else {
            emit(&output::users_table(std::slice::from_ref(u)))
        }
    };
    match cli.cmd {
        AdminCmd::Completions { .. } => {}
        AdminCmd::Import { from, dry_run } => {
            return crate::cli::import_cli::run(&client, &from, dry_run, json).await;
        }
        AdminCmd::CreateUser { info } => {
            let user = client.create_user(&info).await?;
            if json {
                emit_json(&user)?;
            } else {
                emit(&output::user_config_toml(
                    client.server(),
                    client.config(),
                    &user,
                ))?;
            }
        }
        AdminCmd::ListUser => {
            let users = client.list_users().await?;
            if json {
                emit_json(&users)?;
            } else {
                emit(&output::users_table(&users))?;
            }
        }
        AdminCmd::GetUser(u) => show_user(&client.get_user(&u.id).await?)?,
        AdminCmd::EnableUser(u) => show_user(&client.enable_user(&u.id).await?)?,
        AdminCmd::DisableUser(u) => show_user(&client.disable_user(&u.id).await?)?,
        AdminCmd::Usage { start, end } => {
            let jobs = client.usage(&start, &end).await?;
            emit_json(&jobs)?;
        }
        AdminCmd::Gc { leeway } => {
            let n = client.gc(leeway).await?;
            if json {
                emit_json(&serde_json::json!({ "deleted": n }))?;
            } else {
                emit(&format!("deleted {n} jobs\n"))?;
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<AdminCli, ExitCode> {
        parse_argv("retz-admin", args.iter().map(Into::into).collect())
    }

    #[test]
    fn original_forms_parse() {
        let c = parse(&["retz-admin", "get-user", "-id", "abc"]).unwrap();
        assert!(matches!(c.cmd, AdminCmd::GetUser(UserId { ref id }) if id == "abc"));
        let c = parse(&["retz-admin", "disable-user", "--user-id", "k"]).unwrap();
        assert!(matches!(c.cmd, AdminCmd::DisableUser(_)));
        let c = parse(&["retz-admin", "usage"]).unwrap();
        assert!(matches!(c.cmd, AdminCmd::Usage { ref end, .. } if end == "9999-12-32"));
        assert!(parse(&["retz-admin", "gc"]).is_err());
        assert!(parse(&["retz-admin", "gc", "-leeway", "60"]).is_ok());
    }
}
