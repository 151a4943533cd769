//! A YAML document read once: a tree of [`Node`]s (YAML 1.2 core schema, mappings in the
//! order the YAML wrote them) and where every JSON path starts ([`Locator`]). With the `json`
//! feature, the same document as a `serde_json` value and as JSON text in document order
//! (serde reads typed forms from it, so ordered maps keep their order): [`yaml_document`].
//!
//! The tree needs no `serde_json`: the `#[softprobe::cases]` macro lists a suite from it when
//! a test compiles, and a proc macro's dependencies are compiled apart from the test's own.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

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

/// A YAML value as the core schema resolves it; the values JSON has, with mappings in
/// document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `~`, `null`, an empty value.
    Null,
    /// `true`, `false` (and their capitalised forms).
    Bool(bool),
    /// An integer that fits `i64` (decimal).
    Int(i64),
    /// A larger decimal integer, or a `0x` / `0o` one.
    UInt(u64),
    /// A finite float (`.inf` and `.nan` stay strings: JSON cannot spell them).
    Float(f64),
    /// A string.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping's members in document order. A repeated key stays in the list; the last
    /// one counts ([`Node::get`]).
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The member `key` of a mapping (the last one, if the key repeats).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Appends the node as JSON text: mappings in document order, repeated keys included.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Node::Null => out.push_str("null"),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Int(i) => out.push_str(&i.to_string()),
            Node::UInt(u) => out.push_str(&u.to_string()),
            Node::Float(f) => out.push_str(&float_text(*f)),
            Node::String(s) => write_json_string(s, out),
            Node::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Node::Map(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(key, out);
                    out.push(':');
                    value.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The node as a `serde_json` value (a repeated key keeps its last value).
    #[cfg(feature = "json")]
    pub fn into_value(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(i) => Value::Number(i.into()),
            Node::UInt(u) => Value::Number(u.into()),
            Node::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Node::String(s) => Value::String(s),
            Node::Seq(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Map(members) => {
                // Inserted one by one: collecting would compile a sort of the members.
                let mut map = serde_json::Map::new();
                for (key, value) in members {
                    map.insert(key, value.into_value());
                }
                Value::Object(map)
            }
        }
    }
}

/// A finite float as JSON text: `serde_json`'s spelling when it is built, else Rust's
/// shortest round-trip form (`1.0`, `1e300`), which reads back as the same number.
fn float_text(f: f64) -> String {
    #[cfg(feature = "json")]
    if let Some(n) = serde_json::Number::from_f64(f) {
        return n.to_string();
    }
    format!("{f:?}")
}

/// Appends `s` as a JSON string, escaped as `serde_json` writes it: `"` and `\`, the short
/// escapes `\b \t \n \f \r`, other control characters as `\u00XX`, the rest as is.
fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c < '\u{20}' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = c as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses the first document of a YAML text into a JSON value (YAML 1.2 core schema) and
/// locates every path in it.
#[cfg(feature = "json")]
pub fn parse_yaml(text: &str) -> Result<(serde_json::Value, Locator), YamlError> {
    read_yaml(text).map(|(node, locator)| (node.into_value(), locator))
}

/// One YAML document read once: its JSON value, the same value as JSON text with the
/// mappings in the order the YAML wrote them (serde reads typed forms from it, so ordered
/// maps keep their order), and the position of every path.
#[cfg(feature = "json")]
pub struct YamlDocument {
    /// The document as a JSON value.
    pub value: serde_json::Value,
    /// The same value as JSON text, mappings in document order.
    pub json: String,
    /// Where each path of the value starts.
    pub locator: Locator,
}

/// Parses the first document of a YAML text (see [`YamlDocument`]).
#[cfg(feature = "json")]
pub fn yaml_document(text: &str) -> Result<YamlDocument, YamlError> {
    let (node, locator) = read_yaml(text)?;
    let mut json = String::with_capacity(text.len());
    node.write_json(&mut json);
    Ok(YamlDocument {
        value: node.into_value(),
        json,
        locator,
    })
}

/// Parses the first document of a YAML text into a [`Node`] tree (YAML 1.2 core schema;
/// an empty document is [`Node::Null`]) and locates every path in it.
pub fn read_yaml(text: &str) -> Result<(Node, Locator), YamlError> {
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
                    Node::String(raw.to_string())
                };
                builder.scalar(value, &raw, anchor, pos);
            }
            Event::Alias(id) => {
                let value = builder.anchors.get(&id).cloned().ok_or(YamlError {
                    position: pos,
                    message: "alias to an unknown anchor".to_owned(),
                })?;
                builder.scalar(value, "", 0, pos);
            }
            Event::SequenceStart(anchor, _) => {
                builder.open(Container::Seq(Vec::new()), anchor, pos)?
            }
            Event::MappingStart(anchor, _) => {
                builder.open(Container::Map(Vec::new(), None), anchor, pos)?
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            _ => {}
        }
    }
    Ok((builder.root.unwrap_or(Node::Null), builder.locator))
}

/// Plain scalars per the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Node {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Node::Null,
        "true" | "True" | "TRUE" => return Node::Bool(true),
        "false" | "False" | "FALSE" => return Node::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Node::Int(i);
        }
        if let Ok(u) = text.trim_start_matches('+').parse::<u64>() {
            return Node::UInt(u);
        }
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(u) = u64::from_str_radix(hex, 16)
    {
        return Node::UInt(u);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(u) = u64::from_str_radix(oct, 8)
    {
        return Node::UInt(u);
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float
        && let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return Node::Float(f);
    }
    // `.inf` and `.nan` have no JSON spelling; they stay strings.
    Node::String(text.to_owned())
}

enum Container {
    Seq(Vec<Node>),
    /// The members and the key waiting for its value.
    Map(Vec<(String, Node)>, Option<String>),
}

struct Frame {
    container: Container,
    path: String,
    anchor: usize,
}

#[derive(Default)]
struct YamlBuilder {
    stack: Vec<Frame>,
    root: Option<Node>,
    /// Anchored values.
    anchors: HashMap<usize, Node>,
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

    /// A scalar (or an alias's value, with an empty `raw`) in the next place.
    fn scalar(&mut self, value: Node, raw: &str, anchor: usize, pos: Position) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.next_path(pos) {
            Some(_) => self.push(value),
            None => {
                let key = match value {
                    Node::String(s) => s,
                    Node::Null if raw.is_empty() => String::new(),
                    _ if !raw.is_empty() => raw.to_owned(),
                    other => {
                        let mut text = String::new();
                        other.write_json(&mut text);
                        text
                    }
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
                *slot = Some(key);
            }
        }
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
        let path = self.next_path(pos).unwrap_or_default();
        self.stack.push(Frame {
            container,
            path,
            anchor,
        });
        Ok(())
    }

    fn close(&mut self) {
        if let Some(frame) = self.stack.pop() {
            let value = match frame.container {
                Container::Seq(items) => Node::Seq(items),
                Container::Map(members, _) => Node::Map(members),
            };
            if frame.anchor > 0 {
                self.anchors.insert(frame.anchor, value.clone());
            }
            self.push(value);
        }
    }

    fn push(&mut self, value: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame {
                container: Container::Seq(items),
                ..
            }) => items.push(value),
            Some(Frame {
                container: Container::Map(members, key),
                ..
            }) => {
                if let Some(k) = key.take() {
                    members.push((k, value));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_builds_nodes_and_positions() {
        let text = "version: 1\nrules:\n  - id: strip-auth\n    priority: 100\n    when: { direction: outbound }\n    then:\n      flag: ~\n      ratio: 0.5\n      quoted: \"100\"\n      big: 0x10\n      inf: .inf\n";
        let (node, loc) = read_yaml(text).unwrap();
        let rule = match node.get("rules") {
            Some(Node::Seq(rules)) => &rules[0],
            other => panic!("rules: {other:?}"),
        };
        assert_eq!(node.get("version"), Some(&Node::Int(1)));
        assert_eq!(rule.get("priority"), Some(&Node::Int(100)));
        let then = rule.get("then").unwrap();
        assert_eq!(then.get("flag"), Some(&Node::Null));
        assert_eq!(then.get("ratio"), Some(&Node::Float(0.5)));
        assert_eq!(then.get("quoted"), Some(&Node::String("100".into())));
        assert_eq!(then.get("big"), Some(&Node::UInt(16)));
        assert_eq!(then.get("inf"), Some(&Node::String(".inf".into())));
        assert_eq!(
            loc.locate("$.rules[0].when.direction"),
            Position {
                line: 5,
                column: 13
            }
        );
        let mut json = String::new();
        rule.get("when").unwrap().write_json(&mut json);
        assert_eq!(json, r#"{"direction":"outbound"}"#);
        // A repeated key stays in the text; the last value is the member.
        let (node, loc) = read_yaml("b: 1\na: [x, \"q\\\"\\t\\u0001\"]\nb: 2\n").unwrap();
        assert_eq!(node.get("b"), Some(&Node::Int(2)));
        assert_eq!(loc.duplicate_keys(), ["$.b"]);
        let mut json = String::new();
        node.write_json(&mut json);
        assert_eq!(json, r#"{"b":1,"a":["x","q\"\t\u0001"],"b":2}"#);
        assert_eq!(read_yaml("").unwrap().0, Node::Null);
        let err = read_yaml("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.position.line, 2, "{err:?}");
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_text_is_spelled_as_serde_json_spells_it() {
        let tricky: String = (0u8..0x80)
            .map(char::from)
            .chain("é\u{2028}😀".chars())
            .collect();
        let mut ours = String::new();
        Node::String(tricky.clone()).write_json(&mut ours);
        assert_eq!(ours, serde_json::to_string(&tricky).unwrap());
        for f in [0.5, 1.0, -0.0, 1e300, 1e-7, 123456789.125, f64::MAX] {
            let mut ours = String::new();
            Node::Float(f).write_json(&mut ours);
            assert_eq!(ours, serde_json::json!(f).to_string(), "{f}");
        }
        for (node, value) in [
            (Node::Int(-3), serde_json::json!(-3)),
            (Node::UInt(u64::MAX), serde_json::json!(u64::MAX)),
        ] {
            let mut ours = String::new();
            node.write_json(&mut ours);
            assert_eq!(ours, value.to_string());
            assert_eq!(node.into_value(), value);
        }
    }

    #[cfg(feature = "json")]
    #[test]
    fn yaml_builds_json_and_positions() {
        let text = "version: 1\nrules:\n  - id: strip-auth\n    priority: 100\n    when: { direction: outbound }\n    then:\n      action: capture_only\n      flag: ~\n      ratio: 0.5\n      quoted: \"100\"\n";
        let (value, loc) = parse_yaml(text).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["rules"][0]["priority"], 100);
        assert_eq!(value["rules"][0]["when"]["direction"], "outbound");
        assert_eq!(value["rules"][0]["then"]["flag"], serde_json::Value::Null);
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

    #[cfg(feature = "json")]
    #[test]
    fn repeated_keys_are_reported_where_they_repeat() {
        let (_, loc) = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert_eq!(loc.duplicate_keys(), ["$.b.c"]);
        assert_eq!(loc.locate("$.b.c"), Position { line: 4, column: 3 });
    }

    #[cfg(feature = "json")]
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
