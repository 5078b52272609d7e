//! O(1) offset allocator for one memory segment of the master.
//!
//! The master never touches segment memory; it only hands out `[offset, offset + size)` ranges
//! inside each segment a store node mounted. This module does that bookkeeping for one segment
//! with the bin-based design of Sebastian Aaltonen's OffsetAllocator (the one Mooncake Store
//! uses), widened to `u64` byte offsets.
//!
//! The model:
//! - The segment is a sequence of regions, each either *used* (owned by a live [`Allocation`])
//!   or *free*. Regions are nodes in one `Vec`, doubly linked in address order, so a free can
//!   find and merge its neighbours in O(1). Two free regions are never adjacent.
//! - Free regions sit in one of [`BIN_COUNT`] size bins. A bin index is a tiny float: the upper
//!   bits are an exponent, the low 3 bits a mantissa, so bins are spaced at most 12.5% apart
//!   over the whole `u64` range. A 64-bit mask says which exponent groups hold a free region and
//!   an 8-bit mask per group says which of its bins do, so finding the smallest non-empty bin at
//!   or above some index is two bit scans.
//! - A free region is filed under its size rounded *down* to a bin; a request looks from its size
//!   rounded *up* to a bin. Every region it finds is therefore at least as large as the request,
//!   without walking a list. The request is carved from the front of that region and the rest is
//!   filed back as a new free region.
//! - Only when no such bin has a region does a request look at the regions of its own round-down
//!   bin, which may or may not fit, and then at no more than [`SAME_BIN_SCAN_MAX_NODES`] of them.
//!   Without this a request for exactly the size of the last free region (the whole segment after
//!   everything was freed, say) would be refused whenever that size is not a bin floor.
//! - Freeing marks the region free, merges it with a free predecessor and successor and files the
//!   merged region under its new bin.
//!
//! Each allocation carries a 64-bit generation, stored in its node: the caller's own (the master
//! passes the slice generation it hands to clients, so one number names the range everywhere) or
//! the allocator's counter. A handle whose generation no longer matches its node is stale.
//!
//! Node slots are recycled through an intrusive free list and the table only grows up to the
//! bound implied by `max_allocations`, so once the table has reached its peak size neither
//! `allocate` nor `free` allocates memory.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// Alignment of every allocation's offset and size, in bytes.
pub const ALIGN_BYTES: u64 = 64;

/// Mantissa bits of the bin float: 3 bits gives 8 bins per power of two, so a region is at most
/// 12.5% larger than the floor of its bin.
const MANTISSA_BITS: u32 = 3;
/// Bins per exponent group, one bit each in a group's leaf mask.
const BINS_PER_GROUP: usize = 1 << MANTISSA_BITS;
/// Exponent groups, one bit each in the top mask. 64 groups cover every `u64` size.
const GROUP_COUNT: usize = 64;
/// Number of size bins.
pub const BIN_COUNT: usize = GROUP_COUNT * BINS_PER_GROUP;

/// "No node" in the 32-bit links, so links stay half the size of a `usize`.
const NONE: u32 = u32::MAX;

/// Largest `max_allocations` an allocator honours. With `n` live allocations there are at most
/// `n + 1` free regions (free regions never touch), so the node table needs `2n + 1` slots, and
/// every slot index must stay below `u32::MAX`, which the links reserve for "no node".
pub const MAX_ALLOCATIONS_LIMIT: u32 = (u32::MAX - 2) / 2;

/// Node slots reserved up front. A segment allowed millions of allocations should not pay for
/// all of their slots before it holds a single object, so the table starts at most this large
/// (36 bytes a slot: 576 KiB) and grows on demand up to its bound.
const PREALLOCATED_NODE_SLOTS_MAX: usize = 1 << 14;

/// Regions of its own bin a request looks at when no larger bin has one. Those regions are all
/// within 12.5% of the request, so a few are enough to find one that fits when one does; the
/// bound keeps a nearly full, badly fragmented segment from turning `allocate` into a list walk.
pub const SAME_BIN_SCAN_MAX_NODES: usize = 64;

/// Source of [`OffsetAllocator::owner_id`], so a handle freed into the wrong allocator is caught
/// even when its slot index and generation happen to be valid there.
static NEXT_OWNER_ID: AtomicU32 = AtomicU32::new(0);

/// Bin whose floor is the largest bin floor that is `<= size_bytes`.
///
/// Free regions are filed here, so every region in a bin is at least the bin's floor.
pub fn bin_round_down(size_bytes: u64) -> usize {
    let mantissa_value = 1u64 << MANTISSA_BITS;
    if size_bytes < mantissa_value {
        // Denormal range: the bin index is the size itself.
        return size_bytes as usize;
    }
    let highest_bit = 63 - size_bytes.leading_zeros();
    let mantissa_shift = highest_bit - MANTISSA_BITS;
    let exponent = mantissa_shift + 1;
    let mantissa = (size_bytes >> mantissa_shift) & (mantissa_value - 1);
    ((exponent as usize) << MANTISSA_BITS) + mantissa as usize
}

/// Smallest bin whose floor is `>= size_bytes`.
///
/// Requests search from here, so every region found is large enough without looking at it.
pub fn bin_round_up(size_bytes: u64) -> usize {
    let down = bin_round_down(size_bytes);
    // A mantissa overflow carries into the exponent, which is exactly the next bin.
    if size_bytes < (1 << MANTISSA_BITS) || bin_floor_bytes(down) == size_bytes {
        down
    } else {
        down + 1
    }
}

/// Smallest size, in bytes, filed under `bin`.
///
/// Defined for bins up to `bin_round_down(u64::MAX)`; the floor of any higher bin does not fit
/// in a `u64`.
pub fn bin_floor_bytes(bin: usize) -> u64 {
    debug_assert!(
        bin <= bin_round_down(u64::MAX),
        "bin {bin} has no u64 floor"
    );
    let exponent = bin >> MANTISSA_BITS;
    let mantissa = (bin & (BINS_PER_GROUP - 1)) as u64;
    if exponent == 0 {
        mantissa
    } else {
        (mantissa | (1 << MANTISSA_BITS)) << (exponent - 1)
    }
}

/// A live allocation: the byte range `[offset, offset + size)` of the segment.
///
/// The private fields name the node that owns the range and the generation it had when the
/// range was handed out, so [`OffsetAllocator::free`] can reject a handle that was already
/// freed, belongs to another allocator or was edited. A caller that stores handles compactly
/// keeps [`node`](Self::node) and [`generation`](Self::generation) and rebuilds the handle with
/// [`OffsetAllocator::handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "dropping an Allocation leaks its range; pass it to OffsetAllocator::free"]
pub struct Allocation {
    /// Start of the range in bytes from the segment base; a multiple of [`ALIGN_BYTES`].
    pub offset: u64,
    /// Length of the range in bytes: the request rounded up to [`ALIGN_BYTES`].
    pub size: u64,
    generation: u64,
    node: u32,
    owner_id: u32,
}

impl Allocation {
    /// Node slot owning the range.
    pub fn node(&self) -> u32 {
        self.node
    }

    /// Generation the range was handed out with.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Low bits of a generation a node keeps to recognise its handle; the top two bits of the
/// node's tag hold its state. A stale handle goes unnoticed only if exactly a multiple of
/// 2^30 generations were handed out between it and the slot's current owner.
const TAG_GENERATION_MASK: u32 = (1 << 30) - 1;

/// What a node slot currently describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum NodeState {
    /// Not a region; chained in the spare-slot list through `bin_next`.
    Spare,
    /// A free region, linked into the list of its bin.
    Free,
    /// A region owned by a live [`Allocation`].
    Used,
}

/// One region of the segment, or a spare slot.
///
/// Packed to 4-byte alignment: 36 bytes instead of 40, one per live allocation (a master
/// with a million single-replica objects holds a million of them).
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Node {
    offset_bytes: u64,
    size_bytes: u64,
    /// Neighbours in address order; [`NONE`] at the segment's ends.
    addr_prev: u32,
    addr_next: u32,
    /// Neighbours in the bin list while free; `bin_next` also chains spare slots.
    bin_prev: u32,
    bin_next: u32,
    /// Low 30 bits of the generation of the allocation last handed out from this slot, so a
    /// stale handle no longer matches, and the [`NodeState`] (bits 30..32): one word keeps
    /// the slot at 36 bytes.
    tag: u32,
}

// The slot size quoted at `PREALLOCATED_NODE_SLOTS_MAX`; a new field should revisit that bound.
const _: () = assert!(size_of::<Node>() == 36);

impl Node {
    const SPARE: Node = Node {
        offset_bytes: 0,
        size_bytes: 0,
        addr_prev: NONE,
        addr_next: NONE,
        bin_prev: NONE,
        bin_next: NONE,
        tag: (NodeState::Spare as u32) << 30,
    };

    fn state(&self) -> NodeState {
        match self.tag >> 30 {
            0 => NodeState::Spare,
            1 => NodeState::Free,
            _ => NodeState::Used,
        }
    }

    fn set_state(&mut self, state: NodeState) {
        self.tag = (self.tag & TAG_GENERATION_MASK) | (state as u32) << 30;
    }

    fn hand_out(&mut self, generation: u64) {
        self.tag = (generation as u32 & TAG_GENERATION_MASK) | (NodeState::Used as u32) << 30;
    }

    fn owned_by(&self, generation: u64) -> bool {
        self.state() == NodeState::Used
            && self.tag & TAG_GENERATION_MASK == generation as u32 & TAG_GENERATION_MASK
    }
}

/// Bin-based O(1) allocator of aligned byte ranges inside one segment.
///
/// Not thread-safe by itself; the master keeps one per segment behind the segment's lock.
pub struct OffsetAllocator {
    owner_id: u32,
    capacity_bytes: u64,
    max_allocations: u32,
    /// Slot bound implied by `max_allocations` and the capacity; the table never grows past it.
    max_nodes: usize,
    allocated_bytes: u64,
    allocation_count: u32,
    /// Generation of the next [`allocate`](Self::allocate) (callers of
    /// [`allocate_with_generation`](Self::allocate_with_generation) bring their own).
    next_generation: u64,
    nodes: Vec<Node>,
    /// Head of the spare-slot list.
    spare_head: u32,
    /// Bit `g` set when exponent group `g` has a non-empty bin.
    group_mask: u64,
    /// Bit `b` of `bin_masks[g]` set when bin `g * 8 + b` is non-empty.
    bin_masks: [u8; GROUP_COUNT],
    /// First free region of each bin.
    bin_heads: [u32; BIN_COUNT],
}

impl fmt::Debug for OffsetAllocator {
    // The node table can hold millions of entries; a summary is what a log line needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OffsetAllocator")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("allocated_bytes", &self.allocated_bytes)
            .field("allocation_count", &self.allocation_count)
            .field("max_allocations", &self.max_allocations)
            .field("node_slots", &self.nodes.len())
            .finish()
    }
}

impl OffsetAllocator {
    /// An allocator for a segment of `capacity_bytes` (rounded down to [`ALIGN_BYTES`]) that
    /// holds at most `max_allocations` live allocations (capped at [`MAX_ALLOCATIONS_LIMIT`]).
    ///
    /// Reserves part of the node table now and grows it lazily up to the bound.
    pub fn new(capacity_bytes: u64, max_allocations: u32) -> Self {
        let capacity_bytes = capacity_bytes & !(ALIGN_BYTES - 1);
        let max_allocations = max_allocations.min(MAX_ALLOCATIONS_LIMIT);
        // More live allocations than aligned units cannot exist, so a small segment does not
        // reserve slots for a large `max_allocations`.
        let live_max = u64::from(max_allocations).min(capacity_bytes / ALIGN_BYTES);
        let max_nodes = usize::try_from(2 * live_max + 1).unwrap_or(usize::MAX);
        let mut allocator = OffsetAllocator {
            owner_id: NEXT_OWNER_ID.fetch_add(1, Ordering::Relaxed),
            capacity_bytes,
            max_allocations,
            max_nodes,
            allocated_bytes: 0,
            allocation_count: 0,
            next_generation: 1,
            nodes: Vec::with_capacity(max_nodes.min(PREALLOCATED_NODE_SLOTS_MAX)),
            spare_head: NONE,
            group_mask: 0,
            bin_masks: [0; GROUP_COUNT],
            bin_heads: [NONE; BIN_COUNT],
        };
        if capacity_bytes > 0 {
            let whole = allocator.take_slot();
            allocator.nodes[whole as usize] = Node {
                offset_bytes: 0,
                size_bytes: capacity_bytes,
                ..Node::SPARE
            };
            allocator.insert_free(whole);
        }
        allocator
    }

    /// An allocator whose live allocations are exactly `used`: `(offset, size, generation)`
    /// ranges sorted by offset, aligned to [`ALIGN_BYTES`], disjoint and inside the segment
    /// (sizes are rounded up to the alignment). The gaps between them are free. Returns the
    /// node of each allocation (for [`handle`](Self::handle)), or the index of the first
    /// range that breaks one of those rules. This is how a master re-adopts what a store
    /// node already holds.
    pub fn with_used(
        capacity_bytes: u64,
        max_allocations: u32,
        used: &[(u64, u64, u64)],
    ) -> Result<(Self, Vec<u32>), usize> {
        let mut a = OffsetAllocator::new(0, max_allocations);
        a.capacity_bytes = capacity_bytes & !(ALIGN_BYTES - 1);
        let live_max = u64::from(a.max_allocations).min(a.capacity_bytes / ALIGN_BYTES);
        a.max_nodes = usize::try_from(2 * live_max + 1).unwrap_or(usize::MAX);
        if used.len() > a.max_allocations as usize {
            return Err(a.max_allocations as usize);
        }
        let mut nodes = Vec::with_capacity(used.len());
        let mut at = 0u64;
        let mut prev = NONE;
        let link = |a: &mut OffsetAllocator, node: Node, prev: &mut u32| {
            let i = a.take_slot();
            a.nodes[i as usize] = Node {
                addr_prev: *prev,
                ..node
            };
            if *prev != NONE {
                a.nodes[*prev as usize].addr_next = i;
            }
            *prev = i;
            i
        };
        for (k, &(offset, size, generation)) in used.iter().enumerate() {
            let size = size.checked_next_multiple_of(ALIGN_BYTES).ok_or(k)?;
            let end = offset.checked_add(size).ok_or(k)?;
            if size == 0 || offset % ALIGN_BYTES != 0 || offset < at || end > a.capacity_bytes {
                return Err(k);
            }
            if offset > at {
                let gap = Node {
                    offset_bytes: at,
                    size_bytes: offset - at,
                    ..Node::SPARE
                };
                let i = link(&mut a, gap, &mut prev);
                a.insert_free(i);
            }
            let mut node = Node {
                offset_bytes: offset,
                size_bytes: size,
                ..Node::SPARE
            };
            node.hand_out(generation);
            nodes.push(link(&mut a, node, &mut prev));
            a.allocation_count += 1;
            a.allocated_bytes += size;
            at = end;
        }
        if at < a.capacity_bytes {
            let tail = Node {
                offset_bytes: at,
                size_bytes: a.capacity_bytes - at,
                ..Node::SPARE
            };
            let i = link(&mut a, tail, &mut prev);
            a.insert_free(i);
        }
        Ok((a, nodes))
    }

    /// Allocates `size_bytes` rounded up to [`ALIGN_BYTES`].
    ///
    /// Returns `None` for size 0, when `max_allocations` allocations are live, or when no free
    /// region fits the rounded size. The last answer is exact unless more than
    /// [`SAME_BIN_SCAN_MAX_NODES`] regions share the request's bin and none larger exists; then a
    /// fitting region past the scan bound may be missed.
    pub fn allocate(&mut self, size_bytes: u64) -> Option<Allocation> {
        let generation = self.next_generation;
        let a = self.allocate_with_generation(size_bytes, generation)?;
        self.next_generation = generation.wrapping_add(1);
        Some(a)
    }

    /// Like [`allocate`](Self::allocate), stamping the allocation with the caller's
    /// `generation`. Stale handles are caught only if the caller never hands the same
    /// generation out twice in this allocator; the master uses one counter for all segments,
    /// and does not mix this with [`allocate`](Self::allocate).
    pub fn allocate_with_generation(
        &mut self,
        size_bytes: u64,
        generation: u64,
    ) -> Option<Allocation> {
        if size_bytes == 0 || self.allocation_count >= self.max_allocations {
            return None;
        }
        let size_bytes = size_bytes.checked_next_multiple_of(ALIGN_BYTES)?;
        if size_bytes > self.free_bytes() {
            return None;
        }
        let index = match self.first_free_bin_from(bin_round_up(size_bytes)) {
            Some(bin) => self.bin_heads[bin],
            None => self.first_fit_in_own_bin(size_bytes)?,
        };
        self.remove_free(index);

        let node = self.nodes[index as usize];
        // The bin search promises this; a failure would hand out bytes past the region.
        assert!(
            node.size_bytes >= size_bytes,
            "picked a {}-byte region for a {size_bytes}-byte request",
            { node.size_bytes }
        );
        let remainder_bytes = node.size_bytes - size_bytes;
        if remainder_bytes > 0 {
            let remainder = self.take_slot();
            self.nodes[remainder as usize] = Node {
                offset_bytes: node.offset_bytes + size_bytes,
                size_bytes: remainder_bytes,
                addr_prev: index,
                addr_next: node.addr_next,
                ..Node::SPARE
            };
            if node.addr_next != NONE {
                self.nodes[node.addr_next as usize].addr_prev = remainder;
            }
            self.nodes[index as usize].addr_next = remainder;
            self.nodes[index as usize].size_bytes = size_bytes;
            self.insert_free(remainder);
        }

        let node = &mut self.nodes[index as usize];
        node.hand_out(generation);
        self.allocation_count += 1;
        self.allocated_bytes += size_bytes;
        Some(Allocation {
            offset: node.offset_bytes,
            size: size_bytes,
            node: index,
            generation,
            owner_id: self.owner_id,
        })
    }

    /// Rebuilds the handle of a live allocation from the parts a caller stored compactly.
    /// [`free`](Self::free) checks a rebuilt handle like any other, so a wrong part panics
    /// there instead of freeing someone else's range.
    pub fn handle(&self, node: u32, generation: u64, offset: u64, size: u64) -> Allocation {
        Allocation {
            offset,
            size,
            generation,
            node,
            owner_id: self.owner_id,
        }
    }

    /// Frees `allocation` and merges its range with free neighbours.
    ///
    /// # Panics
    ///
    /// On a double free, a handle from another allocator, or a handle whose `offset` or `size`
    /// was changed: each means two owners may believe they hold the same bytes.
    pub fn free(&mut self, allocation: Allocation) {
        assert_eq!(
            allocation.owner_id, self.owner_id,
            "freeing an allocation that belongs to another allocator: {allocation:?}"
        );
        let index = allocation.node;
        assert!(
            (index as usize) < self.nodes.len(),
            "freeing an allocation with an unknown node: {allocation:?}"
        );
        let node = self.nodes[index as usize];
        assert!(
            node.owned_by(allocation.generation),
            "double free or stale allocation handle: {allocation:?}"
        );
        assert!(
            node.offset_bytes == allocation.offset && node.size_bytes == allocation.size,
            "allocation handle was altered: {allocation:?}, allocator holds offset {} size {}",
            { node.offset_bytes },
            { node.size_bytes }
        );
        self.allocation_count -= 1;
        self.allocated_bytes -= node.size_bytes;

        let mut offset_bytes = node.offset_bytes;
        let mut size_bytes = node.size_bytes;

        let prev = node.addr_prev;
        if prev != NONE && self.nodes[prev as usize].state() == NodeState::Free {
            self.remove_free(prev);
            let prev_node = self.nodes[prev as usize];
            offset_bytes = prev_node.offset_bytes;
            size_bytes += prev_node.size_bytes;
            self.nodes[index as usize].addr_prev = prev_node.addr_prev;
            if prev_node.addr_prev != NONE {
                self.nodes[prev_node.addr_prev as usize].addr_next = index;
            }
            self.release_slot(prev);
        }

        let next = node.addr_next;
        if next != NONE && self.nodes[next as usize].state() == NodeState::Free {
            self.remove_free(next);
            let next_node = self.nodes[next as usize];
            size_bytes += next_node.size_bytes;
            self.nodes[index as usize].addr_next = next_node.addr_next;
            if next_node.addr_next != NONE {
                self.nodes[next_node.addr_next as usize].addr_prev = index;
            }
            self.release_slot(next);
        }

        let merged = &mut self.nodes[index as usize];
        merged.offset_bytes = offset_bytes;
        merged.size_bytes = size_bytes;
        self.insert_free(index);
    }

    /// Usable size of the segment in bytes (the constructor's capacity rounded down to
    /// [`ALIGN_BYTES`]).
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Bytes held by live allocations, counting each at its rounded size.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes
    }

    /// Bytes in free regions: capacity minus allocated bytes.
    pub fn free_bytes(&self) -> u64 {
        self.capacity_bytes - self.allocated_bytes
    }

    /// Number of live allocations.
    pub fn allocation_count(&self) -> u32 {
        self.allocation_count
    }

    /// Bound on live allocations this allocator enforces.
    pub fn max_allocations(&self) -> u32 {
        self.max_allocations
    }

    /// Size in bytes of the largest free region; 0 when the segment is full.
    ///
    /// Exact: it walks the highest non-empty bin, whose regions are all within 12.5% of one
    /// another. That is usually one or two regions, but it is bounded only by the number of free
    /// regions, so placement decisions on the request path should use
    /// [`largest_allocatable_bytes`](Self::largest_allocatable_bytes) instead.
    pub fn largest_free_bytes(&self) -> u64 {
        let Some(bin) = self.highest_free_bin() else {
            return 0;
        };
        let mut largest_bytes = 0;
        let mut index = self.bin_heads[bin];
        while index != NONE {
            let node = &self.nodes[index as usize];
            largest_bytes = largest_bytes.max(node.size_bytes);
            index = node.bin_next;
        }
        largest_bytes
    }

    /// Largest size in bytes that [`allocate`](Self::allocate) is certain to grant right now,
    /// in O(1); 0 when the allocation table is full or no region is free.
    ///
    /// A request of at most this size always succeeds, so the master can pick a segment without
    /// trying it. The threshold is the floor of the highest non-empty bin, so it can be below
    /// [`largest_free_bytes`](Self::largest_free_bytes) by less than 12.5%; requests in between
    /// succeed too when the scan of their bin finds the region.
    pub fn largest_allocatable_bytes(&self) -> u64 {
        if self.allocation_count >= self.max_allocations {
            return 0;
        }
        self.highest_free_bin().map_or(0, bin_floor_bytes)
    }

    /// Highest non-empty bin, if any region is free.
    fn highest_free_bin(&self) -> Option<usize> {
        if self.group_mask == 0 {
            return None;
        }
        let group = 63 - self.group_mask.leading_zeros() as usize;
        let leaf = 7 - self.bin_masks[group].leading_zeros() as usize;
        Some(group * BINS_PER_GROUP + leaf)
    }

    /// Smallest non-empty bin at or above `min_bin`.
    fn first_free_bin_from(&self, min_bin: usize) -> Option<usize> {
        let group = min_bin / BINS_PER_GROUP;
        if group >= GROUP_COUNT {
            return None;
        }
        let leaf = min_bin % BINS_PER_GROUP;
        let leaf_bits = self.bin_masks[group] & (u8::MAX << leaf);
        if leaf_bits != 0 {
            return Some(group * BINS_PER_GROUP + leaf_bits.trailing_zeros() as usize);
        }
        let higher_groups = if group + 1 < GROUP_COUNT {
            self.group_mask & (u64::MAX << (group + 1))
        } else {
            0
        };
        if higher_groups == 0 {
            return None;
        }
        let group = higher_groups.trailing_zeros() as usize;
        Some(group * BINS_PER_GROUP + self.bin_masks[group].trailing_zeros() as usize)
    }

    /// First of at most [`SAME_BIN_SCAN_MAX_NODES`] regions in the round-down bin of
    /// `size_bytes` that is large enough: the fallback when no bin above holds a region.
    fn first_fit_in_own_bin(&self, size_bytes: u64) -> Option<u32> {
        let bin = bin_round_down(size_bytes);
        if bin == bin_round_up(size_bytes) {
            // A bin floor: every region of this bin fits and the bit scan already found none.
            return None;
        }
        let mut index = self.bin_heads[bin];
        for _ in 0..SAME_BIN_SCAN_MAX_NODES {
            if index == NONE {
                return None;
            }
            let node = &self.nodes[index as usize];
            if node.size_bytes >= size_bytes {
                return Some(index);
            }
            index = node.bin_next;
        }
        None
    }

    /// Files node `index` (its offset and size already set) at the head of its bin.
    fn insert_free(&mut self, index: u32) {
        let bin = bin_round_down(self.nodes[index as usize].size_bytes);
        let head = self.bin_heads[bin];
        let node = &mut self.nodes[index as usize];
        node.set_state(NodeState::Free);
        node.bin_prev = NONE;
        node.bin_next = head;
        if head != NONE {
            self.nodes[head as usize].bin_prev = index;
        }
        self.bin_heads[bin] = index;
        let group = bin / BINS_PER_GROUP;
        self.bin_masks[group] |= 1 << (bin % BINS_PER_GROUP);
        self.group_mask |= 1 << group;
    }

    /// Unlinks free node `index` from its bin, clearing mask bits the bin no longer needs.
    fn remove_free(&mut self, index: u32) {
        let node = self.nodes[index as usize];
        assert!(
            node.state() == NodeState::Free,
            "node {index} taken out of a bin while {:?}",
            node.state()
        );
        if node.bin_prev != NONE {
            self.nodes[node.bin_prev as usize].bin_next = node.bin_next;
        }
        if node.bin_next != NONE {
            self.nodes[node.bin_next as usize].bin_prev = node.bin_prev;
        }
        // The size has not changed since the node was filed, so this is the same bin.
        let bin = bin_round_down(node.size_bytes);
        if self.bin_heads[bin] == index {
            self.bin_heads[bin] = node.bin_next;
            if node.bin_next == NONE {
                let group = bin / BINS_PER_GROUP;
                self.bin_masks[group] &= !(1 << (bin % BINS_PER_GROUP));
                if self.bin_masks[group] == 0 {
                    self.group_mask &= !(1 << group);
                }
            }
        }
        let node = &mut self.nodes[index as usize];
        node.bin_prev = NONE;
        node.bin_next = NONE;
    }

    /// A slot for a new region: a recycled one, or a new one while under the bound.
    fn take_slot(&mut self) -> u32 {
        if self.spare_head != NONE {
            let index = self.spare_head;
            self.spare_head = self.nodes[index as usize].bin_next;
            return index;
        }
        // Unreachable while `max_allocations` holds: n live allocations need at most 2n + 1
        // regions. Reaching it means the region list is corrupt.
        assert!(
            self.nodes.len() < self.max_nodes,
            "node table exhausted at {} slots with {} live allocations",
            self.nodes.len(),
            self.allocation_count
        );
        self.nodes.push(Node::SPARE);
        (self.nodes.len() - 1) as u32
    }

    /// Returns slot `index`, no longer a region, to the spare list.
    fn release_slot(&mut self, index: u32) {
        let spare_head = self.spare_head;
        let node = &mut self.nodes[index as usize];
        node.set_state(NodeState::Spare);
        node.addr_prev = NONE;
        node.addr_next = NONE;
        node.bin_prev = NONE;
        node.bin_next = spare_head;
        self.spare_head = index;
    }

    /// Walks every structure and checks it against the others; panics on the first mismatch.
    /// Returns the exact largest free region found by the walk.
    #[cfg(test)]
    fn check_invariants(&self) -> u64 {
        let regions: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| self.nodes[i as usize].state() != NodeState::Spare)
            .collect();
        let spare_count = {
            let mut count = 0;
            let mut index = self.spare_head;
            while index != NONE {
                assert_eq!(self.nodes[index as usize].state(), NodeState::Spare);
                count += 1;
                index = self.nodes[index as usize].bin_next;
            }
            count
        };
        assert_eq!(regions.len() + spare_count, self.nodes.len());
        assert!(self.nodes.len() <= self.max_nodes);

        // Address order: contiguous from 0 to capacity, no two free regions adjacent.
        let mut walked = 0;
        let mut used_bytes = 0;
        let mut used_count = 0;
        let mut free_count = 0;
        let mut largest_free_bytes = 0;
        let first = regions
            .iter()
            .copied()
            .find(|&i| self.nodes[i as usize].addr_prev == NONE);
        let mut expected_offset = 0;
        let mut prev = NONE;
        let mut index = first.unwrap_or(NONE);
        while index != NONE {
            let node = &self.nodes[index as usize];
            assert_eq!(node.addr_prev, prev);
            assert_eq!({ node.offset_bytes }, expected_offset);
            assert!(node.size_bytes > 0 && node.size_bytes.is_multiple_of(ALIGN_BYTES));
            match node.state() {
                NodeState::Used => {
                    used_bytes += node.size_bytes;
                    used_count += 1;
                }
                NodeState::Free => {
                    free_count += 1;
                    largest_free_bytes = largest_free_bytes.max(node.size_bytes);
                    if prev != NONE {
                        assert_ne!(self.nodes[prev as usize].state(), NodeState::Free);
                    }
                }
                NodeState::Spare => panic!("spare slot {index} in the address list"),
            }
            expected_offset += node.size_bytes;
            walked += 1;
            prev = index;
            index = node.addr_next;
        }
        assert_eq!(walked, regions.len());
        assert_eq!(expected_offset, self.capacity_bytes);
        assert_eq!(used_bytes, self.allocated_bytes);
        assert_eq!(used_count, self.allocation_count);

        // Bins: every free region filed once under its round-down bin, masks match the heads.
        let mut binned = 0;
        for bin in 0..BIN_COUNT {
            let group = bin / BINS_PER_GROUP;
            let bit_set = self.bin_masks[group] & (1 << (bin % BINS_PER_GROUP)) != 0;
            assert_eq!(bit_set, self.bin_heads[bin] != NONE, "mask of bin {bin}");
            let mut bin_prev = NONE;
            let mut index = self.bin_heads[bin];
            while index != NONE {
                let node = &self.nodes[index as usize];
                assert_eq!(node.state(), NodeState::Free);
                assert_eq!(node.bin_prev, bin_prev);
                assert_eq!(bin_round_down(node.size_bytes), bin);
                binned += 1;
                bin_prev = index;
                index = node.bin_next;
            }
        }
        for group in 0..GROUP_COUNT {
            assert_eq!(
                self.group_mask & (1 << group) != 0,
                self.bin_masks[group] != 0,
                "mask of group {group}"
            );
        }
        assert_eq!(binned, free_count);
        largest_free_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// Deterministic xorshift64*: the utilisation figure must not change between runs.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    #[test]
    fn exact_fit_takes_the_whole_segment() {
        let mut allocator = OffsetAllocator::new(4 * KIB, 8);
        let whole = allocator.allocate(4 * KIB).expect("whole segment");
        assert_eq!((whole.offset, whole.size), (0, 4 * KIB));
        assert_eq!(allocator.free_bytes(), 0);
        assert_eq!(allocator.largest_free_bytes(), 0);
        assert_eq!(allocator.allocate(1), None);
        allocator.check_invariants();
        allocator.free(whole);
        let again = allocator
            .allocate(4 * KIB)
            .expect("whole segment after free");
        assert_eq!((again.offset, again.size), (0, 4 * KIB));
        allocator.check_invariants();
    }

    #[test]
    fn split_rounds_to_alignment_and_keeps_the_rest_free() {
        let mut allocator = OffsetAllocator::new(4 * KIB, 8);
        let first = allocator.allocate(100).expect("first");
        assert_eq!((first.offset, first.size), (0, 128));
        let second = allocator.allocate(64).expect("second");
        assert_eq!((second.offset, second.size), (128, 64));
        assert_eq!(allocator.allocated_bytes(), 192);
        assert_eq!(allocator.free_bytes(), 4 * KIB - 192);
        assert_eq!(allocator.largest_free_bytes(), 4 * KIB - 192);
        assert_eq!(allocator.allocation_count(), 2);
        assert_eq!(allocator.check_invariants(), 4 * KIB - 192);
    }

    #[test]
    fn frees_coalesce_back_to_one_region() {
        let mut allocator = OffsetAllocator::new(MIB, 64);
        let parts: Vec<Allocation> = (1..=10)
            .map(|i| allocator.allocate(i * 1000).expect("part"))
            .collect();
        // Free so that every merge shape happens: isolated, with the previous region, with the
        // next one and with both.
        for &i in &[1, 3, 2, 0, 8, 6, 7, 9, 5, 4] {
            allocator.free(parts[i]);
            allocator.check_invariants();
        }
        assert_eq!(allocator.allocated_bytes(), 0);
        assert_eq!(allocator.allocation_count(), 0);
        assert_eq!(allocator.largest_free_bytes(), MIB);
        assert_eq!(allocator.largest_allocatable_bytes(), MIB);
        let whole = allocator.allocate(MIB).expect("whole segment");
        assert_eq!((whole.offset, whole.size), (0, MIB));
    }

    #[test]
    fn capacity_is_rounded_down_to_alignment() {
        let mut allocator = OffsetAllocator::new(1000, 4);
        assert_eq!(allocator.capacity_bytes(), 960);
        assert_eq!(allocator.allocate(961), None);
        let whole = allocator.allocate(960).expect("rounded capacity");
        assert_eq!((whole.offset, whole.size), (0, 960));

        let mut tiny = OffsetAllocator::new(ALIGN_BYTES - 1, 4);
        assert_eq!(tiny.capacity_bytes(), 0);
        assert_eq!(tiny.free_bytes(), 0);
        assert_eq!(tiny.largest_free_bytes(), 0);
        assert_eq!(tiny.allocate(1), None);
        tiny.check_invariants();
    }

    #[test]
    fn size_zero_is_refused() {
        let mut allocator = OffsetAllocator::new(MIB, 4);
        assert_eq!(allocator.allocate(0), None);
        assert_eq!(allocator.allocation_count(), 0);
        assert_eq!(allocator.free_bytes(), MIB);
    }

    #[test]
    fn over_capacity_is_refused() {
        let mut allocator = OffsetAllocator::new(MIB, 4);
        assert_eq!(allocator.allocate(MIB + 1), None);
        // Rounding this up to the alignment overflows a u64.
        assert_eq!(allocator.allocate(u64::MAX), None);
        let half = allocator.allocate(MIB / 2).expect("half");
        assert_eq!(allocator.allocate(MIB / 2 + 1), None);
        assert_eq!(allocator.free_bytes(), MIB / 2);
        allocator.free(half);
        allocator.check_invariants();
    }

    #[test]
    fn max_allocations_bounds_live_allocations() {
        let mut allocator = OffsetAllocator::new(MIB, 3);
        let live: Vec<Allocation> = (0..3)
            .map(|_| allocator.allocate(KIB).expect("under the bound"))
            .collect();
        assert_eq!(allocator.allocate(KIB), None);
        assert_eq!(allocator.largest_allocatable_bytes(), 0);
        assert!(allocator.largest_free_bytes() > 0);
        allocator.free(live[1]);
        let replacement = allocator.allocate(KIB).expect("slot freed");
        assert_eq!(replacement.offset, live[1].offset);
        assert_eq!(allocator.allocation_count(), 3);
        allocator.check_invariants();

        let mut none_allowed = OffsetAllocator::new(MIB, 0);
        assert_eq!(none_allowed.allocate(KIB), None);
    }

    #[test]
    fn last_region_is_granted_at_its_exact_size() {
        let mut allocator = OffsetAllocator::new(GIB, 16);
        // Leave one free region whose size is not a bin floor: 924 MiB - 64 bytes.
        let _front = allocator.allocate(100 * MIB + 64).expect("front");
        let region_bytes = GIB - (100 * MIB + 64);
        assert_eq!(allocator.largest_free_bytes(), region_bytes);
        let threshold = allocator.largest_allocatable_bytes();
        assert!(threshold < region_bytes);
        assert!(threshold > region_bytes / 8 * 7);
        assert_eq!(allocator.allocate(region_bytes + 1), None);
        let last = allocator
            .allocate(region_bytes)
            .expect("the same-bin scan finds it");
        assert_eq!((last.offset, last.size), (100 * MIB + 64, region_bytes));
        assert_eq!(allocator.free_bytes(), 0);
        allocator.check_invariants();
    }

    #[test]
    fn requests_up_to_the_threshold_always_succeed() {
        let mut allocator = OffsetAllocator::new(GIB, 16);
        let _front = allocator.allocate(100 * MIB + 64).expect("front");
        let threshold = allocator.largest_allocatable_bytes();
        let granted = allocator.allocate(threshold).expect("at the threshold");
        assert_eq!(granted.size, threshold);
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn double_free_panics() {
        let mut allocator = OffsetAllocator::new(MIB, 4);
        let a = allocator.allocate(KIB).expect("a");
        let _b = allocator.allocate(KIB).expect("b");
        allocator.free(a);
        allocator.free(a);
    }

    #[test]
    #[should_panic(expected = "stale allocation handle")]
    fn stale_handle_to_a_reused_slot_panics() {
        let mut allocator = OffsetAllocator::new(MIB, 4);
        let old = allocator.allocate(KIB).expect("old");
        allocator.free(old);
        // The whole segment merged back into `old`'s slot, which this allocation takes again.
        let new = allocator.allocate(KIB).expect("new");
        assert_eq!(new.offset, old.offset);
        allocator.free(old);
    }

    #[test]
    #[should_panic(expected = "another allocator")]
    fn handle_from_another_allocator_panics() {
        let mut first = OffsetAllocator::new(MIB, 4);
        let mut second = OffsetAllocator::new(MIB, 4);
        let _mine = second.allocate(KIB).expect("second's");
        let foreign = first.allocate(KIB).expect("first's");
        second.free(foreign);
    }

    #[test]
    #[should_panic(expected = "altered")]
    fn edited_handle_panics() {
        let mut allocator = OffsetAllocator::new(MIB, 4);
        let mut a = allocator.allocate(KIB).expect("a");
        a.size *= 2;
        allocator.free(a);
    }

    #[test]
    fn bins_cover_the_u64_range() {
        assert_eq!(bin_round_down(u64::MAX), BIN_COUNT - 17);
        assert_eq!(bin_round_up(u64::MAX), BIN_COUNT - 16);
        assert!(bin_round_up(u64::MAX) < BIN_COUNT);
        for bin in 0..=bin_round_down(u64::MAX) {
            let floor = bin_floor_bytes(bin);
            assert_eq!(bin_round_down(floor), bin);
            assert_eq!(bin_round_up(floor), bin);
            if bin > 0 {
                assert!(bin_floor_bytes(bin - 1) < floor);
            }
        }
    }

    proptest! {
        #[test]
        fn bin_rounding_brackets_the_size(size in any::<u64>()) {
            let down = bin_round_down(size);
            prop_assert!(bin_floor_bytes(down) <= size);
            if down < bin_round_down(u64::MAX) {
                prop_assert!(bin_floor_bytes(down + 1) > size);
            }
            let up = bin_round_up(size);
            prop_assert!(up == down || up == down + 1);
            if up <= bin_round_down(u64::MAX) {
                prop_assert!(bin_floor_bytes(up) >= size);
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Allocate(u64),
        /// Frees the live allocation at this index modulo the number live.
        Free(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1u64..=4 * KIB).prop_map(Op::Allocate),
            1 => (1u64..=64 * KIB).prop_map(Op::Allocate),
            3 => any::<usize>().prop_map(Op::Free),
        ]
    }

    proptest! {
        #[test]
        fn random_sequences_keep_ranges_disjoint_and_coalesce(
            capacity_bytes in 0u64..=256 * KIB,
            // Up to 60 live allocations leave at most 61 free regions, under the same-bin scan
            // bound, so `allocate` must refuse only when no region fits.
            max_allocations in 0u32..=60,
            ops in proptest::collection::vec(op(), 0..400),
            free_order_seed in any::<u64>(),
        ) {
            let mut allocator = OffsetAllocator::new(capacity_bytes, max_allocations);
            let capacity_bytes = allocator.capacity_bytes();
            prop_assert_eq!(capacity_bytes % ALIGN_BYTES, 0);
            let mut live: Vec<Allocation> = Vec::new();
            for op in ops {
                match op {
                    Op::Allocate(size_bytes) => {
                        let threshold = allocator.largest_allocatable_bytes();
                        let largest_free = allocator.largest_free_bytes();
                        let table_full = allocator.allocation_count() >= max_allocations;
                        let rounded = size_bytes.next_multiple_of(ALIGN_BYTES);
                        match allocator.allocate(size_bytes) {
                            Some(a) => {
                                prop_assert!(!table_full && rounded <= largest_free);
                                prop_assert_eq!(a.size, rounded);
                                prop_assert_eq!(a.offset % ALIGN_BYTES, 0);
                                prop_assert!(a.offset + a.size <= capacity_bytes);
                                for other in &live {
                                    prop_assert!(
                                        a.offset + a.size <= other.offset
                                            || other.offset + other.size <= a.offset,
                                        "{:?} overlaps {:?}", a, other
                                    );
                                }
                                live.push(a);
                            }
                            None => {
                                prop_assert!(rounded > threshold);
                                prop_assert!(table_full || rounded > largest_free);
                            }
                        }
                    }
                    Op::Free(pick) => {
                        if !live.is_empty() {
                            let a = live.swap_remove(pick % live.len());
                            allocator.free(a);
                        }
                    }
                }
                let largest = allocator.check_invariants();
                prop_assert_eq!(allocator.largest_free_bytes(), largest);
                prop_assert!(allocator.allocation_count() <= allocator.max_allocations());
                prop_assert_eq!(allocator.allocation_count() as usize, live.len());
                prop_assert_eq!(
                    allocator.allocated_bytes(),
                    live.iter().map(|a| a.size).sum::<u64>()
                );
            }

            let mut rng = XorShift(free_order_seed | 1);
            while !live.is_empty() {
                let a = live.swap_remove(rng.below(live.len() as u64) as usize);
                allocator.free(a);
                allocator.check_invariants();
            }
            prop_assert_eq!(allocator.allocated_bytes(), 0);
            prop_assert_eq!(allocator.largest_free_bytes(), capacity_bytes);
            if capacity_bytes > 0 && max_allocations > 0 {
                let whole = allocator.allocate(capacity_bytes);
                prop_assert_eq!(whole.map(|a| (a.offset, a.size)), Some((0, capacity_bytes)));
            }
        }
    }

    #[test]
    fn with_used_rebuilds_live_ranges_and_frees_the_gaps() {
        let a = ALIGN_BYTES;
        let used = [(0, a, 7), (4 * a, 2 * a - 1, 8), (10 * a, a, 9)];
        let (mut al, nodes) = OffsetAllocator::with_used(16 * a, 100, &used).unwrap();
        al.check_invariants();
        assert_eq!(al.allocation_count(), 3);
        assert_eq!(al.allocated_bytes(), 4 * a);
        // The gaps are free: 3 + 4 + 5 units, and a used range is freed like any other.
        let big = al.allocate(5 * a).expect("the tail gap");
        assert_eq!(big.offset, 11 * a);
        al.free(al.handle(nodes[1], 8, 4 * a, 2 * a));
        al.check_invariants();
        // Freed, it merged with the gaps on both sides: 1..10 is one free region.
        assert_eq!(al.allocate(9 * a).map(|x| x.offset), Some(a));
        // Overlap, misalignment, out of range and unsorted input are refused.
        assert_eq!(
            OffsetAllocator::with_used(16 * a, 100, &[(0, 2 * a, 1), (a, a, 2)]).err(),
            Some(1)
        );
        assert_eq!(
            OffsetAllocator::with_used(16 * a, 100, &[(1, a, 1)]).err(),
            Some(0)
        );
        assert_eq!(
            OffsetAllocator::with_used(16 * a, 100, &[(16 * a, a, 1)]).err(),
            Some(0)
        );
        assert_eq!(
            OffsetAllocator::with_used(16 * a, 1, &[(0, a, 1), (a, a, 2)]).err(),
            Some(1)
        );
    }

    /// Churns a 1 GiB segment at about 80% occupancy with 128 KiB..4 MiB objects, then fills it
    /// until the first refusal: bins must not strand more than a tenth of the segment.
    #[test]
    fn utilisation_after_churn_stays_above_ninety_percent() {
        const CAPACITY_BYTES: u64 = GIB;
        const CHURN_OPS: usize = 20_000;
        let min_bytes = 128 * KIB;
        let max_bytes = 4 * MIB;
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut allocator = OffsetAllocator::new(CAPACITY_BYTES, 1 << 16);
        let mut live: Vec<Allocation> = Vec::new();
        let random_size = |rng: &mut XorShift| min_bytes + rng.below(max_bytes - min_bytes + 1);

        for _ in 0..CHURN_OPS {
            if allocator.allocated_bytes() < CAPACITY_BYTES / 10 * 8 {
                let size_bytes = random_size(&mut rng);
                let a = allocator
                    .allocate(size_bytes)
                    .expect("a 20%-free segment fits one object");
                live.push(a);
            } else {
                let a = live.swap_remove(rng.below(live.len() as u64) as usize);
                allocator.free(a);
            }
        }
        allocator.check_invariants();

        let mut fill_count = 0;
        while let Some(a) = allocator.allocate(random_size(&mut rng)) {
            live.push(a);
            fill_count += 1;
        }
        allocator.check_invariants();
        let utilisation = allocator.allocated_bytes() as f64 / CAPACITY_BYTES as f64;
        println!(
            "utilisation at first failure: {:.2}% ({} live, {fill_count} filled after churn, \
             largest free {} KiB)",
            utilisation * 100.0,
            allocator.allocation_count(),
            allocator.largest_free_bytes() / KIB
        );
        assert!(utilisation >= 0.90, "utilisation {utilisation:.4} < 0.90");
    }
}
