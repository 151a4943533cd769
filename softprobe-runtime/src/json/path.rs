//! Paths into JSON documents, in one syntax for every use: the singular JSONPath of RFC 9535
//! (`$`, `.name`, `['name']` / `["name"]`, `[index]`, negative counting from the end) that
//! rules (`bodyJsonPath`, `redactJsonPaths`) and scrub rules use ([`JsonPath`]), and the
//! patterns that name fields a comparison ignores or insists on ([`PathPattern`]): the same
//! steps plus one wildcard step, `[*]` (also `[]` or `.*`), matching every member or element
//! at its depth. The harness writes body fields as `.body.items[].at`;
//! [`PathPattern::parse_body`] reads that form.
//!
//! One parser reads both, so the same bad path gets the same error everywhere, naming the
//! character at fault. Slices, filters and descendants are refused rather than silently
//! matching nothing.

use std::fmt;

use serde_json::Value;

/// One step of a concrete path, as the diff walks a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(i64),
    Any,
}

/// Why a path was refused.
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

/// Reads the steps of `text` from character `from` on. `wildcards` allows the `[*]` step.
fn parse_segments(text: &str, from: usize, wildcards: bool) -> Result<Vec<Segment>, JsonPathError> {
    let err = |position: usize, message: &str| JsonPathError {
        path: text.to_owned(),
        position,
        message: message.to_owned(),
    };
    let chars: Vec<char> = text.chars().collect();
    let mut segments = Vec::new();
    let mut i = from;
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
                    if !wildcards {
                        return Err(err(start, "wildcards (`*`) are not supported"));
                    }
                    segments.push(Segment::Any);
                } else {
                    segments.push(Segment::Key(name));
                }
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
                    Some('*' | ']') if wildcards => {
                        if chars[i] == '*' {
                            i += 1;
                        }
                        segments.push(Segment::Any);
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
    Ok(segments)
}

/// Reads a `$`-rooted path.
fn parse_rooted(text: &str, wildcards: bool) -> Result<Vec<Segment>, JsonPathError> {
    if !text.starts_with('$') {
        return Err(JsonPathError {
            path: text.to_owned(),
            position: 0,
            message: "a JSONPath starts with `$`".to_owned(),
        });
    }
    parse_segments(text, 1, wildcards)
}

/// A parsed singular JSONPath: it selects at most one node, which is what rules need (a
/// value to compare, a value to overwrite in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    segments: Vec<Segment>,
}

impl JsonPath {
    /// Parses a singular JSONPath such as `$.card.number`, `$['first name']`, `$.items[0]`.
    pub fn parse(text: &str) -> Result<Self, JsonPathError> {
        Ok(JsonPath {
            text: text.to_owned(),
            segments: parse_rooted(text, false)?,
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

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    steps: Vec<Segment>,
}

impl PathPattern {
    /// Parses `$.a.b[0]['c d'][*]`: a pattern rooted at `$`. Errors read as
    /// [`JsonPathError`]s, the same as [`JsonPath::parse`] gives for the same path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        Self::checked(t, parse_rooted(t, true))
    }

    /// Parses a body field as tests write it: `.body.items[].at` (or `.items[].at`, or a
    /// `$`-rooted path). `.body` alone is the whole body.
    pub fn parse_body(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.starts_with('$') {
            return Self::parse(t);
        }
        let from = match t.strip_prefix(".body") {
            Some(r) if r.is_empty() || r.starts_with(['.', '[']) => ".body".len(),
            _ => 0,
        };
        if from < t.len() && !t[from..].starts_with(['.', '[']) {
            return Err(JsonPathError {
                path: t.to_owned(),
                position: 0,
                message: "a body field starts with `.body`, `.` or `$` (for example .body.id)"
                    .to_owned(),
            }
            .to_string());
        }
        Self::checked(t, parse_segments(t, from, true))
    }

    fn checked(text: &str, steps: Result<Vec<Segment>, JsonPathError>) -> Result<Self, String> {
        let steps = steps.map_err(|e| e.to_string())?;
        if steps
            .iter()
            .any(|s| matches!(s, Segment::Index(i) if *i < 0))
        {
            return Err(JsonPathError {
                path: text.to_owned(),
                position: text.find("[-").unwrap_or(0),
                message: "a pattern counts indexes from the start (negative indexes select one \
                          element of a known array: use them in rules)"
                    .to_owned(),
            }
            .to_string());
        }
        Ok(PathPattern {
            text: text.to_owned(),
            steps,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the concrete path `steps` is one this pattern names.
    pub fn matches(&self, steps: &[Step<'_>]) -> bool {
        self.steps.len() == steps.len()
            && self.steps.iter().zip(steps).all(|(m, s)| match (m, s) {
                (Segment::Any, _) => true,
                (Segment::Key(k), Step::Key(s)) => k == s,
                (Segment::Index(i), Step::Index(s)) => usize::try_from(*i).ok() == Some(*s),
                _ => false,
            })
    }

    /// Whether the pattern names `steps` or a field inside it.
    pub fn covers(&self, steps: &[Step<'_>]) -> bool {
        self.steps.len() <= steps.len() && self.matches(&steps[..self.steps.len()])
    }

    /// Replaces every value this pattern names in `doc` with `with`.
    pub fn replace_in(&self, doc: &mut Value, with: &Value) {
        fn walk(steps: &[Segment], node: &mut Value, with: &Value) {
            let Some((first, rest)) = steps.split_first() else {
                *node = with.clone();
                return;
            };
            match (first, node) {
                (Segment::Key(k), Value::Object(map)) => {
                    if let Some(v) = map.get_mut(k) {
                        walk(rest, v, with);
                    }
                }
                (Segment::Index(i), Value::Array(items)) => {
                    if let Some(v) = usize::try_from(*i).ok().and_then(|i| items.get_mut(i)) {
                        walk(rest, v, with);
                    }
                }
                (Segment::Any, Value::Array(items)) => {
                    items.iter_mut().for_each(|v| walk(rest, v, with));
                }
                (Segment::Any, Value::Object(map)) => {
                    map.values_mut().for_each(|v| walk(rest, v, with));
                }
                _ => {}
            }
        }
        walk(&self.steps, doc, with);
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Renders a concrete path as JSONPath: `$`, then `.name` / `['odd name']` / `[3]`.
pub fn render(steps: &[Step<'_>]) -> String {
    let mut out = String::from("$");
    for step in steps {
        match step {
            Step::Key(k) => push_member(&mut out, k),
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
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

    #[test]
    fn patterns_match_concrete_paths_with_wildcards() {
        let p = PathPattern::parse_body(".body.items[].at").unwrap();
        assert!(p.matches(&[Step::Key("items"), Step::Index(3), Step::Key("at")]));
        assert!(!p.matches(&[Step::Key("items"), Step::Index(3)]));
        let q = PathPattern::parse("$['first name'][0]").unwrap();
        assert!(q.matches(&[Step::Key("first name"), Step::Index(0)]));
        assert!(q.covers(&[Step::Key("first name"), Step::Index(0), Step::Key("x")]));
        assert!(PathPattern::parse_body(".body").unwrap().matches(&[]));
        assert!(PathPattern::parse("a.b").is_err());
        assert!(PathPattern::parse("$..a").is_err());
        assert!(PathPattern::parse("$[x]").is_err());
        assert!(PathPattern::parse_body("body.id").is_err());
    }

    #[test]
    fn rendering_quotes_odd_names() {
        assert_eq!(
            render(&[Step::Key("a"), Step::Index(2), Step::Key("new name")]),
            "$.a[2]['new name']"
        );
    }

    /// A bad path reads the same whether a rule or a comparison pattern refused it.
    #[test]
    fn the_same_bad_path_gets_the_same_error_everywhere() {
        for bad in [
            "card.number",
            "$..number",
            "$.items[0:2]",
            "$['open",
            "$[0",
            "$[x]",
        ] {
            let singular = JsonPath::parse(bad).unwrap_err().to_string();
            assert_eq!(PathPattern::parse(bad).unwrap_err(), singular, "{bad}");
        }
        assert!(JsonPath::parse("$.items[*]").is_err());
        assert!(PathPattern::parse("$.items[*].at").is_ok());
        assert!(PathPattern::parse("$.items[-1]").is_err());
    }
}
