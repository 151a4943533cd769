//! Case files: one JSON document per test scenario, holding its captured HTTP hops as OTLP
//! traces plus optional rules and fixtures (`spec/protocol/case-format.md`).
//!
//! [`Case`] is the document, [`otlp`] its trace payloads, [`Exchange`] the typed view of one
//! hop. Reading is lenient about the spellings real encoders produce; writing is canonical,
//! deterministic and atomic ([`write`]). Schema and semantic checks live in [`validate`].

pub mod attributes;
pub mod diff;
mod exchange;
mod ids;
pub mod location;
pub mod otlp;
mod stream;
pub mod validate;
mod write;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub(crate) use exchange::hop_url;
pub use exchange::{Body, Direction, Exchange, ExchangeError};
pub use ids::{IdError, SpanId, TraceId};
pub use otlp::{AnyValue, KeyValue, Resource, ResourceSpans, ScopeSpans, Span, TracesData};
pub use stream::{CaseStream, StreamError};
pub(crate) use write::write_atomic_when;
pub use write::{write_atomic, write_atomic_with};

/// The case format version this crate writes.
pub const CASE_FORMAT_VERSION: &str = "1.0.0";

/// The mode a case suggests when it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseMode {
    /// Recorded from real traffic.
    Capture,
    /// Meant to be replayed.
    Replay,
    /// Generated (by hand or by a tool).
    Generate,
}

/// One case file.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Case schema version (semver), `1.0.0` for files this crate writes.
    pub version: String,
    /// Stable identifier of the scenario.
    pub case_id: String,
    /// Free-form grouping.
    pub suite: Option<String>,
    /// Suggested mode when loaded.
    pub mode: Option<CaseMode>,
    /// When the case was captured, RFC 3339.
    pub created_at: String,
    /// Captured traffic, one OTLP document per entry.
    pub traces: Vec<TracesData>,
    /// Rules applied whenever the case is loaded (shape of `spec/schemas/rule.schema.json`);
    /// the rules engine reads them, the case model keeps them as JSON.
    pub rules: Option<Vec<Value>>,
    /// Fixtures such as `{"name": "auth_token", "value": "..."}`.
    pub fixtures: Option<Vec<Value>>,
    /// Top-level keys this version does not know, kept on round trip.
    pub extra: BTreeMap<String, Value>,
}

/// Where a span sits in a case: indexes into `traces`, `resourceSpans`, `scopeSpans`,
/// `spans`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanLocation {
    /// Index in `traces`.
    pub trace: usize,
    /// Index in `resourceSpans`.
    pub resource: usize,
    /// Index in `scopeSpans`.
    pub scope: usize,
    /// Index in `spans`.
    pub span: usize,
}

impl SpanLocation {
    /// The JSON path of the span, e.g. `$.traces[0].resourceSpans[0].scopeSpans[0].spans[1]`.
    pub fn json_path(&self) -> String {
        format!(
            "$.traces[{}].resourceSpans[{}].scopeSpans[{}].spans[{}]",
            self.trace, self.resource, self.scope, self.span
        )
    }
}

/// What went wrong reading or writing a case file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaseError {
    /// The file could not be read or written.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The JSON is malformed or does not have the case shape.
    #[error("{source_name}: {json_path}: {message} (line {line}, column {column})")]
    Parse {
        /// File name, or `<memory>`.
        source_name: String,
        /// JSON path of the offending value, `$` for the document.
        json_path: String,
        /// Line, 1-based.
        line: usize,
        /// Column, 1-based.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A span is not a readable HTTP hop.
    #[error("{source_name}: {json_path}: {source}")]
    Exchange {
        /// File name, or `<memory>`.
        source_name: String,
        /// JSON path of the span.
        json_path: String,
        /// What is wrong.
        #[source]
        source: ExchangeError,
    },
    /// The location is a URL this build cannot read or write, or the object store refused.
    #[error("{location}: {reason}")]
    Location {
        /// The location as given.
        location: String,
        /// Why it cannot be used.
        reason: String,
    },
}

/// Name used in errors for documents that did not come from a file.
pub const MEMORY_SOURCE: &str = "<memory>";

impl Case {
    /// An empty case with the current format version.
    pub fn new(case_id: impl Into<String>, created_at: impl Into<String>) -> Self {
        Case {
            version: CASE_FORMAT_VERSION.to_owned(),
            case_id: case_id.into(),
            suite: None,
            mode: None,
            created_at: created_at.into(),
            traces: Vec::new(),
            rules: None,
            fixtures: None,
            extra: BTreeMap::new(),
        }
    }

    /// Parses a case from bytes; errors name `<memory>` as the file.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CaseError> {
        Self::from_slice_named(bytes, MEMORY_SOURCE)
    }

    /// Parses a case from bytes; errors name `source_name` as the file.
    pub fn from_slice_named(bytes: &[u8], source_name: &str) -> Result<Self, CaseError> {
        // Some editors save UTF-8 with a byte order mark, which JSON parsers reject.
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        validate::locate::from_json(bytes).map_err(|err| parse_error(source_name, err))
    }

    /// Reads and parses a case file (a local path or an `s3://` URL, see [`location`]). A
    /// local file is parsed as it is read (the document is never whole in memory, only the
    /// parsed case); one it refuses is read again, whole, to name the JSON path of the error.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, CaseError> {
        let path = path.as_ref();
        let source = path.display().to_string();
        if let location::CaseLocation::File(file) = location::CaseLocation::parse(path)? {
            let io = |source| CaseError::Io {
                path: file.to_owned(),
                action: "cannot read case file",
                source,
            };
            let mut reader = std::io::BufReader::new(std::fs::File::open(file).map_err(io)?);
            // Some editors save UTF-8 with a byte order mark, which JSON parsers reject.
            if std::io::BufRead::fill_buf(&mut reader)
                .map_err(io)?
                .starts_with(b"\xef\xbb\xbf")
            {
                std::io::BufRead::consume(&mut reader, 3);
            }
            let mut de = serde_json::Deserializer::from_reader(reader);
            return match Case::deserialize(&mut de).and_then(|case| de.end().map(|()| case)) {
                Ok(case) => Ok(case),
                // An I/O error is the file's, not the document's.
                Err(err) if err.is_io() => Err(io(err.into())),
                // Only a refused document pays for reading it again: its error, placed.
                Err(_) => Self::from_slice_named(&std::fs::read(file).map_err(io)?, &source),
            };
        }
        let bytes = location::read_bytes(path)?;
        Self::from_slice_named(&bytes, &source)
    }

    /// The canonical bytes of the case: stable key order, 2-space indent, trailing newline.
    /// The same case always gives the same bytes.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        // Serializing plain data into a Vec cannot fail.
        write_canonical(&mut out, self).expect("a case always serializes to JSON");
        out
    }

    /// Writes the case atomically: a temporary file in the same directory, flushed to disk,
    /// then renamed over `path`. A crash leaves either the old file or the new one.
    /// Parent directories are created. The bytes are [`Case::to_json_bytes`], streamed into
    /// the file as they are serialized.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), CaseError> {
        write::write_atomic_with(path.as_ref(), |out| write_canonical(out, self))
    }

    /// Writes this case with `exchanges` appended, as [`Case::push_exchanges`] followed by
    /// [`Case::write`] would (the same bytes), but builds the spans of one trace at a time
    /// while they are written: a capture of many hops is written without a second copy of
    /// them in memory. Only a single trace holding most of the hops is copied whole.
    pub fn write_with_exchanges<'a>(
        &self,
        path: impl AsRef<Path>,
        exchanges: impl IntoIterator<Item = &'a Exchange>,
    ) -> Result<(), CaseError> {
        let groups = group_by_trace(exchanges);
        let doc = WithHops {
            case: self,
            groups: &groups,
        };
        write::write_atomic_with(path.as_ref(), |out| write_canonical(out, &doc))
    }

    /// Every span with its location and its resource's `service.name`, in document order.
    pub fn spans(&self) -> impl Iterator<Item = (SpanLocation, &Span, Option<&str>)> {
        self.traces.iter().enumerate().flat_map(|(t, trace)| {
            trace
                .resource_spans
                .iter()
                .enumerate()
                .flat_map(move |(r, rs)| {
                    let service = rs.resource.as_ref().and_then(|res| {
                        res.attributes
                            .iter()
                            .find(|kv| kv.key == attributes::RESOURCE_SERVICE_NAME)
                            .and_then(|kv| kv.value.as_str())
                    });
                    rs.scope_spans.iter().enumerate().flat_map(move |(s, ss)| {
                        ss.spans.iter().enumerate().map(move |(i, span)| {
                            (
                                SpanLocation {
                                    trace: t,
                                    resource: r,
                                    scope: s,
                                    span: i,
                                },
                                span,
                                service,
                            )
                        })
                    })
                })
        })
    }

    /// Every hop of the case, in document order; the first span that is not a readable hop
    /// is an error naming its JSON path. `source_name` names the file in that error.
    pub fn exchanges_named(&self, source_name: &str) -> Result<Vec<Exchange>, CaseError> {
        self.spans()
            .map(|(loc, span, service)| {
                Exchange::from_span(span, service).map_err(|source| CaseError::Exchange {
                    source_name: source_name.to_owned(),
                    json_path: loc.json_path(),
                    source,
                })
            })
            .collect()
    }

    /// [`Case::exchanges_named`] for a case that did not come from a file.
    pub fn exchanges(&self) -> Result<Vec<Exchange>, CaseError> {
        self.exchanges_named(MEMORY_SOURCE)
    }

    /// Appends hops as one trace document per trace id, in first-seen order, grouped under
    /// one resource per service name. This is how a capture session becomes a case.
    pub fn push_exchanges<'a>(&mut self, exchanges: impl IntoIterator<Item = &'a Exchange>) {
        let groups = group_by_trace(exchanges);
        self.traces
            .extend(groups.iter().map(|hops| trace_document(hops)));
    }
}

/// Hops grouped by trace id, the groups in the order their first hop came.
fn group_by_trace<'a>(exchanges: impl IntoIterator<Item = &'a Exchange>) -> Vec<Vec<&'a Exchange>> {
    let mut groups: Vec<Vec<&Exchange>> = Vec::new();
    let mut index: std::collections::HashMap<TraceId, usize> = std::collections::HashMap::new();
    for ex in exchanges {
        let at = *index.entry(ex.trace_id).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[at].push(ex);
    }
    groups
}

/// One trace document of a capture: the hops of one trace under one resource per service
/// name (in first-seen order), each resource with the `softprobe` scope.
fn trace_document(hops: &[&Exchange]) -> TracesData {
    let mut services: Vec<Option<&str>> = Vec::new();
    for ex in hops {
        if !services.contains(&ex.service.as_deref()) {
            services.push(ex.service.as_deref());
        }
    }
    let resource_spans = services
        .into_iter()
        .map(|service| ResourceSpans {
            resource: Some(Resource {
                attributes: service
                    .map(|s| vec![KeyValue::string(attributes::RESOURCE_SERVICE_NAME, s)])
                    .unwrap_or_default(),
                dropped_attributes_count: None,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(serde_json::json!({
                    "name": "softprobe",
                    "version": env!("CARGO_PKG_VERSION"),
                })),
                spans: hops
                    .iter()
                    .filter(|ex| ex.service.as_deref() == service)
                    .map(|ex| ex.to_span())
                    .collect(),
                schema_url: None,
            }],
            schema_url: None,
        })
        .collect();
    TracesData { resource_spans }
}

/// A case's canonical JSON (see [`Case::to_json_bytes`]) written to `out`.
pub(crate) fn write_canonical(
    out: &mut dyn std::io::Write,
    doc: &impl Serialize,
) -> std::io::Result<()> {
    // The pretty printer writes in small pieces (a quote, a key, an indent). Handed to a
    // `dyn Write` one by one, each is a call that cannot be inlined (a sixth of a large
    // scrub's time, BENCHMARKS.md); a buffer of a concrete type takes them inline and hands
    // `out` large pieces.
    use std::io::Write as _;
    let mut buffered = std::io::BufWriter::with_capacity(write::WRITE_BUFFER, out);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"  ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buffered, formatter);
    doc.serialize(&mut ser)?;
    buffered.write_all(b"\n")?;
    buffered.flush()
}

/// A case with hops appended to its traces, serialized one trace document at a time.
struct WithHops<'c, 'a> {
    case: &'c Case,
    groups: &'c [Vec<&'a Exchange>],
}

impl Serialize for WithHops<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.case
            .serialize_with_traces(serializer, &LazyTraces(self))
    }
}

/// The `traces` of a [`WithHops`]: the case's own, then one built per group of hops.
struct LazyTraces<'w, 'c, 'a>(&'w WithHops<'c, 'a>);

impl Serialize for LazyTraces<'_, '_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let doc = self.0;
        let mut seq = serializer.serialize_seq(Some(doc.case.traces.len() + doc.groups.len()))?;
        for trace in &doc.case.traces {
            seq.serialize_element(trace)?;
        }
        for hops in doc.groups {
            seq.serialize_element(&trace_document(hops))?;
        }
        seq.end()
    }
}

/// A document serde_json refused, as the case error naming `source_name`.
fn parse_error(source_name: &str, err: validate::locate::JsonError) -> CaseError {
    CaseError::Parse {
        source_name: source_name.to_owned(),
        json_path: err.json_path,
        line: err.line,
        column: err.column,
        message: err.message,
    }
}

impl Serialize for Case {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_with_traces(serializer, &self.traces)
    }
}

impl Case {
    /// The case's fields in their canonical order, with `traces` standing for its traces.
    pub(crate) fn serialize_with_traces<S: Serializer>(
        &self,
        serializer: S,
        traces: &impl Serialize,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("version", &self.version)?;
        map.serialize_entry("caseId", &self.case_id)?;
        if let Some(suite) = &self.suite {
            map.serialize_entry("suite", suite)?;
        }
        if let Some(mode) = &self.mode {
            map.serialize_entry("mode", mode)?;
        }
        map.serialize_entry("createdAt", &self.created_at)?;
        map.serialize_entry("traces", traces)?;
        if let Some(rules) = &self.rules {
            map.serialize_entry("rules", rules)?;
        }
        if let Some(fixtures) = &self.fixtures {
            map.serialize_entry("fixtures", fixtures)?;
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

const CASE_FIELDS: &[&str] = &[
    "version",
    "caseId",
    "suite",
    "mode",
    "createdAt",
    "traces",
    "rules",
    "fixtures",
];

impl<'de> Deserialize<'de> for Case {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("Case", CASE_FIELDS, CaseVisitor { skip_traces: false })
    }
}

/// A case whose `traces` were skipped over (left empty): [`CaseStream::head`].
struct CaseHead(Case);

impl<'de> Deserialize<'de> for CaseHead {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_struct("Case", CASE_FIELDS, CaseVisitor { skip_traces: true })
            .map(CaseHead)
    }
}

/// The case object's fields; with `skip_traces` its traces are read past, not kept.
struct CaseVisitor {
    skip_traces: bool,
}

impl<'de> Visitor<'de> for CaseVisitor {
    type Value = Case;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a case file object with version, caseId, createdAt and traces")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Case, A::Error> {
        let mut version = None;
        let mut case_id = None;
        let mut suite = None;
        let mut mode = None;
        let mut created_at = None;
        let mut traces = None;
        let mut rules = None;
        let mut fixtures = None;
        let mut extra = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let dup = || de::Error::custom(format!("duplicate field `{key}`"));
            match key.as_str() {
                "version" => set(&mut version, map.next_value()?).map_err(|_| dup())?,
                "caseId" => set(&mut case_id, map.next_value()?).map_err(|_| dup())?,
                "suite" => set(&mut suite, map.next_value()?).map_err(|_| dup())?,
                "mode" => set(&mut mode, map.next_value()?).map_err(|_| dup())?,
                "createdAt" => set(&mut created_at, map.next_value()?).map_err(|_| dup())?,
                "traces" if self.skip_traces => {
                    map.next_value::<de::IgnoredAny>()?;
                    set(&mut traces, Vec::new()).map_err(|_| dup())?
                }
                "traces" => set(&mut traces, map.next_value()?).map_err(|_| dup())?,
                "rules" => set(&mut rules, map.next_value()?).map_err(|_| dup())?,
                "fixtures" => set(&mut fixtures, map.next_value()?).map_err(|_| dup())?,
                _ => {
                    let value: Value = map.next_value()?;
                    if extra.insert(key.clone(), value).is_some() {
                        return Err(dup());
                    }
                }
            }
        }
        Ok(Case {
            version: version.ok_or_else(|| de::Error::missing_field("version"))?,
            case_id: case_id.ok_or_else(|| de::Error::missing_field("caseId"))?,
            suite: suite.flatten(),
            mode: mode.flatten(),
            created_at: created_at.ok_or_else(|| de::Error::missing_field("createdAt"))?,
            traces: traces.ok_or_else(|| de::Error::missing_field("traces"))?,
            rules: rules.flatten(),
            fixtures: fixtures.flatten(),
            extra,
        })
    }
}

fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), ()> {
    if slot.is_some() {
        return Err(());
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
      "version": "1.0.0",
      "caseId": "minimal",
      "createdAt": "2026-04-20T10:00:00Z",
      "traces": [],
      "x-team": {"owner": "payments"}
    }"#;

    #[test]
    fn unknown_top_level_keys_survive_a_round_trip() {
        let case = Case::from_slice(MINIMAL.as_bytes()).unwrap();
        assert_eq!(case.extra["x-team"]["owner"], "payments");
        let bytes = case.to_json_bytes();
        assert!(bytes.ends_with(b"}\n"));
        let again = Case::from_slice(&bytes).unwrap();
        assert_eq!(again, case);
        assert_eq!(again.to_json_bytes(), bytes);
    }

    #[test]
    fn parse_errors_name_the_path_and_position() {
        let text = r#"{
  "version": "1.0.0",
  "caseId": "x",
  "createdAt": "2026-04-20T10:00:00Z",
  "traces": [{"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "5ef", "spanId": "0102030405060708"}
  ]}]}]}]
}"#;
        let from_slice = Case::from_slice_named(text.as_bytes(), "cases/x.case.json");
        let from_file = read_as_file(text.as_bytes(), "x.case.json");
        // Both name the value's closing quote: the id is checked as the string is read.
        for (msg, column) in [
            (from_slice.unwrap_err().to_string(), 21),
            (format!("cases/{}", from_file.unwrap_err()), 21),
        ] {
            assert!(
                msg.starts_with(
                    "cases/x.case.json: $.traces[0].resourceSpans[0].scopeSpans[0].spans[0].traceId: invalid trace id \"5ef\""
                ),
                "{msg}"
            );
            assert!(
                msg.ends_with(&format!("(line 6, column {column})")),
                "{msg}"
            );
        }
    }

    /// A value checked after it is read (an id, a count) is named by its own path even as
    /// the last member of its object, where the object's end follows it.
    #[test]
    fn a_bad_last_member_is_named_by_its_path() {
        let span = |fields: &str| {
            format!(
                r#"{{"version": "1.0.0", "caseId": "x", "createdAt": "2026-04-20T10:00:00Z",
  "traces": [{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{{{fields}}}]}}]}}]}}]}}"#
            )
        };
        let spans = "$.traces[0].resourceSpans[0].scopeSpans[0].spans[0]";
        for (fields, member, message) in [
            (
                r#""spanId": "0102030405060708", "traceId": "zz""#,
                "traceId",
                "invalid trace id \"zz\"",
            ),
            (
                r#""traceId": "5b8efff798038103d269b633813fc60c", "spanId": "01""#,
                "spanId",
                "invalid span id",
            ),
            (
                r#""parentSpanId": "xyz""#,
                "parentSpanId",
                "invalid span id",
            ),
            (
                r#""droppedAttributesCount": -1"#,
                "droppedAttributesCount",
                "-1 is not a valid count",
            ),
        ] {
            let text = span(fields);
            let err = Case::from_slice_named(text.as_bytes(), "c.json")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("c.json: {spans}.{member}: {message}")),
                "{err}"
            );
            let err = read_as_file(text.as_bytes(), "c.json").unwrap_err();
            assert!(
                err.starts_with(&format!("c.json: {spans}.{member}: {message}")),
                "{err}"
            );
        }
    }

    /// [`Case::read`] of `bytes` written to a file `name` in a directory of its own; an error
    /// as text, the file named without that directory.
    fn read_as_file(bytes: &[u8], name: &str) -> Result<Case, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        Case::read(&path).map_err(|e| {
            e.to_string()
                .replacen(&format!("{}/", dir.path().display()), "", 1)
        })
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../fixtures/cases/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn a_case_read_as_it_streams_equals_the_one_parsed_from_bytes() {
        let bytes = fixture("with-rules-and-fixtures.case.json");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.case.json");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            Case::read(&path).unwrap(),
            Case::from_slice(&bytes).unwrap()
        );
        let text = format!("{MINIMAL} trailing");
        let err = read_as_file(text.as_bytes(), "t.json").unwrap_err();
        assert!(err.starts_with("t.json: $: trailing characters"), "{err}");
    }

    #[test]
    fn a_capture_streamed_to_disk_has_the_bytes_of_the_built_case() {
        let bytes = fixture("checkout.case.json");
        let source = Case::from_slice(&bytes).unwrap();
        let hops = source.exchanges().unwrap();
        assert!(hops.len() > 2, "the fixture has several hops");
        // Hops of several traces and services, arriving interleaved, some of them twice.
        let arrival: Vec<&Exchange> = hops.iter().chain(hops.iter().rev()).collect();
        // A case that already has traces, rules and unknown keys keeps them in front.
        let header = Case::from_slice(&fixture("with-rules-and-fixtures.case.json")).unwrap();
        let mut built = header.clone();
        built.push_exchanges(arrival.iter().copied());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("streamed.case.json");
        header
            .write_with_exchanges(&path, arrival.iter().copied())
            .unwrap();
        let streamed = std::fs::read(&path).unwrap();
        assert_eq!(
            String::from_utf8(streamed).unwrap(),
            String::from_utf8(built.to_json_bytes()).unwrap()
        );
        built.write(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), built.to_json_bytes());
        assert!(built.traces.len() > header.traces.len());
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend_from_slice(MINIMAL.as_bytes());
        assert_eq!(Case::from_slice(&bytes).unwrap().case_id, "minimal");
        assert_eq!(read_as_file(&bytes, "bom.json").unwrap().case_id, "minimal");
    }

    #[test]
    fn missing_required_field_is_named() {
        let err = Case::from_slice(br#"{"version": "1.0.0", "traces": []}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `caseId`"), "{err}");
    }
}
