//! The election driver: campaign, renew, fail closed, resign.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{Acquire, ElectionConfig, Elector, Term};
use crate::follow::Failures;
use crate::{CoordError, MasterView};

/// What an election is doing, as published on [`Election::subscribe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not leading: campaigning, or waiting for the view key to free.
    Standby {
        /// The leader seen last, if any.
        leader: Option<MasterView>,
        /// The last term this elector lost, if any.
        last_loss: Option<Loss>,
    },
    /// Leading the term `view.version`. Serve writes only while
    /// [`Election::is_leader_now`] holds: the role can lag the deadline.
    Leader {
        /// The view this term published.
        view: MasterView,
    },
    /// Resigned or stopped; this election never campaigns again.
    Stopped,
}

/// A term that ended without a resign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loss {
    /// The view version of the lost term.
    pub version: u64,
    /// Why it ended.
    pub reason: LossReason,
    /// Until when leadership was certain (last renew start + TTL − margin).
    pub certain_until: std::time::Instant,
    /// The earliest the coordinator could drop the key (last renew start + TTL).
    pub lease_expires_earliest: std::time::Instant,
    /// When the driver stepped down.
    pub stepped_down_at: std::time::Instant,
}

/// Why a term ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// A renew failed (coordinator unreachable or erroring); the message says how.
    RenewFailed(String),
    /// The key was gone or belonged to another term when renewing.
    KeyLost,
    /// The deadline passed before a renew succeeded (a slow coordinator, a paused process).
    DeadlinePassed,
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RenewFailed(e) => write!(f, "renew failed: {e}"),
            Self::KeyLost => f.write_str("the view key is gone or owned by another term"),
            Self::DeadlinePassed => {
                f.write_str("no renew succeeded before the leadership deadline")
            }
        }
    }
}

/// The fail-closed deadline, readable without locks.
struct Leadership {
    base: std::time::Instant,
    /// Nanoseconds after `base` until which leadership is certain; 0 when not leading.
    deadline_ns: AtomicU64,
    /// The view version of the current (or last) term.
    version: AtomicU64,
}

impl Leadership {
    fn set(&self, version: u64, deadline: std::time::Instant) {
        self.version.store(version, Ordering::Relaxed);
        let ns = deadline.saturating_duration_since(self.base).as_nanos();
        // Release pairs with the Acquire loads: whoever sees the deadline sees the version.
        self.deadline_ns.store(
            u64::try_from(ns).unwrap_or(u64::MAX).max(1),
            Ordering::Release,
        );
    }

    fn clear(&self) {
        self.deadline_ns.store(0, Ordering::Release);
    }

    fn deadline(&self) -> Option<std::time::Instant> {
        match self.deadline_ns.load(Ordering::Acquire) {
            0 => None,
            ns => Some(self.base + Duration::from_nanos(ns)),
        }
    }

    fn term_now(&self) -> Option<u64> {
        let ns = self.deadline_ns.load(Ordering::Acquire);
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        (ns != 0 && now < ns).then(|| self.version.load(Ordering::Relaxed))
    }
}

/// A request from the handle to the driver task.
enum Command {
    Resign(oneshot::Sender<Result<(), CoordError>>),
}

/// A running election; see the [module docs](super) and the crate docs for the guarantees.
///
/// Dropping it stops the driver without resigning: the key stays until its lease expires, as
/// if the process had died. Call [`Election::resign`] to hand over at once.
pub struct Election {
    leadership: Arc<Leadership>,
    role: watch::Receiver<Role>,
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl Election {
    /// Starts campaigning for `leader_address` (this master's RPC address) on `elector`.
    /// Must be called inside a tokio runtime.
    pub fn start<E: Elector>(
        elector: E,
        leader_address: impl Into<String>,
    ) -> Result<Self, CoordError> {
        elector.config().validate()?;
        let leadership = Arc::new(Leadership {
            base: std::time::Instant::now(),
            deadline_ns: AtomicU64::new(0),
            version: AtomicU64::new(0),
        });
        let initial = Role::Standby {
            leader: None,
            last_loss: None,
        };
        let (role_tx, role) = watch::channel(initial);
        let (commands, command_rx) = mpsc::channel(4);
        let driver = Driver {
            elector,
            address: leader_address.into(),
            leadership: leadership.clone(),
            role: role_tx,
            commands: command_rx,
            highest_seen: 0,
            last_loss: None,
            stale: None,
            failures: Failures::default(),
        };
        let task = tokio::spawn(driver.run());
        Ok(Self {
            leadership,
            role,
            commands,
            task,
        })
    }

    /// Whether this process may act as leader at this instant: a term is held and its
    /// deadline has not passed. Two atomic loads and a clock read; call it before each write.
    pub fn is_leader_now(&self) -> bool {
        self.leadership.term_now().is_some()
    }

    /// The view version of the term held at this instant, if any (to stamp on messages).
    pub fn leader_term_now(&self) -> Option<u64> {
        self.leadership.term_now()
    }

    /// Until when leadership is certain, while leading (it may already have passed).
    pub fn certain_until(&self) -> Option<std::time::Instant> {
        self.leadership.deadline()
    }

    /// The role now.
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// A receiver of role changes.
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Stops claiming leadership at once, deletes the view key if this election holds it (so
    /// a standby wins without waiting for the TTL) and stops campaigning for good. For a
    /// SIGTERM hand-over. An error means the key could not be deleted; it then expires.
    pub async fn resign(&self) -> Result<(), CoordError> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Resign(tx)).await.is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a term ended.
enum Ended {
    Lost,
    Resigned,
}

/// The driver task's state.
struct Driver<E> {
    elector: E,
    address: String,
    leadership: Arc<Leadership>,
    role: watch::Sender<Role>,
    commands: mpsc::Receiver<Command>,
    /// The highest view version seen, the floor for the next one.
    highest_seen: u64,
    last_loss: Option<Loss>,
    /// A lost term whose key may still exist; deleted before campaigning again.
    stale: Option<Term>,
    failures: Failures,
}

impl<E: Elector> Driver<E> {
    fn config(&self) -> ElectionConfig {
        self.elector.config().clone()
    }

    async fn run(mut self) {
        while let Some((term, acquired_at)) = self.campaign().await {
            if let Ended::Resigned = self.lead(term, acquired_at).await {
                return;
            }
        }
    }

    fn standby(&mut self, leader: Option<MasterView>) {
        if let Some(v) = &leader {
            self.highest_seen = self.highest_seen.max(v.version);
        }
        let role = Role::Standby {
            leader,
            last_loss: self.last_loss.clone(),
        };
        self.role.send_if_modified(|r| {
            let changed = *r != role;
            *r = role;
            changed
        });
    }

    /// Campaigns until a term is won (returned with the instant the attempt started) or a
    /// resign arrives (None).
    async fn campaign(&mut self) -> Option<(Term, Instant)> {
        let config = self.config();
        loop {
            self.release_stale().await;
            let started = Instant::now();
            let attempt = tokio::time::timeout(
                config.op_timeout,
                self.elector.try_acquire(&self.address, self.highest_seen),
            );
            let result = tokio::select! {
                r = attempt => flatten(r, "acquire", config.op_timeout),
                cmd = self.commands.recv() => return self.stop(cmd).await,
            };
            let pause = match result {
                Ok(Acquire::Won(term)) => {
                    self.failures.recovered("leader election");
                    return Some((term, started));
                }
                Ok(Acquire::Held(view)) => {
                    self.failures.recovered("leader election");
                    self.standby(view.clone());
                    let wait = tokio::time::timeout(
                        config.ttl + config.op_timeout,
                        self.elector.wait_for_change(view.as_ref(), config.ttl),
                    );
                    tokio::select! {
                        r = wait => match flatten(r, "wait for change", config.ttl) {
                            Ok(_) => None,
                            Err(e) => { self.failures.failed("leader election", &e); Some(self.failures.backoff(config.max_backoff)) }
                        },
                        cmd = self.commands.recv() => return self.stop(cmd).await,
                    }
                }
                Err(e) => {
                    self.failures.failed("leader election", &e);
                    let last = self.role.borrow().leader();
                    self.standby(last);
                    Some(self.failures.backoff(config.max_backoff))
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    cmd = self.commands.recv() => return self.stop(cmd).await,
                }
            }
        }
    }

    /// Holds a term: renews every TTL/3 and steps down at the first failure or at the
    /// deadline, whichever comes first.
    async fn lead(&mut self, term: Term, acquired_at: Instant) -> Ended {
        let config = self.config();
        let hold = term.ttl.min(config.ttl);
        let margin = config.safety_margin();
        let version = term.view.version;
        let mut renew_start = acquired_at;
        let mut deadline = acquired_at + hold.saturating_sub(margin);
        self.highest_seen = self.highest_seen.max(version);
        self.leadership.set(version, deadline.into_std());
        tracing::info!(address = %self.address, version, "won the master election: leading");
        self.role.send_replace(Role::Leader {
            view: term.view.clone(),
        });
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(renew_start + config.renew_interval()) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return self.lose(term, LossReason::DeadlinePassed, deadline, renew_start + hold);
                }
                cmd = self.commands.recv() => return self.resign(term, cmd).await,
            }
            let start = Instant::now();
            let renewed = tokio::select! {
                r = self.elector.renew(&term) => r,
                _ = tokio::time::sleep_until(deadline) => {
                    return self.lose(term, LossReason::DeadlinePassed, deadline, renew_start + hold);
                }
                cmd = self.commands.recv() => return self.resign(term, cmd).await,
            };
            match renewed {
                Ok(Some(granted)) => {
                    let held = granted.min(config.ttl);
                    renew_start = start;
                    deadline = start + held.saturating_sub(margin);
                    self.leadership.set(version, deadline.into_std());
                }
                Ok(None) => {
                    return self.lose(term, LossReason::KeyLost, deadline, renew_start + hold);
                }
                Err(e) => {
                    let reason = LossReason::RenewFailed(e.to_string());
                    return self.lose(term, reason, deadline, renew_start + hold);
                }
            }
        }
    }

    /// Steps down from `term`: the deadline is cleared before anything is published.
    fn lose(
        &mut self,
        term: Term,
        reason: LossReason,
        certain_until: Instant,
        expires: Instant,
    ) -> Ended {
        self.leadership.clear();
        let version = term.view.version;
        tracing::warn!(version, %reason, "lost leadership of the master view: stepping down");
        self.last_loss = Some(Loss {
            version,
            reason: reason.clone(),
            certain_until: certain_until.into_std(),
            lease_expires_earliest: expires.into_std(),
            stepped_down_at: std::time::Instant::now(),
        });
        if reason != LossReason::KeyLost {
            // The key may still be ours: delete it so a standby need not wait for the TTL.
            self.stale = Some(term);
        }
        self.standby(None);
        Ended::Lost
    }

    /// Deletes a lost term's key if it is still ours; kept for a later try when the
    /// coordinator does not answer.
    async fn release_stale(&mut self) {
        let Some(term) = self.stale.take() else {
            return;
        };
        let timeout = self.elector.config().op_timeout;
        match tokio::time::timeout(timeout, self.elector.release(&term)).await {
            Ok(Ok(deleted)) => {
                tracing::info!(
                    version = term.view.version,
                    deleted,
                    "released the lost term's view key"
                );
            }
            Ok(Err(_)) | Err(_) => self.stale = Some(term),
        }
    }

    async fn resign(&mut self, term: Term, cmd: Option<Command>) -> Ended {
        self.leadership.clear();
        let timeout = self.elector.config().op_timeout;
        let result = flatten(
            tokio::time::timeout(timeout, self.elector.release(&term)).await,
            "release",
            timeout,
        );
        match &result {
            Ok(_) => tracing::info!(version = term.view.version, "resigned the master view"),
            Err(e) => {
                tracing::warn!(version = term.view.version, error = %e, "resigned; the view key could not be deleted and will expire")
            }
        }
        self.role.send_replace(Role::Stopped);
        if let Some(Command::Resign(reply)) = cmd {
            let _ = reply.send(result.map(|_| ()));
        }
        Ended::Resigned
    }

    /// Stops while standing by.
    async fn stop(&mut self, cmd: Option<Command>) -> Option<(Term, Instant)> {
        self.release_stale().await;
        self.role.send_replace(Role::Stopped);
        if let Some(Command::Resign(reply)) = cmd {
            let _ = reply.send(Ok(()));
        }
        None
    }
}

impl Role {
    /// The leader this role knows of (itself when leading).
    pub fn leader(&self) -> Option<MasterView> {
        match self {
            Self::Standby { leader, .. } => leader.clone(),
            Self::Leader { view } => Some(view.clone()),
            Self::Stopped => None,
        }
    }
}

/// Folds a timed-out call into the crate's error.
fn flatten<T>(
    r: Result<Result<T, CoordError>, tokio::time::error::Elapsed>,
    op: &'static str,
    after: Duration,
) -> Result<T, CoordError> {
    r.unwrap_or(Err(CoordError::Timeout { op, after }))
}
