//! A dummy's pool as the real client maps it: the memfd handed over, and the byte ranges
//! of it that requests name.
//!
//! The bytes are the dummy's: the real client reads and writes them only during the request
//! that names them, which is the contract of Mooncake's buffer API — the caller leaves a
//! buffer alone until the call returns. The bytes are plain `u8`, so whatever a misbehaving
//! dummy does to its own pool meanwhile can only garble its own values; every range is
//! checked against the mapping before it is touched.

use std::os::fd::OwnedFd;

use mc_hugepages::Region;

/// A mapped dummy pool.
pub struct MappedPool {
    region: Region,
}

impl MappedPool {
    /// Maps the memfd a dummy handed over; it must hold at least `size_bytes`.
    pub fn map(fd: OwnedFd, size_bytes: u64) -> Result<MappedPool, String> {
        use std::os::fd::AsFd;
        if !Region::size_sealed(fd.as_fd()) {
            // An unsealed memfd could be shrunk by the dummy under a request: SIGBUS here.
            return Err("the pool's memfd is not size-sealed (F_SEAL_SHRINK)".into());
        }
        let region = Region::from_fd(fd, "dummy-pool", None).map_err(|e| e.to_string())?;
        if (region.len_bytes() as u64) < size_bytes {
            return Err(format!(
                "the pool's memfd holds {} bytes, the dummy announced {size_bytes}",
                region.len_bytes()
            ));
        }
        Ok(MappedPool { region })
    }

    /// Bytes mapped.
    pub fn len_bytes(&self) -> usize {
        self.region.len_bytes()
    }

    /// `[offset, offset + len)` as a usize range, when the mapping holds it.
    fn range(&self, offset: u64, len: u64) -> Option<(usize, usize)> {
        let start = usize::try_from(offset).ok()?;
        let len = usize::try_from(len).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.len_bytes()).then_some((start, len))
    }

    /// The bytes of `[offset, offset + len)`, to read, or `None` when out of bounds.
    pub fn src(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let (start, len) = self.range(offset, len)?;
        // SAFETY: `range` checked that [start, start + len) lies inside the mapping, which
        // lives as long as `&self`. The memory is plain bytes shared with the dummy, which
        // does not write them while the request that names them runs (module doc); this
        // process writes pool bytes only through `dsts`, which a Put never calls.
        Some(unsafe { std::slice::from_raw_parts(self.region.as_ptr().add(start), len) })
    }

    /// The ranges `(offset, len)`, to write, in order; `Err` with the reason when one is
    /// out of bounds or two share a byte (then none is handed out).
    pub fn dsts(&mut self, ranges: &[(u64, u64)]) -> Result<Vec<&mut [u8]>, String> {
        let mut checked = Vec::with_capacity(ranges.len());
        for &(offset, len) in ranges {
            let r = self.range(offset, len).ok_or_else(|| {
                format!(
                    "range {offset}+{len} is outside the pool of {} bytes",
                    self.len_bytes()
                )
            })?;
            checked.push(r);
        }
        let mut sorted: Vec<(usize, usize)> =
            checked.iter().copied().filter(|&(_, l)| l > 0).collect();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0].0 + w[0].1 > w[1].0) {
            return Err("two destination buffers share bytes".into());
        }
        let base = self.region.as_ptr();
        Ok(checked
            .into_iter()
            .map(|(start, len)| {
                // SAFETY: each range lies inside the mapping (checked above) and no two
                // non-empty ranges overlap (checked above), so the slices are disjoint;
                // `&mut self` keeps every other slice of this pool (from `src` or an
                // earlier `dsts`) from living meanwhile. The dummy leaves the bytes alone
                // while the request runs (module doc).
                unsafe { std::slice::from_raw_parts_mut(base.add(start), len) }
            })
            .collect())
    }
}

#[cfg(test)]
mod seal_tests {
    use super::*;
    use mc_hugepages::RegionOptions;

    fn region() -> Region {
        let opts = RegionOptions {
            name: "seal-test".into(),
            prefault: false,
            ..RegionOptions::default()
        };
        Region::new(1 << 20, &opts).unwrap()
    }

    #[test]
    fn only_a_size_sealed_pool_is_mapped() {
        let open = region();
        let fd = open.fd().try_clone_to_owned().unwrap();
        let e = MappedPool::map(fd, 1 << 20).err().expect("refused");
        assert!(e.contains("size-sealed"), "{e}");
        let sealed = region();
        sealed.seal_size().unwrap();
        let fd = sealed.fd().try_clone_to_owned().unwrap();
        assert!(MappedPool::map(fd, 1 << 20).is_ok());
        // Sealed for good: the size cannot change any more.
        let f = std::fs::File::from(sealed.fd().try_clone_to_owned().unwrap());
        assert!(f.set_len(4096).is_err());
    }
}
