//! Conformance of everything the workspace ships as data: every fixture and every complete
//! JSON example of `spec/` parses, validates without errors and round-trips through the case
//! writer; every file of `fixtures/invalid/` yields its expected error, named by file, JSON
//! path and line (the full report is an insta snapshot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use softprobe_runtime::case::validate::{
    Report, SchemaKind, validate_case, validate_json, validate_policy, validate_rules,
    validate_trace,
};
use softprobe_runtime::case::{Case, Exchange};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_owned()
}

/// Files under `dir` (relative to the workspace root) whose name ends with `suffix`, sorted.
fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {suffix} file in {dir}");
    out
}

/// The path as reports name it: relative to the workspace root.
fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn assert_no_errors(report: &Report) {
    assert!(
        report.is_valid(),
        "{} has errors:\n{report}",
        report.source_name
    );
}

/// Parse → write → parse gives the same case, and writing is deterministic.
fn assert_round_trip(bytes: &[u8], name: &str) -> Case {
    let case = Case::from_slice_named(bytes, name).unwrap_or_else(|e| panic!("{e}"));
    let written = case.to_json_bytes();
    let again = Case::from_slice_named(&written, name).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, case, "{name}: the case changed through a write");
    assert_eq!(
        again.to_json_bytes(),
        written,
        "{name}: writing twice is not byte-identical"
    );
    case.exchanges_named(name).unwrap_or_else(|e| panic!("{e}"));
    case
}

/// Fixtures written in the canonical form, which the writer must reproduce byte for byte.
const CANONICAL: &[&str] = &[
    "binary-body.case.json",
    "checkout.case.json",
    "minimal.case.json",
    "repeated-call.case.json",
    "seed-example.case.json",
    "with-rules-and-fixtures.case.json",
];

#[test]
fn every_fixture_case_validates_and_round_trips() {
    let cases = files("fixtures/cases", ".case.json");
    for path in &cases {
        let name = display(path);
        let bytes = std::fs::read(path).unwrap();
        assert_no_errors(&validate_case(&bytes, &name));
        let case = assert_round_trip(&bytes, &name);
        let file = path.file_name().unwrap().to_str().unwrap();
        if CANONICAL.contains(&file) {
            assert_eq!(
                String::from_utf8(case.to_json_bytes()).unwrap(),
                String::from_utf8(bytes).unwrap(),
                "{name} is not in the canonical form the writer produces"
            );
        }
    }
    // Every canonical name above is a real file: a rename cannot silently skip the check.
    for file in CANONICAL {
        assert!(
            cases.iter().any(|p| p.ends_with(file)),
            "missing fixture {file}"
        );
    }
}

#[test]
fn fixture_cases_without_warnings_are_the_complete_scenarios() {
    // The seed scenario and its variants record both legs and use only canonical names.
    for file in [
        "checkout.case.json",
        "binary-body.case.json",
        "repeated-call.case.json",
        "with-rules-and-fixtures.case.json",
    ] {
        let path = root().join("fixtures/cases").join(file);
        let report = validate_case(&std::fs::read(&path).unwrap(), file);
        assert!(report.findings.is_empty(), "{file} has findings:\n{report}");
    }
}

#[test]
fn fixture_rules_and_policies_validate() {
    for path in files("fixtures/rules", "")
        .into_iter()
        .filter(|p| !p.is_dir())
    {
        let name = display(&path);
        let report = validate_rules(&std::fs::read(&path).unwrap(), &name);
        assert!(report.findings.is_empty(), "{report}");
    }
    for path in files("fixtures/policy", ".json") {
        let name = display(&path);
        let report = validate_policy(&std::fs::read(&path).unwrap(), &name);
        assert!(report.findings.is_empty(), "{report}");
    }
}

#[test]
fn protobuf_json_case_reads_as_the_same_hops_as_the_hex_case() {
    let hex = Case::read(root().join("fixtures/cases/checkout.case.json")).unwrap();
    let pb = Case::read(root().join("fixtures/cases/protobuf-json.case.json")).unwrap();
    assert_eq!(
        pb.traces.len(),
        2,
        "the original runtime writes one entry per upload"
    );
    let by_span = |case: &Case| -> BTreeMap<String, Exchange> {
        case.exchanges()
            .unwrap()
            .into_iter()
            .map(|ex| (ex.span_id.to_string(), ex))
            .collect()
    };
    let hex = by_span(&hex);
    let pb = by_span(&pb);
    assert_eq!(
        hex.keys().collect::<Vec<_>>(),
        pb.keys().collect::<Vec<_>>()
    );
    for (span_id, expected) in &hex {
        assert_eq!(&pb[span_id], expected, "hop {span_id} reads differently");
    }
    // Spot-check what the aliases had to provide.
    let stripe = &pb["a3f1c2d4e5b60718"];
    assert_eq!(stripe.url(), "https://api.stripe.com/v1/payment_intents");
    assert_eq!(stripe.status, Some(200));
    let fragment = &pb["9c8b7a6f5e4d3c2b"];
    assert_eq!(
        (
            fragment.method.as_str(),
            fragment.path.as_str(),
            fragment.query.as_deref()
        ),
        ("GET", "/shipping", Some("zip=94107"))
    );
}

#[test]
fn protobuf_json_case_warns_about_its_legacy_spellings() {
    let path = root().join("fixtures/cases/protobuf-json.case.json");
    let report = validate_case(&std::fs::read(&path).unwrap(), "protobuf-json.case.json");
    assert_no_errors(&report);
    let codes: Vec<&str> = report.warnings().map(|f| f.code).collect();
    for code in ["legacy-attribute", "query-in-path"] {
        assert!(codes.contains(&code), "no {code} warning:\n{report}");
    }
}

/// One fenced JSON block of a markdown file.
struct Example {
    file: String,
    line: usize,
    kind: String,
    text: String,
}

/// ```` ```json KIND ```` blocks. KIND says what the document is (`case`, `trace`, `rules`,
/// `policy`, `fixtures-auth`, `rule`, or a control schema such as
/// `control/close.response`); `snippet` marks a fragment that is not a whole document.
fn examples(path: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut current: Option<Example> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None => {
                if let Some(info) = line.trim_start().strip_prefix("```json") {
                    current = Some(Example {
                        file: display(path),
                        line: n + 1,
                        kind: info.trim().to_owned(),
                        text: String::new(),
                    });
                }
            }
            Some(ex) => {
                if line.trim_start().starts_with("```") {
                    out.push(current.take().unwrap());
                } else {
                    ex.text.push_str(line);
                    ex.text.push('\n');
                }
            }
        }
    }
    assert!(
        current.is_none(),
        "{}: unterminated code block",
        display(path)
    );
    out
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

#[test]
fn every_complete_json_example_in_the_spec_validates() {
    let mut docs = Vec::new();
    markdown_files(&root().join("spec"), &mut docs);
    docs.sort();
    let mut checked = BTreeMap::<String, usize>::new();
    let mut skipped = 0;
    for doc in &docs {
        for ex in examples(doc) {
            let at = format!("{}:{}", ex.file, ex.line);
            if ex.kind == "snippet" {
                skipped += 1;
                continue;
            }
            let kind = if ex.kind.is_empty() {
                match infer_kind(&ex.text) {
                    Inferred::Kind(kind) => kind.to_owned(),
                    Inferred::NotJson(e) => {
                        // Untagged and not JSON: a placeholder-laden sketch such as
                        // `{"rules": [RULE, ...]}`. Tag it `json snippet` to say so.
                        eprintln!(
                            "{at}: untagged ```json block is not JSON ({e}); skipped as a snippet"
                        );
                        skipped += 1;
                        continue;
                    }
                    Inferred::Unknown => panic!(
                        "{at}: cannot tell what this ```json block is; tag it `json <kind>` (case, trace, rules, policy, rule, fixtures-auth, control/...) or `json snippet`"
                    ),
                }
            } else {
                ex.kind.clone()
            };
            let bytes = ex.text.as_bytes();
            let report = match kind.as_str() {
                "case" => {
                    let report = validate_case(bytes, &at);
                    if report.is_valid() {
                        assert_round_trip(bytes, &at);
                    }
                    report
                }
                "trace" => validate_trace(bytes, &at),
                "rules" => {
                    let parsed = softprobe_runtime::rules::parse_rules_document(bytes, &at);
                    assert!(parsed.is_ok(), "{}", parsed.unwrap_err());
                    validate_rules(bytes, &at)
                }
                "policy" => {
                    let parsed = softprobe_runtime::policy::parse_policy(bytes, &at);
                    assert!(parsed.is_ok(), "{}", parsed.unwrap_err());
                    validate_policy(bytes, &at)
                }
                other => {
                    let kind = SchemaKind::ALL
                        .iter()
                        .find(|k| {
                            let file = k.file();
                            file.strip_suffix(".schema.json") == Some(other)
                                || file.strip_suffix(".json") == Some(other)
                        })
                        .unwrap_or_else(|| {
                            panic!("{at}: ```json block of unknown kind {other:?}; give one of case, trace, rules, policy, rule, fixtures-auth, control/..., snippet")
                        });
                    let value: serde_json::Value =
                        serde_json::from_str(&ex.text).unwrap_or_else(|e| panic!("{at}: {e}"));
                    if let Err(errors) = validate_json(*kind, &value) {
                        panic!("{at}: {errors:?}");
                    }
                    *checked.entry(kind.file().to_owned()).or_default() += 1;
                    continue;
                }
            };
            assert_no_errors(&report);
            *checked.entry(kind).or_default() += 1;
        }
    }
    // The spec shows at least one whole document of each main kind.
    for kind in ["case", "trace", "rules", "policy"] {
        assert!(
            checked.contains_key(kind),
            "no complete `{kind}` example in spec/ (checked {checked:?}, skipped {skipped})"
        );
    }
}

enum Inferred {
    Kind(&'static str),
    NotJson(serde_json::Error),
    Unknown,
}

/// What an untagged block is, from its top-level keys.
fn infer_kind(text: &str) -> Inferred {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Inferred::NotJson(e),
    };
    let Some(obj) = value.as_object() else {
        return if value.is_array() {
            Inferred::Kind("rules")
        } else {
            Inferred::Unknown
        };
    };
    let has = |k: &str| obj.contains_key(k);
    Inferred::Kind(if has("traces") && has("caseId") {
        "case"
    } else if has("resourceSpans") {
        "trace"
    } else if has("externalHttp") || has("externalAllowlist") || has("defaultOnMiss") {
        "policy"
    } else if has("rules") {
        "rules"
    } else if has("then") {
        "rule"
    } else if has("error") && has("candidates") {
        "control/strict-miss.response"
    } else if has("error") {
        // The proxies answer some errors themselves, with codes of their own.
        let control =
            SchemaKind::ErrorResponse.schema()["properties"]["error"]["properties"]["code"]["enum"]
                .as_array()
                .unwrap();
        if control.contains(&value["error"]["code"]) {
            "control/error.response"
        } else {
            "proxy/error.response"
        }
    } else {
        return Inferred::Unknown;
    })
}

fn validator_for(file: &str) -> fn(&[u8], &str) -> Report {
    if file.ends_with(".case.json") {
        validate_case
    } else if file.ends_with(".trace.json") {
        validate_trace
    } else if file.ends_with(".policy.json") {
        validate_policy
    } else if file.ends_with(".rules.json") || file.ends_with(".rules.yaml") {
        validate_rules
    } else {
        panic!(
            "fixtures/invalid/{file}: name it *.case.json, *.trace.json, *.policy.json or *.rules.(json|yaml)"
        )
    }
}

#[test]
fn every_invalid_fixture_yields_its_expected_error() {
    let all = files("fixtures/invalid", "");
    let documents: Vec<&PathBuf> = all
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with(".expected"))
        .collect();
    assert!(
        documents.len() >= 25,
        "only {} invalid fixtures",
        documents.len()
    );
    for path in documents {
        let file = path.file_name().unwrap().to_str().unwrap();
        let name = display(path);
        let expected_path = PathBuf::from(format!("{}.expected", path.display()));
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let (code, json_path) = expected
            .trim()
            .split_once(' ')
            .unwrap_or_else(|| panic!("{}: expected `CODE JSONPATH`", expected_path.display()));

        let report = validator_for(file)(&std::fs::read(path).unwrap(), &name);
        let text = report.to_string();
        assert!(!report.is_valid(), "{name} validates, but it is broken");
        assert!(
            report
                .errors()
                .any(|f| f.code == code && f.json_path == json_path),
            "{name}: no error[{code}] at {json_path}:\n{text}"
        );
        // Every error line names the file, a line, a column and a JSON path.
        for finding in report.errors() {
            assert!(finding.line >= 1 && finding.column >= 1, "{text}");
            assert!(finding.json_path.starts_with('$'), "{text}");
        }
        for line in text.lines() {
            assert!(line.starts_with(&format!("{name}:")), "{line}");
        }
        insta::assert_snapshot!(file, text);
    }
}

/// The schemas and the typed readers of the rules engine must agree: what one accepts the
/// other accepts, what one rejects the other rejects.
#[test]
fn schemas_and_the_rules_readers_agree_on_every_fixture() {
    use softprobe_runtime::{policy, rules};
    for path in files("fixtures/rules", "") {
        let name = display(&path);
        let parsed = rules::parse_rules_document(&std::fs::read(&path).unwrap(), &name);
        assert!(parsed.is_ok(), "{name}: {}", parsed.unwrap_err());
    }
    for path in files("fixtures/policy", ".json") {
        let name = display(&path);
        let parsed = policy::parse_policy(&std::fs::read(&path).unwrap(), &name);
        assert!(parsed.is_ok(), "{name}: {}", parsed.unwrap_err());
    }
    for path in files("fixtures/cases", ".case.json") {
        let name = display(&path);
        let case = Case::read(&path).unwrap();
        if let Some(values) = &case.rules {
            let parsed = rules::rules_from_values(values, &name, "$.rules");
            assert_eq!(parsed.map(|r| r.len()).ok(), Some(values.len()), "{name}");
        }
    }
    let mut rejected = 0;
    for path in files("fixtures/invalid", "") {
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let accepted = if file.ends_with(".policy.json") {
            policy::parse_policy(&bytes, &file).is_ok()
        } else if file.ends_with(".rules.json") || file.ends_with(".rules.yaml") {
            rules::parse_rules_document(&bytes, &file).is_ok()
        } else {
            continue;
        };
        assert!(
            !accepted,
            "{file}: the schema rejects it but the rules reader accepts it"
        );
        rejected += 1;
    }
    assert!(rejected >= 10, "only {rejected} invalid rules and policies");
}
