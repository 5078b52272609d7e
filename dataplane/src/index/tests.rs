use super::*;
use proptest::prelude::*;

fn entry(segment_id: u64, offset: u64, length: u64, generation: u64) -> Entry {
    Entry {
        segment_id,
        offset,
        length,
        generation,
        put_generation: generation,
        object_size: length,
        slice_index: 0,
        slice_count: 1,
        crc32c: generation as u32,
        replica_index: 0,
        pins: 0,
        state: EntryState::Written,
    }
}

fn reopen(ix: &Index) -> Index {
    let (r, k) = ix.files();
    Index::open(
        "mc-test-index-again",
        r.fd().try_clone_to_owned().unwrap(),
        k.fd().try_clone_to_owned().unwrap(),
    )
    .unwrap()
}

#[test]
fn a_write_replaces_what_it_overlaps() {
    let mut ix = Index::create("mc-test-index").unwrap();
    ix.insert(&entry(1, 0, 100, 1), b"a").unwrap();
    ix.insert(&entry(1, 100, 100, 2), b"b").unwrap();
    ix.insert(&entry(1, 300, 100, 3), b"c").unwrap();
    ix.insert(&entry(2, 0, 1000, 4), b"other segment").unwrap();
    // Overlaps the ends of a and b; c and the other segment stay.
    ix.insert(&entry(1, 50, 100, 5), b"d").unwrap();
    assert_eq!(ix.len(), 3);
    assert!(ix.get(1, 0).is_none() && ix.get(1, 100).is_none());
    assert_eq!(ix.get(1, 50).unwrap().1, b"d");
    assert_eq!(ix.get(1, 300).unwrap().1, b"c");
    assert_eq!(ix.get(2, 0).unwrap().1, b"other segment");
    // Adjacent ranges do not overlap.
    assert_eq!(ix.clear_range(1, 150, 150), 0);
    assert_eq!(ix.clear_range(1, 0, u64::MAX), 2);
}

#[test]
fn notices_act_only_on_their_generation() {
    let mut ix = Index::create("mc-test-index").unwrap();
    ix.insert(&entry(1, 0, 10, 7), b"k").unwrap();
    assert!(!ix.commit(1, 0, 6));
    assert!(ix.commit(1, 0, 7));
    assert_eq!(ix.get(1, 0).unwrap().0.state, EntryState::Committed);
    assert!(!ix.free(1, 0, 8));
    assert!(ix.free(1, 0, 7));
    assert!(ix.is_empty());
    assert!(!ix.commit(1, 0, 7));
}

#[test]
fn entries_survive_reopening_and_slots_and_keys_are_reused() {
    let mut ix = Index::create("mc-test-index").unwrap();
    for i in 0..10_000u64 {
        let key = format!("layer{}/block{i}", i % 7);
        ix.insert(&entry(i % 3, i * 64, 64, i + 1), key.as_bytes())
            .unwrap();
    }
    for i in (0..10_000u64).step_by(2) {
        assert!(ix.free(i % 3, i * 64, i + 1));
    }
    ix.commit(1, 64, 2);
    let before = ix.file_bytes();
    let mut again = reopen(&ix);
    assert_eq!(again.len(), 5_000);
    assert_eq!(again.get(1, 64).unwrap().0.state, EntryState::Committed);
    assert_eq!(again.get(1, 64).unwrap().1, b"layer1/block1");
    let mut n = 0;
    again.for_each(0, |e, key| {
        assert_eq!(
            key,
            format!("layer{}/block{}", (e.offset / 64) % 7, e.offset / 64).as_bytes()
        );
        n += 1;
    });
    assert_eq!(
        n,
        (0..10_000u64).filter(|i| i % 2 == 1 && i % 3 == 0).count()
    );
    // Freed slots and key blocks are used again: the files need not grow.
    for i in (0..10_000u64).step_by(2) {
        again
            .insert(&entry(5, i * 64, 64, i + 1), b"refill")
            .unwrap();
    }
    assert_eq!(again.file_bytes(), before);
}

#[test]
fn dropping_a_segment_forgets_only_its_entries() {
    let mut ix = Index::create("mc-test-index").unwrap();
    ix.insert(&entry(1, 0, 10, 1), b"a").unwrap();
    ix.insert(&entry(2, 0, 10, 2), b"b").unwrap();
    assert_eq!(ix.drop_segment(1), 1);
    assert_eq!(ix.len(), 1);
    assert!(ix.get(2, 0).is_some());
}

proptest! {
    /// Random inserts and frees keep entries disjoint within a segment and agree with a
    /// model, before and after reopening.
    #[test]
    fn the_index_matches_a_model(ops in proptest::collection::vec((0u64..2, 0u64..64, 1u64..16, any::<bool>()), 1..200)) {
        let mut ix = Index::create("mc-test-index-prop").unwrap();
        let mut model: std::collections::BTreeMap<(u64, u64), (u64, u64)> = Default::default();
        for (g, (seg, off, len, free)) in ops.into_iter().enumerate() {
            let g = g as u64 + 1;
            if free {
                let hit = model.get(&(seg, off)).map(|&(_, g0)| g0);
                let freed = hit.is_some_and(|g0| ix.free(seg, off, g0));
                prop_assert_eq!(freed, hit.is_some());
                model.remove(&(seg, off));
            } else {
                ix.insert(&entry(seg, off, len, g), format!("k{g}").as_bytes()).unwrap();
                model.retain(|&(s, o), &mut (l, _)| s != seg || o + l <= off || off + len <= o);
                model.insert((seg, off), (len, g));
            }
        }
        for ix in [&ix, &reopen(&ix)] {
            prop_assert_eq!(ix.len(), model.len());
            for (&(seg, off), &(len, g)) in &model {
                let (e, key) = ix.get(seg, off).unwrap();
                prop_assert_eq!((e.length, e.generation), (len, g));
                prop_assert_eq!(key, format!("k{g}").into_bytes());
            }
        }
    }
}
