//! Hooks: any executable that reads one JSON request on stdin and answers one JSON object on
//! stdout, so teams rewrite requests and mocks or add checks in the language they already use.
//! A hook that cannot start, exits non-zero, runs past its timeout or prints something other
//! than a JSON object fails its case with a message naming the hook and what it did.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The hook points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// May rewrite the request sent to the application.
    Request,
    /// May rewrite a mock's response before it is installed.
    MockResponse,
    /// Checks the response body.
    AssertBody,
    /// Checks the response headers.
    AssertHeaders,
}

impl HookKind {
    /// As sent in `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Request => "request",
            HookKind::MockResponse => "mock_response",
            HookKind::AssertBody => "assert_body",
            HookKind::AssertHeaders => "assert_headers",
        }
    }
}

/// Finds a hook named in a suite: in `hooks_dir` first, then relative to the suite.
pub fn resolve(name: &str, hooks_dir: Option<&Path>, suite_dir: &Path) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_owned();
    }
    if let Some(dir) = hooks_dir {
        let candidate = dir.join(p);
        if candidate.exists() {
            return candidate;
        }
    }
    suite_dir.join(p)
}

/// Runs one hook with `request` on stdin and returns the JSON object it printed.
pub fn call(path: &Path, request: &Value, timeout: Duration) -> Result<Value, String> {
    let shown = path.display();
    let mut child = Command::new(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("hook {shown} could not start: {e}"))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // Readers on their own threads so a chatty hook never blocks on a full pipe.
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its input; a broken pipe is not our failure.
        let _ = stdin.write_all(request.to_string().as_bytes());
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "hook {shown} timed out after {} ms ({} hook)",
                    timeout.as_millis(),
                    request["kind"].as_str().unwrap_or("?")
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("hook {shown}: {e}")),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let err_text = String::from_utf8_lossy(&err);
    let err_text = err_text.trim();
    if !status.success() {
        return Err(format!(
            "hook {shown} failed ({status}){}",
            if err_text.is_empty() {
                String::new()
            } else {
                format!(": {err_text}")
            }
        ));
    }
    let text = String::from_utf8_lossy(&out);
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(format!(
            "hook {shown} printed {other}, expected one JSON object on stdout"
        )),
        Err(e) => Err(format!(
            "hook {shown} printed bad JSON ({e}): {:?}",
            text.chars().take(200).collect::<String>()
        )),
    }
}

/// Reads a check hook's verdict: `{"pass": bool, "message"?: string}`.
pub fn verdict(path: &Path, answer: &Value) -> Result<Option<String>, String> {
    match answer.get("pass").and_then(Value::as_bool) {
        Some(true) => Ok(None),
        Some(false) => Ok(Some(
            answer
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the hook said the check failed")
                .to_owned(),
        )),
        None => Err(format!(
            "hook {} answered {answer} without a boolean \"pass\"",
            path.display()
        )),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn answers_timeouts_failures_and_bad_json() {
        let dir = tempfile::tempdir().unwrap();
        let req = serde_json::json!({"kind": "request"});
        let t = Duration::from_secs(5);
        let ok = script(
            dir.path(),
            "ok.sh",
            "#!/bin/sh\ncat >/dev/null\necho '{\"pass\": true}'\n",
        );
        assert_eq!(call(&ok, &req, t).unwrap()["pass"], true);
        let slow = script(dir.path(), "slow.sh", "#!/bin/sh\nsleep 5\n");
        let e = call(&slow, &req, Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("timed out after 100 ms"), "{e}");
        let bad = script(dir.path(), "bad.sh", "#!/bin/sh\necho not json\n");
        assert!(call(&bad, &req, t).unwrap_err().contains("bad JSON"));
        let fail = script(dir.path(), "fail.sh", "#!/bin/sh\necho boom >&2\nexit 3\n");
        let e = call(&fail, &req, t).unwrap_err();
        assert!(e.contains("boom") && e.contains("exit status: 3"), "{e}");
        let e = call(&dir.path().join("none"), &req, t).unwrap_err();
        assert!(e.contains("could not start"), "{e}");
    }
}
