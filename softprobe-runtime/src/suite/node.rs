//! JavaScript and TypeScript hooks, as the original runner calls them: the modules given with
//! `--hooks FILE.js|.mjs|.ts` are imported into one Node process (`node_host.mjs`), and a hook
//! is called by its export name with one JSON argument; its return value (or promise) comes
//! back as JSON. [`super::hooks::HookSet`] decides which hooks run here and which are
//! executables.
//!
//! TypeScript runs on any Node: where Node strips types itself it does, elsewhere (Node 20)
//! the `typescript` npm package strips them through a module loader hook.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::{Value, json};

const HOST: &str = include_str!("node_host.mjs");

/// How long Node may take to start and import the modules.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The file extensions that name a hook module rather than an executable hook.
pub fn is_module(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "js" | "mjs" | "cjs" | "ts" | "mts"))
}

/// The Node process holding the hook modules. Calls are serialised; a call that times out
/// kills the process, and the next call starts a fresh one.
#[derive(Debug)]
pub struct NodeHooks {
    files: Vec<PathBuf>,
    exports: BTreeMap<String, PathBuf>,
    process: Mutex<Option<Process>>,
}

#[derive(Debug)]
struct Process {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    next_id: u64,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeHooks {
    /// Starts Node with `files` (absolute or relative to the current directory) imported and
    /// lists their exported functions. Fails with what to do when Node is missing, a module
    /// does not load, TypeScript cannot be stripped or two modules export the same name.
    pub fn start(files: &[PathBuf]) -> Result<Self, String> {
        let mut absolute = Vec::new();
        for f in files {
            let full =
                std::path::absolute(f).map_err(|e| format!("hook module {}: {e}", f.display()))?;
            if !full.is_file() {
                return Err(format!("hook module {} does not exist", f.display()));
            }
            absolute.push(full);
        }
        let (process, exports) = spawn(&absolute)?;
        Ok(NodeHooks {
            files: absolute,
            exports,
            process: Mutex::new(Some(process)),
        })
    }

    /// The module exporting `name`, when one does.
    pub fn module_of(&self, name: &str) -> Option<&Path> {
        self.exports.get(name).map(PathBuf::as_path)
    }

    /// Calls the exported function `name` with `args`; its (awaited) return value, `null`
    /// for `undefined`. A throw, a rejected promise or a timeout is an error naming the hook.
    pub fn call(&self, name: &str, args: &Value, timeout: Duration) -> Result<Value, String> {
        let module = self
            .module_of(name)
            .ok_or_else(|| format!("no hook module exports {name}"))?
            .display()
            .to_string();
        let mut guard = self.process.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(spawn(&self.files)?.0);
        }
        let process = guard.as_mut().expect("started above");
        process.next_id += 1;
        let id = process.next_id;
        let line = json!({"id": id, "hook": name, "args": args}).to_string() + "\n";
        if let Err(e) = process
            .stdin
            .write_all(line.as_bytes())
            .and_then(|()| process.stdin.flush())
        {
            *guard = None;
            return Err(format!(
                "hook {name} ({module}): the Node process is gone: {e}"
            ));
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match process.lines.recv_timeout(left) {
                Ok(text) => {
                    let Ok(answer) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if answer["id"] != json!(id) {
                        continue;
                    }
                    return if answer["ok"] == json!(true) {
                        Ok(answer["value"].clone())
                    } else {
                        Err(format!(
                            "hook {name} ({module}) threw: {}",
                            answer["error"].as_str().unwrap_or("an error")
                        ))
                    };
                }
                Err(RecvTimeoutError::Timeout) => {
                    *guard = None;
                    return Err(format!(
                        "hook {name} ({module}) timed out after {} ms",
                        timeout.as_millis()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    *guard = None;
                    return Err(format!(
                        "hook {name} ({module}): the Node process exited during the call"
                    ));
                }
            }
        }
    }
}

/// The Node executable: `SOFTPROBE_NODE` when set, else `node` on the `PATH`.
fn node_binary() -> PathBuf {
    std::env::var_os("SOFTPROBE_NODE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("node"), PathBuf::from)
}

fn spawn(files: &[PathBuf]) -> Result<(Process, BTreeMap<String, PathBuf>), String> {
    let node = node_binary();
    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut child = Command::new(&node)
        .arg("--input-type=module")
        .arg("--eval")
        .arg(HOST)
        .env("SOFTPROBE_HOOK_FILES", Value::from(list).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "JavaScript/TypeScript hooks need Node.js, and {} was not found: install Node 20 or later (e.g. `apt-get install nodejs`, or from nodejs.org), or set SOFTPROBE_NODE to its path",
                    node.display()
                )
            } else {
                format!("cannot start {}: {e}", node.display())
            }
        })?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let process = Process {
        child,
        stdin,
        lines,
        next_id: 0,
    };
    loop {
        let line = match process.lines.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "Node did not load the hook modules within {} s",
                    START_TIMEOUT.as_secs()
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "Node ({}) exited before loading the hook modules",
                    node.display()
                ));
            }
        };
        let Ok(ready) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if ready["ready"] == json!(true) {
            let exports = ready["exports"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), PathBuf::from(v.as_str().unwrap_or_default())))
                        .collect()
                })
                .unwrap_or_default();
            return Ok((process, exports));
        }
        if ready["ready"] == json!(false) {
            return Err(ready["error"]
                .as_str()
                .unwrap_or("the hook modules could not be loaded")
                .to_owned());
        }
    }
}
