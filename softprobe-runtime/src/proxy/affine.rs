//! The ingress's upstream path for HTTP/1 requests: one upstream connection per client
//! connection, opened on the client connection's first request and driven on its task
//! ([`crate::listener::Beside`]), instead of hyper-util's pooled client.
//!
//! A request then goes from the client's socket to the application's and back on one task,
//! with no pool lookup and no hand-off to a connection task of the pool. The upstream
//! connection closes with the client connection; when the application closes it first, the
//! next request opens another, and a request the closed connection never sent is sent again
//! on the new one. HTTPS and gRPC upstreams, HTTP/2 clients and WebSocket upgrades keep the
//! pooled client.
//!
//! What it buys: BENCHMARKS.md, "Rows 4 and 4b: one upstream connection per client
//! connection".
//!
//! The invariant it relies on: HTTP/1 answers a connection's requests one after the other,
//! so a client connection has at most one request upstream at a time and one upstream
//! connection serves them all.

use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::listener::Beside;

/// The upstream connection a client connection keeps in its [`Beside`] slot.
#[derive(Default)]
struct Upstream {
    /// Where it goes, and the `Host` it names.
    to: Option<(Authority, HeaderValue)>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// Why an upstream exchange failed.
pub(crate) enum Failure {
    /// No connection could be opened; `timed_out` when the connect timeout passed.
    Connect { cause: String, timed_out: bool },
    /// The connection failed while sending or waiting for the answer.
    Exchange(hyper::Error),
}

/// The client connection `req` arrived on, when `req` can go over its own upstream
/// connection: an HTTP/1 request to a plain-HTTP upstream, handled on the connection's task.
pub(crate) fn connection_for(req: &Request<Full<Bytes>>) -> Option<Beside> {
    let eligible = req.version() <= http::Version::HTTP_11
        && req.uri().scheme() == Some(&http::uri::Scheme::HTTP)
        && req.uri().authority().is_some();
    eligible.then(Beside::current).flatten()
}

/// Sends `req` (absolute URI, as [`connection_for`] accepted it) over the upstream
/// connection of `beside`'s client connection, opening it when there is none or the last
/// one closed.
pub(crate) async fn send(
    beside: &Beside,
    mut req: Request<Full<Bytes>>,
    connect_timeout: Duration,
) -> Result<Response<Incoming>, Failure> {
    let authority = req
        .uri()
        .authority()
        .cloned()
        .expect("connection_for accepts only URIs with an authority");
    // On the wire: origin form, with the authority in Host.
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(path);
    // A request goes once more, on a new connection, when the connection it was given to
    // turned out closed before sending it; never more than once.
    let mut retried = false;
    loop {
        let (sender, host) = beside.with(|up: &mut Upstream| match &up.to {
            Some((to, host)) if *to == authority => (
                up.sender.take().filter(|s| !s.is_closed()),
                Some(host.clone()),
            ),
            _ => (None, None),
        });
        let host = host.unwrap_or_else(|| host_value(&authority));
        let mut sender = match sender {
            Some(s) => s,
            None => open(beside, &authority, connect_timeout).await?,
        };
        if let Err(err) = sender.ready().await {
            if retried {
                return Err(Failure::Exchange(err));
            }
            retried = true;
            continue;
        }
        req.headers_mut()
            .entry(header::HOST)
            .or_insert_with(|| host.clone());
        let answer = sender.try_send_request(req).await;
        // Back in the slot for the connection's next request, unless it is closed.
        if !sender.is_closed() {
            beside.with(|up: &mut Upstream| {
                up.to = Some((authority.clone(), host));
                up.sender = Some(sender);
            });
        }
        match answer {
            Ok(resp) => return Ok(resp),
            Err(mut err) => match err.take_message() {
                Some(unsent) if !retried => {
                    retried = true;
                    req = unsent;
                }
                _ => return Err(Failure::Exchange(err.into_error())),
            },
        }
    }
}

/// `Host` for `authority`, without the default port (as hyper-util's client writes it).
fn host_value(authority: &Authority) -> HeaderValue {
    let text = match authority.port_u16() {
        Some(80) => authority.host(),
        _ => authority.as_str(),
    };
    HeaderValue::from_str(text).expect("an authority is a valid header value")
}

/// Connects to `authority` and starts the HTTP/1 connection on `beside`'s task.
async fn open(
    beside: &Beside,
    authority: &Authority,
    connect_timeout: Duration,
) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = match crate::listener::coarse_timeout(
        connect_timeout,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        None => {
            return Err(Failure::Connect {
                cause: format!("connecting timed out after {connect_timeout:?}"),
                timed_out: true,
            });
        }
        Some(Err(err)) => {
            return Err(Failure::Connect {
                cause: format!("cannot connect: {err}"),
                timed_out: false,
            });
        }
        Some(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Failure::Exchange)?;
    beside.drive(async move {
        if let Err(err) = conn.await {
            tracing::debug!(%err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}
