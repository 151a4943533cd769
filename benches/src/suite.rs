//! Row 8: suite throughput. The checkout fixture, varied into `n` cases, replayed by the
//! suite runner (`softprobe suite run`'s library API, 16 cases in flight) against a small app
//! behind our ingress and egress proxies, with the runtime's control API in the same process.
//!
//! The app answers `POST /checkout` after asking `http://fragment/shipping` for a quote
//! through the egress proxy, carrying the trace context the ingress gave it, as an
//! instrumented service does; every quote comes from the case being replayed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use softprobe_runtime::proxy::{CertificateAuthority, EgressProxy, IngressProxy, StoreBackend};
use softprobe_runtime::suite::{self, RunOptions};

/// The recorded checkout: an inbound `POST /checkout` and its outbound calls.
const FIXTURE: &str = include_str!("../../fixtures/cases/checkout.case.json");

/// What one suite run measured.
pub(crate) struct SuiteResult {
    pub(crate) cases: usize,
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    /// The runner's own figure: cases over the run's wall time.
    pub(crate) cases_per_second: f64,
}

/// The app's one route; anything else is a 404.
async fn checkout(
    client: reqwest::Client,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let reply = |status: u16, body: Value| {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a JSON response builds")
    };
    if req.method() != http::Method::POST || req.uri().path() != "/checkout" {
        return reply(404, json!({"error": "not found"}));
    }
    let (parts, body) = req.into_parts();
    let order: Value = match body.collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(e) => return reply(400, json!({"error": e.to_string()})),
    };
    let mut call = client.get("http://fragment/shipping?zip=94107");
    for name in ["traceparent", "tracestate"] {
        if let Some(v) = parts.headers.get(name) {
            call = call.header(name, v.as_bytes());
        }
    }
    let shipping = match call.send().await {
        Ok(r) if r.status().is_success() => r
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null),
        Ok(r) => {
            let status = r.status().as_u16();
            return reply(502, json!({"error": format!("shipping answered {status}")}));
        }
        Err(e) => return reply(502, json!({"error": e.to_string()})),
    };
    let amount = order["amount"].as_u64().unwrap_or(0);
    reply(
        200,
        json!({
            "orderId": format!("ord_{amount}"),
            "status": "paid",
            "amount": amount,
            "currency": order["currency"],
            "shipping": shipping,
        }),
    )
}

/// Serves the app on `127.0.0.1:0`; its outbound calls go through `egress`.
async fn serve_app(egress: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress).map_err(|e| format!("proxy {egress}: {e}"))?)
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| format!("the app's client: {e}"))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("binding the app: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the app's address: {e}"))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let client = client.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let client = client.clone();
                    async move { Ok::<_, Infallible>(checkout(client, req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(format!("http://{addr}"))
}

fn attr_mut<'a>(span: &'a mut Value, key: &str) -> Result<&'a mut Value, String> {
    span["attributes"]
        .as_array_mut()
        .and_then(|attrs| attrs.iter_mut().find(|a| a["key"] == key))
        .map(|a| &mut a["value"])
        .ok_or_else(|| format!("the checkout fixture's span has no {key} attribute"))
}

fn attr_text(span: &Value, key: &str) -> String {
    span["attributes"]
        .as_array()
        .and_then(|attrs| attrs.iter().find(|a| a["key"] == key))
        .and_then(|a| a["value"]["stringValue"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Writes `n` variants of the checkout fixture into `dir`: order `i` is for `100 + i` in one
/// of three currencies with its own shipping quote, and the answer the app gives for it.
pub(crate) fn write_cases(dir: &Path, n: usize) -> Result<(), String> {
    let fixture: Value =
        serde_json::from_str(FIXTURE).map_err(|e| format!("the checkout fixture: {e}"))?;
    for i in 0..n {
        let mut case = fixture.clone();
        let amount = 100 + i as u64;
        let currency = ["USD", "EUR", "GBP"][i % 3];
        let shipping = json!({
            "carrier": "UPS",
            "service": if i % 2 == 0 { "ground" } else { "express" },
            "amount": 500 + (i as u64 % 400),
            "currency": currency,
            "estimatedDays": 1 + i % 5,
        });
        case["caseId"] = json!(format!("checkout-{i:04}"));
        let spans = case["traces"][0]["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array_mut()
            .ok_or("the checkout fixture has no spans where expected")?;
        for span in spans.iter_mut() {
            let direction = attr_text(span, "sp.traffic.direction");
            let host = attr_text(span, "url.host");
            if direction == "inbound" {
                let req = json!({"amount": amount, "currency": currency});
                let resp = json!({
                    "orderId": format!("ord_{amount}"),
                    "status": "paid",
                    "amount": amount,
                    "currency": currency,
                    "shipping": shipping,
                });
                *attr_mut(span, "http.request.body")? = json!({"stringValue": req.to_string()});
                *attr_mut(span, "http.response.body")? = json!({"stringValue": resp.to_string()});
            } else if host == "fragment" {
                *attr_mut(span, "http.response.body")? =
                    json!({"stringValue": shipping.to_string()});
            }
        }
        let path = dir.join(format!("checkout-{i:04}.case.json"));
        let bytes = serde_json::to_vec(&case).map_err(|e| e.to_string())?;
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Replays `n` cases once with 16 in flight and reports the runner's figures.
pub(crate) async fn run(n: usize) -> Result<SuiteResult, String> {
    let server = softprobe_runtime::Server::builder()
        .listen(([127, 0, 0, 1], 0).into())
        .start()
        .await
        .map_err(|e| format!("the runtime server: {e}"))?;
    let backend = Arc::new(StoreBackend::new(server.store()));
    let egress = EgressProxy::builder()
        .ca(CertificateAuthority::generate().map_err(|e| e.to_string())?)
        .backend(backend.clone())
        .start()
        .await
        .map_err(|e| format!("the egress proxy: {e}"))?;
    let app = serve_app(&egress.uri()).await?;
    let ingress = IngressProxy::builder()
        .upstream(app)
        .backend(backend)
        .start()
        .await
        .map_err(|e| format!("the ingress proxy: {e}"))?;

    let dir = tempfile::tempdir().map_err(|e| format!("a temp dir: {e}"))?;
    let cases = dir.path().join("cases");
    std::fs::create_dir_all(&cases).map_err(|e| format!("{}: {e}", cases.display()))?;
    write_cases(&cases, n)?;
    let suite_path = dir.path().join("checkout.suite.yaml");
    std::fs::write(
        &suite_path,
        "name: checkout\n\
         cases: cases/*.case.json\n\
         defaults:\n  \
           request: { source: case.ingress }\n  \
           assertions:\n    \
             status: 200\n    \
             headers:\n      \
               include: { content-type: '^application/json' }\n    \
             body: { mode: json-subset }\n  \
           policy: { externalHttp: strict }\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", suite_path.display()))?;
    let suite = suite::load(&suite_path, &BTreeMap::new()).map_err(|e| e.to_string())?;
    let mut opts = RunOptions::new(server.uri(), ingress.uri());
    opts.parallel = 16;
    let report = suite::run(&suite, &opts)
        .await
        .map_err(|e| format!("the suite run: {e}"))?;
    if let Some(bad) = report
        .cases
        .iter()
        .find(|c| c.status != suite::CaseStatus::Passed)
    {
        eprintln!(
            "row 8: case {} did not pass: {}",
            bad.name,
            serde_json::to_string(&bad.failures).unwrap_or_default()
        );
    }
    ingress.shutdown().await;
    egress.shutdown().await;
    server.shutdown().await;
    Ok(SuiteResult {
        cases: report.total,
        passed: report.passed,
        failed: report.failed,
        cases_per_second: report.cases_per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_cases_differ_in_their_answers_and_parse_as_cases() {
        let dir = tempfile::tempdir().unwrap();
        write_cases(dir.path(), 3).unwrap();
        let read = |i: usize| {
            let path = dir.path().join(format!("checkout-{i:04}.case.json"));
            softprobe_runtime::case::Case::from_slice(&std::fs::read(path).unwrap()).unwrap()
        };
        let (a, b) = (read(0), read(1));
        assert_eq!(a.case_id, "checkout-0000");
        let inbound = |c: &softprobe_runtime::case::Case| {
            c.exchanges()
                .unwrap()
                .into_iter()
                .find(|e| e.direction == softprobe_runtime::case::Direction::Inbound)
                .unwrap()
        };
        let (ia, ib) = (inbound(&a), inbound(&b));
        assert_eq!(
            ia.request_body.as_ref().unwrap().as_text(),
            Some(r#"{"amount":100,"currency":"USD"}"#)
        );
        assert_ne!(ia.response_body, ib.response_body);
    }
}
