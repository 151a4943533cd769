//! User scrub rules (`softprobe scrub --rules FILE`): named regular expressions with their
//! replacement, JSONPaths blanked in JSON bodies, and header names whose values are secrets,
//! all on top of the built-in patterns. The format is `spec/schemas/scrub-rules.schema.json`.

use std::fmt;

use regex::Regex;
use serde::Deserialize;

use super::REDACTED;
use crate::case::validate::locate::{for_json, parse_yaml};
use crate::json::path::JsonPath;

/// A user pattern: every match of `regex` becomes `replacement`.
#[derive(Debug, Clone)]
pub struct CustomPattern {
    /// The name findings are reported under.
    pub name: String,
    /// What to find.
    pub regex: Regex,
    /// What a match becomes (`[REDACTED]` unless the file says otherwise).
    pub replacement: String,
}

/// Scrub rules added to the built-in ones. The default adds nothing.
#[derive(Debug, Clone, Default)]
pub struct ScrubRules {
    /// Named patterns, tried before the built-in ones.
    pub patterns: Vec<CustomPattern>,
    /// JSONPaths blanked in JSON request and response bodies.
    pub json_paths: Vec<JsonPath>,
    /// Header names (lower case) whose whole value is redacted, in requests and responses.
    pub headers: Vec<String>,
}

/// Why a scrub rules file was refused.
///
/// Displays as `FILE:LINE:COLUMN: $.patterns[1].regex: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScrubRulesError {
    /// The file.
    pub source_name: String,
    /// Line, 1-based, when known.
    pub line: Option<usize>,
    /// Column, 1-based, when known.
    pub column: Option<usize>,
    /// JSON path of the offending value.
    pub json_path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScrubRulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source_name)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}: {}", self.json_path, self.message)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRules {
    version: u32,
    #[serde(default)]
    patterns: Vec<RawPattern>,
    #[serde(default)]
    json_paths: Vec<String>,
    #[serde(default)]
    headers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    name: String,
    regex: String,
    replacement: Option<String>,
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl ScrubRules {
    /// Reads a rules file (YAML or JSON). `source_name` names it in errors, which carry the
    /// line and the JSON path of the offending value.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Self, ScrubRulesError> {
        let raw: RawRules =
            crate::rules::parse::from_bytes(bytes, source_name).map_err(|e| ScrubRulesError {
                source_name: e.source_name,
                line: e.line,
                column: e.column,
                json_path: e.json_path,
                message: e.message,
            })?;
        // Semantic errors need the line of a path serde already accepted.
        let at = |json_path: String, message: String| {
            let text = std::str::from_utf8(bytes).unwrap_or_default();
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            let locator = if text.trim_start().starts_with(['{', '[']) {
                for_json(text)
            } else {
                parse_yaml(text).map(|(_, l)| l).unwrap_or_default()
            };
            let pos = locator.locate(&json_path);
            ScrubRulesError {
                source_name: source_name.to_owned(),
                line: Some(pos.line),
                column: Some(pos.column),
                json_path,
                message,
            }
        };
        if raw.version != 1 {
            return Err(at(
                "$.version".into(),
                format!("unsupported version {}; expected 1", raw.version),
            ));
        }
        let mut rules = ScrubRules::default();
        for (i, p) in raw.patterns.into_iter().enumerate() {
            if p.name.trim().is_empty() {
                return Err(at(
                    format!("$.patterns[{i}].name"),
                    "the name is empty".into(),
                ));
            }
            if rules.patterns.iter().any(|q| q.name == p.name) {
                return Err(at(
                    format!("$.patterns[{i}].name"),
                    format!("a pattern named {:?} is already defined", p.name),
                ));
            }
            let regex = Regex::new(&p.regex).map_err(|e| {
                let detail = e.to_string();
                let last = detail.lines().last().unwrap_or("invalid").trim();
                at(
                    format!("$.patterns[{i}].regex"),
                    format!("invalid regular expression: {last}"),
                )
            })?;
            if regex.is_match("") {
                return Err(at(
                    format!("$.patterns[{i}].regex"),
                    "the expression matches the empty string, so it would rewrite every value"
                        .into(),
                ));
            }
            rules.patterns.push(CustomPattern {
                name: p.name,
                regex,
                replacement: p.replacement.unwrap_or_else(|| REDACTED.to_owned()),
            });
        }
        for (i, path) in raw.json_paths.iter().enumerate() {
            let parsed = JsonPath::parse(path)
                .map_err(|e| at(format!("$.jsonPaths[{i}]"), e.to_string()))?;
            if parsed.as_str() == "$" {
                return Err(at(
                    format!("$.jsonPaths[{i}]"),
                    "`$` is the whole body; name a field inside it".into(),
                ));
            }
            rules.json_paths.push(parsed);
        }
        for (i, name) in raw.headers.iter().enumerate() {
            if !is_header_name(name) {
                return Err(at(
                    format!("$.headers[{i}]"),
                    format!("{name:?} is not a header name"),
                ));
            }
            rules.headers.push(name.to_ascii_lowercase());
        }
        Ok(rules)
    }

    /// Adds another file's rules to these.
    pub fn extend(&mut self, other: ScrubRules) {
        self.patterns.extend(other.patterns);
        self.json_paths.extend(other.json_paths);
        self.headers.extend(other.headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yaml_and_json_and_names_line_and_path_of_mistakes() {
        let yaml = b"version: 1\npatterns:\n  - name: ticket\n    regex: 'TCK-[0-9]{6}'\n    replacement: TCK-XXXXXX\njsonPaths: [\"$.customer.phone\"]\nheaders: [X-Internal-Token]\n";
        let rules = ScrubRules::parse(yaml, "r.yaml").unwrap();
        assert_eq!(rules.patterns[0].name, "ticket");
        assert_eq!(rules.patterns[0].replacement, "TCK-XXXXXX");
        assert_eq!(rules.json_paths[0].as_str(), "$.customer.phone");
        assert_eq!(rules.headers, ["x-internal-token"]);

        let bad = b"version: 1\npatterns:\n  - name: ok\n    regex: 'a+'\n  - name: broken\n    regex: '(unclosed'\n";
        let err = ScrubRules::parse(bad, "r.yaml").unwrap_err();
        assert_eq!(err.json_path, "$.patterns[1].regex");
        assert_eq!(err.line, Some(6), "{err}");
        assert!(
            err.to_string()
                .starts_with("r.yaml:6:5: $.patterns[1].regex: invalid regular expression"),
            "{err}"
        );

        let json = b"{\n  \"version\": 1,\n  \"jsonPaths\": [\"$.a\", \"$..b\"]\n}";
        let err = ScrubRules::parse(json, "r.json").unwrap_err();
        assert_eq!(err.json_path, "$.jsonPaths[1]");
        assert_eq!(err.line, Some(3), "{err}");

        let err = ScrubRules::parse(b"version: 1\nheader: [a]\n", "r.yaml").unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.message.contains("unknown field `header`"), "{err}");

        let err = ScrubRules::parse(
            b"version: 1\npatterns:\n  - name: e\n    regex: 'x*'\n",
            "r",
        )
        .unwrap_err();
        assert!(err.message.contains("empty string"), "{err}");
    }
}
