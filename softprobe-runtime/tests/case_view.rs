//! The case page in a real browser: `softprobe view` on the example case shows every hop with
//! its timing, opens a hop's detail, highlights the drift of a known `.new`; the runtime's
//! `/ui` shows a hop recorded after the page was opened. Screenshots land in the test's
//! temporary target dir, and in `docs/images/` with `SOFTPROBE_UPDATE_SCREENSHOTS=1`.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use softprobe_runtime::case::{Body, Case, Direction};
use support::browser::Browser;

/// A running `softprobe view`, killed when dropped.
struct Viewer {
    child: Child,
    url: String,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn view(args: &[&str]) -> Viewer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_softprobe"))
        .arg("view")
        .args(args)
        .current_dir(support::root())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "view prints its URL first: {line:?}"
    );
    Viewer { child, url }
}

fn example() -> PathBuf {
    support::root().join("fixtures/cases/checkout-captured.case.json")
}

/// Where a screenshot goes: the test's target dir, and the docs when asked to update them.
fn save_screenshot(b: &mut Browser, name: &str) {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    b.screenshot(&out);
    let png = std::fs::read(&out).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{name} is a real picture"
    );
    if std::env::var_os("SOFTPROBE_UPDATE_SCREENSHOTS").is_some() {
        let docs = support::root().join("docs/images").join(name);
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::copy(&out, docs).unwrap();
    }
}

/// Texts of every element matching a CSS selector.
fn texts(b: &mut Browser, selector: &str) -> Vec<String> {
    let v = b.eval(&format!(
        "[...document.querySelectorAll({})].map(e => e.textContent)",
        Value::String(selector.to_owned())
    ));
    serde_json::from_value(v).unwrap()
}

#[test]
fn view_shows_every_hop_with_timing_and_opens_one() {
    let case = Case::read(example()).unwrap();
    let hops = softprobe_runtime::case::diff::in_order(case.exchanges().unwrap());
    assert_eq!(hops.len(), 3);
    let viewer = view(&["fixtures/cases/checkout-captured.case.json"]);
    let mut b = Browser::start();
    b.size(1280, 800);
    b.goto(&viewer.url);
    b.wait_for("document.body.dataset.loaded === 'true'", "the loaded case");
    let urls = texts(&mut b, "#hops > li.hop .url");
    let methods = texts(&mut b, "#hops > li.hop .method");
    let statuses = texts(&mut b, "#hops > li.hop .status");
    assert_eq!(urls.len(), 3, "{urls:?}");
    for (i, ex) in hops.iter().enumerate() {
        let want = match ex.direction {
            Direction::Inbound => ex.path.clone(),
            Direction::Outbound => ex.url(),
        };
        assert_eq!(urls[i], want, "hop {i}");
        assert_eq!(methods[i], ex.method);
        assert_eq!(statuses[i], ex.status.unwrap().to_string());
    }
    // Timing bars on one axis: the inbound request spans the calls it makes.
    let bars: Vec<(f64, f64)> = serde_json::from_value(b.eval(
        "[...document.querySelectorAll('#hops > li.hop .bar')].map(e => [parseFloat(e.style.left), parseFloat(e.style.width)])",
    ))
    .unwrap();
    assert_eq!(bars[0].0, 0.0);
    assert!(bars[1].0 > 0.0 && bars[2].0 > bars[1].0, "{bars:?}");
    assert!(
        bars.iter().all(|(l, w)| *w > 0.0 && l + w <= 100.01),
        "{bars:?}"
    );
    assert_eq!(texts(&mut b, "#hops > li.hop .ms").len(), 3);

    // Open the payment call with the keyboard: down once from the top, Enter.
    b.key("j");
    b.key("j");
    b.key("Enter");
    b.wait_for(
        "document.getElementById('detail').dataset.hop === '1'",
        "hop 1 opened",
    );
    let detail = b
        .eval("document.getElementById('detail').innerText")
        .as_str()
        .unwrap()
        .to_owned();
    let pay = &hops[1];
    assert!(detail.contains(&pay.trace_id.to_string()), "{detail}");
    assert!(detail.contains(&pay.span_id.to_string()), "{detail}");
    assert!(
        detail.contains("\"pi_de61f4595b54b30d\""),
        "the response body is shown: {detail}"
    );
    assert!(
        detail.contains("content-type"),
        "headers are shown: {detail}"
    );
    save_screenshot(&mut b, "case-view.png");

    // Search and filters narrow the list; Escape closes the detail.
    b.eval("(() => { const s = document.getElementById('search'); s.value = 'quoteId'; s.dispatchEvent(new Event('input')); })()");
    assert_eq!(
        texts(&mut b, "#hops > li.hop .url").len(),
        1,
        "a body search finds the shipping quote"
    );
    b.eval("(() => { const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); const d = document.getElementById('filter-direction'); d.value = 'outbound'; d.dispatchEvent(new Event('input')); })()");
    assert_eq!(texts(&mut b, "#hops > li.hop .url").len(), 2);
    b.key("Escape");
    b.wait_for(
        "document.getElementById('detail').hidden",
        "the detail closed",
    );

    // `t` switches between light and dark.
    let light = b.eval("getComputedStyle(document.body).backgroundColor");
    b.key("t");
    let dark = b.eval("getComputedStyle(document.body).backgroundColor");
    assert_eq!(
        (light.as_str(), dark.as_str()),
        (Some("rgb(255, 255, 255)"), Some("rgb(20, 23, 29)"))
    );
    b.key("t");

    // Narrow window: still every hop, no horizontal scrolling of the page.
    b.size(420, 800);
    b.goto("about:blank");
    b.goto(&format!("{}#hop=0", viewer.url));
    b.wait_for(
        "document.getElementById('detail').dataset.hop === '0'",
        "hop 0 opened from the URL",
    );
    let overflow =
        b.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth");
    assert_eq!(overflow, json!(0), "no sideways scrolling at 420 px");
    save_screenshot(&mut b, "case-view-narrow.png");
}

/// The example case as a failing replay would have left it: the total changed, the shipping
/// quote never asked for.
fn drifted_copy(dir: &Path) -> (PathBuf, PathBuf) {
    let case_path = dir.join("checkout-happy-path.case.json");
    std::fs::copy(example(), &case_path).unwrap();
    let mut hops = Case::read(&case_path).unwrap().exchanges().unwrap();
    hops.retain(|h| !h.path.starts_with("/shipping"));
    let inbound = hops
        .iter_mut()
        .find(|h| h.direction == Direction::Inbound)
        .unwrap();
    let body = inbound.response_body.as_ref().unwrap().as_text().unwrap();
    assert!(body.contains("\"total\":1499"), "{body}");
    inbound.response_body = Some(Body::Text(body.replace("\"total\":1499", "\"total\":1549")));
    let mut new = Case::new("checkout-happy-path", "2026-12-03T12:00:00Z");
    new.push_exchanges(&hops);
    let new_path = dir.join("checkout-happy-path.case.json.new");
    new.write(&new_path).unwrap();
    (case_path, new_path)
}

#[test]
fn drift_against_a_new_is_highlighted() {
    let dir = tempfile::tempdir().unwrap();
    let (case_path, _) = drifted_copy(dir.path());
    let viewer = view(&[case_path.to_str().unwrap()]);
    let mut b = Browser::start();
    b.size(1280, 800);
    b.goto(&viewer.url);
    b.wait_for("document.body.dataset.loaded === 'true'", "the loaded case");
    b.wait_for(
        "!document.getElementById('drift-pane').hidden",
        "the drift tab, opened first",
    );
    let rows: Vec<(String, String)> = serde_json::from_value(b.eval(
        "[...document.querySelectorAll('tr.drift-row')].map(r => [r.dataset.change, r.querySelector('.hop-label').textContent])",
    ))
    .unwrap();
    let changes: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(changes, vec!["changed", "same", "removed"], "{rows:?}");
    assert_eq!(rows[0].1, "inbound POST /checkout");
    assert!(rows[2].1.contains("/shipping"), "{rows:?}");
    let fields = texts(&mut b, "tr.drift-field .field");
    let expected = texts(&mut b, "tr.drift-field .expected");
    let actual = texts(&mut b, "tr.drift-field .actual");
    assert_eq!(fields, vec!["body.total"]);
    assert_eq!((expected[0].as_str(), actual[0].as_str()), ("1499", "1549"));
    let tab = b.eval("document.getElementById('tab-drift').textContent");
    assert_eq!(tab, json!("Drift (1 changed, 0 added, 1 removed)"));
    save_screenshot(&mut b, "case-view-drift.png");

    // Without the `.new` there is no drift tab.
    std::fs::remove_file(dir.path().join("checkout-happy-path.case.json.new")).unwrap();
    b.goto("about:blank");
    b.goto(&format!("{}#hop=0", viewer.url));
    b.wait_for(
        "document.getElementById('detail').dataset.hop === '0'",
        "hop 0",
    );
    assert_eq!(
        b.eval("document.getElementById('tab-drift').hidden"),
        json!(true)
    );
}

#[test]
fn a_missing_case_is_refused_with_its_name() {
    let (code, _, stderr) = support::run({
        let mut c = support::cli("http://127.0.0.1:9");
        c.args(["view", "no/such.case.json"]);
        c
    });
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("no/such.case.json"), "{stderr}");
}

fn post_hop(base: &str, token: &str, session: &str, path: &str, span_id: &str) {
    let hop = support::Hop {
        span_id,
        response: Some((
            200,
            vec![("content-type", "application/json")],
            r#"{"ok":true}"#,
        )),
        ..support::Hop::outbound(session, "GET", "api.example.com", path)
    };
    support::install_crypto_provider();
    let resp = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{base}/v1/traces"))
        .bearer_auth(token)
        .json(&support::traces(vec![hop.span()]))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}

#[test]
fn the_runtime_ui_shows_hops_as_they_are_recorded() {
    let token = "ui-test-token";
    let rt = support::spawn_runtime(&[("SOFTPROBE_API_TOKEN", token)], Default::default());
    support::install_crypto_provider();
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    // The data is behind the token; the page itself holds none.
    let denied = client
        .get(format!("{}/ui/api/sessions", rt.base))
        .send()
        .unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    let page = client.get(format!("{}/ui", rt.base)).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let created: Value = client
        .post(format!("{}/v1/sessions", rt.base))
        .bearer_auth(token)
        .json(&json!({"mode": "capture"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let session = created["sessionId"].as_str().unwrap().to_owned();
    post_hop(&rt.base, token, &session, "/v1/first", "00000000000000a1");

    let mut b = Browser::start();
    b.size(1280, 800);
    b.goto(&format!("{}/ui#token={token}", rt.base));
    b.wait_for(
        &format!("document.querySelector('#session-list li[data-session=\"{session}\"]')"),
        "the capture session",
    );
    b.wait_for(
        "document.querySelectorAll('#hops > li.hop').length === 1",
        "the first hop",
    );
    let mode = b.eval("document.querySelector('#session-list li .muted').textContent");
    assert!(
        mode.as_str().unwrap().starts_with("capture · 1 hops"),
        "{mode}"
    );

    // Recorded after the page was opened: it arrives without a reload.
    b.eval("window.__same_page = true");
    post_hop(&rt.base, token, &session, "/v1/second", "00000000000000a2");
    b.wait_for(
        "document.querySelectorAll('#hops > li.hop').length === 2",
        "the second hop",
    );
    assert_eq!(b.eval("window.__same_page"), json!(true), "no reload");
    let urls = texts(&mut b, "#hops > li.hop .url");
    assert!(urls.iter().any(|u| u.ends_with("/v1/second")), "{urls:?}");
    save_screenshot(&mut b, "runtime-ui.png");

    // A wrong token is asked again instead of showing anything.
    let mut other = Browser::start();
    other.goto(&format!("{}/ui#token=wrong", rt.base));
    other.wait_for(
        "!document.getElementById('token-form').hidden",
        "the token form",
    );
    assert_eq!(
        other.eval("document.querySelectorAll('#hops > li.hop').length"),
        json!(0)
    );
}
