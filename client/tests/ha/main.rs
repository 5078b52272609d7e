//! High availability end to end (issue 12): two masters electing on a real etcd or Redis,
//! store nodes and clients following the leader through the coordinator's locator.
//!
//! Every scenario runs on both coordinators. Waits are bounded generously and assertions
//! are about outcomes (who serves, which error, the bytes read); the times observed are
//! printed for the record (`cargo test -p mooncake-rs --test ha -- --nocapture`). Objects
//! written before a failover are not expected back: the new leader starts a fresh term
//! until node-inventory recovery lands.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mc_cluster::CoordinatorKind;
use mc_rpc::RpcClient;
use mc_schema::handshake::Role;
use mc_schema::msg::{ReplicateConfig, Request};
use mooncake_rs::{ErrorCode, Store};
use support::{
    Ha, PATIENCE, eventually, ha_cluster, ha_cluster_with, on_both, round_trip_eventually,
};

#[path = "../common/mod.rs"]
mod common;
use common::{pattern, wait_stopped};

/// A PutStart of one small object, as a client sends it.
fn put_start(key: &str) -> Request {
    Request::PutStart {
        client_id: 7,
        items: vec![(key.to_string(), 4096)],
        config: ReplicateConfig::default(),
        client_host: String::new(),
    }
}

/// An open connection to master `i`, as a client's.
fn rpc(ha: &Ha, i: usize) -> RpcClient {
    RpcClient::connect(
        &ha.cluster.master_addr_of(i),
        Role::Client,
        mc_schema::handshake::DEFAULT_CLUSTER_ID,
        Duration::from_secs(2),
    )
    .unwrap()
}

on_both!(standby_answers_at_once_naming_the_leader);
fn standby_answers_at_once_naming_the_leader(kind: CoordinatorKind) {
    let ha = ha_cluster(kind, 2, 1);
    let leader = ha.wait_serving(None);
    let standby = 1 - leader;
    let leader_addr = ha.cluster.master_addr_of(leader);
    eventually(PATIENCE, || {
        (ha.health(standby)["leader_address"] == *leader_addr).then_some(())
    })
    .unwrap_or_else(|| panic!("the standby never saw the leader\n{}", ha.logs()));

    // Straight to the standby: refused at once, the leader named in its own field.
    let t0 = Instant::now();
    let r = rpc(&ha, standby)
        .call(
            &put_start("direct"),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    eprintln!("{kind:?}: the standby answered in {:?}", t0.elapsed());
    assert_eq!(
        r.status,
        ErrorCode::UnavailableInCurrentStatus.code(),
        "{r:?}"
    );
    assert_eq!(r.leader_address, leader_addr);
    assert!(r.message.contains(&leader_addr), "{}", r.message);

    // Health and role of both.
    let (lh, sh) = (ha.health(leader), ha.health(standby));
    assert_eq!(
        (lh["role"].as_str(), lh["ha_state"].as_str()),
        (Some("leader"), Some("serving"))
    );
    assert_eq!(
        (sh["role"].as_str(), sh["ha_state"].as_str()),
        (Some("standby"), Some("standby"))
    );
    assert_eq!(lh["service_ready"], true);
    assert_eq!(sh["service_ready"], false);
    for h in [&lh, &sh] {
        assert_eq!(h["leader_address"], *leader_addr, "{h}");
        assert_eq!(h["view_version"], lh["view_version"], "{h}");
    }
    assert!(lh["view_version"].as_u64().unwrap() > 0);
    // Both sign write tokens with the one secret kept on the coordinator.
    let fp = lh["write_secret_fingerprint"].as_str().unwrap_or_default();
    assert_eq!(fp.len(), 16, "{lh}");
    assert_eq!(sh["write_secret_fingerprint"], fp, "{sh}");
    let role = mc_cluster::probe::http_get(
        &ha.cluster.metrics_addr_of(standby),
        "/role",
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(
        role.body.starts_with("standby\nha_state=standby\n"),
        "{}",
        role.body
    );
    assert!(
        role.body
            .contains(&format!("leader_address={leader_addr}\n")),
        "{}",
        role.body
    );

    // A client given the standby's address is redirected to the leader.
    let s = ha.client_at(&ha.cluster.master_addr_of(standby));
    let v = pattern(10_000, 3);
    round_trip_eventually(&s, "via-standby", &v);
}

on_both!(kill_9_of_the_leader_under_load);
fn kill_9_of_the_leader_under_load(kind: CoordinatorKind) {
    let mut ha = ha_cluster(kind, 2, 2);
    let leader = ha.wait_serving(None);
    let clients: Vec<Arc<Store>> = (0..2).map(|_| Arc::new(ha.client())).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let last_ok_ms: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let threads: Vec<_> = (0..2)
        .map(|c| {
            let (s, stop, wrong, last) = (
                clients[c].clone(),
                stop.clone(),
                wrong.clone(),
                last_ok_ms[c].clone(),
            );
            std::thread::spawn(move || load(&s, c, &stop, &wrong, &last, epoch))
        })
        .collect();
    let ok_since = |c: usize, t: Instant| {
        last_ok_ms[c].load(Ordering::Acquire) > t.duration_since(epoch).as_millis() as u64
    };
    eventually(PATIENCE, || {
        (0..2).all(|c| ok_since(c, epoch)).then_some(())
    })
    .unwrap_or_else(|| panic!("the load never got going\n{}", ha.logs()));

    ha.cluster.kill_master_of(leader);
    let killed = Instant::now();
    let next = ha.wait_serving(Some(leader));
    let took_over = killed.elapsed();
    let back = eventually(PATIENCE, || {
        (0..2)
            .all(|c| ok_since(c, killed))
            .then(|| killed.elapsed())
    });
    stop.store(true, Ordering::Release);
    let acked: Vec<Vec<(String, Vec<u8>)>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let back = back.unwrap_or_else(|| panic!("the clients did not come back\n{}", ha.logs()));
    let served: Vec<usize> = acked.iter().map(Vec::len).collect();
    eprintln!(
        "{kind:?}: kill -9 -> master {next} serving after {took_over:?}, both clients' first put+get after {back:?}; acknowledged puts {served:?}"
    );
    assert_eq!(wrong.load(Ordering::Acquire), 0, "wrong bytes were read");
    assert_ne!(next, leader);
    // Every acknowledged put, before and after the kill, is still there: the new leader
    // re-adopted what the nodes hold.
    let s = ha.client();
    for (key, value) in acked.iter().flatten() {
        match s.get(key) {
            Ok(v) => assert_eq!(&v, value, "{key} read back wrong"),
            Err(e) => panic!("{kind:?}: acknowledged {key} lost: {e}\n{}", ha.logs()),
        }
    }
}

/// Puts and reads back objects until `stop`: counts wrong bytes (never allowed) and stamps
/// each good round trip; errors around the failover are expected. Returns the puts that
/// were acknowledged, with their values.
fn load(
    s: &Store,
    c: usize,
    stop: &AtomicBool,
    wrong: &AtomicU64,
    last_ok_ms: &AtomicU64,
    epoch: Instant,
) -> Vec<(String, Vec<u8>)> {
    let cfg = ReplicateConfig::default();
    let mut n = 0u64;
    let mut acked = Vec::new();
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let key = format!("load-{c}-{n}");
        let value = pattern(8192 + (n as usize % 7) * 1000, n * 2 + c as u64);
        if s.put(&key, &value, &cfg).is_err() {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match s.get(&key) {
            Ok(v) if v == value => {
                last_ok_ms.store(epoch.elapsed().as_millis() as u64, Ordering::Release);
            }
            Ok(_) => {
                wrong.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        acked.push((key, value));
    }
    acked
}

on_both!(sigterm_hands_over_without_waiting_for_the_ttl);
fn sigterm_hands_over_without_waiting_for_the_ttl(kind: CoordinatorKind) {
    const TTL_S: u64 = 30;
    let mut ha = ha_cluster(kind, TTL_S, 1);
    let leader = ha.wait_serving(None);
    let s = ha.client();
    let before = pattern(5000, 1);
    round_trip_eventually(&s, "before", &before);
    s.put("kept", &before, &ReplicateConfig::default()).unwrap();
    ha.cluster.signal_master_of(leader, libc::SIGTERM);
    let sent = Instant::now();
    let next = ha.wait_serving(Some(leader));
    let took_over = sent.elapsed();
    let first = round_trip_eventually(&s, "after", &pattern(5000, 2)).duration_since(sent);
    match s.get("kept") {
        Ok(v) => assert_eq!(
            v, before,
            "the object put before the hand-over read back wrong"
        ),
        Err(e) => panic!(
            "{kind:?}: the object put before the hand-over is lost: {e}\n{}",
            ha.logs()
        ),
    }
    eprintln!(
        "{kind:?}: SIGTERM -> master {next} serving after {took_over:?}, first put+get after {first:?} (TTL {TTL_S} s)"
    );
    assert!(
        took_over < Duration::from_secs(TTL_S / 2),
        "the hand-over waited for the lease: {took_over:?}\n{}",
        ha.logs()
    );
    let status = ha.cluster.wait_master_exit_of(leader, PATIENCE);
    assert!(
        status.is_some_and(|s| s.success()),
        "the old leader did not stop cleanly: {status:?}"
    );
}

on_both!(a_leader_frozen_past_its_lease_refuses_its_first_write);
fn a_leader_frozen_past_its_lease_refuses_its_first_write(kind: CoordinatorKind) {
    let mut ha = ha_cluster(kind, 2, 1);
    let old = ha.wait_serving(None);
    let old_addr = ha.cluster.master_addr_of(old);
    let mut conn = rpc(&ha, old);
    let ok = conn
        .call(&put_start("warm"), Instant::now() + Duration::from_secs(5))
        .unwrap();
    assert!(
        !ok.is_not_leader(),
        "the leader serves before the freeze: {ok:?}"
    );

    let pid = ha.cluster.master_pid_of(old).unwrap();
    ha.cluster.signal_master_of(old, libc::SIGSTOP);
    wait_stopped(pid);
    let next = ha.wait_serving(Some(old));
    // The first request the resumed master handles is a write: it must be refused.
    ha.cluster.signal_master_of(old, libc::SIGCONT);
    let r = conn
        .call(
            &put_start("fenced"),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(
        r.status,
        ErrorCode::UnavailableInCurrentStatus.code(),
        "the frozen leader took a write: {r:?}"
    );
    assert_ne!(r.leader_address, old_addr, "it must not name itself");
    eprintln!(
        "{kind:?}: resumed old leader answered {} {:?}",
        r.status, r.message
    );

    // It settles as a standby of the new leader, and clients are served.
    let next_addr = ha.cluster.master_addr_of(next);
    eventually(PATIENCE, || {
        (ha.health(old)["leader_address"] == *next_addr && ha.health(old)["ha_state"] == "standby")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the old leader did not follow the new one\n{}", ha.logs()));
    assert_eq!(ha.serving(), Some(next));
    round_trip_eventually(&ha.client(), "after-thaw", &pattern(7000, 4));
}

on_both!(losing_the_coordinator_stops_service_until_it_is_back);
fn losing_the_coordinator_stops_service_until_it_is_back(kind: CoordinatorKind) {
    let mut ha = ha_cluster(kind, 2, 1);
    ha.wait_serving(None);
    let s = ha.client();
    round_trip_eventually(&s, "before", &pattern(3000, 1));

    ha.coord.kill();
    let killed = Instant::now();
    eventually(PATIENCE, || ha.serving().is_none().then_some(())).unwrap_or_else(|| {
        panic!(
            "the leader kept serving without its coordinator\n{}",
            ha.logs()
        )
    });
    let stepped_down = killed.elapsed();
    let t0 = Instant::now();
    let e = s
        .put("during", b"x", &mooncake_rs::ReplicateConfig::default())
        .unwrap_err();
    let answered = t0.elapsed();
    eprintln!(
        "{kind:?}: coordinator killed -> leader stepped down after {stepped_down:?}; a put failed after {answered:?}: {e}"
    );
    assert_eq!(e.code(), ErrorCode::UnavailableInCurrentStatus, "{e}");
    assert!(answered < PATIENCE, "the put hung");

    ha.coord.restart().unwrap();
    let restarted = Instant::now();
    ha.wait_serving(None);
    let back = round_trip_eventually(&s, "after", &pattern(3000, 2)).duration_since(restarted);
    eprintln!("{kind:?}: coordinator back -> first put+get after {back:?}");
}

on_both!(both_masters_rotate_a_rewritten_secret_file_and_a_failover_keeps_it);
/// Both masters read one `--cluster_secret_file` (as if each host's copy were updated):
/// when it is rewritten the standby switches at once and the leader after handing the
/// secret to the nodes, with no failed put; a failover then serves with the new secret.
fn both_masters_rotate_a_rewritten_secret_file_and_a_failover_keeps_it(kind: CoordinatorKind) {
    let dir = std::env::temp_dir().join(format!("mc-ha-rotate-{}-{kind:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    let (old, new) = (
        b"the HA secret at start, 32 bytes".as_slice(),
        b"the rotated HA secret, 32 bytes.".as_slice(),
    );
    std::fs::write(&file, old).unwrap();
    let mut ha = ha_cluster_with(
        kind,
        30,
        1,
        &[format!("--cluster_secret_file={}", file.display())],
    );
    let leader = ha.wait_serving(None);
    let fp = |ha: &Ha, i: usize| {
        ha.health(i)["write_secret_fingerprint"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for i in 0..2 {
        assert_eq!(fp(&ha, i), mc_schema::token::fingerprint(old), "master {i}");
    }
    let s = ha.client();
    round_trip_eventually(&s, "before", b"with the first secret");

    let tmp = dir.join("secret.new");
    std::fs::write(&tmp, new).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let mut n = 0u64;
    let rotated = eventually(PATIENCE, || {
        // Puts go on throughout, and none fails.
        n += 1;
        let key = format!("during-{n}");
        let value = pattern(4096, n);
        s.put(&key, &value, &ReplicateConfig::default())
            .unwrap_or_else(|e| panic!("put {key} during the rotation: {e}\n{}", ha.logs()));
        assert_eq!(s.get(&key).unwrap(), value);
        (0..2)
            .all(|i| fp(&ha, i) == mc_schema::token::fingerprint(new))
            .then_some(())
    });
    rotated.unwrap_or_else(|| panic!("the masters did not rotate\n{}", ha.logs()));
    assert!(n > 1, "puts ran during the rotation");

    // The standby takes over with the new secret; the node takes it when it mounts.
    ha.cluster.signal_master_of(leader, libc::SIGTERM);
    let next = ha.wait_serving(Some(leader));
    assert_eq!(fp(&ha, next), mc_schema::token::fingerprint(new));
    round_trip_eventually(&s, "after", b"with the rotated secret");
    let _ = std::fs::remove_dir_all(&dir);
}
