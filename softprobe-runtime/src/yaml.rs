//! YAML documents (suites, rules) read through one stack.
//!
//! `softprobe_suite_yaml::document` (over `saphyr-parser`'s events and spans, shared with the
//! `#[softprobe::cases]` macro) turns the text into the JSON value (YAML 1.2 core schema),
//! the same value as JSON text with mappings in document order, and the line and column of
//! every JSON path. Typed forms are deserialized from that JSON text by the reader of the JSON
//! documents (a suite's through `serde_ignored` as well, to note the keys it ignores), and a
//! refused document is placed by its error's position (`case::validate::locate`), so an
//! error names the JSON path of the field and, through the locator, its line and column: one
//! parser for positions and values, and the error shape of the JSON documents.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::case::validate::locate::{self, Locator};

/// A YAML document that is not YAML, or not the shape the reader expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// The JSON path of the offending value (`$` for a syntax error).
    pub json_path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, without the path or the position.
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} (line {}, column {})",
            self.json_path, self.message, self.line, self.column
        )
    }
}

impl std::error::Error for YamlError {}

/// The first document of a YAML text as a JSON value.
pub fn to_value(text: &str) -> Result<Value, YamlError> {
    locate::yaml_document(text)
        .map(|doc| doc.value)
        .map_err(syntax_error)
}

/// The first document of a YAML text deserialized as `T`: from its JSON text, by the reader
/// of the JSON documents, so a model read from both formats is compiled once.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let doc = locate::yaml_document(text).map_err(syntax_error)?;
    locate::from_json(doc.json.as_bytes()).map_err(|err| {
        // The position in the JSON text means nothing to the reader; the YAML one replaces it.
        let position = doc.locator.locate(&err.json_path);
        YamlError {
            json_path: err.json_path,
            line: position.line,
            column: position.column,
            message: err.message,
        }
    })
}

/// [`from_str`] that passes every key `T` ignored to `note`, and returns the document's
/// locator with the value.
pub(crate) fn from_str_noting<T: DeserializeOwned>(
    text: &str,
    mut note: impl FnMut(serde_ignored::Path<'_>),
) -> Result<(T, Locator), YamlError> {
    let doc = locate::yaml_document(text).map_err(syntax_error)?;
    let mut de = serde_json::Deserializer::from_str(&doc.json);
    let read = T::deserialize(serde_ignored::Deserializer::new(&mut de, &mut note))
        .and_then(|value| de.end().map(|()| value));
    match read {
        Ok(value) => Ok((value, doc.locator)),
        Err(err) => {
            // Placed in the JSON text, then at the YAML line and column of that path.
            let err = locate::JsonError::new(doc.json.as_bytes(), &err);
            let position = doc.locator.locate(&err.json_path);
            Err(YamlError {
                json_path: err.json_path,
                line: position.line,
                column: position.column,
                message: err.message,
            })
        }
    }
}

fn syntax_error(e: locate::YamlError) -> YamlError {
    YamlError {
        json_path: "$".to_owned(),
        line: e.position.line,
        column: e.position.column,
        message: e.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        port: u16,
    }

    #[test]
    fn errors_name_the_path_line_and_column() {
        let doc = from_str::<Doc>("name: a\nitems:\n  - port: 80\n").unwrap();
        assert_eq!((doc.name.as_str(), doc.items[0].port), ("a", 80));

        let err = from_str::<Doc>("name: a\nitems:\n  - port: 80\n  - port: lots\n").unwrap_err();
        assert_eq!(err.json_path, "$.items[1].port");
        assert_eq!((err.line, err.column), (4, 5), "{err}");
        assert!(
            err.message.starts_with("invalid type: string \"lots\""),
            "{err}"
        );
        assert!(!err.message.contains("at line"), "{err}");

        let err = from_str::<Doc>("name: [\n").unwrap_err();
        assert_eq!(err.json_path, "$");
        assert!(err.line >= 1, "{err}");
    }

    #[test]
    fn mappings_keep_document_order_and_aliases_resolve() {
        #[derive(serde::Deserialize)]
        struct Ordered(#[serde(with = "pairs")] Vec<(String, u8)>);
        mod pairs {
            use serde::de::{Deserializer, MapAccess, Visitor};
            pub(super) fn deserialize<'de, D: Deserializer<'de>>(
                d: D,
            ) -> Result<Vec<(String, u8)>, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Vec<(String, u8)>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a mapping")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut out = Vec::new();
                        while let Some(entry) = m.next_entry()? {
                            out.push(entry);
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
        let Ordered(pairs) = from_str("zeta: 1\nalpha: 2\nmid: 3\n").unwrap();
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["zeta", "alpha", "mid"]);

        let v = to_value("base: &b {x: 1, y: [2, 3]}\ncopy: *b\n").unwrap();
        assert_eq!(v["copy"], v["base"]);
        let doc: serde_json::Value = from_str("base: &b {x: 1, y: [2, 3]}\ncopy: *b\n").unwrap();
        assert_eq!(doc, v);
    }
}
