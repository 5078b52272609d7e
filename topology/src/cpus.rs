//! The cores this process may run on, and pinning a thread to one: `sched_getaffinity(2)` and
//! `sched_setaffinity(2)` over a mask sized at run time, so machines with more than the 1024
//! cores of glibc's fixed `cpu_set_t` work too.

use std::io;

use crate::error::Error;
use crate::spec::{MAX_CORE_ID, format_core_list};

/// One word of a kernel CPU mask: bit `n % BITS` of word `n / BITS` is core `n`.
type MaskWord = libc::c_ulong;

/// Bits per mask word.
const WORD_BITS: usize = MaskWord::BITS as usize;

/// The mask size first tried, in bits: glibc's `CPU_SETSIZE`.
const FIRST_MASK_BITS: usize = 1024;

/// The cores this process may run on, sorted: the affinity mask of the process's main thread
/// (`sched_getaffinity(getpid())`), which is the mask the process started with unless the main
/// thread has been pinned since — call it before pinning the main thread.
///
/// Falls back (with a warning) to cores `0..n` for the `n` online cores if the kernel refuses,
/// which it does not on any supported Linux.
pub fn online_cpus() -> Vec<usize> {
    // SAFETY: getpid only reads the process id.
    let pid = unsafe { libc::getpid() };
    match affinity(pid) {
        Ok(cpus) if !cpus.is_empty() => cpus,
        Ok(_) => fallback_cpus("the affinity mask is empty"),
        Err(err) => fallback_cpus(&err.to_string()),
    }
}

/// Pins the calling thread to `core` alone.
pub fn pin_current_thread(core: usize) -> Result<(), Error> {
    if core > MAX_CORE_ID {
        return Err(Error::CoreOutOfRange {
            core,
            max: MAX_CORE_ID,
        });
    }
    let bits = FIRST_MASK_BITS.max(core + 1);
    let mut mask: Vec<MaskWord> = vec![0; bits.div_ceil(WORD_BITS)];
    mask[core / WORD_BITS] |= 1 << (core % WORD_BITS);
    set_affinity_of_current_thread(&mask).map_err(|source| Error::Pin {
        core,
        allowed: format_core_list(&online_cpus()),
        source,
    })?;
    tracing::debug!(core, "thread pinned");
    Ok(())
}

/// Cores `0..n` for the online count `n`, when the affinity mask cannot be read.
fn fallback_cpus(why: &str) -> Vec<usize> {
    // SAFETY: sysconf only reads a configuration value.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let count = usize::try_from(online).unwrap_or(1).max(1);
    tracing::warn!(
        reason = why,
        count,
        "could not read this process's CPU affinity; assuming cores 0..count"
    );
    (0..count).collect()
}

/// The cores thread `tid` (0: the calling thread) may run on, sorted.
pub(crate) fn affinity(tid: libc::pid_t) -> io::Result<Vec<usize>> {
    let mut bits = FIRST_MASK_BITS;
    loop {
        let mut mask: Vec<MaskWord> = vec![0; bits / WORD_BITS];
        match get_affinity(tid, &mut mask) {
            Ok(()) => return Ok(mask_to_cores(&mask)),
            // EINVAL: the kernel's mask is wider than ours; try twice as wide.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) && bits <= MAX_CORE_ID => {
                bits *= 2;
            }
            Err(err) => return Err(err),
        }
    }
}

/// The set bits of a mask, as core numbers in ascending order.
fn mask_to_cores(mask: &[MaskWord]) -> Vec<usize> {
    let mut cores = Vec::new();
    for (word_index, &word) in mask.iter().enumerate() {
        let mut rest = word;
        while rest != 0 {
            let bit = rest.trailing_zeros() as usize;
            cores.push(word_index * WORD_BITS + bit);
            rest &= rest - 1;
        }
    }
    cores
}

/// `sched_getaffinity(tid, mask)`.
fn get_affinity(tid: libc::pid_t, mask: &mut [MaskWord]) -> io::Result<()> {
    // SAFETY: the kernel writes at most `size_of_val(mask)` bytes into `mask`, which we own
    // mutably; a cpu_set_t is an array of unsigned longs, so any whole number of words is a
    // valid (dynamically sized) set.
    let rc = unsafe {
        libc::sched_getaffinity(
            tid,
            std::mem::size_of_val(mask),
            mask.as_mut_ptr().cast::<libc::cpu_set_t>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `sched_setaffinity(0, mask)`: restricts the calling thread to the cores set in `mask`.
fn set_affinity_of_current_thread(mask: &[MaskWord]) -> io::Result<()> {
    // SAFETY: the kernel only reads `size_of_val(mask)` bytes from `mask`; a cpu_set_t is an
    // array of unsigned longs, so any whole number of words is a valid set.
    let rc = unsafe {
        libc::sched_setaffinity(
            0,
            std::mem::size_of_val(mask),
            mask.as_ptr().cast::<libc::cpu_set_t>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_cpus_are_sorted_distinct_and_match_available_parallelism() {
        let cpus = online_cpus();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]), "{cpus:?}");
        // std derives available_parallelism from the same mask (no cgroup quota here, or a
        // smaller number when there is one).
        let parallelism = std::thread::available_parallelism().unwrap().get();
        assert!(parallelism <= cpus.len(), "{parallelism} > {cpus:?}");
    }

    #[test]
    fn mask_to_cores_reads_every_word() {
        let mut mask: Vec<MaskWord> = vec![0; 3];
        mask[0] = 0b1011;
        mask[2] = 1 << (WORD_BITS - 1);
        assert_eq!(mask_to_cores(&mask), vec![0, 1, 3, 3 * WORD_BITS - 1]);
        assert!(mask_to_cores(&[0, 0]).is_empty());
    }

    #[test]
    fn pinning_restricts_only_the_calling_thread() {
        let cpus = online_cpus();
        let core = *cpus.last().unwrap();
        let seen = std::thread::spawn(move || {
            pin_current_thread(core).expect("pin to an available core");
            affinity(0).expect("read own affinity")
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![core]);
        // The process's mask (main thread) is untouched.
        assert_eq!(online_cpus(), cpus);
    }

    #[test]
    fn pinning_to_a_missing_core_says_which_cores_exist() {
        let cpus = online_cpus();
        let missing = (0..=MAX_CORE_ID).find(|c| !cpus.contains(c)).unwrap();
        let err = std::thread::spawn(move || pin_current_thread(missing).unwrap_err())
            .join()
            .unwrap();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::Pin { core, .. } if core == missing),
            "{msg}"
        );
        assert!(msg.contains(&format_core_list(&cpus)), "{msg}");

        let err = pin_current_thread(MAX_CORE_ID + 1).unwrap_err();
        assert!(matches!(err, Error::CoreOutOfRange { .. }), "{err}");
    }
}
