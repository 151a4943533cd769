//! Request bodies: the size limit (413), the media type (415) and typed parsing whose
//! errors name the JSON path (400). Handlers take [`RawBody`] and decide how to parse it,
//! because some routes accept YAML or protobuf as well as JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use crate::case::validate::{SchemaKind, validate_json};
use crate::proxy::http::{CollectError, collect_limited, discard_rest};

/// Name given to request bodies in parse errors.
pub(crate) const BODY: &str = "request body";

/// A request body with its `content-type`, read within the server's body limit.
#[derive(Debug)]
pub(crate) struct RawBody {
    pub(crate) content_type: Option<String>,
    pub(crate) bytes: Bytes,
}

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut body = req.into_body();
        match collect_limited(&mut body, state.body_limit()).await {
            Ok(bytes) => Ok(RawBody {
                content_type,
                bytes,
            }),
            Err(CollectError::TooLarge { limit }) => {
                discard_rest(body).await;
                Err(ApiError::payload_too_large(limit))
            }
            Err(CollectError::Read(e)) => Err(ApiError::invalid(format!(
                "cannot read the request body: {e}"
            ))),
        }
    }
}

/// The syntaxes a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Json,
    Yaml,
}

fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(essence: &str) -> bool {
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
        || essence == "text/json"
}

fn is_yaml(essence: &str) -> bool {
    matches!(
        essence,
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml"
    )
}

impl RawBody {
    /// The syntax of the body: JSON when no `content-type` is given; YAML only where
    /// `yaml_ok`; anything else is a 415.
    pub(crate) fn syntax(&self, yaml_ok: bool) -> Result<Syntax, ApiError> {
        let Some(ct) = self.content_type.as_deref() else {
            return Ok(Syntax::Json);
        };
        let e = essence(ct);
        if e.is_empty() || is_json(&e) {
            Ok(Syntax::Json)
        } else if yaml_ok && is_yaml(&e) {
            Ok(Syntax::Yaml)
        } else if self.bytes.is_empty() {
            // A body-less POST (curl -X POST with a stray content-type) carries nothing to
            // misread.
            Ok(Syntax::Json)
        } else {
            Err(ApiError::unsupported_media_type(
                ct,
                if yaml_ok {
                    "application/json or application/yaml"
                } else {
                    "application/json"
                },
            ))
        }
    }

    /// Whether the body is empty or only whitespace.
    pub(crate) fn is_blank(&self) -> bool {
        self.bytes.iter().all(u8::is_ascii_whitespace)
    }

    /// Parses a JSON body into `T` and checks it against the schema of `kind`; errors name
    /// the JSON path (and the position, for syntax and type errors).
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        kind: SchemaKind,
        what: &str,
    ) -> Result<T, ApiError> {
        self.syntax(false)?;
        if self.is_blank() {
            return Err(ApiError::invalid(format!(
                "request body is empty: expected {what} as JSON"
            )));
        }
        let parsed = parse_json(&self.bytes)?;
        check_schema(kind, &self.bytes)?;
        Ok(parsed)
    }

    /// Parses a document that may come as JSON or YAML with `parse` (given the bytes and
    /// the name errors call them by), and checks a JSON one against the schema of `kind`
    /// too; an empty body is refused, saying that `expected` was expected.
    pub(crate) fn document<T, E: std::fmt::Display>(
        &self,
        kind: SchemaKind,
        expected: &str,
        parse: impl FnOnce(&[u8], &str) -> Result<T, E>,
    ) -> Result<T, ApiError> {
        let syntax = self.syntax(true)?;
        if self.is_blank() {
            return Err(ApiError::invalid(format!(
                "request body is empty: expected {expected}"
            )));
        }
        let parsed = parse(&self.bytes, BODY).map_err(|e| ApiError::invalid(e.to_string()))?;
        if syntax == Syntax::Json {
            check_schema(kind, &self.bytes)?;
        }
        Ok(parsed)
    }
}

/// Checks a JSON body against its schema in `spec/schemas/` (after the typed parse, which
/// gives the more precise line/column errors, has accepted it): the schema also holds the
/// rules serde cannot express (formats, ranges, patterns).
pub(crate) fn check_schema(kind: SchemaKind, bytes: &[u8]) -> Result<(), ApiError> {
    let value: Value = parse_json(bytes)?;
    validate_json(kind, &value).map_err(|violations| {
        ApiError::invalid(
            violations
                .iter()
                .map(|(path, message)| format!("{path}: {message}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Parses JSON into `T` with a `$.path: message (line L, column C)` error.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    crate::case::validate::locate::from_json(bytes).map_err(|mut err| {
        // A body cut short is the document's fault, not that of the member it ends in.
        if err.category == serde_json::error::Category::Eof {
            err.json_path = "$".to_owned();
        }
        ApiError::invalid(err.to_string())
    })
}
