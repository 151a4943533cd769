//! Several runtime replicas on one Redis (`--store redis://...`), and captures written to
//! S3-compatible object storage. Real servers: `redis-server` (Debian package
//! `redis-server`) and moto's S3 server (`pip install 'moto[server]'`), found through
//! `SOFTPROBE_REDIS_SERVER` / `SOFTPROBE_MOTO_SERVER` or on `PATH`. A missing server fails
//! the test with what to install.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use softprobe_runtime::case::{Case, Direction};

use support::*;

/// The server program named by `env`, else `name` on `PATH`; panics with `install` when
/// neither exists.
fn find_program(env: &str, name: &str, install: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env}={} does not exist; {install}",
            path.display()
        );
        return path;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is needed for this test and was not found on PATH nor in {env}; {install}")
    })
}

/// A `redis-server` on a free port, persisting every write to an append-only file in its
/// own directory so that a restart keeps the sessions.
struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    proc: Option<Binary>,
}

impl Redis {
    fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            proc: None,
        };
        redis.run();
        redis
    }

    fn run(&mut self) {
        let program = find_program(
            "SOFTPROBE_REDIS_SERVER",
            "redis-server",
            "install it with `apt-get install redis-server` (CI: .ci/run does)",
        );
        let child = Command::new(program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server starts");
        self.proc = Some(Binary(child));
        wait_port(self.port, "redis-server");
    }

    /// Stops the server the way an outage looks: its port refuses connections.
    fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            // SIGTERM: redis finishes its append-only file and exits.
            let _ = Command::new("kill")
                .args(["-TERM", &proc.0.id().to_string()])
                .status();
            let _ = proc.0.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// One runtime replica with its own ingress (in front of `app`) and egress proxy.
struct Replica {
    api: String,
    ingress: String,
    egress: String,
    proc: Binary,
}

fn spawn_binary(args: &[&str], env: &[(&str, &str)]) -> Binary {
    let mut cmd = runtime_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Binary(cmd.spawn().expect("the runtime starts"))
}

/// A replica whose egress binds `egress` (the app behind it was told that address) and
/// whose ingress forwards to `app`.
async fn start_replica(store: &str, app: &str, egress: &str) -> Replica {
    let api = format!("127.0.0.1:{}", free_port());
    let ingress = format!("127.0.0.1:{}", free_port());
    let proc = spawn_binary(
        &[
            "--listen",
            &api,
            "--store",
            store,
            "--ingress-listen",
            &ingress,
            "--ingress-upstream",
            app,
            "--egress-listen",
            egress,
            "--ingress-threads",
            "1",
        ],
        &[],
    );
    let replica = Replica {
        api: format!("http://{api}"),
        ingress: format!("http://{ingress}"),
        egress: format!("http://{egress}"),
        proc,
    };
    wait_up(&format!("{}/health", replica.api)).await;
    wait_up(&format!("{}/", replica.ingress)).await;
    replica
}

/// The application (see `support::app`) and a replica in front of it.
async fn pod(store: &str, upstream: &str) -> (TestServer, Replica) {
    let egress = format!("127.0.0.1:{}", free_port());
    let app_server = app(format!("http://{egress}"), upstream.to_owned()).await;
    let replica = start_replica(store, &app_server.url(), &egress).await;
    (app_server, replica)
}

async fn checkout(replica: &Replica, session: &str, n: usize) -> Value {
    let resp = client()
        .get(format!("{}/checkout?n={n}", replica.ingress))
        .header("x-softprobe-session-id", session)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "checkout {n}: {body}");
    body
}

/// Waits until the session's shared counter has `n` extracted hops: each is in Redis.
async fn wait_stored(api: &str, session: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats(api, session).await;
        if s["extractedSpans"].as_u64() == Some(n) {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} hops stored: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_a_capture_survive_a_kill_and_replay_it() {
    install_crypto_provider();
    let redis = Redis::start();
    let upstream = serve(price_handler(), None).await;
    // The application runs as three pods, each behind the proxies of its own replica.
    let mut apps = Vec::new();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let (app_server, replica) = pod(&redis.url(), &upstream.url()).await;
        apps.push(app_server);
        replicas.push(Some(replica));
    }
    let live = |replicas: &Vec<Option<Replica>>, n: usize| -> usize {
        (0..3)
            .map(|k| (n + k) % 3)
            .find(|i| replicas[*i].is_some())
            .unwrap()
    };

    let api0 = replicas[0].as_ref().unwrap().api.clone();
    let api1 = replicas[1].as_ref().unwrap().api.clone();
    let session = create_session(&api0, "capture").await;
    const CALLS: usize = 12;
    for n in 0..CALLS {
        if n == CALLS / 2 {
            // Every hop so far is acknowledged by the store; then a replica dies hard.
            wait_stored(&api1, &session, 2 * n as u64).await;
            let mut dead = replicas[2].take().unwrap();
            dead.proc.0.kill().unwrap();
            dead.proc.0.wait().unwrap();
        }
        let r = replicas[live(&replicas, n)].as_ref().unwrap();
        let body = checkout(r, &session, n).await;
        assert_eq!(body["upstream"]["price"], 1299, "{body}");
    }
    wait_stored(&api1, &session, 2 * CALLS as u64).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shared.case.json");
    let closed = close_to(&api1, &session, &out).await;
    assert_eq!(closed["casePath"], out.display().to_string());
    // Closed everywhere: the other replica answers as for any closed session.
    let again = client()
        .post(format!("{api0}/v1/sessions/{session}/close"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    let case = Case::read(&out).unwrap();
    let hops = case.exchanges().unwrap();
    assert_eq!(hops.len(), 2 * CALLS, "{hops:#?}");
    let mut traces: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for hop in &hops {
        traces.entry(hop.trace_id).or_default().push(hop);
    }
    assert_eq!(traces.len(), CALLS);
    let mut calls_seen = Vec::new();
    for (trace, hops) in &traces {
        // In order within the trace: the outbound call finishes before the inbound answer.
        let dirs: Vec<Direction> = hops.iter().map(|h| h.direction).collect();
        assert_eq!(
            dirs,
            [Direction::Outbound, Direction::Inbound],
            "trace {trace:?}"
        );
        assert_eq!(hops[0].path, "/price");
        calls_seen.push(hops[1].query.clone().unwrap_or_default());
    }
    calls_seen.sort();
    let mut expected: Vec<String> = (0..CALLS).map(|n| format!("n={n}")).collect();
    expected.sort();
    assert_eq!(calls_seen, expected);

    // Replay through replicas that did not close the capture: the case is loaded on one,
    // traffic goes through another, and the real upstream is gone.
    upstream.stop().await;
    let replay = create_session(&api1, "replay").await;
    let loaded = client()
        .post(format!("{api1}/v1/sessions/{replay}/load-case"))
        .header("content-type", "application/json")
        .body(std::fs::read(&out).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(loaded.status(), 200, "{}", loaded.text().await.unwrap());
    post(
        &api1,
        &format!("/v1/sessions/{replay}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    let r0 = replicas[0].as_ref().unwrap();
    for n in 0..CALLS {
        let body = checkout(r0, &replay, n).await;
        assert_eq!(body["upstreamStatus"], 200, "replayed call {n}: {body}");
        assert_eq!(body["upstream"]["price"], 1299, "replayed call {n}: {body}");
    }
    // Each replica adds its counts to Redis within milliseconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats(&api1, &replay).await;
        assert_eq!(s["strictMisses"], 0, "{s}");
        if s["injectedSpans"].as_u64().unwrap() >= CALLS as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replayed hops never counted: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(apps);
}

async fn status_and_body(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_per_policy_and_recovers_without_a_restart() {
    install_crypto_provider();
    let mut redis = Redis::start();
    let upstream = serve(price_handler(), None).await;
    let (_app, r) = pod(&redis.url(), &upstream.url()).await;
    let api = r.api.clone();
    let egress = r.egress.trim_start_matches("http://").to_owned();
    let capture = create_session(&api, "capture").await;
    let strict = create_session(&api, "replay").await;
    post(
        &api,
        &format!("/v1/sessions/{strict}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    post(
        &api,
        &format!("/v1/sessions/{strict}/rules"),
        json!({"version": 1, "rules": [{"when": {"path": "/price"},
            "then": {"action": "mock", "response": {"status": 200, "body": "{\"price\": 1}"}}}]}),
    )
    .await;
    checkout(&r, &capture, 0).await;
    let via_egress = |session: &str| {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(format!("http://{session}@{egress}")).unwrap())
            .build()
            .unwrap()
    };
    let (status, body) = status_and_body(
        via_egress(&strict)
            .get(format!("{}/price", upstream.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "{\"price\": 1}"));
    wait_stored(&api, &capture, 2).await;
    let hits_before = upstream.hits();

    redis.stop();

    // The control API: 503 store_unavailable naming the store.
    let resp = client()
        .get(format!("{api}/v1/sessions/{capture}/stats"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&redis.url()),
        "{body}"
    );
    let resp = client()
        .post(format!("{api}/v1/sessions"))
        .json(&json!({"mode": "replay"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let resp = client()
        .get(format!("{api}/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);

    // A strict replay session fails closed with a body that says why.
    let (status, body) = status_and_body(
        via_egress(&strict)
            .get(format!("{}/price", upstream.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("store_unavailable"), "{body}");
    assert!(body.contains("fails closed"), "{body}");

    // Capture traffic still reaches the real upstream.
    let body = checkout(&r, &capture, 1).await;
    assert_eq!(body["upstream"]["price"], 1299, "{body}");
    assert!(upstream.hits() > hits_before);

    redis.run();
    // Recovery without restarting the runtime.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = client()
            .get(format!("{api}/v1/sessions/{capture}/stats"))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the runtime never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    checkout(&r, &capture, 2).await;
    let (status, _) = status_and_body(
        via_egress(&strict)
            .get(format!("{}/price", upstream.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    wait_stored(&api, &capture, 4).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("outage.case.json");
    let closed = close_to(&api, &capture, &out).await;
    // The two hops of the call made during the outage reached the upstream but not the
    // store: the close says so.
    assert_eq!(closed["lostHops"], 2, "{closed}");
    let hops = Case::read(&out).unwrap().exchanges().unwrap();
    let calls: Vec<_> = hops
        .iter()
        .filter(|h| h.direction == Direction::Inbound)
        .map(|h| h.query.clone().unwrap_or_default())
        .collect();
    assert_eq!(calls, ["n=0", "n=2"]);
}

#[test]
fn an_unreachable_store_at_start_stops_the_binary_naming_it() {
    let port = free_port();
    let url = format!("redis://:secret@127.0.0.1:{port}/3");
    let out = Command::new(env!("CARGO_BIN_EXE_softprobe-runtime"))
        .args(["--listen", "127.0.0.1:0", "--store", &url])
        .env_remove("SOFTPROBE_STORE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the session store at redis://:***@127.0.0.1:{port}/3 is unavailable"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
}

/// moto's S3 server on a free port, with one bucket.
struct S3 {
    endpoint: String,
    _proc: Binary,
}

async fn s3_with_bucket(bucket: &str) -> S3 {
    let program = find_program(
        "SOFTPROBE_MOTO_SERVER",
        "moto_server",
        "install it with `python3 -m venv /opt/softprobe-venv && /opt/softprobe-venv/bin/pip \
         install 'moto[server]'` and set SOFTPROBE_MOTO_SERVER=/opt/softprobe-venv/bin/moto_server \
         (CI: .ci/run does)",
    );
    let port = free_port();
    let child = Command::new(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let proc = Binary(child);
    wait_port(port, "moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let made = client()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        made.status().is_success(),
        "creating the bucket: {}",
        made.status()
    );
    S3 {
        endpoint,
        _proc: proc,
    }
}

fn aws_env(s3: &S3) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", s3.endpoint.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

fn softprobe(args: &[&str], env: &[(&'static str, String)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_softprobe"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_land_in_object_storage_and_the_cli_reads_them() {
    install_crypto_provider();
    let s3 = s3_with_bucket("cases").await;
    let env = aws_env(&s3);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let upstream = echo().await;
    let (api, ingress) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut env_with_path = env_ref.clone();
    env_with_path.push((
        "SOFTPROBE_CAPTURE_CASE_PATH",
        "s3://cases/captures/{sessionId}.case.json",
    ));
    let _runtime = {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_softprobe-runtime"));
        cmd.args([
            "--listen",
            &api,
            "--ingress-listen",
            &ingress,
            "--ingress-upstream",
            &upstream.url(),
        ])
        .env("SOFTPROBE_LOG", "warn")
        .env_remove("SOFTPROBE_STORE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (k, v) in &env_with_path {
            cmd.env(k, v);
        }
        Binary(cmd.spawn().unwrap())
    };
    let api = format!("http://{api}");
    wait_up(&format!("{api}/health")).await;
    let session = create_session(&api, "capture").await;
    let resp = client()
        .post(format!("http://{ingress}/orders"))
        .header("x-softprobe-session-id", &session)
        .body("{\"qty\":2}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_extracted(&api, &session, 1).await;

    // A scheme the runtime cannot write is refused at close, by name; the session stays.
    let resp = client()
        .post(format!(
            "{api}/v1/sessions/{session}/close?out=gs://cases/x.case.json"
        ))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`gs://` scheme is not supported"),
        "{message}"
    );

    let closed = post(&api, &format!("/v1/sessions/{session}/close"), json!({})).await;
    let url = format!("s3://cases/captures/{session}.case.json");
    assert_eq!(closed["casePath"], url);
    assert!(
        !Path::new("s3:").exists(),
        "an s3:// URL was taken for a path"
    );

    // The object is in the S3 server (moto lists what it holds on its own API).
    let held: Value = client()
        .get(format!("{}/moto-api/data.json", s3.endpoint))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let arn = format!("arn:aws:s3:::cases/captures/{session}.case.json");
    let object = held["s3"]["FakeKey"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["arn"].as_str().is_some_and(|a| a.starts_with(&arn)))
        .unwrap_or_else(|| {
            panic!(
                "no object {arn} in the S3 server: {}",
                held["s3"]["FakeKey"]
            )
        });
    assert!(object["contentsize"].as_u64().unwrap() > 100, "{object}");

    // The CLI reads it back.
    let (ok, stdout, stderr) = softprobe(&["inspect", "case", &url], &env);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("/orders"), "{stdout}");
    let (ok, stdout, stderr) = softprobe(&["validate", "case", &url], &env);
    assert!(ok, "{stdout}{stderr}");
    let replay = create_session(&api, "replay").await;
    let mut with_runtime = env.clone();
    with_runtime.push(("SOFTPROBE_RUNTIME_URL", api.clone()));
    let (ok, stdout, stderr) = softprobe(
        &["session", "load-case", "--session", &replay, "--file", &url],
        &with_runtime,
    );
    assert!(ok, "{stdout}{stderr}");
    let state = json_of(
        client()
            .get(format!("{api}/v1/sessions/{replay}/state"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .1;
    assert_eq!(state["case"]["spans"], 1, "{state}");
    let (ok, stdout, stderr) = softprobe(&["inspect", "case", "gs://cases/x.case.json"], &env);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("`gs://` scheme is not supported"),
        "{stderr}"
    );

    // A capture path with a scheme the runtime cannot write stops it at start.
    let out = Command::new(env!("CARGO_BIN_EXE_softprobe-runtime"))
        .args(["--listen", "127.0.0.1:0"])
        .env(
            "SOFTPROBE_CAPTURE_CASE_PATH",
            "az://c/{sessionId}.case.json",
        )
        .env_remove("SOFTPROBE_STORE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("az://c/{sessionId}.case.json: the `az://` scheme is not supported"),
        "{stderr}"
    );
}

// Replicas as the library sees them: several `RedisStore`s on one Redis in this process,
// each with its own cache, change listener and batch.

use softprobe_runtime::Error;
use softprobe_runtime::case::{Body, Exchange, SpanId, TraceId};
use softprobe_runtime::replay::{Decision, Request};
use softprobe_runtime::session::{
    CHANGES_SEEN_WITHIN, NewSession, RedisStore, SessionLimits, SessionStore,
};

fn replica(redis: &Redis, limits: SessionLimits) -> RedisStore {
    RedisStore::connect(&redis.url(), limits, Some(Duration::from_secs(60))).unwrap()
}

/// The `n`th hop recorded by replica `by`, told apart by its path.
fn captured_hop(by: &str, n: usize) -> Exchange {
    let mut span = [0; 8];
    span[..4].copy_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
    span[4] = by.as_bytes()[0];
    Exchange {
        service: Some("checkout".into()),
        span_type: Some("extract".into()),
        scheme: Some("https".into()),
        request_headers: vec![("authorization".into(), "Bearer sk_live".into())],
        status: Some(200),
        trace_id: TraceId([7; 16]),
        span_id: SpanId(span),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Exchange::new(Direction::Outbound, "GET", "api.test", format!("/{by}/{n}"))
    }
}

fn mock_rules(body: &str) -> Vec<softprobe_runtime::rules::Rule> {
    let doc = json!([{"id": "m", "when": {"host": "api.test"},
        "then": {"action": "mock", "response": {"body": body}}}]);
    softprobe_runtime::rules::parse_rules_document(doc.to_string().as_bytes(), "test").unwrap()
}

fn set_mock(store: &RedisStore, id: &str, body: &str) {
    let rules = mock_rules(body);
    store
        .update(id, &mut |state| {
            state.set_rules(rules.clone());
            Ok(())
        })
        .unwrap();
}

/// The body `store` answers a hop of session `id` with.
fn answered(store: &RedisStore, id: &str) -> Result<String, Error> {
    let request = Request::from_exchange(&captured_hop("q", 0));
    match store.inject(id, &request)? {
        Decision::Respond { response, .. } => match response.body {
            Some(Body::Text(text)) => Ok(text),
            other => panic!("a mocked answer with a text body, not {other:?}"),
        },
        other => panic!("a mocked answer, not {other:?}"),
    }
}

/// Closes `id` through `store` into a case file and returns the paths of its hops.
fn close_paths(store: &RedisStore, id: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture.case.json");
    let written = store.close(id, Some(&out)).unwrap().unwrap();
    let hops = Case::read(&out).unwrap().exchanges().unwrap();
    assert_eq!(written, hops.len());
    for hop in &hops {
        assert_eq!(hop.request_header("authorization"), Some("[REDACTED]"));
    }
    hops.into_iter().map(|h| h.path).collect()
}

/// A change made through one replica is answered by another within `CHANGES_SEEN_WITHIN`,
/// although that replica decides hops from its cache without asking Redis; also after its
/// change listener lost its connection (Redis drops it), when what was published meanwhile
/// never reached it.
#[test]
fn a_change_on_one_replica_is_seen_by_another_within_the_window() {
    let redis = Redis::start();
    let a = replica(&redis, SessionLimits::default());
    let b = replica(&redis, SessionLimits::default());
    let session = a
        .create(NewSession::new(softprobe_runtime::Mode::Replay))
        .unwrap();
    let id = session.id().to_owned();
    set_mock(&a, &id, "v0");
    // Past the window, both replicas answer from their caches.
    std::thread::sleep(CHANGES_SEEN_WITHIN);
    assert_eq!(answered(&b, &id).unwrap(), "v0");
    for round in 1..=10 {
        let body = format!("v{round}");
        // B has answered (and cached) the previous revision just now.
        assert_eq!(answered(&b, &id).unwrap(), format!("v{}", round - 1));
        // B's batch revalidates what it answered (before the change): only the changes
        // channel can tell B of the change.
        std::thread::sleep(Duration::from_millis(30));
        if round == 5 {
            // Redis drops every subscriber: B's listener misses the change below, made
            // before it listens again.
            let mut conn = redis::Client::open(redis.url())
                .unwrap()
                .get_connection()
                .unwrap();
            let killed: u64 = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "pubsub"])
                .query(&mut conn)
                .unwrap();
            assert_eq!(killed, 2, "both replicas' listeners");
        }
        set_mock(&a, &id, &body);
        // After the kill, long enough for B to listen again: what it missed must not
        // leave its cache answering the old revision.
        let wait = if round == 5 {
            Duration::from_millis(300)
        } else {
            CHANGES_SEEN_WITHIN
        };
        std::thread::sleep(wait);
        assert_eq!(answered(&b, &id).unwrap(), body, "round {round}");
    }
}

/// A close made through one replica ends the session on the others within the window.
#[test]
fn a_close_on_one_replica_is_seen_by_another() {
    let redis = Redis::start();
    let a = replica(&redis, SessionLimits::default());
    let b = replica(&redis, SessionLimits::default());
    let session = a
        .create(NewSession::new(softprobe_runtime::Mode::Replay))
        .unwrap();
    let id = session.id().to_owned();
    set_mock(&a, &id, "ok");
    std::thread::sleep(CHANGES_SEEN_WITHIN);
    assert_eq!(answered(&b, &id).unwrap(), "ok");
    assert_eq!(a.close(&id, None).unwrap(), None);
    std::thread::sleep(CHANGES_SEEN_WITHIN);
    let err = answered(&b, &id).unwrap_err();
    assert!(matches!(err, Error::UnknownSession { .. }), "{err}");
    assert!(b.get(&id).is_none());
}

/// Hops recorded through two replicas are all in the case a close writes at once after
/// them (the closing replica sends its own, the other sends its own when it hears the
/// claim, and the close waits for them), each replica's in the order it recorded them; more
/// hops than a batch holds go too.
#[test]
fn captured_hops_all_arrive_in_order_after_a_close() {
    let redis = Redis::start();
    let a = replica(&redis, SessionLimits::default());
    let b = replica(&redis, SessionLimits::default());
    let rounds = std::iter::once(2500).chain(std::iter::repeat_n(20, 30));
    for (round, each) in rounds.enumerate() {
        let session = a
            .create(NewSession::new(softprobe_runtime::Mode::Capture))
            .unwrap();
        let id = session.id().to_owned();
        std::thread::scope(|s| {
            for (store, by) in [(&a, "a"), (&b, "b")] {
                let id = &id;
                s.spawn(move || {
                    for n in 0..each {
                        assert!(store.record(id, captured_hop(by, n)).unwrap());
                    }
                });
            }
        });
        // B still holds its last hops: nothing waits for them to be stored.
        let paths = close_paths(&a, &id);
        assert_eq!(paths.len(), 2 * each, "round {round}");
        for by in ["a", "b"] {
            let mine: Vec<&String> = paths
                .iter()
                .filter(|p| p.starts_with(&format!("/{by}/")))
                .collect();
            let expected: Vec<String> = (0..each).map(|n| format!("/{by}/{n}")).collect();
            assert_eq!(
                mine,
                expected.iter().collect::<Vec<_>>(),
                "round {round}, replica {by}"
            );
        }
        assert!(b.get(&id).is_none());
    }

    // More hops than a batch holds, from one replica, closed on the other.
    let session = b
        .create(NewSession::new(softprobe_runtime::Mode::Capture))
        .unwrap();
    let id = session.id().to_owned();
    for n in 0..5000 {
        b.record(&id, captured_hop("b", n)).unwrap();
    }
    let expected: Vec<String> = (0..5000).map(|n| format!("/b/{n}")).collect();
    assert_eq!(close_paths(&a, &id), expected);
}

/// The span cap refuses exactly at the cap: at once on the replica that fills the session,
/// and in Redis when another replica's hops fill it first.
#[test]
fn the_span_cap_refuses_exactly_at_the_cap() {
    let redis = Redis::start();
    let limits = SessionLimits {
        max_sessions: None,
        max_spans_per_session: Some(5),
    };
    let a = replica(&redis, limits);
    let b = replica(&redis, limits);

    let session = a
        .create(NewSession::new(softprobe_runtime::Mode::Capture))
        .unwrap();
    let id = session.id().to_owned();
    for n in 0..5 {
        assert!(a.record(&id, captured_hop("a", n)).unwrap(), "hop {n}");
    }
    for n in 5..7 {
        let err = a.record(&id, captured_hop("a", n)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::SpanLimit {
                    limit: 5,
                    refused: 1,
                    ..
                }
            ),
            "hop {n}: {err}"
        );
    }
    let stats = a.stats_json(&id).unwrap();
    assert_eq!(stats["extractedSpans"], 7, "{stats}");
    let expected: Vec<String> = (0..5).map(|n| format!("/a/{n}")).collect();
    assert_eq!(close_paths(&b, &id), expected);

    // Three stored through A, then three through B, which cannot know of A's: Redis takes
    // two, and B refuses at once from then on.
    let session = a
        .create(NewSession::new(softprobe_runtime::Mode::Capture))
        .unwrap();
    let id = session.id().to_owned();
    for n in 0..3 {
        a.record(&id, captured_hop("a", n)).unwrap();
    }
    a.stats_json(&id).unwrap();
    for n in 0..3 {
        assert!(b.record(&id, captured_hop("b", n)).unwrap(), "hop {n}");
    }
    b.stats_json(&id).unwrap();
    let err = b.record(&id, captured_hop("b", 3)).unwrap_err();
    assert!(matches!(err, Error::SpanLimit { .. }), "{err}");
    assert_eq!(
        close_paths(&a, &id),
        ["/a/0", "/a/1", "/a/2", "/b/0", "/b/1"]
    );
}
