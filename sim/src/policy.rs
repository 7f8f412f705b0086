//! Policies to compare: a `--policy` argument is a built-in name
//! (`PolicyConfig::BUILTIN_NAMES`: `retz`, `numa-strict`, `numa-prefer`, `spread`, `none`,
//! `first-fit`, `node-blind`) or a TOML file holding the `[placement]` table the server
//! reads from `retz.toml` — the serde form of `retz_placement::PolicyConfig`:
//!
//! ```toml
//! [placement]
//! name = "tuned"            # label in reports; default: the file name without .toml
//! packer = "retz"           # retz | first-fit | node-blind
//! affinity = "numa-prefer"  # cluster-wide override; absent = each job's own policy
//! candidates = 8
//! [placement.weights]
//! extra_node = 1.0
//! cross_node = 4.0
//! [placement.starvation]
//! reserve_after_s = 300
//! ```
//!
//! Other tables of the file (a whole `retz.toml`) are ignored; unknown keys inside
//! `[placement]` are errors (a misspelt weight must not fall back to its default).
//! [`policy_toml`] writes such a file (used by `retz-sim tune`).
//!
//! Invariant: the names of the policies of one run are unique ([`unique_names`]).

use std::collections::BTreeSet;
use std::path::Path;

use retz_placement::PolicyConfig;
use serde::{Deserialize, Serialize};

use crate::error::{InputError, excerpt, line_of, read_text};

/// A policy with the label reports use.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedPolicy {
    /// The label (unique within a run).
    pub name: String,
    /// `built-in` or the file it was read from.
    pub source: String,
    /// The configuration handed to the packer.
    pub config: PolicyConfig,
}

#[derive(Deserialize)]
struct FileForm {
    placement: Option<toml::Value>,
}

#[derive(Serialize)]
struct WriteForm<'a> {
    placement: &'a PolicyConfig,
}

/// Parses policy TOML text (`source` names it in errors; `stem` is the default name).
pub fn parse_policy_toml(source: &str, stem: &str, text: &str) -> Result<NamedPolicy, InputError> {
    let toml_err = |e: toml::de::Error| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        InputError::new(source, line, e.message().trim().to_string())
    };
    let file: FileForm = toml::from_str(text).map_err(toml_err)?;
    let Some(table) = file.placement else {
        return Err(InputError::new(
            source,
            0,
            "no [placement] table; a policy file holds the [placement] section of retz.toml (packer, affinity, weights, ...)",
        ));
    };
    let has_name = table.get("name").is_some();
    // Re-parse the section from the text so that errors carry its spans (line numbers).
    #[derive(Deserialize)]
    struct Section {
        placement: PolicyConfig,
    }
    let section: Section = toml::from_str(text).map_err(toml_err)?;
    let mut config = section.placement;
    if !has_name {
        config.name = stem.to_string();
    }
    if config.name.trim().is_empty() {
        return Err(InputError::new(
            source,
            0,
            "placement.name is empty; give the policy a name",
        ));
    }
    Ok(NamedPolicy {
        name: config.name.clone(),
        source: source.to_string(),
        config,
    })
}

/// Resolves one `--policy` argument.
pub fn load_policy(arg: &str) -> Result<NamedPolicy, InputError> {
    if let Some(config) = PolicyConfig::builtin(arg.trim()) {
        return Ok(NamedPolicy {
            name: config.name.clone(),
            source: "built-in".to_string(),
            config,
        });
    }
    let path = Path::new(arg);
    if !path.exists() && !arg.contains(['/', '.']) {
        return Err(InputError::new(
            "--policy",
            0,
            format!(
                "{:?} is neither a policy file nor a built-in policy; built-ins are: {}",
                excerpt(arg, 60),
                PolicyConfig::BUILTIN_NAMES.join(", ")
            ),
        ));
    }
    let text = read_text(path)?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("policy")
        .to_string();
    parse_policy_toml(&path.display().to_string(), &stem, &text)
}

/// Makes names unique in order: a repeated name gets `#2`, `#3`, ...
pub fn unique_names(policies: &mut [NamedPolicy]) {
    let mut seen = BTreeSet::new();
    for p in policies.iter_mut() {
        let base = p.name.clone();
        let mut name = base.clone();
        let mut k = 2;
        while !seen.insert(name.clone()) {
            name = format!("{base}#{k}");
            k += 1;
        }
        p.name.clone_from(&name);
        p.config.name = name;
    }
}

/// Writes a policy file: `comments` as `#` lines, then the `[placement]` table.
pub fn policy_toml(config: &PolicyConfig, comments: &[String]) -> String {
    let mut out = String::new();
    for c in comments {
        for l in c.lines() {
            out.push_str("# ");
            out.push_str(l);
            out.push('\n');
        }
    }
    // PolicyConfig is plain data with string keys: serialising it cannot fail.
    let body = toml::to_string(&WriteForm { placement: config }).unwrap_or_default();
    out.push_str(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_placement::{AffinityPolicy, PackerKind};

    #[test]
    fn builtins_and_unknown_names() {
        for n in PolicyConfig::BUILTIN_NAMES {
            let p = load_policy(n).unwrap();
            assert_eq!(p.name, n);
            assert_eq!(p.source, "built-in");
        }
        let e = load_policy("numa-strictest").unwrap_err().to_string();
        assert!(e.contains("built-ins are: retz, numa-strict"), "{e}");
        let e = load_policy("/nonexistent/p.toml").unwrap_err().to_string();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn files_round_trip_and_errors_have_lines() {
        let text = "[server]\nbind = \"x\"\n[placement]\npacker = \"retz\"\naffinity = \"spread\"\n[placement.weights]\ncross_node = 9.5\n";
        let p = parse_policy_toml("p.toml", "p", text).unwrap();
        assert_eq!(p.name, "p");
        assert_eq!(p.config.affinity, Some(AffinityPolicy::Spread));
        assert_eq!(p.config.weights.cross_node, 9.5);
        let written = policy_toml(&p.config, &["tuned by test".into(), "two\nlines".into()]);
        assert!(
            written.starts_with("# tuned by test\n# two\n# lines\n"),
            "{written}"
        );
        let back = parse_policy_toml("q.toml", "q", &written).unwrap();
        assert_eq!(back.config, p.config);
        assert_eq!(back.name, "p", "the written name is kept");
        let mut nb = PolicyConfig::builtin("node-blind").unwrap();
        nb.affinity = None;
        let back = parse_policy_toml("n", "n", &policy_toml(&nb, &[])).unwrap();
        assert_eq!(back.config.packer, PackerKind::NodeBlind);
        for (text, line, want) in [
            (
                "[placement]\nweights = { cross_nod = 1.0 }\n",
                2,
                "cross_nod",
            ),
            ("[placement]\n\npacker = \"best\"\n", 3, "best"),
            ("[placement\n", 1, ""),
            ("[server]\n", 0, "no [placement] table"),
            ("[placement]\nname = \" \"\n", 0, "empty"),
        ] {
            let e = parse_policy_toml("p.toml", "p", text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn names_become_unique() {
        let mut ps = vec![
            load_policy("spread").unwrap(),
            load_policy("spread").unwrap(),
            load_policy("spread").unwrap(),
        ];
        unique_names(&mut ps);
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["spread", "spread#2", "spread#3"]);
        assert_eq!(ps[2].config.name, "spread#3");
    }
}
