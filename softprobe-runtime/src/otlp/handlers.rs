//! `POST /v1/inject` and `POST /v1/traces`. Both decode the payload, turn spans into
//! [`Exchange`]s and hand them to the session store; the answer goes back in the format the
//! caller asked for (`accept` first, then its own `content-type`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::{WireFormat, decode, encode};
use crate::case::attributes as attr;
use crate::case::{
    Body, Exchange, KeyValue, Resource, ResourceSpans, ScopeSpans, Span, TracesData,
};
use crate::control::{ApiError, AppState, RawBody};
use crate::replay::{Decision, Request, Response as Answer};
use crate::replay::{STRICT_MISS_HEADER, STRICT_MISS_STATUS};

fn request_format(body: &RawBody) -> Result<WireFormat, ApiError> {
    WireFormat::of_request(body.content_type.as_deref()).ok_or_else(|| {
        ApiError::unsupported_media_type(
            body.content_type.as_deref().unwrap_or(""),
            "application/json or application/x-protobuf",
        )
    })
}

/// Every span of the payload with its JSON path and its resource's `service.name`.
fn spans(data: &TracesData) -> impl Iterator<Item = (String, &Span, Option<&str>)> {
    data.resource_spans.iter().enumerate().flat_map(|(r, rs)| {
        let service = rs.resource.as_ref().and_then(|res| {
            res.attributes
                .iter()
                .find(|kv| kv.key == attr::RESOURCE_SERVICE_NAME)
                .and_then(|kv| kv.value.as_str())
        });
        rs.scope_spans.iter().enumerate().flat_map(move |(s, ss)| {
            ss.spans.iter().enumerate().map(move |(i, span)| {
                (
                    format!("$.resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"),
                    span,
                    service,
                )
            })
        })
    })
}

fn exchange_at(path: &str, span: &Span, service: Option<&str>) -> Result<Exchange, ApiError> {
    Exchange::from_span(span, service).map_err(|e| ApiError::invalid(format!("{path}: {e}")))
}

pub(crate) async fn inject(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    let format = request_format(&body)?;
    let answer_format =
        WireFormat::for_response(headers.get(ACCEPT).and_then(|v| v.to_str().ok()), format);
    let data = decode(&body.bytes, format)?;
    // One span per call; prefer the one marked as the inject span if several came.
    let (path, span, service) = spans(&data)
        .find(|(_, span, _)| {
            span.attributes
                .iter()
                .any(|kv| kv.key == attr::SPAN_TYPE && kv.value.as_str() == Some("inject"))
        })
        .or_else(|| spans(&data).next())
        .ok_or_else(|| ApiError::invalid("$.resourceSpans: the payload holds no span to inject"))?;
    let exchange = exchange_at(&path, span, service)?;
    let session_id = exchange.session_id.clone().ok_or_else(|| {
        ApiError::invalid(format!(
            "{path}.attributes: no `{}` attribute names the session",
            attr::SESSION_ID
        ))
    })?;
    tracing::info!(
        "handling POST /v1/inject sessionId={session_id} path={}",
        exchange.path
    );
    let request = Request::from_exchange(&exchange);
    tracing::debug!(?request, "inject request");
    let line = crate::hop_log::HopLine::start(
        Some(&session_id),
        exchange.direction,
        &exchange.method,
        exchange.url(),
    );
    let decision = state.store().inject(&session_id, &request)?;
    let word = crate::hop_log::decision_word(&decision);
    let status = match &decision {
        Decision::Respond { response, .. } => response.status,
        Decision::Passthrough { .. } => 404,
        Decision::StrictMiss(_) => STRICT_MISS_STATUS,
    };
    line.finish(word, status);
    match decision {
        Decision::Respond {
            response,
            latency,
            origin,
            ..
        } => {
            tracing::debug!(sessionId = %session_id, ?origin, status = response.status, "inject hit");
            if let Some(delay) = latency {
                tokio::time::sleep(delay).await;
            }
            let answer = answer_traces(span, service, &response);
            Ok((
                StatusCode::OK,
                [(CONTENT_TYPE, answer_format.content_type())],
                encode(&answer, answer_format),
            )
                .into_response())
        }
        Decision::Passthrough { origin } => {
            tracing::debug!(sessionId = %session_id, ?origin, "inject miss: forward upstream");
            Ok(StatusCode::NOT_FOUND.into_response())
        }
        Decision::StrictMiss(report) => {
            tracing::info!(
                sessionId = %session_id,
                "strict miss: {} {}",
                exchange.method,
                exchange.url()
            );
            tracing::debug!(sessionId = %session_id, "{}", report.render_text());
            let body = report.to_json(&session_id);
            let status =
                StatusCode::from_u16(STRICT_MISS_STATUS).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert(STRICT_MISS_HEADER, HeaderValue::from_static("1"));
            Ok(response)
        }
    }
}

/// The answer to a hit: the inject span itself (same ids, same request attributes) with the
/// response added as `http.response.*` attributes; a binary body is base64 with the
/// encoding marker.
fn answer_traces(span: &Span, service: Option<&str>, response: &Answer) -> TracesData {
    let mut attributes: Vec<KeyValue> = span
        .attributes
        .iter()
        .filter(|kv| {
            !(kv.key.starts_with("http.response.")
                || kv.key == attr::LEGACY_STATUS_CODE
                || kv.key == attr::RESPONSE_BODY_ENCODING)
        })
        .cloned()
        .collect();
    attributes.reserve(3 + response.headers.len());
    attributes.push(KeyValue::int(
        attr::RESPONSE_STATUS_CODE,
        i64::from(response.status),
    ));
    for (name, value) in &response.headers {
        attributes.push(KeyValue::string(
            format!(
                "{}{}",
                attr::RESPONSE_HEADER_PREFIX,
                name.to_ascii_lowercase()
            ),
            value,
        ));
    }
    match &response.body {
        None => {}
        Some(Body::Text(text)) => attributes.push(KeyValue::string(attr::RESPONSE_BODY, text)),
        Some(Body::Binary(bytes)) => {
            attributes.push(KeyValue::string(
                attr::RESPONSE_BODY,
                base64::engine::general_purpose::STANDARD.encode(bytes),
            ));
            attributes.push(KeyValue::string(attr::RESPONSE_BODY_ENCODING, attr::BASE64));
        }
    }
    TracesData {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: service
                    .map(|s| vec![KeyValue::string(attr::RESOURCE_SERVICE_NAME, s)])
                    .unwrap_or_default(),
                dropped_attributes_count: None,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(serde_json::json!({
                    "name": "softprobe-runtime",
                    "version": env!("CARGO_PKG_VERSION"),
                })),
                spans: vec![Span {
                    attributes,
                    ..span.clone()
                }],
                schema_url: None,
            }],
            schema_url: None,
        }],
    }
}

pub(crate) async fn traces(
    State(state): State<AppState>,
    body: RawBody,
) -> Result<StatusCode, ApiError> {
    let format = request_format(&body)?;
    let data = decode(&body.bytes, format)?;
    let mut by_session: BTreeMap<String, Vec<Exchange>> = BTreeMap::new();
    let mut without_session = 0usize;
    for (path, span, service) in spans(&data) {
        let Some(session_id) = span
            .attributes
            .iter()
            .find(|kv| kv.key == attr::SESSION_ID)
            .and_then(|kv| kv.value.as_str())
            .filter(|s| !s.is_empty())
        else {
            // Exporters also send the app's own internal spans; they belong to no session.
            without_session += 1;
            continue;
        };
        match Exchange::from_span(span, service) {
            Ok(exchange) => by_session
                .entry(session_id.to_owned())
                .or_default()
                .push(exchange),
            // OTLP senders ignore answers, so one odd span must not cost the others; the log
            // says which span and why.
            Err(err) => tracing::warn!(
                sessionId = %session_id,
                "{path}: not an HTTP hop, not recorded: {err}"
            ),
        }
    }
    if without_session > 0 {
        tracing::debug!(
            spans = without_session,
            "ignored spans without sp.session.id"
        );
    }
    let store = state.store();
    let mut refused = None;
    for (session_id, exchanges) in by_session {
        tracing::info!(
            "handling POST /v1/traces spans={} sessionId={session_id}",
            exchanges.len()
        );
        let Some(session) = store.get(&session_id) else {
            tracing::warn!(
                sessionId = %session_id,
                spans = exchanges.len(),
                "spans for an unknown or closed session were not recorded"
            );
            continue;
        };
        // A batch that does not fit is refused whole, so a session never holds half of one.
        if let Err(err) = session.check_span_room(exchanges.len()) {
            tracing::warn!(sessionId = %session_id, "{err}");
            refused.get_or_insert(err);
            continue;
        }
        let total = exchanges.len();
        for (index, exchange) in exchanges.into_iter().enumerate() {
            let line = (
                exchange.direction,
                exchange.method.clone(),
                exchange.url(),
                exchange.status.unwrap_or(0),
                exchange
                    .end_time_unix_nano
                    .saturating_sub(exchange.start_time_unix_nano),
            );
            match store.record(&session_id, exchange) {
                Ok(_) => {
                    let (direction, method, url, status, nanos) = line;
                    crate::hop_log::log(
                        Some(&session_id),
                        direction,
                        &method,
                        &url,
                        "captured",
                        status,
                        std::time::Duration::from_nanos(nanos),
                    );
                }
                Err(crate::error::Error::SpanLimit { limit, .. }) => {
                    // Another request filled the session since the check above.
                    let err = crate::error::Error::SpanLimit {
                        session_id: session_id.clone(),
                        limit,
                        refused: total - index,
                    };
                    tracing::warn!(sessionId = %session_id, "{err}");
                    refused.get_or_insert(err);
                    break;
                }
                // Closed between the lookup and now: the rest of its spans go nowhere.
                Err(_) => break,
            }
        }
    }
    if let Some(err) = refused {
        return Err(err.into());
    }
    Ok(StatusCode::NO_CONTENT)
}
