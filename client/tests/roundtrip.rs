//! Byte-exact round trips, argument validation and object lifecycle through the public
//! client against a live master and store node.

mod common;

use common::{cluster, pattern, store};
use std::mem::MaybeUninit;

use mooncake_rs::{ErrorCode, ReplicateConfig};

#[test]
fn values_round_trip_byte_exact_through_get_and_get_into() {
    let c = cluster(1, "256MB");
    let s = store(&c);
    let cfg = ReplicateConfig::default();
    for (i, len) in [1usize, 4096, 1 << 20, 40 << 20].into_iter().enumerate() {
        let key = format!("rt-{len}");
        let value = pattern(len, i as u64 + 1);
        s.put(&key, &value, &cfg).unwrap();
        assert_eq!(s.get(&key).unwrap(), value, "get of {len} bytes");
        let mut buf = vec![0u8; len + 7];
        let n = s.get_into(&key, &mut buf).unwrap();
        assert_eq!(n, len);
        assert_eq!(&buf[..n], &value[..], "get_into of {len} bytes");
        assert_eq!(s.get_size(&key).unwrap(), len as u64);
        assert!(s.exists(&key).unwrap());
    }
    // 40 MiB is cut into three slices: the replica descriptor shows it.
    let reps = s.replicas("rt-41943040").unwrap();
    assert_eq!(reps[0].slices.len(), 3);
}

/// Batch reads that hand out memory nobody zeroed: what succeeded holds exactly the value
/// (multi-slice ones included); a missing key is an error and its memory is
/// never asked for.
#[test]
fn batch_reads_into_fresh_and_uninitialised_memory_are_byte_exact() {
    let c = cluster(1, "256MB");
    let s = store(&c);
    let cfg = ReplicateConfig::default();
    let lens = [1usize, 4096, 3 << 20, 40 << 20];
    let keys: Vec<String> = lens.iter().map(|l| format!("un-{l}")).collect();
    for (i, (k, &l)) in keys.iter().zip(&lens).enumerate() {
        s.put(k, &pattern(l, i as u64 + 9), &cfg).unwrap();
    }
    let mut refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    refs.insert(2, "un-missing");
    let owned = s.get_batch(&refs);
    // Memory for every key, filled with a byte no value has at its end, so a read that
    // stopped short would show.
    let size_of = |j: usize| match j {
        2 => 0,
        j if j < 2 => lens[j],
        j => lens[j - 1],
    };
    let mut mem: Vec<Vec<MaybeUninit<u8>>> = (0..refs.len())
        .map(|j| vec![MaybeUninit::new(0xEE); size_of(j)])
        .collect();
    let mut slots: Vec<Option<&mut [MaybeUninit<u8>]>> =
        mem.iter_mut().map(|v| Some(v.as_mut_slice())).collect();
    let mut asked = Vec::new();
    let sizes = s.get_batch_with_uninit(&refs, |k, size| {
        asked.push(k);
        let m = slots[k].take().expect("asked once per key");
        assert_eq!(m.len(), size);
        Ok(m)
    });
    assert_eq!(asked, [0, 1, 3, 4], "no memory for the missing key");
    for (j, r) in owned.iter().enumerate() {
        if j == 2 {
            assert_eq!(r.as_ref().unwrap_err().code(), ErrorCode::ObjectNotFound);
            assert_eq!(
                sizes[j].as_ref().unwrap_err().code(),
                ErrorCode::ObjectNotFound
            );
            continue;
        }
        let i = if j < 2 { j } else { j - 1 };
        let want = pattern(lens[i], i as u64 + 9);
        assert_eq!(r.as_ref().unwrap(), &want, "get_batch of {} bytes", lens[i]);
        assert_eq!(*sizes[j].as_ref().unwrap(), lens[i]);
        let got: Vec<u8> = mem[j]
            .iter()
            // SAFETY: every byte was initialised (to 0xEE) before the call, and the read
            // only ever stores received bytes.
            .map(|b| unsafe { b.assume_init() })
            .collect();
        assert!(got == want, "get_batch_with_uninit of {} bytes", lens[i]);
    }
}

#[test]
fn bad_arguments_get_invalid_params() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let cfg = ReplicateConfig::default();
    let code = |r: mooncake_rs::Result<()>| r.unwrap_err().code();
    assert_eq!(code(s.put("", b"x", &cfg)), ErrorCode::InvalidParams);
    assert_eq!(code(s.put("k", b"", &cfg)), ErrorCode::InvalidParams);
    let long = "k".repeat(mooncake_rs::MAX_KEY_LEN + 1);
    assert_eq!(code(s.put(&long, b"x", &cfg)), ErrorCode::InvalidParams);
    assert_eq!(s.get(&long).unwrap_err().code(), ErrorCode::InvalidParams);
    assert_eq!(s.get("").unwrap_err().code(), ErrorCode::InvalidParams);
    let zero = ReplicateConfig {
        replica_num: 0,
        ..ReplicateConfig::default()
    };
    assert_eq!(code(s.put("k", b"x", &zero)), ErrorCode::InvalidParams);

    // A buffer too small for the object: INVALID_PARAMS and not one byte written.
    s.put("big", &pattern(10_000, 3), &cfg).unwrap();
    let mut small = vec![0xAAu8; 9_999];
    let e = s.get_into("big", &mut small).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidParams);
    assert!(small.iter().all(|&b| b == 0xAA));
    // The store still works after all that.
    assert_eq!(s.get("big").unwrap(), pattern(10_000, 3));
}

#[test]
fn lifecycle_exists_remove_regex_all_and_batches() {
    let c = cluster(1, "64MB");
    let s = store(&c);
    let cfg = ReplicateConfig::default();

    // Put of an existing key is refused and keeps the old bytes.
    s.put("dup", b"first", &cfg).unwrap();
    let e = s.put("dup", b"second value", &cfg).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ObjectAlreadyExists);
    assert_eq!(s.get("dup").unwrap(), b"first");

    // A read grants a lease: remove without force is refused, with force it goes.
    assert_eq!(
        s.remove("dup", false).unwrap_err().code(),
        ErrorCode::ObjectHasLease
    );
    s.remove("dup", true).unwrap();
    assert_eq!(s.get("dup").unwrap_err().code(), ErrorCode::ObjectNotFound);
    assert_eq!(
        s.remove("dup", true).unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
    assert!(!s.exists("dup").unwrap());
    assert_eq!(
        s.get_size("dup").unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );

    // Batches with some keys missing answer per key.
    let items: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("b-{i}"), pattern(100 + i, i as u64)))
        .collect();
    let refs: Vec<(&str, &[u8])> = items
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert!(s.put_batch(&refs, &cfg).iter().all(|r| r.is_ok()));
    let again = s.put_batch(&[("b-0", b"zz"), ("b-new", b"yy")], &cfg);
    assert_eq!(
        again[0].as_ref().unwrap_err().code(),
        ErrorCode::ObjectAlreadyExists
    );
    assert!(again[1].is_ok());
    let got = s.get_batch(&["b-1", "nope", "b-5"]);
    assert_eq!(got[0].as_ref().unwrap(), &items[1].1);
    assert_eq!(
        got[1].as_ref().unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );
    assert_eq!(got[2].as_ref().unwrap(), &items[5].1);
    let ex = s.batch_exists(&["b-2", "nope"]);
    assert!(ex[0].as_ref().unwrap());
    assert!(!ex[1].as_ref().unwrap());
    let rm = s.remove_batch(&["b-3", "nope"], true);
    assert!(rm[0].is_ok());
    assert_eq!(
        rm[1].as_ref().unwrap_err().code(),
        ErrorCode::ObjectNotFound
    );

    // Regex and remove-all return counts; leased objects need force.
    for i in 0..5 {
        s.put(&format!("re-a-{i}"), b"v", &cfg).unwrap();
        s.put(&format!("re-b-{i}"), b"v", &cfg).unwrap();
    }
    s.get("re-a-0").unwrap(); // leased now
    assert_eq!(s.remove_by_regex("^re-a-", false).unwrap(), 4);
    assert_eq!(s.remove_by_regex("^re-a-", true).unwrap(), 1);
    assert_eq!(
        s.remove_by_regex("(", true).unwrap_err().code(),
        ErrorCode::InvalidParams
    );
    assert_eq!(s.remove_by_regex("^re-b-[0-2]$", true).unwrap(), 3);
    // Left: b-0, b-1, b-2, b-4, b-5, b-new, re-b-3, re-b-4.
    assert_eq!(s.remove_all(true).unwrap(), 8);
    assert_eq!(s.remove_all(true).unwrap(), 0);
    assert_eq!(s.get("b-1").unwrap_err().code(), ErrorCode::ObjectNotFound);
}

#[test]
fn full_segment_gives_no_available_handle_and_keeps_old_objects() {
    let c = cluster(1, "32MB");
    let s = store(&c);
    let pinned = ReplicateConfig {
        with_hard_pin: true,
        ..ReplicateConfig::default()
    };
    let mut stored = Vec::new();
    let mut full = None;
    for i in 0..64u64 {
        let v = pattern(1 << 20, i);
        match s.put(&format!("fill-{i}"), &v, &pinned) {
            Ok(()) => stored.push((i, v)),
            Err(e) => {
                full = Some(e.code());
                break;
            }
        }
    }
    assert_eq!(full, Some(ErrorCode::NoAvailableHandle));
    assert!(
        stored.len() >= 30,
        "only {} MiB fit in 32 MiB",
        stored.len()
    );
    for (i, v) in &stored {
        assert_eq!(&s.get(&format!("fill-{i}")).unwrap(), v);
    }
    // Freeing space makes room again.
    s.remove("fill-0", true).unwrap();
    s.put("after", &pattern(1 << 20, 99), &pinned).unwrap();
}

#[test]
fn client_metrics_count_calls_keys_bytes_and_failures() {
    use mooncake_rs::{Store, StoreConfig};
    use std::time::Duration;
    let c = cluster(1, "64MB");
    let cfg = ReplicateConfig::default();
    let s = Store::connect(StoreConfig {
        metrics_enabled: true,
        metrics_interval: Duration::from_secs(1), // the reporter thread runs and stops on drop
        ..StoreConfig::new(c.master_addr())
    })
    .unwrap();
    s.put("a", &pattern(1000, 1), &cfg).unwrap();
    s.put("b", &pattern(3000, 2), &cfg).unwrap();
    assert!(s.put("a", b"dup", &cfg).is_err());
    s.get("a").unwrap();
    assert!(s.get("missing").is_err());
    let mut buf = vec![0u8; 4000];
    s.get_into("b", &mut buf).unwrap();
    let _ = s.batch_exists(&["a", "b", "c"]);
    s.remove("a", true).unwrap();
    let m = s.metrics();
    let put = m.op("put").unwrap();
    assert_eq!(
        (put.calls, put.keys, put.failed_keys, put.bytes),
        (3, 3, 1, 4000)
    );
    assert!(put.p50_us > 0 && put.p99_us >= put.p50_us);
    let get = m.op("get").unwrap();
    assert_eq!(
        (get.calls, get.keys, get.failed_keys, get.bytes),
        (3, 3, 1, 4000)
    );
    assert_eq!(m.op("exists").unwrap().keys, 3);
    assert_eq!(m.op("remove").unwrap().calls, 1);
    assert!(m.to_string().contains("put calls=3"), "{m}");
    drop(s);

    // Disabled: nothing is counted.
    let quiet = Store::connect(StoreConfig {
        metrics_enabled: false,
        ..StoreConfig::new(c.master_addr())
    })
    .unwrap();
    quiet.put("q", b"v", &cfg).unwrap();
    assert_eq!(quiet.metrics().op("put").unwrap().calls, 0);
}
