//! The timer hyper uses for the header read timeout: deadlines checked by one background
//! thread every [`TICK`], instead of tokio's timer wheel.
//!
//! hyper arms a sleep for every request head it reads; with tokio's timer each of them is
//! inserted into and removed from the runtime's wheel, and the runtime processes the wheel
//! whenever it parks: about a tenth of a proxy's throughput under keep-alive load. A
//! header read timeout of seconds does not need milliseconds of precision, so a sleep here
//! is a deadline checked when it is polled; one still pending registers its waker in a
//! shared table, and the ticker thread wakes the expired ones. The ticker runs only while
//! some sleep is waiting.
//!
//! What it buys: +11 % throughput with a session header and +32 % without against
//! hyper-util's `TokioTimer` with `tokio::time::timeout` for the upstream timeout, in the
//! same wrk rounds (BENCHMARKS.md, "The listener's mechanisms"; a loaded machine, see the
//! table in the `listener` module doc).
//!
//! The invariant it relies on: no deadline needs more precision than [`TICK`] (the header
//! read timeout and the upstream timeout are seconds); a sleep that is dropped removes its
//! table entry, so the table holds only sleeps still waiting.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often expired sleeps are woken: the precision of the timeouts.
pub(crate) const TICK: Duration = Duration::from_millis(50);

/// A [`hyper::rt::Timer`] with [`TICK`] precision.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CoarseTimer;

struct Table {
    /// Pending sleeps: deadline and waker, by id.
    waiting: BTreeMap<u64, (Instant, Waker)>,
    /// Whether the ticker thread is running.
    ticking: bool,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    waiting: BTreeMap::new(),
    ticking: false,
});
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn table() -> MutexGuard<'static, Table> {
    // The table stays consistent even if a holder panicked.
    TABLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wakes expired sleeps every tick; stops when none is waiting.
fn tick() {
    loop {
        std::thread::sleep(TICK);
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut table = table();
            table.waiting.retain(|_, (deadline, waker)| {
                if *deadline <= now {
                    expired.push(waker.clone());
                    false
                } else {
                    true
                }
            });
            if table.waiting.is_empty() && expired.is_empty() {
                table.ticking = false;
                return;
            }
        }
        for waker in expired {
            waker.wake();
        }
    }
}

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(CoarseSleep { deadline, id: None })
    }
}

/// One deadline.
struct CoarseSleep {
    deadline: Instant,
    /// Its entry in the table once it has waited.
    id: Option<u64>,
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let id = *self
            .id
            .get_or_insert_with(|| NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let mut table = table();
        match table.waiting.get_mut(&id) {
            Some((_, waker)) if waker.will_wake(cx.waker()) => {}
            Some((_, waker)) => *waker = cx.waker().clone(),
            None => {
                table
                    .waiting
                    .insert(id, (self.deadline, cx.waker().clone()));
            }
        }
        if !table.ticking {
            table.ticking = true;
            let started = std::thread::Builder::new()
                .name("softprobe-timer".into())
                .spawn(tick);
            if started.is_err() {
                // No thread, no timeouts: keep serving rather than failing requests.
                table.ticking = false;
            }
        }
        Poll::Pending
    }
}

impl hyper::rt::Sleep for CoarseSleep {}

/// `fut`, or `None` once `limit` has passed (within a [`TICK`]): the per-request timeouts
/// of the proxies, which need no finer precision either.
pub(crate) async fn timeout<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    let sleep = CoarseSleep {
        deadline: Instant::now() + limit,
        id: None,
    };
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = sleep => None,
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            table().waiting.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    #[tokio::test]
    async fn timeout_passes_a_quick_answer_and_cuts_a_slow_one() {
        let quick = timeout(Duration::from_millis(500), async { 7 }).await;
        assert_eq!(quick, Some(7));
        let started = Instant::now();
        let slow = timeout(
            Duration::from_millis(100),
            tokio::time::sleep(Duration::from_secs(5)),
        )
        .await;
        assert_eq!(slow, None);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_sleep_ends_after_its_deadline_within_a_few_ticks() {
        let started = Instant::now();
        CoarseTimer.sleep(Duration::from_millis(120)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(120), "{took:?}");
        assert!(took < Duration::from_millis(120) + TICK * 6, "{took:?}");
    }

    #[tokio::test]
    async fn dropped_sleeps_leave_the_table() {
        let mut ids = Vec::new();
        for _ in 0..50 {
            let mut sleep = Box::pin(CoarseSleep {
                deadline: Instant::now() + Duration::from_secs(60),
                id: None,
            });
            // Polled once, so it waits in the table.
            let waker = Waker::noop();
            assert!(
                sleep
                    .as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_pending()
            );
            let id = sleep.id.expect("an id once waiting");
            assert!(table().waiting.contains_key(&id));
            ids.push(id);
        }
        let table = table();
        for id in ids {
            assert!(
                !table.waiting.contains_key(&id),
                "sleep {id} is still waiting"
            );
        }
    }
}
