//! [`Memory`]: segment or buffer memory that is either a region of its own or a slice of
//! the process's [`Arena`], so callers allocate without caring which.

use crate::arena::{Arena, ArenaSlice};
use crate::error::Error;
use crate::region::{Backing, Region, RegionOptions};

/// Memory of one segment or buffer.
#[derive(Debug)]
pub enum Memory {
    /// A region mapped for this use alone.
    Region(Region),
    /// A slice of the arena (`MC_MMAP_ARENA_POOL_SIZE`).
    Arena(ArenaSlice),
}

impl Memory {
    /// At least `len_bytes` of memory: from `arena` when one is given and has room, else a
    /// region of its own made with `opts` (logged when the arena is full, since the
    /// operator sized the arena to hold such requests).
    pub fn allocate(
        len_bytes: usize,
        opts: &RegionOptions,
        arena: Option<&Arena>,
    ) -> Result<Memory, Error> {
        if let Some(arena) = arena.filter(|_| len_bytes > 0) {
            if let Some(slice) = arena.alloc(len_bytes) {
                tracing::debug!(segment = %opts.name, len_bytes, "memory from the mmap arena");
                return Ok(Memory::Arena(slice));
            }
            tracing::warn!(
                segment = %opts.name,
                len_bytes,
                pool_bytes = arena.pool_bytes(),
                used_bytes = arena.used_bytes(),
                "the mmap arena has no free range this large; mapping this one on its own (raise MC_MMAP_ARENA_POOL_SIZE)"
            );
        }
        Region::new(len_bytes, opts).map(Memory::Region)
    }

    /// Faults in `[offset, offset + len)` without changing its bytes
    /// ([`Region::populate_range`]); an arena slice is left as it is (the arena decides).
    pub fn populate_range(&self, offset: usize, len: usize) -> std::io::Result<()> {
        match self {
            Memory::Region(r) => r.populate_range(offset, len),
            Memory::Arena(_) => Ok(()),
        }
    }

    /// The start of the memory, page aligned.
    pub fn as_ptr(&self) -> *mut u8 {
        match self {
            Memory::Region(r) => r.as_ptr(),
            Memory::Arena(s) => s.as_ptr(),
        }
    }

    /// Its length: what was asked for rounded up to whole pages.
    pub fn len_bytes(&self) -> usize {
        match self {
            Memory::Region(r) => r.len_bytes(),
            Memory::Arena(s) => s.len_bytes(),
        }
    }

    /// The page size behind it.
    pub fn page_bytes(&self) -> usize {
        match self {
            Memory::Region(r) => r.page_bytes(),
            Memory::Arena(s) => s.page_bytes(),
        }
    }

    /// Where its pages come from.
    pub fn backing(&self) -> Backing {
        match self {
            Memory::Region(r) => r.backing(),
            Memory::Arena(s) => s.backing(),
        }
    }

    /// Whether it is a slice of the arena.
    pub fn from_arena(&self) -> bool {
        matches!(self, Memory::Arena(_))
    }
}

impl From<Region> for Memory {
    fn from(r: Region) -> Memory {
        Memory::Region(r)
    }
}
