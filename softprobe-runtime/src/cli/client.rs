//! A small blocking client of the control API (`spec/protocol/control-api.md`), shared by
//! every CLI command that talks to a runtime.

use serde_json::Value;

use super::output::{CliError, ExitCode};
use crate::error::root_cause;

/// Talks to one runtime.
pub(crate) struct ControlClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl ControlClient {
    pub(crate) fn new(base: &str, token: Option<String>) -> Result<Self, CliError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| CliError::new(ExitCode::Failure, "client_error", e.to_string()))?;
        Ok(ControlClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.get(self.url(path)))
    }

    /// A GET whose successful answer is kept as sent (a case document, byte for byte).
    pub(crate) fn get_text(&self, path: &str) -> Result<String, CliError> {
        self.exchange(self.http.get(self.url(path)))
    }

    pub(crate) fn post_json(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.http.post(self.url(path)).json(body))
    }

    pub(crate) fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, CliError> {
        self.send(
            self.http
                .post(self.url(path))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn transport_error(&self, e: reqwest::Error) -> CliError {
        if e.is_connect() || e.is_timeout() {
            CliError::new(
                ExitCode::Unreachable,
                "runtime_unreachable",
                format!(
                    "cannot reach the runtime at {}: {}; start it with `softprobe-runtime` or point --runtime-url / SOFTPROBE_RUNTIME_URL at it",
                    self.base,
                    root_cause(&e)
                ),
            )
        } else {
            CliError::new(ExitCode::Failure, "transport_error", root_cause(&e))
        }
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<Value, CliError> {
        let text = self.exchange(req)?;
        Ok(if text.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        })
    }

    /// Sends the request; the body of a success as text, an error answer as a [`CliError`].
    fn exchange(&self, mut req: reqwest::blocking::RequestBuilder) -> Result<String, CliError> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| self.transport_error(e))?;
        if status.is_success() {
            return Ok(text);
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or("http_error")
            .to_owned();
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("runtime answered {status}: {body}"));
        let exit = match (status.as_u16(), code.as_str()) {
            (_, "unknown_session") => ExitCode::UnknownSession,
            (400 | 413 | 415, _) => ExitCode::InvalidInput,
            _ => ExitCode::Failure,
        };
        Err(CliError::new(exit, code, message))
    }
}
