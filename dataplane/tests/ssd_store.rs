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
    match SsdStore::open(&cfg(d), 0, SsdStats::new(0, "test:0")).await {
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
