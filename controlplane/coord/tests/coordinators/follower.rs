//! View-following scenarios, and the stored layout Mooncake reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mc_coord::elect::{Election, Role};
use mc_coord::{LeaderTracker, MasterLocator, MasterView, RedisKeys, ViewFollower};

use crate::support::{Etcd, PATIENCE, Redis, Server, elector};
use crate::{a_leader, eventually, on_both};

const CLUSTER: &str = "follow_cluster";

/// The locator a follower uses: for etcd a dead endpoint comes first, so following also
/// covers trying the endpoints in turn.
trait FollowLocator {
    fn follow_locator(&self) -> MasterLocator;
}

impl FollowLocator for Etcd {
    fn follow_locator(&self) -> MasterLocator {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        MasterLocator::parse(&format!(
            "etcd://127.0.0.1:{dead};http://127.0.0.1:{}",
            self.client_port()
        ))
        .unwrap()
    }
}

impl FollowLocator for Redis {
    fn follow_locator(&self) -> MasterLocator {
        self.locator()
    }
}

/// Waits (off the runtime) for the follower to publish a version other than `after`.
async fn next_view(follower: &Arc<ViewFollower>, after: u64) -> MasterView {
    let f = follower.clone();
    tokio::task::spawn_blocking(move || f.wait_for_change(after, PATIENCE))
        .await
        .unwrap()
        .unwrap_or_else(|| {
            panic!("the follower saw no view after version {after} within {PATIENCE:?}")
        })
}

/// Starts an election for `address` and waits until it leads.
async fn lead<S: Server>(server: &S, address: &str) -> (Election, MasterView, Instant) {
    let e = Election::start(
        elector(server, CLUSTER, Duration::from_secs(5)).await,
        address,
    )
    .unwrap();
    let (_, view) = a_leader(&[&e]).await;
    (e, view, Instant::now())
}

on_both!(follower_sees_each_change);
async fn follower_sees_each_change<S: Server + FollowLocator>() {
    let server = S::start();
    let follower = Arc::new(ViewFollower::start(&server.follow_locator(), CLUSTER).unwrap());
    let mut versions = Vec::new();
    let mut after = 0;
    for address in ["10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051"] {
        let (election, view, led_at) = lead(&server, address).await;
        let seen = next_view(&follower, after).await;
        eprintln!(
            "follower saw {address} (v{}) {:?} after its election reported it",
            seen.version,
            led_at.elapsed()
        );
        assert_eq!(seen, view);
        assert_eq!(follower.current(), Some(view.clone()));
        versions.push(view.version);
        after = view.version;
        election.resign().await.unwrap();
        eventually("the follower to see the resign", PATIENCE, || async {
            follower.current().is_none().then_some(())
        })
        .await;
    }
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions did not grow: {versions:?}"
    );
    let mut follower = Arc::into_inner(follower).expect("no other handle");
    let stopping = Instant::now();
    follower.stop();
    eprintln!("follower stop took {:?}", stopping.elapsed());
    assert_eq!(follower.wait_for_change(0, PATIENCE), None);
}

on_both!(follower_survives_a_coordinator_restart);
async fn follower_survives_a_coordinator_restart<S: Server + FollowLocator>() {
    let mut server = S::start();
    let follower = Arc::new(ViewFollower::start(&server.follow_locator(), CLUSTER).unwrap());
    let e = Election::start(
        elector(&server, CLUSTER, Duration::from_secs(3)).await,
        "10.0.0.1:50051",
    )
    .unwrap();
    let (_, first) = a_leader(&[&e]).await;
    assert_eq!(next_view(&follower, 0).await, first);
    server.kill();
    eventually("the leader to step down", PATIENCE, || async {
        matches!(
            e.role(),
            Role::Standby {
                last_loss: Some(_),
                ..
            }
        )
        .then_some(())
    })
    .await;
    tokio::task::block_in_place(|| server.restart());
    let again = eventually("a new term", PATIENCE, || async {
        match e.role() {
            Role::Leader { view } if view.version > first.version => Some(view),
            _ => None,
        }
    })
    .await;
    let seen = eventually("the follower to see the new term", PATIENCE, || async {
        follower.current().filter(|v| v.version > first.version)
    })
    .await;
    assert_eq!(seen, again);
}

on_both!(tracker_waits_for_the_next_leader);
async fn tracker_waits_for_the_next_leader<S: Server + FollowLocator>() {
    let server = S::start();
    let tracker = Arc::new(LeaderTracker::start(&server.follow_locator(), CLUSTER).unwrap());
    let (a, first, _) = lead(&server, "10.0.0.1:50051").await;
    let t = tracker.clone();
    let target = tokio::task::spawn_blocking(move || t.wait_for_leader(PATIENCE))
        .await
        .unwrap()
        .expect("the tracker sees the leader");
    assert_eq!(
        (target.address.as_str(), target.version),
        (first.leader.as_str(), first.version)
    );
    // A call to the leader failed without an answer (it died): wait for the next leader.
    let (t, failed) = (tracker.clone(), target.clone());
    let waiting =
        tokio::task::spawn_blocking(move || t.redirect(&failed, None, Instant::now() + PATIENCE));
    a.resign().await.unwrap();
    let (_b, second, _) = lead(&server, "10.0.0.2:50051").await;
    let next = waiting
        .await
        .unwrap()
        .expect("the next leader before the deadline");
    assert_eq!(
        (next.address.as_str(), next.version),
        (second.leader.as_str(), second.version)
    );
    assert_eq!(tracker.target(), Some(next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_layout_is_mooncakes() {
    let server = Redis::start();
    let (e, view, _) = lead(&server, "10.0.0.9:50051").await;
    let keys = RedisKeys::new(CLUSTER);
    assert_eq!(keys.view, "mooncake-store/{follow_cluster}/master_view");
    let mut conn = server.connection();
    let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&keys.view)
        .query(&mut conn)
        .unwrap();
    assert_eq!(fields["leader_address"], "10.0.0.9:50051");
    assert_eq!(fields["view_version"], view.version.to_string());
    assert_eq!(fields["owner_token"].len(), 36, "a UUID: {fields:?}");
    let counter: u64 = redis::cmd("GET")
        .arg(&keys.version)
        .query(&mut conn)
        .unwrap();
    assert_eq!(counter, view.version);
    let pttl: i64 = redis::cmd("PTTL").arg(&keys.view).query(&mut conn).unwrap();
    assert!(pttl > 0 && pttl <= 5000, "PTTL {pttl}");
    e.resign().await.unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&keys.view)
        .query(&mut conn)
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_layout_is_mooncakes() {
    let server = Etcd::start();
    let (_e, view, _) = lead(&server, "10.0.0.9:50051").await;
    // Read the raw key through the gateway as any etcd client would.
    let key = mc_coord::etcd_view_key(CLUSTER);
    assert_eq!(key, "mooncake-store/follow_cluster/master_view");
    let body = format!(r#"{{"key":"{}"}}"#, b64(&key));
    let answer = http_post(server.client_port(), "/v3/kv/range", &body);
    let kv = &answer["kvs"][0];
    assert_eq!(
        kv["value"].as_str().unwrap(),
        b64("10.0.0.9:50051"),
        "the value is the bare address"
    );
    assert_eq!(
        kv["create_revision"].as_str().unwrap(),
        view.version.to_string()
    );
    assert_ne!(
        kv["lease"].as_str().unwrap_or("0"),
        "0",
        "the key is attached to a lease"
    );
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn http_post(port: u16, path: &str, body: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let json = answer.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(json).unwrap()
}
