//! The proxies as the `softprobe-runtime` binary runs them: `--ingress-*`, `--egress-*`,
//! `--ca-out` and `GET /v1/proxy/ca.pem`, and the proxies alone in front of a runtime
//! elsewhere with `--runtime-url`.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use softprobe_runtime::case::{Case, Direction};

use support::*;

fn spawn(args: &[&str]) -> Binary {
    Binary(
        runtime_command()
            .args(args)
            .spawn()
            .expect("the binary starts"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_both_proxies_next_to_the_runtime() {
    // reqwest is built without a default TLS provider; ring is the one this workspace uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = echo().await;
    let (api, ingress, egress) = (free_addr(), free_addr(), free_addr());
    let dir = tempfile::tempdir().unwrap();
    let ca_out = dir.path().join("ca.pem");
    let _bin = spawn(&[
        "--listen",
        &api,
        "--ingress-listen",
        &ingress,
        "--ingress-upstream",
        &upstream.url(),
        "--egress-listen",
        &egress,
        "--ca-out",
        ca_out.to_str().unwrap(),
        "--service-name",
        "shop",
    ]);
    let rt = format!("http://{api}");
    wait_up(&format!("{rt}/health")).await;
    wait_up(&format!("http://{ingress}/")).await;

    let pem = client()
        .get(format!("{rt}/v1/proxy/ca.pem"))
        .send()
        .await
        .unwrap();
    assert_eq!(pem.status(), 200);
    let pem = pem.text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(std::fs::read_to_string(&ca_out).unwrap(), pem);

    let session = create_session(&rt, "capture").await;
    let resp = client()
        .post(format!("http://{ingress}/orders?x=1"))
        .header("x-softprobe-session-id", &session)
        .body("{\"qty\":2}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let via_egress = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{session}@{egress}")).unwrap())
        .build()
        .unwrap();
    let resp = via_egress
        .get(format!("{}/stock", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed: Value = resp.json().await.unwrap();
    assert!(
        echoed["headers"].get("proxy-authorization").is_none(),
        "{echoed}"
    );
    wait_extracted(&rt, &session, 2).await;

    let out = dir.path().join("bin.case.json");
    close_to(&rt, &session, &out).await;
    let hops = Case::read(&out).unwrap().exchanges().unwrap();
    assert_eq!(hops.len(), 2, "{hops:#?}");
    let inbound = hops
        .iter()
        .find(|h| h.direction == Direction::Inbound)
        .unwrap();
    assert_eq!(inbound.path, "/orders");
    assert_eq!(
        inbound.request_body.as_ref().unwrap().as_text(),
        Some("{\"qty\":2}")
    );
    assert_eq!(inbound.service.as_deref(), Some("shop"));
    let outbound = hops
        .iter()
        .find(|h| h.direction == Direction::Outbound)
        .unwrap();
    assert_eq!(outbound.path, "/stock");

    // The proxies alone, in front of the runtime above.
    let lone_egress = free_addr();
    let _proxy_only = spawn(&[
        "--runtime-url",
        &rt,
        "--egress-listen",
        &lone_egress,
        "--require-session",
    ]);
    wait_up(&format!("http://{lone_egress}/")).await;
    let replay = create_session(&rt, "replay").await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/rules"),
        json!({"version": 1, "rules": [{"id": "stock", "when": {"path": "/stock"},
            "then": {"action": "mock", "response": {"status": 200, "body": "from the rule"}}}]}),
    )
    .await;
    let via_lone = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{replay}@{lone_egress}")).unwrap())
        .build()
        .unwrap();
    let resp = via_lone
        .get(format!("{}/stock", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "from the rule");
    let refused = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{lone_egress}")).unwrap())
        .build()
        .unwrap()
        .get(format!("{}/stock", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[test]
fn proxy_flags_that_contradict_each_other_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_softprobe-runtime"))
        .args(["--runtime-url", "http://127.0.0.1:9"])
        .env_remove("SOFTPROBE_INGRESS_UPSTREAM")
        .env_remove("SOFTPROBE_EGRESS_LISTEN_ADDR")
        .env_remove("SOFTPROBE_EGRESS_UPSTREAM")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ingress-upstream"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
