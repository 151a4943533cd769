//! A graceful drain whose cost while serving is one relaxed load per poll of a connection.
//!
//! hyper-util's `GracefulShutdown` polls a watch channel beside every connection on every
//! wake-up, which takes a lock each time; under many keep-alive requests that was a tenth of
//! a proxy's throughput. Here a connection registers its task's waker once, on its first
//! poll, and afterwards only reads a flag; [`Drain::shutdown`] sets the flag, wakes every
//! registered connection (each then starts hyper's graceful shutdown) and waits until the
//! last one has ended.
//!
//! What it buys: +50 % throughput with a session header and +4 % without against
//! hyper-util's `GracefulShutdown` in the same wrk rounds (BENCHMARKS.md, "The listener's
//! mechanisms"; a loaded machine, see the table in the `listener` module doc).
//!
//! The invariant it relies on: a watched connection must be the whole future of its task
//! (as `Connections::serve` spawns it): the waker of the first poll then stays valid for the
//! task's life, so waking it on shutdown always reaches the connection.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

/// A connection that can be asked to finish its current request and close: hyper's, and the
/// ingress's own HTTP/1 connections (`super::OwnConnection`).
pub(crate) trait Graceful: Future {
    /// Asks the connection to close once its current request is answered.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<C: GracefulConnection> Graceful for C {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self);
    }
}

/// Tracks the open connections of one listener.
#[derive(Default, Clone)]
pub(crate) struct Drain {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// The task wakers of the open connections, by id.
    open: Mutex<HashMap<u64, Waker>>,
    /// Notified when the last connection ends.
    idle: Notify,
}

impl Inner {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, Waker>> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drain {
    /// Wraps `conn` so [`Drain::shutdown`] can end it gracefully.
    pub(crate) fn watch<C: Graceful>(&self, conn: C) -> Watched<C> {
        Watched {
            conn: Box::pin(conn),
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            inner: self.inner.clone(),
            registered: false,
            signalled: false,
        }
    }

    /// Asks every open connection to finish its current request and close, and returns when
    /// none is left.
    pub(crate) async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = self.inner.open().values().cloned().collect();
        for waker in wakers {
            waker.wake();
        }
        loop {
            let idle = self.inner.idle.notified();
            let mut idle = std::pin::pin!(idle);
            idle.as_mut().enable();
            if self.inner.open().is_empty() {
                return;
            }
            idle.await;
        }
    }
}

/// A connection watched by a [`Drain`].
pub(crate) struct Watched<C> {
    conn: Pin<Box<C>>,
    id: u64,
    inner: Arc<Inner>,
    registered: bool,
    signalled: bool,
}

impl<C: Graceful> Future for Watched<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        if !this.registered {
            this.inner.open().insert(this.id, cx.waker().clone());
            this.registered = true;
        }
        // Read after registering: a shutdown that started before the registration is seen
        // here, one that starts after it wakes this task.
        if !this.signalled && this.inner.stopping.load(Ordering::SeqCst) {
            this.conn.as_mut().graceful_shutdown();
            this.signalled = true;
        }
        this.conn.as_mut().poll(cx)
    }
}

impl<C> Drop for Watched<C> {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        let mut open = self.inner.open();
        open.remove(&self.id);
        if open.is_empty() {
            drop(open);
            self.inner.idle.notify_waiters();
        }
    }
}
