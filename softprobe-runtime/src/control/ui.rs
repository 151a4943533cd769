//! `/ui`: the case page ([`crate::view`]) over the runtime's live sessions, so a person
//! capturing by hand watches the hops arrive. The page and its assets hold no data and load
//! without a token; the JSON it polls (`/ui/api/...`) answers only with the bearer token when
//! one is set (the page takes it from `/ui#token=...` or asks for it).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::auth;
use super::error::ApiError;
use crate::mode::Mode;
use crate::view;

pub(crate) async fn page() -> Response {
    view::asset("text/html; charset=utf-8", view::page_html("/ui/", "live"))
}

pub(crate) async fn css() -> Response {
    view::css()
}

pub(crate) async fn js() -> Response {
    view::js()
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match state.token() {
        Some(token) => auth::check(headers.get(AUTHORIZATION).map(|v| v.as_bytes()), token),
        None => Ok(()),
    }
}

/// Hops a session holds: what a capture session recorded so far, else the loaded case's.
fn session_hops(session: &crate::session::Session) -> Vec<crate::case::Exchange> {
    if session.mode() == Mode::Capture {
        return session.captured();
    }
    let state = session.read();
    state
        .case()
        .and_then(|case| case.exchanges().ok())
        .map(crate::case::diff::in_order)
        .unwrap_or_default()
}

pub(crate) async fn sessions(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    let mut list: Vec<_> = state.store().list();
    list.sort_by(|a, b| a.created_at().cmp(b.created_at()).then(a.id().cmp(b.id())));
    let sessions: Vec<_> = list
        .iter()
        .map(|s| {
            let stats = s.stats();
            json!({
                "sessionId": s.id(),
                "mode": s.mode(),
                "caseId": s.case_id(),
                "testName": s.test_name(),
                "createdAt": s.created_at(),
                "hops": if s.mode() == Mode::Capture { s.captured_len() as u64 } else { stats.extracted_spans },
                "injected": stats.injected_spans,
                "strictMisses": stats.strict_misses,
            })
        })
        .collect();
    view::json_response(&json!({ "sessions": sessions }))
}

pub(crate) async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    let Some(session) = state.store().get(&id) else {
        return ApiError::from(crate::error::Error::UnknownSession { session_id: id })
            .into_response();
    };
    let hops = session_hops(&session);
    let recorded = session.mode() == Mode::Capture;
    view::json_response(&json!({
        "title": format!("{} session {}", session.mode(), session.id()),
        "caseId": session.case_id(),
        "createdAt": session.created_at(),
        "recorded": recorded,
        "hops": view::hops_json(&hops),
        "drift": null,
    }))
}
