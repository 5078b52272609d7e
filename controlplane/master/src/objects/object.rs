//! The compact form of one object's metadata.
//!
//! A master holds millions of objects, so the common case (one or two replicas of a value of
//! at most one slice, no soft pin, no upsert in flight) lives in 80 bytes without a further
//! allocation: value length and flags share a word, both replicas' locations are inline, the
//! single CRC is inline and the lease is an offset from the last access. Anything else
//! (more locations, more CRCs, a soft pin, an upsert in flight) goes to one boxed [`Rare`].

use mc_schema::limits::MAX_OBJECT_BYTES;

use crate::segments::SliceLoc;

/// Bits of [`Object::packed`] holding the value length (`MAX_OBJECT_BYTES` fits).
const SIZE_BITS: u32 = 48;
const SIZE_MASK: u64 = (1 << SIZE_BITS) - 1;
/// Bits 48..56: number of inline locations; bits 56..64: flags.
const INLINE_SHIFT: u32 = 48;
const FLAGS_SHIFT: u32 = 56;
const COMPLETE: u64 = 1 << FLAGS_SHIFT;
const HARD_PIN: u64 = 2 << FLAGS_SHIFT;
/// Re-adopted from a node's report (not written through this master).
const ADOPTED: u64 = 4 << FLAGS_SHIFT;
/// Locations kept inline.
const INLINE_LOCS: usize = 2;
/// Bits of [`Object::access`] holding the access time: 2^40 ms is 34 years of uptime.
const ACCESS_BITS: u32 = 40;
const ACCESS_MASK: u64 = (1 << ACCESS_BITS) - 1;

/// The 24-bit tag an object records of the client that wrote it (never 0): enough to tell
/// the writers of one cluster apart for `BatchReplicaClear` (two clients share a tag with
/// odds of one in 16 million).
pub fn writer_tag(client_id: u64) -> u32 {
    // splitmix64's finalizer: every bit of the id moves the tag.
    let mut z = client_id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> ACCESS_BITS) as u32).max(1)
}

const _: () = assert!(MAX_OBJECT_BYTES <= SIZE_MASK);

/// Metadata of one object.
#[derive(Debug)]
pub struct Object {
    /// Value length, inline location count, complete and hard-pin flags.
    packed: u64,
    /// Low [`ACCESS_BITS`]: last read or write (LRU rank), the PutStart time while the
    /// object is pending (nothing touches a pending object). High bits: the writer's tag
    /// ([`writer_tag`]; 0 = unknown).
    access: u64,
    /// Replica-major slice locations when they fit (`slice_count(size)` per replica).
    inline: [SliceLoc; INLINE_LOCS],
    rare: Option<Box<Rare>>,
    /// Read lease end minus `last_access_ms` (0 when no lease outlives the last access).
    lease_left_ms: u32,
    /// CRC32C of the only slice, once complete.
    crc: u32,
}

const _: () = assert!(size_of::<Object>() == 80);

/// The uncommon parts of an object, boxed so the common object stays small.
#[derive(Debug, Default)]
struct Rare {
    /// Soft pin end (0 = not soft-pinned).
    soft_pin_until_ms: u64,
    /// Generation naming the pending put once its first replica was dropped (0 = that of
    /// the first location).
    put_generation: u64,
    /// All locations when more than fit inline (then the inline ones are unused).
    locs: Vec<SliceLoc>,
    /// All CRCs when the value has more than one slice.
    crcs: Vec<u32>,
    /// A replacement value being written (UpsertStart done, UpsertEnd not yet).
    upsert: Option<Replacement>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.soft_pin_until_ms == 0
            && self.put_generation == 0
            && self.locs.is_empty()
            && self.crcs.is_empty()
            && self.upsert.is_none()
    }
}

/// A replacement value in flight: its own space, swapped in at UpsertEnd.
#[derive(Debug)]
pub struct Replacement {
    /// New value length.
    pub size: u64,
    /// New locations, replica-major.
    pub locs: Vec<SliceLoc>,
    /// UpsertStart time.
    pub started_ms: u64,
    /// Generation identifying this upsert.
    pub put_generation: u64,
    /// Hard pin the object takes at UpsertEnd.
    pub hard_pin: bool,
    /// Soft pin end the object takes at UpsertEnd.
    pub soft_pin_until_ms: u64,
}

impl Object {
    /// A pending object (PutStart done) at `now_ms`.
    pub fn pending(
        size: u64,
        locs: Vec<SliceLoc>,
        hard_pin: bool,
        soft_pin_until_ms: u64,
        now_ms: u64,
    ) -> Object {
        assert!(size <= MAX_OBJECT_BYTES, "object of {size} bytes");
        let mut o = Object {
            packed: size,
            access: now_ms & ACCESS_MASK,
            inline: [SliceLoc::default(); INLINE_LOCS],
            rare: None,
            lease_left_ms: 0,
            crc: 0,
        };
        o.set_locs(locs);
        o.set_hard_pin(hard_pin);
        o.set_soft_pin_until(soft_pin_until_ms);
        o
    }

    /// Value length in bytes.
    pub fn size(&self) -> u64 {
        self.packed & SIZE_MASK
    }

    /// PutEnd seen.
    pub fn complete(&self) -> bool {
        self.packed & COMPLETE != 0
    }

    /// Never evicted.
    pub fn hard_pin(&self) -> bool {
        self.packed & HARD_PIN != 0
    }

    fn set_flag(&mut self, flag: u64, on: bool) {
        if on {
            self.packed |= flag;
        } else {
            self.packed &= !flag;
        }
    }

    /// Whether this master re-adopted the object from a node's report (rather than a client
    /// writing it through this master).
    pub fn adopted(&self) -> bool {
        self.packed & ADOPTED != 0
    }

    /// Marks the object as re-adopted from a node's report.
    pub fn set_adopted(&mut self) {
        self.set_flag(ADOPTED, true);
    }

    /// Sets the hard pin.
    pub fn set_hard_pin(&mut self, on: bool) {
        self.set_flag(HARD_PIN, on);
    }

    /// Last read or write; the PutStart time while pending.
    pub fn last_access_ms(&self) -> u64 {
        self.access & ACCESS_MASK
    }

    /// The tag of the client that wrote it ([`writer_tag`]; 0 = unknown, e.g. re-adopted).
    pub fn writer(&self) -> u32 {
        (self.access >> ACCESS_BITS) as u32
    }

    /// Records `client_id` as the writer.
    pub fn set_writer(&mut self, client_id: u64) {
        self.access = self.last_access_ms() | u64::from(writer_tag(client_id)) << ACCESS_BITS;
    }

    /// Read lease end.
    pub fn lease_until_ms(&self) -> u64 {
        self.last_access_ms() + u64::from(self.lease_left_ms)
    }

    /// Whether a read lease runs at `now_ms`.
    pub fn leased(&self, now_ms: u64) -> bool {
        self.lease_until_ms() > now_ms
    }

    /// Moves the access time to `now_ms`, keeping the lease end (clamped to 49 days ahead).
    pub fn touch(&mut self, now_ms: u64) {
        self.set_access(now_ms, self.lease_until_ms());
    }

    /// Grants a read lease until at least `now_ms + lease_ms` and touches the object.
    pub fn grant_lease(&mut self, now_ms: u64, lease_ms: u64) {
        let until = self.lease_until_ms().max(now_ms + lease_ms);
        self.set_access(now_ms, until);
    }

    fn set_access(&mut self, now_ms: u64, lease_until_ms: u64) {
        self.access = (self.access & !ACCESS_MASK) | (now_ms & ACCESS_MASK);
        self.lease_left_ms = lease_until_ms.saturating_sub(now_ms).min(u32::MAX.into()) as u32;
    }

    /// Soft pin end (0 = none).
    pub fn soft_pin_until_ms(&self) -> u64 {
        self.rare.as_ref().map_or(0, |r| r.soft_pin_until_ms)
    }

    /// Whether a soft pin runs at `now_ms`.
    pub fn soft_pinned(&self, now_ms: u64) -> bool {
        self.soft_pin_until_ms() > now_ms
    }

    fn set_soft_pin_until(&mut self, until_ms: u64) {
        self.edit_rare(until_ms != 0, |r| r.soft_pin_until_ms = until_ms);
    }

    /// May eviction take it: complete, not hard-pinned, not leased, no upsert in flight.
    pub fn evictable(&self, now_ms: u64) -> bool {
        self.complete() && !self.hard_pin() && !self.leased(now_ms) && self.upsert().is_none()
    }

    /// Replica-major slice locations.
    pub fn locs(&self) -> &[SliceLoc] {
        match &self.rare {
            Some(r) if !r.locs.is_empty() => &r.locs,
            _ => &self.inline[..self.inline_count()],
        }
    }

    fn inline_count(&self) -> usize {
        ((self.packed >> INLINE_SHIFT) & 0xff) as usize
    }

    /// Replaces the locations (and returns the old ones).
    pub fn set_locs(&mut self, locs: Vec<SliceLoc>) -> Vec<SliceLoc> {
        let old = self.locs().to_vec();
        let n = if locs.len() <= INLINE_LOCS {
            self.inline[..locs.len()].copy_from_slice(&locs);
            self.edit_rare(false, |r| r.locs = Vec::new());
            locs.len()
        } else {
            self.edit_rare(true, |r| r.locs = locs);
            0
        };
        self.packed = (self.packed & !(0xff << INLINE_SHIFT)) | (n as u64) << INLINE_SHIFT;
        old
    }

    /// Generation of the put that created this object (kept when its first replica went).
    pub fn put_generation(&self) -> u64 {
        match self.rare.as_ref().map(|r| r.put_generation) {
            Some(g) if g != 0 => g,
            _ => self.locs().first().map_or(0, |l| l.generation),
        }
    }

    /// Names the put `g` whatever its locations (a re-adopted object whose first replica is
    /// not among those a node reported).
    pub fn set_put_generation(&mut self, g: u64) {
        if g != self.put_generation() {
            self.edit_rare(true, |r| r.put_generation = g);
        }
    }

    /// Keeps the put's generation although its first location is about to go.
    pub fn pin_put_generation(&mut self) {
        let g = self.put_generation();
        self.edit_rare(true, |r| r.put_generation = g);
    }

    /// CRC32C of each slice (empty while pending).
    pub fn crcs(&self) -> &[u32] {
        match &self.rare {
            Some(r) if !r.crcs.is_empty() => &r.crcs,
            _ if self.complete() => std::slice::from_ref(&self.crc),
            _ => &[],
        }
    }

    /// Commits: records the CRCs, marks complete, touches the object.
    pub fn commit(&mut self, crcs: Vec<u32>, now_ms: u64) {
        // The put's generation is kept only when the first location no longer tells it (its
        // first replica was dropped): recovery matches replicas by it.
        let g = self.put_generation();
        let first = self.locs().first().map_or(0, |l| l.generation);
        let keep = if g == first { 0 } else { g };
        if crcs.len() == 1 {
            self.crc = crcs[0];
            self.edit_rare(keep != 0, |r| {
                r.crcs = Vec::new();
                r.put_generation = keep;
            });
        } else {
            self.edit_rare(true, |r| {
                r.crcs = crcs;
                r.put_generation = keep;
            });
        }
        self.set_flag(COMPLETE, true);
        self.touch(now_ms);
    }

    /// The replacement in flight, if any.
    pub fn upsert(&self) -> Option<&Replacement> {
        self.rare.as_ref().and_then(|r| r.upsert.as_ref())
    }

    /// The replacement in flight, mutable.
    pub fn upsert_mut(&mut self) -> Option<&mut Replacement> {
        self.rare.as_mut().and_then(|r| r.upsert.as_mut())
    }

    /// Sets or clears the replacement in flight, returning the previous one.
    pub fn set_upsert(&mut self, u: Option<Replacement>) -> Option<Replacement> {
        let mut old = None;
        self.edit_rare(u.is_some(), |r| old = std::mem::replace(&mut r.upsert, u));
        old
    }

    /// Swaps replacement `u` in: its size, locations and pins; the CRCs of the new value.
    /// Returns the old size and locations.
    pub fn swap_in(&mut self, u: Replacement, crcs: Vec<u32>, now_ms: u64) -> (u64, Vec<SliceLoc>) {
        let old_size = self.size();
        self.packed = (self.packed & !SIZE_MASK) | u.size;
        let old = self.set_locs(u.locs);
        // The new value is this master's own, whatever the old one was.
        self.set_flag(ADOPTED, false);
        self.edit_rare(false, |r| r.put_generation = 0);
        self.set_put_generation(u.put_generation);
        self.set_hard_pin(u.hard_pin);
        self.set_soft_pin_until(u.soft_pin_until_ms);
        self.commit(crcs, now_ms);
        (old_size, old)
    }

    /// Applies `f` to the rare part and drops the part again when it ends up empty. Without
    /// a rare part, `f` runs only if it `adds` something (so clearing costs no allocation).
    fn edit_rare(&mut self, adds: bool, f: impl FnOnce(&mut Rare)) {
        let mut rare = match self.rare.take() {
            Some(r) => r,
            None if adds => Box::default(),
            None => return,
        };
        f(&mut rare);
        if !rare.is_empty() {
            self.rare = Some(rare);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(g: u64) -> SliceLoc {
        SliceLoc {
            offset: g * 64,
            generation: g,
            segment: 0,
            node: g as u32,
        }
    }

    #[test]
    fn the_common_object_stays_inline() {
        let mut o = Object::pending(64, vec![loc(1), loc(2)], false, 0, 10);
        assert!(o.rare.is_none());
        assert_eq!(o.locs(), &[loc(1), loc(2)]);
        assert_eq!(o.put_generation(), 1);
        assert!(o.crcs().is_empty() && !o.complete());
        o.commit(vec![7], 20);
        assert!(o.rare.is_none());
        assert_eq!((o.size(), o.crcs(), o.last_access_ms()), (64, &[7][..], 20));
        assert!(o.complete() && !o.hard_pin());
    }

    #[test]
    fn uncommon_parts_go_to_the_box_and_leave_it() {
        let locs: Vec<SliceLoc> = (1..=6).map(loc).collect();
        let mut o = Object::pending(40 << 20, locs.clone(), true, 99, 0);
        assert_eq!(o.locs(), &locs[..]);
        assert!(o.hard_pin() && o.soft_pinned(98) && !o.soft_pinned(99));
        o.pin_put_generation();
        o.set_locs(vec![loc(4), loc(5), loc(6)]);
        assert_eq!(o.put_generation(), 1);
        o.commit(vec![1, 2, 3], 5);
        assert_eq!(o.crcs(), &[1, 2, 3]);
        let u = Replacement {
            size: 64,
            locs: vec![loc(9)],
            started_ms: 6,
            put_generation: 9,
            hard_pin: false,
            soft_pin_until_ms: 0,
        };
        o.set_upsert(Some(u));
        let u = o.set_upsert(None).expect("in flight");
        let (old_size, old) = o.swap_in(u, vec![4], 7);
        assert_eq!((old_size, old.len()), (40 << 20, 3));
        assert!(o.rare.is_none(), "{:?}", o.rare);
        assert_eq!(
            (o.size(), o.locs(), o.crcs()),
            (64, &[loc(9)][..], &[4][..])
        );
    }

    #[test]
    fn a_lease_survives_touches_and_only_grows() {
        let mut o = Object::pending(64, vec![loc(1)], false, 0, 0);
        o.commit(vec![0], 100);
        assert!(!o.leased(100));
        o.grant_lease(100, 1_000);
        assert!(o.leased(1_099) && !o.leased(1_100));
        o.touch(500);
        assert_eq!(o.lease_until_ms(), 1_100);
        o.grant_lease(600, 100);
        assert_eq!((o.lease_until_ms(), o.last_access_ms()), (1_100, 600));
        o.touch(2_000);
        assert!(!o.leased(2_000));
    }
}
