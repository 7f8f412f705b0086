//! The SWF importer on the shared HPC2N log.

mod common;

use retz_sim::workload::{Format, ImportOptions, load_workload};

#[test]
fn imports_the_hpc2n_log_with_its_header() {
    let Some(p) = common::hpc2n() else { return };
    let w = load_workload(&p, None, &ImportOptions::default()).unwrap();
    assert_eq!(w.format, Format::Swf);
    // 3,170 job records (the file's last line is blank); 25 have run time -1.
    assert_eq!(w.jobs.len() as u64 + w.skipped_total(), 3170);
    assert_eq!(w.skipped_total(), 25);
    assert_eq!(
        w.skipped.get("run time unknown (field 4 is -1)").copied(),
        Some(25)
    );
    assert_eq!(w.jobs.len(), 3145);
    // The header is kept, in order, without the `;`.
    assert_eq!(w.header.len(), 23);
    assert_eq!(w.header[0], "Version: 2.2");
    assert!(w.header.iter().any(|h| h == "Acknowledge: Ake Sandgren"));
    assert!(
        w.header
            .iter()
            .any(|h| h.starts_with("UnixStartTime: 1027839845"))
    );
    // Job 1: submit 0, run 31405 s, 30 requested processors, memory unknown.
    let j1 = w.jobs.iter().find(|j| j.id == 1).unwrap();
    assert_eq!(
        (j1.submit_s, j1.runtime_s, j1.cpus.min, j1.mem_mb.min),
        (0, 31405, 30, 0)
    );
    // Job 7019: used memory 57344 KB/proc (field 7) but requested memory 972800 KB/proc
    // (field 10) wins: 972800 * 16 / 1024 = 15200 MB.
    let j = w.jobs.iter().find(|j| j.id == 7019).unwrap();
    assert_eq!((j.cpus.min, j.mem_mb.min), (16, 15200));
    // Job 16 has run time -1: skipped.
    assert!(!w.jobs.iter().any(|j| j.id == 16));
    // Sorted by submit time.
    assert!(w.jobs.windows(2).all(|p| p[0].submit_s <= p[1].submit_s));
    assert!(
        w.notes
            .iter()
            .any(|n| n.contains("requested processors (field 8) for 3145 jobs"))
    );
}
