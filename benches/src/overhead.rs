//! Row 1: what one test costs beyond its own work. Ours is a whole `softprobe::Run` replay
//! (session start, case load, one replayed call, verdict and teardown); the peer is what a
//! wiremock test does (runtime, `MockServer::start`, one mounted `Mock`, one call, drop).

use std::path::Path;
use std::time::Instant;

use softprobe::{Mode, Run, Session};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{PRICE_PATH, RECORDED_HOST, Samples, price_body};

/// How each test builds its HTTP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clients {
    /// As written in the docs: `sp.http_client()`, `reqwest::Client::new()`-like.
    Default,
    /// Without the system root store (`tls_certs_only`), which neither call needs: the
    /// softprobe client trusts only the proxy CA, the wiremock one speaks plain HTTP.
    NoSystemRoots,
}

/// One softprobe test: replays the single recorded call of the case at `case_path`.
fn softprobe_test(case_path: &Path, clients: Clients) {
    Run::new(case_path)
        .mode(Mode::Replay)
        .name("bench_overhead")
        .run(move |sp: Session| async move {
            let client = match clients {
                Clients::Default => sp.http_client(),
                Clients::NoSystemRoots => sp
                    .http_client_builder()
                    .tls_certs_only([])
                    .build()
                    .expect("a client trusting the proxy CA only"),
            };
            let resp = client
                .get(format!("http://{RECORDED_HOST}{PRICE_PATH}"))
                .header("accept", "application/json")
                .send()
                .await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            assert_eq!(status, 200, "the replayed call answered {status}");
            assert_eq!(body, price_body(), "the replayed body differs");
            Ok::<(), reqwest::Error>(())
        })
        .expect("the replay of the bench case passes");
}

/// One wiremock test, on its own runtime as `#[tokio::test]` gives it.
fn wiremock_test(clients: Clients) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(PRICE_PATH))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(price_body().to_vec(), "application/json"),
            )
            .mount(&server)
            .await;
        let mut builder = reqwest::Client::builder().no_proxy();
        if clients == Clients::NoSystemRoots {
            builder = builder.tls_certs_only([]);
        }
        let resp = builder
            .build()
            .expect("a plain client builds")
            .get(format!("{}{PRICE_PATH}", server.uri()))
            .header("accept", "application/json")
            .send()
            .await
            .expect("wiremock answers");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.expect("a body"), price_body());
    });
}

/// Per-test time of both sides, interleaved in rounds so drift of the machine hits both.
pub(crate) fn run(case_path: &Path, iterations: usize, clients: Clients) -> (Samples, Samples) {
    // The first test of a process starts the shared runtime and proxies once; a suite pays
    // it once too, so it is warm-up here, like wiremock's first server.
    softprobe_test(case_path, clients);
    wiremock_test(clients);
    let (mut ours, mut peer) = (Samples::default(), Samples::default());
    let rounds = 5;
    let per_round = iterations.div_ceil(rounds);
    for _ in 0..rounds {
        for _ in 0..per_round {
            let start = Instant::now();
            softprobe_test(case_path, clients);
            ours.push(start.elapsed());
        }
        for _ in 0..per_round {
            let start = Instant::now();
            wiremock_test(clients);
            peer.push(start.elapsed());
        }
    }
    (ours, peer)
}
