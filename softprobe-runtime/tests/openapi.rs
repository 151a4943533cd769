//! The OpenAPI 3.1 document of the control API: every route of the router is in it and
//! nothing else, every `$ref` resolves, every example validates against its schema, the
//! runtime serves it at `/openapi.json`, and `spec/openapi.json` is the same document
//! (`SOFTPROBE_WRITE_OPENAPI=1 cargo test -p softprobe-runtime --test openapi` rewrites it).

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use softprobe_runtime::case::validate::validate_json;
use softprobe_runtime::control::openapi::{self, Payload};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `(method, path)` of every `.route(...)` in the router's source.
fn router_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/control/router.rs"),
    )
    .unwrap();
    let route =
        regex::Regex::new(r#"\.route\(\s*"([^"]+)",\s*((?:[a-z_:]+\([^)]*\)\s*\.?\s*)+),?\s*\)"#)
            .unwrap();
    let method = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
    let mut out = BTreeSet::new();
    for c in route.captures_iter(&source) {
        for m in method.captures_iter(&c[2]) {
            out.insert((m[1].to_owned(), c[1].to_owned()));
        }
    }
    assert!(
        out.len() > 10,
        "the router's routes were not found: {out:?}"
    );
    out
}

#[test]
fn every_router_route_is_documented_and_nothing_else() {
    let documented: BTreeSet<(String, String)> = openapi::ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let routed = router_routes();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes of the router missing from openapi::ROUTES: {missing:?}; documented routes the router does not have: {extra:?}"
    );
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn refs_resolve_and_examples_validate() {
    let doc = openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut found = Vec::new();
    refs(&doc["paths"], &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    // Every schema-to-schema `$ref` names a schema that is a component too.
    let ids: BTreeSet<String> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["$id"].as_str().unwrap().to_owned())
        .collect();
    let mut inner = Vec::new();
    refs(&doc["components"], &mut inner);
    for r in inner.iter().filter(|r| !r.starts_with('#')) {
        let file = r.split('#').next().unwrap().rsplit('/').next().unwrap();
        assert!(
            ids.iter().any(|id| id.ends_with(&format!("/{file}"))),
            "{r} names no component"
        );
    }
    let mut examples = 0;
    for route in openapi::ROUTES {
        if let (Payload::Json(kind), Some(text)) = (route.ok.1, route.example) {
            let example: Value = serde_json::from_str(text).unwrap();
            validate_json(kind, &example).unwrap_or_else(|e| {
                panic!("{} {}: example invalid: {e:?}", route.method, route.path)
            });
            let served = &doc["paths"][route.path][route.method]["responses"][route.ok.0]["content"]
                ["application/json"]["example"];
            assert_eq!(served, &example);
            examples += 1;
        }
    }
    assert!(examples >= 4);
    let error = &doc["paths"]["/health"]["get"]["responses"]["default"]["content"]["application/json"]
        ["example"];
    validate_json(
        softprobe_runtime::case::validate::SchemaKind::ErrorResponse,
        error,
    )
    .unwrap();
    // A changed example would be caught: a wrong one fails its schema.
    let mut wrong: Value = serde_json::from_str(openapi::ROUTES[0].example.unwrap()).unwrap();
    wrong["specVersion"] = "1.0.0".into();
    assert!(
        validate_json(
            softprobe_runtime::case::validate::SchemaKind::HealthResponse,
            &wrong
        )
        .is_err()
    );
}

#[tokio::test]
async fn served_and_written_documents_are_the_document() {
    let server = support::start(Some("s3cret"), None).await;
    // Open like /health: no token needed.
    let (status, served) = support::get_json(&server.uri(), "/openapi.json").await;
    assert_eq!(status, 200);
    let doc = openapi::document();
    assert_eq!(served, doc);
    let path = root().join("spec/openapi.json");
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("SOFTPROBE_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "spec/openapi.json is not the runtime's document; rewrite it with SOFTPROBE_WRITE_OPENAPI=1 cargo test -p softprobe-runtime --test openapi"
    );
}
