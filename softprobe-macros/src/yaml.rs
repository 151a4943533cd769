//! The YAML the macro reads (a suite's `cases`), through the same parser as the runtime:
//! `saphyr-parser`'s events, folded into a small tree. The macro needs only the shape of
//! `cases` (text, flags, mappings) and the line of a syntax error; typed reading with
//! positions for every field is the runtime's (`softprobe_runtime::yaml`).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// A YAML node, scalars resolved per the YAML 1.2 core schema as far as the macro cares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// An integer or a float, as written.
    Number(String),
    String(String),
    Sequence(Vec<Value>),
    Mapping(Mapping),
}

/// A mapping in document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Mapping(Vec<(Value, Value)>);

impl Mapping {
    /// The value of `key` (the last one when the key repeats).
    pub(crate) fn get(&self, key: Value) -> Option<&Value> {
        self.0.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// A YAML syntax error: its line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error {
    pub(crate) line: usize,
    pub(crate) message: String,
}

fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if text.parse::<i64>().is_ok() || text.parse::<f64>().is_ok_and(f64::is_finite) => {
            Value::Number(text.to_owned())
        }
        _ => Value::String(text.to_owned()),
    }
}

enum Open {
    Seq(Vec<Value>, usize),
    Map(Mapping, Option<Value>, usize),
}

/// The first document of `text`.
pub(crate) fn from_str(text: &str) -> Result<Value, Error> {
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    let mut root = None;
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| Error {
            line: e.marker().line(),
            message: e.info().to_owned(),
        })?;
        let done = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Error {
                        line: span.start.line(),
                        message: "expected one YAML document, found a second one".to_owned(),
                    });
                }
                None
            }
            Event::Scalar(raw, style, anchor, tag) => {
                let value = if style == ScalarStyle::Plain
                    && tag.as_ref().is_none_or(|t| t.suffix != "str")
                {
                    plain(&raw)
                } else {
                    Value::String(raw.to_string())
                };
                if anchor > 0 {
                    anchors.insert(anchor, value.clone());
                }
                Some(value)
            }
            Event::Alias(id) => Some(anchors.get(&id).cloned().ok_or(Error {
                line: span.start.line(),
                message: "alias to an unknown anchor".to_owned(),
            })?),
            Event::SequenceStart(anchor, _) => {
                stack.push(Open::Seq(Vec::new(), anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Open::Map(Mapping::default(), None, anchor));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match stack.pop() {
                    Some(Open::Seq(items, anchor)) => (Value::Sequence(items), anchor),
                    Some(Open::Map(map, _, anchor)) => (Value::Mapping(map), anchor),
                    None => continue,
                };
                if anchor > 0 {
                    anchors.insert(anchor, value.clone());
                }
                Some(value)
            }
            _ => None,
        };
        let Some(value) = done else { continue };
        match stack.last_mut() {
            None => root = Some(value),
            Some(Open::Seq(items, _)) => items.push(value),
            Some(Open::Map(map, key, _)) => match key.take() {
                None => *key = Some(value),
                Some(k) => map.0.push((k, value)),
            },
        }
    }
    Ok(root.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cases_shapes_and_reports_syntax_errors_by_line() {
        let doc = from_str(
            "name: s\ncases:\n  - a/*.json\n  - {path: &p b.json, only: true, skip: 'why'}\n  - *p\n",
        )
        .unwrap();
        let Value::Mapping(root) = doc else {
            panic!("a mapping")
        };
        let Some(Value::Sequence(cases)) = root.get(Value::String("cases".into())) else {
            panic!("cases is a list")
        };
        assert_eq!(cases[0], Value::String("a/*.json".into()));
        let Value::Mapping(entry) = &cases[1] else {
            panic!("a mapping entry")
        };
        assert_eq!(
            entry.get(Value::String("only".into())),
            Some(&Value::Bool(true))
        );
        assert_eq!(cases[2], Value::String("b.json".into()));

        let err = from_str("name: broken\ncases:\n  - path: [not, a, glob\n").unwrap_err();
        assert_eq!(err.line, 4, "{err:?}");
        assert!(err.message.contains("expected ',' or ']'"), "{err:?}");
    }
}
