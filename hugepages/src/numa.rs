//! Binding a mapping's pages to one NUMA node: `mbind(2)` with `MPOL_BIND`, before the
//! pages are faulted in, so a shard's segment lives next to its core and NIC. libc has no
//! wrapper (that is libnuma's), so these are raw system calls.

use std::io;
use std::ptr::NonNull;

/// One word of a kernel node mask.
type MaskWord = libc::c_ulong;

/// Bits per mask word.
const WORD_BITS: usize = MaskWord::BITS as usize;

/// The largest node number accepted (the kernel's `MAX_NUMNODES` is at most 1024).
pub(crate) const MAX_NODE: usize = 1023;

/// `get_mempolicy` flag: report the policy of the given address.
const MPOL_F_ADDR: libc::c_ulong = 1 << 1;

/// A mask with only bit `node` set, and the `maxnode` argument for it (bits + 1: the kernel
/// counts one less than it is given).
fn node_mask(node: usize) -> (Vec<MaskWord>, libc::c_ulong) {
    let mut mask = vec![0; node / WORD_BITS + 1];
    mask[node / WORD_BITS] |= 1 << (node % WORD_BITS);
    let maxnode = (mask.len() * WORD_BITS + 1) as libc::c_ulong;
    (mask, maxnode)
}

/// Binds `[ptr, ptr + len_bytes)` to NUMA node `node` (`MPOL_BIND`): pages faulted in later
/// come only from that node. For a shared memfd mapping the policy is the file's, so every
/// mapping of it sees the same placement.
///
/// # Errors
/// `EINVAL` when the node does not exist or has no memory.
pub(crate) fn bind(ptr: NonNull<u8>, len_bytes: usize, node: usize) -> io::Result<()> {
    if node > MAX_NODE {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let (mask, maxnode) = node_mask(node);
    // SAFETY: mbind only changes the memory policy of the range, which is a live mapping of
    // the caller's; it reads `maxnode - 1` bits from `mask`, which holds exactly that many.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            ptr.as_ptr(),
            len_bytes,
            libc::MPOL_BIND,
            mask.as_ptr(),
            maxnode,
            0 as libc::c_uint,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The policy mode and node mask that govern the page at address `addr` (`get_mempolicy`
/// with `MPOL_F_ADDR`): `(MPOL_BIND, [nodes])` for a bound range. For tests and
/// diagnostics; the address is only looked up, so any value is safe to pass.
pub fn policy_at(addr: usize) -> io::Result<(i32, Vec<usize>)> {
    let mut mode: libc::c_int = 0;
    let (mut mask, maxnode) = node_mask(MAX_NODE);
    mask.fill(0);
    // SAFETY: the kernel writes one int to `mode` and at most `maxnode - 1` bits to `mask`,
    // both ours and large enough; with MPOL_F_ADDR it only looks `addr` up, never reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            mask.as_mut_ptr(),
            maxnode,
            addr,
            MPOL_F_ADDR,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let nodes = (0..=MAX_NODE)
        .filter(|&n| mask[n / WORD_BITS] & (1 << (n % WORD_BITS)) != 0)
        .collect();
    Ok((mode, nodes))
}
