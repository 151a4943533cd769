//! Secure defaults: every `/v1` route (as the router source and the spec list them) is
//! behind the token, and every route behind the browser checks (Host, Origin, content-type); the binary refuses non-loopback binds without `--allow-remote`,
//! refuses anonymous proxy traffic with `--require-session`, never writes credentials to a
//! case file, and never logs the CA private key.

#![cfg(feature = "cli")]

mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use softprobe_runtime::Server;
use softprobe_runtime::proxy::CertificateAuthority;

use support::*;

/// What `support::serve` takes.
type Handler = std::sync::Arc<
    dyn Fn(
            http::Request<bytes::Bytes>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = http::Response<http_body_util::Full<bytes::Bytes>>>
                    + Send,
            >,
        > + Send
        + Sync,
>;

/// Every `(METHOD, /v1/...)` route the router declares in `src/control/router.rs`.
fn routes_in_router_source() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/control/router.rs");
    let path = regex::Regex::new(r#"^\s*"([^"]+)""#).unwrap();
    let method = regex::Regex::new(r"\b(get|post|put|patch|delete)\(").unwrap();
    let mut found = BTreeSet::new();
    for chunk in source.split(".route(").skip(1) {
        // A route's methods end where the next builder call that is not a method starts.
        let chunk = chunk.split(".fallback(").next().unwrap();
        let chunk = chunk.split(".layer(").next().unwrap();
        let Some(p) = path.captures(chunk) else {
            continue;
        };
        if !p[1].starts_with("/v1") {
            continue;
        }
        for verb in method.captures_iter(chunk) {
            found.insert((verb[1].to_uppercase(), p[1].to_owned()));
        }
    }
    found
}

/// Every `` `METHOD /v1/...` `` the protocol documents name.
fn routes_in_spec() -> BTreeSet<(String, String)> {
    let docs = [
        include_str!("../../spec/protocol/control-api.md"),
        include_str!("../../spec/protocol/proxy-otlp-api.md"),
    ];
    let route = regex::Regex::new(r"`(GET|POST|PUT|PATCH|DELETE) (/v1[^`?\[\s]*)").unwrap();
    let mut found = BTreeSet::new();
    for doc in docs {
        for m in route.captures_iter(doc) {
            found.insert((m[1].to_owned(), m[2].to_owned()));
        }
    }
    found
}

#[tokio::test]
async fn every_v1_route_requires_the_token() {
    install_crypto_provider();
    // The capture session below is still open when the server stops, which writes it:
    // into a temp dir, not the source tree.
    let out = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .listen(localhost())
        .capture_path(Some(
            out.path()
                .join("{sessionId}.case.json")
                .display()
                .to_string(),
        ))
        .token(Some("s3cret-token".into()))
        .start()
        .await
        .unwrap();
    let base = server.uri();
    let in_router = routes_in_router_source();
    let in_spec = routes_in_spec();
    assert!(in_router.len() >= 12, "router parse found {in_router:?}");
    for route in &in_spec {
        assert!(
            in_router.contains(route),
            "the spec documents {route:?} but the router has no such route: {in_router:?}"
        );
    }
    let authed = client();
    let resp = authed
        .post(format!("{base}/v1/sessions"))
        .bearer_auth("s3cret-token")
        .json(&json!({"mode": "capture"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    let session = body["sessionId"].as_str().unwrap().to_owned();

    for (method, path) in &in_router {
        let url = format!("{base}{}", path.replace("{id}", &session));
        let method: reqwest::Method = method.parse().unwrap();
        for auth in [None, Some("Bearer wrong-token"), Some("Basic czNjcmV0")] {
            let mut req = client()
                .request(method.clone(), &url)
                .header("content-type", "application/json")
                .body("{}");
            if let Some(value) = auth {
                req = req.header("authorization", value);
            }
            let (status, body) = json_of(req.send().await.unwrap()).await;
            let want = if auth.is_none() { 401 } else { 403 };
            assert_eq!(status, want, "{method} {path} with {auth:?}: {body}");
            let code = body["error"]["code"].as_str().unwrap();
            assert!(code.ends_with("_bearer_token"), "{method} {path}: {body}");
        }
    }
    // Nothing above reached a handler: the session is untouched.
    let resp = authed
        .get(format!("{base}/v1/sessions/{session}/state"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    let (status, state) = json_of(resp).await;
    assert_eq!(status, 200);
    assert_eq!(state["sessionRevision"], 0, "{state}");
    // Probes need no secret.
    for open in ["/health", "/metrics"] {
        let resp = client().get(format!("{base}{open}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{open}");
    }
}

/// The browser checks wrap every route, the open ones (`/health`, `/metrics`) and any
/// route added to the router later included: a forged `Host` answers 421, a foreign
/// `Origin` 403, a `text/plain` POST 415, before any handler changes anything.
#[tokio::test]
async fn every_route_refuses_a_foreign_host_origin_and_simple_content_type() {
    install_crypto_provider();
    let out = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .listen(localhost())
        .capture_path(Some(
            out.path()
                .join("{sessionId}.case.json")
                .display()
                .to_string(),
        ))
        .start()
        .await
        .unwrap();
    let base = server.uri();
    let session = create_session(&base, "capture").await;
    let mut routes = routes_in_router_source();
    routes.insert(("GET".into(), "/health".into()));
    routes.insert(("GET".into(), "/metrics".into()));
    for (method, path) in &routes {
        let url = format!("{base}{}", path.replace("{id}", &session));
        let method: reqwest::Method = method.parse().unwrap();
        let attempts: [(&str, &str, &str, u16, &str); 3] = [
            (
                "host",
                "rebound.attacker.example",
                "application/json",
                421,
                "host_not_allowed",
            ),
            (
                "origin",
                "https://attacker.example",
                "application/json",
                403,
                "origin_not_allowed",
            ),
            ("x-none", "-", "text/plain", 415, "unsupported_media_type"),
        ];
        for (header, value, content_type, want, code) in attempts {
            if want == 415 && method == reqwest::Method::GET {
                continue;
            }
            let req = client()
                .request(method.clone(), &url)
                .header(header, value)
                .header("content-type", content_type)
                .body("{}");
            let (status, body) = json_of(req.send().await.unwrap()).await;
            assert_eq!(
                status, want,
                "{method} {path} with {header}: {value}: {body}"
            );
            assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        }
    }
    let (status, state) = json_of(
        client()
            .get(format!("{base}/v1/sessions/{session}/state"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(state["sessionRevision"], 0, "{state}");
}

fn spawn(args: &[&str], log: &str, stderr: Stdio) -> Binary {
    let child = runtime_command()
        .args(args)
        .env("SOFTPROBE_LOG", log)
        .env("RUST_LOG", log)
        .stderr(stderr)
        .spawn()
        .expect("the binary starts");
    Binary(child)
}

/// Runs the binary to its exit and returns (exit code, stderr).
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_softprobe-runtime"))
        .args(args)
        .env("SOFTPROBE_LOG", "info")
        .env_remove("SOFTPROBE_ALLOW_REMOTE")
        .env_remove("SOFTPROBE_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_binary_refuses_non_loopback_binds_without_allow_remote() {
    let (code, stderr) = run_to_exit(&["--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    for (flag, which) in [
        ("--egress-listen", "egress"),
        ("--ingress-listen", "ingress"),
    ] {
        let mut args = vec!["--listen", "127.0.0.1:0", flag, "0.0.0.0:0"];
        if which == "ingress" {
            args.extend(["--ingress-upstream", "http://127.0.0.1:9"]);
        }
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("refusing to run the {which} proxy on 0.0.0.0:0")),
            "{stderr}"
        );
        // Refused before anything listens.
        assert!(!stderr.contains("listening on"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_remote_binds_everywhere_and_warns() {
    install_crypto_provider();
    let port = free_addr().rsplit(':').next().unwrap().to_owned();
    let listen = format!("0.0.0.0:{port}");
    let mut bin = spawn(
        &["--listen", &listen, "--allow-remote", "--insecure-no-token"],
        "info",
        Stdio::piped(),
    );
    wait_up(&format!("http://127.0.0.1:{port}/health")).await;
    let _ = Command::new("kill")
        .args(["-TERM", &bin.id().to_string()])
        .status();
    let out = bin.wait_with_output_ref();
    assert!(out.contains("not a loopback address"), "{out}");
}

/// Reads the rest of a child's stderr after it exits.
trait StderrText {
    fn wait_with_output_ref(&mut self) -> String;
}

impl StderrText for Child {
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read as _;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the binary did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut text = String::new();
        if let Some(mut err) = self.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

async fn create(runtime: &str, mode: &str) -> String {
    create_session(runtime, mode).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_session_refuses_anonymous_traffic_on_both_proxies() {
    install_crypto_provider();
    let upstream = echo().await;
    let (runtime, ingress, egress) = (free_addr(), free_addr(), free_addr());
    let _bin = spawn(
        &[
            "--listen",
            &runtime,
            "--ingress-listen",
            &ingress,
            "--ingress-upstream",
            &upstream.url(),
            "--egress-listen",
            &egress,
            "--egress-upstream",
            &upstream.url(),
            "--require-session",
        ],
        "warn",
        Stdio::inherit(),
    );
    let runtime = format!("http://{runtime}");
    wait_up(&format!("{runtime}/health")).await;
    wait_up(&format!("http://{ingress}/")).await;
    wait_up(&format!("http://{egress}/")).await;
    let before = upstream.hits();
    for proxy in [&ingress, &egress] {
        let resp = client()
            .get(format!("http://{proxy}/anonymous"))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        assert_eq!(status, 403, "{proxy}: {body}");
        let resp = client()
            .get(format!("http://{proxy}/unknown"))
            .header("x-softprobe-session-id", "sess_notopen")
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            403,
            "{proxy}: a closed session is anonymous too"
        );
    }
    assert_eq!(
        upstream.hits(),
        before,
        "anonymous traffic reached the upstream"
    );
    let session = create(&runtime, "replay").await;
    for proxy in [&ingress, &egress] {
        let resp = client()
            .get(format!("http://{proxy}/named"))
            .header("x-softprobe-session-id", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{proxy}");
    }
    assert_eq!(upstream.hits(), before + 2);
}

const SECRETS: [&str; 6] = [
    "sk_live_BEARERSECRET1",
    "COOKIESECRET2",
    "APIKEYSECRET3",
    "PROXYAUTHSECRET4",
    "SETCOOKIESECRET5",
    "UPSTREAMAUTHSECRET6",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_the_case_file_on_disk() {
    install_crypto_provider();
    // The upstream answers with a credential-bearing Set-Cookie of its own.
    let handler: Handler = std::sync::Arc::new(|req: http::Request<bytes::Bytes>| {
        Box::pin(async move {
            let echoed = req
                .headers()
                .get("x-note")
                .map(|v| v.to_str().unwrap_or("").to_owned())
                .unwrap_or_default();
            http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("set-cookie", format!("session={}", SECRETS[4]))
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    json!({"note": echoed}).to_string(),
                )))
                .unwrap()
        })
    });
    let upstream = serve(handler, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (runtime, ingress, egress) = (free_addr(), free_addr(), free_addr());
    let _bin = spawn(
        &[
            "--listen",
            &runtime,
            "--ingress-listen",
            &ingress,
            "--ingress-upstream",
            &upstream.url(),
            "--egress-listen",
            &egress,
            "--egress-upstream",
            &upstream.url(),
        ],
        "warn",
        Stdio::inherit(),
    );
    let runtime = format!("http://{runtime}");
    wait_up(&format!("{runtime}/health")).await;
    let session = create(&runtime, "capture").await;
    for proxy in [&ingress, &egress] {
        let resp = client()
            .post(format!("http://{proxy}/login"))
            .header("x-softprobe-session-id", &session)
            .header("authorization", format!("Bearer {}", SECRETS[0]))
            .header("cookie", format!("sid={}", SECRETS[1]))
            .header("x-api-key", SECRETS[2])
            .header("proxy-authorization", format!("Basic {}", SECRETS[3]))
            .header("x-note", "harmless")
            .body(r#"{"user":"ada"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{proxy}");
    }
    wait_extracted(&runtime, &session, 2).await;
    let out = dir.path().join("secrets.case.json");
    close_to(&runtime, &session, &out).await;
    let bytes = std::fs::read(&out).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret} is in the case file:\n{text}"
        );
    }
    // The hops themselves are there, with the harmless header and the redaction marks.
    assert!(text.contains("harmless"), "{text}");
    assert!(text.contains("/login"), "{text}");
    assert!(text.matches("[REDACTED]").count() >= 8, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_private_key_never_appears_in_the_logs() {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate().unwrap();
    let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
    ca.write_cert(&cert).unwrap();
    ca.write_key(&key).unwrap();
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let (upstream_ca, upstream_tls) = upstream_tls();
    let upstream = serve(echo_handler(), Some(upstream_tls)).await;
    let upstream_ca_file = dir.path().join("upstream-ca.pem");
    upstream_ca.write_cert(&upstream_ca_file).unwrap();
    let (runtime, egress) = (free_addr(), free_addr());
    let mut bin = {
        let child = Command::new(env!("CARGO_BIN_EXE_softprobe-runtime"))
            .args([
                "--listen",
                &runtime,
                "--egress-listen",
                &egress,
                "--ca-cert",
                cert.to_str().unwrap(),
                "--ca-key",
                key.to_str().unwrap(),
                "--ca-out",
                dir.path().join("out.pem").to_str().unwrap(),
            ])
            .env("SOFTPROBE_LOG", "trace")
            .env("RUST_LOG", "trace")
            .env("SOFTPROBE_UPSTREAM_CA_FILE", &upstream_ca_file)
            // The capture open at SIGTERM is written relative to here, not into the crate.
            .current_dir(dir.path())
            .env_remove("SOFTPROBE_API_TOKEN")
            .env_remove("SOFTPROBE_RUNTIME_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Binary(child)
    };
    let runtime = format!("http://{runtime}");
    wait_up(&format!("{runtime}/health")).await;
    let session = create(&runtime, "capture").await;
    // An intercepted HTTPS call makes the proxy sign a leaf certificate with the key.
    let target = format!("localhost:{}", upstream.addr.port());
    let (status, _, _) = https_via_connect(
        egress.parse().unwrap(),
        &target,
        "/secure",
        Some(&session),
        &ca,
    )
    .await;
    assert_eq!(status, 200);
    let resp = client()
        .get(format!("{runtime}/v1/proxy/ca.pem"))
        .send()
        .await
        .unwrap();
    let served = resp.text().await.unwrap();
    assert!(!served.contains("PRIVATE KEY"), "{served}");
    let _ = Command::new("kill")
        .args(["-TERM", &bin.id().to_string()])
        .status();
    let logs = bin.wait_with_output_ref();
    let stdout = {
        use std::io::Read as _;
        let mut s = String::new();
        if let Some(mut o) = bin.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        s
    };
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging was off: {logs}"
    );
    let key_body: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect();
    assert!(!key_body.is_empty());
    for output in [&logs, &stdout] {
        assert!(
            !output.contains("PRIVATE KEY"),
            "a PEM key header was logged"
        );
        for line in &key_body {
            assert!(
                !output.contains(line),
                "a line of the CA key was logged: {line}"
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let written = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(
            written & 0o777,
            0o600,
            "the CA key file is readable by others"
        );
    }
}
