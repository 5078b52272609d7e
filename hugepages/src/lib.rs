//! Memory regions for mooncake-rs store segments.
//!
//! A store node keeps its segment — the bytes clients put into and get from — in one
//! [`Region`]: an anonymous file made with `memfd_create(2)`, sized with `ftruncate(2)` and
//! mapped `MAP_SHARED` read-write. A memfd rather than anonymous memory because its descriptor
//! ([`Region::fd`]) can be handed to another process (over a Unix socket) which then maps the
//! very same bytes; that is how a co-located client reads a segment without a copy.
//!
//! The pages come from one of two places, chosen by [`HugePolicy`]:
//! - plain pages ([`Backing::Memfd`]), the size of the base page (4 KiB on x86-64);
//! - the kernel's hugetlb pool ([`Backing::MemfdHugeTlb`], `MFD_HUGETLB`), 2 MiB or 1 GiB pages
//!   that an administrator reserves in advance (`/proc/sys/vm/nr_hugepages`). They spare the
//!   TLB and make every fault cover a large range. The whole region is reserved from the pool
//!   when it is mapped, so a short pool fails at [`Region::new`], never later with `SIGBUS`.
//!
//! By default every page is faulted in at creation ([`RegionOptions::prefault`]) with
//! `madvise(MADV_POPULATE_WRITE)`, or by touching one byte per page on kernels older than 5.14:
//! receiving into never-touched pages costs several times the copy itself, and a segment's
//! first writes should not pay that.
//!
//! [`RegionOptions::numa_node`] binds a region's pages to one NUMA node (`mbind`,
//! `MPOL_BIND`) before they are faulted in; the core plan names each shard's node.
//!
//! A region can also map part of an existing named file, such as a POSIX shared-memory object
//! under `/dev/shm` that another process created ([`Region::map_file`], [`Backing::File`]).
//!
//! An [`Arena`] is one region reserved at start (Mooncake's `MC_MMAP_ARENA_POOL_SIZE`, off
//! with `MC_DISABLE_MMAP_ARENA=1`; [`MemoryEnv`] reads these and the hugepage variables)
//! that later mounts and client buffers take slices of; [`Memory`] is either kind.
//!
//! [`MemFile`] is a growable memfd read and written by copying, for small state that must
//! outlive its process (a shard's object index).
//!
//! [`handover`] passes such descriptors to another process (`SCM_RIGHTS`), so a restarted
//! data plane maps the memory its predecessor served, and a client of the node's host maps
//! it read-only as a [`SharedView`] (same-host reads).
//!
//! The crate hands out raw memory: a [`Region`] is a pointer and a length. Which ranges are
//! being written and read at a time is decided by the segment allocator above it.

#![warn(missing_docs)]

mod arena;
mod env;
mod error;
pub mod handover;
mod memfile;
mod memory;
mod numa;
mod pool;
mod region;
mod sys;
mod view;

pub use arena::{Arena, ArenaSlice};
pub use env::{MemoryEnv, parse_huge_page_size};
pub use error::Error;
pub use memfile::MemFile;
pub use memory::Memory;
pub use numa::policy_at;
pub use pool::available_memory_bytes;
pub use region::{Backing, HugePolicy, Region, RegionOptions};
pub use view::SharedView;
