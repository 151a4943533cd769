//! One case of a suite, driven the same way wherever it runs: `softprobe suite run` drives
//! it over the control API ([`super::runner`]), the tests `#[softprobe::cases]` generates
//! drive it over their `Session`. Both plan the mocks (asking mock hooks), install them with
//! the policy, then plan each request, let the request hook rewrite it, send it, and check
//! the answer; only installing and sending differ, and a [`CaseHost`] does those.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::assert::Message;
use super::hooks::{HookKind, HookSet};
use super::model::PlannedCase;
use super::report::Failure;
use super::steps::{self, Checks, fail};
use crate::case::Exchange;
use crate::error::root_cause;

/// What differs between the places a case runs: how the session gets its mocks and policy,
/// and how a request reaches the service.
// The futures are awaited where the host's concrete type is known, so their `Send`-ness is
// that of the implementation; no caller needs it through the trait.
#[allow(async_fn_in_trait)]
pub trait CaseHost {
    /// Installs the case's mock rules (a rules document, `None` when the suite mocks
    /// nothing) and its policy, and makes the service ready for the requests.
    async fn prepare(
        &mut self,
        rules: Option<Value>,
        policy: Option<&Value>,
    ) -> Result<(), Failure>;

    /// Sends one planned request (`{method, path, headers, body}`); `url` is the suite's
    /// `request.url` when it gives one.
    async fn send(
        &mut self,
        request: &Map<String, Value>,
        url: Option<&str>,
    ) -> Result<Message, Failure>;

    /// Checks of an answer beyond the suite's own (none by default); each message is one
    /// `assert_body` failure.
    fn extra_checks(&self, _expected: &Message, _actual: &Message) -> Vec<String> {
        Vec::new()
    }
}

/// The `request` failure of a request to `method url` that got no answer.
pub fn unanswered(
    method: &impl std::fmt::Display,
    url: &str,
    err: &(dyn std::error::Error + 'static),
) -> Failure {
    fail(
        "request",
        format!("{method} {url} failed: {}", root_cause(err)),
    )
}

/// The answer to a request to `method url` as a [`Message`]: its status, its headers (from
/// [`crate::headers::pairs`]), and its whole `body`, read here; a body that cannot be read fails the
/// `request` step.
pub async fn receive<B, E>(
    method: &impl std::fmt::Display,
    url: &str,
    status: u16,
    headers: Vec<(String, String)>,
    body: impl Future<Output = Result<B, E>>,
) -> Result<Message, Failure>
where
    B: Into<Vec<u8>>,
    E: std::error::Error + 'static,
{
    let body = body.await.map_err(|e| {
        fail(
            "request",
            format!("{method} {url}: reading the body: {}", root_cause(&e)),
        )
    })?;
    Ok(Message {
        status,
        headers,
        body: body.into(),
    })
}

/// What driving a case found: the failures, and per request sent the answer expected
/// (`null` when the request came from the suite) and the one received.
#[derive(Debug, Default)]
pub struct Driven {
    /// Every failed check, labelled with its request when the case sends several.
    pub failures: Vec<Failure>,
    /// The captured answers, as JSON, in request order.
    pub expected: Vec<Value>,
    /// The answers received, as JSON, in request order.
    pub actual: Vec<Value>,
}

/// The suite's hooks and where they are called from, for the envelope each hook receives.
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    /// The loaded hooks.
    pub hooks: &'a Arc<HookSet>,
    /// The suite's name.
    pub suite_name: &'a str,
}

impl HookContext<'_> {
    /// Calls hook `name` off the async workers (an executable or a Node round trip blocks).
    async fn call(
        &self,
        name: &str,
        kind: HookKind,
        case: &PlannedCase,
        payload: Value,
    ) -> Result<Value, Failure> {
        let payload = steps::hook_envelope(payload, kind, self.suite_name, &case.name, &case.path);
        let hooks = self.hooks.clone();
        let owned = name.to_owned();
        tokio::task::spawn_blocking(move || hooks.call(&owned, kind, &payload))
            .await
            .map_err(|e| fail("hook", format!("hook {name} panicked: {e}")))?
            .map_err(|e| fail("hook", e))
    }
}

/// Drives `case`, whose recorded hops are `exchanges`, through `host`. An `Err` is a failure
/// that stopped the case before its checks ended (the case file, a mock or request hook, the
/// session set-up); failures of single requests and checks are collected in `driven`.
pub async fn drive<H: CaseHost>(
    host: &mut H,
    hooks: HookContext<'_>,
    case: &PlannedCase,
    exchanges: &[Exchange],
    driven: &mut Driven,
) -> Result<(), Failure> {
    let settings = &case.settings;
    let mut rules = Vec::new();
    for pending in steps::plan_mocks(&case.path, settings, exchanges)? {
        let answer = match pending.hook() {
            Some((hook, payload)) => Some(
                hooks
                    .call(hook, HookKind::MockResponse, case, payload)
                    .await?,
            ),
            None => None,
        };
        rules.push(pending.rule(answer.as_ref()));
    }
    let rules = (!rules.is_empty()).then(|| json!({"version": 1, "rules": rules}));
    host.prepare(rules, settings.policy.as_ref()).await?;

    let checks = Checks::new(settings);
    let planned = steps::plan_requests(&case.path, settings, exchanges)?;
    let of = planned.len();
    let url = settings.request.as_ref().and_then(|r| r.url.as_deref());
    for (n, (mut request, expected)) in planned.into_iter().enumerate() {
        if let Some(hook) = settings.request.as_ref().and_then(|r| r.hook.as_ref()) {
            let answer = hooks
                .call(
                    hook,
                    HookKind::Request,
                    case,
                    json!({"index": n, "request": request.clone()}),
                )
                .await?;
            steps::apply_request_answer(&mut request, &answer);
        }
        let actual = match host.send(&request, url).await {
            Ok(actual) => actual,
            Err(f) => {
                driven.failures.push(steps::label(f, n, of));
                continue;
            }
        };
        driven
            .failures
            .extend(checks.check(expected.as_ref(), &actual, n, of));
        for (hook, kind) in checks.hooks() {
            let payload = steps::check_payload(n, &request, expected.as_ref(), &actual);
            let failure = match hooks.call(hook, kind, case, payload).await {
                Ok(answer) => steps::check_answer(&hooks.hooks.describe(hook), kind, &answer),
                Err(f) => Some(f),
            };
            driven
                .failures
                .extend(failure.map(|f| steps::label(f, n, of)));
        }
        if let Some(expected) = &expected {
            for message in host.extra_checks(expected, &actual) {
                driven
                    .failures
                    .push(steps::label(fail("assert_body", message), n, of));
            }
        }
        driven
            .expected
            .push(expected.map_or(Value::Null, |e| e.to_json()));
        driven.actual.push(actual.to_json());
    }
    Ok(())
}
