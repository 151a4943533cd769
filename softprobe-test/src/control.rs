//! The one seam between the harness and the runtime that holds its sessions: in this process
//! ([`InProcess`], the default) or a standalone runtime named by `SOFTPROBE_RUNTIME_URL`
//! ([`OverHttp`]). Everything the harness asks of a session goes through [`Control`], so a
//! check that works in one works in the other; docs/replay.md lists what still differs.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use softprobe_runtime::replay::IndexedCase;
use softprobe_runtime::session::{NewSession, SessionStore};
use softprobe_runtime::verdict::SessionFindings;

use crate::error::{Error, Result};

/// What a new session starts with.
pub(crate) struct Opening<'a> {
    pub(crate) mode: softprobe_runtime::Mode,
    pub(crate) case_id: Option<String>,
    pub(crate) test_name: &'a str,
    /// The indexed case and its bytes, for a replay.
    pub(crate) case: Option<&'a (IndexedCase, Vec<u8>)>,
    /// Where the case came from, for messages.
    pub(crate) source: &'a str,
    /// The replay policy document.
    pub(crate) policy: &'a Value,
}

/// The operations the harness needs from a runtime.
pub(crate) trait Control: Send + Sync {
    /// Creates a session (with its case and policy when replaying) and returns its id.
    fn open(&self, opening: Opening<'_>) -> Result<String>;
    /// Replaces the session rules with a rules document.
    fn set_rules(&self, id: &str, document: &Value, source: &str) -> Result<()>;
    /// Replaces the session policy with a policy document.
    fn set_policy(&self, id: &str, document: &Value, source: &str) -> Result<()>;
    /// What the session noticed: strict misses, request drift, recordings never used.
    fn findings(&self, id: &str) -> Result<SessionFindings>;
    /// Closes the session, writing its capture to `out` when given.
    fn close(&self, id: &str, out: Option<&Path>) -> Result<()>;
    /// Whether answers reach the harness with their origin, so that an answer from the
    /// test's own rules can be told from a replayed one.
    fn reports_origins(&self) -> bool;
}

/// Sessions in a store of this process.
pub(crate) struct InProcess(pub(crate) Arc<dyn SessionStore>);

impl Control for InProcess {
    fn open(&self, o: Opening<'_>) -> Result<String> {
        let mut new = NewSession::new(o.mode);
        new.case_id = o.case_id;
        new.test_name = Some(o.test_name.to_owned());
        let session = self
            .0
            .create(new)
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let id = session.id().to_owned();
        // Replay and generate sessions answer strictly: a call nothing answers is a miss.
        if o.mode != softprobe_runtime::Mode::Capture {
            let policy = replay_policy(o.policy, o.source)?;
            // The session shares the harness's indexed case: no copy or index per test.
            self.0
                .update(&id, &mut |state| {
                    if let Some((indexed, _)) = o.case {
                        state.load_indexed_case(indexed);
                    }
                    state.set_policy(policy.clone());
                    Ok(())
                })
                .map_err(|e| Error::Invalid(e.to_string()))?;
        }
        Ok(id)
    }

    fn set_rules(&self, id: &str, document: &Value, source: &str) -> Result<()> {
        let rules =
            softprobe_runtime::rules::parse_rules_document(document.to_string().as_bytes(), source)
                .map_err(|e| Error::Invalid(e.to_string()))?;
        self.0
            .update(id, &mut |state| {
                state.set_rules(rules.clone());
                Ok(())
            })
            .map(|_| ())
            .map_err(|e| Error::Runtime(e.to_string()))
    }

    fn set_policy(&self, id: &str, document: &Value, source: &str) -> Result<()> {
        let policy = parse_policy(document, source)?;
        self.0
            .update(id, &mut |state| {
                state.set_policy(policy.clone());
                Ok(())
            })
            .map(|_| ())
            .map_err(|e| Error::Runtime(e.to_string()))
    }

    fn findings(&self, id: &str) -> Result<SessionFindings> {
        let session = self
            .0
            .session(id)
            .map_err(|e| Error::Runtime(e.to_string()))?;
        Ok(SessionFindings::of(&session))
    }

    fn close(&self, id: &str, out: Option<&Path>) -> Result<()> {
        self.0
            .close(id, out)
            .map(|_| ())
            .map_err(|e| Error::Runtime(e.to_string()))
    }

    fn reports_origins(&self) -> bool {
        true
    }
}

fn parse_policy(document: &Value, source: &str) -> Result<softprobe_runtime::policy::Policy> {
    softprobe_runtime::policy::parse_policy(document.to_string().as_bytes(), source)
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// How many distinct replay policies [`replay_policy`] keeps parsed.
const PARSED_POLICIES_MAX: usize = 16;

/// [`parse_policy`] for the policy a replay session opens with, parsed once per process for
/// each distinct document: every test of a suite opens with one of a few (the attribute's
/// `redact`, `exact` and `headers` lists), and serialising and parsing it again was a
/// measurable share of opening a session. A document that does not parse is not kept, so
/// its error names the case it came with each time.
fn replay_policy(document: &Value, source: &str) -> Result<softprobe_runtime::policy::Policy> {
    type Parsed = Vec<(Value, softprobe_runtime::policy::Policy)>;
    static PARSED: std::sync::Mutex<Parsed> = std::sync::Mutex::new(Vec::new());
    let mut parsed = PARSED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, policy)) = parsed.iter().find(|(doc, _)| doc == document) {
        return Ok(policy.clone());
    }
    let policy = parse_policy(document, source)?;
    if parsed.len() >= PARSED_POLICIES_MAX {
        parsed.remove(0);
    }
    parsed.push((document.clone(), policy.clone()));
    Ok(policy)
}

/// Sessions in a standalone runtime, reached through its control API.
pub(crate) struct OverHttp {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
    rt: tokio::runtime::Handle,
}

impl OverHttp {
    /// A control API client for the runtime at `base`; calls run on `rt`.
    pub(crate) fn new(
        base: &str,
        token: Option<String>,
        rt: tokio::runtime::Handle,
    ) -> std::result::Result<Self, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(OverHttp {
            base: base.trim_end_matches('/').to_owned(),
            token,
            client,
            rt,
        })
    }

    /// Sends one control request and waits for its JSON answer, from sync or async code.
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Result<Value> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let base = self.base.clone();
        let path = path.to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt.spawn(async move {
            let answer = async {
                let resp = req
                    .send()
                    .await
                    .map_err(|e| Error::Runtime(format!("runtime at {base} unreachable: {e}")))?;
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if !status.is_success() {
                    let message = value["error"]["message"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or(text);
                    return Err(Error::Runtime(format!(
                        "{method} {path}: {status}: {message}"
                    )));
                }
                Ok(value)
            };
            let _ = tx.send(answer.await);
        });
        rx.recv()
            .map_err(|_| Error::Runtime("the softprobe runtime dropped a control call".into()))?
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            path,
            Some(body.to_string().into_bytes()),
        )
    }
}

impl Control for OverHttp {
    fn open(&self, o: Opening<'_>) -> Result<String> {
        let created = self.post(
            "/v1/sessions",
            &json!({"mode": o.mode, "caseId": o.case_id, "testName": o.test_name}),
        )?;
        let id = created["sessionId"]
            .as_str()
            .ok_or_else(|| Error::Runtime(format!("no sessionId in {created}")))?
            .to_owned();
        if let Some((_, bytes)) = o.case {
            self.call(
                reqwest::Method::POST,
                &format!("/v1/sessions/{id}/load-case"),
                Some(bytes.clone()),
            )?;
        }
        if o.mode != softprobe_runtime::Mode::Capture {
            self.post(&format!("/v1/sessions/{id}/policy"), o.policy)?;
        }
        Ok(id)
    }

    fn set_rules(&self, id: &str, document: &Value, _source: &str) -> Result<()> {
        self.post(&format!("/v1/sessions/{id}/rules"), document)
            .map(|_| ())
    }

    fn set_policy(&self, id: &str, document: &Value, _source: &str) -> Result<()> {
        self.post(&format!("/v1/sessions/{id}/policy"), document)
            .map(|_| ())
    }

    fn findings(&self, id: &str) -> Result<SessionFindings> {
        let state = self.call(
            reqwest::Method::GET,
            &format!("/v1/sessions/{id}/state"),
            None,
        )?;
        SessionFindings::from_state(&state)
            .map_err(|e| Error::Runtime(format!("runtime at {}: {e}", self.base)))
    }

    fn close(&self, id: &str, out: Option<&Path>) -> Result<()> {
        let mut path = format!("/v1/sessions/{id}/close");
        if let Some(out) = out {
            let abs = std::path::absolute(out).unwrap_or_else(|_| out.to_owned());
            path.push_str("?out=");
            path.extend(percent_encoding::utf8_percent_encode(
                &abs.to_string_lossy(),
                percent_encoding::NON_ALPHANUMERIC,
            ));
        }
        self.post(&path, &json!({})).map(|_| ())
    }

    fn reports_origins(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_policy_is_parsed_once_and_each_document_keeps_its_own() {
        let strict = json!({"externalHttp": "strict", "volatileFields": [".body.id"]});
        let first = replay_policy(&strict, "a.case.json").unwrap();
        assert_eq!(
            first,
            parse_policy(&strict, "a.case.json").unwrap(),
            "the kept policy is the one the document parses into"
        );
        let other = json!({"externalHttp": "strict", "volatileFields": [".body.other"]});
        let second = replay_policy(&other, "b.case.json").unwrap();
        assert_ne!(
            first, second,
            "another document is parsed, not given the first"
        );
        assert_eq!(replay_policy(&strict, "c.case.json").unwrap(), first);
    }

    #[test]
    fn a_replay_policy_that_does_not_parse_names_its_source_every_time() {
        let bad = json!({"externalHttp": "strict", "noSuchKey": true});
        for source in ["first.case.json", "second.case.json"] {
            let err = replay_policy(&bad, source).unwrap_err().to_string();
            assert!(err.contains(source), "{err}");
            assert!(err.contains("noSuchKey"), "{err}");
        }
    }
}
