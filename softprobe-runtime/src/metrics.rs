//! Process-wide counters behind `GET /metrics`, rendered in the Prometheus text format.
//!
//! The session store owns one [`Metrics`]; both the HTTP inject/extract handlers and the
//! in-process proxy (which calls the store directly) update it, so the numbers cover all
//! traffic whichever way it arrived.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the inject latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// How one inject call ended, the `result` label of `softprobe_inject_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectOutcome {
    /// Answered locally (mock, replay).
    Hit,
    /// Nothing decided: the proxy forwards upstream.
    Miss,
    /// Answered with the strict-miss 599.
    StrictMiss,
    /// Answered with an injected error (an `error` rule).
    Error,
}

impl InjectOutcome {
    fn index(self) -> usize {
        match self {
            InjectOutcome::Hit => 0,
            InjectOutcome::Miss => 1,
            InjectOutcome::StrictMiss => 2,
            InjectOutcome::Error => 3,
        }
    }

    const ALL: [(InjectOutcome, &'static str); 4] = [
        (InjectOutcome::Hit, "hit"),
        (InjectOutcome::Miss, "miss"),
        (InjectOutcome::StrictMiss, "strict_miss"),
        (InjectOutcome::Error, "error"),
    ];
}

/// Lock-free counters; cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    inject: [AtomicU64; 4],
    extracted_spans: AtomicU64,
    sessions_created: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

impl Metrics {
    /// Counts one inject decision and how long deciding took (the configured `latencyMs` of
    /// a rule is not part of it: that delay is the caller's to apply).
    pub fn record_inject(&self, outcome: InjectOutcome, took: Duration) {
        self.inject[outcome.index()].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts extracted spans (captured or not).
    pub fn record_extracted(&self, spans: u64) {
        self.extracted_spans.fetch_add(spans, Ordering::Relaxed);
    }

    /// Counts a created session.
    pub fn record_session_created(&self) {
        self.sessions_created.fetch_add(1, Ordering::Relaxed);
    }

    /// How many inject calls ended with `outcome`.
    pub fn inject_count(&self, outcome: InjectOutcome) -> u64 {
        self.inject[outcome.index()].load(Ordering::Relaxed)
    }

    /// Total extracted spans.
    pub fn extracted_spans(&self) -> u64 {
        self.extracted_spans.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4); `open_sessions` is the current gauge.
    pub fn render(&self, open_sessions: usize) -> String {
        let mut out = String::with_capacity(2048);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP softprobe_sessions Sessions currently open.\n\
             # TYPE softprobe_sessions gauge\n\
             softprobe_sessions {open_sessions}"
        );
        let _ = writeln!(
            out,
            "# HELP softprobe_sessions_created_total Sessions created since start.\n\
             # TYPE softprobe_sessions_created_total counter\n\
             softprobe_sessions_created_total {}",
            load(&self.sessions_created)
        );
        let _ = writeln!(
            out,
            "# HELP softprobe_inject_total Inject decisions by result.\n\
             # TYPE softprobe_inject_total counter"
        );
        for (outcome, label) in InjectOutcome::ALL {
            let _ = writeln!(
                out,
                "softprobe_inject_total{{result=\"{label}\"}} {}",
                load(&self.inject[outcome.index()])
            );
        }
        let _ = writeln!(
            out,
            "# HELP softprobe_inject_duration_seconds Time to decide an inject request.\n\
             # TYPE softprobe_inject_duration_seconds histogram"
        );
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "softprobe_inject_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(bucket)
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "softprobe_inject_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             softprobe_inject_duration_seconds_sum {}\n\
             softprobe_inject_duration_seconds_count {count}",
            load(&self.latency_sum_nanos) as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "# HELP softprobe_extracted_spans_total Spans received on /v1/traces.\n\
             # TYPE softprobe_extracted_spans_total counter\n\
             softprobe_extracted_spans_total {}",
            load(&self.extracted_spans)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.record_inject(InjectOutcome::Hit, Duration::from_micros(50));
        m.record_inject(InjectOutcome::Miss, Duration::from_millis(3));
        m.record_inject(InjectOutcome::StrictMiss, Duration::from_secs(2));
        m.record_extracted(5);
        let text = m.render(2);
        assert!(text.contains("softprobe_sessions 2\n"), "{text}");
        assert!(text.contains("softprobe_inject_total{result=\"hit\"} 1\n"));
        assert!(text.contains("softprobe_inject_total{result=\"strict_miss\"} 1\n"));
        assert!(text.contains("softprobe_inject_total{result=\"error\"} 0\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_count 3\n"));
        assert!(text.contains("softprobe_extracted_spans_total 5\n"));
    }
}
