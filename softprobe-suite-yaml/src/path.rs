//! JSON paths as softprobe renders them: `$.name['odd-name'][3]`.

use std::fmt::Write as _;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// Renders segments as `$.name['odd-name'][3]`.
pub fn render(segments: &[Segment]) -> String {
    let mut out = String::from("$");
    for seg in segments {
        push_segment(&mut out, seg);
    }
    out
}

/// Appends one segment to a rendered path.
pub fn push_segment(out: &mut String, seg: &Segment) {
    match seg {
        Segment::Index(i) => {
            let _ = write!(out, "[{i}]");
        }
        Segment::Key(k) => push_key(out, k),
    }
}

/// Appends an object member to a rendered path: `.name` when the name
/// [is an identifier](is_identifier), `['name']` otherwise. In the quoted form `'` and `\`
/// are escaped with a backslash and control characters are written as the escapes of
/// RFC 9535 (`\n`, `\t`, `\u001f`...), so the path stays on one line and reads back as
/// the same name.
pub fn push_key(out: &mut String, key: &str) {
    if is_identifier(key) {
        out.push('.');
        out.push_str(key);
        return;
    }
    out.push_str("['");
    for c in key.chars() {
        match c {
            '\'' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < '\u{20}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push_str("']");
}

/// `path` followed by one more segment.
pub fn child(path: &str, seg: &Segment) -> String {
    let mut out = path.to_owned();
    push_segment(&mut out, seg);
    out
}

/// A name that renders as `.name`: an ASCII letter or `_`, then letters, digits or `_`.
pub fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The path one segment up, or `None` at the root.
pub fn parent(path: &str) -> Option<&str> {
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
    fn keys_that_are_not_identifiers_are_quoted_and_escaped() {
        let cases = [
            ("id", "$.id"),
            ("_x9", "$._x9"),
            ("x-id", "$['x-id']"),
            ("a.b", "$['a.b']"),
            ("it's", r"$['it\'s']"),
            (r"back\slash", r"$['back\\slash']"),
            ("", "$['']"),
            ("9lives", "$['9lives']"),
            ("café", "$['café']"),
            ("two\nlines\u{1}", r"$['two\nlines\u0001']"),
        ];
        for (key, expected) in cases {
            let mut out = "$".to_owned();
            push_key(&mut out, key);
            assert_eq!(out, expected, "{key:?}");
            assert_eq!(render(&[Segment::Key(key.to_owned())]), expected);
            assert_eq!(parent(&format!("{out}[0]")), Some(out.as_str()), "{key:?}");
            assert_eq!(parent(&out), Some("$"), "{key:?}");
        }
    }
}
