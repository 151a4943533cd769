//! A case file read one trace document at a time, for the commands that rewrite or send a
//! whole case (`softprobe scrub`, `softprobe export`): they never need every span at once.
//!
//! [`CaseStream`] holds the file's bytes. [`CaseStream::head`] gives the case without its
//! traces (every other field, checked as [`Case::read`] checks it), and
//! [`CaseStream::for_each_trace`] hands each trace document to a function as it is parsed
//! and drops it afterwards. So the memory a command needs is the file's bytes and one trace
//! document, where a parsed case takes about twice the file (BENCHMARKS.md, "Scrub and
//! export of a large case"). Parsing from a byte slice rather than from a reader is also
//! several times faster with serde_json, which is why the bytes are held.
//!
//! The `traces` array is nearly all of a large file, so it is found once by a structural
//! scan ([`traces_span`]: strings and brackets only; 0.43-0.47 s for a 400 MB case where
//! serde_json's skip took 1.0-1.2 s) and parsed once, by the walk; the head is parsed from
//! the rest. That took `softprobe scrub`'s CPU time on a 397 MB case from 5.28-5.80 s to
//! 5.21-5.49 s (BENCHMARKS.md, rows 10b and 10c). Anything the
//! scan does not expect, and any error, goes the plain way over the whole document, so
//! error messages name the same JSON path and line either way.

use std::convert::Infallible;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::validate::locate;
use super::{Case, CaseError, TracesData};

/// A case file's bytes, parsed on demand: its head, then its trace documents one by one.
#[derive(Debug, Clone)]
pub struct CaseStream {
    bytes: Vec<u8>,
    source_name: String,
    /// Where the `traces` array's value lies in `bytes`, once looked for; `None` when the
    /// scan gave up (the document then goes the plain way).
    traces: OnceLock<Option<Range<usize>>>,
}

/// Why [`CaseStream::for_each_trace`] stopped early.
#[derive(Debug)]
pub enum StreamError<E> {
    /// The case file is malformed at a trace document (the error names its JSON path).
    Case(CaseError),
    /// The function given a trace document returned this error.
    Stopped(E),
}

impl CaseStream {
    /// Reads a case file (a local path or an `s3://` URL, see [`super::location`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaseError> {
        let path = path.as_ref();
        let bytes = super::location::read_bytes(path)?;
        Ok(Self::from_bytes(bytes, path.display().to_string()))
    }

    /// A case document already in memory; errors name `source_name` as the file.
    pub fn from_bytes(mut bytes: Vec<u8>, source_name: impl Into<String>) -> Self {
        // Some editors save UTF-8 with a byte order mark, which JSON parsers reject.
        if bytes.starts_with(b"\xef\xbb\xbf") {
            bytes.drain(..3);
        }
        CaseStream {
            bytes,
            source_name: source_name.into(),
            traces: OnceLock::new(),
        }
    }

    /// The file name errors use.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The size of the document in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty document (which is not a case).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The case with an empty `traces`: every other field parsed and checked. The traces
    /// are not looked into (their syntax and shape are checked by
    /// [`CaseStream::for_each_trace`]).
    pub fn head(&self) -> Result<Case, CaseError> {
        if let Some(span) = self.traces_span() {
            // The document with `[]` in place of the traces: a few kilobytes to parse.
            let mut rest = Vec::with_capacity(self.bytes.len() - span.len() + 2);
            rest.extend_from_slice(&self.bytes[..span.start]);
            rest.extend_from_slice(b"[]");
            rest.extend_from_slice(&self.bytes[span.end..]);
            let mut de = serde_json::Deserializer::from_slice(&rest);
            if let Ok(head) = super::CaseHead::deserialize(&mut de)
                && de.end().is_ok()
            {
                return Ok(head.0);
            }
            // An error's line and column must be the file's: it is found again below.
        }
        // A refused document is placed by its error's position: only it pays for the scan.
        let mut de = serde_json::Deserializer::from_slice(&self.bytes);
        super::CaseHead::deserialize(&mut de)
            .and_then(|head| de.end().map(|()| head.0))
            .map_err(|err| self.refused(&err))
    }

    /// Parses the trace documents in order and gives each, with its index in `traces`, to
    /// `each`, which owns it; returns how many there were. A malformed trace document is a
    /// [`StreamError::Case`] naming its JSON path, an error of `each` ends the walk as
    /// [`StreamError::Stopped`]. Documents before the failing one have been handed over.
    pub fn for_each_trace<E>(
        &self,
        mut each: impl FnMut(usize, TracesData) -> Result<(), E>,
    ) -> Result<usize, StreamError<E>> {
        let mut stopped = None;
        let result = match self.traces_span() {
            Some(span) => {
                let mut de = serde_json::Deserializer::from_slice(&self.bytes[span]);
                Traces {
                    each: &mut each,
                    stopped: &mut stopped,
                }
                .deserialize(&mut de)
                .and_then(|count| de.end().map(|()| count))
            }
            None => {
                let mut de = serde_json::Deserializer::from_slice(&self.bytes);
                Document {
                    each: &mut each,
                    stopped: &mut stopped,
                }
                .deserialize(&mut de)
            }
        };
        if let Some(err) = stopped {
            return Err(StreamError::Stopped(err));
        }
        result.map_err(|err| StreamError::Case(self.locate(err)))
    }

    /// Where the top-level `traces` value lies, found once ([`traces_span`]).
    fn traces_span(&self) -> Option<Range<usize>> {
        self.traces.get_or_init(|| traces_span(&self.bytes)).clone()
    }

    /// The error of a walk that failed, with its JSON path: the same walk again over the
    /// whole document, handing nothing over, so that the error's position is the document's
    /// ([`CaseStream::refused`]). Only a malformed document pays for the second walk.
    fn locate(&self, plain: serde_json::Error) -> CaseError {
        let mut de = serde_json::Deserializer::from_slice(&self.bytes);
        let mut stopped = None;
        let walked = Document {
            each: &mut |_, _| Ok::<_, Infallible>(()),
            stopped: &mut stopped,
        }
        .deserialize(&mut de);
        match walked {
            Err(err) => self.refused(&err),
            // Both walks parse the same bytes the same way; should they ever disagree, the
            // first error is still reported, at the document's root.
            Ok(_) => CaseError::Parse {
                source_name: self.source_name.clone(),
                json_path: "$".to_owned(),
                line: plain.line(),
                column: plain.column(),
                message: locate::without_position(&plain.to_string()),
            },
        }
    }

    /// `err`, raised reading the whole document from its start, placed in it.
    fn refused(&self, err: &serde_json::Error) -> CaseError {
        super::parse_error(&self.source_name, locate::JsonError::new(&self.bytes, err))
    }
}

impl<E: fmt::Display> fmt::Display for StreamError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Case(err) => err.fmt(f),
            StreamError::Stopped(err) => err.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for StreamError<E> {}

/// The byte range of the value of the top-level object's first `"traces"` key, when it is
/// an array: the object's other values skipped by serde_json, the array by a scan that
/// looks only at quotes, backslashes and square brackets (memchr), since a bracket outside
/// a string is structure whatever the rest of the syntax. `None` for anything unexpected
/// (no such key, a key written with escapes, an unterminated string or array): the
/// callers then parse the whole document, which also names the error. The array's
/// contents are not checked here; the walk that parses them does.
fn traces_span(bytes: &[u8]) -> Option<Range<usize>> {
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_whitespace(bytes, at);
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(bytes, at + 1)?;
        let key = &bytes[at + 1..key_end - 1];
        at = skip_whitespace(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_whitespace(bytes, at + 1);
        if key == b"traces" {
            return (bytes.get(at) == Some(&b'['))
                .then(|| array_end(bytes, at))?
                .map(|end| at..end);
        }
        let mut value =
            serde_json::Deserializer::from_slice(&bytes[at..]).into_iter::<IgnoredAny>();
        value.next()?.ok()?;
        at = skip_whitespace(bytes, at + value.byte_offset());
        if bytes.get(at) != Some(&b',') {
            return None;
        }
        at += 1;
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        at += 1;
    }
    at
}

/// The index after the closing quote of a string whose contents start at `at`.
fn string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes[at] == b'"' {
            return Some(at + 1);
        }
        // A backslash escapes the byte after it (`\"`, `\\`; `\uXXXX` has no quote).
        at += 2;
    }
}

/// The index after the `]` that closes the array opening at `at`.
fn array_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        at += memchr::memchr3(b'"', b'[', b']', bytes.get(at..)?)?;
        match bytes[at] {
            b'"' => at = string_end(bytes, at + 1)?,
            b'[' => {
                depth += 1;
                at += 1;
            }
            _ => {
                depth -= 1;
                at += 1;
                if depth == 0 {
                    return Some(at);
                }
            }
        }
    }
}

/// The top-level object: `traces` walked element by element, every other key skipped.
struct Document<'f, F, E> {
    each: &'f mut F,
    stopped: &'f mut Option<E>,
}

impl<'de, F, E> DeserializeSeed<'de> for Document<'_, F, E>
where
    F: FnMut(usize, TracesData) -> Result<(), E>,
{
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F, E> Visitor<'de> for Document<'_, F, E>
where
    F: FnMut(usize, TracesData) -> Result<(), E>,
{
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a case file object with version, caseId, createdAt and traces")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut count = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "traces" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if count.is_some() {
                return Err(de::Error::custom("duplicate field `traces`"));
            }
            count = Some(map.next_value_seed(Traces {
                each: &mut *self.each,
                stopped: &mut *self.stopped,
            })?);
        }
        count.ok_or_else(|| de::Error::missing_field("traces"))
    }
}

/// The `traces` array, one element at a time.
struct Traces<'f, F, E> {
    each: &'f mut F,
    stopped: &'f mut Option<E>,
}

impl<'de, F, E> DeserializeSeed<'de> for Traces<'_, F, E>
where
    F: FnMut(usize, TracesData) -> Result<(), E>,
{
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F, E> Visitor<'de> for Traces<'_, F, E>
where
    F: FnMut(usize, TracesData) -> Result<(), E>,
{
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of OTLP trace documents")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut index = 0;
        while let Some(trace) = seq.next_element::<TracesData>()? {
            if let Err(err) = (self.each)(index, trace) {
                *self.stopped = Some(err);
                return Err(de::Error::custom("stopped by the trace document's reader"));
            }
            index += 1;
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_TRACES: &str = r#"{
      "caseId": "two",
      "traces": [
        {"resourceSpans": []},
        {"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}
      ],
      "version": "1.0.0",
      "createdAt": "2026-04-20T10:00:00Z",
      "x-note": {"kept": true}
    }"#;

    #[test]
    fn head_and_traces_together_are_the_whole_case() {
        let stream = CaseStream::from_bytes(TWO_TRACES.as_bytes().to_vec(), "two.json");
        let mut head = stream.head().unwrap();
        assert!(head.traces.is_empty());
        let n = stream
            .for_each_trace(|i, trace| {
                assert_eq!(i, head.traces.len());
                head.traces.push(trace);
                Ok::<_, std::convert::Infallible>(())
            })
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(head, Case::from_slice(TWO_TRACES.as_bytes()).unwrap());
    }

    #[test]
    fn a_malformed_trace_names_its_path_and_a_reader_error_stops_the_walk() {
        let bad = TWO_TRACES.replace(r#""spans": []"#, r#""spans": 7"#);
        let stream = CaseStream::from_bytes(bad.into_bytes(), "bad.json");
        stream.head().unwrap();
        let mut seen = 0;
        let err = stream
            .for_each_trace(|_, _| {
                seen += 1;
                Ok::<_, String>(())
            })
            .unwrap_err();
        assert_eq!(seen, 1);
        let text = err.to_string();
        assert!(
            text.starts_with("bad.json: $.traces[1].resourceSpans[0].scopeSpans[0].spans: "),
            "{text}"
        );

        let stream = CaseStream::from_bytes(TWO_TRACES.as_bytes().to_vec(), "two.json");
        let err = stream
            .for_each_trace(|i, _| if i == 0 { Err("enough") } else { Ok(()) })
            .unwrap_err();
        assert!(matches!(err, StreamError::Stopped("enough")), "{err:?}");
    }

    #[test]
    fn the_traces_span_is_found_past_strings_that_look_like_structure() {
        let text = r#" { "x-a": {"k": ["]", "\\\"]"]}, "traces" :
            [{"resourceSpans": [], "x": "[[\"]"}] , "version": "1.0.0"}"#;
        let span = traces_span(text.as_bytes()).unwrap();
        assert_eq!(&text[span], r#"[{"resourceSpans": [], "x": "[[\"]"}]"#);
        // Cases the scan leaves to the plain parse.
        for other in [
            r#"{"tr\u0061ces": []}"#,
            r#"{"traces": {}}"#,
            r#"{"traces": ["unterminated]}"#,
            r#"{"version": "1.0.0"}"#,
            r#"[]"#,
        ] {
            assert_eq!(traces_span(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn a_case_read_by_span_equals_the_case_read_whole() {
        // Traces in the middle, strings with brackets and escaped quotes inside them.
        let text = TWO_TRACES.replace(
            r#"{"resourceSpans": []},"#,
            r#"{"resourceSpans": [], "x-odd": "a ] b [ \" ]"},"#,
        );
        let stream = CaseStream::from_bytes(text.as_bytes().to_vec(), "odd.json");
        assert!(stream.traces_span().is_some());
        let mut head = stream.head().unwrap();
        stream
            .for_each_trace(|_, trace| {
                head.traces.push(trace);
                Ok::<_, std::convert::Infallible>(())
            })
            .unwrap();
        assert_eq!(head, Case::from_slice(text.as_bytes()).unwrap());
    }

    #[test]
    fn errors_name_the_file_s_line_whichever_way_it_was_read() {
        // A bad value after the traces: the head's error is on the file's line 9.
        let late = TWO_TRACES.replace(
            r#""createdAt": "2026-04-20T10:00:00Z""#,
            r#""createdAt": 7"#,
        );
        let err = CaseStream::from_bytes(late.into_bytes(), "late.json")
            .head()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("late.json: $.createdAt: "), "{err}");
        assert!(err.contains("line 8"), "{err}");

        // A syntax error inside the traces with its brackets balanced: the head does not
        // look, the walk says where. (Unbalanced brackets make the scan give up, and the
        // head's plain parse names the place.)
        let broken = TWO_TRACES.replace(r#"{"spans": []}"#, r#"{"spans": [], }"#);
        let stream = CaseStream::from_bytes(broken.into_bytes(), "broken.json");
        stream.head().unwrap();
        let err = stream
            .for_each_trace(|_, _| Ok::<_, String>(()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("broken.json: $.traces[1]"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn missing_traces_is_an_error_in_both_passes() {
        let text = TWO_TRACES.replace(r#""traces""#, r#""tracez""#);
        let stream = CaseStream::from_bytes(text.into_bytes(), "t.json");
        assert!(stream.head().unwrap_err().to_string().contains("traces"));
        let err = stream
            .for_each_trace(|_, _| Ok::<_, String>(()))
            .unwrap_err();
        assert!(err.to_string().contains("missing field `traces`"), "{err}");
    }
}
