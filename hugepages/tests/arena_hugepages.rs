//! The mmap arena on real hugetlb pages. As root the tests reserve the pages they need
//! through the pool's `nr_hugepages` and put the old value back; where that cannot be done
//! (not root, no memory, no such page size) they print why and skip.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use mc_hugepages::{Arena, Backing, Error, HugePolicy, Memory, RegionOptions};

const MIB: usize = 1 << 20;

/// One test at a time touches the pools.
static POOLS: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    POOLS.lock().unwrap_or_else(|e| e.into_inner())
}

fn pool_dir(page_bytes: usize) -> PathBuf {
    PathBuf::from(format!(
        "/sys/kernel/mm/hugepages/hugepages-{}kB",
        page_bytes / 1024
    ))
}

fn read_count(page_bytes: usize, file: &str) -> Option<usize> {
    std::fs::read_to_string(pool_dir(page_bytes).join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Pages free and not promised to a mapping.
fn available(page_bytes: usize) -> usize {
    read_count(page_bytes, "free_hugepages").unwrap_or(0)
        - read_count(page_bytes, "resv_hugepages").unwrap_or(0)
}

/// Grows the pool of `page_bytes` pages so `pages` more are available, and shrinks it back
/// on drop. `None` with the reason printed when that cannot be done.
struct Reservation {
    knob: PathBuf,
    previous: usize,
}

impl Reservation {
    fn grow(page_bytes: usize, pages: usize) -> Option<Reservation> {
        let knob = pool_dir(page_bytes).join("nr_hugepages");
        let Some(previous) = read_count(page_bytes, "nr_hugepages") else {
            eprintln!(
                "skipped: this kernel has no {} hugetlb pool",
                page_bytes / MIB
            );
            return None;
        };
        let want = previous + pages;
        if let Err(e) = std::fs::write(&knob, want.to_string()) {
            eprintln!(
                "skipped: cannot write {} (root needed): {e}",
                knob.display()
            );
            return None;
        }
        let guard = Reservation { knob, previous };
        if available(page_bytes) < pages {
            eprintln!(
                "skipped: asked for {pages} more pages of {} MiB, the kernel found {}",
                page_bytes / MIB,
                available(page_bytes)
            );
            return None;
        }
        Some(guard)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.knob, self.previous.to_string()) {
            eprintln!(
                "could not restore {} to {}: {e}",
                self.knob.display(),
                self.previous
            );
        }
    }
}

fn opts(huge: HugePolicy, page_bytes: usize) -> RegionOptions {
    RegionOptions {
        name: "test-arena-huge".into(),
        huge,
        huge_page_bytes: page_bytes,
        numa_node: Some(0),
        ..RegionOptions::default()
    }
}

#[test]
fn a_2mb_arena_hands_out_hugepage_slices_and_falls_back_when_full() {
    let _lock = lock();
    let page = 2 * MIB;
    let Some(_pages) = Reservation::grow(page, 4) else {
        return;
    };
    let arena = Arena::reserve(4 * page, &opts(HugePolicy::Require, page)).expect("4 hugepages");
    assert_eq!(arena.backing(), Backing::MemfdHugeTlb);
    assert_eq!((arena.pool_bytes(), arena.page_bytes()), (8 * MIB, page));
    assert_eq!(arena.numa_node(), Some(0));

    let mount = Memory::allocate(1, &opts(HugePolicy::Never, page), Some(&arena)).unwrap();
    assert!(mount.from_arena());
    assert_eq!(mount.len_bytes(), page, "slices are whole hugepages");
    assert_eq!(mount.as_ptr() as usize % page, 0);
    assert_eq!(mount.backing(), Backing::MemfdHugeTlb);
    let big = Memory::allocate(3 * page, &opts(HugePolicy::Never, page), Some(&arena)).unwrap();
    assert!(big.from_arena());
    assert_eq!(arena.used_bytes(), 8 * MIB);
    // SAFETY: the first and last byte of live, disjoint slices.
    unsafe {
        mount.as_ptr().write_volatile(1);
        big.as_ptr().add(3 * page - 1).write_volatile(2);
        assert_eq!(mount.as_ptr().read_volatile(), 1);
        assert_eq!(big.as_ptr().add(3 * page - 1).read_volatile(), 2);
    }

    // Full: the next one maps plain pages of its own.
    let extra = Memory::allocate(MIB, &opts(HugePolicy::Never, page), Some(&arena)).unwrap();
    assert!(!extra.from_arena());
    assert_eq!(extra.backing(), Backing::Memfd);
    drop(big);
    assert_eq!(arena.used_bytes(), 2 * MIB, "a dropped slice goes back");
    let again = arena.alloc(3 * page).expect("the freed range is reused");
    assert_eq!(again.len_bytes(), 3 * page);
}

#[test]
fn a_pool_beyond_the_hugepages_is_an_error_when_required_and_plain_pages_when_tried() {
    let _lock = lock();
    let page = 2 * MIB;
    if read_count(page, "nr_overcommit_hugepages").unwrap_or(0) > 0 {
        eprintln!("skipped: hugepage overcommit is on, so no pool is sure to be short");
        return;
    }
    let pages = available(page) + 1;
    let err = Arena::reserve(pages * page, &opts(HugePolicy::Require, page)).unwrap_err();
    assert!(matches!(err, Error::HugePoolShort { .. }), "{err}");
    assert!(err.to_string().contains("nr_hugepages"), "{err}");
    let mut o = opts(HugePolicy::Try, page);
    o.prefault = false;
    let arena = Arena::reserve(pages * page, &o).expect("Try falls back");
    if arena.backing() == Backing::MemfdHugeTlb {
        eprintln!("skipped: someone grew the pool meanwhile");
        return;
    }
    assert_eq!(arena.backing(), Backing::Memfd);
    assert!(arena.alloc(page).is_some());
}

#[test]
fn a_1gb_arena_uses_gigantic_pages() {
    let _lock = lock();
    let page = 1 << 30;
    let Some(_pages) = Reservation::grow(page, 1) else {
        return;
    };
    let mut o = opts(HugePolicy::Require, page);
    o.prefault = false;
    let arena = Arena::reserve(page, &o).expect("one 1 GiB page");
    assert_eq!(arena.backing(), Backing::MemfdHugeTlb);
    assert_eq!(arena.page_bytes(), page);
    let s = arena.alloc(4096).unwrap();
    assert_eq!(s.len_bytes(), page);
    // SAFETY: first byte of the live slice.
    unsafe {
        s.as_ptr().write_volatile(9);
        assert_eq!(s.as_ptr().read_volatile(), 9);
    }
}
