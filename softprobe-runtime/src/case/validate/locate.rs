//! From a JSON path back to a line and column in the source text.
//!
//! Every finding names a JSON path; people need the line. JSON sources are located through
//! `jsonc-parser`'s AST ranges, YAML sources through `softprobe_suite_yaml::document` (which
//! also builds the JSON value the schema sees), so schema and semantic findings share one
//! locator.

use jsonc_parser::ast;
use jsonc_parser::common::Ranged as _;

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
        let loc = for_json("{\"a\": 1,\n \"b\": {\"c\": 1, \"c\": 2},\n \"a\": 3}");
        assert_eq!(loc.duplicate_keys(), ["$.b.c", "$.a"]);
        assert_eq!(loc.locate("$.a"), Position { line: 3, column: 2 });
        let (_, loc) = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert_eq!(loc.duplicate_keys(), ["$.b.c"]);
        assert_eq!(loc.locate("$.b.c"), Position { line: 4, column: 3 });
    }
}
