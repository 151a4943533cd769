//! What the harness does without its opt-in features, as a user builds it by default: a
//! WebSocket upgrade through the session's egress is refused with `501 Not Implemented` naming
//! the `websocket` feature, a recorded `br` answer is served decoded, and loading an existing
//! CA (the runtime's `ca-import` feature) is refused naming the feature. Another crate of the
//! same build can turn the runtime's features on (`cargo test --workspace` does, through the
//! standalone runtime); each test then checks the full behaviour instead, so it holds either
//! way. CI runs this file alone (`cargo test -p softprobe-test --test lean_features`), where the
//! features are off.

use std::sync::{Arc, Mutex};

use softprobe_runtime::content_coding::Coding;

/// A recorded answer stored decoded from `br`.
const BROTLI_CASE: &str = "tests/cases/brotli-answer.case.json";
const MENU: &str = r#"{"menu":"br","items":["tea","scone"]}"#;

fn case(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn a_websocket_upgrade_without_the_feature_is_refused_naming_it() {
    let answer = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&answer);
    let outcome = softprobe::Run::new(case("tests/cases/empty.case.json"))
        .mode(softprobe::Mode::Replay)
        .name("lean_features::websocket")
        .run(|sp: softprobe::Session| async move {
            let resp = sp
                .http_client()
                .get("http://feed.example/v1/feed")
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .send()
                .await
                .expect("the egress answers the upgrade");
            let status = resp.status().as_u16();
            *slot.lock().unwrap() = Some((status, resp.text().await.unwrap_or_default()));
        });
    let (status, body) = answer.lock().unwrap().take().expect("the test body ran");
    if softprobe_runtime::proxy::websocket::BUILT {
        // The relay is built: the upgrade is decided like any hop, and the empty case has no
        // recording for it, so replay reports a strict miss (not the feature error).
        assert_ne!(status, 501, "{body}");
        assert!(outcome.is_err(), "an unrecorded upgrade passed the verdict");
    } else {
        assert_eq!(status, 501, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(error["error"]["code"], "feature_not_built", "{body}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("`websocket` feature")
                && message.contains(r#"features = ["websocket"]"#)
                && message.starts_with("GET http://feed.example/v1/feed: "),
            "{message}"
        );
        outcome.expect("a refused upgrade is not a replay miss");
    }
}

#[test]
fn a_recorded_brotli_answer_is_served_decoded_without_the_encoder() {
    let answer = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&answer);
    softprobe::Run::new(case(BROTLI_CASE))
        .mode(softprobe::Mode::Replay)
        .name("lean_features::brotli")
        .run(|sp: softprobe::Session| async move {
            // reqwest decodes `br` itself when another crate of the build turns its
            // `brotli` feature on (`cargo test --workspace` does): ask for the bytes as sent.
            let client = sp
                .http_client_builder()
                .no_brotli()
                .no_gzip()
                .build()
                .expect("a client");
            let resp = client
                .get("http://menu.example/v1/menu")
                .header("accept-encoding", "gzip, br")
                .send()
                .await
                .expect("the egress answers from the case");
            let coding = resp
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = resp.bytes().await.expect("a body").to_vec();
            *slot.lock().unwrap() = Some((coding, bytes));
        })
        .expect("the recorded call replays");
    let (coding, bytes) = answer.lock().unwrap().take().expect("the test body ran");
    if Coding::Brotli.can_encode() {
        assert_eq!(coding.as_deref(), Some("br"));
        let plain = softprobe_runtime::content_coding::decode(&[Coding::Brotli], &bytes, 1 << 20)
            .expect("valid brotli");
        assert_eq!(plain, MENU.as_bytes());
    } else {
        assert_eq!(coding, None, "no content-encoding on a decoded answer");
        assert_eq!(String::from_utf8_lossy(&bytes), MENU);
        let refused = softprobe_runtime::content_coding::encode(&[Coding::Brotli], b"x")
            .expect_err("no brotli encoder in this build");
        assert!(
            refused.to_string().contains("`brotli-encode` feature"),
            "{refused}"
        );
    }
}

#[test]
fn loading_an_existing_ca_without_the_feature_is_refused_naming_it() {
    use softprobe_runtime::proxy::CertificateAuthority;
    use softprobe_runtime::proxy::tls::{CA_IMPORT_BUILT, TlsError};

    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
    let ca = CertificateAuthority::generate().expect("a generated CA");
    ca.write_cert(&cert).unwrap();
    ca.write_key(&key).unwrap();
    let loaded = CertificateAuthority::from_files(&cert, &key);
    if CA_IMPORT_BUILT {
        let loaded = loaded.expect("the CA loads");
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
    } else {
        let err = loaded.expect_err("no X.509 parser in this build");
        assert!(matches!(err, TlsError::NotBuilt(_)), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("`ca-import` feature")
                && message.contains(r#"features = ["ca-import"]"#),
            "{message}"
        );
    }
}
