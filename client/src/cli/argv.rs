//! Rewrites the original client's single-dash long options (`-cmd`, `-cpu`, `-id`,
//! `-stderr`, `-ports`, ...) to the `--` form before clap parses (clap has no
//! single-dash longs).
//!
//! The names come from the clap command itself (every long name and alias of every
//! argument of every subcommand), so a new option gets its single-dash form for free.
//! Not rewritten: single-letter options (`-c`, `-E`), negative numbers, `-` (stdin),
//! anything after `--`, and the value of an option that takes one (so `-c -id` keeps the
//! command `-id`, and `--priority -5` keeps `-5`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;

/// What the rewriter knows about the options of a command tree.
#[derive(Clone, Debug, Default)]
pub struct OptionNames {
    /// Long names and aliases; value: whether the option takes a value.
    longs: BTreeMap<String, bool>,
    /// Short letters that take a value.
    shorts_with_value: BTreeSet<char>,
}

impl OptionNames {
    /// Collects the options of `cmd` and all its subcommands.
    pub fn of(cmd: &clap::Command) -> OptionNames {
        let mut names = OptionNames::default();
        names.add(cmd);
        names
    }

    fn add(&mut self, cmd: &clap::Command) {
        for arg in cmd.get_arguments() {
            let takes = arg.get_action().takes_values();
            if let Some(longs) = arg.get_long_and_visible_aliases() {
                for l in longs {
                    self.longs.insert(l.to_owned(), takes);
                }
            }
            if let Some(aliases) = arg.get_all_aliases() {
                for l in aliases {
                    self.longs.insert(l.to_owned(), takes);
                }
            }
            if let (Some(s), true) = (arg.get_short(), takes) {
                self.shorts_with_value.insert(s);
            }
        }
        for sub in cmd.get_subcommands() {
            self.add(sub);
        }
    }

    /// Whether `token` (an argument as typed) is an option that takes a separate value.
    fn expects_value(&self, token: &str) -> bool {
        if let Some(l) = token.strip_prefix("--") {
            return !l.contains('=') && self.longs.get(l).copied().unwrap_or(false);
        }
        if let Some(s) = token.strip_prefix('-') {
            let mut chars = s.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                return self.shorts_with_value.contains(&c);
            }
        }
        false
    }

    /// `argv` with single-dash long options turned into `--` ones.
    pub fn rewrite(&self, argv: Vec<OsString>) -> Vec<OsString> {
        let mut out = Vec::with_capacity(argv.len());
        let mut value_next = false;
        let mut rest = false;
        for (i, a) in argv.into_iter().enumerate() {
            if i == 0 || rest || value_next {
                value_next = false;
                out.push(a);
                continue;
            }
            let Some(s) = a.to_str() else {
                out.push(a);
                continue;
            };
            if s == "--" {
                rest = true;
                out.push(a);
                continue;
            }
            let token = match s.strip_prefix('-') {
                Some(body) if !body.starts_with('-') && body.chars().count() > 1 => {
                    let name = body.split_once('=').map_or(body, |(n, _)| n);
                    if self.longs.contains_key(name) {
                        format!("-{s}")
                    } else {
                        s.to_owned()
                    }
                }
                _ => s.to_owned(),
            };
            value_next = self.expects_value(&token);
            out.push(OsString::from(token));
        }
        out
    }
}

/// The original's `help -s SUB` / `help --subcommand SUB` as clap's `help SUB`.
pub fn original_help(mut argv: Vec<OsString>) -> Vec<OsString> {
    let is = |a: Option<&OsString>, names: &[&str]| a.is_some_and(|a| names.iter().any(|n| a == n));
    // the subcommand: the first word after the global options (-C FILE, -v, --json)
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        if is(Some(a), &["-C", "--config"]) {
            i += 2;
        } else if a.to_string_lossy().starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    if !is(argv.get(i), &["help"]) {
        return argv;
    }
    let h = i;
    if is(argv.get(h + 1), &["-s", "--subcommand", "-subcommand"]) {
        argv.remove(h + 1);
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cmd() -> Command {
        Command::new("t").subcommand(
            Command::new("schedule")
                .arg(Arg::new("command").short('c').long("command").alias("cmd"))
                .arg(Arg::new("cpu").long("cpu"))
                .arg(Arg::new("stderr").long("stderr").action(ArgAction::SetTrue))
                .arg(
                    Arg::new("priority")
                        .long("priority")
                        .allow_negative_numbers(true),
                )
                .arg(Arg::new("env").short('E').long("env")),
        )
    }

    fn rw(args: &[&str]) -> Vec<String> {
        let names = OptionNames::of(&cmd());
        names
            .rewrite(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn help_dash_s_is_help() {
        let v = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            original_help(v(&["t", "help", "-s", "list"])),
            v(&["t", "help", "list"])
        );
        assert_eq!(
            original_help(v(&["t", "help", "list"])),
            v(&["t", "help", "list"])
        );
        assert_eq!(
            original_help(v(&["t", "list", "-s"])),
            v(&["t", "list", "-s"])
        );
    }

    #[test]
    fn single_dash_longs_become_double_dash() {
        assert_eq!(
            rw(&["t", "schedule", "-cmd", "ls", "-cpu=2-4", "-stderr"]),
            ["t", "schedule", "--cmd", "ls", "--cpu=2-4", "--stderr"]
        );
    }

    #[test]
    fn values_shorts_numbers_and_the_rest_are_kept() {
        assert_eq!(
            rw(&[
                "t",
                "schedule",
                "-c",
                "-cpu",
                "--priority",
                "-5",
                "-E",
                "-x",
                "-",
                "--",
                "-cpu"
            ]),
            [
                "t",
                "schedule",
                "-c",
                "-cpu",
                "--priority",
                "-5",
                "-E",
                "-x",
                "-",
                "--",
                "-cpu"
            ]
        );
        assert_eq!(rw(&["t", "-unknown", "-c"]), ["t", "-unknown", "-c"]);
        assert_eq!(
            rw(&["t", "schedule", "-cmd", "-stderr", "-stderr"]),
            ["t", "schedule", "--cmd", "-stderr", "--stderr"]
        );
    }
}
