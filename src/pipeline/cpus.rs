//! `[pipeline] cpus`: the CPUs the pipeline's own threads (source, workers,
//! sink I/O, offset tracker) run on. librdkafka's threads keep every CPU.
//!
//! Why: librdkafka has one fetch request in flight per broker, so the
//! consumer reads at the pace of a serial chain (the broker builds a
//! response, librdkafka's broker thread parses it, then asks again). When
//! the workers share a core, and its cache, with that chain, every step of
//! it waits, even with idle CPU left over: on a 2-core machine shared with
//! the broker, confining the pipeline's threads to one core raised the
//! Kafka harness from 0.84× to 0.94× a bare consumer (BENCHMARKS.md).

/// Why the pipeline's threads cannot be confined to `[pipeline] cpus`.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("CPU {0} is beyond what Linux supports")]
    OutOfRange(usize),
    #[error(transparent)]
    Affinity(#[from] std::io::Error),
    #[error("only supported on Linux")]
    Unsupported,
    #[error("the CPU check panicked")]
    Panicked,
    #[error("pipeline.cpus: cannot run on CPUs {cpus:?}: {cause}")]
    Refused {
        cpus: Vec<usize>,
        cause: Box<CpuError>,
    },
}

/// Confines the calling thread to `cpus`; nothing to do when empty.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), CpuError> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: `cpu_set_t` is a plain bit array, and all zeros is the empty
    // set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(CpuError::OutOfRange(cpu));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE, so the bit is inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid, initialised cpu_set_t of the size passed;
    // pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().into())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), CpuError> {
    if cpus.is_empty() {
        Ok(())
    } else {
        Err(CpuError::Unsupported)
    }
}

/// Checks `cpus` can be used, from a short-lived thread (pinning is per
/// thread, and the caller's must stay as it is). No thread when empty.
pub fn check(cpus: &[usize]) -> Result<(), CpuError> {
    if cpus.is_empty() {
        return Ok(());
    }
    let wanted = cpus.to_vec();
    std::thread::spawn(move || pin_current_thread(&wanted))
        .join()
        .map_err(|_| CpuError::Panicked)?
        .map_err(|e| CpuError::Refused {
            cpus: cpus.to_vec(),
            cause: Box::new(e),
        })
}

/// Pins, logging (not failing) if it cannot: `check` ran at start.
pub fn pin_or_warn(cpus: &[usize]) {
    if let Err(e) = pin_current_thread(cpus) {
        tracing::warn!(error = %e, "cannot confine this thread to pipeline.cpus");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn allowed() -> Vec<usize> {
        // SAFETY: as in `pin_current_thread`; sched_getaffinity fills `set`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let r =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        assert_eq!(r, 0);
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: every index is below CPU_SETSIZE.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    }

    #[test]
    fn a_pinned_thread_runs_only_on_its_cpus_and_bad_ones_are_refused() {
        let first = allowed()[0];
        let got = std::thread::spawn(move || {
            pin_current_thread(&[first]).unwrap();
            allowed()
        })
        .join()
        .unwrap();
        assert_eq!(got, vec![first]);
        assert!(check(&[first]).is_ok());
        let err = check(&[100_000]).unwrap_err();
        assert!(
            matches!(&err, CpuError::Refused { cause: source, .. } if matches!(**source, CpuError::OutOfRange(100_000))),
            "{err}"
        );
        assert!(err.to_string().starts_with("pipeline.cpus: "), "{err}");
        assert!(check(&[]).is_ok());
    }
}
