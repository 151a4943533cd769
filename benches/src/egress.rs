//! Rows 2 and 3: one replayed outbound call through the egress proxy, serial, against a
//! direct call to a minimal hyper server and against wiremock serving the same bytes.

use std::sync::Arc;

use softprobe_runtime::case::Case;
use softprobe_runtime::proxy::{CertificateAuthority, EgressProxy, StoreBackend};
use softprobe_runtime::session::{InMemoryStore, NewSession, SessionStore};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    PRICE_PATH, RECORDED_HOST, Samples, price_body, serve_bytes_on_own_thread, timed,
};

/// Latencies of the three sides.
pub(crate) struct EgressResult {
    pub(crate) replay: Samples,
    pub(crate) hyper: Samples,
    pub(crate) wiremock: Samples,
}

async fn call(client: &reqwest::Client, url: &str) -> bytes::Bytes {
    let resp = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.bytes().await.expect("a response body")
}

async fn series(client: &reqwest::Client, url: &str, n: usize, out: &mut Samples) {
    for _ in 0..n {
        let (d, body) = timed(call(client, url)).await;
        assert_eq!(body, price_body(), "GET {url} answered other bytes");
        out.push(d);
    }
}

/// Runs `iterations` calls per side (after a warm-up), interleaved call by call.
pub(crate) async fn run(case: &Case, iterations: usize) -> EgressResult {
    let store: Arc<dyn SessionStore> = Arc::new(InMemoryStore::new());
    let session = store
        .create(NewSession::new(softprobe_runtime::Mode::Replay))
        .expect("a session");
    let id = session.id().to_owned();
    store
        .update(&id, &mut |state| {
            state.load_case(case.clone(), "bench-price").map(|_| ())
        })
        .expect("the bench case loads");
    // The egress on a thread of its own, as the harness runs it; the direct hyper server
    // and wiremock each run on one too.
    let egress = EgressProxy::builder()
        .threads(1)
        .ca(CertificateAuthority::generate().expect("a CA"))
        .backend(Arc::new(StoreBackend::new(store.clone())))
        .start()
        .await
        .expect("the egress proxy starts");
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress.uri_for_session(&id)).expect("a proxy URL"))
        .build()
        .expect("a proxied client");
    let direct = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a plain client");
    let hyper_addr = serve_bytes_on_own_thread(price_body());
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PRICE_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(price_body().to_vec(), "application/json"),
        )
        .mount(&mock)
        .await;

    let replay_url = format!("http://{RECORDED_HOST}{PRICE_PATH}");
    let hyper_url = format!("http://{hyper_addr}{PRICE_PATH}");
    let mock_url = format!("{}{PRICE_PATH}", mock.uri());
    let warm = (iterations / 10).max(5);
    let mut discard = Samples::default();
    series(&proxied, &replay_url, warm, &mut discard).await;
    series(&direct, &hyper_url, warm, &mut discard).await;
    series(&direct, &mock_url, warm, &mut discard).await;

    let mut result = EgressResult {
        replay: Samples::default(),
        hyper: Samples::default(),
        wiremock: Samples::default(),
    };
    // One call per side in turn, the order rotating, so a slow moment of the machine (this
    // VM's idle vCPUs wake slowly) lands on every side alike instead of on one block.
    for i in 0..iterations {
        for k in 0..3 {
            match (i + k) % 3 {
                0 => series(&proxied, &replay_url, 1, &mut result.replay).await,
                1 => series(&direct, &hyper_url, 1, &mut result.hyper).await,
                _ => series(&direct, &mock_url, 1, &mut result.wiremock).await,
            }
        }
    }
    egress.shutdown().await;
    result
}
