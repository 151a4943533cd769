//! Whether a test really ran the scenario its case recorded, and whether everything it asked
//! for took effect: recorded inbound requests it never sent, recorded outbound calls that never
//! reached the egress proxy, hook closures that never ran or came too late. Each check returns
//! its findings as data ([`Finding`]) with the text a person reads; the run adds them to the
//! verdict.

use std::fmt;
use std::sync::Mutex;

use softprobe_runtime::case::{Direction, Exchange};

/// What kind of thing a [`Finding`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A recorded inbound request the test never sent.
    Unsent,
    /// Recorded outbound calls that never reached the egress proxy.
    Unreached,
    /// A hook closure that could not be registered, came too late or never ran.
    Hook,
    /// A call of the service that reached the egress proxy without a session it could be
    /// attributed to.
    Unattributed,
}

/// One thing the test said it did but did not, or asked for but did not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) kind: Kind,
    pub(crate) text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn target(e: &Exchange) -> String {
    match &e.query {
        Some(q) if !q.is_empty() => format!("{}?{q}", e.path),
        _ => e.path.clone(),
    }
}

fn same_inbound(recorded: &Exchange, sent: &Exchange) -> bool {
    recorded.method.eq_ignore_ascii_case(&sent.method)
        && recorded.path == sent.path
        && recorded.query.as_deref().unwrap_or("") == sent.query.as_deref().unwrap_or("")
}

/// Where a hop sits in its case: `hop 2 of 5, trace …, span …`.
fn place(all: &[Exchange], index: usize) -> String {
    let e = &all[index];
    format!(
        "hop {} of {} in the case, trace {}, span {}",
        index + 1,
        all.len(),
        e.trace_id,
        e.span_id
    )
}

/// The recorded inbound requests the test never sent: each recorded request is paired, in
/// order, with a sent one of the same method, path and query; the ones left over are named
/// with where the case recorded them.
pub(crate) fn unsent_inbound(recorded: &[Exchange], observed: &[Exchange]) -> Vec<Finding> {
    let mut sent: Vec<&Exchange> = observed
        .iter()
        .filter(|e| e.direction == Direction::Inbound)
        .collect();
    let mut out = Vec::new();
    for (i, rec) in recorded.iter().enumerate() {
        if rec.direction != Direction::Inbound {
            continue;
        }
        if let Some(pos) = sent.iter().position(|s| same_inbound(rec, s)) {
            sent.remove(pos);
            continue;
        }
        out.push(Finding {
            kind: Kind::Unsent,
            text: format!(
                "the test never sent the recorded inbound request {} {} ({}); a test that \
                 deliberately sends only some of the recorded requests says so with `partial`",
                rec.method,
                target(rec),
                place(recorded, i)
            ),
        });
    }
    out
}

/// The recorded outbound calls no call of this run reached the egress proxy for (same method
/// and URL), as one finding listing them; `None` when each reached it.
pub(crate) fn unreached_outbound(recorded: &[Exchange], observed: &[Exchange]) -> Option<Finding> {
    let mut reached: Vec<&Exchange> = observed
        .iter()
        .filter(|e| e.direction == Direction::Outbound)
        .collect();
    let mut missing = Vec::new();
    for (i, rec) in recorded.iter().enumerate() {
        if rec.direction != Direction::Outbound {
            continue;
        }
        let found = reached.iter().position(|r| {
            r.method.eq_ignore_ascii_case(&rec.method)
                && r.host == rec.host
                && r.path == rec.path
                && r.query.as_deref().unwrap_or("") == rec.query.as_deref().unwrap_or("")
        });
        match found {
            Some(pos) => {
                reached.remove(pos);
            }
            None => missing.push(format!(
                "\n    {} {} ({})",
                rec.method,
                rec.url(),
                place(recorded, i)
            )),
        }
    }
    if missing.is_empty() {
        return None;
    }
    let none_at_all = !observed.iter().any(|e| e.direction == Direction::Outbound);
    Some(Finding {
        kind: Kind::Unreached,
        text: format!(
            "{} of the outbound calls the case recorded never reached softprobe's egress \
             proxy in this run{}:{}\n  If the service makes them, it does not send them through \
             the session: give it sp.http_client() (or a client built from \
             sp.http_client_builder()), hold sp.proxy_env() when it reads HTTP_PROXY / \
             HTTPS_PROXY, or start it with sp.command(...) in a process of its own.",
            missing.len(),
            if none_at_all {
                " (no outbound call reached it at all)"
            } else {
                ""
            },
            missing.concat()
        ),
    })
}

/// The line a capture summary ends with when the test recorded no outbound call.
pub(crate) fn no_outbound_note(observed: &[Exchange]) -> Option<String> {
    if observed.iter().any(|e| e.direction == Direction::Outbound) {
        return None;
    }
    Some(
        "softprobe: note: no outbound call of the service reached the egress proxy, so the case \
         records none; if the service does call other services, it does not send them through \
         the session (use sp.http_client(), hold sp.proxy_env() for a client built from \
         HTTP_PROXY / HTTPS_PROXY, or sp.command(...))"
            .to_owned(),
    )
}

/// Problems with the session's hook closures, collected while the test runs and reported
/// with its verdict. A poisoned list still gives up its problems: none is ever lost.
#[derive(Debug, Default)]
pub(crate) struct HookProblems(Mutex<Vec<String>>);

impl HookProblems {
    pub(crate) fn push(&self, text: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(text);
    }

    pub(crate) fn take(&self) -> Vec<Finding> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .map(|text| Finding {
            kind: Kind::Hook,
            text,
        })
        .collect()
    }
}

/// What a finished test adds to its verdict: the harness's problems (calls refused for lack
/// of a session, closures that could not run), then, in replay, the recorded inbound requests
/// it never sent (unless `partial`) and, when the replay fails anyway, the recorded outbound
/// calls that never reached the egress proxy. `failing` says whether other checks failed.
pub(crate) fn findings(
    session: &crate::Session,
    recorded: Option<&[Exchange]>,
    observed: &crate::embedded::Observed,
    partial: bool,
    failing: bool,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = observed
        .problems
        .iter()
        .map(|text| Finding {
            kind: if text.starts_with("on_mock_response") {
                Kind::Hook
            } else {
                Kind::Unattributed
            },
            text: text.clone(),
        })
        .collect();
    if let Some(recorded) = recorded {
        session.idle_hooks();
        out.extend(session.inner.hook_problems.take());
        if !partial {
            out.extend(unsent_inbound(recorded, &observed.exchanges));
        }
        // Unsent requests explain their own missing calls; anything else that failed may
        // come from calls that bypassed the proxy.
        if failing || out.iter().any(|f| f.kind != Kind::Unsent) {
            out.extend(unreached_outbound(recorded, &observed.exchanges));
        }
    } else {
        out.extend(session.inner.hook_problems.take());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use softprobe_runtime::case::{SpanId, TraceId};

    fn hop(direction: Direction, method: &str, host: &str, path: &str) -> Exchange {
        Exchange {
            status: Some(200),
            trace_id: TraceId([7; 16]),
            span_id: SpanId([3; 8]),
            ..Exchange::new(direction, method, host, path)
        }
    }

    #[test]
    fn unsent_requests_are_named_with_their_place_and_repeats_count() {
        let recorded = vec![
            hop(Direction::Inbound, "POST", "", "/checkout"),
            hop(Direction::Outbound, "POST", "pay.test", "/charge"),
            hop(Direction::Inbound, "GET", "", "/orders"),
            hop(Direction::Inbound, "GET", "", "/orders"),
        ];
        let sent = vec![hop(Direction::Inbound, "GET", "", "/orders")];
        let found = unsent_inbound(&recorded, &sent);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0]
                .text
                .contains("POST /checkout (hop 1 of 4 in the case, trace "),
            "{}",
            found[0]
        );
        assert!(
            found[1].text.contains("GET /orders (hop 4 of 4"),
            "{}",
            found[1]
        );
        assert!(found[1].text.contains("`partial`"));
        assert!(unsent_inbound(&recorded, &recorded).is_empty());
    }

    #[test]
    fn unreached_calls_are_listed_and_say_when_none_arrived() {
        let recorded = vec![
            hop(Direction::Inbound, "POST", "", "/checkout"),
            hop(Direction::Outbound, "POST", "pay.test", "/charge"),
            hop(Direction::Outbound, "GET", "ship.test", "/quote"),
        ];
        let only_inbound = vec![hop(Direction::Inbound, "POST", "", "/checkout")];
        let found = unreached_outbound(&recorded, &only_inbound).unwrap();
        assert!(found.text.starts_with("2 of the outbound calls"), "{found}");
        assert!(found.text.contains("no outbound call reached it at all"));
        assert!(
            found
                .text
                .contains("POST http://pay.test/charge (hop 2 of 3")
        );
        assert!(found.text.contains("sp.proxy_env()"));
        let one = vec![hop(Direction::Outbound, "GET", "ship.test", "/quote")];
        let found = unreached_outbound(&recorded, &one).unwrap();
        assert!(found.text.starts_with("1 of the outbound"), "{found}");
        assert!(!found.text.contains("at all"));
        assert!(unreached_outbound(&recorded, &recorded).is_none());
        assert!(no_outbound_note(&only_inbound).is_some());
        assert!(no_outbound_note(&recorded).is_none());
    }

    #[test]
    fn hook_problems_survive_a_poisoned_list() {
        let problems = std::sync::Arc::new(HookProblems::default());
        let p = problems.clone();
        let _ = std::thread::spawn(move || {
            let _held = p.0.lock().unwrap();
            panic!("poison it");
        })
        .join();
        problems.push("late".into());
        let taken = problems.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].kind, Kind::Hook);
    }
}
