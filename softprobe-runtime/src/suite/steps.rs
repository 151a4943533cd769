//! What one suite case does, apart from how it talks to the runtime and the application:
//! the request to send (the captured inbound request with the suite's overrides), the mocks as
//! session rules, and the checks on each answer. `softprobe suite run` drives these over HTTP;
//! the Rust harness (`#[softprobe::cases("x.suite.yaml")]`) drives them in-process, so both
//! read a suite the same way and fail with the same text.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::assert::{self, Message};
use super::hooks::{self, HookKind};
use super::model::{Assertions, BodyMode, CaseSettings, MockSource, StatusSpec};
use super::report::Failure;
use crate::case::{Body, Direction, Exchange};

/// A failure of `kind` with no diff.
pub fn fail(kind: &str, message: impl Into<String>) -> Failure {
    Failure {
        kind: kind.into(),
        message: message.into(),
        diff: None,
    }
}

/// The captured inbound request as `{method, path, headers, body}`; headers that belong to
/// the hop (host, length, trace context, the session) or were redacted are left out.
pub fn captured_request(ex: &Exchange) -> Map<String, Value> {
    let mut headers = Map::new();
    for (k, v) in &ex.request_headers {
        let lower = k.to_ascii_lowercase();
        // The suite compares the bytes it receives and its client decodes no content coding,
        // so the service is not asked for one either.
        if crate::headers::is_not_resent(&lower)
            || lower == "accept-encoding"
            || crate::redact::is_redacted(v)
        {
            continue;
        }
        headers.insert(lower, Value::String(v.clone()));
    }
    let path = match &ex.query {
        Some(q) if !q.is_empty() => format!("{}?{q}", ex.path),
        _ => ex.path.clone(),
    };
    let body = match &ex.request_body {
        None => Value::String(String::new()),
        Some(Body::Text(t)) => Value::String(t.clone()),
        Some(Body::Binary(b)) => assert::body_value(b),
    };
    let mut m = Map::new();
    m.insert("method".into(), Value::String(ex.method.clone()));
    m.insert("path".into(), Value::String(path));
    m.insert("headers".into(), Value::Object(headers));
    m.insert("body".into(), body);
    m
}

/// The captured response of a hop as a [`Message`].
pub fn captured_response(ex: &Exchange) -> Message {
    Message {
        status: ex.status.unwrap_or(200),
        headers: ex.response_headers.clone(),
        body: ex
            .response_body
            .as_ref()
            .map(|b| b.as_bytes().to_vec())
            .unwrap_or_default(),
    }
}

/// One request a case sends, and the captured response it is judged against (none when the
/// request comes from the suite).
pub type PlannedRequest = (Map<String, Value>, Option<Message>);

/// The requests one case sends, in order, each with the captured response it is judged
/// against: every captured inbound request with the suite's overrides, or, when the case has
/// no inbound hop, the one request the suite's `request` spells out (`path` or `url`), with no
/// captured response. A case with neither fails: it would send nothing.
pub fn plan_requests(
    case_path: &Path,
    settings: &CaseSettings,
    exchanges: &[Exchange],
) -> Result<Vec<PlannedRequest>, Failure> {
    let inbound: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| e.direction == Direction::Inbound)
        .collect();
    if !inbound.is_empty() {
        return Ok(inbound
            .into_iter()
            .map(|ex| {
                let mut request = captured_request(ex);
                apply_request_overrides(&mut request, settings);
                (request, Some(captured_response(ex)))
            })
            .collect());
    }
    let spec = settings.request.as_ref();
    let url_path = spec
        .and_then(|r| r.url.as_deref())
        .map(path_of)
        .filter(|p| *p != "/" && !p.is_empty());
    if spec.and_then(|r| r.path.as_ref()).is_none() && url_path.is_none() {
        return Err(fail(
            "case",
            format!(
                "{} has no inbound request to replay and the suite's request gives no path or url: nothing to send (softprobe fails such a case where the original runner passed it)",
                case_path.display()
            ),
        ));
    }
    let mut request = Map::new();
    request.insert("method".into(), json!("GET"));
    request.insert("path".into(), json!(url_path.unwrap_or("/")));
    request.insert("headers".into(), Value::Object(Map::new()));
    request.insert("body".into(), json!(""));
    apply_request_overrides(&mut request, settings);
    Ok(vec![(request, None)])
}

/// The path (with query) of an absolute URL, `/` when it has none.
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Where a request goes: `url` (the suite's `request.url`) when given, else `base`, with the
/// request's path appended unless the URL already ends with it.
pub fn target_url(base: &str, url: Option<&str>, path: &str) -> String {
    let root = url.unwrap_or(base);
    let bare = |p: &str| p.split('?').next().unwrap_or("").to_owned();
    if url.is_some() && path_of(root) != "/" && bare(path_of(root)).ends_with(&bare(path)) {
        return root.to_owned();
    }
    format!("{}{path}", root.trim_end_matches('/'))
}

/// Applies the suite's inline `request` fields (method, path, body, headers; a `null` header
/// removes it) over a captured request.
pub fn apply_request_overrides(request: &mut Map<String, Value>, settings: &CaseSettings) {
    let Some(r) = &settings.request else { return };
    if let Some(m) = &r.method {
        request.insert("method".into(), Value::String(m.clone()));
    }
    if let Some(p) = &r.path {
        request.insert("path".into(), Value::String(p.clone()));
    }
    if let Some(b) = &r.body {
        request.insert("body".into(), b.clone());
    }
    if let Some(h) = &r.headers
        && let Some(Value::Object(headers)) = request.get_mut("headers")
    {
        for (k, v) in h {
            let k = k.to_ascii_lowercase();
            match v {
                Some(v) => headers.insert(k, Value::String(v.clone())),
                None => headers.remove(&k),
            };
        }
    }
}

/// Merges a request hook's answer (`{"request": {...}}`) into the request, field by field.
pub fn apply_request_answer(request: &mut Map<String, Value>, answer: &Value) {
    if let Some(Value::Object(changed)) = answer.get("request") {
        for (k, v) in changed {
            request.insert(k.clone(), v.clone());
        }
    }
}

/// The bytes to send for a request's `body`: text as is, JSON serialised, `null` empty.
pub fn body_bytes(body: &Value) -> Vec<u8> {
    match body {
        Value::Null => Vec::new(),
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

/// One suite mock on its way to becoming a session rule: when it names a hook, the hook must
/// be called with [`PendingMock::hook`] and its answer given to [`PendingMock::rule`].
#[derive(Debug, Clone)]
pub struct PendingMock {
    name: String,
    when: Value,
    source: MockSource,
    response: Option<Value>,
    hook: Option<String>,
    captured_request: Value,
    priority: i64,
    consume: Option<String>,
    latency_ms: Option<u64>,
}

impl PendingMock {
    /// The hook to call first (its name as written in the suite) and its payload, when the
    /// mock has one.
    pub fn hook(&self) -> Option<(&str, Value)> {
        let hook = self.hook.as_deref()?;
        Some((
            hook,
            json!({
                "mock": self.name,
                "request": self.captured_request,
                "response": self.response,
            }),
        ))
    }

    /// The session rule, given the hook's answer (`{"response": ...}` replaces the response)
    /// when there was a hook.
    pub fn rule(self, hook_answer: Option<&Value>) -> Value {
        let mut response = self.response;
        if let Some(r) = hook_answer.and_then(|a| a.get("response")) {
            response = Some(r.clone());
        }
        let then = match (self.source, &self.hook, response) {
            (MockSource::Case, None, _) => json!({"action": "replay"}),
            (_, _, Some(r)) => json!({"action": "mock", "response": rule_response(&r)}),
            (_, _, None) => json!({"action": "replay"}),
        };
        let mut rule = json!({
            "name": self.name,
            "priority": self.priority,
            "when": self.when,
            "then": then,
        });
        if let Some(c) = &self.consume {
            rule["consume"] = json!(c);
        }
        if let Some(l) = self.latency_ms {
            rule["latencyMs"] = json!(l);
        }
        rule
    }
}

/// The suite's mocks for one case: `source: case` mocks answer from the loaded case unless a
/// hook rewrites the captured response, which then becomes an inline mock.
pub fn plan_mocks(
    case_path: &Path,
    settings: &CaseSettings,
    exchanges: &[Exchange],
) -> Result<Vec<PendingMock>, Failure> {
    let mut out = Vec::new();
    for (i, m) in settings.mocks.iter().flatten().enumerate() {
        let name = if m.name.is_empty() {
            format!("mock-{}", i + 1)
        } else {
            m.name.clone()
        };
        let when = Value::Object(m.matcher.clone().unwrap_or_default());
        let source = m.source.unwrap_or(if m.response.is_some() {
            MockSource::Inline
        } else {
            MockSource::Case
        });
        let (captured_req, response) = match source {
            MockSource::Inline => (Value::Null, m.response.clone()),
            MockSource::Case => match exchanges.iter().find(|e| selects(&when, e)) {
                Some(e) => (
                    Value::Object(captured_request(e)),
                    Some(captured_response(e).to_json()),
                ),
                None if m.hook.is_some() => {
                    return Err(fail(
                        "mock",
                        format!(
                            "mock {name:?}: no captured hop of {} matches {when}",
                            case_path.display()
                        ),
                    ));
                }
                None => (Value::Null, None),
            },
        };
        out.push(PendingMock {
            name,
            when,
            source,
            response,
            hook: m.hook.clone(),
            captured_request: captured_req,
            priority: m.priority.unwrap_or(1000),
            consume: m.consume.clone(),
            latency_ms: m.latency_ms,
        });
    }
    Ok(out)
}

/// A `{status, headers, body}` as a rule response: headers as strings, the body as text or
/// JSON (binary captured bodies keep their base64 form).
fn rule_response(r: &Value) -> Value {
    let mut out = json!({"status": r.get("status").cloned().unwrap_or(json!(200))});
    if let Some(Value::Object(h)) = r.get("headers") {
        let headers: Map<String, Value> = h
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.to_ascii_lowercase().as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                )
            })
            .map(|(k, v)| {
                (
                    k.clone(),
                    Value::String(v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
                )
            })
            .collect();
        out["headers"] = Value::Object(headers);
    }
    match r.get("body") {
        Some(Value::Object(o)) if o.len() == 1 && o.contains_key("base64") => {
            out["bodyBase64"] = o["base64"].clone();
        }
        Some(b) if !b.is_null() => out["body"] = b.clone(),
        _ => {}
    }
    out
}

/// Whether a mock's `match` selects a captured outbound hop (the fields that identify one).
fn selects(when: &Value, e: &Exchange) -> bool {
    if e.direction != Direction::Outbound {
        return false;
    }
    let s = |k: &str| when.get(k).and_then(Value::as_str);
    s("method").is_none_or(|m| m.eq_ignore_ascii_case(&e.method))
        && s("host").is_none_or(|h| crate::rules::host_matches(h, &e.host))
        && s("hostSuffix").is_none_or(|h| {
            let (host, suffix) = (e.host.to_ascii_lowercase(), h.to_ascii_lowercase());
            let name = host.split(':').next().unwrap_or("");
            name.ends_with(suffix.trim_start_matches('.'))
        })
        && s("service").is_none_or(|v| e.service.as_deref() == Some(v))
        && s("path").is_none_or(|p| p == e.path)
        && s("pathPrefix").is_none_or(|p| e.path.starts_with(p))
        && s("direction").is_none_or(|d| d.eq_ignore_ascii_case("outbound"))
}

/// A case's assertions, ready to check each answer against its captured response.
#[derive(Debug, Clone)]
pub struct Checks {
    assertions: Assertions,
    include: Vec<(String, regex::Regex)>,
    mode: BodyMode,
    ignore: Vec<String>,
}

impl Checks {
    /// From the merged settings (json-subset when the suite names no body mode).
    pub fn new(settings: &CaseSettings) -> Self {
        let assertions = settings.assertions.clone().unwrap_or_default();
        let include = assertions
            .headers
            .as_ref()
            .and_then(|h| h.include.as_ref())
            .map(|m| {
                m.iter()
                    // Regexes were checked when the suite was read.
                    .filter_map(|(k, v)| regex::Regex::new(v).ok().map(|r| (k.clone(), r)))
                    .collect()
            })
            .unwrap_or_default();
        let body = assertions.body.clone().unwrap_or_default();
        Checks {
            mode: body.mode.unwrap_or(BodyMode::JsonSubset),
            ignore: body
                .ignore
                .iter()
                .chain(&body.redactions)
                .flatten()
                .cloned()
                .collect(),
            include,
            assertions,
        }
    }

    /// Status, header and body failures of one answer; `n` and `of` label them (`request
    /// #n`) when the case replays more than one request. Without a captured response (the
    /// request came from the suite) the status must be a 2xx unless the suite says which, and
    /// a `body.mode` the suite names explicitly fails: there is nothing to compare with.
    pub fn check(
        &self,
        expected: Option<&Message>,
        actual: &Message,
        n: usize,
        of: usize,
    ) -> Vec<Failure> {
        let mut out = Vec::new();
        let status = match (&self.assertions.status, expected) {
            (Some(spec), _) => assert::check_status(Some(spec), 0, actual.status),
            (None, Some(e)) => assert::check_status(None, e.status, actual.status),
            (None, None) => {
                assert::check_status(Some(&StatusSpec::Range("2xx".into())), 0, actual.status)
            }
        };
        out.extend(status);
        out.extend(assert::check_headers(&self.include, &actual.headers));
        match expected {
            Some(e) => out.extend(assert::check_body(
                self.mode,
                &self.ignore,
                &e.body,
                &actual.body,
            )),
            None => {
                let named = self.assertions.body.as_ref().and_then(|b| b.mode);
                if let Some(mode) = named.filter(|m| *m != BodyMode::Ignore) {
                    out.push(fail(
                        "body",
                        format!(
                            "body.mode {} compares with the captured response, and this case has none (its request comes from the suite); use body.custom or mode: ignore (the original runner skips this check silently)",
                            mode.as_str()
                        ),
                    ));
                }
            }
        }
        out.into_iter().map(|f| label(f, n, of)).collect()
    }

    /// The check hooks the suite names (`assertions.body.hook`, `assertions.headers.hook`).
    pub fn hooks(&self) -> Vec<(&str, HookKind)> {
        let body = self
            .assertions
            .body
            .as_ref()
            .and_then(|b| b.hook.as_deref())
            .map(|h| (h, HookKind::AssertBody));
        let headers = self
            .assertions
            .headers
            .as_ref()
            .and_then(|h| h.hook.as_deref())
            .map(|h| (h, HookKind::AssertHeaders));
        body.into_iter().chain(headers).collect()
    }
}

/// Prefixes `request #n: ` when a case replays several requests.
pub fn label(mut f: Failure, n: usize, of: usize) -> Failure {
    if of > 1 {
        f.message = format!("request #{n}: {}", f.message);
    }
    f
}

/// The payload of a check hook for answer `n` (`captured` is `null` when the request came
/// from the suite).
pub fn check_payload(
    n: usize,
    request: &Map<String, Value>,
    expected: Option<&Message>,
    actual: &Message,
) -> Value {
    json!({
        "index": n,
        "request": request.clone(),
        "captured": expected.map(Message::to_json),
        "actual": actual.to_json(),
    })
}

/// Turns a check hook's answer into a failure, if it reports one; `hook` is how the hook is
/// named in the message.
pub fn check_answer(hook: &str, kind: HookKind, answer: &Value) -> Option<Failure> {
    match hooks::verdict(hook, answer) {
        Ok(None) => None,
        Ok(Some(message)) => Some(Failure {
            kind: kind.as_str().into(),
            message: format!("{hook}: {message}"),
            diff: answer
                .get("diff")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }),
        Err(e) => Some(fail("hook", e)),
    }
}

/// Adds the suite, case and kind fields every hook payload carries.
pub fn hook_envelope(
    mut payload: Value,
    kind: HookKind,
    suite: &str,
    case_name: &str,
    case_path: &Path,
) -> Value {
    payload["kind"] = json!(kind.as_str());
    payload["suite"] = json!(suite);
    payload["case"] = json!({"name": case_name, "path": case_path.display().to_string()});
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> CaseSettings {
        crate::yaml::from_str(yaml).unwrap()
    }

    /// A suite resends what the service's client sent, without what a proxy or the harness
    /// added on the way (`via`, the test name, any session alias) or the connection set.
    #[test]
    fn captured_requests_leave_out_connection_proxy_and_session_headers() {
        let ex = Exchange {
            direction: Direction::Inbound,
            service: None,
            session_id: None,
            span_type: None,
            method: "GET".into(),
            scheme: None,
            host: "app".into(),
            path: "/orders".into(),
            query: None,
            request_headers: [
                ("Host", "app"),
                ("via", "1.1 softprobe"),
                ("x-softprobe-test-name", "orders"),
                ("x-sp-session-id", "sess_1"),
                ("accept-encoding", "gzip"),
                ("upgrade", "h2c"),
                ("x-tenant", "acme"),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
            request_body: None,
            status: Some(200),
            response_headers: Vec::new(),
            response_body: None,
            trace_id: crate::case::TraceId([1; 16]),
            span_id: crate::case::SpanId([2; 8]),
            parent_span_id: None,
            name: String::new(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            extra_attributes: Vec::new(),
        };
        let request = captured_request(&ex);
        assert_eq!(request["headers"], json!({"x-tenant": "acme"}));
    }

    #[test]
    fn overrides_replace_fields_and_null_headers_remove() {
        let mut req = Map::new();
        req.insert("method".into(), json!("POST"));
        req.insert("path".into(), json!("/a"));
        req.insert("headers".into(), json!({"x-a": "1", "x-b": "2"}));
        req.insert("body".into(), json!("{}"));
        let s =
            settings("request:\n  path: /b\n  headers: {x-a: null, X-C: '3'}\n  body: {n: 1}\n");
        apply_request_overrides(&mut req, &s);
        assert_eq!(req["path"], "/b");
        assert_eq!(req["method"], "POST");
        assert_eq!(req["headers"], json!({"x-b": "2", "x-c": "3"}));
        assert_eq!(body_bytes(&req["body"]), br#"{"n":1}"#);
    }

    #[test]
    fn mocks_become_rules_and_hook_answers_replace_the_response() {
        let s = settings(
            "mocks:\n- {name: a, match: {host: x.test}, response: {status: 201, headers: {content-length: '2'}, body: {ok: true}}, consume: once, latencyMs: 5}\n- {name: b, match: {path: /p}, source: case}\n",
        );
        let mut pending = plan_mocks(Path::new("c.case.json"), &s, &[]).unwrap();
        let b = pending.pop().unwrap();
        assert!(b.hook().is_none());
        assert_eq!(b.rule(None)["then"], json!({"action": "replay"}));
        let a = pending.pop().unwrap().rule(None);
        assert_eq!(a["then"]["response"]["status"], 201);
        assert_eq!(a["then"]["response"]["headers"], json!({}));
        assert_eq!(a["consume"], "once");
        assert_eq!(a["latencyMs"], 5);

        let s = settings("mocks:\n- {name: h, response: {status: 200}, hook: ./h.sh}\n");
        let m = plan_mocks(Path::new("c.case.json"), &s, &[])
            .unwrap()
            .remove(0);
        let (hook, payload) = m.hook().unwrap();
        assert_eq!(hook, "./h.sh");
        assert_eq!(payload["mock"], "h");
        let rule = m.rule(Some(&json!({"response": {"status": 503}})));
        assert_eq!(rule["then"]["response"]["status"], 503);
    }

    #[test]
    fn checks_label_failures_only_when_there_are_several_requests() {
        let c = Checks::new(&settings(
            "assertions:\n  status: 200\n  headers: {include: {content-type: '^application/json'}}\n",
        ));
        let ok = Message {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{\"a\":1}".to_vec(),
        };
        assert!(c.check(Some(&ok), &ok, 0, 1).is_empty());
        let bad = Message {
            status: 500,
            headers: vec![],
            body: b"{\"a\":2}".to_vec(),
        };
        let f = c.check(Some(&ok), &bad, 1, 2);
        let kinds: Vec<_> = f.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["status", "headers", "body"]);
        assert!(f[0].message.starts_with("request #1: "), "{}", f[0].message);
        assert!(f[2].diff.as_deref().unwrap().contains("$.a"), "{:?}", f[2]);
    }
}
