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
//!
//! Paths softprobe writes (diff fields, validation and deserialization errors) are rendered
//! by [`softprobe_suite_yaml::path::push_key`], which the test macros share: `.name` for an
//! identifier, `['x-id']` otherwise, with `'`, `\` and control characters escaped so the
//! parser here reads the same member back.

use std::fmt;

use serde_json::Value;
pub(crate) use softprobe_suite_yaml::path::push_key;

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
                                    let (c, len) = unescape(&chars[i + 1..])
                                        .map_err(|message| err(i, message))?;
                                    name.push(c);
                                    i += 1 + len;
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

/// Reads the escape after a `\\` in a quoted name (RFC 9535: `\\b \\f \\n \\r \\t \\uXXXX`,
/// any other character stands for itself): the character and how many characters it took.
fn unescape(rest: &[char]) -> Result<(char, usize), &'static str> {
    let hex = |from: usize| -> Option<u32> {
        let digits: String = rest.get(from..from + 4)?.iter().collect();
        u32::from_str_radix(&digits, 16).ok()
    };
    let c = match rest.first().ok_or("unterminated escape")? {
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'u' => {
            let bad = "expected four hex digits after `\\u`";
            let unit = hex(1).ok_or(bad)?;
            if (0xD800..0xDC00).contains(&unit) {
                let low = (rest.get(5..7) == Some(&['\\', 'u'][..]))
                    .then(|| hex(7))
                    .flatten()
                    .filter(|low| (0xDC00..0xE000).contains(low))
                    .ok_or("a high surrogate must be followed by a `\\u` low surrogate")?;
                let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
                return c.map(|c| (c, 11)).ok_or(bad);
            }
            return char::from_u32(unit)
                .map(|c| (c, 5))
                .ok_or("a lone surrogate is not a character");
        }
        other => *other,
    };
    Ok((c, 1))
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

/// Renders a concrete path as JSONPath: `$`, then `.name` / `['odd name']` / `[3]`, the
/// form [`JsonPath::parse`] reads back ([`push_key`] owns the member syntax).
pub fn render(steps: &[Step<'_>]) -> String {
    let mut out = String::from("$");
    for step in steps {
        match step {
            Step::Key(k) => push_key(&mut out, k),
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// `path` followed by the member `key`.
pub(crate) fn child_key(path: &str, key: &str) -> String {
    let mut out = path.to_owned();
    push_key(&mut out, key);
    out
}

/// `base` followed by the steps of a [`serde_path_to_error`] path (`rules[2].when`), each
/// member rendered by [`push_key`]. A step serde could not name ends the path there. The
/// tests' oracle: the models are read without path tracking, their errors placed by position
/// (`case::validate::locate`), and the tests check those paths against this tracker's.
#[cfg(test)]
pub(crate) fn join_serde(base: &str, path: &serde_path_to_error::Path) -> String {
    let mut out = base.to_owned();
    for seg in path {
        match seg {
            serde_path_to_error::Segment::Seq { index } => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
            serde_path_to_error::Segment::Map { key }
            | serde_path_to_error::Segment::Enum { variant: key } => push_key(&mut out, key),
            serde_path_to_error::Segment::Unknown => break,
        }
    }
    out
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
        push_key(&mut s, "amount");
        push_key(&mut s, "first name");
        push_key(&mut s, "it's");
        assert_eq!(s, "$.amount['first name']['it\\'s']");
        assert!(JsonPath::parse(&s).is_ok());
    }

    /// Every rendered path reads back, as a rule path and as a pattern, to the same member.
    #[test]
    fn awkward_names_round_trip_through_render_and_parse() {
        let names = [
            "x-id",
            "a.b",
            "it's",
            "back\\slash",
            "",
            "größe",
            "名前",
            "9lives",
            "0",
            "say \"hi\"",
            "a['b']",
            "$",
            "*",
            "tab\there\nnew\r\u{1}\u{7f}",
            "emoji 🦀",
            "plain_name",
        ];
        for name in names {
            let doc = json!({ name: [{ name: "found" }] });
            let steps = [Step::Key(name), Step::Index(0), Step::Key(name)];
            let text = render(&steps);
            assert!(!text.contains('\n'), "{text}");
            let path = JsonPath::parse(&text).unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_eq!(
                path.select(&doc),
                Some(&json!("found")),
                "{name:?} as {text}"
            );
            let pattern = PathPattern::parse(&text).unwrap();
            assert!(pattern.matches(&steps), "{name:?} as {text}");
            assert!(!pattern.matches(&[Step::Key(name), Step::Index(0), Step::Key("other")]));
        }
        assert_eq!(render(&[Step::Key("x-id")]), "$['x-id']");
        assert_eq!(render(&[Step::Key("a.b")]), "$['a.b']");
    }

    /// A deserialization error names the member the way every other message does.
    #[test]
    fn serde_error_paths_render_members_like_every_other_path() {
        type Doc = std::collections::BTreeMap<String, Vec<std::collections::BTreeMap<String, u32>>>;
        let text = r#"{"ok": [], "x-id": [{"c.d": 1}, {"it's": "nan"}]}"#;
        let mut de = serde_json::Deserializer::from_str(text);
        let err = serde_path_to_error::deserialize::<_, Doc>(&mut de).unwrap_err();
        assert_eq!(join_serde("$", err.path()), r"$['x-id'][1]['it\'s']");
        assert_eq!(
            join_serde("$.rules[2]", err.path()),
            r"$.rules[2]['x-id'][1]['it\'s']"
        );
    }

    #[test]
    fn escapes_of_rfc_9535_are_read_in_quoted_names() {
        let doc = json!({"a\u{8}\u{c}\n\r\t\u{1f}": 1, "😀": 2, "q\"": 3});
        for (text, expected) in [
            (r"$['a\b\f\n\r\t\u001f']", 1),
            (r"$['\ud83d\ude00']", 2),
            (r"$['\u1F600']", 0),
            (r#"$["q\""]"#, 3),
        ] {
            let got = JsonPath::parse(text).unwrap().select(&doc).cloned();
            assert_eq!(got, (expected > 0).then(|| json!(expected)), "{text}");
        }
        for (bad, fragment) in [
            (r"$['\u12']", "four hex digits"),
            (r"$['\ud83d']", "low surrogate"),
            (r"$['\ude00']", "lone surrogate"),
            (r"$['\", "unterminated escape"),
        ] {
            let err = JsonPath::parse(bad).unwrap_err().to_string();
            assert!(err.contains(fragment), "{bad}: {err}");
        }
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
