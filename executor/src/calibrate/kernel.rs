//! The STREAM-like triad `a[i] = b[i] + s·c[i]` over three `f64` arrays, run on pinned
//! threads ([`TriadTimer`], the real [`Timer`]).
//!
//! Memory goes where it is first touched: the arrays are allocated and filled by a thread
//! pinned on the CPU that should own them, then handed to the measuring thread(s). Every
//! thread pins itself with `sched_setaffinity` before it touches or computes anything.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

use super::{CalibrateError, Experiment, Timer};

/// The real timer: `passes` triads over arrays of `mb` MB in all.
#[derive(Clone, Debug)]
pub struct TriadTimer {
    /// Elements per array.
    pub len: usize,
    /// Triad passes per run.
    pub passes: usize,
}

impl TriadTimer {
    /// Arrays of `mb` MB in all (three arrays), `passes` passes per run.
    pub fn new(mb: usize, passes: usize) -> Result<TriadTimer, CalibrateError> {
        if mb == 0 || passes == 0 {
            return Err(CalibrateError::Options(
                "--mb and the passes must be ≥ 1".to_string(),
            ));
        }
        Ok(TriadTimer {
            len: (mb * 1024 * 1024 / 24).max(1024),
            passes,
        })
    }
}

fn pin(cpu: u32) -> Result<(), CalibrateError> {
    let mut set = CpuSet::new();
    set.set(cpu as usize).map_err(|e| CalibrateError::Pin {
        cpu,
        message: e.to_string(),
    })?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| CalibrateError::Pin {
        cpu,
        message: format!("sched_setaffinity: {e}"),
    })
}

type Arrays = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Arrays of `len` elements first-touched on `cpu`.
fn touched_on(cpu: u32, len: usize) -> Result<Arrays, CalibrateError> {
    std::thread::scope(|s| {
        s.spawn(move || {
            pin(cpu)?;
            let mut a = Vec::with_capacity(len);
            let mut b = Vec::with_capacity(len);
            let mut c = Vec::with_capacity(len);
            for i in 0..len {
                a.push(0.0);
                b.push(i as f64);
                c.push(1.0);
            }
            Ok((a, b, c))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(CalibrateError::Pin {
                cpu,
                message: "the thread stopped".to_string(),
            })
        })
    })
}

fn triad(a: &mut [f64], b: &[f64], c: &[f64], passes: usize) {
    let s = 3.0;
    for _ in 0..passes {
        for ((x, y), z) in a.iter_mut().zip(b).zip(c) {
            *x = y + s * z;
        }
        black_box(&mut *a);
    }
}

/// Runs the triad on `cpu` over the slices; returns the seconds it took.
fn timed_on(
    cpu: u32,
    a: &mut [f64],
    b: &[f64],
    c: &[f64],
    passes: usize,
) -> Result<f64, CalibrateError> {
    pin(cpu)?;
    let t = Instant::now();
    triad(a, b, c, passes);
    Ok(t.elapsed().as_secs_f64())
}

fn joined<T>(
    cpu: u32,
    r: std::thread::Result<Result<T, CalibrateError>>,
) -> Result<T, CalibrateError> {
    r.unwrap_or_else(|_| {
        Err(CalibrateError::Pin {
            cpu,
            message: "the thread stopped".to_string(),
        })
    })
}

impl Timer for TriadTimer {
    fn time(&mut self, e: &Experiment) -> Result<f64, CalibrateError> {
        let passes = self.passes;
        match *e {
            Experiment::Alone { cpu, mem_cpu } => {
                let (mut a, b, c) = touched_on(mem_cpu, self.len)?;
                std::thread::scope(|s| {
                    joined(
                        cpu,
                        s.spawn(|| timed_on(cpu, &mut a, &b, &c, passes)).join(),
                    )
                })
            }
            Experiment::Pair { cpus, mem_cpu } => {
                let (mut a, b, c) = touched_on(mem_cpu, self.len)?;
                let h = self.len / 2;
                let (a0, a1) = a.split_at_mut(h);
                let (b0, b1) = b.split_at(h);
                let (c0, c1) = c.split_at(h);
                let start = Instant::now();
                std::thread::scope(|s| {
                    let t0 = s.spawn(|| timed_on(cpus[0], a0, b0, c0, passes));
                    let t1 = s.spawn(|| timed_on(cpus[1], a1, b1, c1, passes));
                    joined(cpus[0], t0.join())?;
                    joined(cpus[1], t1.join())?;
                    Ok::<(), CalibrateError>(())
                })?;
                Ok(start.elapsed().as_secs_f64())
            }
            Experiment::WithNoise { cpu, noise_cpu } => {
                let (mut a, b, c) = touched_on(cpu, self.len)?;
                let (mut na, nb, nc) = touched_on(noise_cpu, self.len)?;
                let stop = AtomicBool::new(false);
                let started = AtomicBool::new(false);
                std::thread::scope(|s| {
                    let noise = s.spawn(|| {
                        pin(noise_cpu)?;
                        started.store(true, Ordering::Release);
                        while !stop.load(Ordering::Acquire) {
                            triad(&mut na, &nb, &nc, 1);
                        }
                        Ok(())
                    });
                    while !started.load(Ordering::Acquire) && !noise.is_finished() {
                        std::thread::yield_now();
                    }
                    let r = s.spawn(|| timed_on(cpu, &mut a, &b, &c, passes)).join();
                    stop.store(true, Ordering::Release);
                    joined(noise_cpu, noise.join())?;
                    joined(cpu, r)
                })
            }
        }
    }

    fn bytes_per_run(&self) -> u64 {
        24 * self.len as u64 * self.passes as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triad_computes_and_pinning_errors_are_reported() {
        let mut a = vec![0.0; 4];
        triad(&mut a, &[1.0, 2.0, 3.0, 4.0], &[1.0; 4], 2);
        assert_eq!(a, vec![4.0, 5.0, 6.0, 7.0]);
        let mut t = TriadTimer::new(1, 1).unwrap();
        assert_eq!(t.bytes_per_run(), 24 * t.len as u64);
        // CPU 4095 is never allowed on a test machine: one clear error, no panic.
        let e = t
            .time(&Experiment::Alone {
                cpu: 4095,
                mem_cpu: 4095,
            })
            .unwrap_err();
        assert!(e.to_string().contains("CPU 4095"), "{e}");
        assert!(TriadTimer::new(0, 1).is_err());
    }
}
