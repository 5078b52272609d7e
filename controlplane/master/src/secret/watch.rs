//! Reading `--cluster_secret_file`: once at start ([`read_secret_file`]), then every
//! [`POLL_INTERVAL`] and on SIGHUP while the master runs ([`spawn`]).
//!
//! A changed file is taken once two reads a poll apart agree (or at once on SIGHUP), so a
//! file caught half written is not mistaken for a new secret. A valid new secret (at least
//! [`MIN_SECRET_BYTES`] after trimming, the rule at start) is staged for rotation
//! ([`WriteSecrets::stage`]); an unreadable or too short one leaves the secret as it is, is
//! logged once per distinct problem (again on each SIGHUP) with the path and the fix, and
//! counted in `master_write_secret_reload_errors_total`.

use std::sync::Arc;
use std::time::Duration;

use mc_schema::token::{MIN_SECRET_BYTES, fingerprint};
use tracing::{info, warn};

use super::{Staged, WriteSecrets};
use crate::clock::Clock;
use crate::ha::Plane;

/// Time between two reads of the secret file (a read of a few bytes: cheap).
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why a secret file cannot be used, and what fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretProblem {
    /// What is wrong with it.
    pub reason: String,
    /// What the operator should do.
    pub fix: String,
}

/// The secret in `path`: its contents with surrounding whitespace trimmed, at least
/// [`MIN_SECRET_BYTES`] of them.
pub fn read_secret_file(path: &str) -> Result<Arc<[u8]>, SecretProblem> {
    let raw = std::fs::read(path).map_err(|e| SecretProblem {
        reason: format!("cannot be read: {e}"),
        fix: "make it a file the master's user can read".into(),
    })?;
    let secret = raw.trim_ascii();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(SecretProblem {
            reason: format!(
                "holds {} bytes; a secret needs at least {MIN_SECRET_BYTES}",
                secret.len()
            ),
            fix: format!("write a longer one (e.g. `head -c 32 /dev/urandom | base64 > {path}`)"),
        });
    }
    Ok(secret.into())
}

/// What one read of the file found.
type Seen = Result<Arc<[u8]>, SecretProblem>;

/// What [`Reloader::poll`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Nothing new, or a change not yet seen twice.
    Unchanged,
    /// A new secret is pending.
    Staged,
    /// A new secret waits for the rotation under way (or the hold time after the last).
    Deferred,
    /// The file cannot be used; the secret stays as it was.
    Failed(SecretProblem),
}

/// Turns reads of the secret file into staged secrets and counted, logged problems.
pub struct Reloader {
    path: String,
    /// The last read.
    seen: Option<Seen>,
    /// The problem last logged (logged again only when it changes, or on SIGHUP).
    reported: Option<SecretProblem>,
    /// Fingerprint of a new secret last logged as deferred.
    deferred: Option<String>,
}

impl Reloader {
    /// A reloader of `path`, whose contents at start are the current secret.
    pub fn new(path: &str) -> Reloader {
        Reloader {
            path: path.to_string(),
            seen: None,
            reported: None,
            deferred: None,
        }
    }

    /// Reads the file once and acts on what it holds when it is settled: read the same on
    /// the previous poll, or `asked` (SIGHUP: the operator says the file is complete).
    pub fn poll(&mut self, secrets: &WriteSecrets, now_ms: u64, asked: bool) -> Reload {
        let seen = read_secret_file(&self.path);
        let settled = asked || self.seen.as_ref() == Some(&seen);
        self.seen = Some(seen.clone());
        if !settled {
            return Reload::Unchanged;
        }
        let secret = match seen {
            Ok(s) => s,
            Err(problem) => {
                if asked || self.reported.as_ref() != Some(&problem) {
                    warn!(
                        "cannot rotate the write secret: --cluster_secret_file={} {}; still \
                         signing with the current secret (fingerprint {}). Fix: {}",
                        self.path,
                        problem.reason,
                        secrets.fingerprint(),
                        problem.fix
                    );
                    secrets.note_reload_error();
                    self.reported = Some(problem.clone());
                    return Reload::Failed(problem);
                }
                return Reload::Unchanged;
            }
        };
        if self.reported.take().is_some() {
            info!("--cluster_secret_file={} is usable again", self.path);
        }
        match secrets.stage(&secret, now_ms) {
            Staged::Same => Reload::Unchanged,
            Staged::Pending => {
                self.deferred = None;
                info!(
                    "new write secret in --cluster_secret_file={} (fingerprint {}): handing it \
                     to the nodes; signing switches to it once they all hold it",
                    self.path,
                    fingerprint(&secret)
                );
                Reload::Staged
            }
            Staged::Deferred => {
                let fp = fingerprint(&secret);
                if self.deferred.as_ref() != Some(&fp) {
                    info!(
                        "new write secret in --cluster_secret_file={} (fingerprint {fp}) waits \
                         for the rotation before it to finish and settle",
                        self.path
                    );
                    self.deferred = Some(fp);
                }
                Reload::Deferred
            }
        }
    }
}

/// Watches `path` for a new secret: every [`POLL_INTERVAL`] and on SIGHUP it reads the
/// file, and moves a pending rotation on (the `client_ttl` bound, and a standby, which has
/// no nodes, switches at once).
pub fn spawn(path: String, secrets: Arc<WriteSecrets>, plane: Arc<Plane>, clock: Arc<dyn Clock>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(
                    "cannot watch SIGHUP ({e}); --cluster_secret_file is still re-read every {POLL_INTERVAL:?}"
                );
                None
            }
        };
        let mut reloader = Reloader::new(&path);
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let asked = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    info!("SIGHUP: re-reading --cluster_secret_file={path}");
                    true
                }
            };
            let now = clock.now_ms();
            // A read of a few bytes every couple of seconds: not worth a blocking thread.
            reloader.poll(&secrets, now, asked);
            // Right after staging too: a master without nodes switches at once.
            match plane.service() {
                Some(svc) => svc.advance_write_secret(now),
                // A standby has no nodes to wait for.
                None => secrets.try_switch(now, 0, Vec::new),
            };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &[u8]) -> String {
        let p = std::env::temp_dir().join(format!("mc-secret-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn the_start_rule_trims_and_wants_sixteen_bytes() {
        let ok = file("ok", b"  sixteen bytes!!!\n");
        assert_eq!(&*read_secret_file(&ok).unwrap(), b"sixteen bytes!!!");
        let short = file("short", b"short\n");
        let e = read_secret_file(&short).unwrap_err();
        assert!(
            e.reason.contains("holds 5 bytes") && e.fix.contains(&short),
            "{e:?}"
        );
        let e = read_secret_file("/nonexistent/secret").unwrap_err();
        assert!(e.reason.contains("cannot be read"), "{e:?}");
        let _ = std::fs::remove_file(ok);
        let _ = std::fs::remove_file(short);
    }

    #[test]
    fn a_change_is_taken_once_seen_twice_and_a_bad_file_is_counted_once_per_problem() {
        let a = b"the secret at start, 32 bytes...";
        let path = file("rotate", a);
        let secrets = WriteSecrets::new(a.as_slice().into(), 0);
        let mut r = Reloader::new(&path);
        assert_eq!(r.poll(&secrets, 0, false), Reload::Unchanged);
        assert_eq!(
            r.poll(&secrets, 1, false),
            Reload::Unchanged,
            "same as at start"
        );

        std::fs::write(&path, b"the next secret, 32 bytes.......\n").unwrap();
        assert_eq!(r.poll(&secrets, 2, false), Reload::Unchanged, "seen once");
        assert_eq!(r.poll(&secrets, 3, false), Reload::Staged);
        assert_eq!(
            secrets.pending_fingerprint(),
            Some(fingerprint(b"the next secret, 32 bytes......."))
        );
        assert_eq!(
            r.poll(&secrets, 4, false),
            Reload::Unchanged,
            "already pending"
        );

        std::fs::write(&path, b"short").unwrap();
        assert_eq!(r.poll(&secrets, 5, false), Reload::Unchanged);
        assert!(matches!(r.poll(&secrets, 6, false), Reload::Failed(_)));
        assert_eq!(r.poll(&secrets, 7, false), Reload::Unchanged, "logged once");
        assert_eq!(secrets.reload_errors_total(), 1);
        assert!(
            matches!(r.poll(&secrets, 8, true), Reload::Failed(_)),
            "SIGHUP"
        );
        assert_eq!(secrets.reload_errors_total(), 2);
        std::fs::write(&path, b"x").unwrap();
        assert_eq!(r.poll(&secrets, 9, false), Reload::Unchanged);
        assert!(
            matches!(r.poll(&secrets, 10, false), Reload::Failed(_)),
            "another problem"
        );
        assert_eq!(secrets.reload_errors_total(), 3);
        assert!(secrets.rotating(), "the pending secret is kept");

        // A third secret waits for the rotation under way; SIGHUP takes a file at once.
        std::fs::write(&path, b"a third secret, 32 bytes........").unwrap();
        assert_eq!(r.poll(&secrets, 11, true), Reload::Deferred);
        assert!(secrets.try_switch(12, 0, Vec::new));
        assert_eq!(r.poll(&secrets, 13, false), Reload::Staged);
        let _ = std::fs::remove_file(path);
    }
}
