//! The control API as an OpenAPI 3.1 document (`GET /openapi.json`, and `spec/openapi.json`),
//! built from the JSON Schemas of `spec/schemas/`: every schema becomes a component as it is
//! (OpenAPI 3.1 speaks JSON Schema 2020-12, so `$id` and `$ref` keep working), and [`ROUTES`]
//! says which one each route takes and answers. A test checks [`ROUTES`] against the router.

use axum::Json;
use serde_json::{Map, Value, json};

use crate::case::validate::SchemaKind;

/// What a request or an answer carries.
#[derive(Debug, Clone, Copy)]
pub enum Payload {
    /// JSON described by a schema.
    Json(SchemaKind),
    /// OTLP traces: JSON (the trace schema) or protobuf `TracesData`.
    Traces,
    /// Anything else: its content type.
    Other(&'static str),
    /// No body.
    Empty,
}

/// One operation of the control API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `get` or `post`.
    pub method: &'static str,
    /// The path, `{id}` for parameters (as the router writes it).
    pub path: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Whether the bearer token is needed (when the runtime has one).
    pub auth: bool,
    /// The request body.
    pub request: Payload,
    /// The success status and body.
    pub ok: (&'static str, Payload),
    /// An example of the success body, when it is JSON.
    pub example: Option<&'static str>,
}

/// Every route of the router, in the order of `spec/protocol/control-api.md`.
pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/health",
        summary: "Liveness, with the versions the original Softprobe doctor checks",
        auth: false,
        request: Payload::Empty,
        ok: ("200", Payload::Json(SchemaKind::HealthResponse)),
        example: Some(
            r#"{"status": "ok", "specVersion": "http-control-api@v1", "schemaVersion": "1", "runtimeVersion": "0.1.0"}"#,
        ),
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Metrics in the OpenMetrics text format",
        auth: false,
        request: Payload::Empty,
        ok: (
            "200",
            Payload::Other("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ),
        example: None,
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        auth: false,
        request: Payload::Empty,
        ok: ("200", Payload::Other("application/json")),
        example: None,
    },
    Route {
        method: "get",
        path: "/v1/meta",
        summary: "What this runtime is and supports",
        auth: true,
        request: Payload::Empty,
        ok: ("200", Payload::Json(SchemaKind::MetaResponse)),
        example: Some(
            r#"{"name": "softprobe-runtime", "version": "0.1.0", "runtimeVersion": "0.1.0", "specVersion": "http-control-api@v1", "schemaVersion": "1", "caseFormatVersion": "1.0.0", "capabilities": ["capture", "replay"], "modes": ["capture", "replay", "generate"]}"#,
        ),
    },
    Route {
        method: "post",
        path: "/v1/sessions",
        summary: "Create a session",
        auth: true,
        request: Payload::Json(SchemaKind::CreateSessionRequest),
        ok: ("200", Payload::Json(SchemaKind::CreateSessionResponse)),
        example: Some(r#"{"sessionId": "sess_ZqOyyR3gT3qLXC2eDxo7TA", "sessionRevision": 0}"#),
    },
    Route {
        method: "get",
        path: "/v1/sessions",
        summary: "List open sessions",
        auth: true,
        request: Payload::Empty,
        ok: ("200", Payload::Json(SchemaKind::ListSessionsResponse)),
        example: None,
    },
    Route {
        method: "post",
        path: "/v1/sessions/{id}/load-case",
        summary: "Load a case file into a session",
        auth: true,
        request: Payload::Json(SchemaKind::LoadCaseRequest),
        ok: ("200", Payload::Json(SchemaKind::LoadCaseResponse)),
        example: None,
    },
    Route {
        method: "post",
        path: "/v1/sessions/{id}/rules",
        summary: "Replace the session's rules",
        auth: true,
        request: Payload::Json(SchemaKind::RulesRequest),
        ok: ("200", Payload::Json(SchemaKind::RulesResponse)),
        example: None,
    },
    Route {
        method: "post",
        path: "/v1/sessions/{id}/policy",
        summary: "Set the session's policy",
        auth: true,
        request: Payload::Json(SchemaKind::PolicyRequest),
        ok: ("200", Payload::Json(SchemaKind::PolicyResponse)),
        example: None,
    },
    Route {
        method: "post",
        path: "/v1/sessions/{id}/fixtures/auth",
        summary: "Set the session's auth fixtures",
        auth: true,
        request: Payload::Json(SchemaKind::FixturesAuthRequest),
        ok: ("200", Payload::Json(SchemaKind::FixturesAuthResponse)),
        example: None,
    },
    Route {
        method: "get",
        path: "/v1/sessions/{id}/stats",
        summary: "The session's span counters",
        auth: true,
        request: Payload::Empty,
        ok: ("200", Payload::Json(SchemaKind::StatsResponse)),
        example: None,
    },
    Route {
        method: "get",
        path: "/v1/sessions/{id}/state",
        summary: "The session's state",
        auth: true,
        request: Payload::Empty,
        ok: ("200", Payload::Json(SchemaKind::StateResponse)),
        example: None,
    },
    Route {
        method: "post",
        path: "/v1/sessions/{id}/close",
        summary: "Close a session; a capture session writes its case file",
        auth: true,
        request: Payload::Json(SchemaKind::CloseRequest),
        ok: ("200", Payload::Json(SchemaKind::CloseResponse)),
        example: Some(
            r#"{"sessionId": "sess_ZqOyyR3gT3qLXC2eDxo7TA", "closed": true, "casePath": "cases/checkout.case.json", "capturePath": "cases/checkout.case.json"}"#,
        ),
    },
    Route {
        method: "get",
        path: "/v1/captures/{id}",
        summary: "The case file a closed capture session wrote",
        auth: true,
        request: Payload::Empty,
        ok: ("200", Payload::Json(SchemaKind::Case)),
        example: None,
    },
    Route {
        method: "post",
        path: "/v1/inject",
        summary: "Decide one proxied request: 200 with the answer, 404 to forward, 599 strict miss",
        auth: true,
        request: Payload::Traces,
        ok: ("200", Payload::Traces),
        example: None,
    },
    Route {
        method: "post",
        path: "/v1/traces",
        summary: "Record finished hops (OTLP/HTTP)",
        auth: true,
        request: Payload::Traces,
        ok: ("204", Payload::Empty),
        example: None,
    },
    Route {
        method: "get",
        path: "/v1/proxy/ca.pem",
        summary: "The in-process proxy's CA certificate",
        auth: true,
        request: Payload::Empty,
        ok: ("200", Payload::Other("application/x-pem-file")),
        example: None,
    },
    Route {
        method: "get",
        path: "/ui",
        summary: "The live-sessions page (HTML; its data comes from /ui/api)",
        auth: false,
        request: Payload::Empty,
        ok: ("200", Payload::Other("text/html; charset=utf-8")),
        example: None,
    },
    Route {
        method: "get",
        path: "/ui/",
        summary: "The live-sessions page",
        auth: false,
        request: Payload::Empty,
        ok: ("200", Payload::Other("text/html; charset=utf-8")),
        example: None,
    },
    Route {
        method: "get",
        path: "/ui/view.css",
        summary: "The page's style sheet",
        auth: false,
        request: Payload::Empty,
        ok: ("200", Payload::Other("text/css; charset=utf-8")),
        example: None,
    },
    Route {
        method: "get",
        path: "/ui/view.js",
        summary: "The page's script",
        auth: false,
        request: Payload::Empty,
        ok: ("200", Payload::Other("text/javascript; charset=utf-8")),
        example: None,
    },
    Route {
        method: "get",
        path: "/ui/api/sessions",
        summary: "The open sessions with their modes and hop counts, for the page",
        auth: true,
        request: Payload::Empty,
        ok: ("200", Payload::Other("application/json")),
        example: None,
    },
    Route {
        method: "get",
        path: "/ui/api/sessions/{id}",
        summary: "One session's hops as the page shows them",
        auth: true,
        request: Payload::Empty,
        ok: ("200", Payload::Other("application/json")),
        example: None,
    },
];

/// The component name of a schema file under `spec/schemas/`: without `.json`, with `.` for
/// `/` (`control.close.response`).
pub fn component_of(file: &str) -> String {
    file.trim_end_matches(".json").replace('/', ".")
}

/// The component name of a schema.
pub fn component(kind: SchemaKind) -> String {
    component_of(kind.file())
}

fn schema_ref(kind: SchemaKind) -> Value {
    json!({"$ref": format!("#/components/schemas/{}", component(kind))})
}

fn content(payload: Payload, example: Option<&str>) -> Option<Value> {
    match payload {
        Payload::Empty => None,
        Payload::Json(kind) => {
            let mut media = json!({"schema": schema_ref(kind)});
            if let Some(e) = example.and_then(|e| serde_json::from_str::<Value>(e).ok()) {
                media["example"] = e;
            }
            Some(json!({"application/json": media}))
        }
        Payload::Traces => Some(json!({
            "application/json": {"schema": schema_ref(SchemaKind::Trace)},
            "application/x-protobuf": {
                "schema": {"type": "string", "contentMediaType": "application/x-protobuf"}
            },
        })),
        Payload::Other(mime) => Some(json!({mime: {"schema": {"type": "string"}}})),
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.', '-'], "_")),
        });
        if r.path.contains("{id}") {
            op["parameters"] = json!([{
                "name": "id", "in": "path", "required": true,
                "description": "The session id",
                "schema": {"type": "string"},
            }]);
        }
        if let Some(c) = content(r.request, None) {
            op["requestBody"] = json!({"content": c});
        }
        let mut ok = json!({"description": "Success"});
        if let Some(c) = content(r.ok.1, r.example) {
            ok["content"] = c;
        }
        let mut responses = Map::new();
        responses.insert(r.ok.0.to_owned(), ok);
        if r.path == "/v1/inject" {
            responses.insert(
                "404".into(),
                json!({"description": "No answer: the proxy forwards the request upstream"}),
            );
            responses.insert(
                crate::replay::STRICT_MISS_STATUS.to_string(),
                json!({
                    "description": "Strict miss",
                    "content": {"application/json": {"schema": schema_ref(SchemaKind::StrictMissResponse)}},
                }),
            );
        }
        responses.insert(
            "default".into(),
            json!({
                "description": "An error",
                "content": {"application/json": {
                    "schema": schema_ref(SchemaKind::ErrorResponse),
                    "example": {"error": {"code": "unknown_session", "message": "unknown session `sess_x` (never created, or already closed)"}},
                }},
            }),
        );
        op["responses"] = Value::Object(responses);
        if !r.auth {
            op["security"] = json!([]);
        }
        paths
            .entry(r.path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(r.method.to_owned(), op);
    }
    let mut schemas = Map::new();
    for (file, schema) in crate::case::validate::schema_documents() {
        schemas.insert(component_of(file), schema.clone());
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "softprobe-runtime control API",
            "version": super::SPEC_VERSION,
            "description": "Sessions, cases, rules and policy of the softprobe runtime, and the proxy OTLP API. Prose: spec/protocol/control-api.md and proxy-otlp-api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    })
}

pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}
