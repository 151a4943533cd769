//! The rule language: `when` a hop looks like this, `then` answer it like that
//! (`spec/protocol/rules.md`).
//!
//! Rules come from three places (the policy, the loaded case, the session) and are parsed
//! here into [`Rule`]; [`crate::replay::Engine`] orders them and decides. Parsing rejects
//! every key it does not know, naming the file, the JSON path and, when known, the line.

pub(crate) mod matcher;
pub(crate) mod parse;
mod redact;
mod serialize;

use std::fmt;

use crate::case::{Body, Direction};

pub use crate::json::path::{JsonPath, JsonPathError};
pub use crate::request::host::{host_matches, normalize_host};
pub use parse::{parse_rules_document, rules_from_values};

pub use crate::redact::REDACTED;

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `name` (or its other spelling `id`); used in decisions, logs and reports.
    pub name: Option<String>,
    /// Free text for people.
    pub description: Option<String>,
    /// Higher wins; default 0.
    pub priority: i64,
    /// Whether the rule answers once or every time.
    pub consume: Consume,
    /// Delay before a local answer.
    pub latency_ms: Option<u64>,
    /// Which hops the rule applies to; empty matches everything.
    pub when: When,
    /// What to do with them.
    pub then: Then,
}

/// How often a rule may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Consume {
    /// The first matching hop only; later hops fall to the next candidate.
    Once,
    /// Every matching hop.
    #[default]
    Many,
}

impl Consume {
    /// `once` or `many`.
    pub fn as_str(self) -> &'static str {
        match self {
            Consume::Once => "once",
            Consume::Many => "many",
        }
    }
}

/// The conditions of a rule; every present field must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct When {
    /// `inbound` or `outbound`.
    pub direction: Option<Direction>,
    /// Exact service name of the hop.
    pub service: Option<String>,
    /// Host, lowercase, default ports (`:80`, `:443`) removed; a port here must match.
    pub host: Option<String>,
    /// Lowercase host suffixes; any may match.
    pub host_suffix: Vec<String>,
    /// Lowercase host suffixes; none may match.
    pub not_host_suffix: Vec<String>,
    /// Uppercase method.
    pub method: Option<String>,
    /// Exact path, without query.
    pub path: Option<String>,
    /// Path prefix.
    pub path_prefix: Option<String>,
    /// Lowercase header name → exact value; all must be present.
    pub headers: Vec<(String, String)>,
    /// JSONPath into the request body → expected JSON value; all must hold.
    pub body_json_path: Vec<(JsonPath, serde_json::Value)>,
    /// Trace tag → exact value; all must be present.
    pub trace_tags: Vec<(String, String)>,
}

impl When {
    /// True when the rule has no condition and so matches every hop.
    pub fn is_empty(&self) -> bool {
        self == &When::default()
    }
}

/// What a rule does with a hop it matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Then {
    /// Answer with this response.
    Mock(MockResponse),
    /// Answer from the loaded case's captured exchanges; no case or no candidate is a miss
    /// and the next candidate decides.
    Replay,
    /// Forward upstream, even under a strict policy.
    Passthrough,
    /// Answer with this error response (counted as an injected error).
    Error(MockResponse),
    /// Never answers; directs redaction of captured hops.
    CaptureOnly(Redaction),
}

impl Then {
    /// The action name as written in rules: `mock`, `replay`, `passthrough`, `error`,
    /// `capture_only`.
    pub fn action(&self) -> &'static str {
        match self {
            Then::Mock(_) => "mock",
            Then::Replay => "replay",
            Then::Passthrough => "passthrough",
            Then::Error(_) => "error",
            Then::CaptureOnly(_) => "capture_only",
        }
    }
}

/// A response written in a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct MockResponse {
    /// Status code.
    pub status: u16,
    /// Headers in the order written, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Body, when the rule gives one.
    pub body: Option<Body>,
}

/// Values to replace with `"[REDACTED]"` before a captured hop is stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Redaction {
    /// Header names (any case), redacted in requests and responses.
    pub headers: Vec<String>,
    /// JSONPaths (the subset of [`JsonPath`]) redacted in JSON request and response bodies.
    pub json_paths: Vec<String>,
}

/// Why a rules, policy or case-rules document was refused.
///
/// Displays as `FILE: $.rules[2].when.hots: unknown field ... (line 7, column 9)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RulesError {
    /// The file, or a name such as `<request body>`.
    pub source_name: String,
    /// JSON path of the offending value, `$` for the document.
    pub json_path: String,
    /// Line, 1-based, when known.
    pub line: Option<usize>,
    /// Column, 1-based, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.source_name, self.json_path, self.message
        )?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " (line {line}, column {column})"),
            (Some(line), None) => write!(f, " (line {line})"),
            _ => Ok(()),
        }
    }
}

impl RulesError {
    pub(crate) fn at(
        source_name: &str,
        json_path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RulesError {
            source_name: source_name.to_owned(),
            json_path: json_path.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}
