//! Multipart uploads from reqwest's multipart form through the egress: each upload has a new
//! random boundary, so replay can only tell two uploads apart by their parts. Capture notes
//! the parts (large ones as digests), replay with the upstream stopped answers each upload
//! with its own recording in any order, and a miss report lists the parts that differ.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use softprobe_runtime::multipart::{INLINE_PART_LIMIT, Part, REQUEST_PARTS};
use softprobe_runtime::proxy::{EgressProxy, StoreBackend};

use support::*;

/// Answers an upload with the size of its body and the sku its CSV names.
fn uploads() -> Handler {
    Arc::new(|req: http::Request<Bytes>| {
        Box::pin(async move {
            let text = String::from_utf8_lossy(req.body());
            let sku = ["A-1", "B-7"]
                .into_iter()
                .find(|s| text.contains(s))
                .unwrap_or("none");
            let body = json!({"sku": sku, "bytes": req.body().len() > INLINE_PART_LIMIT});
            http::Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        })
    })
}

fn form(order: u32, file: &str, csv: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("order", order.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv)
                .file_name(file.to_owned())
                .mime_str("text/csv")
                .unwrap(),
        )
}

async fn upload(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    form: reqwest::multipart::Form,
) -> (reqwest::StatusCode, Value) {
    json_of(
        client
            .post(format!("{base}{path}"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_matched_part_by_part_whatever_their_boundary() {
    let upstream = serve(uploads(), None).await;
    let base = upstream.url();
    let runtime = runtime().await;
    let rt = runtime.uri();
    let egress = EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress.uri()).unwrap())
        .build()
        .unwrap();
    let big = vec![b'z'; INLINE_PART_LIMIT + 10];

    let session = create_session(&rt, "capture").await;
    egress.bind_session(Some(session.clone()));
    let a = upload(
        &client,
        &base,
        "/upload",
        form(1, "a.csv", b"sku\nA-1\n".to_vec()),
    )
    .await;
    let b = upload(
        &client,
        &base,
        "/upload",
        form(2, "b.csv", b"sku\nB-7\n".to_vec()),
    )
    .await;
    let large = upload(&client, &base, "/upload", form(3, "big.csv", big.clone())).await;
    assert_eq!(
        (a.1["sku"].as_str(), b.1["sku"].as_str()),
        (Some("A-1"), Some("B-7"))
    );
    assert_eq!(large.1["bytes"], true);

    let closed = close_case(&rt, &session, 3).await;
    let hops = closed.exchanges().unwrap();
    let parts = |i: usize| -> Vec<Part> {
        let kv = hops[i]
            .extra_attributes
            .iter()
            .find(|kv| kv.key == REQUEST_PARTS)
            .unwrap_or_else(|| panic!("{:#?}", hops[i]));
        serde_json::from_str(kv.value.as_str().unwrap()).unwrap()
    };
    let first = parts(0);
    assert_eq!(first[0].name.as_deref(), Some("order"));
    assert_eq!(first[0].text.as_deref(), Some("1"));
    assert_eq!(first[1].filename.as_deref(), Some("a.csv"));
    assert_eq!(first[1].content_type.as_deref(), Some("text/csv"));
    assert_eq!(first[1].text.as_deref(), Some("sku\nA-1\n"));
    let third = parts(2);
    assert_eq!(third[1].size, big.len());
    assert!(third[1].sha256.is_some() && third[1].text.is_none());
    assert!(
        hops[2].request_body.is_none(),
        "a body with large parts is kept as digests only"
    );

    // Replay in another order, with new boundaries: each upload gets its own answer.
    upstream.stop().await;
    let replay = create_session(&rt, "replay").await;
    let case: Value = serde_json::to_value(&closed).unwrap();
    post(&rt, &format!("/v1/sessions/{replay}/load-case"), case).await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    egress.bind_session(Some(replay.clone()));
    assert_eq!(
        upload(&client, &base, "/upload", form(3, "big.csv", big.clone())).await,
        large
    );
    assert_eq!(
        upload(
            &client,
            &base,
            "/upload",
            form(2, "b.csv", b"sku\nB-7\n".to_vec())
        )
        .await,
        b
    );
    assert_eq!(
        upload(
            &client,
            &base,
            "/upload",
            form(1, "a.csv", b"sku\nA-1\n".to_vec())
        )
        .await,
        a
    );

    // A miss names the part that differs.
    let (status, report) = upload(
        &client,
        &base,
        "/upload-v2",
        form(1, "a.csv", b"sku\nC-3\n".to_vec()),
    )
    .await;
    assert_eq!(status, 599, "{report}");
    let lines: Vec<String> = report["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["differences"].as_array().unwrap().clone())
        .map(|d| {
            format!(
                "{}: {}",
                d["field"].as_str().unwrap(),
                d["expected"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        lines.contains(
            &r#"body part 2 "file" (a.csv): content: expected "sku\nA-1\n", got "sku\nC-3\n""#
                .to_owned()
        ),
        "{lines:#?}"
    );
}
