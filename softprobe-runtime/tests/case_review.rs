//! `softprobe diff` on equal and different cases, and `softprobe review` driven as a person
//! drives it: in a terminal (tmux, keys sent one by one), accepting one case, rejecting
//! another, skipping a third; without a terminal it refuses to ask and names the flags.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use softprobe_runtime::case::{Body, Case, Direction, SpanId, TraceId};

fn example() -> PathBuf {
    support::root().join("fixtures/cases/checkout-captured.case.json")
}

fn softprobe(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = support::cli("http://127.0.0.1:9");
    cmd.current_dir(dir).args(args);
    support::run(cmd)
}

/// A copy of the example case as another run would record it: every id and timestamp new.
fn rerecorded(path: &Path) {
    let mut hops = Case::read(example()).unwrap().exchanges().unwrap();
    let trace = TraceId::random();
    for h in &mut hops {
        h.trace_id = trace;
        h.span_id = SpanId::random();
        h.parent_span_id = h.parent_span_id.map(|_| SpanId::random());
        h.session_id = Some("sess_another_run".into());
        h.start_time_unix_nano += 86_400_000_000_000;
        h.end_time_unix_nano += 86_400_000_000_000;
        for (name, value) in &mut h.response_headers {
            if name == "date" {
                *value = "Mon, 23 Nov 2026 01:38:41 GMT".into();
            }
        }
    }
    let mut case = Case::new("checkout-happy-path-again", "2026-11-23T01:38:41Z");
    case.push_exchanges(&hops);
    case.write(path).unwrap();
}

/// The example case with the total changed to `total` and the shipping call gone.
fn drifted(path: &Path, total: u32) {
    let mut hops = Case::read(example()).unwrap().exchanges().unwrap();
    hops.retain(|h| !h.path.starts_with("/shipping"));
    let inbound = hops
        .iter_mut()
        .find(|h| h.direction == Direction::Inbound)
        .unwrap();
    let body = inbound.response_body.as_ref().unwrap().as_text().unwrap();
    inbound.response_body = Some(Body::Text(
        body.replace("\"total\":1499", &format!("\"total\":{total}")),
    ));
    let mut case = Case::new("checkout-happy-path", "2026-12-03T12:00:00Z");
    case.push_exchanges(&hops);
    case.write(path).unwrap();
}

#[test]
fn diff_ignores_ids_and_timestamps_and_names_changed_fields() {
    let dir = tempfile::tempdir().unwrap();
    let a = example();
    let again = dir.path().join("again.case.json");
    rerecorded(&again);
    let (code, out, err) = softprobe(
        dir.path(),
        &["diff", a.to_str().unwrap(), "again.case.json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hold the same 3 hop(s)"), "{out}");

    let changed = dir.path().join("changed.case.json");
    drifted(&changed, 1549);
    let (code, out, err) = softprobe(
        dir.path(),
        &["diff", a.to_str().unwrap(), "changed.case.json"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "~ changed inbound POST /checkout\n    body.total:\n      - 1499\n      + 1549\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("- removed outbound GET http://127.0.0.1:47180/shipping"),
        "{out}"
    );
    assert!(
        out.contains("1 same, 1 changed, 0 added, 1 removed"),
        "{out}"
    );
    assert!(!out.contains("traceId") && !out.contains("spanId"), "{out}");

    let (code, out, _) = softprobe(
        dir.path(),
        &["diff", "--json", a.to_str().unwrap(), "changed.case.json"],
    );
    assert_eq!(code, 1);
    let v = support::json_line(&out);
    assert_eq!(v["equal"], false);
    let changes: Vec<&str> = v["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, vec!["changed", "same", "removed"]);
    assert_eq!(v["hops"][0]["fields"][0]["field"], "body.total");

    let (code, _, err) = softprobe(dir.path(), &["diff", "nope.case.json", "changed.case.json"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("nope.case.json"), "{err}");
}

/// Three cases, each with a `.new` beside it.
fn three_pending(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    ["alpha", "beta", "gamma"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let case = dir.join(format!("{name}.case.json"));
            std::fs::copy(example(), &case).unwrap();
            let new = dir.join(format!("{name}.case.json.new"));
            drifted(&new, 1500 + i as u32);
            (case, new)
        })
        .collect()
}

#[test]
fn review_without_a_terminal_refuses_to_ask_and_flags_decide() {
    let dir = tempfile::tempdir().unwrap();
    let pending = three_pending(dir.path());
    let (code, out, err) = softprobe(dir.path(), &["review"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("not a terminal") && err.contains("--accept-all"),
        "{err}"
    );
    assert!(pending.iter().all(|(_, n)| n.exists()), "nothing changed");

    let (code, out, _) = softprobe(dir.path(), &["review", "--json"]);
    assert_eq!(code, 0);
    let v = support::json_line(&out);
    assert_eq!(v["pending"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(
        v["pending"][0]["hops"][0]["fields"][0]["field"],
        "body.total"
    );
    assert!(pending.iter().all(|(_, n)| n.exists()), "--json only lists");

    let (code, out, _) = softprobe(
        dir.path(),
        &["review", "--reject-all", "beta.case.json.new"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("rejected 1"), "{out}");
    assert!(!pending[1].1.exists());
    let original = std::fs::read(example()).unwrap();
    assert_eq!(std::fs::read(&pending[1].0).unwrap(), original);

    let new_alpha = std::fs::read(&pending[0].1).unwrap();
    let (code, out, _) = softprobe(dir.path(), &["review", "--accept-all"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("accepted 2, rejected 0, skipped 0"), "{out}");
    assert_eq!(std::fs::read(&pending[0].0).unwrap(), new_alpha);
    assert!(!pending[0].1.exists() && !pending[2].1.exists());
    let (_, out, _) = softprobe(dir.path(), &["review"]);
    assert!(out.contains("No case is waiting for review."), "{out}");
}

/// tmux on a socket of its own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn pane(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-J", "-S", "-200", "-t", "review"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pane = self.pane();
            if pane.contains(text) {
                return pane;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "review"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

#[test]
fn review_in_a_terminal_accepts_rejects_and_skips() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "tmux is needed to drive review in a terminal: install the Debian package `tmux` (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let pending = three_pending(dir.path());
    let new_alpha = std::fs::read(&pending[0].1).unwrap();
    let original = std::fs::read(example()).unwrap();
    let tmux = Tmux {
        socket: format!("softprobe-review-{}", std::process::id()),
    };
    let script = format!(
        "cd '{}' && NO_COLOR=1 '{}' review; echo \"review exited $?\"; sleep 60",
        dir.path().display(),
        env!("CARGO_BIN_EXE_softprobe")
    );
    let started = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            "review",
            "-x",
            "160",
            "-y",
            "60",
            &script,
        ])
        .status()
        .unwrap();
    assert!(started.success());

    let screen = tmux.wait_for("[1/3] a accept");
    assert!(screen.contains("alpha.case.json.new → "), "{screen}");
    assert!(
        screen.contains("body.total:"),
        "the diff is shown before asking:\n{screen}"
    );
    tmux.keys(&["a", "Enter"]);
    tmux.wait_for("[2/3] a accept");
    tmux.keys(&["r", "Enter"]);
    tmux.wait_for("[3/3] a accept");
    tmux.keys(&["s", "Enter"]);
    let screen = tmux.wait_for("review exited");
    assert!(
        screen.contains("accepted 1, rejected 1, skipped 1"),
        "{screen}"
    );
    assert!(screen.contains("review exited 0"), "{screen}");

    assert_eq!(
        std::fs::read(&pending[0].0).unwrap(),
        new_alpha,
        "alpha accepted"
    );
    assert!(!pending[0].1.exists());
    assert_eq!(std::fs::read(&pending[1].0).unwrap(), original, "beta kept");
    assert!(!pending[1].1.exists(), "beta's .new rejected");
    assert_eq!(
        std::fs::read(&pending[2].0).unwrap(),
        original,
        "gamma kept"
    );
    assert!(pending[2].1.exists(), "gamma skipped");
}

#[test]
fn review_view_serves_the_drift_page_of_each_pending_case() {
    let dir = tempfile::tempdir().unwrap();
    let pending = three_pending(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_softprobe"))
        .args(["review", "--view", "--json"])
        .current_dir(dir.path())
        // No browser to open here: the pages are still served and printed.
        .env("PATH", "")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let announced: serde_json::Value = serde_json::from_str(&line).unwrap();
    let pages = announced["pages"].as_array().unwrap().clone();
    let client = {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
    };
    let mut totals = Vec::new();
    for page in &pages {
        let url = page["url"].as_str().unwrap();
        let data: serde_json::Value = client
            .get(format!("{url}case.json"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let field = &data["drift"]["hops"][0]["fields"][0];
        assert_eq!(field["field"], "body.total", "{data}");
        totals.push(field["actual"].clone());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(pages.len(), 3);
    assert_eq!(totals, vec![1500, 1501, 1502]);
    assert!(
        pending.iter().all(|(_, n)| n.exists()),
        "--view changes nothing"
    );
}
