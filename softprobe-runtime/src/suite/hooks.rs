//! Hooks: any executable that reads one JSON request on stdin and answers one JSON object on
//! stdout, so teams rewrite requests and mocks or add checks in the language they already use,
//! or a function exported by a JavaScript/TypeScript module ([`super::node`]), called with the
//! original runner's arguments. [`HookSet`] holds both kinds for one suite run. A hook that
//! cannot start, fails, throws, runs past its timeout or answers something else than its kind
//! expects fails its case with a message naming the hook and what it did.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::node::{self, NodeHooks};

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
pub fn verdict(hook: &str, answer: &Value) -> Result<Option<String>, String> {
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
            "hook {hook} answered {answer} without a boolean \"pass\""
        )),
    }
}

/// The hooks of one suite run: executables looked up in `hooks_dir`, then next to the suite,
/// and the functions exported by the JavaScript/TypeScript modules loaded into one Node
/// process. A name a module exports is called there; any other name is an executable.
#[derive(Debug)]
pub struct HookSet {
    node: Option<NodeHooks>,
    hooks_dir: Option<PathBuf>,
    suite_dir: PathBuf,
    env: Value,
    timeout: Duration,
}

impl HookSet {
    /// Hooks for `suite`: `modules` (the `--hooks FILE` modules) plus the modules the suite's
    /// `hooks` list names that exist next to it; Node starts only when there is one.
    pub fn new(
        suite: &super::Suite,
        modules: &[PathBuf],
        hooks_dir: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut files: Vec<PathBuf> = Vec::new();
        let listed = suite
            .file
            .hooks
            .iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|h| suite.base_dir().join(h))
            .filter(|p| node::is_module(p) && p.is_file());
        for f in modules.iter().cloned().chain(listed) {
            let key = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if !files
                .iter()
                .any(|g| std::fs::canonicalize(g).unwrap_or_else(|_| g.clone()) == key)
            {
                files.push(f);
            }
        }
        let node = if files.is_empty() {
            None
        } else {
            Some(NodeHooks::start(&files)?)
        };
        Ok(HookSet {
            node,
            hooks_dir,
            suite_dir: suite.base_dir().to_owned(),
            env: serde_json::to_value(&suite.file.env).unwrap_or_default(),
            timeout,
        })
    }

    /// How a hook is named in messages: the executable's path, or `name (module)`.
    pub fn describe(&self, name: &str) -> String {
        match self.node.as_ref().and_then(|n| n.module_of(name)) {
            Some(module) => format!("{name} ({})", module.display()),
            None => resolve(name, self.hooks_dir.as_deref(), &self.suite_dir)
                .display()
                .to_string(),
        }
    }

    /// Calls hook `name` with `payload` (the executable protocol's request, `kind` included)
    /// and returns the answer in the executable protocol's shape, whichever kind of hook ran.
    pub fn call(&self, name: &str, kind: HookKind, payload: &Value) -> Result<Value, String> {
        if let Some(node) = self.node.as_ref().filter(|n| n.module_of(name).is_some()) {
            let args = js_args(kind, payload, &self.env);
            let value = node.call(name, &args, self.timeout)?;
            return js_answer(kind, payload, value)
                .map_err(|e| format!("hook {}: {e}", self.describe(name)));
        }
        call(
            &resolve(name, self.hooks_dir.as_deref(), &self.suite_dir),
            payload,
            self.timeout,
        )
    }
}

/// The original runner's argument for a JavaScript hook of `kind`, from the executable
/// protocol's request.
fn js_args(kind: HookKind, p: &Value, env: &Value) -> Value {
    let ctx = json!({"suite": p["suite"], "case": p["case"], "index": p["index"]});
    match kind {
        HookKind::Request => json!({"request": p["request"], "ctx": ctx, "env": env}),
        HookKind::MockResponse => json!({
            "mockName": p["mock"],
            "capturedResponse": p["response"],
            "capturedSpan": p["request"],
            "ctx": ctx,
            "env": env,
        }),
        HookKind::AssertBody | HookKind::AssertHeaders => {
            let part = if kind == HookKind::AssertBody {
                "body"
            } else {
                "headers"
            };
            json!({
                "actual": p["actual"][part],
                "captured": p["captured"][part],
                "actualResponse": p["actual"],
                "capturedResponse": p["captured"],
                "request": p["request"],
                "ctx": ctx,
                "env": env,
            })
        }
    }
}

/// A JavaScript hook's return value as the executable protocol's answer: a partial request
/// or response merged over the one given, a list of issues as a verdict.
fn js_answer(kind: HookKind, p: &Value, value: Value) -> Result<Value, String> {
    let merged = |base: &Value, value: Value, what: &str| match value {
        Value::Null => Ok(json!({})),
        Value::Object(partial) => {
            let mut out = base.as_object().cloned().unwrap_or_default();
            out.extend(partial);
            Ok(json!({what: out}))
        }
        other => Err(format!(
            "returned {}, expected a partial {what} object (or nothing)",
            shown(&other)
        )),
    };
    match kind {
        HookKind::Request => merged(&p["request"], value, "request"),
        HookKind::MockResponse => merged(&p["response"], value, "response"),
        HookKind::AssertBody | HookKind::AssertHeaders => {
            let Value::Array(issues) = value else {
                return Err(format!(
                    "returned {}, expected a list of issues ([] when the check passes)",
                    shown(&value)
                ));
            };
            if issues.is_empty() {
                return Ok(json!({"pass": true}));
            }
            let text: Vec<String> = issues
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    Value::Object(o) => match (o.get("path"), o.get("message")) {
                        (Some(Value::String(path)), Some(Value::String(m))) => {
                            format!("{path}: {m}")
                        }
                        (_, Some(Value::String(m))) => m.clone(),
                        _ => i.to_string(),
                    },
                    other => other.to_string(),
                })
                .collect();
            Ok(json!({"pass": false, "message": text.join("; ")}))
        }
    }
}

fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 120 {
        text.chars().take(120).collect::<String>() + "..."
    } else {
        text
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
