//! `softprobe generate case`: asks an OpenAI-compatible chat-completions endpoint for a case
//! file described in words, checks the answer with the case validator, feeds the findings back
//! until it is valid (or the attempts run out), and writes the case atomically.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::inspect;
use super::output::{CliError, ExitCode, Outcome};
use crate::case::validate::{SchemaKind, validate_case};
use crate::case::{Body, Case, Direction, Exchange, SpanId, TraceId};

/// `generate case`.
#[derive(Debug, Args)]
pub struct CaseArgs {
    /// What the case should hold, in words.
    #[arg(long)]
    pub prompt: String,
    /// Where to write the case.
    #[arg(long)]
    pub out: PathBuf,
    /// The JSON Schema sent to the model (default: the case schema this build embeds).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// An example case sent to the model (default: a small built-in checkout case).
    #[arg(long)]
    pub example: Option<PathBuf>,
    /// The chat-completions endpoint: an OpenAI-compatible API base such as
    /// `https://api.openai.com/v1` (`/chat/completions` is added) or the full URL.
    #[arg(long, env = "SOFTPROBE_GENERATE_URL")]
    pub endpoint: Option<String>,
    /// The model name the endpoint expects.
    #[arg(long, env = "SOFTPROBE_GENERATE_MODEL")]
    pub model: Option<String>,
    /// Bearer token for the endpoint (none for a local server).
    #[arg(long, env = "SOFTPROBE_GENERATE_TOKEN", hide_env_values = true)]
    pub endpoint_token: Option<String>,
    /// How many answers to ask for before giving up, the findings of each invalid one being
    /// sent back with the next request.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub attempts: u32,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

const SYSTEM: &str = "You write softprobe case files: JSON documents holding OTLP traces of \
HTTP traffic, one span per hop (the inbound request the application received, and each \
outbound call it made, as children of the inbound span in the same trace). Answer with the \
case file only: one JSON object, no prose. Use 32 hex characters for trace ids and 16 for \
span ids, and put secrets nowhere (write \"[REDACTED]\" instead).";

/// The chat-completions URL for an API base or a full URL.
fn completions_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/chat/completions") {
        base.to_owned()
    } else {
        format!("{base}/chat/completions")
    }
}

/// The JSON object in a model's answer: the whole text, the inside of a fenced block, or from
/// the first `{` to the last `}`.
pub(crate) fn extract_json(answer: &str) -> Option<&str> {
    let text = answer.trim();
    if let Some(start) = text.find("```") {
        let after = &text[start + 3..];
        let body_start = after.find('\n').map_or(0, |i| i + 1);
        let body = &after[body_start..];
        if let Some(end) = body.find("```") {
            let inner = body[..end].trim();
            if inner.starts_with('{') {
                return Some(inner);
            }
        }
    }
    let (start, end) = (text.find('{')?, text.rfind('}')?);
    (start < end).then(|| &text[start..=end])
}

/// A small valid case shown to the model: a checkout calling a payments API.
fn builtin_example() -> Vec<u8> {
    let trace = TraceId([
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ]);
    let inbound_span = SpanId([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
    let start = 1_776_681_022_000_000_000u64;
    let hop = |direction, span, parent, method: &str, host: &str, path: &str| Exchange {
        direction,
        service: Some("checkout-api".into()),
        session_id: None,
        span_type: None,
        method: method.into(),
        scheme: (direction == Direction::Outbound).then(|| "https".into()),
        host: host.into(),
        path: path.into(),
        query: None,
        request_headers: vec![("content-type".into(), "application/json".into())],
        request_body: None,
        status: Some(200),
        response_headers: vec![("content-type".into(), "application/json".into())],
        response_body: None,
        trace_id: trace,
        span_id: span,
        parent_span_id: parent,
        name: format!("HTTP {method}"),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 40_000_000,
        extra_attributes: vec![],
    };
    let mut inbound = hop(
        Direction::Inbound,
        inbound_span,
        None,
        "POST",
        "checkout.local",
        "/checkout",
    );
    inbound.request_body = Some(Body::Text(r#"{"amount":1000,"currency":"USD"}"#.into()));
    inbound.response_body = Some(Body::Text(r#"{"orderId":"ord_1","status":"paid"}"#.into()));
    let mut outbound = hop(
        Direction::Outbound,
        SpanId([0x5f, 0xb3, 0x97, 0xbe, 0x34, 0xd2, 0x6b, 0x51]),
        Some(inbound_span),
        "POST",
        "api.payments.example",
        "/v1/charges",
    );
    outbound
        .request_headers
        .push(("authorization".into(), "[REDACTED]".into()));
    outbound.request_body = Some(Body::Text(r#"{"amount":1000,"currency":"usd"}"#.into()));
    outbound.response_body = Some(Body::Text(r#"{"id":"ch_1","status":"succeeded"}"#.into()));
    outbound.start_time_unix_nano = start + 5_000_000;
    outbound.end_time_unix_nano = start + 30_000_000;
    let mut case = Case::new("checkout-example", "2026-04-20T10:30:22Z");
    case.push_exchanges(&[inbound, outbound]);
    case.to_json_bytes()
}

fn read_text(path: &std::path::Path) -> Result<String, CliError> {
    String::from_utf8(super::read_file(path)?)
        .map_err(|_| CliError::invalid(format!("{} is not UTF-8 text", path.display())))
}

pub(crate) fn case(args: &CaseArgs) -> Result<Outcome, CliError> {
    let (Some(endpoint), Some(model)) = (
        args.endpoint.as_deref().filter(|s| !s.trim().is_empty()),
        args.model.as_deref().filter(|s| !s.trim().is_empty()),
    ) else {
        return Err(CliError::new(
            ExitCode::Usage,
            "generate_not_configured",
            "no model endpoint configured: set SOFTPROBE_GENERATE_URL (an OpenAI-compatible API base, e.g. https://api.openai.com/v1) and SOFTPROBE_GENERATE_MODEL, and SOFTPROBE_GENERATE_TOKEN if the endpoint needs one (or pass --endpoint, --model, --endpoint-token)",
        ));
    };
    let schema = match &args.schema {
        Some(path) => {
            let text = read_text(path)?;
            serde_json::from_str::<Value>(&text).map_err(|e| {
                CliError::invalid(format!("{}: not a JSON Schema: {e}", path.display()))
            })?;
            text
        }
        None => serde_json::to_string_pretty(SchemaKind::Case.schema()).unwrap_or_default(),
    };
    let example = match &args.example {
        Some(path) => {
            let bytes = super::read_file(path)?;
            let source = path.display().to_string();
            let report = validate_case(&bytes, &source);
            if !report.is_valid() {
                return Err(CliError::invalid(format!(
                    "the example case is invalid:\n{}",
                    report.to_string().trim_end()
                )));
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => String::from_utf8_lossy(&builtin_example()).into_owned(),
    };
    let url = completions_url(endpoint);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .map_err(|e| CliError::new(ExitCode::Failure, "client_error", e.to_string()))?;
    let mut messages = vec![
        json!({"role": "system", "content": format!(
            "{SYSTEM}\n\nThe JSON Schema of a case file:\n{schema}\n\nAn example case file:\n{example}"
        )}),
        json!({"role": "user", "content": args.prompt}),
    ];
    let out_name = args.out.display().to_string();
    let mut last_problem = String::new();
    for attempt in 1..=args.attempts {
        let answer = ask(
            &http,
            &url,
            model,
            args.endpoint_token.as_deref(),
            &messages,
        )?;
        messages.push(json!({"role": "assistant", "content": answer}));
        let Some(candidate) = extract_json(&answer) else {
            last_problem = "the answer holds no JSON object".to_owned();
            messages.push(json!({"role": "user", "content":
                "That answer holds no JSON object. Answer with the case file only: one JSON object."}));
            continue;
        };
        let report = validate_case(candidate.as_bytes(), &out_name);
        if !report.is_valid() {
            last_problem = report.to_string().trim_end().to_owned();
            messages.push(json!({"role": "user", "content": format!(
                "That case file is invalid. The validator found:\n{last_problem}\n\nAnswer with the whole corrected case file only."
            )}));
            continue;
        }
        // The validator accepted it, so the model reads it; written in canonical form.
        let case = Case::from_slice_named(candidate.as_bytes(), &out_name)
            .map_err(|e| CliError::new(ExitCode::Failure, "generate_failed", e.to_string()))?;
        case.write(&args.out)
            .map_err(|e| CliError::new(ExitCode::Failure, "write_failed", e.to_string()))?;
        let rows = inspect::rows(&inspect::ordered_exchanges(&case, &out_name)?);
        let human = format!(
            "Generated {out_name} after {attempt} attempt(s).\n{}",
            inspect::summary(&case, &rows, false)
        );
        return Ok(Outcome::ok(
            json!({
                "out": out_name,
                "caseId": case.case_id,
                "attempts": attempt,
                "spans": rows.len(),
                "rows": rows,
            }),
            Some(human),
        ));
    }
    Err(CliError::new(
        ExitCode::Failure,
        "generate_failed",
        format!(
            "no valid case after {} attempt(s); {out_name} was not written. The last answer:\n{last_problem}",
            args.attempts
        ),
    )
    .with_field("attempts", json!(args.attempts)))
}

/// One chat-completions request; the text of the first choice.
fn ask(
    http: &reqwest::blocking::Client,
    url: &str,
    model: &str,
    token: Option<&str>,
    messages: &[Value],
) -> Result<String, CliError> {
    let mut req = http.post(url).json(&json!({
        "model": model,
        "messages": messages,
        "temperature": 0,
    }));
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        req = req.bearer_auth(t);
    }
    let resp = req.send().map_err(|e| {
        CliError::new(
            ExitCode::Failure,
            "endpoint_unreachable",
            format!("cannot reach the model endpoint {url}: {e}"),
        )
    })?;
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    if !status.is_success() {
        let preview: String = text.chars().take(500).collect();
        return Err(CliError::new(
            ExitCode::Failure,
            "endpoint_error",
            format!("the model endpoint {url} answered {status}: {preview}"),
        ));
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| {
        CliError::new(
            ExitCode::Failure,
            "endpoint_error",
            format!("the model endpoint {url} answered something other than JSON: {e}"),
        )
    })?;
    body["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            CliError::new(
                ExitCode::Failure,
                "endpoint_error",
                format!("the model endpoint {url} answered without choices[0].message.content"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_is_found_in_fences_prose_or_alone() {
        assert_eq!(extract_json("{\"a\":1}"), Some("{\"a\":1}"));
        assert_eq!(
            extract_json("Here it is:\n```json\n{\"a\": {\"b\": 2}}\n```\nEnjoy."),
            Some("{\"a\": {\"b\": 2}}")
        );
        assert_eq!(
            extract_json("Sure! {\"a\": 1} is the case."),
            Some("{\"a\": 1}")
        );
        assert_eq!(extract_json("no json here"), None);
    }

    #[test]
    fn the_builtin_example_is_a_valid_case() {
        let bytes = builtin_example();
        let report = validate_case(&bytes, "example");
        assert!(report.is_valid(), "{report}");
        let case = Case::from_slice_named(&bytes, "example").unwrap();
        let hops = case.exchanges().unwrap();
        assert_eq!(hops.len(), 2);
        assert_eq!(hops[1].parent_span_id, Some(hops[0].span_id));
    }

    #[test]
    fn endpoints_get_the_completions_path_once() {
        assert_eq!(
            completions_url("https://api.openai.com/v1/"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            completions_url("http://127.0.0.1:9/v1/chat/completions"),
            "http://127.0.0.1:9/v1/chat/completions"
        );
    }
}
