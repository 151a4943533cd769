//! `softprobe scrub --rules FILE`: a project's own patterns, body fields and headers on top of
//! the built-in ones, in both the rewriting and the `--check` form, and the exit code and
//! location of a mistake in the rules file. Drives the built binary.

#![cfg(feature = "cli")]

mod support;

use serde_json::Value;
use softprobe_runtime::case::validate::validate_case;
use softprobe_runtime::case::{AnyValue, Case, KeyValue};
use support::{cli, json_line, root, run};

const RULES: &str = "fixtures/scrub/internal.yaml";

/// The checkout fixture with secrets only the project knows: a support ticket and an internal
/// token in the inbound body, a phone number in a JSON field, and an internal header.
fn leaky_case(dir: &std::path::Path) -> std::path::PathBuf {
    let mut case = Case::read(root().join("fixtures/cases/checkout.case.json")).unwrap();
    let span = &mut case.traces[0].resource_spans[0].scope_spans[0].spans[0];
    let body = span
        .attributes
        .iter_mut()
        .find(|kv| kv.key == "http.request.body")
        .expect("the inbound span has a request body");
    body.value = AnyValue::String(
        r#"{"amount":1000,"currency":"USD","note":"see TCK-004211","customer":{"phone":"+1 415 555 0100","auth":"itk_Ab3dEf6hIj9kLm2nOp5q"}}"#
            .to_owned(),
    );
    span.attributes.push(KeyValue {
        key: "http.request.header.x-internal-token".into(),
        value: AnyValue::String("opaque-value-42".into()),
    });
    let path = dir.join("leaky.case.json");
    case.write(&path).unwrap();
    path
}

fn scrub(args: &[&str], file: &std::path::Path) -> (i32, String, String) {
    let mut cmd = cli("http://127.0.0.1:9");
    cmd.arg("scrub").args(args).arg(file);
    run(cmd)
}

#[test]
fn custom_rules_find_what_the_defaults_miss_and_scrub_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = leaky_case(dir.path());
    let before = std::fs::read_to_string(&file).unwrap();

    // The built-in patterns know none of these.
    let (code, out, _) = scrub(&["--check"], &file);
    assert_eq!(code, 0, "{out}");

    let (code, out, _) = scrub(&["--check", "--rules", RULES], &file);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "custom pattern \"support-ticket\"",
        "custom pattern \"internal-token\"",
        "body field \"$.customer.phone\"",
        "sensitive header \"x-internal-token\"",
        "4 likely secret(s) found",
    ] {
        assert!(out.contains(expected), "{expected} in {out}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    let (code, out, _) = scrub(&["--rules", RULES, "--json"], &file);
    assert_eq!(code, 0, "{out}");
    let report = json_line(&out);
    assert_eq!(report["findings"], 4, "{report}");
    assert_eq!(report["rewritten"], true);
    let rules: Vec<&str> = report["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert_eq!(
        rules,
        [
            "$.customer.phone",
            "support-ticket",
            "internal-token",
            "x-internal-token"
        ],
        "{report}"
    );

    let after = std::fs::read_to_string(&file).unwrap();
    assert!(validate_case(after.as_bytes(), "scrubbed").is_valid());
    let case = Case::read(&file).unwrap();
    let inbound = &case.exchanges().unwrap()[0];
    let body: Value =
        serde_json::from_str(inbound.request_body.as_ref().unwrap().as_text().unwrap()).unwrap();
    assert_eq!(body["note"], "see TCK-XXXXXX");
    assert_eq!(body["customer"]["phone"], "[REDACTED]");
    assert_eq!(body["customer"]["auth"], "[REDACTED]");
    assert_eq!(body["amount"], 1000, "the rest is untouched");
    assert_eq!(
        inbound.request_header("x-internal-token"),
        Some("[REDACTED]")
    );

    // Scrubbed files pass the check, and scrubbing again changes nothing.
    let (code, out, _) = scrub(&["--check", "--rules", RULES], &file);
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = scrub(&["--rules", RULES], &file);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), after);
}

#[test]
fn a_mistake_in_the_rules_file_exits_5_with_file_line_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = leaky_case(dir.path());
    let before = std::fs::read_to_string(&file).unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\npatterns:\n  - name: fine\n    regex: 'a+b'\n  - name: broken\n    regex: '[unclosed'\n",
    )
    .unwrap();
    let bad_arg = bad.to_str().unwrap();

    let (code, _, err) = scrub(&["--rules", bad_arg], &file);
    assert_eq!(code, 5, "{err}");
    let location = format!("{bad_arg}:6:5: $.patterns[1].regex: invalid regular expression");
    assert!(err.contains(&location), "{location} in {err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // --check reads the rules the same way, and --json carries the location as fields.
    let (code, out, _) = scrub(&["--check", "--json", "--rules", bad_arg], &file);
    assert_eq!(code, 5, "{out}");
    let report = json_line(&out);
    assert_eq!(report["error"]["code"], "invalid_input", "{report}");
    assert_eq!(report["line"], 6, "{report}");
    assert_eq!(report["jsonPath"], "$.patterns[1].regex", "{report}");

    std::fs::write(&bad, "version: 1\nheaders: [x-ok]\njsonPath: [$.a]\n").unwrap();
    let (code, _, err) = scrub(&["--check", "--rules", bad_arg], &file);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains(&format!("{bad_arg}:3:")), "{err}");
    assert!(err.contains("unknown field `jsonPath`"), "{err}");
}

#[test]
fn the_schema_accepts_the_fixture_and_refuses_what_the_reader_refuses() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("spec/schemas/scrub-rules.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let fixture: Value =
        softprobe_runtime::yaml::from_str(&std::fs::read_to_string(root().join(RULES)).unwrap())
            .unwrap();
    assert!(validator.is_valid(&fixture));
    let reader = |doc: &Value| {
        softprobe_runtime::scrub::ScrubRules::parse(doc.to_string().as_bytes(), "doc").is_ok()
    };
    assert!(reader(&fixture));
    for bad in [
        serde_json::json!({"patterns": []}),
        serde_json::json!({"version": 2}),
        serde_json::json!({"version": 1, "patterns": [{"name": "x"}]}),
        serde_json::json!({"version": 1, "patterns": [{"name": "x", "regex": "a", "other": 1}]}),
        serde_json::json!({"version": 1, "headers": ["not a header"]}),
        serde_json::json!({"version": 1, "jsonPaths": ["customer.phone"]}),
    ] {
        assert!(!validator.is_valid(&bad), "schema accepts {bad}");
        assert!(!reader(&bad), "reader accepts {bad}");
    }
}
