//! The other side of the proxies: an echo upstream (plain or TLS), a small application that
//! calls out through the egress proxy while propagating trace context, and a rustls client
//! that speaks through `CONNECT`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use softprobe_runtime::proxy::CertificateAuthority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A server that stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes the listener, so the port refuses connections.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub type Handler = Arc<
    dyn Fn(
            http::Request<Bytes>,
        ) -> std::pin::Pin<Box<dyn Future<Output = http::Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// Serves `handler` on a loopback port, optionally over TLS with `tls`.
pub async fn serve(handler: Handler, tls: Option<Arc<rustls::ServerConfig>>) -> TestServer {
    super::install_crypto_provider();
    let listener = TcpListener::bind(super::localhost()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            let stream = tokio::select! {
                _ = &mut stop_rx => break,
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(_) => continue,
                },
            };
            let handler = handler.clone();
            let counter = counter.clone();
            let tls = tls.clone();
            conns.push(tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        Ok::<_, Infallible>(handler(http::Request::from_parts(parts, bytes)).await)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(cfg) => {
                        if let Ok(tls) = tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                        }
                    }
                }
            }));
        }
        // Dropping the listener closes the port; abort keep-alive connections too.
        for c in conns {
            c.abort();
        }
    });
    TestServer {
        addr,
        hits,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

/// An upstream that answers every request with a JSON description of it.
pub fn echo_handler() -> Handler {
    Arc::new(|req: http::Request<Bytes>| {
        Box::pin(async move {
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                    )
                })
                .collect();
            let body = json!({
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "query": req.uri().query(),
                "version": format!("{:?}", req.version()),
                "headers": headers,
                "body": String::from_utf8_lossy(req.body()),
            });
            http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("x-upstream", "echo")
                .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
                .unwrap()
        })
    })
}

/// An upstream answering a fixed price list: stable bodies, so a replayed answer can be
/// compared byte for byte with the captured one.
pub fn price_handler() -> Handler {
    Arc::new(|req: http::Request<Bytes>| {
        Box::pin(async move {
            let item = req.uri().query().unwrap_or("").to_owned();
            let body = json!({"item": item, "price": 1299, "currency": "EUR"});
            http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("set-cookie", "upstream-secret=1")
                .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
                .unwrap()
        })
    })
}

pub async fn echo() -> TestServer {
    serve(echo_handler(), None).await
}

/// The application under test: `GET /checkout` calls `{upstream}/price?item=42` through the
/// egress proxy, propagating `traceparent` and `tracestate` as OpenTelemetry would, and
/// (misbehaving on purpose) the session header too.
pub async fn app(egress: String, upstream: String) -> TestServer {
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(&egress).unwrap())
        .build()
        .unwrap();
    let handler: Handler = Arc::new(move |req: http::Request<Bytes>| {
        let client = client.clone();
        let upstream = upstream.clone();
        Box::pin(async move {
            let mut call = client.get(format!("{upstream}/price?item=42"));
            for name in ["traceparent", "tracestate", "x-softprobe-session-id"] {
                if let Some(v) = req.headers().get(name) {
                    call = call.header(name, v.clone());
                }
            }
            let (status, body) = match call.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    (
                        status,
                        serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
                    )
                }
                Err(e) => (0, Value::String(e.to_string())),
            };
            let out = json!({"checkout": "ok", "upstreamStatus": status, "upstream": body});
            http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&out).unwrap())))
                .unwrap()
        })
    });
    serve(handler, None).await
}

/// A TLS server config for `localhost` signed by a CA of its own (the "real" upstream's
/// authority, distinct from the proxy's).
pub fn upstream_tls() -> (CertificateAuthority, Arc<rustls::ServerConfig>) {
    let ca = CertificateAuthority::generate().unwrap();
    let cfg = ca.server_config("localhost").unwrap();
    (ca, cfg)
}

/// A `CONNECT` tunnel through the egress proxy to `target`, its `200` head read: `session`
/// goes into `Proxy-Authorization` as the user name.
pub async fn open_tunnel(proxy: SocketAddr, target: &str, session: Option<&str>) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let mut connect = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(s) = session {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{s}:"));
        connect.push_str(&format!("Proxy-Authorization: Basic {creds}\r\n"));
    }
    connect.push_str("\r\n");
    stream.write_all(connect.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "proxy closed during CONNECT: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "CONNECT answered {head:?}"
    );
    stream
}

/// One HTTPS request through the egress proxy: `CONNECT`, then TLS trusting `proxy_ca`, then
/// HTTP/1.1 inside the tunnel. `session` goes into `Proxy-Authorization` as the user name.
pub async fn https_via_connect(
    proxy: SocketAddr,
    target: &str,
    path: &str,
    session: Option<&str>,
    proxy_ca: &CertificateAuthority,
) -> (u16, http::HeaderMap, Bytes) {
    let stream = open_tunnel(proxy, target, session).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(proxy_ca.cert_der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = target.rsplit_once(':').map(|(h, _)| h).unwrap_or(target);
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .expect("TLS through the tunnel verifies against the proxy CA");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(path)
        .header("host", target)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}
