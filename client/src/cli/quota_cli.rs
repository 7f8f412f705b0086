//! `retz-admin set-share`, `get-share`, `set-quota`, `get-quota`, `clear-quota`: a
//! user's fair-share weight and quota (see the README's "How the queue orders jobs").

use clap::Subcommand;
use retz_proto::api::{Quota, UserLimitsResponse};

use crate::Client;
use crate::cli::client_cli::{emit, emit_json};
use crate::cli::exit::CliError;

/// The share and quota commands (flattened into `retz-admin`'s).
#[derive(Debug, Subcommand)]
pub enum LimitsCmd {
    /// Set a user's fair-share weight (default 1; 2 gets twice the running share of 1).
    SetShare {
        /// Access key of the user.
        user: String,
        /// The weight: a number above 0 (0.001 to 1000000).
        #[arg(value_parser = parse_weight)]
        weight: f64,
    },
    /// Show a user's fair-share weight.
    GetShare {
        /// Access key of the user.
        user: String,
    },
    /// Set a user's quota (limits left out keep their value; 0 = unlimited for this
    /// user, whatever the server's default).
    SetQuota {
        /// Access key of the user.
        user: String,
        /// Most QUEUED jobs (submissions beyond are refused).
        #[arg(long, value_name = "N")]
        queued: Option<u64>,
        /// Most CPUs of running jobs together (jobs beyond wait).
        #[arg(long, value_name = "N")]
        cpus: Option<u64>,
        /// Most memory of running jobs together, MB.
        #[arg(long = "mem-mb", value_name = "N")]
        mem_mb: Option<u64>,
    },
    /// Show a user's quota: its own limits, the server's defaults, what applies.
    GetQuota {
        /// Access key of the user.
        user: String,
    },
    /// Remove a user's own limits: the server's defaults apply again.
    ClearQuota {
        /// Access key of the user.
        user: String,
    },
}

/// A weight as `set-share` takes it: finite and above 0.
fn parse_weight(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(w) if w.is_finite() && w > 0.0 => Ok(w),
        _ => Err(format!(
            "{s:?} is not a weight: give a number above 0, e.g. 2"
        )),
    }
}

fn shown(v: Option<u64>) -> String {
    match v {
        Some(n) if n > 0 => n.to_string(),
        _ => "unlimited".to_owned(),
    }
}

/// The quota as `get-quota` prints it: one limit a line, where it comes from.
pub fn quota_text(r: &UserLimitsResponse) -> String {
    let own = &r.limits.quota;
    let line = |name: &str, own: Option<u64>, eff: Option<u64>| {
        let from = if own.is_some() {
            "user"
        } else {
            "server default"
        };
        format!("{name:<20}{:<12}({from})\n", shown(eff))
    };
    let mut out = format!("{:<20}{}\n", "user", r.limits.user);
    out += &line(
        "max_queued_jobs",
        own.max_queued_jobs,
        r.effective.max_queued_jobs,
    );
    out += &line(
        "max_running_cpus",
        own.max_running_cpus,
        r.effective.max_running_cpus,
    );
    out += &line(
        "max_running_mem_mb",
        own.max_running_mem_mb,
        r.effective.max_running_mem_mb,
    );
    out
}

/// Runs one of the commands.
pub async fn run(client: &Client, cmd: LimitsCmd, json: bool) -> Result<u8, CliError> {
    let (r, share_only) = match cmd {
        LimitsCmd::SetShare { user, weight } => (client.set_share(&user, weight).await?, true),
        LimitsCmd::GetShare { user } => (client.user_limits(&user).await?, true),
        LimitsCmd::GetQuota { user } => (client.user_limits(&user).await?, false),
        LimitsCmd::ClearQuota { user } => (client.clear_quota(&user).await?, false),
        LimitsCmd::SetQuota {
            user,
            queued,
            cpus,
            mem_mb,
        } => {
            let q = Quota {
                max_queued_jobs: queued,
                max_running_cpus: cpus,
                max_running_mem_mb: mem_mb,
            };
            if q.is_empty() {
                return Err(CliError::Usage(
                    "set-quota: give at least one of --queued N, --cpus N, --mem-mb N \
                     (clear-quota removes them)"
                        .into(),
                ));
            }
            (client.set_quota(&user, &q).await?, false)
        }
    };
    if json {
        emit_json(&r)?;
    } else if share_only {
        emit(&format!("{}\t{}\n", r.limits.user, r.limits.share))?;
    } else {
        emit(&quota_text(&r))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::api::UserLimits;

    #[test]
    fn weights_must_be_finite_and_positive() {
        assert_eq!(parse_weight("2"), Ok(2.0));
        assert_eq!(parse_weight("0.5"), Ok(0.5));
        for bad in ["0", "-1", "nan", "inf", "two", ""] {
            assert!(parse_weight(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_quota_text_says_where_each_limit_comes_from() {
        let mut limits = UserLimits::new("alice");
        limits.quota.max_running_cpus = Some(64);
        let defaults = Quota {
            max_queued_jobs: Some(1000),
            max_running_cpus: Some(8),
            ..Quota::default()
        };
        let r = UserLimitsResponse {
            effective: limits.quota.or(&defaults),
            limits,
            defaults,
        };
        let t = quota_text(&r);
        assert!(
            t.contains("max_queued_jobs     1000        (server default)"),
            "{t}"
        );
        assert!(t.contains("max_running_cpus    64          (user)"), "{t}");
        assert!(
            t.contains("max_running_mem_mb  unlimited   (server default)"),
            "{t}"
        );
    }
}
