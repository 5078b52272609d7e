//! Spare DMA buffers for record writes.
//!
//! A record is written from a DMA buffer of exactly its size (O_DIRECT writes the whole
//! buffer). A fresh buffer of 1 MiB is a fresh mapping: `perf` of the eager-offload bench
//! showed the shard zeroing and faulting in those pages (`clear_page_erms`, page faults,
//! `unmap_page_range`) as the largest part of what offload added to it
//! (`docs/benchmarks.md`, SSD tier). KV-cache blocks come in a few fixed sizes, so the
//! buffers of finished writes are kept and handed to the next write of the same size.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile};

/// Spare buffers kept at most.
const MAX_SPARES: usize = 4;

/// Bytes of spare buffers kept at most.
const MAX_SPARE_BYTES: usize = 8 << 20;

/// Buffers of finished writes, newest last.
#[derive(Default)]
pub(super) struct Spares {
    free: RefCell<VecDeque<DmaBuffer>>,
}

impl Spares {
    /// A buffer of exactly `len` bytes and whether it is a spare (else it is new, from
    /// `file`). A spare's bytes are whatever its last write left: the caller writes every
    /// byte.
    pub(super) fn take(&self, file: &DmaFile, len: usize) -> (DmaBuffer, bool) {
        let mut free = self.free.borrow_mut();
        match free.iter().rposition(|b| b.len() == len) {
            Some(i) => (free.remove(i).expect("the position was just found"), true),
            None => (file.alloc_dma_buffer(len), false),
        }
    }

    /// Keeps `buf` for a later write, once nothing else holds it (a write still in the
    /// kernel's hands keeps its own reference; such a buffer is simply dropped). The
    /// oldest spares go first when there are too many.
    pub(super) fn give(&self, buf: Rc<DmaBuffer>) {
        let Ok(buf) = Rc::try_unwrap(buf) else {
            return;
        };
        if buf.len() > MAX_SPARE_BYTES {
            return;
        }
        let mut free = self.free.borrow_mut();
        free.push_back(buf);
        while free.len() > MAX_SPARES
            || free.iter().map(DmaBuffer::len).sum::<usize>() > MAX_SPARE_BYTES
        {
            free.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::on_file;
    use super::*;

    #[test]
    fn a_buffer_of_the_same_size_is_handed_out_again() {
        on_file("same-size", |file| async move {
            let s = Spares::default();
            let (a, spare) = s.take(&file, 8192);
            assert!(!spare);
            let at = a.as_ptr();
            s.give(Rc::new(a));
            let (b, spare) = s.take(&file, 8192);
            assert!(spare);
            assert_eq!(b.as_ptr(), at, "the spare came back");
            assert_eq!(b.len(), 8192);
            let (c, spare) = s.take(&file, 4096);
            assert_eq!((c.len(), spare), (4096, false), "another size allocates");
        });
    }

    #[test]
    fn a_buffer_still_shared_is_not_kept_and_old_spares_go_first() {
        on_file("shared", |file| async move {
            let s = Spares::default();
            let held = Rc::new(s.take(&file, 4096).0);
            s.give(held.clone());
            assert_eq!(s.free.borrow().len(), 0, "still held elsewhere");
            for _ in 0..MAX_SPARES + 2 {
                let b = file.alloc_dma_buffer(4096);
                s.give(Rc::new(b));
            }
            assert_eq!(s.free.borrow().len(), MAX_SPARES);
            s.give(Rc::new(file.alloc_dma_buffer(MAX_SPARE_BYTES + 4096)));
            assert_eq!(s.free.borrow().len(), MAX_SPARES, "too big to keep");
        });
    }
}
