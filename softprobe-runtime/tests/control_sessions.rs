//! Session lifecycle over real HTTP: health, meta, create, list, stats, state, close, and
//! the exact response bodies (insta snapshots, ids redacted).

mod support;

use serde_json::json;
use softprobe_runtime::case::validate::SchemaKind;
use support::*;

#[tokio::test]
async fn health_and_meta() {
    let server = start(None, None).await;
    let base = server.uri();
    let (status, body) = get_json(&base, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "status": "ok",
            "specVersion": "http-control-api@v1",
            "schemaVersion": "1",
            "runtimeVersion": env!("CARGO_PKG_VERSION"),
        })
    );
    assert_schema(SchemaKind::HealthResponse, &body);

    let (status, body) = get_json(&base, "/v1/meta").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "softprobe-runtime");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_schema(SchemaKind::MetaResponse, &body);
    insta::assert_json_snapshot!("meta", body, {".version" => "[version]", ".runtimeVersion" => "[version]"});
}

#[tokio::test]
async fn session_lifecycle_bodies() {
    let server = start(None, None).await;
    let base = server.uri();
    let redact = "[sessionId]";

    let (status, created) = post_json(&base, "/v1/sessions", &json!({"mode": "replay"})).await;
    assert_eq!(status, 200);
    let id = created["sessionId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sess_") && id.len() == 27, "{id}");
    assert_schema(SchemaKind::CreateSessionResponse, &created);
    insta::assert_json_snapshot!("create", created, {".sessionId" => redact});

    let (status, list) = get_json(&base, "/v1/sessions").await;
    assert_eq!(status, 200);
    assert_eq!(list["sessions"][0]["sessionId"], id.as_str());
    assert_schema(SchemaKind::ListSessionsResponse, &list);
    insta::assert_json_snapshot!("list", list, {
        ".sessions[].sessionId" => redact,
        ".sessions[].createdAt" => "[createdAt]",
    });

    let (status, stats) = get_json(&base, &format!("/v1/sessions/{id}/stats")).await;
    assert_eq!(status, 200);
    assert_schema(SchemaKind::StatsResponse, &stats);
    insta::assert_json_snapshot!("stats", stats, {".sessionId" => redact});

    let (status, state) = get_json(&base, &format!("/v1/sessions/{id}/state")).await;
    assert_eq!(status, 200);
    assert_schema(SchemaKind::StateResponse, &state);
    insta::assert_json_snapshot!("state_fresh", state, {
        ".sessionId" => redact,
        ".createdAt" => "[createdAt]",
    });

    let (status, closed) = post_json(&base, &format!("/v1/sessions/{id}/close"), &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        closed,
        json!({"sessionId": id, "closed": true, "casePath": null, "capturePath": null})
    );
    assert_schema(SchemaKind::CloseResponse, &closed);

    // Closed means gone.
    let (status, body) = get_json(&base, &format!("/v1/sessions/{id}/stats")).await;
    expect_error(status, &body, 404, "unknown_session");
    let (_, list) = get_json(&base, "/v1/sessions").await;
    assert_eq!(list, json!({"sessions": []}));
}

#[tokio::test]
async fn create_accepts_case_id_and_test_name_and_lists_oldest_first() {
    let server = start(None, None).await;
    let base = server.uri();
    let (status, first) = post_json(
        &base,
        "/v1/sessions",
        &json!({"mode": "CAPTURE", "caseId": "checkout", "testName": "checkout_works"}),
    )
    .await;
    // Modes are lowercase on the wire.
    let msg = expect_error(status, &first, 400, "invalid_request");
    assert!(
        msg.starts_with("$.mode: unknown variant `CAPTURE`"),
        "{msg}"
    );
    let (status, first) = post_json(
        &base,
        "/v1/sessions",
        &json!({"mode": "capture", "caseId": "checkout", "testName": "checkout_works"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let second = create_session(&base, "generate").await;
    let (_, list) = get_json(&base, "/v1/sessions").await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["sessionId"], first["sessionId"]);
    assert_eq!(sessions[0]["caseId"], "checkout");
    assert_eq!(sessions[0]["mode"], "capture");
    assert_eq!(sessions[1]["sessionId"], second.as_str());
    assert!(sessions[1].get("caseId").is_none());
}

#[tokio::test]
async fn close_accepts_an_empty_body() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    // Exactly what the seed's curl sends: no body, no content-type.
    let resp = client()
        .post(format!("{base}/v1/sessions/{id}/close"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["closed"], true);
}

#[tokio::test]
async fn app_can_be_driven_without_a_socket() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let state = softprobe_runtime::Server::builder().build_state();
    let app = softprobe_runtime::control::app(state.clone());
    let resp = app
        .clone()
        .oneshot(
            Request::post("/v1/sessions")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"mode":"replay"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(state.store().len(), 1);
    let resp = app
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// The value of `name` with `label` (`("result", "hit")`) in a parsed scrape.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)));
    match found.map(|s| &s.value) {
        Some(
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v),
        ) => *v,
        other => panic!("{name} {label:?}: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_parse_with_ours_and_the_originals_names() {
    let server = start(Some("s3cret"), None).await;
    let base = server.uri();
    for mode in ["capture", "replay", "replay"] {
        let resp = client()
            .post(format!("{base}/v1/sessions"))
            .bearer_auth("s3cret")
            .json(&json!({"mode": mode}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // /metrics stays open even with a token.
    let resp = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    // The original runtime's names and labels.
    assert_eq!(
        sample(
            &scrape,
            "softprobe_sessions_total",
            Some(("mode", "replay"))
        ),
        2.0
    );
    assert_eq!(
        sample(
            &scrape,
            "softprobe_sessions_total",
            Some(("mode", "capture"))
        ),
        1.0
    );
    for result in ["hit", "miss", "error"] {
        let v = sample(
            &scrape,
            "softprobe_inject_requests_total",
            Some(("result", result)),
        );
        assert_eq!(v, 0.0, "{result}");
    }
    assert_eq!(sample(&scrape, "softprobe_extract_spans_total", None), 0.0);
    let latency = scrape
        .samples
        .iter()
        .find(|s| s.metric == "softprobe_inject_latency_seconds")
        .unwrap_or_else(|| panic!("no histogram in {text}"));
    let prometheus_parse::Value::Histogram(buckets) = &latency.value else {
        panic!("{latency:?}")
    };
    let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
    assert_eq!(bounds.first(), Some(&0.001), "{bounds:?}");
    assert!(bounds.contains(&5.0), "{bounds:?}");
    // Ours.
    assert_eq!(sample(&scrape, "softprobe_sessions_open", None), 3.0);
    assert_eq!(
        sample(&scrape, "softprobe_sessions_created_total", None),
        3.0
    );
    assert_eq!(
        sample(
            &scrape,
            "softprobe_inject_total",
            Some(("result", "strict_miss"))
        ),
        0.0
    );
    assert_eq!(
        sample(&scrape, "softprobe_extracted_spans_total", None),
        0.0
    );
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let server = start(None, None).await;
    let addr = server.addr();
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let server = start(None, None).await;
    let addr = server.addr();
    drop(server);
    // Dropping the handle stops the accept loop shortly after.
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "the port still accepts after the handle was dropped"
    );
}

#[tokio::test]
async fn proxy_ca_is_served_once_published() {
    let server = start(Some("s3cret"), None).await;
    let base = server.uri();
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let fetch = || {
        client()
            .get(format!("{base}/v1/proxy/ca.pem"))
            .bearer_auth("s3cret")
            .send()
    };
    let (status, body) = json_of(fetch().await.unwrap()).await;
    expect_error(status, &body, 404, "not_found");
    server.state().set_proxy_ca_pem(pem);
    let resp = fetch().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-pem-file");
    assert_eq!(resp.text().await.unwrap(), pem);
}
