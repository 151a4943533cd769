//! Helpers for the tests that drive the built binaries: a `softprobe-runtime` process on a
//! free loopback port (killed however the test ends) and the `softprobe` CLI run as a user
//! runs it, with its exit code, stdout and stderr.

// Each test binary uses its own subset.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `softprobe-runtime`, killed when dropped.
pub struct Runtime {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The workspace root (fixtures, spec).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// How to start the runtime beyond its environment.
#[derive(Debug, Clone, Copy)]
pub struct Spawn {
    /// `SOFTPROBE_LOG`.
    pub log: &'static str,
    /// Keep stderr readable from `child.stderr` (for tests that read the log).
    pub keep_stderr: bool,
}

impl Default for Spawn {
    fn default() -> Self {
        Spawn {
            log: "warn",
            keep_stderr: false,
        }
    }
}

/// Starts the runtime binary on a free port with `envs` on top of a clean environment (no
/// token, no capture path) and waits until `/health` answers 200.
pub fn spawn_runtime(envs: &[(&str, &str)], how: Spawn) -> Runtime {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_softprobe-runtime"));
    cmd.env("SOFTPROBE_LISTEN_ADDR", &addr)
        .env("SOFTPROBE_LOG", how.log)
        .env_remove("SOFTPROBE_API_TOKEN")
        .env_remove("SOFTPROBE_CAPTURE_CASE_PATH")
        // Tests close into their temporary directories.
        .env("SOFTPROBE_CAPTURE_ROOT", std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(if how.keep_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let runtime = Runtime {
        child: cmd.spawn().expect("softprobe-runtime starts"),
        base: format!("http://{addr}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if health_ok(&addr) {
            return runtime;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("softprobe-runtime did not answer /health on {addr}");
}

/// One plain HTTP/1.1 `GET /health`, so waiting needs no client library.
fn health_ok(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// The `softprobe` CLI pointed at `base`, in the workspace root, with no session or token
/// from the caller's environment and no colours.
pub fn cli(base: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_softprobe"));
    cmd.env("SOFTPROBE_RUNTIME_URL", base)
        .env_remove("SOFTPROBE_SESSION_ID")
        .env_remove("SOFTPROBE_API_TOKEN")
        .env("NO_COLOR", "1")
        .current_dir(root())
        .stdin(Stdio::null());
    cmd
}

/// Runs a command to the end: exit code, stdout, stderr.
pub fn run(mut cmd: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the command runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// The one JSON object a `--json` command prints.
pub fn json_of(stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "--json prints exactly one line: {stdout}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
