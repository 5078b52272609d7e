//! A one-shot stop signal between two tasks of one shard, that keeps a single waker however
//! often it is polled (the accept task polls it on every accepted connection; glommio's own
//! channels and reactor sources may keep one waker per poll).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Inner {
    fired: bool,
    waker: Option<Waker>,
}

/// Fires the [`Stopped`] made with it (once; dropping it fires too).
pub(super) struct Stop(Rc<RefCell<Inner>>);

/// Completes once its [`Stop`] fired.
pub(super) struct Stopped(Rc<RefCell<Inner>>);

/// A connected pair.
pub(super) fn stop_pair() -> (Stop, Stopped) {
    let inner = Rc::new(RefCell::new(Inner::default()));
    (Stop(inner.clone()), Stopped(inner))
}

impl Drop for Stop {
    fn drop(&mut self) {
        let mut inner = self.0.borrow_mut();
        inner.fired = true;
        if let Some(w) = inner.waker.take() {
            w.wake();
        }
    }
}

impl Future for Stopped {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.0.borrow_mut();
        if inner.fired {
            return Poll::Ready(());
        }
        match &mut inner.waker {
            Some(w) => w.clone_from(cx.waker()),
            None => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
