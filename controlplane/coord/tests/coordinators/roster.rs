//! The roster of masters on both coordinators: announcements are listed, a master that stops
//! announcing drops out after its TTL, a re-announcement brings it back.

use std::time::Duration;

use mc_coord::elect::{Member, Roster};

use crate::support::{PATIENCE, Server};
use crate::{eventually, on_both};

fn member(rpc: &str, admin_port: u16) -> Member {
    Member {
        rpc_address: rpc.to_string(),
        admin_port,
    }
}

async fn roster_lists_live_masters<S: Server>() {
    let server = S::start();
    let ttl = Duration::from_secs(1);
    let roster = Roster::connect(&server.locator(), "roster-test", Duration::from_secs(2))
        .await
        .unwrap();
    let other_cluster = Roster::connect(&server.locator(), "other", Duration::from_secs(2))
        .await
        .unwrap();
    let (a, b) = (
        member("10.0.0.1:50051", 9003),
        member("10.0.0.2:50051", 9004),
    );
    roster.announce(&b, ttl).await.unwrap();
    roster.announce(&a, ttl).await.unwrap();
    assert_eq!(roster.members().await.unwrap(), vec![a.clone(), b.clone()]);
    assert!(other_cluster.members().await.unwrap().is_empty());

    // Only `a` keeps announcing: `b` lapses.
    eventually("b to lapse", PATIENCE, || async {
        roster.announce(&a, ttl).await.unwrap();
        let now = roster.members().await.unwrap();
        (now == vec![a.clone()]).then_some(())
    })
    .await;
    // A restarted master announces again, here on another admin port.
    let b2 = member("10.0.0.2:50051", 9100);
    roster.announce(&b2, ttl).await.unwrap();
    assert_eq!(roster.members().await.unwrap(), vec![a, b2]);
}
on_both!(roster_lists_live_masters);

async fn masters_share_the_first_stored_write_secret<S: Server>() {
    use mc_coord::elect::secret::shared_secret;
    let server = S::start();
    let t = Duration::from_secs(5);
    let first = shared_secret(
        &server.locator(),
        "secret-test",
        b"candidate-one-0123456789abcdef",
        t,
    )
    .await
    .unwrap();
    assert_eq!(first, b"candidate-one-0123456789abcdef");
    // A second master (another candidate) gets the stored one back; so does a restart.
    let second = shared_secret(
        &server.locator(),
        "secret-test",
        b"candidate-two-0123456789abcdef",
        t,
    )
    .await
    .unwrap();
    assert_eq!(second, first);
    // Another cluster keeps its own.
    let other = shared_secret(
        &server.locator(),
        "other-cluster",
        b"candidate-three-0123456789abc",
        t,
    )
    .await
    .unwrap();
    assert_eq!(other, b"candidate-three-0123456789abc");
}
on_both!(masters_share_the_first_stored_write_secret);
