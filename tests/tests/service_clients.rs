//! The HTTP clients services build themselves, each sending its calls through the session's
//! egress proxy: reqwest 0.13 and 0.12, hyper-util's legacy client, ureq, and a service in
//! another process whose reqwest reads `HTTPS_PROXY` and `SSL_CERT_FILE`. Each is captured
//! against live upstreams (shipping over HTTP, payments over HTTPS), replayed with the
//! upstreams gone, and fails the replay as request drift when it pays twice the amount.
//!
//! `docs/clients.md` shows the regions between `// snippet: NAME` and `// end snippet`
//! markers; the last test fails when the page and these regions part.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use softprobe::{Mode, Run, Session};
use softprobe_e2e::{Upstreams, free_port, urls};

/// What the service asks payments for: the amount the case recorded, or twice that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Amount {
    Recorded,
    Doubled,
}

impl Amount {
    fn value(self) -> u32 {
        match self {
            Amount::Recorded => 1000,
            Amount::Doubled => 2000,
        }
    }

    fn form(self) -> String {
        format!("amount={}&currency=usd", self.value())
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A status and body text, or what the client said went wrong.
type Answer = Result<(u16, String), String>;

/// The client the service under test makes its calls with.
#[derive(Clone)]
enum Outbound {
    Reqwest013(softprobe::reqwest::Client),
    Reqwest012(reqwest012::Client),
    HyperUtil(Box<hyper_client::EgressClient>),
    Ureq(ureq::Agent),
}

impl Outbound {
    /// `GET url`, or `POST url` with a form body.
    async fn send(&self, url: String, form: Option<String>) -> Answer {
        match self {
            Outbound::Reqwest013(client) => {
                let req = match form {
                    Some(form) => client.post(url).header("content-type", FORM).body(form),
                    None => client.get(url),
                };
                let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
                let status = resp.status().as_u16();
                Ok((status, resp.text().await.map_err(|e| format!("{e:?}"))?))
            }
            Outbound::Reqwest012(client) => {
                let req = match form {
                    Some(form) => client.post(url).header("content-type", FORM).body(form),
                    None => client.get(url),
                };
                let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
                let status = resp.status().as_u16();
                Ok((status, resp.text().await.map_err(|e| format!("{e:?}"))?))
            }
            Outbound::HyperUtil(client) => client.send(&url, form).await,
            Outbound::Ureq(agent) => {
                let agent = agent.clone();
                // snippet: ureq-call
                // ureq blocks: an async service calls it on tokio's blocking pool.
                tokio::task::spawn_blocking(move || {
                    let resp = match form {
                        Some(form) => agent.post(&url).content_type(FORM).send(form),
                        None => agent.get(&url).call(),
                    }
                    .map_err(|e| e.to_string())?;
                    let status = resp.status().as_u16();
                    let body = resp.into_body().read_to_string();
                    Ok((status, body.map_err(|e| e.to_string())?))
                })
                .await
                .map_err(|e| e.to_string())?
                // end snippet
            }
        }
    }
}

#[derive(Clone)]
struct Order {
    http: Outbound,
    shipping: String,
    payments: String,
    amount: Amount,
}

/// `GET /order`: a shipping quote over HTTP, a payment over HTTPS, and what both said.
async fn order(State(o): State<Order>) -> axum::Json<Value> {
    let body = |answer: Answer| match answer {
        Ok((_, text)) => serde_json::from_str(&text).unwrap_or(json!(text)),
        Err(e) => json!({"error": e}),
    };
    let quote = body(
        o.http
            .send(format!("{}/shipping?zip=94107", o.shipping), None)
            .await,
    );
    let payment = body(
        o.http
            .send(
                format!("{}/v1/payment_intents", o.payments),
                Some(o.amount.form()),
            )
            .await,
    );
    if quote.get("quote").is_none() || payment.get("status").is_none() {
        return axum::Json(json!({"quote": quote, "payment": payment}));
    }
    axum::Json(json!({"shipping": quote["quote"], "payment": payment["status"]}))
}

/// The ports of one test's upstreams: fixed for the test, so the replay asks for the URLs the
/// capture recorded while nothing listens there any more.
#[derive(Debug, Clone, Copy)]
struct Ports {
    payments: u16,
    shipping: u16,
}

/// Calls `GET /order` of a service reached at `base` and checks what it answered.
async fn check_order(sp: &Session, base: &str, client: &str) {
    let answer: Value = sp
        .client()
        .get(format!("{base}/order"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"shipping": 499, "payment": "succeeded"}),
        "{client}: the service's calls went wrong"
    );
}

/// One run of an in-process service whose client `build` makes from the session.
fn run_in_process(
    case: &std::path::Path,
    client: &'static str,
    mode: Mode,
    amount: Amount,
    ports: Ports,
    build: fn(&Session) -> Outbound,
) -> Result<(), softprobe::Failure> {
    Run::new(case)
        .mode(mode)
        .name(format!("service_clients::{client}"))
        .run(move |sp: Session| async move {
            let _upstreams = match sp.mode() {
                Mode::Capture => Some(Upstreams::start(ports.payments, ports.shipping).await),
                _ => None,
            };
            let (payments, shipping) = urls(ports.payments, ports.shipping);
            let app = Router::new().route("/order", get(order)).with_state(Order {
                http: build(&sp),
                shipping,
                payments,
                amount,
            });
            let base = sp.serve(app).await;
            check_order(&sp, &base, client).await;
        })
}

/// Capture, offline replay, and drift, for one way of running the service.
fn cycle(
    client: &str,
    run: impl Fn(&std::path::Path, Mode, Amount) -> Result<(), softprobe::Failure>,
    ports: Ports,
) {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join(format!("{client}.case.json"));
    run(&case, Mode::Capture, Amount::Recorded)
        .unwrap_or_else(|f| panic!("{client}: the capture fails:\n{f}"));

    // Both calls were recorded, the HTTPS one inside the CONNECT tunnel.
    let recorded = softprobe_runtime::case::Case::read(&case).unwrap();
    let outbound: Vec<String> = recorded
        .exchanges()
        .unwrap()
        .iter()
        .filter(|e| e.direction == softprobe_runtime::case::Direction::Outbound)
        .map(|e| format!("{} {}", e.method, e.url()))
        .collect();
    let (payments, shipping) = urls(ports.payments, ports.shipping);
    assert_eq!(
        outbound,
        vec![
            format!("GET {shipping}/shipping?zip=94107"),
            format!("POST {payments}/v1/payment_intents"),
        ],
        "{client}: the case holds the service's two calls"
    );

    // Nothing listens on the upstream ports any more: the case answers.
    run(&case, Mode::Replay, Amount::Recorded)
        .unwrap_or_else(|f| panic!("{client}: the offline replay fails:\n{f}"));

    // A service that pays twice the amount fails, naming the field and both values.
    let failure = run(&case, Mode::Replay, Amount::Doubled)
        .expect_err("a doubled payment must fail the replay")
        .to_string();
    let expected = format!(
        "outbound POST {payments}/v1/payment_intents (hop 2 of 2): $.amount: recorded \"1000\", sent \"2000\""
    );
    assert!(failure.contains(&expected), "{client}:\n{failure}");
}

fn in_process(client: &'static str, build: fn(&Session) -> Outbound) {
    let ports = Ports {
        payments: free_port(),
        shipping: free_port(),
    };
    cycle(
        client,
        |case, mode, amount| run_in_process(case, client, mode, amount, ports, build),
        ports,
    );
}

// snippet: reqwest-0.13
/// reqwest 0.13: the session's own client, with the proxy, the session and the proxy CA set.
fn reqwest013_client(sp: &Session) -> softprobe::reqwest::Client {
    sp.http_client()
}
// end snippet

// snippet: reqwest-0.12
/// reqwest 0.12 (renamed `reqwest012` in this crate's manifest): the proxy URL carries the
/// session in its credentials, and the proxy CA is added to the roots.
fn reqwest012_client(sp: &Session) -> reqwest012::Client {
    let proxy = reqwest012::Proxy::all(sp.egress_proxy_url()).unwrap();
    let ca = reqwest012::Certificate::from_pem(sp.ca_cert_pem().as_bytes()).unwrap();
    reqwest012::Client::builder()
        .proxy(proxy)
        .add_root_certificate(ca)
        .build()
        .unwrap()
}
// end snippet

// snippet: ureq
/// ureq 3: a CONNECT proxy with the session in its credentials, and the proxy CA as the only
/// root (every HTTPS call meets the proxy's certificates).
fn ureq_agent(sp: &Session) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let proxy = ureq::Proxy::new(&sp.egress_proxy_url()).unwrap();
    let ca = Certificate::from_pem(sp.ca_cert_pem().as_bytes()).unwrap();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&[ca]))
        .build();
    ureq::Agent::config_builder()
        .proxy(Some(proxy))
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .into()
}
// end snippet

#[test]
fn reqwest_0_13_from_the_session() {
    in_process("reqwest-0.13", |sp| {
        Outbound::Reqwest013(reqwest013_client(sp))
    });
}

#[test]
fn reqwest_0_12_with_the_proxy_url_and_ca() {
    in_process("reqwest-0.12", |sp| {
        Outbound::Reqwest012(reqwest012_client(sp))
    });
}

#[test]
fn hyper_util_legacy_client_absolute_form_and_connect() {
    in_process("hyper-util", |sp| {
        Outbound::HyperUtil(Box::new(hyper_client::EgressClient::new(sp)))
    });
}

#[test]
fn ureq_blocking_on_the_blocking_pool() {
    in_process("ureq", |sp| Outbound::Ureq(ureq_agent(sp)));
}

/// hyper-util's legacy client through the egress proxy: plain HTTP as absolute-form requests
/// on a connection to the proxy, HTTPS through a `CONNECT` tunnel (hyper-util's `Tunnel`)
/// with TLS over it (hyper-rustls) trusting the proxy CA.
mod hyper_client {
    // snippet: hyper-util
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};
    use hyper::Uri;
    use hyper::header::{CONTENT_TYPE, HeaderValue, PROXY_AUTHORIZATION};
    use hyper_rustls::HttpsConnector;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::proxy::Tunnel;
    use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    use softprobe::Session;

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    /// Connects every request to the egress proxy: `http://` ones on a plain connection the
    /// client then speaks absolute-form on, `https://` ones through a `CONNECT` tunnel.
    #[derive(Clone)]
    pub(crate) struct ViaEgress {
        proxy: Uri,
        auth: HeaderValue,
        tcp: HttpConnector,
    }

    /// A connection to the proxy; `absolute` tells the client to send absolute-form URIs.
    pub(crate) struct ProxyConn {
        io: TokioIo<tokio::net::TcpStream>,
        absolute: bool,
    }

    impl tower_service::Service<Uri> for ViaEgress {
        type Response = ProxyConn;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<ProxyConn, BoxError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, dst: Uri) -> Self::Future {
            let (proxy, auth, mut tcp) = (self.proxy.clone(), self.auth.clone(), self.tcp.clone());
            Box::pin(async move {
                if dst.scheme_str() == Some("https") {
                    let mut tunnel = Tunnel::new(proxy, tcp).with_auth(auth);
                    let io = tower_service::Service::call(&mut tunnel, dst).await?;
                    Ok(ProxyConn {
                        io,
                        absolute: false,
                    })
                } else {
                    let io = tower_service::Service::call(&mut tcp, proxy).await?;
                    Ok(ProxyConn { io, absolute: true })
                }
            })
        }
    }

    impl Connection for ProxyConn {
        fn connected(&self) -> Connected {
            self.io.connected().proxy(self.absolute)
        }
    }

    impl hyper::rt::Read for ProxyConn {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl hyper::rt::Write for ProxyConn {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// The legacy client over [`ViaEgress`], and the credentials its absolute-form requests
    /// carry (the tunnel's `CONNECT` carries them for HTTPS).
    #[derive(Clone)]
    pub(crate) struct EgressClient {
        client: Client<HttpsConnector<ViaEgress>, Full<Bytes>>,
        auth: HeaderValue,
    }

    impl EgressClient {
        pub(crate) fn new(sp: &Session) -> EgressClient {
            let auth = HeaderValue::from_str(&sp.proxy_authorization()).unwrap();
            let proxy = format!("http://{}", sp.egress_proxy_addr())
                .parse()
                .unwrap();
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(sp.ca_cert_pem().as_bytes()).unwrap())
                .unwrap();
            let tls = rustls::ClientConfig::builder_with_provider(
                rustls::crypto::ring::default_provider().into(),
            )
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(ViaEgress {
                    proxy,
                    auth: auth.clone(),
                    tcp: HttpConnector::new(),
                });
            let client = Client::builder(TokioExecutor::new()).build(connector);
            EgressClient { client, auth }
        }

        /// `GET url`, or `POST url` with a form body.
        pub(crate) async fn send(
            &self,
            url: &str,
            form: Option<String>,
        ) -> Result<(u16, String), String> {
            let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
            let mut req = hyper::Request::builder().uri(&uri);
            if uri.scheme_str() == Some("http") {
                req = req.header(PROXY_AUTHORIZATION, self.auth.clone());
            }
            let req = match form {
                Some(form) => req
                    .method("POST")
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Full::new(Bytes::from(form))),
                None => req.method("GET").body(Full::new(Bytes::new())),
            }
            .map_err(|e| e.to_string())?;
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok((
                status,
                String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            ))
        }
    }
    // end snippet
}

/// The service in a process of its own (`tests/src/bin/env_client_service.rs`), started with
/// the session's environment, behind an ingress for the session.
fn run_child(
    case: &std::path::Path,
    mode: Mode,
    amount: Amount,
    ports: Ports,
) -> Result<(), softprobe::Failure> {
    Run::new(case)
        .mode(mode)
        .name("service_clients::env-child")
        .run(move |sp: Session| async move {
            let _upstreams = match sp.mode() {
                Mode::Capture => Some(Upstreams::start(ports.payments, ports.shipping).await),
                _ => None,
            };
            let (payments, shipping) = urls(ports.payments, ports.shipping);
            // snippet: command
            // HTTP_PROXY / HTTPS_PROXY name the egress proxy with this session, SSL_CERT_FILE
            // a file with the proxy CA: the service needs no code for either.
            let mut service = sp
                .tokio_command(env!("CARGO_BIN_EXE_env_client_service"))
                .env("SHIPPING_URL", &shipping)
                .env("PAYMENTS_URL", &payments)
                .env("AMOUNT", amount.value().to_string())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            // end snippet
            let stdout = service.stdout.take().unwrap();
            let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("the service says where it listens within 30 s")
                .unwrap()
                .expect("the service prints its address");
            let url = line.strip_prefix("listening on ").unwrap().to_owned();
            let base = sp.target(&url).await;
            check_order(&sp, &base, "env-child").await;
            service.kill().await.unwrap();
        })
}

#[test]
fn a_service_process_that_reads_its_proxy_and_roots_from_the_environment() {
    let ports = Ports {
        payments: free_port(),
        shipping: free_port(),
    };
    cycle(
        "env-child",
        |case, mode, amount| run_child(case, mode, amount, ports),
        ports,
    );
}

/// A test whose client names its session (built from `egress_proxy_url()`) is never among the
/// suspects of a call that names none: only the test that made it fails.
#[test]
fn a_call_naming_no_session_fails_only_the_tests_whose_clients_name_none() {
    use std::sync::{Arc, Barrier};
    let dir = tempfile::tempdir().unwrap();
    let steps = Arc::new(Barrier::new(2));
    let named = {
        let (case, steps) = (dir.path().join("named.case.json"), steps.clone());
        std::thread::spawn(move || {
            Run::new(case)
                .mode(Mode::Capture)
                .name("service_clients::named")
                .run(move |sp: Session| {
                    steps.wait(); // both tests are open
                    let _client = reqwest012_client(&sp);
                    steps.wait(); // the client is built
                    steps.wait(); // the other test's call was refused
                })
        })
    };
    let anonymous = {
        let (case, steps) = (dir.path().join("anonymous.case.json"), steps.clone());
        std::thread::spawn(move || {
            Run::new(case)
                .mode(Mode::Capture)
                .name("service_clients::anonymous")
                .run(move |sp: Session| async move {
                    steps.wait();
                    steps.wait();
                    let proxy = format!("http://{}", sp.egress_proxy_addr());
                    let client = softprobe::reqwest::Client::builder()
                        .proxy(softprobe::reqwest::Proxy::all(proxy).unwrap())
                        .build()
                        .unwrap();
                    let status = client
                        .get(format!("http://127.0.0.1:{}/quote", free_port()))
                        .send()
                        .await
                        .unwrap()
                        .status();
                    steps.wait();
                    assert_eq!(status, 421, "a call naming no session is refused");
                })
        })
    };
    let named = named.join().unwrap();
    let anonymous = anonymous.join().unwrap();
    assert!(
        named.is_ok(),
        "the test whose client names its session was blamed: {named:?}"
    );
    let refused = anonymous
        .expect_err("the test that made the call fails")
        .to_string();
    assert!(refused.contains("without naming a session"), "{refused}");
}

/// Set in the child process of the in-process environment test.
const ENV_CHILD: &str = "SOFTPROBE_SERVICE_CLIENTS_ENV_CHILD";

/// One run of an in-process service whose reqwest reads `HTTPS_PROXY` and `SSL_CERT_FILE`,
/// which the process environment names from start.
fn run_env_lease(
    case: &std::path::Path,
    mode: Mode,
    amount: Amount,
    ports: Ports,
) -> Result<(), softprobe::Failure> {
    Run::new(case)
        .mode(mode)
        .name("service_clients::env-lease")
        .run(move |sp: Session| async move {
            let _upstreams = match sp.mode() {
                Mode::Capture => Some(Upstreams::start(ports.payments, ports.shipping).await),
                _ => None,
            };
            let (payments, shipping) = urls(ports.payments, ports.shipping);
            // snippet: proxy-env
            // The process environment names the egress proxy without a session and a CA file
            // from start (.cargo/config.toml [env]). While the guard lives, the calls that name
            // no session are this test's; the CA exists once the first test started.
            let _env = sp.proxy_env();
            let ca_file = std::env::var_os("SSL_CERT_FILE").expect("SSL_CERT_FILE is set");
            sp.write_ca_cert(&ca_file).unwrap();
            // end snippet
            let app = Router::new().route("/order", get(order)).with_state(Order {
                // As the service builds it: from the environment.
                http: Outbound::Reqwest013(softprobe::reqwest::Client::new()),
                shipping,
                payments,
                amount,
            });
            let base = sp.serve(app).await;
            check_order(&sp, &base, "env-lease").await;
        })
}

/// The process environment must name the proxy before any thread starts (softprobe never
/// writes it), so the test runs itself again as a child process given that environment.
#[test]
fn a_service_in_this_process_that_reads_its_proxy_and_roots_from_the_environment() {
    const NAME: &str =
        "a_service_in_this_process_that_reads_its_proxy_and_roots_from_the_environment";
    if std::env::var_os(ENV_CHILD).is_some() {
        let ports = Ports {
            payments: free_port(),
            shipping: free_port(),
        };
        cycle(
            "env-lease",
            |case, mode, amount| run_env_lease(case, mode, amount, ports),
            ports,
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("proxy-ca.pem");
    // A file that is no CA of softprobe's is never replaced.
    std::fs::write(&ca_file, "a system bundle\n").unwrap();
    let checked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refusal = Run::new(dir.path().join("refused.case.json"))
        .mode(Mode::Capture)
        .name("service_clients::write-ca-refused")
        .run({
            let (ca_file, checked) = (ca_file.clone(), checked.clone());
            move |sp: Session| {
                let err = sp
                    .write_ca_cert(&ca_file)
                    .expect_err("a foreign file is kept");
                let text = err.to_string();
                assert!(
                    text.contains(&ca_file.display().to_string())
                        && text.contains("holds something else than a proxy CA"),
                    "{text}"
                );
                // A CA an earlier run wrote is replaced by this run's.
                let earlier = ca_file.with_file_name("earlier-ca.pem");
                let mark = "# softprobe egress proxy CA (written by Session::write_ca_cert)";
                std::fs::write(&earlier, format!("{mark}\nan earlier CA\n")).unwrap();
                sp.write_ca_cert(&earlier).unwrap();
                assert_eq!(
                    std::fs::read_to_string(&earlier).unwrap(),
                    format!("{mark}\n{}", sp.ca_cert_pem())
                );
                checked.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
    assert!(
        checked.load(std::sync::atomic::Ordering::SeqCst),
        "the refusal was not checked: {refusal:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&ca_file).unwrap(),
        "a system bundle\n"
    );
    std::fs::remove_file(&ca_file).unwrap();

    let egress = format!("127.0.0.1:{}", free_port());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(ENV_CHILD, "1")
        .env("SOFTPROBE_EGRESS_ADDR", &egress)
        .env("HTTP_PROXY", format!("http://{egress}"))
        .env("HTTPS_PROXY", format!("http://{egress}"))
        .env("SSL_CERT_FILE", &ca_file)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("SOFTPROBE_RUNTIME_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `// snippet: NAME` region above and in the service binary appears word for word in docs/clients.md, under a
/// `<!-- snippet: NAME -->` line, and the page shows no snippet that is not here.
#[test]
fn the_clients_page_shows_the_code_these_tests_run() {
    let mut regions = snippets(include_str!("service_clients.rs"));
    regions.extend(snippets(include_str!("../src/bin/env_client_service.rs")));
    let page_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/clients.md");
    let page = std::fs::read_to_string(page_path).unwrap();
    assert!(regions.len() >= 7, "{regions:?}");
    for (name, code) in &regions {
        let marker = format!("<!-- snippet: {name} -->\n```rust\n{code}```\n");
        assert!(
            page.contains(&marker),
            "docs/clients.md does not show the snippet {name:?} as the test runs it; it should read:\n{marker}"
        );
    }
    for line in page.lines().filter(|l| l.starts_with("<!-- snippet: ")) {
        let name = line
            .trim_start_matches("<!-- snippet: ")
            .trim_end_matches(" -->");
        assert!(
            regions.iter().any(|(n, _)| n == name),
            "docs/clients.md shows a snippet {name:?} that no test runs"
        );
    }
}

/// The `// snippet: NAME` … `// end snippet` regions of `source`, dedented.
fn snippets(source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in source.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("// snippet: ") {
            open = Some((name.trim().to_owned(), Vec::new()));
        } else if trimmed == "// end snippet" {
            if let Some((name, lines)) = open.take() {
                let indent = lines
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.len() - l.trim_start().len())
                    .min()
                    .unwrap_or(0);
                let code: String = lines
                    .iter()
                    .map(|l| format!("{}\n", l.get(indent..).unwrap_or("").trim_end()))
                    .collect();
                out.push((name, code));
            }
        } else if let Some((_, lines)) = &mut open {
            lines.push(line);
        }
    }
    out
}
