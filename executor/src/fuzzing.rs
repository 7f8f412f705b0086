//! Entry points of the fuzz targets in `executor/fuzz` (and of the unit test that feeds
//! them nasty inputs). Each takes arbitrary bytes, must never panic, and asserts the
//! invariants of the parser it drives (a failed assertion is a bug in this crate).

use std::collections::BTreeMap;

use retz_placement::{CpuSet, NodeSet};

use crate::pinning::{self, Machine};
use crate::procfs;
use crate::spec::TaskSpec;
use crate::subst;

/// procfs files: parsing never panics; a parsed status list prints back parseably.
pub fn procfs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(status) = procfs::parse_status(&text)
        && let Some(cpus) = status.cpus_allowed
    {
        assert!(cpus.to_string().parse::<retz_placement::CpuSet>().is_ok());
    }
    if let Ok(entries) = procfs::parse_cgroup(&text) {
        for e in entries {
            assert!(e.path.starts_with('/'));
        }
    }
}

/// Task data: parse, validate and plan pinning; a valid spec serialises back to an equal
/// spec, and a plan never pins outside the machine.
pub fn task_spec(data: &[u8]) {
    retz_proto::task::fuzz(data);
    let Ok(spec) = TaskSpec::from_slice(data) else {
        return;
    };
    let Ok(valid) = spec.validate() else {
        return;
    };
    let machine = Machine {
        cpus: CpuSet::from_range(0, 7),
        mems: NodeSet::from_range(0, 1),
    };
    if let Ok(plan) = pinning::plan(&valid, &machine) {
        if let Some(cpus) = &plan.cpus {
            assert!(cpus.is_subset(&machine.cpus) && !cpus.is_empty());
        }
        if let Some(mems) = &plan.mems {
            assert!(mems.is_subset(&machine.mems));
        }
    }
}

/// Substitution: never panics; text without `$` is unchanged; a value without special
/// characters is inserted verbatim.
pub fn subst(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (template, value) = text.split_once('\u{1}').unwrap_or((&text, "x'y"));
    let vars = BTreeMap::from([("RETZ_V".to_owned(), value.to_owned())]);
    let command = subst::substitute_command(template, &vars);
    let literal = subst::substitute_literal(template, &vars);
    if !template.contains('$') {
        assert_eq!(command, template);
        assert_eq!(literal, template);
    }
    // A plain value is inserted as it is in every shell context, so outside comments and
    // backslash escapes (which the command scan respects) both substitutions agree.
    let plain = BTreeMap::from([("RETZ_V".to_owned(), "0-3".to_owned())]);
    if !template.contains('#') && !template.contains('\\') {
        assert_eq!(
            subst::substitute_command(template, &plain),
            subst::substitute_literal(template, &plain)
        );
    }
}

/// Mesos durations: never panic; what parses is finite.
pub fn duration(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = crate::api::env::parse_duration(&text) {
        assert!(d.as_secs_f64().is_finite());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs a fuzzer would find first, run on every test pass.
    #[test]
    fn nasty_corpus() {
        let corpus: &[&[u8]] = &[
            b"",
            b"\0",
            b"\xff\xfe\xfd",
            b"0-8191",
            b"0-8192",
            b"1,,2",
            b"-",
            b"9999999999999999999999",
            b"Cpus_allowed_list:\t0-1\nState:\tZ\n",
            b"1:cpuset:/a\n0::/\n:::\n",
            br#"{"command":"x","cpus":1,"mem_mb":1,"affinity":"numa-strict","cpuset":"0-100","pin_required":true}"#,
            br#"{"command":"x","cpus":1,"mem_mb":1,"affinity":"spread","cpuset":"7-9","mem_nodes":"0-5"}"#,
            br#"{"command":"x","cpus":4294967295,"mem_mb":18446744073709551615,"affinity":"none"}"#,
            br#"{"command":"","cpus":1,"mem_mb":1,"affinity":"none","env":{"":""}}"#,
            b"$RETZ_V${RETZ_V}${RETZ_V\x01$(x)`y`'\"\\",
            b"\"$(`'$RETZ_V'`)\"\x01a b",
            b"# '\n$RETZ_V\x01'",
            b"1.5secs",
            b"99999999999999999999weeks",
            b"NaNsecs",
        ];
        for input in corpus {
            procfs(input);
            task_spec(input);
            subst(input);
            duration(input);
        }
    }
}
