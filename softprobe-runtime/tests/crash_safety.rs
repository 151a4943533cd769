//! Crash safety of the real `softprobe-runtime` binary: `kill -9` at a random moment while it
//! writes a sizeable capture leaves the complete old case or the complete new one, never a
//! partial file, and the temporaries of killed writers are removed by the next write. A
//! full disk gives a clear error and keeps the session, so the close can be retried.
//!
//! 20 kills by default; `SOFTPROBE_CRASH_RUNS=200` for the figure in RELIABILITY.

#![cfg(all(feature = "cli", unix))]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use softprobe_runtime::case::Case;
use support::{Runtime, free_addr, runtime_command_under, start_runtime};

/// Spans per capture: about 1.5 MB of case file.
const SPANS: usize = 1500;

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Starts the binary (through `wrapper` when given) and waits for `/health`.
fn start(wrapper: &[&str]) -> Runtime {
    let addr = free_addr();
    let mut cmd = runtime_command_under(wrapper);
    cmd.args(["--listen", &addr]).stderr(Stdio::null());
    start_runtime(cmd, &addr)
}

fn post(http: &Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = http.post(url).json(body).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// A capture session holding `SPANS` hops tagged `run`.
fn loaded_session(http: &Client, base: &str, run: usize) -> String {
    let (status, created) = post(
        http,
        &format!("{base}/v1/sessions"),
        &json!({"mode": "capture"}),
    );
    assert_eq!(status, 200, "{created}");
    let session = created["sessionId"].as_str().unwrap().to_owned();
    let filler = "x".repeat(900);
    let spans: Vec<Value> = (0..SPANS)
        .map(|i| {
            let attr = |k: &str, v: String| json!({"key": k, "value": {"stringValue": v}});
            json!({
                "traceId": format!("{:032x}", run + 1),
                "spanId": format!("{:016x}", i + 1),
                "name": "HTTP GET",
                "kind": 3,
                "startTimeUnixNano": "1713616200000000000",
                "endTimeUnixNano": "1713616200035000000",
                "attributes": [
                    attr("sp.session.id", session.clone()),
                    attr("sp.span.type", "extract".into()),
                    attr("sp.traffic.direction", "outbound".into()),
                    attr("http.request.method", "GET".into()),
                    attr("url.host", "api.test".into()),
                    attr("url.path", format!("/run/{run}/item/{i}")),
                    {"key": "http.response.status_code", "value": {"intValue": "200"}},
                    attr("http.response.body", format!("{{\"run\":{run},\"pad\":\"{filler}\"}}")),
                ],
            })
        })
        .collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "crash"}}]},
        "scopeSpans": [{"spans": spans}]
    }]});
    let (status, answer) = post(http, &format!("{base}/v1/traces"), &body);
    assert_eq!(status, 204, "{answer}");
    session
}

/// Whether `bytes` are the complete capture of `run`.
fn is_complete_capture_of(bytes: &[u8], run: usize) -> Result<(), String> {
    let case = Case::from_slice_named(bytes, "case on disk").map_err(|e| e.to_string())?;
    let hops = case.exchanges().map_err(|e| e.to_string())?;
    if hops.len() != SPANS {
        return Err(format!("{} hops instead of {SPANS}", hops.len()));
    }
    let prefix = format!("/run/{run}/item/");
    if let Some(stray) = hops.iter().find(|h| !h.path.starts_with(&prefix)) {
        return Err(format!("hop {} is not of run {run}", stray.path));
    }
    Ok(())
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Whether the process `pid` has a temporary file in `dir` (write_atomic names them
/// `.{file}.{pid}.{random}.tmp`).
fn has_temporary_of(dir: &Path, pid: u32) -> bool {
    let marker = format!(".{pid}.");
    temporaries(dir).iter().any(|name| name.contains(&marker))
}

/// A small xorshift generator: the kill moments need spread, not cryptographic quality.
struct Moments(u64);

impl Moments {
    fn next_below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

fn kill9(child: &Child) {
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn kill_9_during_case_writes_leaves_the_old_file_or_the_new_one() {
    let runs: usize = std::env::var("SOFTPROBE_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("crash.case.json");
    let http = client();

    // Run 0 writes the first complete file and times a whole close, to aim the kills.
    let rt = start(&[]);
    let session = loaded_session(&http, &rt.base, 0);
    let started = Instant::now();
    let (status, body) = post(
        &http,
        &format!(
            "{}/v1/sessions/{session}/close?out={}",
            rt.base,
            target.display()
        ),
        &json!({}),
    );
    let close_time = started.elapsed();
    assert_eq!(status, 200, "{body}");
    drop(rt);
    is_complete_capture_of(&std::fs::read(&target).unwrap(), 0).unwrap();

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut moments = Moments(seed);
    // Most of a close is building the document in memory; the file is written at its end.
    // Kills land from a third of the way through to the moment the close would have ended.
    let close_us = close_time.as_micros() as u64;
    let (earliest_us, window_us) = (close_us / 3, close_us * 2 / 3 + 1);
    let (mut old, mut new, mut most_temporaries, mut killed_mid_write) = (0, 0, 0, 0);
    let mut last_complete = 0;
    let mut aimed = 0;
    for run in 1..=runs {
        let before = std::fs::read(&target).unwrap();
        let mut rt = start(&[]);
        let session = loaded_session(&http, &rt.base, run);
        let url = format!(
            "{}/v1/sessions/{session}/close?out={}",
            rt.base,
            target.display()
        );
        let closer = {
            let http = http.clone();
            std::thread::spawn(move || http.post(url).json(&json!({})).send().is_ok())
        };
        if run % 2 == 0 {
            // Aimed at the write itself: as soon as the temporary file appears, plus up to
            // 2 ms, so the kill lands while it is written, flushed or renamed.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !has_temporary_of(dir.path(), rt.child.id()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(100));
            }
            aimed += 1;
            std::thread::sleep(Duration::from_micros(moments.next_below(2000)));
        } else {
            std::thread::sleep(Duration::from_micros(
                earliest_us + moments.next_below(window_us),
            ));
        }
        kill9(&rt.child);
        let _ = rt.child.wait();
        let _ = closer.join();
        let after = std::fs::read(&target).unwrap();
        if after == before {
            old += 1;
            is_complete_capture_of(&after, last_complete).unwrap();
        } else {
            is_complete_capture_of(&after, run).unwrap_or_else(|why| {
                panic!(
                    "run {run} (seed {seed}): the file is neither the old case nor the new \
                     one: {why}"
                )
            });
            new += 1;
            last_complete = run;
        }
        if has_temporary_of(dir.path(), rt.child.id()) {
            killed_mid_write += 1;
        }
        most_temporaries = most_temporaries.max(temporaries(dir.path()).len());
    }

    // The next write removes what killed writers left behind.
    let rt = start(&[]);
    let session = loaded_session(&http, &rt.base, runs + 1);
    let (status, body) = post(
        &http,
        &format!(
            "{}/v1/sessions/{session}/close?out={}",
            rt.base,
            target.display()
        ),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    is_complete_capture_of(&std::fs::read(&target).unwrap(), runs + 1).unwrap();
    let left = temporaries(dir.path());
    assert!(
        left.is_empty(),
        "temporaries left after a clean write: {left:?}"
    );
    eprintln!(
        "crash: {runs} kill -9 during writes of a {} KiB case (close takes {close_time:?}): \
         {old} old, {new} new, 0 partial; {aimed} kills aimed at the temporary file, \
         {killed_mid_write} left one behind (at most {most_temporaries} at once), 0 after the \
         next write (seed {seed})",
        std::fs::metadata(&target).unwrap().len() / 1024
    );
    assert_eq!(old + new, runs);
}

/// `unshare` runs the binary in a mount namespace of its own where `dir` is a 64 KiB tmpfs,
/// so the host's mounts never change. `None` when this machine does not allow it.
fn tiny_tmpfs_wrapper(dir: &Path) -> Option<Vec<String>> {
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs '{}' && exec \"$0\" \"$@\"",
        dir.display()
    );
    let probe = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "true",
        ])
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(status) if status.success() => Some(vec![
            "unshare".into(),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            script,
        ]),
        _ => None,
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_close_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let wrapper = tiny_tmpfs_wrapper(&full);
    let (rt, blocked, reason) = match &wrapper {
        Some(w) => {
            let w: Vec<&str> = w.iter().map(String::as_str).collect();
            (
                start(&w),
                full.join("x.case.json"),
                "No space left on device",
            )
        }
        None => {
            // No mount namespaces here: a parent that is a file fails every write too.
            let file = dir.path().join("not-a-dir");
            std::fs::write(&file, "x").unwrap();
            (start(&[]), file.join("x.case.json"), "Not a directory")
        }
    };
    let http = client();
    let session = loaded_session(&http, &rt.base, 7);
    let (status, body) = post(
        &http,
        &format!(
            "{}/v1/sessions/{session}/close?out={}",
            rt.base,
            blocked.display()
        ),
        &json!({}),
    );
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&session), "{message}");
    assert!(
        message.contains(&blocked.display().to_string()),
        "{message}"
    );
    assert!(message.contains(reason), "{message}");
    // The session and every span are still there.
    let stats: Value = http
        .get(format!("{}/v1/sessions/{session}/stats", rt.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["extractedSpans"], SPANS, "{stats}");
    let retry = dir.path().join("retry/x.case.json");
    let (status, body) = post(
        &http,
        &format!(
            "{}/v1/sessions/{session}/close?out={}",
            rt.base,
            retry.display()
        ),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    is_complete_capture_of(&std::fs::read(&retry).unwrap(), 7).unwrap();
}
