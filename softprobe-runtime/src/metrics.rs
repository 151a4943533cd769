//! Process-wide counters behind `GET /metrics`, rendered by `prometheus-client` in the
//! OpenMetrics text format that Prometheus scrapes.
//!
//! The session store owns one [`Metrics`]; both the HTTP inject/extract handlers and the
//! in-process proxy (which calls the store directly) update it, so the numbers cover all
//! traffic whichever way it arrived.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of `softprobe_inject_duration_seconds`: fine-grained, for a decision
/// that takes microseconds.
const LATENCY_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// Upper bounds (seconds) of `softprobe_inject_latency_seconds`, the original runtime's
/// histogram, kept for dashboards built on it.
const ORIGINAL_LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
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
    /// The `result` label of `softprobe_inject_total`.
    fn label(self) -> &'static str {
        match self {
            InjectOutcome::Hit => "hit",
            InjectOutcome::Miss => "miss",
            InjectOutcome::StrictMiss => "strict_miss",
            InjectOutcome::Error => "error",
        }
    }

    /// The `result` label of the original's `softprobe_inject_requests_total`, which knows
    /// hit, miss and error: a rule's injected error is answered locally (a hit), a strict
    /// miss reaches the proxy as an error answer.
    fn original_label(self) -> &'static str {
        match self {
            InjectOutcome::Hit | InjectOutcome::Error => "hit",
            InjectOutcome::Miss => "miss",
            InjectOutcome::StrictMiss => "error",
        }
    }

    const ALL: [InjectOutcome; 4] = [
        InjectOutcome::Hit,
        InjectOutcome::Miss,
        InjectOutcome::StrictMiss,
        InjectOutcome::Error,
    ];
}

type Labels = [(&'static str, &'static str); 1];

/// The runtime's metrics in a `prometheus-client` registry: ours, and the original
/// Softprobe runtime's names and labels next to them. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    open_sessions: Gauge<i64, AtomicI64>,
    sessions_created: Counter,
    sessions_by_mode: Family<Labels, Counter>,
    inject: Family<Labels, Counter>,
    inject_original: Family<Labels, Counter>,
    /// The counters of `inject` and `inject_original` for each [`InjectOutcome`] (in the
    /// order of [`InjectOutcome::ALL`]), taken from the families once: a decision counts
    /// with one atomic add instead of a locked lookup by label.
    by_outcome: [(Counter, Counter); 4],
    latency: Histogram,
    latency_original: Histogram,
    extracted_spans: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            open_sessions: Gauge::default(),
            sessions_created: Counter::default(),
            sessions_by_mode: Family::default(),
            inject: Family::default(),
            inject_original: Family::default(),
            by_outcome: Default::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
            latency_original: Histogram::new(ORIGINAL_LATENCY_BUCKETS),
            extracted_spans: Counter::default(),
        };
        let mut registry = Registry::default();
        // One line a metric: its name, its help text, and the value it reads.
        macro_rules! register {
            ($($name:literal, $help:literal => $metric:expr;)*) => {
                $(registry.register($name, $help, $metric.clone());)*
            };
        }
        // Not `softprobe_sessions`: OpenMetrics names the original's counter family so.
        register! {
            "softprobe_sessions_open", "Sessions currently open" => m.open_sessions;
            "softprobe_sessions_created", "Sessions created since start" => m.sessions_created;
            "softprobe_sessions",
                "Sessions created since start, by mode (the original runtime's name)"
                => m.sessions_by_mode;
            "softprobe_inject", "Inject decisions by result (hit, miss, strict_miss, error)"
                => m.inject;
            "softprobe_inject_requests",
                "Inject requests by result (hit, miss, error; the original runtime's name)"
                => m.inject_original;
            "softprobe_inject_duration_seconds", "Time to decide an inject request" => m.latency;
            "softprobe_inject_latency_seconds",
                "Time to decide an inject request (the original runtime's buckets)"
                => m.latency_original;
            "softprobe_extracted_spans", "Spans received on /v1/traces" => m.extracted_spans;
            "softprobe_extract_spans", "Spans received on /v1/traces (the original runtime's name)"
                => m.extracted_spans;
        }
        // Every label value is present from the start, so a dashboard sees zeros, not gaps.
        let by_outcome = InjectOutcome::ALL.map(|outcome| {
            (
                m.inject
                    .get_or_create(&[("result", outcome.label())])
                    .clone(),
                m.inject_original
                    .get_or_create(&[("result", outcome.original_label())])
                    .clone(),
            )
        });
        for mode in ["capture", "replay", "generate"] {
            let _ = m.sessions_by_mode.get_or_create(&[("mode", mode)]);
        }
        Metrics {
            registry,
            by_outcome,
            ..m
        }
    }
}

impl Metrics {
    /// Counts one inject decision and how long deciding took (the configured `latencyMs` of
    /// a rule is not part of it: that delay is the caller's to apply).
    pub fn record_inject(&self, outcome: InjectOutcome, took: Duration) {
        let (ours, original) = &self.by_outcome[outcome as usize];
        ours.inc();
        original.inc();
        let secs = took.as_secs_f64();
        self.latency.observe(secs);
        self.latency_original.observe(secs);
    }

    /// Counts extracted spans (captured or not).
    pub fn record_extracted(&self, spans: u64) {
        self.extracted_spans.inc_by(spans);
    }

    /// Counts a created session of `mode` (`capture`, `replay`, `generate`).
    pub fn record_session_created(&self, mode: &str) {
        self.sessions_created.inc();
        let mode = match mode {
            "capture" => "capture",
            "replay" => "replay",
            _ => "generate",
        };
        self.sessions_by_mode.get_or_create(&[("mode", mode)]).inc();
    }

    /// How many inject calls ended with `outcome`.
    pub fn inject_count(&self, outcome: InjectOutcome) -> u64 {
        self.inject
            .get_or_create(&[("result", outcome.label())])
            .get()
    }

    /// Total extracted spans.
    pub fn extracted_spans(&self) -> u64 {
        self.extracted_spans.get()
    }

    /// The OpenMetrics text exposition (which Prometheus reads); `open_sessions` is the
    /// current gauge.
    pub fn render(&self, open_sessions: usize) -> String {
        self.open_sessions
            .set(i64::try_from(open_sessions).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
        m.record_session_created("capture");
        let text = m.render(2);
        assert!(text.contains("softprobe_sessions_open 2\n"), "{text}");
        assert!(
            text.contains("softprobe_sessions_total{mode=\"capture\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("softprobe_inject_requests_total{result=\"error\"} 1\n"));
        assert!(text.contains("softprobe_inject_latency_seconds_bucket{le=\"5.0\"} 3\n"));
        assert!(text.contains("softprobe_extract_spans_total 5\n"));
        assert!(text.contains("softprobe_inject_total{result=\"hit\"} 1\n"));
        assert!(text.contains("softprobe_inject_total{result=\"strict_miss\"} 1\n"));
        assert!(text.contains("softprobe_inject_total{result=\"error\"} 0\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_bucket{le=\"1.0\"} 2\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("softprobe_inject_duration_seconds_count 3\n"));
        assert!(text.contains("softprobe_extracted_spans_total 5\n"));
    }
}
