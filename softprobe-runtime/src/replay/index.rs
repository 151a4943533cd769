//! The loaded case, indexed once at load time: captured hops keyed by
//! (method, normalised host, path, query), so answering a request is one hash lookup plus a
//! short walk over the hops recorded for that exact request line.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::case::{Case, Direction, Exchange};
use crate::json::json_eq;
use crate::request::host::split_port;
use crate::request::{BodyJson, Request, Response};
use crate::rules::{Rule, RulesError, rules_from_values};

/// A case made ready to replay: its hops indexed by request line, their answers built and
/// its embedded rules parsed. Built once per case and shared (cloning is two reference
/// counts): a test harness that replays one case in many sessions indexes it once, and each
/// session's [`Engine`](super::Engine) keeps only which hops have answered.
#[derive(Clone)]
pub struct IndexedCase {
    pub(crate) index: Arc<CaseIndex>,
    pub(crate) rules: Arc<[Rule]>,
}

impl IndexedCase {
    /// Indexes `case`. `source_name` names the case in errors and miss reports. Fails on a
    /// span that is not a readable hop or an embedded rule that does not parse.
    pub fn build(case: Arc<Case>, source_name: &str) -> Result<Self, RulesError> {
        let rules = match &case.rules {
            Some(values) => rules_from_values(values, source_name, "$.rules")?,
            None => Vec::new(),
        };
        Ok(IndexedCase {
            index: Arc::new(CaseIndex::build(case, source_name)?),
            rules: rules.into(),
        })
    }

    /// The case document.
    pub fn case(&self) -> &Arc<Case> {
        &self.index.case
    }

    /// Every hop of the case, in document order.
    pub fn exchanges(&self) -> &[Exchange] {
        &self.index.exchanges
    }

    /// The name the case was indexed under (its file, for messages).
    pub fn source_name(&self) -> &str {
        &self.index.source_name
    }
}

impl std::fmt::Debug for IndexedCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedCase")
            .field("case_id", &self.index.case.case_id)
            .field("source_name", &self.index.source_name)
            .field("hops", &self.index.exchanges.len())
            .field("rules", &self.rules.len())
            .finish()
    }
}

pub(crate) struct CaseIndex {
    pub(crate) case: Arc<Case>,
    pub(crate) source_name: String,
    /// Every hop, in document order.
    pub(crate) exchanges: Vec<Exchange>,
    /// JSON path of each hop's span in the case file.
    pub(crate) json_paths: Vec<String>,
    /// Each hop's request body parsed as JSON, when it is JSON.
    body_json: Vec<Option<Value>>,
    /// Each hop's answer, ready to send (built once, cloned per hit).
    responses: Vec<Response>,
    outbound: HashMap<String, Vec<usize>>,
    inbound: HashMap<String, Vec<usize>>,
    /// Outbound hops in recorded order.
    pub(crate) outbound_all: Vec<usize>,
}

impl CaseIndex {
    pub(crate) fn build(case: Arc<Case>, source_name: &str) -> Result<Self, RulesError> {
        let mut exchanges = Vec::new();
        let mut json_paths = Vec::new();
        for (loc, span, service) in case.spans() {
            let ex = Exchange::from_span(span, service)
                .map_err(|e| RulesError::at(source_name, loc.json_path(), e.to_string()))?;
            exchanges.push(ex);
            json_paths.push(loc.json_path());
        }
        let mut outbound: HashMap<String, Vec<usize>> = HashMap::new();
        let mut inbound: HashMap<String, Vec<usize>> = HashMap::new();
        let mut outbound_all = Vec::new();
        let mut body_json = Vec::with_capacity(exchanges.len());
        for (i, ex) in exchanges.iter().enumerate() {
            let mut key = String::new();
            push_key(
                &mut key,
                &ex.method,
                &ex.host,
                &ex.path,
                ex.query.as_deref(),
            );
            let map = match ex.direction {
                Direction::Outbound => {
                    outbound_all.push(i);
                    &mut outbound
                }
                Direction::Inbound => &mut inbound,
            };
            map.entry(key).or_default().push(i);
            body_json.push(
                ex.request_body
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b.as_bytes()).ok()),
            );
        }
        let responses = exchanges.iter().map(recorded_response).collect();
        Ok(CaseIndex {
            case,
            responses,
            source_name: source_name.to_owned(),
            exchanges,
            json_paths,
            body_json,
            outbound,
            inbound,
            outbound_all,
        })
    }

    /// The recorded hops with the request line of `req`, in recorded order.
    pub(crate) fn candidates(&self, req: &Request) -> &[usize] {
        let mut key = String::with_capacity(
            req.method.len()
                + req.host.len()
                + req.path.len()
                + 8
                + req.query.as_ref().map_or(0, String::len),
        );
        push_key(
            &mut key,
            &req.method,
            &req.host,
            &req.path,
            req.query.as_deref(),
        );
        let map = match req.direction {
            Direction::Outbound => &self.outbound,
            Direction::Inbound => &self.inbound,
        };
        map.get(&key).map_or(&[], Vec::as_slice)
    }

    /// Picks among candidates: an equal request body first, then the first not yet used in
    /// recorded order. When every preferred recording is used, `repeat_last` makes the last
    /// of them answer again; without it an unused recording with another body answers, and
    /// when there is none the request has no answer.
    pub(crate) fn choose(
        &self,
        candidates: &[usize],
        req: &Request,
        body: &BodyJson,
        used: &[u32],
        repeat_last: bool,
    ) -> Option<usize> {
        if let [only] = candidates {
            return (repeat_last || used[*only] == 0).then_some(*only);
        }
        let mut first_unused = None;
        let mut first_unused_equal = None;
        let mut last_equal = None;
        for &i in candidates {
            let unused = used[i] == 0;
            if unused && first_unused.is_none() {
                first_unused = Some(i);
            }
            if self.body_equal(i, req, body) {
                if unused && first_unused_equal.is_none() {
                    first_unused_equal = Some(i);
                }
                last_equal = Some(i);
            }
        }
        if !repeat_last {
            first_unused_equal.or(first_unused)
        } else if last_equal.is_some() {
            first_unused_equal.or(last_equal)
        } else {
            first_unused.or(candidates.last().copied())
        }
    }

    fn body_equal(&self, i: usize, req: &Request, body: &BodyJson) -> bool {
        if let Some(recorded) = crate::multipart::recorded_parts(&self.exchanges[i]) {
            let live =
                crate::multipart::live_parts(&req.headers, req.body.as_ref().map(|b| b.as_bytes()));
            return live.as_ref() == Some(&recorded);
        }
        let recorded = self.exchanges[i]
            .request_body
            .as_ref()
            .map_or(&[][..], |b| b.as_bytes());
        let actual = req.body.as_ref().map_or(&[][..], |b| b.as_bytes());
        if recorded == actual {
            return true;
        }
        match (&self.body_json[i], body.get(req)) {
            (Some(a), Some(b)) => json_eq(a, b),
            _ => false,
        }
    }

    pub(crate) fn body_json(&self, i: usize) -> Option<&Value> {
        self.body_json[i].as_ref()
    }

    /// The recorded answer of hop `i`.
    pub(crate) fn response(&self, i: usize) -> Response {
        self.responses[i].clone()
    }

    /// The recorded answer of hop `i` for `req`: a body recorded decoded from a content
    /// coding is encoded again when the request accepts that coding, identity otherwise; a
    /// recorded stream carries its chunk timings when the hop or the policy asks for them.
    pub(crate) fn response_for(
        &self,
        i: usize,
        req: &Request,
        timing: crate::policy::StreamTiming,
    ) -> Response {
        let mut response = self.response(i);
        let coding = self.exchanges[i]
            .extra_attributes
            .iter()
            .find(|kv| kv.key == crate::content_coding::RESPONSE_CODING)
            .and_then(|kv| kv.value.as_str());
        if let Some(coding) = coding {
            let accept = req
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("accept-encoding"))
                .map(|(_, v)| v.as_str());
            crate::content_coding::encode_for_client(
                coding,
                accept,
                &mut response.headers,
                &mut response.body,
            );
        }
        if crate::grpc::is_grpc_hop(&self.exchanges[i]) {
            crate::grpc::prepare_replay(&self.exchanges[i], &mut response);
        }
        if let Some(chunks) = crate::streaming::replay_timing(&self.exchanges[i], timing) {
            response.headers.push((
                crate::streaming::TIMING_HEADER.to_owned(),
                chunks.to_owned(),
            ));
        }
        response
    }
}

/// A hop's recorded answer without connection framing headers or pseudo-headers.
fn recorded_response(ex: &Exchange) -> Response {
    Response {
        status: ex.status.unwrap_or(200),
        headers: ex
            .response_headers
            .iter()
            .filter(|(n, _)| !n.starts_with(':') && !crate::headers::is_framing(n))
            .cloned()
            .collect(),
        body: ex.response_body.clone(),
    }
}

/// `METHOD \n host \n path \n query` with the method uppercased and the host lowercased and
/// stripped of a default port; no separator can occur inside the parts of a request line.
fn push_key(out: &mut String, method: &str, host: &str, path: &str, query: Option<&str>) {
    for c in method.chars() {
        out.push(c.to_ascii_uppercase());
    }
    out.push('\n');
    let (name, port) = split_port(host);
    for c in name.chars() {
        out.push(c.to_ascii_lowercase());
    }
    if let Some(p) = port
        && p != "80"
        && p != "443"
    {
        out.push(':');
        out.push_str(p);
    }
    out.push('\n');
    out.push_str(path);
    out.push('\n');
    out.push_str(query.unwrap_or(""));
}
