//! Parsers of option values (used as clap value parsers, so a bad value is a usage error
//! with the reason): resource ranges, `-E K=V`, priorities, tags, state lists, Docker
//! volumes, booleans.

use std::collections::BTreeSet;

use retz_placement::{PRIORITY_MAX, PRIORITY_MIN, ResourceRange};
use retz_proto::api::{DockerVolume, JobState};

/// A CPU range: `2`, `2-4`, `2-`.
pub fn cpu_range(s: &str) -> Result<ResourceRange<u32>, String> {
    let r: ResourceRange<u32> = s.parse().map_err(|e| format!("{e}"))?;
    if r.max == Some(0) {
        return Err(format!("{s:?} asks for no CPU; ask for at least 1"));
    }
    Ok(r)
}

/// A memory range in MB: `512`, `512-2048`, `512-`.
pub fn mem_range(s: &str) -> Result<ResourceRange<u64>, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// One `-E K=V`: split at the first `=`; the key must not be empty; the value may be.
pub fn env_pair(s: &str) -> Result<(String, String), String> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(format!("{s:?} has no '='; write KEY=VALUE"));
    };
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("{s:?} has an empty name; write KEY=VALUE"));
    }
    if k.contains(char::is_whitespace) {
        return Err(format!("{k:?} contains white space; variable names cannot"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// A priority in `-20..=19` (lower runs first).
pub fn priority(s: &str) -> Result<i32, String> {
    let p: i32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if !(PRIORITY_MIN..=PRIORITY_MAX).contains(&p) {
        return Err(format!(
            "{p} is outside {PRIORITY_MIN}..{PRIORITY_MAX} (lower runs first)"
        ));
    }
    Ok(p)
}

/// `a,b,c` → the set of non-empty, trimmed tags.
pub fn tags(s: &str) -> BTreeSet<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A list of job states (`--states`), without repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct States(pub Vec<JobState>);

/// `--states`: `ALL` or a comma separated list of states.
pub fn states(s: &str) -> Result<States, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(States(
            JobState::ALL
                .into_iter()
                .filter(|s| *s != JobState::Created)
                .collect(),
        ));
    }
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let st: JobState = part.parse().map_err(|e| format!("{e}"))?;
        if !out.contains(&st) {
            out.push(st);
        }
    }
    if out.is_empty() {
        return Err("no state given; write e.g. QUEUED,STARTED or ALL".into());
    }
    Ok(States(out))
}

/// One job state.
pub fn state(s: &str) -> Result<JobState, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// `true` or `false` (any case).
pub fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{s:?} is neither true nor false")),
    }
}

/// A Docker volume: `driver:name:path[:mode=RO|RW][:key=value...]` (mode RO by default).
pub fn docker_volume(s: &str) -> Result<DockerVolume, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [driver, name, path, rest @ ..] = parts.as_slice() else {
        return Err(format!(
            "{s:?} is not driver:name:path[:mode=RO|RW][:key=value...]"
        ));
    };
    if driver.is_empty() || name.is_empty() || !path.starts_with('/') {
        return Err(format!(
            "{s:?}: driver and name must not be empty and path must be absolute"
        ));
    }
    let mut vol = DockerVolume {
        driver: (*driver).to_owned(),
        name: (*name).to_owned(),
        container_path: (*path).to_owned(),
        mode: "RO".to_owned(),
        options: Default::default(),
    };
    for kv in rest {
        let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(format!("{kv:?} in {s:?} is not key=value"));
        };
        if k == "mode" {
            let m = v.to_ascii_uppercase();
            if m != "RO" && m != "RW" {
                return Err(format!("mode {v:?} in {s:?} is neither RO nor RW"));
            }
            vol.mode = m;
        } else {
            vol.options.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(vol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_of_the_three_forms_and_their_errors() {
        assert_eq!(cpu_range("2-4").unwrap(), ResourceRange::between(2, 4));
        assert_eq!(cpu_range("2-").unwrap(), ResourceRange::at_least(2));
        assert_eq!(cpu_range("3").unwrap(), ResourceRange::exactly(3));
        assert_eq!(mem_range("512-").unwrap(), ResourceRange::at_least(512));
        assert!(cpu_range("4-2").unwrap_err().contains("below minimum"));
        assert!(cpu_range("x").unwrap_err().contains("not a whole number"));
        assert!(cpu_range("0").unwrap_err().contains("no CPU"));
        assert!(cpu_range("-2").is_err());
        assert!(
            mem_range("99999999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn env_splits_at_the_first_equals_and_refuses_empty_keys() {
        assert_eq!(env_pair("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(env_pair("A=").unwrap(), ("A".into(), String::new()));
        assert_eq!(env_pair("ARGS=--x=$RETZ_CPU").unwrap().1, "--x=$RETZ_CPU");
        assert!(env_pair("=v").unwrap_err().contains("empty name"));
        assert!(env_pair("novalue").unwrap_err().contains("no '='"));
        assert!(env_pair("A B=1").is_err());
    }

    #[test]
    fn priorities_tags_states_booleans() {
        assert_eq!(priority("-20").unwrap(), -20);
        assert_eq!(priority("19").unwrap(), 19);
        assert!(priority("20").unwrap_err().contains("outside"));
        assert!(priority("x").is_err());
        assert_eq!(
            tags(" a, b,,a ").into_iter().collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(states("ALL").unwrap().0.len(), 5);
        assert_eq!(
            states("queued,STARTED,queued").unwrap().0,
            [JobState::Queued, JobState::Started]
        );
        assert!(states("RUNNING").unwrap_err().contains("unknown job state"));
        assert!(states(" , ").is_err());
        assert!(boolean("TRUE").unwrap());
        assert!(boolean("yes").is_err());
    }

    #[test]
    fn docker_volumes() {
        let v = docker_volume("nfs:data:/mnt:mode=rw:opt=1").unwrap();
        assert_eq!((v.driver.as_str(), v.mode.as_str()), ("nfs", "RW"));
        assert_eq!(v.options["opt"], "1");
        assert_eq!(docker_volume("d:n:/p").unwrap().mode, "RO");
        assert!(docker_volume("d:n").is_err());
        assert!(docker_volume("d:n:rel").is_err());
        assert!(docker_volume("d:n:/p:mode=XX").is_err());
        assert!(docker_volume("d:n:/p:junk").is_err());
    }

    proptest! {
        #[test]
        fn env_pair_never_panics_and_round_trips(k in "[A-Za-z_][A-Za-z0-9_]{0,8}", v in ".*") {
            let (k2, v2) = env_pair(&format!("{k}={v}")).unwrap();
            prop_assert_eq!(k2, k);
            prop_assert_eq!(v2, v);
        }

        #[test]
        fn range_parsers_never_panic(s in ".{0,12}") {
            let _ = cpu_range(&s);
            let _ = mem_range(&s);
            let _ = docker_volume(&s);
            let _ = states(&s);
        }
    }
}
