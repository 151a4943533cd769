//! Row 10: what a user pays at build time. Two generated crates, side by side, each with the
//! same 200 tests: every test serves an axum app that makes one outbound call, and calls it.
//! One side replays the call with `#[softprobe::case]`, the other mocks it with wiremock
//! (`#[tokio::test]`, `MockServer`, one mounted `Mock`). Both depend on tokio, reqwest and
//! axum; both build with this workspace's dev profile.
//!
//! Measured for each side, the sides taking turns: the clean build (`cargo test --no-run` on
//! an empty target directory: the dev-dependencies and the test file), the incremental
//! rebuild after a one-line edit of the test file (the fastest of [`EDITS`]), and the size of
//! the debug test binary. Beside them, the crate count of `softprobe-test`'s normal
//! dependency tree.
//!
//! The crates are written under `target/bench/build-cost/` with their own target
//! directories. `SOFTPROBE_BENCH_SOURCE` names another checkout to measure (e.g. an older
//! commit, for a before/after pair); the default is this workspace.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{PRICE_PATH, RECORDED_HOST, price_body, price_case};

/// One-line edits timed per side; the fastest counts (the others absorb the machine's noise).
pub(crate) const EDITS: usize = 2;

/// The figures of one side.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    pub(crate) clean: Duration,
    pub(crate) rebuild: Duration,
    pub(crate) binary_bytes: u64,
}

/// Both sides and the dependency count.
#[derive(Debug, Clone)]
pub(crate) struct BuildCost {
    pub(crate) tests: usize,
    pub(crate) softprobe: Side,
    pub(crate) wiremock: Side,
    /// Lines of `cargo tree -p softprobe-test -e normal --prefix none`, deduplicated.
    pub(crate) harness_crates: usize,
    pub(crate) source: PathBuf,
}

/// The cargo that runs the bench (`CARGO` under `cargo run`), else the one on `PATH`: the
/// rustup proxy, which pins the toolchain for the builds so that a dependency's own
/// `rust-toolchain.toml` does not switch it.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The checkout whose `softprobe-test` the softprobe side builds against.
fn source() -> PathBuf {
    match std::env::var_os("SOFTPROBE_BENCH_SOURCE") {
        Some(s) => PathBuf::from(s),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("benches/ sits in the workspace")
            .to_owned(),
    }
}

const PROFILE: &str = r#"
# The profile of the softprobe workspace, on both sides.
[profile.dev]
debug = "line-tables-only"

[profile.dev.package."*"]
debug = false
"#;

/// The axum app both sides test: `/quote` makes one outbound GET to `{upstream}{PRICE_PATH}`
/// and answers with its body.
fn app_module() -> String {
    format!(
        r#"
#[derive(Clone)]
struct Upstream {{
    client: reqwest::Client,
    base: String,
}}

async fn quote(axum::extract::State(up): axum::extract::State<Upstream>) -> String {{
    let resp = up
        .client
        .get(format!("{{}}{PRICE_PATH}", up.base))
        .send()
        .await
        .expect("the outbound call answers");
    resp.text().await.expect("a text body")
}}

fn app(client: reqwest::Client, base: String) -> axum::Router {{
    axum::Router::new()
        .route("/quote", axum::routing::get(quote))
        .with_state(Upstream {{ client, base }})
}}

/// Changed by the one-line edit of the incremental rebuild.
const EDIT: u32 = 0;
"#
    )
}

fn softprobe_tests(tests: usize) -> String {
    let mut out = app_module();
    for i in 0..tests {
        out.push_str(&format!(
            r#"
#[softprobe::case("cases/price.case.json", mode = "replay")]
async fn quote_{i}(sp: softprobe::Session) {{
    let base = sp.serve(app(sp.http_client(), "http://{RECORDED_HOST}".into())).await;
    let resp = sp.client().get(format!("{{base}}/quote")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "test {i} (edit {{EDIT}})");
}}
"#
        ));
    }
    out
}

fn wiremock_tests(tests: usize) -> String {
    let mut out = app_module();
    out.push_str(&format!(
        r##"
const BODY: &[u8] = br#"{}"#;

async fn serve(app: axum::Router) -> String {{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {{ axum::serve(listener, app).await.unwrap() }});
    format!("http://{{addr}}")
}}
"##,
        String::from_utf8_lossy(&price_body())
    ));
    for i in 0..tests {
        out.push_str(&format!(
            r#"
#[tokio::test]
async fn quote_{i}() {{
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("{PRICE_PATH}"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_raw(BODY, "application/json"))
        .mount(&server)
        .await;
    let base = serve(app(reqwest::Client::new(), server.uri())).await;
    let resp = reqwest::Client::new().get(format!("{{base}}/quote")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "test {i} (edit {{EDIT}})");
}}
"#
        ));
    }
    out
}

/// Writes one side's crate; returns its directory.
fn write_crate(root: &Path, name: &str, peer_dep: &str, tests: &str) -> Result<PathBuf, String> {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("tests")).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::create_dir_all(dir.join("src")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let manifest = format!(
        r#"[package]
name = "build-cost-{name}"
version = "0.0.0"
edition = "2024"
publish = false

# Not a member of the workspace it is generated in.
[workspace]

[dev-dependencies]
{peer_dep}
tokio = {{ version = "1", features = ["macros", "rt-multi-thread", "net"] }}
reqwest = {{ version = "0.13", default-features = false }}
axum = {{ version = "0.8", default-features = false, features = ["tokio", "http1"] }}
{PROFILE}"#
    );
    let write = |p: PathBuf, text: &str| {
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write(dir.join("Cargo.toml"), &manifest)?;
    write(dir.join("src/lib.rs"), "//! Tests only.\n")?;
    write(dir.join("tests/quotes.rs"), tests)?;
    // The versions the workspace tests with; cargo drops what the crate does not use.
    let lock = source().join("Cargo.lock");
    std::fs::copy(&lock, dir.join("Cargo.lock"))
        .map_err(|e| format!("cannot copy {}: {e}", lock.display()))?;
    Ok(dir)
}

/// `cargo test --no-run` in `dir`; returns the time and the test executable.
fn build(dir: &Path) -> Result<(Duration, PathBuf), String> {
    let start = Instant::now();
    let out = cargo()
        .args(["test", "--no-run", "--message-format=json"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "cargo test --no-run failed in {} ({})",
            dir.display(),
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exe = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "quotes")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("cargo named no test executable in {}", dir.display()))?;
    Ok((took, exe))
}

/// Bumps the `EDIT` constant: a one-line change of the test file.
fn edit(dir: &Path, n: usize) -> Result<(), String> {
    let path = dir.join("tests/quotes.rs");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("const EDIT: u32 = "))
        .ok_or("the test file lost its EDIT line")?
        .to_owned();
    let text = text.replacen(&line, &format!("const EDIT: u32 = {};", n + 1), 1);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn crate_count(source: &Path) -> Result<usize, String> {
    let out = cargo()
        .args([
            "tree",
            "-p",
            "softprobe-test",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(source)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo tree failed in {}", source.display()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches(" (*)"))
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort_unstable();
    lines.dedup();
    Ok(lines.len())
}

/// Generates both crates with `tests` tests each under `root` and measures them.
pub(crate) fn run(root: &Path, tests: usize) -> Result<BuildCost, String> {
    let source = source();
    let harness = source.join("softprobe-test");
    if !harness.join("Cargo.toml").is_file() {
        return Err(format!(
            "no softprobe-test in {} (SOFTPROBE_BENCH_SOURCE)",
            source.display()
        ));
    }
    let ours = write_crate(
        root,
        "softprobe",
        &format!("softprobe = {{ package = \"softprobe-test\", path = {harness:?} }}"),
        &softprobe_tests(tests),
    )?;
    std::fs::create_dir_all(ours.join("cases")).map_err(|e| format!("{e}"))?;
    price_case()
        .write(ours.join("cases/price.case.json"))
        .map_err(|e| format!("cannot write the case: {e}"))?;
    let peer = write_crate(
        root,
        "wiremock",
        "wiremock = \"0.6\"",
        &wiremock_tests(tests),
    )?;
    let dirs = [&ours, &peer];
    let mut clean = [Duration::ZERO; 2];
    let mut exes = [PathBuf::new(), PathBuf::new()];
    for (k, dir) in dirs.iter().enumerate() {
        let target = dir.join("target");
        if target.exists() {
            std::fs::remove_dir_all(&target)
                .map_err(|e| format!("cannot empty {}: {e}", target.display()))?;
        }
        eprintln!("row 11: clean build of {}", dir.display());
        (clean[k], exes[k]) = build(dir)?;
    }
    let mut rebuild = [Duration::MAX; 2];
    for n in 0..EDITS {
        for (k, dir) in dirs.iter().enumerate() {
            edit(dir, n)?;
            let (took, exe) = build(dir)?;
            rebuild[k] = rebuild[k].min(took);
            exes[k] = exe;
        }
    }
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let side = |k: usize| -> Result<Side, String> {
        Ok(Side {
            clean: clean[k],
            rebuild: rebuild[k],
            binary_bytes: size(&exes[k])?,
        })
    };
    Ok(BuildCost {
        tests,
        softprobe: side(0)?,
        wiremock: side(1)?,
        harness_crates: crate_count(&source)?,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_have_the_same_tests_and_one_edit_line() {
        let ours = softprobe_tests(3);
        let peer = wiremock_tests(3);
        for text in [&ours, &peer] {
            assert_eq!(text.matches("async fn quote_").count(), 3);
            assert_eq!(text.matches("const EDIT: u32 = ").count(), 1);
        }
        assert_eq!(ours.matches("#[softprobe::case(").count(), 3);
        assert_eq!(peer.matches("#[tokio::test]").count(), 3);
    }
}
