//! The accept loop every listener of the runtime shares: the control API, the ingress and
//! the egress proxy. Each connection gets `TCP_NODELAY`, HTTP/1 or HTTP/2 with upgrades, and
//! a header read timeout (a client that dribbles its request head cannot pin a connection);
//! on stop, open connections get [`DRAIN_TIMEOUT`] to finish.
//!
//! A listener may try a server of its own on each plain TCP connection first
//! ([`OwnHttp1`]: the ingress's HTTP/1 exchange); what that server does not serve it hands
//! back with the bytes it read ([`Handoff`]), and hyper serves the connection from there.
//!
//! A listener is served either on the runtime that started it ([`accept_loop`]) or by
//! [`Shards`]: threads that each run a current-thread runtime and serve the connections the
//! accept loop deals them in turn ([`accept_into_shards`]). A connection and everything it
//! starts (the upstream connections of a proxy) then stay on one thread, with no wake-ups
//! across threads — the model of nginx's worker processes, and what a proxy under many
//! connections needs on a machine with few cores. Only the standalone runtime's ingress
//! uses shards (`IngressBuilder::threads`); the harness's proxies and the control API run on
//! the caller's runtime.
//!
//! What each mechanism buys, from BENCHMARKS.md ("The listener's mechanisms", rows 4 and 4b,
//! each set-up measured in the same alternating wrk rounds against the same nginx):
//!
//! | mechanism | replaced by | with a session header | without |
//! |---|---|---|---|
//! | [`Shards`] (one current-thread runtime per CPU) | tokio's multi-thread runtime | 13.9k vs 10.2k req/s (+37 %) | 15.2k vs 11.0k (+39 %) |
//! | [`coarse_timer`] | hyper-util's `TokioTimer` and `tokio::time::timeout` | 13.9k vs 12.6k (+11 %) | 15.2k vs 11.5k (+32 %) |
//! | [`drain`] | hyper-util's `GracefulShutdown` | 13.9k vs 9.3k (+50 %) | 15.2k vs 14.7k (+4 %) |
//!
//! That run was on a loaded machine (load average 19-24), where nginx itself moved by half
//! between the two rows; the session 3 figures in BENCHMARKS.md, on a quiet machine, gave
//! shards +55 % and the drain and timer together +30 %. Each mechanism stays while it is
//! ahead by more than 5 % of the facility it replaces.
//!
//! The invariant the shards rely on: a service built by `make_service` (and everything it
//! creates, such as a proxy's upstream connection pool) is used only on its own shard's
//! thread, so its tasks are spawned onto that thread's runtime and never woken from another.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

mod coarse_timer;
mod drain;

pub(crate) use coarse_timer::CoarseTimer;
pub(crate) use coarse_timer::timeout as coarse_timeout;
use drain::Drain;

/// How long open connections get to finish after a listener stops.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a listener serves: a cloneable hyper service whose futures can move between
/// threads, answering with a [`ResponseBody`].
pub(crate) trait HttpService:
    Service<
        hyper::Request<Incoming>,
        Response = hyper::Response<Self::Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The body of its answers.
    type Body: ResponseBody;
}

impl<S, B> HttpService for S
where
    S: Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    B: ResponseBody,
{
    type Body = B;
}

/// A response body hyper can write from any thread.
pub(crate) trait ResponseBody:
    Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

/// A server of plain HTTP/1 connections of its own (the ingress's, `proxy::http1`), tried
/// before hyper: it serves a connection until it meets something it does not serve, and then
/// hands the connection back, with the bytes it read, for hyper to serve.
pub(crate) type OwnHttp1 = std::sync::Arc<
    dyn Fn(TcpStream, Stopping) -> Pin<Box<dyn Future<Output = Option<Handoff>> + Send>>
        + Send
        + Sync,
>;

/// Set when the listener stops: a connection served by an [`OwnHttp1`] closes once its
/// current request is answered, or at once when it is waiting for the next one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stopping(std::sync::Arc<AtomicBool>);

impl Stopping {
    /// Whether the listener is stopping.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A connection an [`OwnHttp1`] hands back: the stream, and the bytes already read from it,
/// which hyper reads first.
pub(crate) struct Handoff {
    pub(crate) stream: TcpStream,
    pub(crate) read: bytes::Bytes,
}

impl tokio::io::AsyncRead for Handoff {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Handoff {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A connection served by an [`OwnHttp1`], as the [`Drain`] watches it.
struct OwnConnection {
    serving: Pin<Box<dyn Future<Output = Option<Handoff>> + Send>>,
    stopping: Stopping,
}

impl Future for OwnConnection {
    type Output = Option<Handoff>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Handoff>> {
        self.serving.as_mut().poll(cx)
    }
}

impl drain::Graceful for OwnConnection {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.stopping.0.store(true, Ordering::Release);
    }
}

/// Serves connections with one service and tracks them for a graceful drain.
struct Connections<S> {
    builder: auto::Builder<TokioExecutor>,
    drain: Drain,
    service: S,
    role: &'static str,
    /// Tried first on every plain TCP connection, when set.
    http1: Option<OwnHttp1>,
}

impl<S: HttpService> Connections<S> {
    fn new(service: S, header_read_timeout: Duration, role: &'static str) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Without a timer hyper enforces no header read timeout at all.
        builder
            .http1()
            .timer(CoarseTimer)
            .header_read_timeout(header_read_timeout);
        Connections {
            builder,
            drain: Drain::default(),
            service,
            role,
            http1: None,
        }
    }

    /// Tries `http1` first on every plain TCP connection.
    fn with_http1(mut self, http1: Option<OwnHttp1>) -> Self {
        self.http1 = http1;
        self
    }

    /// Serves one connection on a task of the current runtime.
    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let Some(http1) = &self.http1 else {
            self.serve_io(stream);
            return;
        };
        let stopping = Stopping::default();
        let own = self.drain.watch(OwnConnection {
            serving: http1(stream, stopping.clone()),
            stopping,
        });
        let builder = self.builder.clone();
        let service = self.service.clone();
        let drain = self.drain.clone();
        let role = self.role;
        // One task for the connection's whole life: what the own server hands back is
        // served by hyper on the same task.
        tokio::spawn(async move {
            let Some(handoff) = own.await else { return };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(handoff), service)
                .into_owned();
            if let Err(err) = drain.watch(conn).await {
                tracing::debug!(%err, role, "connection ended with an error");
            }
        });
    }

    /// Serves one connection over any byte stream (a TLS session, for one).
    fn serve_io<I>(&self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), self.service.clone())
            .into_owned();
        let conn = self.drain.watch(conn);
        let role = self.role;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, role, "connection ended with an error");
            }
        });
    }

    /// Lets open connections finish, up to [`DRAIN_TIMEOUT`].
    async fn drain(&self) {
        if tokio::time::timeout(DRAIN_TIMEOUT, self.drain.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                role = self.role,
                "requests still running {DRAIN_TIMEOUT:?} after shutdown were dropped"
            );
        }
    }
}

/// Accepts the next connection; on errors such as running out of file descriptors it backs
/// off and returns `None`, so the loop keeps serving.
async fn accept(listener: &TcpListener, role: &'static str) -> Option<TcpStream> {
    match listener.accept().await {
        Ok((stream, _)) => Some(stream),
        Err(err) => {
            tracing::warn!(%err, role, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Serves `service` on `listener` until `stop` completes, then drains open connections.
/// `role` names the listener in logs.
#[cfg(feature = "server")]
pub(crate) async fn accept_loop<S: HttpService>(
    listener: TcpListener,
    service: S,
    header_read_timeout: Duration,
    stop: impl Future<Output = ()>,
    role: &'static str,
) {
    accept_loop_with(listener, service, None, header_read_timeout, stop, role).await;
}

/// [`accept_loop`], with `http1` tried before hyper on every connection.
pub(crate) async fn accept_loop_with<S: HttpService>(
    listener: TcpListener,
    service: S,
    http1: Option<OwnHttp1>,
    header_read_timeout: Duration,
    stop: impl Future<Output = ()>,
    role: &'static str,
) {
    let connections = Connections::new(service, header_read_timeout, role).with_http1(http1);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            accepted = accept(&listener, role) => {
                if let Some(stream) = accepted {
                    connections.serve(stream);
                }
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    connections.drain().await;
}

/// [`accept_loop`] over TLS: each connection's handshake runs on a task of its own, bounded
/// by `header_read_timeout` like a request head, then the connection is served as usual.
/// Only the control API serves TLS.
#[cfg(feature = "server")]
pub(crate) async fn accept_loop_tls<S: HttpService + Sync>(
    listener: TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    service: S,
    header_read_timeout: Duration,
    stop: impl Future<Output = ()>,
    role: &'static str,
) {
    let connections = std::sync::Arc::new(Connections::new(service, header_read_timeout, role));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            accepted = accept(&listener, role) => {
                let Some(stream) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let connections = connections.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connections.serve_io(tls),
                        Ok(Err(err)) => tracing::debug!(%err, role, "TLS handshake failed"),
                        Err(_) => tracing::debug!(role, "TLS handshake timed out"),
                    }
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    connections.drain().await;
}

/// Threads serving connections dealt to them, each on its own current-thread runtime.
pub(crate) struct Shards {
    senders: Vec<mpsc::UnboundedSender<std::net::TcpStream>>,
    done: Vec<oneshot::Receiver<()>>,
}

impl Shards {
    /// Starts `count` (at least one) threads named `<name>/<n>` (`ingress:8082/0`: short
    /// enough for the 15 bytes `top -H` shows). Each builds its own service (and the
    /// [`OwnHttp1`] tried before it, if any) with `make_service`, on its own thread, so what
    /// the service creates (connection pools, their tasks) lives there too.
    pub(crate) fn start<F, S>(
        count: usize,
        name: &str,
        make_service: F,
        header_read_timeout: Duration,
        role: &'static str,
    ) -> std::io::Result<Shards>
    where
        F: Fn() -> (S, Option<OwnHttp1>) + Send + Sync + 'static,
        S: HttpService,
    {
        let make_service = std::sync::Arc::new(make_service);
        let mut shards = Shards {
            senders: Vec::new(),
            done: Vec::new(),
        };
        for n in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, mut rx) = mpsc::unbounded_channel::<std::net::TcpStream>();
            let (done_tx, done_rx) = oneshot::channel();
            let make_service = make_service.clone();
            std::thread::Builder::new()
                .name(format!("{name}/{n}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let (service, http1) = make_service();
                        let connections =
                            Connections::new(service, header_read_timeout, role).with_http1(http1);
                        // The channel closes when the accept loop stops.
                        while let Some(stream) = rx.recv().await {
                            match TcpStream::from_std(stream) {
                                Ok(stream) => connections.serve(stream),
                                Err(err) => {
                                    tracing::warn!(%err, role, "cannot adopt a connection");
                                }
                            }
                        }
                        connections.drain().await;
                    });
                    let _ = done_tx.send(());
                })?;
            shards.senders.push(tx);
            shards.done.push(done_rx);
        }
        Ok(shards)
    }
}

/// Accepts on `listener` and deals the connections to `shards` in turn until `stop`
/// completes; then the shards drain their connections and this returns when they have.
pub(crate) async fn accept_into_shards(
    listener: TcpListener,
    shards: Shards,
    stop: impl Future<Output = ()>,
    role: &'static str,
) {
    let Shards { senders, done } = shards;
    let mut stop = std::pin::pin!(stop);
    let mut next = 0usize;
    loop {
        tokio::select! {
            accepted = accept(&listener, role) => {
                let Some(stream) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(err) => {
                        tracing::warn!(%err, role, "cannot hand a connection to a shard");
                        continue;
                    }
                };
                if senders[next % senders.len()].send(stream).is_err() {
                    tracing::warn!(role, "a shard thread is gone; its connection was closed");
                }
                next = next.wrapping_add(1);
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    drop(senders);
    for shard in done {
        let _ = shard.await;
    }
}
