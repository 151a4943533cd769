//! The runtime binary attacked as a web page and a neighbour would, and used as legitimate
//! clients do: a forged `Host` (DNS rebinding), a foreign `Origin`, a `text/plain` close,
//! `?out=` paths that leave the capture root (`..`, absolute, a symbolic link), each refused
//! with nothing written; the original SDKs' request shapes, raw curl and the CLI still work;
//! `--allow-remote` without a token refuses to start; the control API over TLS with curl
//! and the CA file; and a shutdown that keeps every real capture.

#![cfg(feature = "cli")]

mod support;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};
use support::{Runtime, free_addr, free_port, run, runtime_command, start_runtime};

/// The runtime binary run in `dir` (its working directory, so its default capture root)
/// with its log on a pipe.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = runtime_command();
    cmd.args(args)
        .current_dir(dir)
        .env("SOFTPROBE_LOG", "info")
        .env_remove("SOFTPROBE_CAPTURE_ROOT")
        .stderr(Stdio::piped());
    cmd
}

/// A runtime binary started in `dir`, killed when dropped.
fn start(dir: &Path, args: &[&str]) -> Runtime {
    let addr = free_addr();
    start_runtime(command(dir, &[&["--listen", &addr], args].concat()), &addr)
}

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().no_proxy().build().unwrap()
}

fn answer(req: RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

fn create(rt: &Runtime, mode: &str) -> String {
    let (status, body, _) = answer(
        client()
            .post(format!("{}/v1/sessions", rt.base))
            .json(&json!({ "mode": mode })),
    );
    assert_eq!(status, 200, "{body}");
    body["sessionId"].as_str().unwrap().to_owned()
}

/// One outbound hop of `session`, as OTLP JSON.
fn hop(session: &str, path: &str) -> Value {
    let kv = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    json!({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", "checkout")]},
        "scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "name": "extract",
            "attributes": [
                kv("sp.span.type", "extract"),
                kv("sp.session.id", session),
                kv("sp.traffic.direction", "outbound"),
                kv("url.host", "api.example.test"),
                kv("url.path", path),
                kv("http.request.method", "GET"),
                {"key": "http.response.status_code", "value": {"intValue": 200}},
            ]
        }]}]
    }]})
}

fn record(rt: &Runtime, session: &str, path: &str) {
    let (status, body, _) = answer(
        client()
            .post(format!("{}/v1/traces", rt.base))
            .json(&hop(session, path)),
    );
    assert!(status == 200 || status == 204, "{status} {body}");
}

fn stats(rt: &Runtime, session: &str) -> u16 {
    client()
        .get(format!("{}/v1/sessions/{session}/stats", rt.base))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn close_url(rt: &Runtime, session: &str) -> String {
    format!("{}/v1/sessions/{session}/close", rt.base)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn stop_with(mut rt: Runtime, signal: &str) -> String {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &rt.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = rt.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the runtime ignored SIG{signal}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    rt.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(exit.success(), "exit {exit} after SIG{signal}: {log}");
    log
}

#[test]
fn a_web_page_cannot_drive_the_default_runtime_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(work.path()).unwrap().join("project");
    let elsewhere = std::fs::canonicalize(work.path())
        .unwrap()
        .join("elsewhere");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let rt = start(&root, &[]);
    let session = create(&rt, "capture");
    record(&rt, &session, "/v1/charges");

    // DNS rebinding: a page on attacker.example resolving to 127.0.0.1.
    for (method, url) in [
        ("POST", close_url(&rt, &session)),
        ("GET", format!("{}/v1/sessions", rt.base)),
        ("POST", format!("{}/v1/traces", rt.base)),
        ("GET", format!("{}/health", rt.base)),
    ] {
        let req = client()
            .request(method.parse().unwrap(), &url)
            .header("host", "attacker.example:8080")
            .header("content-type", "application/json")
            .body("{}");
        let (status, body, _) = answer(req);
        assert_eq!(status, 421, "{method} {url}: {body}");
        assert_eq!(body["error"]["code"], "host_not_allowed", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("attacker.example") && message.contains("--public-host"),
            "{message}"
        );
    }

    // A page on another site posting with fetch(): refused, and no CORS headers at all.
    let (status, body, headers) = answer(
        client()
            .post(close_url(&rt, &session))
            .header("origin", "https://evil.example")
            .header("content-type", "application/json")
            .body("{}"),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "origin_not_allowed", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-origin"),
        "{body}"
    );
    assert!(
        !headers.contains_key("access-control-allow-origin"),
        "{headers:?}"
    );
    let (_, _, headers) = answer(
        client()
            .request(reqwest::Method::OPTIONS, close_url(&rt, &session))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST"),
    );
    assert!(
        !headers
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "a preflight from a foreign origin got CORS headers: {headers:?}"
    );

    // A "simple" cross-site request: text/plain needs no preflight.
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, body, _) = answer(
            client()
                .post(close_url(&rt, &session))
                .header("content-type", content_type)
                .body("{}"),
        );
        assert_eq!(status, 415, "{content_type}: {body}");
        assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{body}"
        );
    }
    // An empty text/plain close (what `fetch(url, {method: 'POST', body: ''})` sends).
    let (status, _, _) = answer(
        client()
            .post(close_url(&rt, &session))
            .header("content-type", "text/plain"),
    );
    assert_eq!(status, 415);

    // Writes outside the capture root (the working directory).
    std::os::unix::fs::symlink(&elsewhere, root.join("link")).unwrap();
    for (out, reason) in [
        ("../elsewhere/dotdot.case.json".to_owned(), "`..`"),
        (
            elsewhere.join("absolute.case.json").display().to_string(),
            "absolute path",
        ),
        ("link/symlink.case.json".to_owned(), "symbolic link"),
        ("cases/../../elsewhere/x.case.json".to_owned(), "`..`"),
    ] {
        let (status, body, _) = answer(
            client()
                .post(format!(
                    "{}?out={}",
                    close_url(&rt, &session),
                    percent_encoding::utf8_percent_encode(&out, percent_encoding::NON_ALPHANUMERIC)
                ))
                .json(&json!({})),
        );
        assert_eq!(status, 400, "{out}: {body}");
        assert_eq!(body["error"]["code"], "capture_path_outside_root", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&root.display().to_string())
                && message.contains(reason)
                && message.contains("--capture-root")
                && message.contains("--allow-capture-outside-root"),
            "{out}: {message}"
        );
    }

    // Nothing was written anywhere, and the session and its hop are still there.
    assert_eq!(files_under(&elsewhere), Vec::<PathBuf>::new());
    assert_eq!(files_under(&root), vec![root.join("link")]);
    assert_eq!(
        stats(&rt, &session),
        200,
        "a refused close lost the session"
    );

    // The seed's raw curl close (no body, no content-type) still works, into the root.
    let closed = Command::new("curl")
        .args(["-s", "-X", "POST", &close_url(&rt, &session)])
        .output()
        .expect("curl runs");
    let closed: Value = serde_json::from_slice(&closed.stdout).unwrap();
    assert_eq!(closed["closed"], true, "{closed}");
    assert_eq!(closed["casePath"], "e2e/captured.case.json", "{closed}");
    let case = softprobe_runtime::case::Case::read(root.join("e2e/captured.case.json")).unwrap();
    assert_eq!(case.exchanges().unwrap().len(), 1);
}

#[test]
fn the_original_sdks_requests_raw_curl_and_the_cli_keep_working() {
    let work = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(work.path()).unwrap();
    let rt = start(&root, &[]);
    let post = |path: &str, body: Option<&Value>| {
        let mut req = client().post(format!("{}{path}", rt.base));
        if let Some(body) = body {
            req = req.json(body);
        }
        answer(req)
    };

    // The reference SDKs' shapes (compat.md): create, rules, policy, fixtures, close with
    // `{}` and with an empty body (with and without a content-type).
    let session = create(&rt, "replay");
    for (path, body) in [
        (
            "rules",
            json!({"version": 1, "rules": [{"id": "r", "priority": 10,
                "when": {"direction": "outbound", "host": "api.example.test", "method": "GET", "path": "/a"},
                "then": {"action": "mock", "response": {"status": 200, "headers": {}, "body": "{}"}}}]}),
        ),
        (
            "policy",
            json!({"externalHttp": "strict", "defaultOnMiss": "error"}),
        ),
        (
            "fixtures/auth",
            json!({"tokens": ["t"], "cookies": [{"name": "c", "value": "v"}], "metadata": {}}),
        ),
    ] {
        let (status, body, _) = post(&format!("/v1/sessions/{session}/{path}"), Some(&body));
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body, _) = post(&format!("/v1/sessions/{session}/close"), Some(&json!({})));
    assert_eq!((status, &body["closed"]), (200, &json!(true)), "{body}");
    let session = create(&rt, "replay");
    let (status, body, _) = answer(
        client()
            .post(close_url(&rt, &session))
            .header("content-type", "application/json"),
    );
    assert_eq!(status, 200, "{body}");
    let session = create(&rt, "replay");
    let (status, body, _) = post(&format!("/v1/sessions/{session}/close"), None);
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = answer(
        client()
            .post(close_url(&rt, &session))
            .header("content-type", "application/json"),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_session")),
        "{body}"
    );

    // Same-origin requests (a page the runtime itself serves) pass.
    let session = create(&rt, "replay");
    let (status, body, _) = answer(
        client()
            .post(close_url(&rt, &session))
            .header("origin", rt.base.as_str())
            .header("content-type", "application/json")
            .body("{}"),
    );
    assert_eq!(status, 200, "{body}");
    // `localhost` and `[::1]`-style names are loopback too.
    let (status, _, _) = answer(client().get(format!("{}/v1/sessions", rt.base)).header(
        "host",
        format!("localhost:{}", rt.base.rsplit(':').next().unwrap()),
    ));
    assert_eq!(status, 200);

    // The CLI: start, close --out inside the working directory (the capture root).
    let mut cli = support::cli(&rt.base);
    cli.current_dir(&root)
        .args(["session", "start", "--mode", "capture", "--json"]);
    let (code, stdout, stderr) = run(cli);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let id = support::json_line(&stdout)["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    record(&rt, &id, "/cli");
    let mut cli = support::cli(&rt.base);
    cli.current_dir(&root).args([
        "session",
        "close",
        "--session",
        &id,
        "--out",
        "cases/cli.case.json",
    ]);
    let (code, stdout, stderr) = run(cli);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(root.join("cases/cli.case.json").is_file());

    // The CLI's --out outside the root gets the runtime's answer, naming the root.
    let mut cli = support::cli(&rt.base);
    cli.current_dir(&root)
        .args(["session", "start", "--mode", "capture", "--json"]);
    let (_, stdout, _) = run(cli);
    let id = support::json_line(&stdout)["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut cli = support::cli(&rt.base);
    cli.current_dir(&root).args([
        "session",
        "close",
        "--session",
        &id,
        "--out",
        "../out.case.json",
    ]);
    let (code, stdout, stderr) = run(cli);
    assert_ne!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("outside the capture root") && stderr.contains(&root.display().to_string()),
        "{stderr}"
    );
    assert!(!root.parent().unwrap().join("out.case.json").exists());
}

#[test]
fn public_hosts_and_allowed_origins_are_opt_ins() {
    let work = tempfile::tempdir().unwrap();
    let rt = start(
        work.path(),
        &[
            "--public-host",
            "softprobe-runtime",
            "--allow-origin",
            "https://ui.example",
        ],
    );
    let (status, body, _) = answer(
        client()
            .get(format!("{}/v1/sessions", rt.base))
            .header("host", "softprobe-runtime:8080"),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = answer(
        client()
            .get(format!("{}/v1/sessions", rt.base))
            .header("host", "other-name:8080"),
    );
    assert_eq!(status, 421);

    // The allowed origin gets a preflight answer and CORS headers; others do not.
    let (status, _, headers) = answer(
        client()
            .request(reqwest::Method::OPTIONS, format!("{}/v1/sessions", rt.base))
            .header("origin", "https://ui.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type"),
    );
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"], "https://ui.example",
        "{headers:?}"
    );
    let (status, _, headers) = answer(
        client()
            .post(format!("{}/v1/sessions", rt.base))
            .header("origin", "https://ui.example")
            .json(&json!({"mode": "replay"})),
    );
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-origin"], "https://ui.example");
    let (status, _, headers) = answer(
        client()
            .post(format!("{}/v1/sessions", rt.base))
            .header("origin", "https://ui.example.evil.test")
            .json(&json!({"mode": "replay"})),
    );
    assert_eq!(status, 403);
    assert!(!headers.contains_key("access-control-allow-origin"));
}

#[test]
fn allow_remote_refuses_to_start_without_a_token() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let out = command(
        work.path(),
        &["--listen", &format!("0.0.0.0:{port}"), "--allow-remote"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("without a token")
            && stderr.contains("SOFTPROBE_API_TOKEN")
            && stderr.contains("--insecure-no-token"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");

    // With a token it starts, and the token is required.
    let mut cmd = command(
        work.path(),
        &["--listen", &format!("0.0.0.0:{port}"), "--allow-remote"],
    );
    cmd.env("SOFTPROBE_API_TOKEN", "s3cret");
    let rt = start_runtime(cmd, &format!("127.0.0.1:{port}"));
    let (status, _, _) = answer(client().get(format!("{}/v1/sessions", rt.base)));
    assert_eq!(status, 401);
}

#[test]
fn the_control_api_serves_tls_that_curl_verifies_with_the_ca_file() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let mut child = command(
        dir,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ],
    )
    .spawn()
    .unwrap();
    let base = format!("https://localhost:{port}");
    let curl = |args: &[&str]| {
        Command::new("curl")
            .current_dir(dir)
            .args(["-s", "--max-time", "5"])
            .args(args)
            .output()
            .expect("curl runs")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        let out = curl(&["--cacert", "cert.pem", &format!("{base}/health")]);
        if out.status.success() {
            break out;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no TLS answer: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let health: Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(health["status"], "ok");
    let created = Command::new("curl")
        .current_dir(dir)
        .args(["-s", "--cacert", "cert.pem", "-X", "POST"])
        .args([
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"mode":"replay"}"#,
        ])
        .arg(format!("{base}/v1/sessions"))
        .output()
        .unwrap();
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert!(
        created["sessionId"].as_str().unwrap().starts_with("sess_"),
        "{created}"
    );
    // Without the CA file curl refuses the certificate (exit 60), and plain HTTP gets no
    // answer.
    let untrusted = curl(&[&format!("{base}/health")]);
    assert_eq!(untrusted.status.code(), Some(60), "{untrusted:?}");
    let plain = curl(&[&format!("http://localhost:{port}/health")]);
    assert!(
        !plain.status.success() || plain.stdout.is_empty(),
        "{plain:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_shutdown_keeps_every_real_capture_and_writes_nothing_for_empty_sessions() {
    for signal in ["INT", "TERM"] {
        let work = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(work.path()).unwrap();
        let rt = start(&root, &[]);
        // The guide's three ways of starting a session leave several open; one gets the
        // traffic and is closed into the default path.
        let real = create(&rt, "capture");
        let idle_one = create(&rt, "capture");
        let late = create(&rt, "capture");
        let idle_two = create(&rt, "capture");
        for path in ["/a", "/b", "/c"] {
            record(&rt, &real, path);
        }
        let (status, body, _) = answer(client().post(close_url(&rt, &real)));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["casePath"], "e2e/captured.case.json");
        // Another open session records a hop after that, into the same default path.
        record(&rt, &late, "/late");

        let log = stop_with(rt, signal);
        let default = root.join("e2e/captured.case.json");
        let kept = softprobe_runtime::case::Case::read(&default).unwrap();
        assert_eq!(kept.case_id, real, "SIG{signal} replaced the real capture");
        assert_eq!(kept.exchanges().unwrap().len(), 3);
        let suffixed = root.join(format!("e2e/captured.{late}.case.json"));
        let late_case = softprobe_runtime::case::Case::read(&suffixed)
            .unwrap_or_else(|e| panic!("{e}; files: {:?}; log: {log}", files_under(&root)));
        assert_eq!(late_case.exchanges().unwrap().len(), 1);
        assert_eq!(
            files_under(&root),
            vec![default.clone(), suffixed.clone()],
            "the empty sessions wrote a file: {log}"
        );
        for empty in [&idle_one, &idle_two] {
            assert!(
                log.lines()
                    .any(|l| l.contains(empty.as_str()) && l.contains("captured no hop")),
                "the log does not say {empty} wrote nothing: {log}"
            );
        }
        assert!(
            log.contains(&format!("captured.{late}.case.json")) && log.contains(&real),
            "the log does not explain the suffixed name: {log}"
        );
    }
}

#[test]
fn with_a_token_the_egress_proxy_requires_it_as_proxy_credentials() {
    let work = tempfile::tempdir().unwrap();
    let egress = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let mut cmd = command(
        work.path(),
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--egress-listen",
            &egress,
        ],
    );
    cmd.env("SOFTPROBE_API_TOKEN", "s3cret");
    let rt = start_runtime(cmd, &format!("127.0.0.1:{port}"));
    support::install_crypto_provider();
    // The upstream behind the proxy: the runtime's own /health.
    let through = |proxy: &str| {
        let client = Client::builder()
            .proxy(reqwest::Proxy::http(proxy).unwrap())
            .build()
            .unwrap();
        answer(client.get(format!("{}/health", rt.base)))
    };
    for proxy in [
        format!("http://{egress}"),
        format!("http://sess_x:wrong@{egress}"),
    ] {
        let (status, body, headers) = through(&proxy);
        assert_eq!(status, 407, "{proxy}: {body}");
        assert_eq!(body["error"]["code"], "proxy_auth_required", "{body}");
        assert!(
            headers["proxy-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic"),
            "{headers:?}"
        );
    }
    let (status, body, _) = through(&format!("http://:s3cret@{egress}"));
    assert_eq!((status, &body["status"]), (200, &json!("ok")), "{body}");
}
