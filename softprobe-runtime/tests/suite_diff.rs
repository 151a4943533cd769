//! `softprobe suite diff --baseline GLOB --current GLOB`: case files added and removed, and
//! the hops added or removed in the cases both sets hold.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/cases")
        .join(name)
}

fn diff(base: &Path, cur: &Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_softprobe"))
        .args(["--json", "suite", "diff", "--baseline"])
        .arg(base.join("*.case.json"))
        .arg("--current")
        .arg(cur.join("*.case.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")),
    )
}

#[test]
fn added_and_removed_cases_and_hops() {
    let dir = tempfile::tempdir().unwrap();
    let (base, cur) = (dir.path().join("base"), dir.path().join("cur"));
    std::fs::create_dir_all(&base).unwrap();
    std::fs::create_dir_all(&cur).unwrap();
    for f in ["checkout.case.json", "minimal.case.json"] {
        std::fs::copy(fixture(f), base.join(f)).unwrap();
    }
    std::fs::copy(
        fixture("repeated-call.case.json"),
        cur.join("repeated-call.case.json"),
    )
    .unwrap();
    // The current checkout no longer calls Stripe but asks for shipping twice.
    let mut case: Value =
        serde_json::from_slice(&std::fs::read(fixture("checkout.case.json")).unwrap()).unwrap();
    let spans = case["traces"][0]["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array_mut()
        .unwrap();
    let mut again = spans[2].clone();
    again["spanId"] = json!("1c8b7a6f5e4d3c2b");
    spans.remove(1);
    spans.push(again);
    std::fs::write(
        cur.join("checkout.case.json"),
        serde_json::to_vec(&case).unwrap(),
    )
    .unwrap();

    let (code, out) = diff(&base, &cur);
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["removedCases"], json!(["minimal.case.json"]));
    assert_eq!(out["addedCases"], json!(["repeated-call.case.json"]));
    assert_eq!(
        out["changed"],
        json!([{
            "case": "checkout.case.json",
            "added": ["outbound GET fragment/shipping"],
            "removed": ["outbound POST api.stripe.com/v1/payment_intents"],
        }])
    );

    let (code, out) = diff(&base, &base);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["changed"], json!([]));
}
