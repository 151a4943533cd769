//! The control API handlers. Each one finds the session first (404 before anything else),
//! parses and validates the whole body, and only then changes the session, so a rejected
//! request leaves the stored state and its revision untouched.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::body::{BODY, RawBody};
use super::error::ApiError;
use crate::Mode;
use crate::case::Case;
use crate::case::validate::SchemaKind;
use crate::policy;
use crate::rules;
use crate::session::{Fixtures, NewSession, Session};

/// The control API this runtime speaks, as the original Softprobe CLI's `doctor` requires it
/// (`specVersion`), and the version of its JSON Schemas (`schemaVersion`).
pub(crate) const SPEC_VERSION: &str = "http-control-api@v1";
/// See [`SPEC_VERSION`].
pub(crate) const SCHEMA_VERSION: &str = "1";

/// What this runtime can do, for clients that adapt to the server (`GET /v1/meta`).
pub(crate) const CAPABILITIES: &[&str] = &[
    "capture",
    "replay",
    "sessions",
    "load-case",
    "rules",
    "rules-yaml",
    "policy",
    "strict-miss",
    "fixtures-auth",
    "stats",
    "state",
    "close-out",
    "replay-from-case",
    "capture-redaction",
    "inject",
    "extract",
    "otlp-json",
    "otlp-protobuf",
    "metrics",
    "bearer-auth",
];

/// The `{id}` of a `/v1/sessions/{id}/...` route, resolved to an open session.
pub(crate) struct OpenSession(pub(crate) Arc<Session>);

impl FromRequestParts<AppState> for OpenSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(format!("session id in the path: {}", e.body_text())))?;
        state
            .store()
            .session(&id)
            .map(OpenSession)
            .map_err(ApiError::from)
    }
}

pub(crate) async fn health() -> Json<Value> {
    Json(json!({
        "status": "ok",
        "specVersion": SPEC_VERSION,
        "schemaVersion": SCHEMA_VERSION,
        "runtimeVersion": env!("CARGO_PKG_VERSION"),
    }))
}

pub(crate) async fn meta() -> Json<Value> {
    Json(json!({
        "name": "softprobe-runtime",
        "version": env!("CARGO_PKG_VERSION"),
        "runtimeVersion": env!("CARGO_PKG_VERSION"),
        "specVersion": SPEC_VERSION,
        "schemaVersion": SCHEMA_VERSION,
        "caseFormatVersion": crate::case::CASE_FORMAT_VERSION,
        "capabilities": CAPABILITIES,
        "modes": [Mode::Capture, Mode::Replay, Mode::Generate],
    }))
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let store = state.store();
    let text = store.metrics().render(store.len());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

pub(crate) async fn create_session(
    State(state): State<AppState>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let new: NewSession = body.json(
        SchemaKind::CreateSessionRequest,
        r#"{"mode": "capture" | "replay" | "generate"}"#,
    )?;
    let session = state.store().create(new)?;
    tracing::info!(
        sessionId = session.id(),
        mode = %session.mode(),
        "created session"
    );
    Ok(Json(json!({
        "sessionId": session.id(),
        "sessionRevision": 0,
    })))
}

pub(crate) async fn list_sessions(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let sessions: Vec<Value> = state
        .store()
        .try_list()?
        .iter()
        .map(|s| s.summary_json())
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

pub(crate) async fn load_case(
    State(app): State<AppState>,
    OpenSession(session): OpenSession,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    body.syntax(false)?;
    if body.is_blank() {
        return Err(ApiError::invalid(
            "request body is empty: expected a case file document",
        ));
    }
    // One reading: syntax, the case schema (the request's schema is the case's), the model
    // and what the schema cannot say (an outbound hop without a host, zero ids), which would
    // otherwise be loaded and only fail, or silently miss, at replay time.
    let case = match crate::case::validate::read_valid_case(&body.bytes, BODY) {
        Ok(case) => case,
        Err(report) => {
            // A document the case model refuses is named by the model's own error.
            Case::from_slice_named(&body.bytes, BODY).map_err(crate::error::Error::from)?;
            let errors: Vec<String> = report
                .errors()
                .map(|f| {
                    format!(
                        "{}: {} (line {}, column {})",
                        f.json_path, f.message, f.line, f.column
                    )
                })
                .collect();
            return Err(ApiError::invalid(format!("{BODY}: {}", errors.join("; "))));
        }
    };
    let case = Arc::new(case);
    let mut loaded = None;
    let revision = app.store().update(session.id(), &mut |state| {
        loaded = Some(state.load_shared_case(Arc::clone(&case), BODY)?);
        Ok(())
    })?;
    let summary = loaded.ok_or_else(|| ApiError::internal("the case was not loaded"))?;
    tracing::info!(
        sessionId = session.id(),
        caseId = %summary.case_id,
        spans = summary.spans,
        "loaded case"
    );
    Ok(Json(json!({
        "sessionId": session.id(),
        "sessionRevision": revision,
        "caseId": summary.case_id,
        "traces": summary.traces,
        "spans": summary.spans,
    })))
}

pub(crate) async fn set_rules(
    State(app): State<AppState>,
    OpenSession(session): OpenSession,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let rules = body.document(
        SchemaKind::RulesRequest,
        r#"a rules document {"version": 1, "rules": [...]}"#,
        rules::parse_rules_document,
    )?;
    let count = rules.len();
    let revision = app.store().update(session.id(), &mut |state| {
        state.set_rules(rules.clone());
        Ok(())
    })?;
    tracing::info!(sessionId = session.id(), rules = count, "set session rules");
    Ok(Json(json!({
        "sessionId": session.id(),
        "sessionRevision": revision,
        "rules": count,
    })))
}

pub(crate) async fn set_policy(
    State(app): State<AppState>,
    OpenSession(session): OpenSession,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let policy = body.document(
        SchemaKind::PolicyRequest,
        r#"a policy document such as {"externalHttp": "strict"}"#,
        policy::parse_policy,
    )?;
    let revision = app.store().update(session.id(), &mut |state| {
        state.set_policy(policy.clone());
        Ok(())
    })?;
    tracing::info!(sessionId = session.id(), "set policy");
    Ok(Json(json!({
        "sessionId": session.id(),
        "sessionRevision": revision,
    })))
}

pub(crate) async fn set_fixtures(
    State(app): State<AppState>,
    OpenSession(session): OpenSession,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let fixtures: Fixtures = body.json(SchemaKind::FixturesAuthRequest, "a fixtures document")?;
    let revision = app.store().update(session.id(), &mut |state| {
        state.set_fixtures(fixtures.clone());
        Ok(())
    })?;
    Ok(Json(json!({
        "sessionId": session.id(),
        "sessionRevision": revision,
    })))
}

pub(crate) async fn stats(
    State(app): State<AppState>,
    OpenSession(session): OpenSession,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.store().stats_json(session.id())?))
}

pub(crate) async fn state(
    State(app): State<AppState>,
    OpenSession(session): OpenSession,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.store().state_json(session.id())?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CloseQuery {
    out: Option<String>,
}

/// `close` takes no options in its body; `{}` or nothing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {}

pub(crate) async fn close(
    State(state): State<AppState>,
    OpenSession(session): OpenSession,
    query: Result<Query<CloseQuery>, QueryRejection>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid(format!("query string: {}", e.body_text())))?;
    if !body.is_blank() {
        let _: CloseBody = body.json(SchemaKind::CloseRequest, "{}")?;
    }
    let target = if session.mode() == Mode::Capture {
        Some(state.capture_target(query.out.as_deref(), &session)?)
    } else {
        None
    };
    let store = Arc::clone(state.store());
    let id = session.id().to_owned();
    let lost = store.lost_hops(&id)?;
    let file = target.as_ref().map(|t| t.file.clone());
    let written = tokio::task::spawn_blocking(move || store.close(&id, file.as_deref()))
        .await
        .map_err(|e| ApiError::internal(format!("capture writer failed: {e}")))??;
    if let (Some(target), Some(hops)) = (&target, written) {
        state.captures().remember(session.id(), &target.file);
        tracing::info!(
            sessionId = session.id(),
            spans = hops,
            path = %target.file.display(),
            "wrote capture"
        );
    }
    tracing::info!(sessionId = session.id(), "closed session");
    let case_path = target.map(|t| t.shown.to_string_lossy().into_owned());
    let mut answer = json!({
        "sessionId": session.id(),
        "closed": true,
        "casePath": case_path,
        "capturePath": case_path,
    });
    if lost > 0 {
        answer["lostHops"] = json!(lost);
    }
    Ok(Json(answer))
}

pub(crate) async fn proxy_ca(State(state): State<AppState>) -> Result<Response, ApiError> {
    let pem = state.proxy_ca_pem().ok_or_else(|| {
        ApiError::not_found(
            "no proxy runs in this runtime process, so there is no proxy CA certificate",
        )
    })?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        pem,
    )
        .into_response())
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}
