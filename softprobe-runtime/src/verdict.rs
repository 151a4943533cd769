//! The verdict of a replay: everything that went wrong, typed, with one text for people.
//!
//! Every entry point judges a replay with this type and prints it with its one `Display`: the
//! test harness (`#[softprobe::case]`, `#[softprobe::cases]`, `softprobe::Run`), `softprobe
//! replay run` and the suite runner. What a session noticed itself (strict misses, request
//! drift, recordings never used) comes from [`SessionFindings`], read in process from a
//! [`crate::session::Session`] or over HTTP from the `state` body, which holds the same types.

use std::fmt;

use serde::Deserialize as _;
use serde_json::Value;

use crate::json::Difference;
use crate::policy::DriftAction;
use crate::replay::{MissReport, RequestDrift, UnusedRecording};

/// One thing that makes a replay fail. A new kind of check (a recorded inbound request the
/// test never sent, say) becomes a variant here, with its text in the `Display` below and its
/// [`Finding::kind`], so that every entry point reports it the same way.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Finding {
    /// An outbound call nothing answered (a strict miss).
    Miss(Box<MissReport>),
    /// An inbound request the test sent that the case never recorded.
    InboundUnknown {
        /// Method sent.
        method: String,
        /// Path and query sent.
        target: String,
        /// The inbound requests the case has, as `METHOD /path`.
        recorded: Vec<String>,
    },
    /// The service answered an inbound request differently from the recording.
    InboundDrift {
        /// Method sent.
        method: String,
        /// Path and query sent.
        target: String,
        /// What differs; `expected` is the recording.
        differences: Vec<Difference>,
    },
    /// The service sent an outbound request that differs from its recording.
    RequestDrift(RequestDrift),
    /// A recorded outbound call the run never made (under `strict`).
    Unused(UnusedRecording),
    /// A check the test registered failed (a body assertion, a hook), as its text.
    Check(String),
    /// The test did not run what its case recorded, or asked for something that did not take
    /// effect: a recorded inbound request it never sent, recorded outbound calls that never
    /// reached the egress proxy, a hook closure that came too late or never ran, a call that
    /// could not be attributed to the test. As the text the harness wrote.
    Scenario(String),
}

impl Finding {
    /// A short name of the kind: `strict-miss`, `inbound`, `request-drift`, `unused`,
    /// `check` or `scenario`.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Miss(_) => "strict-miss",
            Finding::InboundUnknown { .. } | Finding::InboundDrift { .. } => "inbound",
            Finding::RequestDrift(_) => "request-drift",
            Finding::Unused(_) => "unused",
            Finding::Check(_) => "check",
            Finding::Scenario(_) => "scenario",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Miss(report) => f.write_str(report.render_text().trim_end()),
            Finding::InboundUnknown {
                method,
                target,
                recorded,
            } => write!(
                f,
                "inbound {method} {target}: the case recorded no such request (it has: {})",
                recorded.join(", ")
            ),
            Finding::InboundDrift {
                method,
                target,
                differences,
            } => {
                write!(
                    f,
                    "inbound {method} {target}: the response differs from the recording"
                )?;
                for d in differences {
                    write!(
                        f,
                        "\n    {}:\n      - recorded: {}\n      + actual:   {}",
                        d.field,
                        shown(d.expected.as_ref()),
                        shown(d.actual.as_ref())
                    )?;
                }
                Ok(())
            }
            Finding::RequestDrift(drift) if f.alternate() => write!(f, "{drift:#}"),
            Finding::RequestDrift(drift) => write!(f, "{drift}"),
            Finding::Unused(unused) => write!(f, "strict: {unused}"),
            Finding::Check(text) | Finding::Scenario(text) => f.write_str(text.trim_end()),
        }
    }
}

/// Inbound values are shown as they were: text as is, JSON as JSON.
fn shown(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        other => Difference::show(other),
    }
}

/// What a replay session noticed by itself, as its `state` reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFindings {
    /// Strict misses, oldest first.
    pub misses: Vec<MissReport>,
    /// Replayed outbound requests that differ from their recording (volatile-only ones too).
    pub request_drift: Vec<RequestDrift>,
    /// Recorded outbound hops that answered nothing.
    pub unused: Vec<UnusedRecording>,
    /// What the policy says request drift does.
    pub drift_action: DriftAction,
}

impl SessionFindings {
    /// Reads them from a session in this process.
    pub fn of(session: &crate::session::Session) -> Self {
        let misses = session
            .strict_misses()
            .iter()
            .filter_map(|body| MissReport::from_json(body).ok().map(|(r, _)| r))
            .collect();
        let state = session.read();
        SessionFindings {
            misses,
            request_drift: state.engine().request_drift(),
            unused: state.engine().unused_recordings(),
            drift_action: state.policy().request_drift,
        }
    }

    /// Reads them from a `GET /v1/sessions/{id}/state` body; the error names the member
    /// that does not read.
    pub fn from_state(state: &Value) -> Result<Self, String> {
        fn list<T: serde::de::DeserializeOwned>(
            state: &Value,
            key: &str,
        ) -> Result<Vec<T>, String> {
            match state.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                // By reference, as a strict-miss body is read (`MissReport::from_json`): one
                // deserializer for the findings.
                Some(v) => Vec::<T>::deserialize(v)
                    .map_err(|e| format!("the session state's {key} does not read: {e}")),
            }
        }
        let drift_action = match state["policy"]["requestDrift"].as_str() {
            Some("warn") => DriftAction::Warn,
            Some("ignore") => DriftAction::Ignore,
            _ => DriftAction::Fail,
        };
        Ok(SessionFindings {
            misses: list(state, "strictMisses")?,
            request_drift: list(state, "requestDrift")?,
            unused: list(state, "unusedRecordings")?,
            drift_action,
        })
    }
}

/// The verdict of one replay.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// What was replayed: a test name, or `replay run`.
    pub subject: String,
    /// The case file.
    pub case: String,
    /// What fails the replay, in the order it was found.
    pub findings: Vec<Finding>,
    /// What is shown but does not fail it (request drift under `requestDrift: warn`).
    pub warnings: Vec<Finding>,
    /// Requests that differed only by volatile values (shown in verbose output).
    pub volatile: Vec<RequestDrift>,
    /// Where what the run exchanged was written, when it was.
    pub evidence: Option<String>,
    /// The command that records the case again.
    pub rerecord: Option<String>,
}

impl Verdict {
    /// An empty verdict about `subject` replaying `case`.
    pub fn new(subject: impl Into<String>, case: impl Into<String>) -> Self {
        Verdict {
            subject: subject.into(),
            case: case.into(),
            ..Verdict::default()
        }
    }

    /// True when nothing fails the replay.
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }

    /// Adds what the session noticed: its misses, its request drift (as findings under
    /// `fail`, warnings under `warn`) and, when `strict`, the recordings it never used.
    pub fn add_session(&mut self, found: SessionFindings, strict: bool) {
        self.findings
            .extend(found.misses.into_iter().map(|m| Finding::Miss(Box::new(m))));
        for drift in found.request_drift {
            if !drift.drifted() {
                self.volatile.push(drift);
                continue;
            }
            match found.drift_action {
                DriftAction::Fail => self.findings.push(Finding::RequestDrift(drift)),
                DriftAction::Warn => self.warnings.push(Finding::RequestDrift(drift)),
                DriftAction::Ignore => {}
            }
        }
        if strict {
            self.findings
                .extend(found.unused.into_iter().map(Finding::Unused));
        }
    }
}

/// The report a person reads: numbered findings, warnings, the evidence file and the
/// command to record again. The alternate form (`{:#}`) also lists the fields ignored as
/// volatile.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            writeln!(f, "softprobe: {} replays {}", self.subject, self.case)?;
        } else {
            writeln!(
                f,
                "softprobe: {} does not replay {}",
                self.subject, self.case
            )?;
        }
        for (i, finding) in self.findings.iter().enumerate() {
            if f.alternate() {
                write!(f, "\n{}. {finding:#}\n", i + 1)?;
            } else {
                write!(f, "\n{}. {finding}\n", i + 1)?;
            }
        }
        for warning in &self.warnings {
            write!(f, "\nwarning (requestDrift: warn): {warning}\n")?;
        }
        if f.alternate() {
            for drift in &self.volatile {
                write!(f, "\n{drift:#}\n")?;
            }
        }
        if self.passed() {
            return Ok(());
        }
        if let Some(path) = &self.evidence {
            write!(f, "\nWhat the test exchanged is in {path}\n")?;
        }
        if let Some(command) = &self.rerecord {
            write!(
                f,
                "If the new behaviour is right, record the case again with:\n  {command}\n"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drift(differences: Vec<Difference>) -> RequestDrift {
        RequestDrift {
            method: "POST".into(),
            url: "https://api.stripe.com/v1/payment_intents".into(),
            hop: 1,
            hops: 2,
            span_id: "0102030405060708".into(),
            json_path: "$.traces[0]".into(),
            differences,
            volatile: vec![],
        }
    }

    #[test]
    fn session_findings_read_back_from_the_state_body() {
        let found = SessionFindings {
            misses: vec![],
            request_drift: vec![drift(vec![Difference::new(
                "$.amount",
                Some(json!(1000)),
                Some(json!(2000)),
            )])],
            unused: vec![UnusedRecording {
                method: "GET".into(),
                url: "https://x/y".into(),
                hop: 2,
                hops: 2,
                span_id: "0a".into(),
                json_path: "$.traces[1]".into(),
            }],
            drift_action: DriftAction::Warn,
        };
        let state = json!({
            "policy": {"requestDrift": "warn"},
            "strictMisses": [],
            "requestDrift": found.request_drift,
            "unusedRecordings": found.unused,
        });
        assert_eq!(SessionFindings::from_state(&state).unwrap(), found);
        let bad = json!({"requestDrift": [{"method": 1}]});
        assert!(
            SessionFindings::from_state(&bad)
                .unwrap_err()
                .contains("requestDrift")
        );
    }

    #[test]
    fn the_text_numbers_findings_and_keeps_warnings_apart() {
        let mut verdict = Verdict::new("pays", "cases/pay.case.json");
        let amount = Difference::new("$.amount", Some(json!(1000)), Some(json!(2000)));
        verdict.add_session(
            SessionFindings {
                request_drift: vec![drift(vec![amount])],
                ..SessionFindings::default()
            },
            false,
        );
        verdict.rerecord = Some("SOFTPROBE_MODE=capture cargo test pays".into());
        assert_eq!(
            verdict.to_string(),
            "softprobe: pays does not replay cases/pay.case.json\n\n\
             1. outbound POST https://api.stripe.com/v1/payment_intents (hop 1 of 2): $.amount: recorded 1000, sent 2000\n\
             If the new behaviour is right, record the case again with:\n  SOFTPROBE_MODE=capture cargo test pays\n"
        );
        let mut warned = Verdict::new("pays", "c");
        warned.add_session(
            SessionFindings {
                request_drift: vec![drift(vec![Difference::new("$.a", None, Some(json!(1)))])],
                drift_action: DriftAction::Warn,
                ..SessionFindings::default()
            },
            false,
        );
        assert!(warned.passed());
        assert!(
            warned
                .to_string()
                .contains("warning (requestDrift: warn): outbound POST")
        );
    }
}
