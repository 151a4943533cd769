//! A case file read one trace document at a time, for the commands that rewrite or send a
//! whole case (`softprobe scrub`, `softprobe export`): they never need every span at once.
//!
//! [`CaseStream`] holds the file's bytes and parses them twice: [`CaseStream::head`] gives
//! the case without its traces (every other field, checked as [`Case::read`] checks it, the
//! traces only as JSON syntax), and [`CaseStream::for_each_trace`] hands each trace document
//! to a function as it is parsed and drops it afterwards. So the memory a command needs is
//! the file's bytes and one trace document, where a parsed case takes about twice the file
//! (BENCHMARKS.md, "Scrub and export of a large case"). Parsing from a byte slice rather than
//! from a reader is also several times faster with serde_json, which is why the bytes are held.

use std::convert::Infallible;
use std::fmt;
use std::path::Path;

use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Case, CaseError, TracesData};

/// A case file's bytes, parsed on demand: its head, then its trace documents one by one.
#[derive(Debug, Clone)]
pub struct CaseStream {
    bytes: Vec<u8>,
    source_name: String,
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

    /// The case with an empty `traces`: every other field parsed and checked, the traces
    /// only skipped over (their JSON syntax checked, not their shape).
    pub fn head(&self) -> Result<Case, CaseError> {
        // Plain serde_json first; serde_path_to_error's tracking of every key and element
        // costs a good share of a large file's parse, so only a document that failed is
        // parsed again with it, to name the error's place.
        let mut de = serde_json::Deserializer::from_slice(&self.bytes);
        if let Ok(head) = super::CaseHead::deserialize(&mut de) {
            super::document_end(de, &self.source_name)?;
            return Ok(head.0);
        }
        let mut de = serde_json::Deserializer::from_slice(&self.bytes);
        let result: Result<super::CaseHead, _> = serde_path_to_error::deserialize(&mut de);
        let head = result.map_err(|err| super::parse_error(&self.source_name, err))?;
        super::document_end(de, &self.source_name)?;
        Ok(head.0)
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
        let mut de = serde_json::Deserializer::from_slice(&self.bytes);
        let result = Document {
            each: &mut each,
            stopped: &mut stopped,
        }
        .deserialize(&mut de);
        if let Some(err) = stopped {
            return Err(StreamError::Stopped(err));
        }
        result.map_err(|err| StreamError::Case(self.locate(err)))
    }

    /// The error of a walk that failed, with its JSON path: the same walk again, through
    /// serde_path_to_error this time, handing nothing over. Only a malformed document pays
    /// for the tracking.
    fn locate(&self, plain: serde_json::Error) -> CaseError {
        let mut de = serde_json::Deserializer::from_slice(&self.bytes);
        let mut track = serde_path_to_error::Track::new();
        let mut stopped = None;
        let result = Document {
            each: &mut |_, _| Ok::<_, Infallible>(()),
            stopped: &mut stopped,
        }
        .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
        let (path, err) = match result {
            Err(err) => (track.path(), err),
            // Both walks parse the same bytes the same way; should they ever disagree, the
            // first error is still reported, at the document's root.
            Ok(_) => (serde_path_to_error::Track::new().path(), plain),
        };
        super::parse_error(
            &self.source_name,
            serde_path_to_error::Error::new(path, err),
        )
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
