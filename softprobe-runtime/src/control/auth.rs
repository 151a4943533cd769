//! Bearer-token auth for `/v1/*` when a token is configured; `/health` and `/metrics` stay
//! open so probes and scrapers need no secret. The compare is constant-time.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Whether `presented` (the `Authorization` header value) carries `token` as a bearer
/// token: `Ok` when it does, else the error to answer.
pub(crate) fn check(presented: Option<&[u8]>, token: &str) -> Result<(), ApiError> {
    let Some(value) = presented else {
        return Err(ApiError::missing_token());
    };
    // The scheme is case-insensitive (RFC 9110 §11.1); other schemes present credentials
    // this runtime does not accept, which is a wrong token rather than a missing one.
    let Some(credentials) = value
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|_| value[7..].trim_ascii())
    else {
        return Err(ApiError::invalid_token());
    };
    if bool::from(credentials.ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::invalid_token())
    }
}

pub(crate) async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    tracing::debug!(method = %req.method(), path = req.uri().path(), "request");
    if let Some(token) = state.token() {
        let path = req.uri().path();
        if path == "/v1" || path.starts_with("/v1/") {
            let presented = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
            if let Err(err) = check(presented, token) {
                return err.into_response();
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_and_token_are_checked() {
        assert!(check(Some(b"Bearer s3cret"), "s3cret").is_ok());
        assert!(check(Some(b"bearer s3cret"), "s3cret").is_ok());
        assert_eq!(
            check(None, "s3cret").unwrap_err().code(),
            "missing_bearer_token"
        );
        assert_eq!(
            check(Some(b"Basic czNjcmV0"), "s3cret").unwrap_err().code(),
            "invalid_bearer_token"
        );
        assert_eq!(
            check(Some(b"Bearer s3cre"), "s3cret").unwrap_err().code(),
            "invalid_bearer_token"
        );
        assert_eq!(
            check(Some(b"Bearer "), "s3cret").unwrap_err().code(),
            "invalid_bearer_token"
        );
    }
}
