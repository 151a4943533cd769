//! From a JSON path back to a line and column in the source text.
//!
//! Every finding names a JSON path; people need the line. JSON sources are located through
//! `jsonc-parser`'s AST ranges, YAML sources through `saphyr-parser`'s event spans (which also
//! build the JSON value the schema sees), so schema and semantic findings share one locator.

use std::collections::HashMap;
use std::fmt::Write as _;

use jsonc_parser::ast;
use jsonc_parser::common::Ranged as _;
use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// Renders segments as `$.name['odd-name'][3]`.
pub(crate) fn render(segments: &[Segment]) -> String {
    let mut out = String::from("$");
    for seg in segments {
        push_segment(&mut out, seg);
    }
    out
}

/// Appends one segment to a rendered path.
pub(crate) fn push_segment(out: &mut String, seg: &Segment) {
    match seg {
        Segment::Index(i) => {
            let _ = write!(out, "[{i}]");
        }
        Segment::Key(k) if is_identifier(k) => {
            out.push('.');
            out.push_str(k);
        }
        Segment::Key(k) => {
            out.push_str("['");
            for c in k.chars() {
                if c == '\'' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push_str("']");
        }
    }
}

/// `path` followed by one more segment.
pub(crate) fn child(path: &str, seg: &Segment) -> String {
    let mut out = path.to_owned();
    push_segment(&mut out, seg);
    out
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The path one segment up, or `None` at the root.
fn parent(path: &str) -> Option<&str> {
    if path == "$" || path.is_empty() {
        return None;
    }
    let cut = if path.ends_with("']") {
        path.rfind("['")
    } else {
        path.rfind(['.', '['])
    };
    cut.map(|i| &path[..i]).filter(|p| !p.is_empty())
}

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Position {
    pub(crate) const START: Position = Position { line: 1, column: 1 };
}

/// Where each JSON path of a document starts: the key of an object member, the first
/// character of an array element.
#[derive(Debug, Default)]
pub(crate) struct Locator {
    positions: HashMap<String, Position>,
    duplicates: Vec<String>,
}

impl Locator {
    /// The position of `path`, or of its nearest located ancestor.
    pub(crate) fn locate(&self, path: &str) -> Position {
        let mut current = Some(path);
        while let Some(p) = current {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            current = parent(p);
        }
        self.positions.get("$").copied().unwrap_or(Position::START)
    }

    /// Paths of object members that repeat a key of the same object (the value seen by the
    /// checks is the last one; typed readers reject the document).
    pub(crate) fn duplicate_keys(&self) -> &[String] {
        &self.duplicates
    }

    /// Locates a JSON text. The text must already be known to be valid JSON; a text the AST
    /// parser still rejects yields an empty locator (everything at 1:1).
    pub(crate) fn for_json(text: &str) -> Self {
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
        let Ok(parsed) = jsonc_parser::parse_to_ast(text, &Default::default(), &parse_options)
        else {
            return locator;
        };
        let Some(root) = parsed.value else {
            return locator;
        };
        let lines = LineIndex::new(text);
        locator
            .positions
            .insert("$".to_owned(), lines.position(root.range().start));
        locator.walk_json(&root, "$".to_owned(), &lines);
        locator
    }

    fn walk_json(&mut self, value: &ast::Value<'_>, path: String, lines: &LineIndex<'_>) {
        match value {
            ast::Value::Object(obj) => {
                for prop in &obj.properties {
                    let name = match &prop.name {
                        ast::ObjectPropName::String(s) => s.value.to_string(),
                        ast::ObjectPropName::Word(w) => w.value.to_owned(),
                    };
                    let p = child(&path, &Segment::Key(name));
                    let pos = lines.position(prop.range.start);
                    if self.positions.insert(p.clone(), pos).is_some() {
                        self.duplicates.push(p.clone());
                    }
                    self.walk_json(&prop.value, p, lines);
                }
            }
            ast::Value::Array(arr) => {
                for (i, element) in arr.elements.iter().enumerate() {
                    let p = child(&path, &Segment::Index(i));
                    self.positions
                        .insert(p.clone(), lines.position(element.range().start));
                    self.walk_json(element, p, lines);
                }
            }
            _ => {}
        }
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

/// A YAML problem with its position.
#[derive(Debug)]
pub(crate) struct YamlError {
    pub(crate) position: Position,
    pub(crate) message: String,
}

/// Parses the first document of a YAML text into a JSON value (YAML 1.2 core schema) and
/// locates every path in it.
pub(crate) fn parse_yaml(text: &str) -> Result<(Value, Locator), YamlError> {
    yaml_document(text).map(|doc| (doc.value, doc.locator))
}

/// One YAML document read once: its JSON value, the same value as JSON text with the
/// mappings in the order the YAML wrote them (serde reads typed forms from it, so ordered
/// maps keep their order), and the position of every path.
pub(crate) struct YamlDocument {
    pub(crate) value: Value,
    pub(crate) json: String,
    pub(crate) locator: Locator,
}

/// Parses the first document of a YAML text (see [`YamlDocument`]).
pub(crate) fn yaml_document(text: &str) -> Result<YamlDocument, YamlError> {
    let mut builder = YamlBuilder::default();
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| YamlError {
            position: Position {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: e.info().to_owned(),
        })?;
        let pos = Position {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        position: pos,
                        message: "expected one YAML document, found a second one".to_owned(),
                    });
                }
            }
            Event::Scalar(raw, style, anchor, tag) => {
                let value = if style == ScalarStyle::Plain
                    && tag.as_ref().is_none_or(|t| t.suffix != "str")
                {
                    resolve_plain(&raw)
                } else {
                    Value::String(raw.to_string())
                };
                builder.scalar(value, &raw, anchor, pos, None)?;
            }
            Event::Alias(id) => {
                let (value, json) = builder.anchors.get(&id).cloned().ok_or(YamlError {
                    position: pos,
                    message: "alias to an unknown anchor".to_owned(),
                })?;
                builder.scalar(value, "", 0, pos, Some(&json))?;
            }
            Event::SequenceStart(anchor, _) => {
                builder.open(Container::Seq(Vec::new()), anchor, pos)?
            }
            Event::MappingStart(anchor, _) => {
                builder.open(Container::Map(Map::new(), None), anchor, pos)?
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            _ => {}
        }
    }
    let value = builder.root.unwrap_or(Value::Null);
    if builder.json.is_empty() {
        builder.json.push_str("null");
    }
    Ok(YamlDocument {
        value,
        json: builder.json,
        locator: builder.locator,
    })
}

/// Plain scalars per the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = text.trim_start_matches('+').parse::<u64>() {
            return Value::Number(u.into());
        }
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(u) = u64::from_str_radix(hex, 16)
    {
        return Value::Number(u.into());
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(u) = u64::from_str_radix(oct, 8)
    {
        return Value::Number(u.into());
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    // `.inf` and `.nan` have no JSON spelling; they stay strings.
    Value::String(text.to_owned())
}

enum Container {
    Seq(Vec<Value>),
    /// The map and the key waiting for its value.
    Map(Map<String, Value>, Option<String>),
}

struct Frame {
    container: Container,
    path: String,
    anchor: usize,
    /// Entries (keys or elements) written to the JSON text so far.
    entries: usize,
    /// Where the container starts in the JSON text.
    start: usize,
}

#[derive(Default)]
struct YamlBuilder {
    stack: Vec<Frame>,
    root: Option<Value>,
    /// Anchored values and their JSON text.
    anchors: HashMap<usize, (Value, String)>,
    json: String,
    locator: Locator,
}

impl YamlBuilder {
    /// Where the next value goes: its path, after recording its position. `None` means the
    /// next scalar is a mapping key.
    fn next_path(&mut self, pos: Position) -> Option<String> {
        match self.stack.last() {
            None => {
                self.locator.positions.insert("$".to_owned(), pos);
                Some("$".to_owned())
            }
            Some(Frame {
                container: Container::Seq(items),
                path,
                ..
            }) => {
                let p = child(path, &Segment::Index(items.len()));
                self.locator.positions.insert(p.clone(), pos);
                Some(p)
            }
            Some(Frame {
                container: Container::Map(_, None),
                ..
            }) => None,
            Some(Frame {
                container: Container::Map(_, Some(key)),
                path,
                ..
            }) => Some(child(path, &Segment::Key(key.clone()))),
        }
    }

    /// Writes the separator before a value or key of the innermost container.
    fn separate(&mut self) {
        if let Some(frame) = self.stack.last_mut() {
            let is_key = matches!(frame.container, Container::Map(_, None));
            let is_element = matches!(frame.container, Container::Seq(_));
            if is_key || is_element {
                if frame.entries > 0 {
                    self.json.push(',');
                }
                frame.entries += 1;
            }
        }
    }

    /// A scalar (or an alias, whose JSON text is `json`) in the next place.
    fn scalar(
        &mut self,
        value: Value,
        raw: &str,
        anchor: usize,
        pos: Position,
        json: Option<&str>,
    ) -> Result<(), YamlError> {
        let text = json.map_or_else(|| value.to_string(), str::to_owned);
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), text.clone()));
        }
        self.separate();
        match self.next_path(pos) {
            Some(_) => {
                self.json.push_str(&text);
                self.push(value);
            }
            None => {
                let key = match &value {
                    Value::String(s) => s.clone(),
                    Value::Null if raw.is_empty() => String::new(),
                    _ if !raw.is_empty() => raw.to_owned(),
                    other => other.to_string(),
                };
                let Some(Frame {
                    container: Container::Map(_, slot),
                    path,
                    ..
                }) = self.stack.last_mut()
                else {
                    unreachable!("next_path returns None only inside a mapping");
                };
                let p = child(path, &Segment::Key(key.clone()));
                if self.locator.positions.insert(p.clone(), pos).is_some() {
                    self.locator.duplicates.push(p);
                }
                self.json.push_str(&Value::String(key.clone()).to_string());
                self.json.push(':');
                *slot = Some(key);
            }
        }
        Ok(())
    }

    fn open(
        &mut self,
        container: Container,
        anchor: usize,
        pos: Position,
    ) -> Result<(), YamlError> {
        if matches!(
            self.stack.last(),
            Some(Frame {
                container: Container::Map(_, None),
                ..
            })
        ) {
            return Err(YamlError {
                position: pos,
                message: "a mapping key must be a plain value, not a mapping or a sequence"
                    .to_owned(),
            });
        }
        self.separate();
        let path = self.next_path(pos).unwrap_or_default();
        let start = self.json.len();
        self.json.push(if matches!(container, Container::Seq(_)) {
            '['
        } else {
            '{'
        });
        self.stack.push(Frame {
            container,
            path,
            anchor,
            entries: 0,
            start,
        });
        Ok(())
    }

    fn close(&mut self) {
        if let Some(frame) = self.stack.pop() {
            let value = match frame.container {
                Container::Seq(items) => {
                    self.json.push(']');
                    Value::Array(items)
                }
                Container::Map(map, _) => {
                    self.json.push('}');
                    Value::Object(map)
                }
            };
            if frame.anchor > 0 {
                let text = self.json[frame.start..].to_owned();
                self.anchors.insert(frame.anchor, (value.clone(), text));
            }
            self.push(value);
        }
    }

    fn push(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame {
                container: Container::Seq(items),
                ..
            }) => items.push(value),
            Some(Frame {
                container: Container::Map(map, key),
                ..
            }) => {
                if let Some(k) = key.take() {
                    map.insert(k, value);
                }
            }
        }
    }
}

#[cfg(feature = "schema")]
/// Resolves a jsonschema instance location against the value: numeric segments are array
/// indexes only where the value is an array.
pub(crate) fn segments_of(location: &jsonschema::paths::Location, root: &Value) -> Vec<Segment> {
    use jsonschema::paths::LocationSegment;
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

    #[test]
    fn paths_render_and_walk_up() {
        let p = render(&[
            Segment::Key("rules".into()),
            Segment::Index(2),
            Segment::Key("when".into()),
            Segment::Key("headers".into()),
            Segment::Key("x-api-key".into()),
        ]);
        assert_eq!(p, "$.rules[2].when.headers['x-api-key']");
        assert_eq!(parent(&p), Some("$.rules[2].when.headers"));
        assert_eq!(parent("$.rules[2]"), Some("$.rules"));
        assert_eq!(parent("$.rules"), Some("$"));
        assert_eq!(parent("$"), None);
    }

    #[test]
    fn json_positions_point_at_keys_and_elements() {
        let text = "{\n  \"a\": [1,\n    {\"é\": true, \"b\": 2}]\n}\n";
        let loc = Locator::for_json(text);
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
    fn yaml_builds_json_and_positions() {
        let text = "version: 1\nrules:\n  - id: strip-auth\n    priority: 100\n    when: { direction: outbound }\n    then:\n      action: capture_only\n      flag: ~\n      ratio: 0.5\n      quoted: \"100\"\n";
        let (value, loc) = parse_yaml(text).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["rules"][0]["priority"], 100);
        assert_eq!(value["rules"][0]["when"]["direction"], "outbound");
        assert_eq!(value["rules"][0]["then"]["flag"], Value::Null);
        assert_eq!(value["rules"][0]["then"]["ratio"], 0.5);
        assert_eq!(value["rules"][0]["then"]["quoted"], "100");
        assert_eq!(loc.locate("$.rules"), Position { line: 2, column: 1 });
        assert_eq!(
            loc.locate("$.rules[0].priority"),
            Position { line: 4, column: 5 }
        );
        assert_eq!(
            loc.locate("$.rules[0].when.direction"),
            Position {
                line: 5,
                column: 13
            }
        );
        assert_eq!(
            loc.locate("$.rules[0].then.action"),
            Position { line: 7, column: 7 }
        );
    }

    #[test]
    fn repeated_keys_are_reported_where_they_repeat() {
        let loc = Locator::for_json("{\"a\": 1,\n \"b\": {\"c\": 1, \"c\": 2},\n \"a\": 3}");
        assert_eq!(loc.duplicate_keys(), ["$.b.c", "$.a"]);
        assert_eq!(loc.locate("$.a"), Position { line: 3, column: 2 });
        let (_, loc) = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert_eq!(loc.duplicate_keys(), ["$.b.c"]);
        assert_eq!(loc.locate("$.b.c"), Position { line: 4, column: 3 });
    }

    #[test]
    fn yaml_anchors_and_errors() {
        let (value, _) = parse_yaml("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(value["b"], serde_json::json!([1, 2]));
        let err = parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.position.line >= 1, "{err:?}");
        let err = parse_yaml("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.position.line, 2, "{err:?}");
    }
}
