//! Work that lives and dies with one client connection, driven on that connection's own task.
//!
//! A handler that runs inside an HTTP/1 connection (hyper polls an HTTP/1 request's handler
//! inline, on the connection's task) can reach its connection's [`Beside`] with
//! [`Beside::current`]: a slot for one value of the handler's choosing (the ingress keeps its
//! upstream connection's sender there) and [`Beside::drive`], which runs a future on the
//! connection's task beside the connection itself (the ingress's upstream connection). Such a
//! future is polled whenever the connection's task wakes, is woken through the same task, and
//! is dropped when the client connection ends: no pool, no second task, no wake-up of another
//! task per request. HTTP/2 requests are handled on tasks of their own, where
//! [`Beside::current`] is `None`.
//!
//! What it buys is measured with the ingress that uses it (BENCHMARKS.md, "Rows 4 and 4b:
//! one upstream connection per client connection").
//!
//! The invariant it relies on: a connection wrapped by [`run`] is the whole future of its
//! task (as `Connections::serve_io` spawns it), so the futures handed to [`Beside::drive`]
//! are polled with that task's waker and every wake-up they arrange reaches them.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

type Driven = Pin<Box<dyn Future<Output = ()> + Send>>;

tokio::task_local! {
    static CURRENT: Beside;
}

/// The connection-local slot and driver of one client connection.
#[derive(Clone, Default)]
pub(crate) struct Beside {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// Futures handed over since the connection's task last looked.
    arrived: Vec<Driven>,
    /// The handler's value, see [`Beside::with`].
    value: Option<Box<dyn Any + Send>>,
}

impl Beside {
    /// The connection the current request arrived on, when it is handled on that
    /// connection's task (HTTP/1 under one of the runtime's listeners).
    pub(crate) fn current() -> Option<Beside> {
        CURRENT.try_with(Beside::clone).ok()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Only the connection's own task takes this lock; a panic leaves it consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `fut` on the connection's task until it completes or the connection ends.
    pub(crate) fn drive(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.inner().arrived.push(Box::pin(fut));
    }

    /// Calls `f` with the connection's value of type `T`, created with `T::default()` the
    /// first time (or when the slot held another type).
    pub(crate) fn with<T: Default + Send + 'static, R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut inner = self.inner();
        if !inner.value.as_ref().is_some_and(|v| v.is::<T>()) {
            inner.value = Some(Box::new(T::default()));
        }
        let value = inner
            .value
            .as_mut()
            .and_then(|v| v.downcast_mut::<T>())
            .expect("the slot was just given a T");
        f(value)
    }
}

/// `conn` with a [`Beside`] of its own: reachable from its handlers, and driving what they
/// hand to [`Beside::drive`] on the same task. Completes with `conn`.
pub(crate) fn run<C: Future + Send + 'static>(conn: C) -> impl Future<Output = C::Output> + Send {
    let beside = Beside::default();
    Joined {
        conn: Box::pin(CURRENT.scope(beside.clone(), conn)),
        beside,
        running: Vec::new(),
    }
}

struct Joined<C> {
    conn: Pin<Box<C>>,
    beside: Beside,
    running: Vec<Driven>,
}

impl<C> Joined<C> {
    /// Polls every driven future, dropping the finished ones.
    fn poll_running(&mut self, cx: &mut Context<'_>) {
        self.running
            .retain_mut(|f| f.as_mut().poll(cx).is_pending());
    }
}

impl<C: Future> Future for Joined<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        // First what was already running (an upstream answer reaches the handler in this
        // poll), then the connection, then again with what its handlers started or asked for.
        this.poll_running(cx);
        let out = this.conn.as_mut().poll(cx);
        if out.is_ready() {
            return out;
        }
        let arrived = std::mem::take(&mut this.beside.inner().arrived);
        this.running.extend(arrived);
        this.poll_running(cx);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_driven_future_runs_on_the_connection_task_and_ends_with_it() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let conn = async move {
            let beside = Beside::current().expect("inside run");
            beside.with(|n: &mut u32| *n += 41);
            let n = beside.with(|n: &mut u32| *n + 1);
            struct OnDrop(Option<tokio::sync::oneshot::Sender<()>>);
            impl Drop for OnDrop {
                fn drop(&mut self) {
                    let _ = self.0.take().map(|t| t.send(()));
                }
            }
            let guard = OnDrop(Some(dropped_tx));
            beside.drive(async move {
                let _guard = guard;
                let _ = tx.send(n);
                std::future::pending::<()>().await;
            });
            let _ = stop_rx.await;
            "done"
        };
        let task = tokio::spawn(run(conn));
        assert_eq!(rx.await.expect("the driven future ran"), 42);
        assert!(!task.is_finished(), "the connection is still open");
        let _ = stop_tx.send(());
        assert_eq!(task.await.expect("no panic"), "done");
        dropped_rx
            .await
            .expect("the driven future is dropped when its connection ends");
        assert!(Beside::current().is_none(), "no connection outside run");
    }
}
