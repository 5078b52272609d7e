//! A small thread that keeps beating, so that a busy (or blocked) worker never looks dead.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::end::RingEnd;

/// Beats until dropped; dropping stops and joins the thread.
pub struct Heartbeat {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Bumps the heartbeat of every end in `ends` every `interval`
    /// (`DEFAULT_HEARTBEAT_INTERVAL` is 50 ms).
    pub fn spawn(ends: Vec<Arc<RingEnd>>, interval: Duration) -> io::Result<Heartbeat> {
        Heartbeat::spawn_fn(
            move || {
                for e in &ends {
                    e.beat();
                }
            },
            interval,
        )
    }

    /// Calls `beat` every `interval` (for ends owned elsewhere).
    pub fn spawn_fn(
        mut beat: impl FnMut() + Send + 'static,
        interval: Duration,
    ) -> io::Result<Heartbeat> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ring-heartbeat".into())
            .spawn(move || {
                loop {
                    beat();
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })?;
        Ok(Heartbeat {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
