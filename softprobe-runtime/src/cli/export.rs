//! `softprobe export otlp`: streams each trace document of case files to an OTLP/HTTP
//! collector, so captures can be looked at in Jaeger, Tempo or any OTLP consumer.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::OtlpEncoding;
use super::output::{CliError, ExitCode, Outcome};
use crate::case::{KeyValue, StreamError, TracesData, attributes};

/// `export otlp`.
#[derive(Debug, Args)]
pub struct OtlpArgs {
    /// Case files: a path or a glob such as `cases/**/*.case.json` (repeatable).
    #[arg(long = "case", required = true)]
    pub cases: Vec<String>,
    /// The collector: a base URL (`/v1/traces` is appended) or the full traces URL.
    #[arg(long)]
    pub endpoint: String,
    /// Body encoding.
    #[arg(long, value_enum, default_value = "json")]
    pub encoding: OtlpEncoding,
    /// Extra header for the collector, `name: value` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Re-home every span into this session (its `sp.session.id`), e.g. to feed a capture
    /// session of a softprobe runtime.
    #[arg(long)]
    pub session: Option<String>,
}

pub(crate) fn files(patterns: &[String]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let matches = glob::glob(pattern)
            .map_err(|e| CliError::invalid(format!("bad glob {pattern:?}: {e}")))?;
        let before = out.len();
        for m in matches {
            out.push(m.map_err(|e| CliError::invalid(e.to_string()))?);
        }
        if out.len() == before {
            return Err(CliError::invalid(format!("no file matches {pattern:?}")));
        }
    }
    Ok(out)
}

pub(crate) fn otlp(args: &OtlpArgs) -> Result<Outcome, CliError> {
    let url = if args.endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        args.endpoint.clone()
    } else {
        format!("{}/v1/traces", args.endpoint.trim_end_matches('/'))
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::new(ExitCode::Failure, "client_error", e.to_string()))?;
    let mut sent = 0usize;
    let mut spans = 0usize;
    let mut per_file = Vec::new();
    for file in files(&args.cases)? {
        let source = file.display().to_string();
        // One trace document at a time: the case file's bytes and the document being sent
        // are all that is held, never the whole parsed case.
        let stream = super::read_case_stream(&file)?;
        stream
            .head()
            .map_err(|e| CliError::invalid(e.to_string()))?;
        let traces = stream
            .for_each_trace(|i, mut trace| {
                if let Some(session) = &args.session {
                    rehome(&mut trace, session);
                }
                send(&http, &url, args, &trace, &source, i)?;
                sent += 1;
                spans += trace
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum::<usize>();
                Ok(())
            })
            .map_err(|e| match e {
                StreamError::Case(e) => CliError::invalid(e.to_string()),
                StreamError::Stopped(e) => e,
            })?;
        per_file.push(json!({"file": source, "traces": traces}));
    }
    let human = format!("Exported {sent} trace document(s), {spans} span(s), to {url}");
    Ok(Outcome::ok(
        json!({"endpoint": url, "traces": sent, "spans": spans, "files": per_file}),
        Some(human),
    ))
}

/// Posts one trace document to the collector.
fn send(
    http: &reqwest::blocking::Client,
    url: &str,
    args: &OtlpArgs,
    trace: &TracesData,
    source: &str,
    i: usize,
) -> Result<(), CliError> {
    let (content_type, body) = match args.encoding {
        OtlpEncoding::Json => (
            "application/json",
            serde_json::to_vec(trace).map_err(|e| CliError::invalid(e.to_string()))?,
        ),
        OtlpEncoding::Protobuf => (
            "application/x-protobuf",
            crate::otlp::encode(trace, crate::otlp::WireFormat::Protobuf),
        ),
    };
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    for h in &args.headers {
        let (name, value) = h.split_once(':').ok_or_else(|| {
            CliError::new(
                ExitCode::Usage,
                "usage",
                format!("--header {h:?}: expected `name: value`"),
            )
        })?;
        req = req.header(name.trim(), value.trim());
    }
    let resp = req.send().map_err(|e| {
        CliError::new(
            ExitCode::Unreachable,
            "collector_unreachable",
            format!("cannot send {source} traces[{i}] to {url}: {e}"),
        )
    })?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        return Err(CliError::new(
            ExitCode::Failure,
            "collector_rejected",
            format!("{url} answered {status} to {source} traces[{i}]: {text}"),
        ));
    }
    Ok(())
}

fn rehome(trace: &mut TracesData, session: &str) {
    let spans = trace
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans);
    for span in spans {
        span.attributes
            .retain(|kv| kv.key != attributes::SESSION_ID);
        span.attributes
            .insert(0, KeyValue::string(attributes::SESSION_ID, session));
    }
}
