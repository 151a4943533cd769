//! The built binaries from a test: child processes killed however the test ends, free
//! loopback ports, a `softprobe-runtime` with a clean environment, waiting for a port or a
//! URL to answer, and the `softprobe` CLI run as a user runs it, with its exit code, stdout
//! and stderr.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process, killed and reaped when dropped however the test ends. It derefs to the
/// [`Child`] for signals, pids and piped output.
pub struct Binary(pub Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Deref for Binary {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Binary {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

#[path = "../../../tests/src/ports.rs"]
mod ports;
pub use ports::free_port;

/// `127.0.0.1:PORT` with a port nobody listens on right now.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The workspace root (fixtures, spec).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The `softprobe-runtime` binary with nothing from the caller's environment that changes
/// its behaviour (token, runtime URL, capture path, store, remote binds, allowed hosts),
/// `SOFTPROBE_LOG=warn`, closing into the temporary directory, stdout discarded and stderr
/// passed through. Callers add arguments and override any of it.
pub fn runtime_command() -> Command {
    runtime_command_under(&[])
}

/// [`runtime_command`] run through `wrapper` (a program and its arguments, the runtime's
/// path last) when it is not empty.
pub fn runtime_command_under(wrapper: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_softprobe-runtime");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.env("SOFTPROBE_LOG", "warn")
        .env_remove("SOFTPROBE_API_TOKEN")
        .env_remove("SOFTPROBE_RUNTIME_URL")
        .env_remove("SOFTPROBE_CAPTURE_CASE_PATH")
        .env_remove("SOFTPROBE_STORE_URL")
        .env_remove("SOFTPROBE_ALLOW_REMOTE")
        .env_remove("SOFTPROBE_PUBLIC_HOSTS")
        .env_remove("SOFTPROBE_ALLOWED_ORIGINS")
        // Tests close into their temporary directories.
        .env("SOFTPROBE_CAPTURE_ROOT", std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// Starts `cmd` (a runtime told to listen on `addr`) and waits until `/health` answers 200.
pub fn start_runtime(mut cmd: Command, addr: &str) -> Runtime {
    let runtime = Runtime {
        child: Binary(cmd.spawn().expect("softprobe-runtime starts")),
        base: format!("http://{addr}"),
    };
    wait_health(addr);
    runtime
}

/// A running `softprobe-runtime`, killed when dropped.
pub struct Runtime {
    /// The process.
    pub child: Binary,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
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
    let addr = free_addr();
    let mut cmd = runtime_command();
    cmd.env("SOFTPROBE_LISTEN_ADDR", &addr)
        .env("SOFTPROBE_LOG", how.log)
        .stderr(if how.keep_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    for (k, v) in envs {
        cmd.env(k, v);
    }
    start_runtime(cmd, &addr)
}

/// Waits (30 s at most) until `GET /health` on `addr` answers 200.
pub fn wait_health(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if health_ok(addr) {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("softprobe-runtime did not answer /health on {addr}");
}

/// Waits (30 s at most) until `url` answers anything at all.
pub async fn wait_up(url: &str) {
    let client = super::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered");
}

/// Waits (30 s at most) until something accepts connections on the loopback `port`.
pub fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} never listened on port {port}");
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
pub fn json_line(stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "--json prints exactly one line: {stdout}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
