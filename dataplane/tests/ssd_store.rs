//! The SSD record store on real O_DIRECT files (a directory under the target dir, on the
//! disk; skipped with a logged reason where the file system refuses O_DIRECT): records
//! read back checked, deletes survive a restart, and a torn record in the middle of a file
//! hides neither the records after it nor the place new records go.

use std::path::{Path, PathBuf};

use glommio::LocalExecutorBuilder;
use mc_dataplane::ssd::{SsdConfig, SsdStats, SsdStore};
use mc_schema::checksum::crc32c;

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ssd-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg(d: &Path) -> SsdConfig {
    SsdConfig {
        dir: d.to_path_buf(),
        quota_bytes: 1 << 30,
        file_bytes: 64 << 20,
        queue_limit: 16,
        evict_oldest: false,
        checkpoint_every: 0,
    }
}

fn value(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Runs `f` on a fresh glommio executor with a small io memory (as a shard does).
fn on_executor<T: Send + 'static>(f: impl AsyncFnOnce() -> T + Send + 'static) -> T {
    LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(async move || f().await)
        .expect("executor starts")
        .join()
        .expect("executor ends")
}

/// Opens the store of `d`; `None` (logged) when its file system refuses O_DIRECT.
async fn open(d: &Path) -> Option<SsdStore> {
    open_with(d, 0).await
}

/// [`open`] with an index checkpoint every `every` record writes (0 = none).
async fn open_with(d: &Path, every: u64) -> Option<SsdStore> {
    let cfg = SsdConfig {
        checkpoint_every: every,
        ..cfg(d)
    };
    match SsdStore::open(&cfg, 0, SsdStats::new(0, "test:0")).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

async fn put(s: &SsdStore, key: &str, v: &[u8], generation: u64) -> u64 {
    let src = v.to_vec();
    let copy = move |dst: &mut [u8]| {
        dst.copy_from_slice(&src);
        true
    };
    let ids = (generation, generation, 0, 1);
    s.append(
        key.as_bytes(),
        copy,
        || {},
        v.len() as u64,
        ids,
        (crc32c(v), v.len() as u64),
    )
    .await
    .expect("append")
    .expect("copied")
}

async fn get(s: &SsdStore, loc: u64, generation: u64, len: usize) -> Option<Vec<u8>> {
    let (buf, at) = s.read(loc, generation, len as u64).await.ok()?;
    Some(buf[at..at + len].to_vec())
}

#[test]
fn records_survive_a_restart_and_a_torn_record_is_stepped_over() {
    let d = dir("restart");
    let dd = d.clone();
    let Some(locs) = on_executor(async move || {
        let s = open(&dd).await?;
        let a = put(&s, "a", &value(5000, 1), 11).await;
        let b = put(&s, "b", &value(70_000, 2), 12).await;
        let c = put(&s, "c", &value(4096, 3), 13).await;
        assert_eq!(get(&s, c, 13, 4096).await.unwrap(), value(4096, 3));
        assert!(get(&s, c, 14, 4096).await.is_none(), "another generation");
        assert!(s.delete(b, 12).await.unwrap());
        assert!(get(&s, b, 12, 70_000).await.is_none());
        Some((a, c))
    }) else {
        return;
    };
    let (a, c) = locs;
    // Tear the first record's header: the scan must step over it to find `c`.
    let file = d.join("shard-0/000000.rec");
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"torn", (a & ((1 << 40) - 1)) + 20).unwrap();
    drop(f);
    let dd = d.clone();
    let d_loc = on_executor(async move || {
        let s = open(&dd).await.expect("opened before");
        assert_eq!(s.len(), 1, "only c is live");
        assert_eq!(
            s.stats.torn_records_total.get(),
            1,
            "a is torn, b was deleted"
        );
        assert!(get(&s, a, 11, 5000).await.is_none());
        assert_eq!(get(&s, c, 13, 4096).await.unwrap(), value(4096, 3));
        put(&s, "d", &value(9000, 4), 14).await
    });
    let dd = d.clone();
    on_executor(async move || {
        let s = open(&dd).await.expect("opened before");
        assert_eq!(s.len(), 2);
        assert_eq!(get(&s, d_loc, 14, 9000).await.unwrap(), value(9000, 4));
        assert_eq!(get(&s, c, 13, 4096).await.unwrap(), value(4096, 3));
    });
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_flipped_payload_byte_is_never_served() {
    let d = dir("flip");
    let dd = d.clone();
    let Some(loc) = on_executor(async move || {
        let s = open(&dd).await?;
        Some(put(&s, "k", &value(10_000, 5), 21).await)
    }) else {
        return;
    };
    let file = d.join("shard-0/000000.rec");
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xAA], (loc & ((1 << 40) - 1)) + 4096 + 777)
        .unwrap();
    drop(f);
    let dd = d.clone();
    on_executor(async move || {
        let s = open(&dd).await.expect("opened before");
        // The scan refuses it; a read of its old location finds nothing.
        assert_eq!(s.len(), 0);
        assert_eq!(s.stats.torn_records_total.get(), 1);
        assert!(get(&s, loc, 21, 10_000).await.is_none());
    });
    let _ = std::fs::remove_dir_all(&d);
}

/// Waits until the store's checkpoint thread is done (it writes off the executor).
fn wait_checkpoint(s: &SsdStore) {
    let t = std::time::Instant::now();
    while s.checkpoint_in_progress() {
        assert!(t.elapsed().as_secs() < 60, "checkpoint never finished");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Writes 5 records and a checkpoint (every 5 writes), then 2 records and a delete of a
/// checkpointed record after it; returns the locations, or `None` when skipped.
fn checkpointed_store(d: &Path) -> Option<Vec<u64>> {
    let dd = d.to_path_buf();
    on_executor(async move || {
        let s = open_with(&dd, 5).await?;
        let mut locs = Vec::new();
        for i in 0..5u64 {
            locs.push(put(&s, &format!("k{i}"), &value(6000, i as u8), 100 + i).await);
        }
        wait_checkpoint(&s);
        assert_eq!(
            s.stats.checkpoints_total.get(),
            1,
            "one checkpoint after 5 writes"
        );
        for i in 5..7u64 {
            locs.push(put(&s, &format!("k{i}"), &value(6000, i as u8), 100 + i).await);
        }
        // A delete after the checkpoint: its tombstone is in the scanned part and must
        // still remove the record the checkpoint lists.
        assert!(s.delete(locs[1], 101).await.unwrap());
        wait_checkpoint(&s);
        Some(locs)
    })
}

#[test]
fn a_restart_takes_the_checkpoint_and_scans_only_the_records_after_it() {
    let d = dir("ckpt");
    let Some(locs) = checkpointed_store(&d) else {
        return;
    };
    assert!(d.join("shard-0/index.ckpt").exists());
    let dd = d.clone();
    on_executor(async move || {
        // No further checkpoint at this open: what the restart finds is the first one.
        let s = open_with(&dd, 0).await.expect("opened before");
        assert_eq!(s.stats.checkpoint_records.get(), 5);
        assert_eq!(s.stats.checkpoints_refused_total.get(), 0);
        // Two values and a tombstone follow the checkpoint.
        assert_eq!(s.stats.scanned_records.get(), 3);
        assert_eq!(s.len(), 6, "k1 deleted after the checkpoint");
        assert!(get(&s, locs[1], 101, 6000).await.is_none());
        for (i, &loc) in locs.iter().enumerate().filter(|&(i, _)| i != 1) {
            let got = get(&s, loc, 100 + i as u64, 6000).await;
            assert_eq!(got.unwrap(), value(6000, i as u8), "k{i}");
        }
        // The quota accounting matches a full scan's.
        let used = s.stats.bytes.get();
        drop(s);
        std::fs::remove_file(dd.join("shard-0/index.ckpt")).unwrap();
        let full = open_with(&dd, 0).await.expect("opened before");
        assert_eq!(full.stats.checkpoint_records.get(), 0);
        assert_eq!(full.len(), 6);
        assert_eq!(full.stats.bytes.get(), used);
    });
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_corrupt_checkpoint_falls_back_to_a_full_scan() {
    let d = dir("ckpt-corrupt");
    let Some(locs) = checkpointed_store(&d) else {
        return;
    };
    let ckpt = d.join("shard-0/index.ckpt");
    let mut b = std::fs::read(&ckpt).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&ckpt, &b).unwrap();
    let dd = d.clone();
    on_executor(async move || {
        let s = open_with(&dd, 0).await.expect("opened before");
        assert_eq!(s.stats.checkpoints_refused_total.get(), 1);
        assert_eq!(s.stats.checkpoint_records.get(), 0);
        assert_eq!(s.stats.scanned_records.get(), 8, "7 values and a tombstone");
        assert_eq!(s.len(), 6);
        for (i, &loc) in locs.iter().enumerate().filter(|&(i, _)| i != 1) {
            let got = get(&s, loc, 100 + i as u64, 6000).await;
            assert_eq!(got.unwrap(), value(6000, i as u8), "k{i}");
        }
    });
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_torn_tail_after_the_checkpoint_is_skipped_and_counted() {
    let d = dir("ckpt-torn");
    let Some(locs) = checkpointed_store(&d) else {
        return;
    };
    // The last record (k6) torn: a bit of its header flipped; then garbage after it.
    let file = d.join("shard-0/000000.rec");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"torn", (locs[6] & ((1 << 40) - 1)) + 30)
        .unwrap();
    let end = f.metadata().unwrap().len();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x5A; 4096], end).unwrap();
    drop(f);
    let dd = d.clone();
    let new = on_executor(async move || {
        let s = open_with(&dd, 0).await.expect("opened before");
        assert_eq!(s.stats.checkpoint_records.get(), 5);
        assert!(s.stats.torn_records_total.get() >= 1);
        assert_eq!(s.len(), 5, "k1 deleted, k6 torn");
        assert!(get(&s, locs[6], 106, 6000).await.is_none(), "never served");
        assert_eq!(get(&s, locs[5], 105, 6000).await.unwrap(), value(6000, 5));
        put(&s, "k7", &value(6000, 7), 107).await
    });
    let dd = d.clone();
    on_executor(async move || {
        let s = open_with(&dd, 0).await.expect("opened before");
        assert_eq!(s.len(), 6);
        assert_eq!(get(&s, new, 107, 6000).await.unwrap(), value(6000, 7));
    });
    let _ = std::fs::remove_dir_all(&d);
}
