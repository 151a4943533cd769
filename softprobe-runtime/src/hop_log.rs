//! One INFO line per hop, for people watching the runtime while they capture or replay: the
//! session, the direction, the method, the URL (values of sensitive query parameters masked),
//! what was decided (replayed, mocked, passthrough, captured, strict miss), the status and how
//! long it took. Both proxies and the OTLP routes (`/v1/inject`, `/v1/traces`) log here, under
//! the `softprobe::hop` target, so `SOFTPROBE_LOG=softprobe::hop=info` shows only these lines.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use crate::case::Direction;
use crate::replay::{Decision, Origin};

/// The mask written in place of a sensitive query value.
pub const MASK: &str = "***";

/// Query parameter names whose values are credentials: exact names, then parts of names.
const SECRET_PARAMS: &[&str] = &["key", "sig", "code", "pwd", "pass"];
const SECRET_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "credential",
    "apikey",
    "api_key",
    "api-key",
    "auth",
    "session_key",
    "private",
];

fn is_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_PARAMS.contains(&lower.as_str()) || SECRET_PARTS.iter().any(|p| lower.contains(p))
}

/// `url` with the values of sensitive query parameters replaced by [`MASK`].
pub fn mask_url(url: &str) -> Cow<'_, str> {
    let Some((head, query)) = url.split_once('?') else {
        return Cow::Borrowed(url);
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let mut masked = false;
    let parts: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret(name) => {
                masked = true;
                Cow::Owned(format!("{name}={MASK}"))
            }
            _ => Cow::Borrowed(pair),
        })
        .collect();
    if !masked {
        return Cow::Borrowed(url);
    }
    let mut out = format!("{head}?{}", parts.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Cow::Owned(out)
}

/// What happened to a hop, as the log line says it.
pub fn decision_word(decision: &Decision) -> &'static str {
    match decision {
        Decision::Respond {
            origin: Origin::Case { .. },
            ..
        } => "replayed",
        Decision::Respond { .. } => "mocked",
        Decision::Passthrough { .. } => "passthrough",
        Decision::StrictMiss(_) => "strict miss",
    }
}

/// Whether hop lines are written (the `softprobe::hop` target at INFO is enabled): a
/// proxy builds a [`HopLine`] only then.
pub fn enabled() -> bool {
    tracing::enabled!(target: "softprobe::hop", tracing::Level::INFO)
}

/// A hop being handled: [`HopLine::finish`] writes its line.
#[derive(Debug)]
pub struct HopLine {
    session: Option<String>,
    direction: Direction,
    method: String,
    url: String,
    started: Instant,
}

impl HopLine {
    /// Starts timing a hop of `session` (if any) to `url`.
    pub fn start(
        session: Option<&str>,
        direction: Direction,
        method: &str,
        url: impl Into<String>,
    ) -> Self {
        HopLine {
            session: session.map(str::to_owned),
            direction,
            method: method.to_owned(),
            url: url.into(),
            started: Instant::now(),
        }
    }

    /// Writes the line: `decision` and the answer's `status`, with the time since
    /// [`HopLine::start`].
    pub fn finish(self, decision: &str, status: u16) {
        log(
            self.session.as_deref(),
            self.direction,
            &self.method,
            &self.url,
            decision,
            status,
            self.started.elapsed(),
        );
    }
}

/// Writes one hop line.
pub fn log(
    session: Option<&str>,
    direction: Direction,
    method: &str,
    url: &str,
    decision: &str,
    status: u16,
    took: Duration,
) {
    tracing::info!(
        target: "softprobe::hop",
        sessionId = session.unwrap_or("-"),
        direction = %direction,
        method,
        url = %mask_url(url),
        decision,
        status,
        durationMs = format_args!("{:.1}", took.as_secs_f64() * 1000.0),
        "hop"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_query_values_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_url("https://api.test/v1/x?access_token=abc&page=2&api_key=k&sig=s#top"),
            "https://api.test/v1/x?access_token=***&page=2&api_key=***&sig=***#top"
        );
        assert_eq!(
            mask_url("http://a/b?zip=94107&flag"),
            "http://a/b?zip=94107&flag"
        );
        assert_eq!(mask_url("http://a/b"), "http://a/b");
        assert_eq!(mask_url("/p?Password=x&token="), "/p?Password=***&token=");
    }
}
