//! The JSONPath subset rules use (`bodyJsonPath`, `redactJsonPaths`): singular queries of
//! RFC 9535 — `$`, `.name`, `['name']` / `["name"]`, `[index]` (negative counts from the end).
//!
//! A singular query selects at most one node, which is what both uses need: a value to compare
//! and a value to overwrite in place. Wildcards, slices, filters and descendants are refused
//! with an error naming the offending character rather than silently matching nothing.

use std::fmt;

use serde_json::Value;

/// A parsed singular JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(i64),
}

/// Why a JSONPath was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {path:?} at character {position}: {message}")]
pub struct JsonPathError {
    /// The path as written.
    pub path: String,
    /// 0-based character offset of the problem.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl JsonPath {
    /// Parses a singular JSONPath such as `$.card.number`, `$['first name']`, `$.items[0]`.
    pub fn parse(text: &str) -> Result<Self, JsonPathError> {
        let err = |position: usize, message: &str| JsonPathError {
            path: text.to_owned(),
            position,
            message: message.to_owned(),
        };
        let chars: Vec<char> = text.chars().collect();
        if chars.first() != Some(&'$') {
            return Err(err(0, "a JSONPath starts with `$`"));
        }
        let mut segments = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    if chars.get(i) == Some(&'.') {
                        return Err(err(i, "descendant segments (`..`) are not supported"));
                    }
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        return Err(err(start, "expected a member name after `.`"));
                    }
                    if name == "*" {
                        return Err(err(start, "wildcards (`*`) are not supported"));
                    }
                    segments.push(Segment::Key(name));
                }
                '[' => {
                    i += 1;
                    match chars.get(i) {
                        Some(&q @ ('\'' | '"')) => {
                            i += 1;
                            let mut name = String::new();
                            loop {
                                match chars.get(i) {
                                    None => return Err(err(i, "unterminated quoted name")),
                                    Some('\\') => {
                                        let c = chars
                                            .get(i + 1)
                                            .ok_or_else(|| err(i, "unterminated escape"))?;
                                        name.push(match c {
                                            'n' => '\n',
                                            't' => '\t',
                                            other => *other,
                                        });
                                        i += 2;
                                    }
                                    Some(c) if *c == q => {
                                        i += 1;
                                        break;
                                    }
                                    Some(c) => {
                                        name.push(*c);
                                        i += 1;
                                    }
                                }
                            }
                            segments.push(Segment::Key(name));
                        }
                        Some(c) if c.is_ascii_digit() || *c == '-' => {
                            let start = i;
                            i += 1;
                            while i < chars.len() && chars[i].is_ascii_digit() {
                                i += 1;
                            }
                            let digits: String = chars[start..i].iter().collect();
                            let index = digits
                                .parse::<i64>()
                                .map_err(|_| err(start, "expected an array index"))?;
                            segments.push(Segment::Index(index));
                        }
                        Some('*') => return Err(err(i, "wildcards (`[*]`) are not supported")),
                        Some('?') => return Err(err(i, "filters (`[?...]`) are not supported")),
                        _ => {
                            return Err(err(i, "expected a quoted name or an index after `[`"));
                        }
                    }
                    if chars.get(i) == Some(&':') {
                        return Err(err(i, "slices (`[a:b]`) are not supported"));
                    }
                    if chars.get(i) != Some(&']') {
                        return Err(err(i, "expected `]`"));
                    }
                    i += 1;
                }
                _ => return Err(err(i, "expected `.` or `[`")),
            }
        }
        Ok(JsonPath {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The node the path selects, if any.
    pub fn select<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut cur = root;
        for seg in &self.segments {
            cur = match (seg, cur) {
                (Segment::Key(k), Value::Object(map)) => map.get(k)?,
                (Segment::Index(i), Value::Array(items)) => items.get(resolve(*i, items.len())?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The node the path selects, for overwriting in place.
    pub fn select_mut<'a>(&self, root: &'a mut Value) -> Option<&'a mut Value> {
        let mut cur = root;
        for seg in &self.segments {
            cur = match (seg, cur) {
                (Segment::Key(k), Value::Object(map)) => map.get_mut(k)?,
                (Segment::Index(i), Value::Array(items)) => {
                    let idx = resolve(*i, items.len())?;
                    items.get_mut(idx)?
                }
                _ => return None,
            };
        }
        Some(cur)
    }
}

fn resolve(index: i64, len: usize) -> Option<usize> {
    if index >= 0 {
        usize::try_from(index).ok()
    } else {
        len.checked_sub(usize::try_from(index.unsigned_abs()).ok()?)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Appends the JSONPath of an object member to `base`: `.name` when the name is a plain
/// identifier, `['na me']` otherwise.
pub(crate) fn push_member(base: &mut String, name: &str) {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '-');
    if plain {
        base.push('.');
        base.push_str(name);
    } else {
        base.push_str("['");
        for c in name.chars() {
            if c == '\'' || c == '\\' {
                base.push('\\');
            }
            base.push(c);
        }
        base.push_str("']");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_members_quoted_names_and_indexes() {
        let doc = json!({"card": {"number": "4242"}, "first name": 1, "items": [10, 20, 30]});
        let cases = [
            ("$", Some(doc.clone())),
            ("$.card.number", Some(json!("4242"))),
            ("$['card']['number']", Some(json!("4242"))),
            ("$[\"first name\"]", Some(json!(1))),
            ("$.items[1]", Some(json!(20))),
            ("$.items[-1]", Some(json!(30))),
            ("$.items[-4]", None),
            ("$.items[3]", None),
            ("$.card.cvc", None),
            ("$.items.card", None),
        ];
        for (path, expected) in cases {
            let p = JsonPath::parse(path).unwrap();
            assert_eq!(p.select(&doc).cloned(), expected, "{path}");
        }
    }

    #[test]
    fn select_mut_overwrites_in_place() {
        let mut doc = json!({"user": {"ssn": "123"}, "list": [{"a": 1}]});
        *JsonPath::parse("$.user.ssn")
            .unwrap()
            .select_mut(&mut doc)
            .unwrap() = json!("x");
        *JsonPath::parse("$.list[0].a")
            .unwrap()
            .select_mut(&mut doc)
            .unwrap() = json!(2);
        assert_eq!(doc, json!({"user": {"ssn": "x"}, "list": [{"a": 2}]}));
    }

    #[test]
    fn unsupported_syntax_is_named() {
        let cases = [
            ("card.number", "starts with `$`"),
            ("$..number", "descendant"),
            ("$.items[*]", "wildcards"),
            ("$.items[0:2]", "slices"),
            ("$.items[?@.a]", "filters"),
            ("$.card.", "member name"),
            ("$['unterminated", "unterminated"),
            ("$[0", "expected `]`"),
        ];
        for (path, fragment) in cases {
            let err = JsonPath::parse(path).unwrap_err();
            assert!(err.to_string().contains(fragment), "{path}: {err}");
        }
    }

    #[test]
    fn member_paths_quote_when_needed() {
        let mut s = "$".to_owned();
        push_member(&mut s, "amount");
        push_member(&mut s, "first name");
        push_member(&mut s, "it's");
        assert_eq!(s, "$.amount['first name']['it\\'s']");
        assert!(JsonPath::parse(&s).is_ok());
    }
}
