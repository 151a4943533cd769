//! A YAML document read once: its JSON value (YAML 1.2 core schema), the same value as JSON
//! text with mappings in the order the YAML wrote them (serde reads typed forms from it, so
//! ordered maps keep their order), and where every JSON path starts ([`Locator`]).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

use crate::path::{Segment, child, parent};

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// Line 1, column 1.
    pub const START: Position = Position { line: 1, column: 1 };
}

/// Where each JSON path of a document starts: the key of an object member, the first
/// character of an array element.
#[derive(Debug, Default)]
pub struct Locator {
    positions: HashMap<String, Position>,
    duplicates: Vec<String>,
}

impl Locator {
    /// The position of `path`, or of its nearest located ancestor.
    pub fn locate(&self, path: &str) -> Position {
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
    pub fn duplicate_keys(&self) -> &[String] {
        &self.duplicates
    }

    /// Records where `path` starts; a path recorded twice (a repeated key) is also listed in
    /// [`Locator::duplicate_keys`], and the later position wins.
    pub fn insert(&mut self, path: String, position: Position) {
        if self.positions.insert(path.clone(), position).is_some() {
            self.duplicates.push(path);
        }
    }
}

/// A YAML problem with its position.
#[derive(Debug)]
pub struct YamlError {
    /// Where the problem is.
    pub position: Position,
    /// What is wrong.
    pub message: String,
}

/// Parses the first document of a YAML text into a JSON value (YAML 1.2 core schema) and
/// locates every path in it.
pub fn parse_yaml(text: &str) -> Result<(Value, Locator), YamlError> {
    yaml_document(text).map(|doc| (doc.value, doc.locator))
}

/// One YAML document read once: its JSON value, the same value as JSON text with the
/// mappings in the order the YAML wrote them (serde reads typed forms from it, so ordered
/// maps keep their order), and the position of every path.
pub struct YamlDocument {
    /// The document as a JSON value.
    pub value: Value,
    /// The same value as JSON text, mappings in document order.
    pub json: String,
    /// Where each path of the value starts.
    pub locator: Locator,
}

/// Parses the first document of a YAML text (see [`YamlDocument`]).
pub fn yaml_document(text: &str) -> Result<YamlDocument, YamlError> {
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
                self.locator.insert(p, pos);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            loc.locate("$.rules[0].then.action.x[2]"),
            Position { line: 7, column: 7 }
        );
    }

    #[test]
    fn repeated_keys_are_reported_where_they_repeat() {
        let (_, loc) = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert_eq!(loc.duplicate_keys(), ["$.b.c"]);
        assert_eq!(loc.locate("$.b.c"), Position { line: 4, column: 3 });
    }

    #[test]
    fn anchors_order_and_errors() {
        let doc = yaml_document("zeta: &x [1, 2]\nalpha: *x\n").unwrap();
        assert_eq!(doc.value["alpha"], serde_json::json!([1, 2]));
        assert_eq!(doc.json, r#"{"zeta":[1,2],"alpha":[1,2]}"#);
        let err = parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.position.line >= 1, "{err:?}");
        let err = parse_yaml("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.position.line, 2, "{err:?}");
        assert_eq!(
            err.message,
            "expected one YAML document, found a second one"
        );
    }
}
