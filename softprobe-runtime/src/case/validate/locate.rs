//! Where in a document: from a JSON path back to a line and column in the source text, and
//! from the position of a serde_json error to the JSON path of the value it was reading.
//!
//! Every finding names a JSON path; people need the line. JSON sources are located through
//! `jsonc-parser`'s AST ranges, YAML sources through `softprobe_suite_yaml::document` (which
//! also builds the JSON value the schema sees), so schema and semantic findings share one
//! locator.
//!
//! The typed models (case, trace documents, rules, policies) are read by [`from_json`]:
//! serde_json's deserializer alone, so each model is compiled for one deserializer. A
//! document it refuses is scanned again with `jsonc-parser`'s tokenizer up to the error's
//! position to name the JSON path ([`path_at`]): only a failed document pays for it, and no
//! path-tracking copy of the models is compiled.

use jsonc_parser::ast;
use jsonc_parser::common::Ranged as _;
use jsonc_parser::tokens::Token;
use serde::de::DeserializeOwned;

pub(crate) use softprobe_suite_yaml::document::{
    Locator, Position, YamlError, parse_yaml, yaml_document,
};
pub(crate) use softprobe_suite_yaml::path::{Segment, child, render};

/// Locates a JSON text. The text must already be known to be valid JSON; a text the AST
/// parser still rejects yields an empty locator (everything at 1:1).
pub(crate) fn for_json(text: &str) -> Locator {
    let mut locator = Locator::default();
    let parse_options = jsonc_parser::ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let Ok(parsed) = jsonc_parser::parse_to_ast(text, &Default::default(), &parse_options) else {
        return locator;
    };
    let Some(root) = parsed.value else {
        return locator;
    };
    let lines = LineIndex::new(text);
    locator.insert("$".to_owned(), lines.position(root.range().start));
    walk_json(&mut locator, &root, "$".to_owned(), &lines);
    locator
}

/// The JSON paths of the repeated keys of a JSON text, in the order they appear (each at
/// its repetition), found by one pass of `jsonc-parser`'s tokenizer: serde_json keeps the
/// last of repeated keys without a word, and a valid document must not pay for a full
/// [`for_json`] locator to learn that it has none. A path is built only for a repeated key.
pub(crate) fn repeated_keys(text: &str) -> Vec<String> {
    use std::borrow::Cow;
    /// One open container: an object with its keys so far and the member being read, or an
    /// array with the index of the element being read.
    enum Frame<'a> {
        Object {
            keys: Vec<Cow<'a, str>>,
            member: Option<Cow<'a, str>>,
        },
        Array(usize),
    }
    let mut scanner = jsonc_parser::Scanner::new(text, &Default::default());
    let mut open: Vec<Frame<'_>> = Vec::new();
    let mut repeated = Vec::new();
    while let Ok(Some(token)) = scanner.scan() {
        match token {
            Token::OpenBrace => open.push(Frame::Object {
                keys: Vec::new(),
                member: None,
            }),
            Token::OpenBracket => open.push(Frame::Array(0)),
            Token::CloseBrace | Token::CloseBracket => {
                open.pop();
            }
            Token::Comma => match open.last_mut() {
                Some(Frame::Object { member, .. }) => *member = None,
                Some(Frame::Array(index)) => *index += 1,
                None => {}
            },
            Token::String(key) => {
                let repeats = match open.last() {
                    // A key: the object is waiting for its next member.
                    Some(Frame::Object { keys, member: None }) => keys.contains(&key),
                    // A string value.
                    _ => continue,
                };
                if repeats {
                    let mut path: Vec<Segment> = open[..open.len() - 1]
                        .iter()
                        .map(|frame| match frame {
                            Frame::Object { member, .. } => {
                                Segment::Key(member.as_deref().unwrap_or_default().to_owned())
                            }
                            Frame::Array(index) => Segment::Index(*index),
                        })
                        .collect();
                    path.push(Segment::Key(key.clone().into_owned()));
                    repeated.push(render(&path));
                }
                if let Some(Frame::Object { keys, member }) = open.last_mut() {
                    if !repeats {
                        keys.push(key.clone());
                    }
                    *member = Some(key);
                }
            }
            _ => {}
        }
    }
    repeated
}

fn walk_json(locator: &mut Locator, value: &ast::Value<'_>, path: String, lines: &LineIndex<'_>) {
    match value {
        ast::Value::Object(obj) => {
            for prop in &obj.properties {
                let name = match &prop.name {
                    ast::ObjectPropName::String(s) => s.value.to_string(),
                    ast::ObjectPropName::Word(w) => w.value.to_owned(),
                };
                let p = child(&path, &Segment::Key(name));
                let pos = lines.position(prop.range.start);
                locator.insert(p.clone(), pos);
                walk_json(locator, &prop.value, p, lines);
            }
        }
        ast::Value::Array(arr) => {
            for (i, element) in arr.elements.iter().enumerate() {
                let p = child(&path, &Segment::Index(i));
                locator.insert(p.clone(), lines.position(element.range().start));
                walk_json(locator, element, p, lines);
            }
        }
        _ => {}
    }
}

/// Byte offset → line/column.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn position(&self, offset: usize) -> Position {
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let start = self.starts[line - 1];
        let end = offset.min(self.text.len());
        let column = self
            .text
            .get(start..end)
            .map_or(end - start, |s| s.chars().count())
            + 1;
        Position { line, column }
    }
}

/// A JSON document serde_json refused, placed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    /// JSON path of the value being read when it failed; `$` for the document itself.
    pub(crate) json_path: String,
    /// 1-based line, as serde_json reports it.
    pub(crate) line: usize,
    /// 1-based column in bytes, as serde_json reports it.
    pub(crate) column: usize,
    /// serde_json's message without its trailing position.
    pub(crate) message: String,
    /// What kind of error: syntax, a document cut short, or the wrong shape.
    pub(crate) category: serde_json::error::Category,
}

impl JsonError {
    /// `err`, which serde_json raised reading `bytes` from their start (through any visitor
    /// or seed), placed in them.
    pub(crate) fn new(bytes: &[u8], err: &serde_json::Error) -> Self {
        let mut end = consumed(bytes, err.line(), err.column());
        // An object or array where something else was expected is refused before its
        // bracket is read; the value being read is the one the bracket opens.
        if err.classify() == serde_json::error::Category::Data
            && let Some(i) = bytes[end..].iter().position(|b| !b.is_ascii_whitespace())
            && matches!(bytes[end + i], b'[' | b'{')
        {
            end += i + 1;
        }
        JsonError {
            json_path: path_at(&String::from_utf8_lossy(&bytes[..end])),
            line: err.line(),
            column: err.column(),
            message: without_position(&err.to_string()),
            category: err.classify(),
        }
    }

    /// A syntax error or a document cut short, rather than a well-formed document of the
    /// wrong shape.
    pub(crate) fn syntax(&self) -> bool {
        matches!(
            self.category,
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        )
    }
}

/// `$.path: message (line L, column C)`.
impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} (line {}, column {})",
            self.json_path, self.message, self.line, self.column
        )
    }
}

/// `T` from one JSON document (nothing but whitespace after it). A refused document names
/// the JSON path of the value being read, as path-tracking deserializers do: a field of the
/// wrong type or an unknown key names that member, a missing field the object, a bad element
/// its index.
pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    serde_json::from_slice(bytes).map_err(|err| JsonError::new(bytes, &err))
}

/// serde_json's message without its trailing "at line L column C".
pub(crate) fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The length of the part of `bytes` serde_json had read when it stopped: its error names
/// the line and the column (in bytes) of the last byte read; line 0 is no position.
fn consumed(bytes: &[u8], line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let line_start = if line == 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(bytes.len(), |(i, _)| i + 1)
    };
    (line_start + column).min(bytes.len())
}

/// One open container while scanning.
enum Open {
    /// An object and the member being read, once its key is known.
    Object(Option<String>),
    /// An array, the index of the element being read and whether it has begun.
    Array(usize, bool),
}

/// The JSON path of the value being read where `read` (the start of a JSON document) ends:
/// the members and elements open there. A member counts from its key on, an element from
/// its first token; a container that `read` closes counts as the value being read, so an
/// error raised at its end (a missing field) names the container.
fn path_at(read: &str) -> String {
    let mut scanner = jsonc_parser::Scanner::new(read, &Default::default());
    let mut open: Vec<Open> = Vec::new();
    // A value begins: the element of an enclosing array has begun.
    fn begin(open: &mut [Open]) {
        if let Some(Open::Array(_, begun)) = open.last_mut() {
            *begun = true;
        }
    }
    while let Ok(Some(token)) = scanner.scan() {
        match token {
            Token::OpenBrace => {
                begin(&mut open);
                open.push(Open::Object(None));
            }
            Token::OpenBracket => {
                begin(&mut open);
                open.push(Open::Array(0, false));
            }
            Token::CloseBrace | Token::CloseBracket => {
                open.pop();
            }
            Token::Comma => match open.last_mut() {
                Some(Open::Object(key)) => *key = None,
                Some(Open::Array(index, begun)) => {
                    *index += 1;
                    *begun = false;
                }
                None => {}
            },
            Token::String(s) => match open.last_mut() {
                Some(Open::Object(key @ None)) => *key = Some(s.into_owned()),
                _ => begin(&mut open),
            },
            Token::Colon | Token::CommentLine(_) | Token::CommentBlock(_) => {}
            Token::Word(_) | Token::Boolean(_) | Token::Number(_) | Token::Null => begin(&mut open),
        }
    }
    let mut path = Vec::new();
    for container in open {
        match container {
            Open::Object(Some(key)) => path.push(Segment::Key(key)),
            Open::Array(index, true) => path.push(Segment::Index(index)),
            Open::Object(None) | Open::Array(_, false) => break,
        }
    }
    render(&path)
}

#[cfg(feature = "schema")]
/// Resolves a jsonschema instance location against the value: numeric segments are array
/// indexes only where the value is an array.
pub(crate) fn segments_of(
    location: &jsonschema::paths::Location,
    root: &serde_json::Value,
) -> Vec<Segment> {
    use jsonschema::paths::LocationSegment;
    use serde_json::Value;
    let mut out = Vec::new();
    let mut current = Some(root);
    for seg in location.iter() {
        let (segment, next) = match (seg, current) {
            (LocationSegment::Index(i), Some(Value::Array(items))) => {
                (Segment::Index(i), items.get(i))
            }
            (LocationSegment::Index(i), v) => {
                let key = i.to_string();
                let next = v.and_then(|v| v.get(&key));
                (Segment::Key(key), next)
            }
            (LocationSegment::Property(p), v) => {
                let next = v.and_then(|v| v.get(p.as_ref()));
                (Segment::Key(p.into_owned()), next)
            }
        };
        out.push(segment);
        current = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "read only to be refused")]
    struct Doc {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        tags: std::collections::BTreeMap<String, u32>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "read only to be refused")]
    struct Item {
        port: u16,
        #[serde(default)]
        hosts: Vec<String>,
    }

    /// The place a path-tracking deserializer gives each refused document is the place
    /// read back from the error's position.
    #[test]
    fn errors_name_the_value_being_read_as_a_path_tracking_reader_does() {
        let documents = [
            (r#"{"name": 5}"#, "$.name"),
            (
                r#"{"name": "a", "items": [{"port": 1}, {"port": "x"}]}"#,
                "$.items[1].port",
            ),
            (r#"{"name": "a", "items": [{"port": 1}, {}]}"#, "$.items[1]"),
            (r#"{"name": "a", "itmes": []}"#, "$.itmes"),
            (r#"{"name": "a", "tags": {"x-id": "no"}}"#, "$.tags['x-id']"),
            (
                "{\"name\": \"a\",\n \"items\": [{\"port\": 1, \"hosts\": [\"h\", 2]}]}",
                "$.items[0].hosts[1]",
            ),
            (r#"{"items": []}"#, "$"),
            (
                r#"{"name": "\u00e9", "items": [{"port": 70000}]}"#,
                "$.items[0].port",
            ),
            (r#"{"name": "a", "items": {"port": 1}}"#, "$.items"),
            (r#"{"tags": {"it's": -1}, "name": "b"}"#, r"$.tags['it\'s']"),
            (
                r#"{"name": "a", "items": [{"port": 1}, "x"]}"#,
                "$.items[1]",
            ),
            (
                r#"{"name": "a", "items": [{"port": 1, "hosts": ["h", ["i"]]}]}"#,
                "$.items[0].hosts[1]",
            ),
            (r#"{"name": ["a"]}"#, "$.name"),
            (r#"{"name": "a", "tags": {"t": {"u": 1}}}"#, "$.tags.t"),
            (r#"[]"#, "$"),
            (r#"{"name": "a"} {}"#, "$"),
        ];
        for (text, path) in documents {
            let err = from_json::<Doc>(text.as_bytes()).unwrap_err();
            assert_eq!(err.json_path, path, "{text}: {err}");
            let mut de = serde_json::Deserializer::from_str(text);
            let tracked = serde_path_to_error::deserialize::<_, Doc>(&mut de)
                .map(|_| "$".to_owned())
                .unwrap_or_else(|e| crate::json::path::join_serde("$", e.path()));
            assert_eq!(tracked, path, "{text}: the path-tracking reader");
        }
    }

    #[test]
    fn a_refused_document_keeps_serde_json_position_and_message() {
        let text = "{\"name\": \"a\",\n  \"items\": [{\"port\": true}]}";
        let err = from_json::<Doc>(text.as_bytes()).unwrap_err();
        assert_eq!((err.line, err.column), (2, 25), "{err}");
        assert_eq!(
            err.to_string(),
            "$.items[0].port: invalid type: boolean `true`, expected u16 (line 2, column 25)"
        );
        assert!(!err.syntax());
        let err = from_json::<Doc>(br#"{"name": "a", "items": [{"port": 1"#).unwrap_err();
        assert!(err.syntax(), "{err}");
        assert_eq!(err.json_path, "$.items[0].port", "{err}");
        let err = from_json::<Doc>(br#"{"name": "a",, "items": []}"#).unwrap_err();
        assert!(err.syntax(), "{err}");
        assert_eq!(err.json_path, "$", "{err}");
    }

    #[test]
    fn json_positions_point_at_keys_and_elements() {
        let text = "{\n  \"a\": [1,\n    {\"é\": true, \"b\": 2}]\n}\n";
        let loc = for_json(text);
        assert_eq!(loc.locate("$.a"), Position { line: 2, column: 3 });
        assert_eq!(loc.locate("$.a[1]"), Position { line: 3, column: 5 });
        assert_eq!(loc.locate("$.a[1]['é']"), Position { line: 3, column: 6 });
        assert_eq!(
            loc.locate("$.a[1].b"),
            Position {
                line: 3,
                column: 17
            }
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            loc.locate("$.a[1].b.c[4]"),
            Position {
                line: 3,
                column: 17
            }
        );
    }

    #[test]
    fn repeated_keys_are_reported_where_they_repeat() {
        let text = "{\"a\": 1,\n \"b\": {\"c\": 1, \"c\": 2},\n \"a\": 3}";
        let loc = for_json(text);
        assert_eq!(loc.duplicate_keys(), ["$.b.c", "$.a"]);
        assert_eq!(repeated_keys(text), ["$.b.c", "$.a"]);
        assert_eq!(
            repeated_keys(
                r#"{"l": [{"k": "v", "x": 1}, {"k": 1, "k": 2}], "m": {"k\u0041": 1, "kA": 2}}"#
            ),
            ["$.l[1].k", "$.m.kA"]
        );
        assert!(
            repeated_keys(r#"{"a": {"a": "a"}, "b": ["a", "a"], "c": [{"a": 1}, {"a": 1}]}"#)
                .is_empty()
        );
        assert_eq!(loc.locate("$.a"), Position { line: 3, column: 2 });
        let (_, loc) = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert_eq!(loc.duplicate_keys(), ["$.b.c"]);
        assert_eq!(loc.locate("$.b.c"), Position { line: 4, column: 3 });
    }
}
