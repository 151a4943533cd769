//! Validation of case files, trace documents, rules and policies: the JSON Schemas of
//! `spec/schemas/` (embedded at build time) plus the semantic checks a schema cannot express.
//!
//! Every finding names the file, the JSON path and the line and column, whether it came from
//! the syntax, the schema, the case model's own reading, or a semantic check. The CLI's
//! `validate` commands print a [`Report`]; the control API calls [`validate_json`].

#[cfg(not(feature = "schema"))]
mod lean;
pub(crate) mod locate;
mod schemas;
mod semantic;

use std::fmt;

use serde::Serialize;
use serde_json::Value;

#[cfg(feature = "schema")]
pub use schemas::validate_json;
pub use schemas::{SchemaKind, documents as schema_documents};

use self::locate::{Locator, Position};
use self::semantic::Issue;
use super::{Case, CaseError, TracesData};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The document is unusable as it is.
    Error,
    /// Worth a look (legacy spellings, size guidance, a missing leg of the capture).
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem, located. Serializes as `{"severity", "code", "jsonPath", "line", "column",
/// "message"}` for machine-readable output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable machine-readable code, e.g. `syntax`, `unknown-field`, `missing-status`.
    pub code: &'static str,
    /// JSON path of the offending value, e.g. `$.traces[0].resourceSpans[0]`; `$` for the
    /// whole document.
    pub json_path: String,
    /// Line in the source, 1-based.
    pub line: usize,
    /// Column in the source, 1-based, in characters.
    pub column: usize,
    /// What is wrong, and what was expected.
    pub message: String,
}

/// Everything found in one document. Serializes as `{"sourceName", "findings": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The file name the findings refer to.
    pub source_name: String,
    /// Findings in source order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when there is no error (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors().next().is_none()
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }
}

impl fmt::Display for Report {
    /// One line per finding: `FILE:LINE:COL: error[CODE]: $.json.path: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(
                f,
                "{}:{}:{}: {}[{}]: {}: {}",
                self.source_name,
                finding.line,
                finding.column,
                finding.severity,
                finding.code,
                finding.json_path,
                finding.message
            )?;
        }
        Ok(())
    }
}

/// Whether this build checks documents against the JSON Schemas of `spec/schemas/` (the
/// `schema` feature). Without them, a case is validated by its syntax, the case model and the
/// semantic checks.
pub const SCHEMA_ENGINE: bool = cfg!(feature = "schema");

/// Validates a case file: syntax, `case.schema.json`, the case model's reading of every span,
/// and the semantic checks (readable HTTP hops, ids, legacy spellings, size guidance, embedded
/// rules).
pub fn validate_case(bytes: &[u8], source_name: &str) -> Report {
    check_case(bytes, source_name).0
}

/// Validates a case file like [`validate_case`] and, when it is valid, returns the case the
/// validation read, so a caller that needs both reads the file once.
pub fn read_valid_case(bytes: &[u8], source_name: &str) -> Result<Case, Report> {
    match check_case(bytes, source_name) {
        (report, Some(case)) if report.is_valid() => Ok(case),
        (report, _) => Err(report),
    }
}

/// The report of [`validate_case`], with the case when the model could read it.
fn check_case(bytes: &[u8], source_name: &str) -> (Report, Option<Case>) {
    let mut report = ReportBuilder::new(source_name);
    let Some(doc) = report.load(bytes, Format::Json) else {
        return (report.finish(), None);
    };
    #[cfg_attr(feature = "schema", expect(unused_mut))]
    let mut schema_issues = report.schema(SchemaKind::Case, &doc);
    #[cfg(not(feature = "schema"))]
    lean::case(&doc.value, &mut schema_issues);
    let mut issues = Vec::new();
    let case = match Case::from_slice_named(bytes, source_name) {
        Ok(case) => {
            let mut tally = semantic::Tally::default();
            for (t, trace) in case.traces.iter().enumerate() {
                let prefix = format!("$.traces[{t}]");
                let raw = doc.value.get("traces").and_then(|v| v.get(t));
                semantic::trace(&prefix, trace, raw, &mut tally, &mut issues);
            }
            semantic::totals("$.traces", &tally, &mut issues);
            if let Some(rules) = &case.rules {
                semantic::rules("$.rules", rules, &mut issues);
                // The rules as a session reads them: a mistake the schema did not already
                // report (or that a build without the schema engine has only this to find).
                if let Err(e) = crate::rules::rules_from_values(rules, source_name, "$.rules")
                    && !overlaps(&e.json_path, &schema_issues)
                    && !overlaps(&e.json_path, &issues)
                {
                    issues.push(Issue {
                        severity: Severity::Error,
                        code: "rule",
                        path: e.json_path,
                        message: e.message,
                    });
                }
            }
            Some(case)
        }
        Err(err) => {
            issues.extend(model_issue(err, &schema_issues));
            None
        }
    };
    report.add(&doc, schema_issues);
    report.add(&doc, issues);
    (report.finish(), case)
}

/// Validates one OTLP trace document (the body of `/v1/traces` or `/v1/inject`, or one entry
/// of a case's `traces[]` saved on its own).
pub fn validate_trace(bytes: &[u8], source_name: &str) -> Report {
    let mut report = ReportBuilder::new(source_name);
    let Some(doc) = report.load(bytes, Format::Json) else {
        return report.finish();
    };
    let schema_issues = report.schema(SchemaKind::Trace, &doc);
    let mut issues = Vec::new();
    match locate::from_json::<TracesData>(bytes) {
        Ok(trace) => {
            let mut tally = semantic::Tally::default();
            semantic::trace("$", &trace, Some(&doc.value), &mut tally, &mut issues);
            if tally.spans == 0 {
                issues.push(Issue {
                    severity: Severity::Warning,
                    code: "empty",
                    path: "$".to_owned(),
                    message: "the document holds no span".to_owned(),
                });
            }
        }
        Err(err) => {
            if !overlaps(&err.json_path, &schema_issues) {
                issues.push(Issue {
                    severity: Severity::Error,
                    code: "parse",
                    path: err.json_path,
                    message: err.message,
                });
            }
        }
    }
    report.add(&doc, schema_issues);
    report.add(&doc, issues);
    report.finish()
}

/// Validates a rules document (`{"version": 1, "rules": [...]}` or a bare array), JSON or
/// YAML (YAML when the name ends in `.yaml`/`.yml` or the text does not open with `{`/`[`).
pub fn validate_rules(bytes: &[u8], source_name: &str) -> Report {
    let mut report = ReportBuilder::new(source_name);
    let Some(doc) = report.load(bytes, Format::detect(bytes, source_name)) else {
        return report.finish();
    };
    let schema_issues = report.schema(SchemaKind::Rules, &doc);
    let mut issues = Vec::new();
    match &doc.value {
        Value::Array(rules) => semantic::rules("$", rules, &mut issues),
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get("rules") {
                semantic::rules("$.rules", rules, &mut issues);
            }
        }
        _ => {}
    }
    report.add(&doc, schema_issues);
    report.add(&doc, issues);
    report.finish()
}

/// Validates a policy document, JSON or YAML (detected as for [`validate_rules`]).
pub fn validate_policy(bytes: &[u8], source_name: &str) -> Report {
    let mut report = ReportBuilder::new(source_name);
    let Some(doc) = report.load(bytes, Format::detect(bytes, source_name)) else {
        return report.finish();
    };
    let schema_issues = report.schema(SchemaKind::Policy, &doc);
    let mut issues = Vec::new();
    semantic::policy(&doc.value, &mut issues);
    report.add(&doc, schema_issues);
    report.add(&doc, issues);
    report.finish()
}

/// True when an issue already sits on `path`, above it or below it: the case model's first
/// error is then the same mistake the schema reported.
fn overlaps(path: &str, issues: &[Issue]) -> bool {
    issues.iter().any(|i| {
        i.severity == Severity::Error
            && (path.starts_with(i.path.as_str()) || i.path.starts_with(path))
    })
}

fn model_issue(err: CaseError, schema_issues: &[Issue]) -> Option<Issue> {
    let (path, message) = match err {
        CaseError::Parse {
            json_path, message, ..
        } => (json_path, message),
        CaseError::Exchange {
            json_path, source, ..
        } => (json_path, source.to_string()),
        other => ("$".to_owned(), other.to_string()),
    };
    (!overlaps(&path, schema_issues)).then_some(Issue {
        severity: Severity::Error,
        code: "parse",
        path,
        message,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

impl Format {
    fn detect(bytes: &[u8], source_name: &str) -> Self {
        let name = source_name.to_ascii_lowercase();
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            return Format::Yaml;
        }
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{' | b'[') => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// A parsed document, its repeated keys, and where its paths are.
struct Document<'t> {
    value: Value,
    /// The JSON paths of repeated keys, each at its repetition.
    repeated_keys: Vec<String>,
    /// Where each path is; for JSON built on first use from `json`, since a document without
    /// findings never needs it (the suite runner validates every case it loads).
    locator: std::cell::OnceCell<Locator>,
    json: &'t str,
}

impl Document<'_> {
    fn locator(&self) -> &Locator {
        self.locator.get_or_init(|| locate::for_json(self.json))
    }
}

struct ReportBuilder {
    source_name: String,
    findings: Vec<Finding>,
}

impl ReportBuilder {
    fn new(source_name: &str) -> Self {
        ReportBuilder {
            source_name: source_name.to_owned(),
            findings: Vec::new(),
        }
    }

    fn syntax(&mut self, pos: Position, message: String) {
        self.findings.push(Finding {
            severity: Severity::Error,
            code: "syntax",
            json_path: "$".to_owned(),
            line: pos.line,
            column: pos.column,
            message,
        });
    }

    /// Parses the bytes; a syntax error becomes the report's only finding.
    fn load<'t>(&mut self, bytes: &'t [u8], format: Format) -> Option<Document<'t>> {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let before = &bytes[..e.valid_up_to()];
                let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                let line_start = before
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                let column = String::from_utf8_lossy(&before[line_start..])
                    .chars()
                    .count()
                    + 1;
                self.syntax(
                    Position { line, column },
                    "the file is not UTF-8 text".to_owned(),
                );
                return None;
            }
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        match format {
            Format::Json => match serde_json::from_str::<Value>(text) {
                Ok(value) => Some(Document {
                    value,
                    repeated_keys: locate::repeated_keys(text),
                    locator: std::cell::OnceCell::new(),
                    json: text,
                }),
                Err(e) => {
                    let pos = Position {
                        line: e.line().max(1),
                        column: e.column().max(1),
                    };
                    self.syntax(
                        pos,
                        format!("invalid JSON: {}", locate::without_position(&e.to_string())),
                    );
                    None
                }
            },
            Format::Yaml => match locate::parse_yaml(text) {
                Ok((value, locator)) => Some(Document {
                    value,
                    repeated_keys: locator.duplicate_keys().to_vec(),
                    locator: locator.into(),
                    json: "",
                }),
                Err(e) => {
                    self.syntax(e.position, format!("invalid YAML: {}", e.message));
                    None
                }
            },
        }
    }

    /// Repeated keys, then schema violations: the structural problems of the document.
    fn schema(&mut self, kind: SchemaKind, doc: &Document<'_>) -> Vec<Issue> {
        let duplicates = doc.repeated_keys.iter().map(|path| Issue {
            severity: Severity::Error,
            code: "duplicate-key",
            path: path.clone(),
            message: "this key repeats an earlier key of the same object; give it once".to_owned(),
        });
        let violations = schemas::violations(kind, &doc.value)
            .into_iter()
            .map(|v| Issue {
                severity: Severity::Error,
                code: v.code,
                path: locate::render(&v.path),
                message: v.message,
            });
        duplicates.chain(violations).collect()
    }

    fn add(&mut self, doc: &Document<'_>, issues: Vec<Issue>) {
        for issue in issues {
            let pos = doc.locator().locate(&issue.path);
            self.findings.push(Finding {
                severity: issue.severity,
                code: issue.code,
                json_path: issue.path,
                line: pos.line,
                column: pos.column,
                message: issue.message,
            });
        }
    }

    fn finish(mut self) -> Report {
        // Source order reads best; the sort is stable so equal positions keep check order.
        self.findings
            .sort_by_key(|f| (f.line, f.column, f.severity));
        Report {
            source_name: self.source_name,
            findings: self.findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASE: &str = r#"{
  "version": "1.0.0",
  "caseId": "unit",
  "createdAt": "2026-04-20T10:00:00Z",
  "traces": [{"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0102030405060708", "kind": 3,
     "attributes": [
       {"key": "http.method", "value": {"stringValue": "GET"}},
       {"key": "url.host", "value": {"stringValue": "inventory"}},
       {"key": "url.path", "value": {"stringValue": "/stock"}}
     ]}
  ]}]}]}]
}"#;

    #[test]
    fn semantic_findings_are_located_and_rendered() {
        let report = validate_case(CASE.as_bytes(), "unit.case.json");
        let text = report.to_string();
        assert!(!report.is_valid(), "{text}");
        assert!(
            text.contains("unit.case.json:6:5: error[missing-status]: $.traces[0].resourceSpans[0].scopeSpans[0].spans[0]: span has no response status"),
            "{text}"
        );
        assert!(
            text.contains("unit.case.json:8:8: warning[legacy-attribute]: $.traces[0].resourceSpans[0].scopeSpans[0].spans[0].attributes[0]: `http.method` is a legacy spelling; write `http.request.method`"),
            "{text}"
        );
        assert!(text.contains("warning[no-inbound]: $.traces"), "{text}");
        assert_eq!(report.errors().count(), 1, "{text}");
    }

    #[test]
    fn syntax_errors_stop_early_with_a_position() {
        let report = validate_case(b"{\n  \"version\": \"1.0.0\",\n  \"caseId\": }\n", "x.json");
        assert_eq!(report.findings.len(), 1);
        let f = &report.findings[0];
        assert_eq!((f.code, f.line, f.column), ("syntax", 3, 13));
        assert!(
            f.message.starts_with("invalid JSON: expected value"),
            "{}",
            f.message
        );
    }

    // The `enum` finding comes from the JSON Schema engine.
    #[cfg(feature = "schema")]
    #[test]
    fn rules_in_yaml_are_located_by_line() {
        let yaml = "version: 1\nrules:\n  - id: a\n    name: b\n    when: { direction: sideways }\n    then: { action: passthrough }\n";
        let report = validate_rules(yaml.as_bytes(), "rules.yaml");
        let text = report.to_string();
        assert!(
            text.contains("rules.yaml:4:5: error[name-mismatch]: $.rules[0].name:"),
            "{text}"
        );
        assert!(
            text.contains("rules.yaml:5:13: error[enum]: $.rules[0].when.direction: expected one of \"inbound\", \"outbound\", found string \"sideways\""),
            "{text}"
        );
    }

    #[test]
    fn policy_allowlist_patterns_are_checked() {
        let report = validate_policy(
            br#"{"externalHttp": "strict", "externalAllowlist": ["*.internal", "api.*.com"]}"#,
            "policy.json",
        );
        let errors: Vec<_> = report.errors().map(|f| f.json_path.as_str()).collect();
        assert_eq!(errors, ["$.externalAllowlist[1]"], "{report}");
    }
}
