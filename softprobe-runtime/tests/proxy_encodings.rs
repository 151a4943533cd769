//! Compressed bodies through the egress proxy with real clients and a real upstream: reqwest
//! with its gzip, deflate, brotli and zstd decoders, an upstream that compresses with the
//! codec crates directly. Capture stores the bodies decoded with the coding noted; replay,
//! with the upstream stopped, encodes again for a client that accepts the coding and serves
//! identity otherwise; a body that does not decode is kept byte for byte.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use softprobe_runtime::case::{AnyValue, Body, Exchange};
use softprobe_runtime::content_coding::{REQUEST_CODING, RESPONSE_CODING, RESPONSE_CODING_ERROR};
use softprobe_runtime::proxy::{EgressProxy, StoreBackend};

use support::*;

const BROKEN: &[u8] = b"\x1f\x8b\x08\x00this is not a gzip stream";

fn menu(coding: &str) -> Value {
    json!({"menu": coding, "items": [{"sku": "A-1", "price": 1299}, {"sku": "B-7", "price": 450}]})
}

fn compress(coding: &str, plain: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            brotli::CompressorWriter::new(&mut out, 4096, 9, 20)
                .write_all(plain)
                .unwrap();
            out
        }
        "zstd" => ruzstd::encoding::compress_to_vec(
            plain,
            ruzstd::encoding::CompressionLevel::Uncompressed,
        ),
        other => panic!("no coding {other}"),
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// `GET /menu/{coding}` answers [`menu`] compressed with that coding; `POST /quote` takes a
/// gzip body `{"sku"}` and answers its price; `GET /broken` claims gzip and is not.
fn upstream_handler() -> Handler {
    Arc::new(|req: http::Request<Bytes>| {
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let (coding, body) = if let Some(coding) = path.strip_prefix("/menu/") {
                let plain = serde_json::to_vec(&menu(coding)).unwrap();
                (coding.to_owned(), compress(coding, &plain))
            } else if path == "/quote" {
                assert_eq!(req.headers()["content-encoding"], "gzip");
                let asked: Value = serde_json::from_slice(&gunzip(req.body())).unwrap();
                let price = if asked["sku"] == "A-1" { 1299 } else { 450 };
                let plain = serde_json::to_vec(&json!({"sku": asked["sku"], "price": price}));
                ("gzip".to_owned(), compress("gzip", &plain.unwrap()))
            } else {
                ("gzip".to_owned(), BROKEN.to_vec())
            };
            http::Response::builder()
                .header("content-type", "application/json")
                .header("content-encoding", coding)
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        })
    })
}

/// A client that decodes every coding reqwest knows, through `proxy`.
fn decoding_client(proxy: &str) -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy).unwrap())
        .build()
        .unwrap()
}

/// A client that decodes nothing: it sees the bytes on the wire.
fn raw_client(proxy: &str) -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy).unwrap())
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        .build()
        .unwrap()
}

fn attribute<'a>(hop: &'a Exchange, key: &str) -> Option<&'a str> {
    hop.extra_attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            AnyValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

async fn quote(client: &reqwest::Client, upstream: &str, sku: &str, level: u32) -> Value {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(
        serde_json::to_string(&json!({"sku": sku}))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let resp = client
        .post(format!("{upstream}/quote"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(e.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_are_recorded_decoded_and_replayed_in_the_coding_the_client_accepts() {
    let upstream = serve(upstream_handler(), None).await;
    let base = upstream.url();
    let runtime = runtime().await;
    let rt = runtime.uri();
    let egress = EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap();
    let client = decoding_client(&egress.uri());
    let raw = raw_client(&egress.uri());

    // Capture.
    let session = create_session(&rt, "capture").await;
    egress.bind_session(Some(session.clone()));
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let resp = client
            .get(format!("{base}/menu/{coding}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            menu(coding),
            "{coding}"
        );
    }
    assert_eq!(quote(&client, &base, "A-1", 9).await["price"], 1299);
    assert_eq!(quote(&client, &base, "B-7", 9).await["price"], 450);
    let broken = raw.get(format!("{base}/broken")).send().await.unwrap();
    assert_eq!(&broken.bytes().await.unwrap()[..], BROKEN);

    // The case holds readable bodies and notes the codings.
    let closed = close_case(&rt, &session, 7).await;
    let hops = closed.exchanges().unwrap();
    assert_eq!(hops.len(), 7, "{hops:#?}");
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let hop = hops
            .iter()
            .find(|h| h.path == format!("/menu/{coding}"))
            .unwrap();
        let body = hop.response_body.as_ref().unwrap();
        assert!(matches!(body, Body::Text(_)), "{coding}: {body:?}");
        assert_eq!(
            serde_json::from_slice::<Value>(body.as_bytes()).unwrap(),
            menu(coding)
        );
        assert_eq!(attribute(hop, RESPONSE_CODING), Some(coding));
        assert_eq!(hop.response_header("content-encoding"), None);
    }
    let quote_hop = hops.iter().find(|h| h.path == "/quote").unwrap();
    assert_eq!(
        quote_hop.request_body.as_ref().unwrap().as_text(),
        Some(r#"{"sku":"A-1"}"#)
    );
    assert_eq!(attribute(quote_hop, REQUEST_CODING), Some("gzip"));
    assert_eq!(quote_hop.request_header("content-encoding"), None);
    let broken_hop = hops.iter().find(|h| h.path == "/broken").unwrap();
    assert_eq!(
        broken_hop.response_body.as_ref().unwrap().as_bytes(),
        BROKEN,
        "an undecodable body is stored as it came"
    );
    assert_eq!(broken_hop.response_header("content-encoding"), Some("gzip"));
    let why = attribute(broken_hop, RESPONSE_CODING_ERROR).unwrap();
    assert!(why.starts_with("the body is not valid gzip"), "{why}");

    // Replay with the upstream stopped.
    upstream.stop().await;
    let replay = create_session(&rt, "replay").await;
    let case_json: Value = serde_json::to_value(&closed).unwrap();
    post(&rt, &format!("/v1/sessions/{replay}/load-case"), case_json).await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    egress.bind_session(Some(replay.clone()));

    // A decoding client reads every menu as captured.
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let resp = client
            .get(format!("{base}/menu/{coding}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{coding}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            menu(coding),
            "{coding}"
        );
    }
    // A client accepting brotli gets brotli on the wire.
    let resp = raw
        .get(format!("{base}/menu/br"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "br");
    let wire = resp.bytes().await.unwrap();
    let mut plain = Vec::new();
    brotli::Decompressor::new(&wire[..], 4096)
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&plain).unwrap(), menu("br"));
    // A client accepting only gzip asks for the brotli menu: identity.
    let resp = raw
        .get(format!("{base}/menu/br"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(resp.json::<Value>().await.unwrap(), menu("br"));
    // The same request body compressed differently still finds its own recording: matching
    // reads the decoded body.
    assert_eq!(quote(&client, &base, "B-7", 1).await["price"], 450);
    assert_eq!(quote(&client, &base, "A-1", 1).await["price"], 1299);
    // The undecodable answer comes back exactly as it was sent.
    let resp = raw.get(format!("{base}/broken")).send().await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(&resp.bytes().await.unwrap()[..], BROKEN);

    let st = stats(&rt, &replay).await;
    assert_eq!(st["strictMisses"], 0, "{st}");
}
