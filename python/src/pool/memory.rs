//! Memory behind buffer-pool leases: the store's local buffer (one mapping of
//! `local_buffer_size` bytes per set-up client, carved up first-fit) and overflow buffers
//! (one aligned heap allocation each, for when the local buffer is full).
//!
//! Both stay where they are until dropped, so an address handed out is valid for as long
//! as the [`LocalSlice`] or [`OverflowBytes`] that owns it lives.

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::Arc;

use mc_hugepages::{Memory, RegionOptions};
use parking_lot::Mutex;

/// Alignment of every slice of the local buffer: a cache line, enough for any dtype and
/// for DMA (Mooncake's local-buffer allocator promises the same).
pub const LOCAL_ALIGN_BYTES: usize = 64;

/// The store's local buffer: `capacity` bytes of one mapping, lent out in slices.
pub struct LocalBuffer {
    mem: Memory,
    capacity: usize,
    /// Free ranges, offset → length; adjacent ranges are always merged.
    free: Mutex<BTreeMap<usize, usize>>,
}

impl LocalBuffer {
    /// A local buffer of `capacity` bytes. Pages are not prefaulted: they cost memory only
    /// once written (`prewarm` faults them in ahead of use).
    pub fn new(capacity: usize) -> Result<LocalBuffer, mc_hugepages::Error> {
        let opts = RegionOptions {
            name: "mc-local-buffer".into(),
            prefault: false,
            ..RegionOptions::default()
        };
        let mem = Memory::allocate(capacity, &opts, None)?;
        Ok(LocalBuffer {
            mem,
            capacity,
            free: Mutex::new(BTreeMap::from([(0, capacity)])),
        })
    }

    /// Address of the first byte.
    pub fn base(&self) -> usize {
        self.mem.as_ptr().addr()
    }

    /// Bytes it holds (what `local_buffer_size` asked for).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Faults in the first `len` bytes (at most all of them), leaving their contents.
    pub fn prefault(&self, len: usize) -> std::io::Result<()> {
        let len = len.min(self.capacity);
        if len == 0 {
            return Ok(());
        }
        self.mem.populate_range(0, len)
    }

    /// A slice of at least `len` bytes (at least one), aligned to [`LOCAL_ALIGN_BYTES`];
    /// `None` when no free range is large enough.
    pub fn alloc(self: &Arc<Self>, len: usize) -> Option<LocalSlice> {
        let len = len.max(1).checked_next_multiple_of(LOCAL_ALIGN_BYTES)?;
        let mut free = self.free.lock();
        // Offsets and lengths of free ranges are multiples of the alignment (the capacity
        // aside, which only shortens the last range), so the first fit is aligned.
        let (&offset, &have) = free.iter().find(|&(_, &have)| have >= len)?;
        free.remove(&offset);
        if have > len {
            free.insert(offset + len, have - len);
        }
        debug_assert_eq!(offset % LOCAL_ALIGN_BYTES, 0);
        Some(LocalSlice {
            buf: Arc::clone(self),
            offset,
            len,
        })
    }

    /// Takes `[offset, offset + len)` back, merging it with free neighbours.
    fn give_back(&self, offset: usize, len: usize) {
        let mut free = self.free.lock();
        let (mut start, mut end) = (offset, offset + len);
        if let Some((&s, &l)) = free.range(..offset).next_back() {
            assert!(s + l <= offset, "local buffer range freed twice");
            if s + l == offset {
                free.remove(&s);
                start = s;
            }
        }
        if let Some(&l) = free.get(&end) {
            free.remove(&end);
            end += l;
        }
        assert!(
            free.range(start..end).next().is_none(),
            "local buffer range freed twice"
        );
        free.insert(start, end - start);
    }
}

/// A slice of the local buffer, given back when dropped.
pub struct LocalSlice {
    buf: Arc<LocalBuffer>,
    offset: usize,
    len: usize,
}

impl LocalSlice {
    /// Address of the first byte.
    pub fn addr(&self) -> usize {
        self.buf.base() + self.offset
    }
}

impl Drop for LocalSlice {
    fn drop(&mut self) {
        self.buf.give_back(self.offset, self.len);
    }
}

/// `len` zeroed bytes of heap memory at an address that is a multiple of `align`; what a
/// lease gets when the local buffer is full. Zeroed, so a memoryview over it never shows
/// uninitialised bytes.
pub struct OverflowBytes {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: `OverflowBytes` owns its allocation outright (like a `Box<[u8]>`); it hands out
// only the address, and who may touch the bytes behind it is the lease's business.
unsafe impl Send for OverflowBytes {}
// SAFETY: as for `Send`: a shared `&OverflowBytes` gives only the address.
unsafe impl Sync for OverflowBytes {}

impl OverflowBytes {
    /// The allocation, or `None` when `align` is not a power of two, the size does not fit
    /// a layout, or the allocator has no memory.
    pub fn new(len: usize, align: usize) -> Option<OverflowBytes> {
        let layout = Layout::from_size_align(len.max(1), align).ok()?;
        // SAFETY: the layout has a non-zero size (at least one byte, above).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        NonNull::new(raw).map(|ptr| OverflowBytes { ptr, layout })
    }

    /// Address of the first byte.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }
}

impl Drop for OverflowBytes {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this very layout and is freed once,
        // here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A set-up client's local buffer, mapped on first use (the first `BufferPool`), so a
/// client that never makes a pool never maps it.
pub struct LocalBufferSlot {
    capacity: usize,
    buf: Mutex<Option<Arc<LocalBuffer>>>,
}

impl LocalBufferSlot {
    /// A slot for a local buffer of `capacity` bytes (`local_buffer_size`).
    pub fn new(capacity: usize) -> LocalBufferSlot {
        LocalBufferSlot {
            capacity,
            buf: Mutex::new(None),
        }
    }

    /// Bytes the local buffer holds (or will).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The local buffer if it was mapped.
    pub fn get(&self) -> Option<Arc<LocalBuffer>> {
        self.buf.lock().clone()
    }

    /// The local buffer, mapping it now if it is not yet; `fresh` is told when it was.
    /// `None` when the client was set up with `local_buffer_size=0`.
    pub fn get_or_map(
        &self,
        fresh: impl FnOnce(&LocalBuffer),
    ) -> Result<Option<Arc<LocalBuffer>>, mc_hugepages::Error> {
        if self.capacity == 0 {
            return Ok(None);
        }
        let mut slot = self.buf.lock();
        if let Some(b) = &*slot {
            return Ok(Some(Arc::clone(b)));
        }
        let b = Arc::new(LocalBuffer::new(self.capacity)?);
        fresh(&b);
        *slot = Some(Arc::clone(&b));
        Ok(Some(b))
    }
}
