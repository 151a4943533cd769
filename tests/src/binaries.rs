//! The workspace's binaries for tests that run them as a user does (`softprobe-runtime`,
//! `softprobe`). They belong to another package, so they are not `CARGO_BIN_EXE_*` here:
//! they are found next to the test's own executable, and built (those two binaries only)
//! when missing or older than a source file of the runtime.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `target/<profile>/<name>` of the runtime's binaries (`softprobe-runtime`, `softprobe`),
/// built first when missing or stale.
pub fn runtime_binary(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        built_binaries(
            &[
                ("softprobe-runtime", "softprobe-runtime"),
                ("softprobe-runtime", "softprobe"),
            ],
            &["softprobe-runtime/src"],
        )
    })
    .join(name)
}

/// `target/<profile>`, the directory of the running test's executable, holding `binaries`
/// (package, binary) of the workspace: built with `cargo build` of those binaries only when
/// one is missing or older than a file below `sources` (directories relative to the
/// workspace root), so a binary left from before an edit is rebuilt rather than tested.
pub fn built_binaries(binaries: &[(&str, &str)], sources: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf();
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let newest_source = sources
        .iter()
        .filter_map(|src| newest_file(&root.join(src)))
        .max();
    let current = |bin: &str| {
        dir.join(bin)
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|built| newest_source.is_none_or(|newest| newest <= built))
    };
    if binaries.iter().all(|(_, bin)| current(bin)) {
        return dir;
    }
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let target = dir.parent().expect("target/<profile> has a parent");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "--quiet"]);
    for (package, bin) in binaries {
        build.args(["-p", package, "--bin", bin]);
    }
    build.arg("--target-dir").arg(target).current_dir(root);
    if profile == "release" {
        build.arg("--release");
    } else if profile != "debug" {
        build.args(["--profile", profile]);
    }
    let status = build.status().expect("cargo runs");
    let names: Vec<&str> = binaries.iter().map(|(_, bin)| *bin).collect();
    assert!(
        status.success(),
        "building {} failed: {status}",
        names.join(", ")
    );
    dir
}

/// The latest modification time of the files below `dir`.
fn newest_file(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_file(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(time);
    }
    newest
}

/// A `softprobe-runtime` process on a free loopback port, killed when dropped.
pub struct RuntimeProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl RuntimeProcess {
    /// Starts the standalone runtime and waits until `/health` answers.
    pub fn start() -> RuntimeProcess {
        let addr = format!("127.0.0.1:{}", crate::free_port());
        let child = Command::new(runtime_binary("softprobe-runtime"))
            .args(["--listen", &addr])
            .env("SOFTPROBE_LOG", "warn")
            .env_remove("SOFTPROBE_API_TOKEN")
            .env_remove("SOFTPROBE_RUNTIME_URL")
            .env_remove("SOFTPROBE_CAPTURE_CASE_PATH")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the softprobe-runtime binary starts");
        let process = RuntimeProcess {
            child,
            url: format!("http://{addr}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return process;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("softprobe-runtime did not listen on {addr}");
    }
}

impl Drop for RuntimeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
