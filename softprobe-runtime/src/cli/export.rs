//! `softprobe export otlp`: streams the trace documents of case files to an OTLP/HTTP
//! collector, so captures can be looked at in Jaeger, Tempo or any OTLP consumer. Each POST
//! carries the `resourceSpans` of as many consecutive trace documents of one file as fit in
//! [`BATCH_BYTES`].

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::OtlpEncoding;
use super::output::{CliError, ExitCode, Outcome};
use crate::case::{KeyValue, StreamError, TracesData, attributes};
use crate::control::DEFAULT_BODY_LIMIT;

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

/// The most bytes one POST carries: trace documents are sent several to a request (an OTLP
/// `ExportTraceServiceRequest` holds any number of `resourceSpans`) up to this budget. A
/// quarter of the runtime's own request body limit ([`DEFAULT_BODY_LIMIT`], 16 MiB), so a
/// runtime with its default settings takes every request, as does the OpenTelemetry
/// Collector's OTLP/HTTP receiver (20 MiB by default); 4 MiB is already large enough that
/// the round trips cost little next to encoding the spans. A single trace document larger
/// than this is sent alone.
pub(crate) const BATCH_BYTES: usize = DEFAULT_BODY_LIMIT / 4;

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
    let headers = parse_headers(&args.headers)?;
    let mut post = Post {
        http: &http,
        url: &url,
        encoding: args.encoding,
        headers: &headers,
        requests: 0,
    };
    let mut sent = 0usize;
    let mut spans = 0usize;
    let mut per_file = Vec::new();
    for file in files(&args.cases)? {
        let source = file.display().to_string();
        // One trace document at a time: the case file's bytes, the document being encoded
        // and the request being filled are all that is held, never the whole parsed case.
        let stream = super::read_case_stream(&file)?;
        stream
            .head()
            .map_err(|e| CliError::invalid(e.to_string()))?;
        let mut batch = Batch::new(args.encoding);
        let walked = stream.for_each_trace(|i, mut trace| {
            if let Some(session) = &args.session {
                rehome(&mut trace, session);
            }
            let piece = batch.encode(&trace);
            if batch.would_overflow(&piece) {
                post.send(batch.take(), &source)?;
            }
            batch.push(i, &piece);
            sent += 1;
            spans += trace
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum::<usize>();
            Ok(())
        });
        // The documents before a malformed one are sent, as they were when each went alone.
        let traces = match walked {
            Ok(traces) => traces,
            Err(StreamError::Case(e)) => {
                if !batch.is_empty() {
                    post.send(batch.take(), &source)?;
                }
                return Err(CliError::invalid(e.to_string()));
            }
            Err(StreamError::Stopped(e)) => return Err(e),
        };
        if !batch.is_empty() {
            post.send(batch.take(), &source)?;
        }
        per_file.push(json!({"file": source, "traces": traces}));
    }
    let requests = post.requests;
    let human = format!(
        "Exported {sent} trace document(s), {spans} span(s), to {url} in {requests} request(s)"
    );
    Ok(Outcome::ok(
        json!({"endpoint": url, "traces": sent, "spans": spans, "requests": requests, "files": per_file}),
        Some(human),
    ))
}

fn parse_headers(headers: &[String]) -> Result<Vec<(String, String)>, CliError> {
    headers
        .iter()
        .map(|h| {
            let (name, value) = h.split_once(':').ok_or_else(|| {
                CliError::new(
                    ExitCode::Usage,
                    "usage",
                    format!("--header {h:?}: expected `name: value`"),
                )
            })?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The body of one export request being filled: the encoded `resourceSpans` of consecutive
/// trace documents of one case file, `traces[first]` to `traces[last]`.
struct Batch {
    encoding: OtlpEncoding,
    body: Vec<u8>,
    first: usize,
    last: usize,
    documents: usize,
}

/// A full batch, ready to be posted.
struct Sealed {
    body: Vec<u8>,
    first: usize,
    last: usize,
}

/// How an OTLP/JSON body opens and closes around its `resourceSpans`.
const JSON_OPEN: &[u8] = b"{\"resourceSpans\":[";
const JSON_CLOSE: &[u8] = b"]}";

impl Batch {
    fn new(encoding: OtlpEncoding) -> Self {
        let mut batch = Batch {
            encoding,
            body: Vec::new(),
            first: 0,
            last: 0,
            documents: 0,
        };
        batch.open();
        batch
    }

    fn open(&mut self) {
        self.body.clear();
        if matches!(self.encoding, OtlpEncoding::Json) {
            self.body.extend_from_slice(JSON_OPEN);
        }
        self.documents = 0;
    }

    fn is_empty(&self) -> bool {
        self.documents == 0
    }

    /// One trace document's share of a request body. JSON: its `resourceSpans` elements,
    /// comma-separated, without the enclosing object. Protobuf: the document encoded whole,
    /// since `TracesData` messages concatenated are one message holding all their
    /// `resourceSpans` (a repeated field's encodings append).
    fn encode(&self, trace: &TracesData) -> Vec<u8> {
        match self.encoding {
            OtlpEncoding::Json => {
                let mut piece = Vec::new();
                for (n, rs) in trace.resource_spans.iter().enumerate() {
                    if n > 0 {
                        piece.push(b',');
                    }
                    // Plain data always serializes.
                    serde_json::to_writer(&mut piece, rs).expect("resource spans serialize");
                }
                piece
            }
            OtlpEncoding::Protobuf => crate::otlp::encode(trace, crate::otlp::WireFormat::Protobuf),
        }
    }

    /// Whether adding `piece` would take a non-empty batch over [`BATCH_BYTES`].
    fn would_overflow(&self, piece: &[u8]) -> bool {
        !self.is_empty() && self.body.len() + piece.len() + 1 + JSON_CLOSE.len() > BATCH_BYTES
    }

    fn push(&mut self, index: usize, piece: &[u8]) {
        if self.is_empty() {
            self.first = index;
        }
        let json = matches!(self.encoding, OtlpEncoding::Json);
        if json && !piece.is_empty() && self.body.len() > JSON_OPEN.len() {
            self.body.push(b',');
        }
        self.body.extend_from_slice(piece);
        self.last = index;
        self.documents += 1;
    }

    /// The filled body, closed; the batch starts again empty.
    fn take(&mut self) -> Sealed {
        if matches!(self.encoding, OtlpEncoding::Json) {
            self.body.extend_from_slice(JSON_CLOSE);
        }
        let sealed = Sealed {
            body: std::mem::take(&mut self.body),
            first: self.first,
            last: self.last,
        };
        self.open();
        sealed
    }
}

/// Posts batches to the collector and counts them.
struct Post<'a> {
    http: &'a reqwest::blocking::Client,
    url: &'a str,
    encoding: OtlpEncoding,
    headers: &'a [(String, String)],
    requests: usize,
}

impl Post<'_> {
    fn send(&mut self, batch: Sealed, source: &str) -> Result<(), CliError> {
        let url = self.url;
        let what = if batch.first == batch.last {
            format!("{source} traces[{}]", batch.first)
        } else {
            format!("{source} traces[{}] to traces[{}]", batch.first, batch.last)
        };
        let content_type = match self.encoding {
            OtlpEncoding::Json => "application/json",
            OtlpEncoding::Protobuf => "application/x-protobuf",
        };
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(batch.body);
        for (name, value) in self.headers {
            req = req.header(name, value);
        }
        self.requests += 1;
        let resp = req.send().map_err(|e| {
            CliError::new(
                ExitCode::Unreachable,
                "collector_unreachable",
                format!("cannot send {what} to {url}: {e}"),
            )
        })?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().unwrap_or_default();
            return Err(CliError::new(
                ExitCode::Failure,
                "collector_rejected",
                format!("{url} answered {status} to {what}: {text}"),
            ));
        }
        Ok(())
    }
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
