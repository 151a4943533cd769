//! Deciding what happens to one hop: rules (policy < case < session), then replay from the
//! loaded case, then the policy's answer to a miss.
//!
//! One [`Engine`] per session. The server and the proxy turn a hop into a [`Request`], call
//! [`Engine::decide`] and act on the [`Decision`]; capture calls
//! [`Engine::capture_redaction`] before storing a hop.

mod drift;
mod index;
mod miss;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::case::{Case, Direction, Exchange, SpanId};
use crate::mode::Mode;
use crate::policy::{DriftAction, Policy};
use crate::request::BodyJson;
use crate::rules::{Consume, Redaction, Rule, RulesError, Then};

pub use crate::json::Difference;
pub use drift::{RequestDrift, VolatileField};
use index::CaseIndex;
pub use index::IndexedCase;
pub use miss::{
    MAX_CANDIDATES, MissCandidate, MissReport, MissRequest, STRICT_MISS_HEADER, STRICT_MISS_STATUS,
};

/// How many request-drift entries a session keeps; a service that drifts on every call of a
/// long replay is reported by its first ones.
pub const MAX_REQUEST_DRIFT: usize = 200;

/// A recorded outbound hop that answered no request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnusedRecording {
    /// Recorded method.
    pub method: String,
    /// Recorded URL.
    pub url: String,
    /// Position among the case's outbound hops, from 1.
    pub hop: usize,
    /// How many outbound hops the case recorded.
    pub hops: usize,
    /// Span id of the recording.
    pub span_id: String,
    /// Where the recording sits in the case file.
    pub json_path: String,
}

impl std::fmt::Display for UnusedRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "outbound {} {} (hop {} of {}) was recorded but never called",
            self.method, self.url, self.hop, self.hops
        )
    }
}
pub use crate::request::{Request, Response, trace_tags_from_headers};

/// A rule layer, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Rules of the policy document.
    Policy,
    /// Rules embedded in the loaded case.
    Case,
    /// Rules posted to the session.
    Session,
}

impl Layer {
    /// `policy`, `case` or `session`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Policy => "policy",
            Layer::Case => "case",
            Layer::Session => "session",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// What decided an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A rule.
    Rule {
        /// Its layer.
        layer: Layer,
        /// Its name, when it has one.
        name: Option<String>,
    },
    /// A captured exchange of the loaded case.
    Case {
        /// The recorded span.
        span_id: SpanId,
        /// Where the span sits in the case file.
        json_path: String,
    },
}

/// What to do with a hop.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Answer locally with this response.
    Respond {
        /// The answer.
        response: Response,
        /// Wait this long before answering (`latencyMs`).
        latency: Option<Duration>,
        /// What decided it.
        origin: Origin,
        /// True for an `error` rule: counted as an injected error.
        injected_error: bool,
    },
    /// Forward upstream: no decision, or a `passthrough` rule (then `origin` names it).
    Passthrough {
        /// The passthrough rule, when one decided.
        origin: Option<Origin>,
    },
    /// Answer with the strict-miss response (599, see [`MissReport::to_json`]).
    StrictMiss(Box<MissReport>),
}

impl Decision {
    /// The response to send when the hop is answered locally: the decided response, or the
    /// strict-miss answer for `session_id`. `None` means forward upstream.
    pub fn local_response(&self, session_id: &str) -> Option<Response> {
        match self {
            Decision::Respond { response, .. } => Some(response.clone()),
            Decision::Passthrough { .. } => None,
            Decision::StrictMiss(report) => Some(report.to_response(session_id)),
        }
    }
}

/// Merges two ascending lists of positions into one ascending sequence.
struct MergeAscending<'a> {
    a: &'a [u32],
    b: &'a [u32],
}

impl<'a> MergeAscending<'a> {
    fn new(a: &'a [u32], b: &'a [u32]) -> Self {
        MergeAscending { a, b }
    }
}

impl Iterator for MergeAscending<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(x), Some(y)) => x <= y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = list.split_first()?;
        *list = rest;
        Some(*first)
    }
}

/// The decision-maker of one session. `decide` takes `&self` so many hops can be decided at
/// once; the only mutable state (once-rules consumed, recorded hops used) sits behind a std
/// mutex held for a few instructions and never across an await.
///
/// ```
/// use softprobe_runtime::Mode;
/// use softprobe_runtime::case::Direction;
/// use softprobe_runtime::policy::parse_policy;
/// use softprobe_runtime::replay::{Decision, Engine, Request};
/// use softprobe_runtime::rules::parse_rules_document;
///
/// let mut engine = Engine::new(Mode::Replay);
/// engine.set_policy(parse_policy(br#"{"externalHttp": "strict"}"#, "policy.json").unwrap());
/// engine.set_session_rules(
///     parse_rules_document(
///         br#"[{"id": "stripe", "when": {"host": "api.stripe.com", "path": "/v1/charges"},
///               "then": {"action": "mock", "response": {"status": 201, "body": {"id": "ch_1"}}}}]"#,
///         "rules.json",
///     )
///     .unwrap(),
/// );
/// let mut request = Request {
///     direction: Direction::Outbound,
///     service: None,
///     method: "POST".into(),
///     scheme: Some("https".into()),
///     host: "api.stripe.com".into(),
///     path: "/v1/charges".into(),
///     query: None,
///     headers: vec![],
///     body: None,
///     trace_tags: vec![],
/// };
/// match engine.decide(&request) {
///     Decision::Respond { response, .. } => assert_eq!(response.status, 201),
///     other => panic!("{other:?}"),
/// }
/// request.path = "/v1/refunds".into();
/// let miss = engine.decide(&request).local_response("sess_x").unwrap();
/// assert_eq!(miss.status, 599);
/// ```
pub struct Engine {
    mode: Mode,
    policy: Policy,
    case: Option<Arc<CaseIndex>>,
    case_rules: Vec<Rule>,
    session_rules: Vec<Rule>,
    /// Rules that can answer, in precedence order: priority, then layer, then position.
    answer_order: Vec<(Layer, usize)>,
    /// Positions in `answer_order` of the rules without a `path` condition, ascending.
    any_path: Vec<u32>,
    /// Positions in `answer_order` of the rules with `path` = key, ascending; a request only
    /// looks at its own path's list, so many path-specific mocks cost one hash lookup.
    by_path: HashMap<String, Vec<u32>>,
    /// `capture_only` rules, same order.
    capture_order: Vec<(Layer, usize)>,
    /// Per direction (inbound, outbound): whether a rule that can answer may match a hop
    /// going that way (its `when` names that direction or none).
    answers: [bool; 2],
    state: Mutex<State>,
    /// Whether a recording answers again once all its alternatives are used.
    repeat_last: bool,
}

#[derive(Default)]
struct State {
    /// Per layer, per rule: a once-rule has answered.
    consumed: [Vec<bool>; 3],
    /// Per recorded hop: times it answered.
    used: Vec<u32>,
    /// Replayed outbound requests that differ from their recording (or differ only by
    /// volatile values), in the order they came.
    drift: Vec<RequestDrift>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.mode)
            .field("policy", &self.policy)
            .field("case", &self.case.as_ref().map(|c| &c.case.case_id))
            .field("case_rules", &self.case_rules.len())
            .field("session_rules", &self.session_rules.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with the default policy, no case and no rules.
    pub fn new(mode: Mode) -> Self {
        Engine {
            mode,
            policy: Policy::default(),
            case: None,
            case_rules: Vec::new(),
            session_rules: Vec::new(),
            answer_order: Vec::new(),
            any_path: Vec::new(),
            by_path: HashMap::new(),
            capture_order: Vec::new(),
            answers: [false; 2],
            state: Mutex::new(State::default()),
            repeat_last: true,
        }
    }

    /// The session's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The current policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The loaded case, if any.
    pub fn case(&self) -> Option<&Arc<Case>> {
        self.case.as_ref().map(|c| &c.case)
    }

    /// Every hop of the loaded case, in document order (empty without a case).
    pub fn case_exchanges(&self) -> &[Exchange] {
        self.case.as_ref().map_or(&[], |c| c.exchanges.as_slice())
    }

    /// Numbers of (inbound, outbound) hops in the loaded case; (0, 0) without a case.
    pub fn case_hop_counts(&self) -> (usize, usize) {
        let hops = self.case_exchanges();
        let outbound = hops
            .iter()
            .filter(|h| h.direction == Direction::Outbound)
            .count();
        (hops.len() - outbound, outbound)
    }

    /// The rules of one layer.
    pub fn rules(&self, layer: Layer) -> &[Rule] {
        match layer {
            Layer::Policy => &self.policy.rules,
            Layer::Case => &self.case_rules,
            Layer::Session => &self.session_rules,
        }
    }

    /// Whether the last recording of a request answers again once every recording of it has
    /// been used (the default). With `false`, an exhausted request is a miss, so a test can
    /// insist that the service makes each recorded call no more often than recorded.
    pub fn set_repeat_last(&mut self, repeat: bool) {
        self.repeat_last = repeat;
    }

    /// Replaces the policy (and its rule layer).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        self.reset_consumed(Layer::Policy);
        self.reorder();
    }

    /// Loads a case: indexes its hops and reads its embedded rules, replacing any previous
    /// case. On error (a span that is not a hop, a bad rule) the previous case stays.
    pub fn load_case(&mut self, case: Arc<Case>, source_name: &str) -> Result<(), RulesError> {
        let indexed = IndexedCase::build(case, source_name)?;
        self.load_indexed(&indexed);
        Ok(())
    }

    /// Loads a case indexed before ([`IndexedCase::build`]), replacing any previous case.
    /// Every engine that loads the same [`IndexedCase`] shares its index; only the record
    /// of which hops answered is this engine's own.
    pub fn load_indexed(&mut self, case: &IndexedCase) {
        let hops = case.index.exchanges.len();
        self.case = Some(Arc::clone(&case.index));
        self.case_rules = case.rules.to_vec();
        {
            let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
            state.used = vec![0; hops];
            state.drift.clear();
        }
        self.reset_consumed(Layer::Case);
        self.reorder();
    }

    /// Replaces the session rules (SDKs send the full list every time); once-rules of the new
    /// list start unconsumed.
    pub fn set_session_rules(&mut self, rules: Vec<Rule>) {
        self.session_rules = rules;
        self.reset_consumed(Layer::Session);
        self.reorder();
    }

    /// Rule counts per layer: (policy, case, session).
    pub fn rule_counts(&self) -> (usize, usize, usize) {
        (
            self.policy.rules.len(),
            self.case_rules.len(),
            self.session_rules.len(),
        )
    }

    fn reset_consumed(&mut self, layer: Layer) {
        let len = self.rules(layer).len();
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        state.consumed[layer.slot()] = vec![false; len];
    }

    fn reorder(&mut self) {
        let mut all: Vec<(Layer, usize)> = Vec::new();
        for layer in [Layer::Policy, Layer::Case, Layer::Session] {
            all.extend((0..self.rules(layer).len()).map(|i| (layer, i)));
        }
        // Highest priority first; on a tie the later layer, then the later rule.
        all.sort_by(|a, b| {
            let (ra, rb) = (self.rule(*a), self.rule(*b));
            rb.priority.cmp(&ra.priority).then(b.cmp(a))
        });
        let (capture, answer): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|r| matches!(self.rule(*r).then, Then::CaptureOnly(_)));
        self.any_path.clear();
        self.by_path.clear();
        for (pos, key) in answer.iter().enumerate() {
            let pos = u32::try_from(pos).expect("fewer than 2^32 rules");
            match &self.rule(*key).when.path {
                Some(path) => self.by_path.entry(path.clone()).or_default().push(pos),
                None => self.any_path.push(pos),
            }
        }
        self.answers = [Direction::Inbound, Direction::Outbound].map(|direction| {
            answer.iter().any(|key| {
                self.rule(*key)
                    .when
                    .direction
                    .is_none_or(|d| d == direction)
            })
        });
        self.answer_order = answer;
        self.capture_order = capture;
    }

    /// Whether every hop going `direction` to `host` is forwarded untouched, whatever else
    /// it carries: no rule that can answer looks at that direction, nothing is replayed for
    /// it (an inbound hop, no case loaded, or not a replay session) and the policy lets it
    /// through. [`Engine::decide`] would answer `Passthrough { origin: None }` for any such
    /// hop, so a proxy can forward it without building its [`Request`].
    pub fn passes_through(&self, direction: Direction, host: &str) -> bool {
        let slot = match direction {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
        };
        if self.answers[slot] {
            return false;
        }
        match direction {
            Direction::Inbound => true,
            Direction::Outbound => {
                let replays = self.mode == Mode::Replay && self.case.is_some();
                !replays && !self.policy.blocks(host)
            }
        }
    }

    fn rule(&self, (layer, i): (Layer, usize)) -> &Rule {
        &self.rules(layer)[i]
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one store.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides what happens to `req`.
    pub fn decide(&self, req: &Request) -> Decision {
        let body = BodyJson::default();
        let same_path = self
            .by_path
            .get(req.path.as_str())
            .map_or(&[][..], Vec::as_slice);
        for pos in MergeAscending::new(&self.any_path, same_path) {
            let key = self.answer_order[pos as usize];
            let rule = self.rule(key);
            if !rule.when.matches_with(req, &body) {
                continue;
            }
            let origin = || Origin::Rule {
                layer: key.0,
                name: rule.name.clone(),
            };
            let latency = rule.latency_ms.map(Duration::from_millis);
            match &rule.then {
                Then::Mock(r) | Then::Error(r) => {
                    if rule.consume == Consume::Once && !self.claim(key) {
                        continue;
                    }
                    return Decision::Respond {
                        response: Response {
                            status: r.status,
                            headers: r.headers.clone(),
                            body: r.body.clone(),
                        },
                        latency,
                        origin: origin(),
                        injected_error: matches!(rule.then, Then::Error(_)),
                    };
                }
                Then::Passthrough => {
                    if rule.consume == Consume::Once && !self.claim(key) {
                        continue;
                    }
                    return Decision::Passthrough {
                        origin: Some(origin()),
                    };
                }
                Then::Replay => {
                    let once = rule.consume == Consume::Once;
                    if let Some(d) = self.replay(req, &body, Some(key), once, latency) {
                        return d;
                    }
                }
                Then::CaptureOnly(_) => {}
            }
        }
        if self.mode == Mode::Replay
            && req.direction == Direction::Outbound
            && let Some(d) = self.replay(req, &body, None, false, None)
        {
            return d;
        }
        match miss::strict_miss(&self.policy, req, self.case.as_deref()) {
            Some(report) => Decision::StrictMiss(Box::new(report)),
            None => Decision::Passthrough { origin: None },
        }
    }

    /// Answers from the loaded case, for a `replay` rule (`rule`) or on its own. A once-rule
    /// is claimed in the same critical section as the hop, so two concurrent requests cannot
    /// both use it.
    fn replay(
        &self,
        req: &Request,
        body: &BodyJson,
        rule: Option<(Layer, usize)>,
        once: bool,
        latency: Option<Duration>,
    ) -> Option<Decision> {
        let index = self.case.as_ref()?;
        let candidates = index.candidates(req);
        if candidates.is_empty() {
            return None;
        }
        // Parse the request body before taking the lock.
        if candidates.len() > 1 {
            body.get(req);
        }
        let chosen = {
            let mut state = self.lock();
            let once_key = rule.filter(|_| once);
            if let Some((layer, i)) = once_key
                && state.consumed[layer.slot()][i]
            {
                return None;
            }
            let chosen = index.choose(candidates, req, body, &state.used, self.repeat_last)?;
            state.used[chosen] = state.used[chosen].saturating_add(1);
            if let Some((layer, i)) = once_key {
                state.consumed[layer.slot()][i] = true;
            }
            chosen
        };
        if req.direction == Direction::Outbound && self.policy.request_drift != DriftAction::Ignore
        {
            self.note_drift(index, chosen, req);
        }
        Some(Decision::Respond {
            response: index.response_for(chosen, req, self.policy.stream_timing),
            latency,
            origin: match rule {
                Some((layer, i)) => Origin::Rule {
                    layer,
                    name: self.rules(layer)[i].name.clone(),
                },
                None => Origin::Case {
                    span_id: index.exchanges[chosen].span_id,
                    json_path: index.json_paths[chosen].clone(),
                },
            },
            injected_error: false,
        })
    }

    /// Compares a replayed outbound request with the recording that answered it and keeps
    /// what differs.
    fn note_drift(&self, index: &CaseIndex, chosen: usize, req: &Request) {
        let ex = &index.exchanges[chosen];
        let (differences, volatile) = drift::compare(
            ex,
            index.body_json(chosen),
            req,
            &self.policy,
            SystemTime::now(),
        );
        if differences.is_empty() && volatile.is_empty() {
            return;
        }
        let entry = RequestDrift {
            method: req.method.to_ascii_uppercase(),
            url: req.url(),
            hop: index
                .outbound_all
                .binary_search(&chosen)
                .map_or(0, |p| p + 1),
            hops: index.outbound_all.len(),
            span_id: ex.span_id.to_string(),
            json_path: index.json_paths[chosen].clone(),
            differences,
            volatile,
        };
        let mut state = self.lock();
        if state.drift.len() < MAX_REQUEST_DRIFT {
            state.drift.push(entry);
        }
    }

    /// Every replayed outbound request that differed from its recording, including those
    /// that differed only by volatile values ([`RequestDrift::drifted`] tells them apart).
    pub fn request_drift(&self) -> Vec<RequestDrift> {
        self.lock().drift.clone()
    }

    /// How many replayed outbound requests really drifted (volatile-only ones aside).
    pub fn drifted_requests(&self) -> usize {
        self.lock().drift.iter().filter(|d| d.drifted()).count()
    }

    /// The recorded outbound hops that answered no request, in recorded order.
    pub fn unused_recordings(&self) -> Vec<UnusedRecording> {
        let Some(index) = &self.case else {
            return Vec::new();
        };
        let state = self.lock();
        let hops = index.outbound_all.len();
        index
            .outbound_all
            .iter()
            .enumerate()
            .filter(|(_, i)| state.used[**i] == 0)
            .map(|(n, &i)| {
                let ex = &index.exchanges[i];
                UnusedRecording {
                    method: ex.method.to_ascii_uppercase(),
                    url: ex.url(),
                    hop: n + 1,
                    hops,
                    span_id: ex.span_id.to_string(),
                    json_path: index.json_paths[i].clone(),
                }
            })
            .collect()
    }

    /// Marks a once-rule as used; false when it already was.
    fn claim(&self, (layer, i): (Layer, usize)) -> bool {
        let mut state = self.lock();
        let slot = &mut state.consumed[layer.slot()][i];
        !std::mem::replace(slot, true)
    }

    /// The union of every matching `capture_only` rule's redaction, highest precedence first.
    /// Default sensitive headers are not included; callers add
    /// [`crate::headers::SENSITIVE`] as configured.
    pub fn capture_redaction(&self, req: &Request) -> Redaction {
        let body = BodyJson::default();
        let mut out = Redaction::default();
        for &key in &self.capture_order {
            let rule = self.rule(key);
            if let Then::CaptureOnly(r) = &rule.then
                && rule.when.matches_with(req, &body)
            {
                out.merge(r);
            }
        }
        out
    }

    /// Captured outbound hops of the loaded case that never answered a request, in recorded
    /// order (for a strict harness that fails on unused captures).
    pub fn unused_captures(&self) -> Vec<Exchange> {
        let Some(index) = &self.case else {
            return Vec::new();
        };
        let state = self.lock();
        index
            .outbound_all
            .iter()
            .filter(|&&i| state.used[i] == 0)
            .map(|&i| index.exchanges[i].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_interleaves_ascending_positions() {
        let merged: Vec<u32> = MergeAscending::new(&[0, 3, 4, 9], &[1, 2, 5]).collect();
        assert_eq!(merged, vec![0, 1, 2, 3, 4, 5, 9]);
        assert_eq!(MergeAscending::new(&[], &[7]).collect::<Vec<_>>(), vec![7]);
        assert_eq!(MergeAscending::new(&[], &[]).count(), 0);
    }

    fn request(direction: Direction, host: &str) -> Request {
        Request {
            direction,
            service: None,
            method: "GET".into(),
            scheme: Some("http".into()),
            host: host.into(),
            path: "/".into(),
            query: None,
            headers: Vec::new(),
            body: None,
            trace_tags: Vec::new(),
        }
    }

    /// `passes_through` promises what `decide` answers: checked for every combination it
    /// says yes to, and its no for each thing that can answer a hop.
    #[test]
    fn passes_through_only_what_decide_would_pass_through() {
        let agrees = |engine: &Engine, direction, host| {
            let yes = engine.passes_through(direction, host);
            if yes {
                assert_eq!(
                    engine.decide(&request(direction, host)),
                    Decision::Passthrough { origin: None },
                    "{direction:?} {host}"
                );
            }
            yes
        };
        let mut engine = Engine::new(Mode::Replay);
        assert!(agrees(&engine, Direction::Inbound, "app"));
        assert!(agrees(&engine, Direction::Outbound, "api.test"));

        let case = crate::case::Case::from_slice_named(
            include_bytes!("../../../fixtures/cases/checkout.case.json"),
            "checkout",
        )
        .unwrap();
        engine.load_case(Arc::new(case), "checkout").unwrap();
        assert!(agrees(&engine, Direction::Inbound, "app"));
        assert!(!engine.passes_through(Direction::Outbound, "api.test"));

        let mut generate = Engine::new(Mode::Generate);
        generate.set_policy(
            crate::policy::parse_policy(br#"{"externalHttp": "strict"}"#, "p").unwrap(),
        );
        assert!(!generate.passes_through(Direction::Outbound, "api.test"));
        assert!(agrees(&generate, Direction::Inbound, "app"));

        let rules = |text: &[u8]| crate::rules::parse_rules_document(text, "r").unwrap();
        let mut outbound_only = Engine::new(Mode::Generate);
        outbound_only.set_session_rules(rules(
            br#"[{"when": {"direction": "outbound"}, "then": {"action": "mock", "response": {"status": 204}}}]"#,
        ));
        assert!(agrees(&outbound_only, Direction::Inbound, "app"));
        assert!(!outbound_only.passes_through(Direction::Outbound, "api.test"));

        let mut any = Engine::new(Mode::Generate);
        any.set_session_rules(rules(
            br#"[{"when": {"path": "/health"}, "then": {"action": "mock", "response": {"status": 204}}}]"#,
        ));
        assert!(!any.passes_through(Direction::Inbound, "app"));
        assert!(!any.passes_through(Direction::Outbound, "api.test"));
    }
}
