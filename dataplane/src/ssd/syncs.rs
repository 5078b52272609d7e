//! Group commit of record writes: one `fdatasync` of a record file covers every write to
//! it that finished before the sync began, so writes that finish while a sync is running
//! share the next one instead of each paying its own.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use glommio::io::DmaFile;
use glommio::sync::Semaphore;

/// Syncs of one record file, counted.
#[derive(Default)]
struct FileSyncs {
    /// Syncs begun.
    started: Cell<u64>,
    /// The latest begun sync that succeeded (its number in `started`).
    succeeded: Cell<u64>,
}

/// The syncs of a store's record files; one runs at a time.
pub(super) struct Syncs {
    files: RefCell<Vec<Rc<FileSyncs>>>,
    one_at_a_time: Semaphore,
}

impl Default for Syncs {
    fn default() -> Self {
        Syncs {
            files: RefCell::new(Vec::new()),
            one_at_a_time: Semaphore::new(1),
        }
    }
}

impl Syncs {
    fn of(&self, index: usize) -> Rc<FileSyncs> {
        let mut files = self.files.borrow_mut();
        if files.len() <= index {
            files.resize_with(index + 1, Rc::default);
        }
        files[index].clone()
    }

    /// Makes durable what was written to `file` (record file `index`) before this call:
    /// waits for a sync that begins after it, running one if no other write does.
    /// Returns whether the sync was another write's. A failed sync is never taken as
    /// covering anyone: the next waiter runs its own.
    pub(super) async fn covering(
        &self,
        index: usize,
        file: &DmaFile,
    ) -> Result<bool, glommio::GlommioError<()>> {
        let s = self.of(index);
        let wanted = s.started.get() + 1;
        let _turn = self.one_at_a_time.acquire_permit(1).await?;
        if s.succeeded.get() >= wanted {
            return Ok(true);
        }
        let mine = s.started.get() + 1;
        s.started.set(mine);
        file.fdatasync().await?;
        s.succeeded.set(mine);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::on_file;
    use super::*;

    #[test]
    fn a_write_finished_during_a_sync_waits_for_the_next_and_later_ones_share_it() {
        on_file("syncs", |file| async move {
            let (syncs, file) = (Rc::new(Syncs::default()), Rc::new(file));
            let tasks: Vec<_> = (0..3)
                .map(|_| {
                    let (syncs, file) = (syncs.clone(), file.clone());
                    glommio::spawn_local(async move { syncs.covering(0, &file).await.unwrap() })
                })
                .collect();
            let mut shared = Vec::new();
            for t in tasks {
                shared.push(t.await);
            }
            // The first runs a sync; the second finished its write while that one ran,
            // so it runs the next; the third is covered by the second's.
            assert_eq!(shared, [false, false, true]);
            assert!(
                !syncs.covering(0, &file).await.unwrap(),
                "nothing running: own sync"
            );
            assert!(
                !syncs.covering(1, &file).await.unwrap(),
                "another file: own sync"
            );
        });
    }
}
