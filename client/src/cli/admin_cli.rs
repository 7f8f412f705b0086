//! `retz-admin`: user management, usage, the job history and garbage collection over the server's admin
//! API, signed with an admin key (the `DIR/client.toml` that `retz-server --data-dir`
//! writes). Same config rules, exit codes and one-line errors as `retz-client`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::cli::client_cli::{connect_from, emit, emit_json, finish, parse_argv, runtime};
use crate::cli::exit::{CliError, EXIT_CODES_HELP};
use crate::cli::output;
use crate::config::Sources;

/// The command line of `retz-admin`.
#[derive(Debug, Parser)]
#[command(name = "retz-admin", version,
          about = "Administration of a Retz server: users, usage, job history, garbage collection",
          after_help = EXIT_CODES_HELP, after_long_help = EXIT_CODES_HELP)]
pub struct AdminCli {
    /// Client config file of an admin user (same search order as retz-client, with the
    /// original server's /opt/retz-server/etc/retz.properties tried first among the
    /// original defaults).
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
    /// Create a user; prints a ready client config for it on stdout.
    CreateUser {
        /// Free text about the user (e.g. who it is).
        #[arg(long, default_value = "")]
        info: String,
        /// The config's form: toml (retz.toml style) or properties (retz.* lines, as the
        /// original printed).
        #[arg(long, value_enum, default_value = "toml")]
        format: ConfigFormat,
    },
    /// Create one user per name in FILE (one per line; blank lines and # comments
    /// skipped) and write each one's client config to OUTPUT/retz.properties-NAME (mode
    /// 0600), as the original did. Nothing is created when a name is bad or a file exists.
    CreateUsers {
        /// The names, one per line (each becomes the user's info).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The directory the configs are written to.
        #[arg(long, value_name = "DIR", default_value = ".")]
        output: PathBuf,
        /// The configs' form (properties by default, as the original wrote).
        #[arg(long, value_enum, default_value = "properties")]
        format: ConfigFormat,
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
    /// Write the job history as JSON lines: one per job that started and ended, with
    /// its resources, placement features and runtime (sim/README.md, "Job history
    /// format"), oldest end first.
    ExportHistory {
        /// Only jobs that ended at or after this date (2026-11-01) or RFC 3339 time.
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only jobs of this application.
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Write to FILE (whole or not at all) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
    #[command(flatten)]
    Limits(crate::cli::quota_cli::LimitsCmd),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The form of a client config written for a new user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ConfigFormat {
    /// `retz.toml` style.
    Toml,
    /// `retz.*` properties lines, as the original printed.
    Properties,
}

fn render_config(
    format: ConfigFormat,
    client: &crate::Client,
    user: &retz_proto::api::User,
) -> String {
    match format {
        ConfigFormat::Toml => output::user_config_toml(client.server(), client.config(), user),
        ConfigFormat::Properties => {
            output::user_config_properties(client.server(), client.config(), user)
        }
    }
}

/// The names of a `create-users` file, checked before anything is created: each is
/// one file-name-safe word (letters, digits, `._-`, not starting with `.`), listed once.
fn user_names(text: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        let ok = !name.starts_with('.')
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(format!(
                "line {}: {name:?} is not a user name (letters, digits, '.', '_', '-'; at most 64, not starting with '.')",
                i + 1
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(format!("line {}: {name:?} is listed twice", i + 1));
        }
        names.push(name.to_owned());
    }
    if names.is_empty() {
        return Err("no names (one per line)".into());
    }
    Ok(names)
}

/// Writes `text` to `path` as a new file of mode 0600 (it holds a secret), whole or not
/// at all.
fn write_secret_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config")
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let done = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    done
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
    let (client, path) = connect_from(&Sources::for_admin(cli.config), cli.ca_cert)?;
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
        AdminCmd::Limits(cmd) => return crate::cli::quota_cli::run(&client, cmd, json).await,
        AdminCmd::Import { from, dry_run } => {
            return crate::cli::import_cli::run(&client, &from, dry_run, json).await;
        }
        AdminCmd::CreateUser { info, format } => {
            let user = client.create_user(&info).await?;
            if json {
                emit_json(&user)?;
            } else {
                emit(&render_config(format, &client, &user))?;
            }
        }
        AdminCmd::CreateUsers {
            file,
            output,
            format,
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::io(&format!("cannot read {}", file.display()), &e))?;
            let names = user_names(&text)
                .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
            if !output.is_dir() {
                return Err(CliError::Local(format!(
                    "--output {}: not a directory",
                    output.display()
                )));
            }
            let path_of = |name: &str| output.join(format!("retz.properties-{name}"));
            if let Some(p) = names.iter().map(|n| path_of(n)).find(|p| p.exists()) {
                return Err(CliError::Local(format!(
                    "{} exists; move it away or choose another --output (nothing was created)",
                    p.display()
                )));
            }
            let mut made = Vec::new();
            for name in &names {
                let user = client.create_user(name).await?;
                let path = path_of(name);
                write_secret_file(&path, &render_config(format, &client, &user)).map_err(|e| {
                    CliError::Local(format!(
                        "user {name} ({}) was created but {} could not be written: {e}; \
                             get its secret with retz-admin get-user -i {}",
                        user.key_id,
                        path.display(),
                        user.key_id
                    ))
                })?;
                made.push(serde_json::json!({
                    "name": name, "key": user.key_id, "file": path.display().to_string()
                }));
                if !json {
                    emit(&format!("{name}\t{}\t{}\n", user.key_id, path.display()))?;
                }
            }
            if json {
                emit_json(&made)?;
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
        AdminCmd::ExportHistory { since, app, out } => {
            return crate::cli::history_cli::run(
                &client,
                since.as_deref(),
                app.as_deref(),
                out.as_deref(),
            )
            .await;
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
        let c = parse(&["retz-admin", "export-history", "--since", "2026-11-01"]).unwrap();
        assert!(matches!(
            c.cmd,
            AdminCmd::ExportHistory { since: Some(ref s), app: None, out: None } if s == "2026-11-01"
        ));
        assert!(parse(&["retz-admin", "export-history", "--app"]).is_err());
        assert!(parse(&["retz-admin", "gc", "-leeway", "60"]).is_ok());
    }

    #[test]
    fn create_users_names_are_checked_before_anything_is_made() {
        assert_eq!(
            user_names("# a team\nalice\n\n  bob-2 \ncarol.x_y\n").unwrap(),
            ["alice", "bob-2", "carol.x_y"]
        );
        for (text, want) in [
            ("", "no names"),
            ("alice\n../x\n", "line 2"),
            ("a/b\n", "line 1"),
            (".hidden\n", "line 1"),
            ("alice\nalice\n", "listed twice"),
            ("two words\n", "line 1"),
        ] {
            let e = user_names(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let c = parse(&["retz-admin", "create-users", "--file", "n.txt"]).unwrap();
        assert!(matches!(
            c.cmd,
            AdminCmd::CreateUsers { ref output, format: ConfigFormat::Properties, .. }
                if output == std::path::Path::new(".")
        ));
        let c = parse(&["retz-admin", "create-user", "--format", "properties"]).unwrap();
        assert!(matches!(
            c.cmd,
            AdminCmd::CreateUser {
                format: ConfigFormat::Properties,
                ..
            }
        ));
        assert!(parse(&["retz-admin", "create-user", "--format", "xml"]).is_err());
    }

    #[test]
    fn secret_files_are_new_0600_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("retz.properties-alice");
        write_secret_file(&p, "retz.access.secret = s\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "retz.access.secret = s\n"
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_secret_file(&p, "other").is_err());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "retz.access.secret = s\n"
        );
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
