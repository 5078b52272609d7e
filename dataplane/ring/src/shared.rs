//! The ring file: creating, opening and validating it, and attaching as one side.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::dir::Dir;
use crate::end::{EndConfig, RingEnd};
use crate::error::RingError;
use crate::layout::{
    HEADER_BYTES, MAGIC, MAX_CAPACITY_BYTES, MIN_CAPACITY_BYTES, OFF_CAPACITY, OFF_MAGIC, OFF_SIDE,
    OFF_VERSION, SIDE_BYTES, VERSION, file_bytes,
};
use crate::map::{self, Mapping};

/// Which process an end belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The control-plane agent: produces agent → shard, consumes shard → agent.
    Agent,
    /// A data-plane shard: produces shard → agent, consumes agent → shard.
    Shard,
}

impl Side {
    /// Index of this side's block and of the direction it produces on.
    pub(crate) fn index(self) -> usize {
        match self {
            Side::Agent => 0,
            Side::Shard => 1,
        }
    }

    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::Agent => Side::Shard,
            Side::Shard => Side::Agent,
        }
    }
}

/// A mapped ring file holding both directions. Cheap to share: ends keep the mapping alive.
#[derive(Clone)]
pub struct SharedRing {
    pub(crate) map: Arc<Mapping>,
    capacity_bytes: usize,
}

impl std::fmt::Debug for SharedRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRing")
            .field("capacity_bytes", &self.capacity_bytes)
            .finish()
    }
}

fn check_capacity(capacity_bytes: u64) -> Result<usize, RingError> {
    if !(MIN_CAPACITY_BYTES as u64..=MAX_CAPACITY_BYTES as u64).contains(&capacity_bytes) {
        return Err(RingError::CapacityOutOfRange {
            capacity_bytes,
            min: MIN_CAPACITY_BYTES as u64,
            max: MAX_CAPACITY_BYTES as u64,
        });
    }
    if !capacity_bytes.is_power_of_two() {
        return Err(RingError::NotPowerOfTwo { capacity_bytes });
    }
    Ok(capacity_bytes as usize)
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> RingError {
    move |source| RingError::Io { what, source }
}

impl SharedRing {
    /// Makes a new ring file (a close-on-exec memfd named `name`, size-sealed) with
    /// `capacity_bytes` per direction (a power of two in
    /// `MIN_CAPACITY_BYTES..=MAX_CAPACITY_BYTES`) and maps it.
    pub fn create(name: &str, capacity_bytes: usize) -> io::Result<SharedRing> {
        let capacity_bytes = check_capacity(capacity_bytes as u64)?;
        let fd = map::memfd_create(name).map_err(io_err("memfd_create"))?;
        let len = file_bytes(capacity_bytes);
        map::ftruncate(std::os::fd::AsFd::as_fd(&fd), len).map_err(io_err("ftruncate"))?;
        map::seal_size(std::os::fd::AsFd::as_fd(&fd)).map_err(io_err("sealing the memfd"))?;
        let map = Mapping::new(fd, len).map_err(io_err("mmap"))?;
        map.word(OFF_CAPACITY)
            .store(capacity_bytes as u64, Ordering::Relaxed);
        map.word(OFF_VERSION).store(VERSION, Ordering::Relaxed);
        // Magic last: a file with the magic has a complete header.
        map.word(OFF_MAGIC).store(MAGIC, Ordering::Release);
        Ok(SharedRing {
            map: Arc::new(map),
            capacity_bytes,
        })
    }

    /// Maps an existing ring file and checks it: a size-sealed memfd with the ring magic,
    /// this layout version and the size its capacity needs.
    pub fn open(fd: OwnedFd) -> Result<SharedRing, RingError> {
        let borrowed = std::os::fd::AsFd::as_fd(&fd);
        let size = map::file_size(borrowed).map_err(io_err("fstat"))?;
        if !map::is_size_sealed(borrowed).unwrap_or(false) {
            return Err(RingError::NotSealed);
        }
        let max = file_bytes(MAX_CAPACITY_BYTES) as u64;
        if !(file_bytes(MIN_CAPACITY_BYTES) as u64..=max).contains(&size) {
            return Err(RingError::SizeMismatch {
                expected: file_bytes(MIN_CAPACITY_BYTES) as u64,
                actual: size,
            });
        }
        let map = Mapping::new(fd, size as usize).map_err(io_err("mmap"))?;
        let magic = map.word(OFF_MAGIC).load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(RingError::BadMagic { found: magic });
        }
        let version = map.word(OFF_VERSION).load(Ordering::Relaxed);
        if version != VERSION {
            return Err(RingError::VersionMismatch {
                ours: VERSION,
                theirs: version,
            });
        }
        let capacity_bytes = check_capacity(map.word(OFF_CAPACITY).load(Ordering::Relaxed))?;
        let expected = file_bytes(capacity_bytes) as u64;
        if expected != size {
            return Err(RingError::SizeMismatch {
                expected,
                actual: size,
            });
        }
        Ok(SharedRing {
            map: Arc::new(map),
            capacity_bytes,
        })
    }

    /// The ring file (to pass to the other process; it is close-on-exec).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd()
    }

    /// Bytes of each direction's data area.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Times a producer of either direction stopped on a full ring.
    pub fn full_events(&self) -> u64 {
        (0..2)
            .map(|d| self.dir(d).full_events(&self.map).load(Ordering::Relaxed))
            .sum()
    }

    /// Zeroes indices, counters and both side blocks. Only for a ring neither side is
    /// attached to: it throws away whatever is in flight.
    pub fn reset(&self) {
        for d in 0..2 {
            self.dir(d).reset(&self.map);
        }
        for off in OFF_SIDE {
            for w in (off..off + SIDE_BYTES).step_by(8) {
                self.map.word(w).store(0, Ordering::SeqCst);
            }
        }
        debug_assert!(OFF_SIDE[1] + SIDE_BYTES <= HEADER_BYTES);
    }

    /// Attaches as `side` with default settings.
    pub fn attach(&self, side: Side) -> RingEnd {
        self.attach_with(side, EndConfig::default())
    }

    /// Attaches as `side`: records this pid, bumps the side's epoch and marks it attached.
    /// At most one end per side may be attached at a time (one producer, one consumer).
    pub fn attach_with(&self, side: Side, config: EndConfig) -> RingEnd {
        RingEnd::new(self.map.clone(), self.capacity_bytes, side, config)
    }

    fn dir(&self, d: usize) -> Dir {
        Dir::new(d, self.capacity_bytes)
    }
}
