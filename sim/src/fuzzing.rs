//! Entry points of the fuzz targets in `sim/fuzz/` (and of the unit tests that feed them
//! nasty inputs): each takes arbitrary bytes, runs a parser of outside input, and must
//! never panic. Errors are fine; panics, hangs and unbounded allocation are bugs.

use crate::workload::{ImportOptions, alibaba, jsonl, swf};

/// SWF importer.
pub fn swf(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(w) = swf::parse("fuzz.swf", text)
    {
        assert!(
            w.jobs
                .windows(2)
                .all(|p| (p[0].submit_s, p[0].id) < (p[1].submit_s, p[1].id))
        );
    }
}

/// Native JSON lines.
pub fn jsonl(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = jsonl::parse("fuzz.jsonl", text);
    }
}

/// Alibaba batch_task CSV (with memory modelled, to exercise that path).
pub fn alibaba(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = alibaba::parse(
            "fuzz.csv",
            text,
            &ImportOptions {
                alibaba_machine_mem_mb: 98_304,
            },
        );
    }
}

/// Cluster SPEC grammar (parsing only, no file is read).
pub fn cluster_spec(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::cluster::parse_spec(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nasty() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\xff\xfe\x00".to_vec(),
            b";".to_vec(),
            b";;;\n;\n".to_vec(),
            b"1".to_vec(),
            b"-1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1".to_vec(),
            b"1 0 0 1 1 -1 -1 1 -1 -1 1 1 1 1 1 1 1 1\n1 0 0 1 1 -1 -1 1 -1 -1 1 1 1 1 1 1 1 1".to_vec(),
            b"1e308 1e308 1e308 1e308 1e308 1e308 1e308 1e308 1e308 1e308 1 1 1 1 1 1 1 1".to_vec(),
            b"1 0 0 1 4294967296 -1 -1 -1 -1 -1 1 1 1 1 1 1 1 1".to_vec(),
            b"1 0 0 1 1 -1 1e300 1 -1 1e300 1 1 1 1 1 1 1 1".to_vec(),
            b"NaN inf -inf 0x10 1_0 +1 .5 5. 1e 0 0 0 0 0 0 0 0 0".to_vec(),
            b"9007199254740993 0 0 1 1 -1 -1 1 -1 -1 1 1 1 1 1 1 1 1".to_vec(),
            "1\u{a0}0 0 1 1 -1 -1 1 -1 -1 1 1 1 1 1 1 1 1".as_bytes().to_vec(),
            b"{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":\"1-\"}".to_vec(),
            b"{\"id\":18446744073709551615,\"submit\":18446744073709551615,\"runtime\":18446744073709551615,\"cpus\":4294967295,\"mem\":\"18446744073709551615-\"}".to_vec(),
            b"{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":{\"min\":1}}".to_vec(),
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
            b"M1,1000000,j,1,Terminated,0,1,100,100".to_vec(),
            b"M1,1,j,1,Terminated,-0,1e-300,1e-300,-1".to_vec(),
            b",,,,,,,,".to_vec(),
            b"task_name\n,,,,Terminated,1,2,3,4".to_vec(),
            b"4x@(((,,,)))".to_vec(),
            b"18446744073709551616x@pu:1".to_vec(),
            b"1x@pu:1;gpus=99999999999".to_vec(),
        ];
        v.push(b"1 ".repeat(100_000));
        v.push("; é\n".repeat(1000).into_bytes());
        v
    }

    #[test]
    fn nasty_inputs_never_panic() {
        for input in nasty() {
            swf(&input);
            jsonl(&input);
            alibaba(&input);
            cluster_spec(&input);
        }
    }

    #[test]
    fn hpc2n_trace_parses_under_the_fuzz_entry() {
        let dir = std::env::var("RETZ_SHARED_DIR").map_or_else(
            |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
            std::path::PathBuf::from,
        );
        let p = dir.join("traces/hpc2n.swf");
        if let Ok(bytes) = std::fs::read(&p) {
            swf(&bytes);
            // Truncations at every 997th byte must not panic either.
            for cut in (0..bytes.len()).step_by(997) {
                swf(&bytes[..cut]);
            }
        } else {
            retz_testkit::require(false, &format!("{} not found", p.display()));
        }
    }
}
