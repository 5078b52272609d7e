//! Election scenarios.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mc_coord::MasterView;
use mc_coord::elect::{Acquire, Election, ElectionConfig, Elector, LossReason, Role, Term};

use crate::support::{PATIENCE, Server, elector};
use crate::{a_leader, eventually, on_both};

const CLUSTER: &str = "test_cluster";

on_both!(one_of_two_wins);
async fn one_of_two_wins<S: Server>() {
    let server = S::start();
    let ttl = Duration::from_secs(5);
    let a = Election::start(elector(&server, CLUSTER, ttl).await, "10.0.0.1:50051").unwrap();
    let b = Election::start(elector(&server, CLUSTER, ttl).await, "10.0.0.2:50051").unwrap();
    let (i, view) = a_leader(&[&a, &b]).await;
    let (leader, other) = if i == 0 { (&a, &b) } else { (&b, &a) };
    let want = Some(view.clone());
    eventually(
        "the other to stand by behind the leader",
        PATIENCE,
        || async {
            matches!(other.role(), Role::Standby { ref leader, .. } if *leader == want)
                .then_some(())
        },
    )
    .await;
    assert!(leader.is_leader_now());
    assert_eq!(leader.leader_term_now(), Some(view.version));
    assert!(!other.is_leader_now(), "two leaders");
    assert!(view.version > 0);
}

on_both!(resign_hands_over_at_once);
async fn resign_hands_over_at_once<S: Server>() {
    let server = S::start();
    // A long lease: a hand-over that waited for expiry would blow the bound below.
    let ttl = Duration::from_secs(30);
    let a = Election::start(elector(&server, CLUSTER, ttl).await, "10.0.0.1:50051").unwrap();
    let b = Election::start(elector(&server, CLUSTER, ttl).await, "10.0.0.2:50051").unwrap();
    let (i, first) = a_leader(&[&a, &b]).await;
    let (leader, other) = if i == 0 { (&a, &b) } else { (&b, &a) };
    eventually("the standby to see the leader", PATIENCE, || async {
        (other.role().leader() == Some(first.clone())).then_some(())
    })
    .await;
    let resigned_at = Instant::now();
    leader.resign().await.unwrap();
    assert!(!leader.is_leader_now());
    assert_eq!(leader.role(), Role::Stopped);
    let second = eventually(
        "the standby to take over",
        Duration::from_secs(20),
        || async {
            match other.role() {
                Role::Leader { view } => Some(view),
                _ => None,
            }
        },
    )
    .await;
    eprintln!(
        "resign -> new leader: {:?} (ttl {ttl:?})",
        resigned_at.elapsed()
    );
    assert!(second.version > first.version, "{second:?} after {first:?}");
    assert_ne!(second.leader, first.leader);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        leader.role(),
        Role::Stopped,
        "a resigned election campaigned again"
    );
}

on_both!(drop_without_resign_fails_over_after_the_ttl);
async fn drop_without_resign_fails_over_after_the_ttl<S: Server>() {
    let server = S::start();
    let ttl = Duration::from_secs(2);
    let a = Election::start(elector(&server, CLUSTER, ttl).await, "10.0.0.1:50051").unwrap();
    let b = Election::start(elector(&server, CLUSTER, ttl).await, "10.0.0.2:50051").unwrap();
    let (i, first) = a_leader(&[&a, &b]).await;
    let (leader, other) = if i == 0 { (a, b) } else { (b, a) };
    let certain_until = leader.certain_until().expect("a leader has a deadline");
    let dropped_at = Instant::now();
    drop(leader);
    let second = eventually("the standby to win after expiry", PATIENCE, || async {
        match other.role() {
            Role::Leader { view } => Some(view),
            _ => None,
        }
    })
    .await;
    let won_at = Instant::now();
    eprintln!(
        "drop without resign -> new leader: {:?} (ttl {ttl:?})",
        dropped_at.elapsed()
    );
    assert!(
        won_at > certain_until,
        "the new term began while the old leader was certain"
    );
    assert!(second.version > first.version);
}

on_both!(coordinator_killed_then_back);
async fn coordinator_killed_then_back<S: Server>() {
    let mut server = S::start();
    let ttl = Duration::from_secs(10);
    let a = Election::start(elector(&server, CLUSTER, ttl).await, "10.0.0.1:50051").unwrap();
    let b = Election::start(elector(&server, CLUSTER, ttl).await, "10.0.0.2:50051").unwrap();
    let (i, first) = a_leader(&[&a, &b]).await;
    let leader = if i == 0 { &a } else { &b };
    server.kill();
    let killed_at = Instant::now();
    let loss = eventually("the leader to step down", PATIENCE, || async {
        match leader.role() {
            Role::Standby {
                last_loss: Some(loss),
                ..
            } if loss.version == first.version => Some(loss),
            _ => None,
        }
    })
    .await;
    eprintln!(
        "coordinator killed -> stepped down after {:?}, {:?} before the lease could expire ({:?})",
        loss.stepped_down_at - killed_at,
        loss.lease_expires_earliest
            .saturating_duration_since(loss.stepped_down_at),
        loss.reason
    );
    assert!(!a.is_leader_now() && !b.is_leader_now());
    assert!(loss.certain_until < loss.lease_expires_earliest);
    assert!(
        loss.stepped_down_at < loss.lease_expires_earliest,
        "{loss:?}"
    );
    assert!(
        matches!(
            loss.reason,
            LossReason::RenewFailed(_) | LossReason::DeadlinePassed
        ),
        "{loss:?}"
    );
    tokio::task::block_in_place(|| server.restart());
    let restarted_at = Instant::now();
    let (_, again) = a_leader(&[&a, &b]).await;
    eprintln!(
        "coordinator back -> leader again after {:?}",
        restarted_at.elapsed()
    );
    assert!(again.version > first.version, "{again:?} after {first:?}");
    assert_eq!(
        usize::from(a.is_leader_now()) + usize::from(b.is_leader_now()),
        1
    );
}

on_both!(stale_owner_never_touches_a_newer_key);
async fn stale_owner_never_touches_a_newer_key<S: Server>() {
    let server = S::start();
    let ttl = Duration::from_secs(2);
    let old = elector(&server, CLUSTER, ttl).await;
    let new = elector(&server, CLUSTER, ttl).await;
    let Acquire::Won(stale) = old.try_acquire("10.0.0.1:50051", 0).await.unwrap() else {
        panic!("the first acquire on an empty coordinator must win");
    };
    let held = new.try_acquire("10.0.0.2:50051", 0).await.unwrap();
    assert_eq!(held, Acquire::Held(Some(stale.view.clone())));
    // The old owner never renews: its key expires and the new one wins.
    let fresh: Term = eventually("the key to expire and be won", PATIENCE, || async {
        match new
            .try_acquire("10.0.0.2:50051", stale.view.version)
            .await
            .unwrap()
        {
            Acquire::Won(term) => Some(term),
            Acquire::Held(_) => None,
        }
    })
    .await;
    assert!(fresh.view.version > stale.view.version);
    assert_eq!(
        old.renew(&stale).await.unwrap(),
        None,
        "a stale renew succeeded"
    );
    assert!(
        !old.release(&stale).await.unwrap(),
        "a stale release deleted something"
    );
    assert_eq!(new.read_view().await.unwrap(), Some(fresh.view.clone()));
    assert!(new.renew(&fresh).await.unwrap().is_some());
    assert!(new.release(&fresh).await.unwrap());
    assert_eq!(new.read_view().await.unwrap(), None);
}

/// An elector whose renews and acquires hang while `stalled` is set: a coordinator that stops
/// answering without closing connections.
struct Stalling<E> {
    inner: E,
    stalled: Arc<AtomicBool>,
}

impl<E: Elector> Elector for Stalling<E> {
    fn config(&self) -> &ElectionConfig {
        self.inner.config()
    }
    async fn try_acquire(&self, leader: &str, min: u64) -> Result<Acquire, mc_coord::CoordError> {
        if self.stalled.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        self.inner.try_acquire(leader, min).await
    }
    async fn renew(&self, term: &Term) -> Result<Option<Duration>, mc_coord::CoordError> {
        if self.stalled.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        self.inner.renew(term).await
    }
    async fn release(&self, term: &Term) -> Result<bool, mc_coord::CoordError> {
        self.inner.release(term).await
    }
    async fn read_view(&self) -> Result<Option<MasterView>, mc_coord::CoordError> {
        self.inner.read_view().await
    }
    async fn wait_for_change(
        &self,
        known: Option<&MasterView>,
        timeout: Duration,
    ) -> Result<Option<MasterView>, mc_coord::CoordError> {
        self.inner.wait_for_change(known, timeout).await
    }
}

on_both!(hung_renew_fails_closed_at_the_deadline);
async fn hung_renew_fails_closed_at_the_deadline<S: Server>() {
    let server = S::start();
    let ttl = Duration::from_secs(3);
    let stalled = Arc::new(AtomicBool::new(false));
    let inner = elector(&server, CLUSTER, ttl).await;
    let e = Election::start(
        Stalling {
            inner,
            stalled: stalled.clone(),
        },
        "10.0.0.1:50051",
    )
    .unwrap();
    let (_, first) = a_leader(&[&e]).await;
    stalled.store(true, Ordering::Relaxed);
    let loss = eventually("the deadline to end the term", PATIENCE, || async {
        match e.role() {
            Role::Standby {
                last_loss: Some(loss),
                ..
            } => Some(loss),
            _ => None,
        }
    })
    .await;
    assert_eq!(loss.version, first.version);
    assert_eq!(loss.reason, LossReason::DeadlinePassed);
    assert!(loss.stepped_down_at >= loss.certain_until);
    assert!(loss.certain_until < loss.lease_expires_earliest);
    assert!(!e.is_leader_now());
    // Stepping down released the key (release is not stalled): once the coordinator answers
    // again the same election wins a new term, with a higher version.
    stalled.store(false, Ordering::Relaxed);
    let (_, again) = a_leader(&[&e]).await;
    assert!(again.version > first.version);
}
