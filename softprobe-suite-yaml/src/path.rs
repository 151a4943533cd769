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
}
