//! The accept loop every listener of the runtime shares: the control API, the ingress and
//! the egress proxy. Each connection gets `TCP_NODELAY`, HTTP/1 or HTTP/2 with upgrades, and
//! a header read timeout (a client that dribbles its request head cannot pin a connection);
//! on stop, open connections get [`DRAIN_TIMEOUT`] to finish.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// How long open connections get to finish after a listener stops.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `service` on `listener` until `stop` completes, then drains open connections.
/// `role` names the listener in logs.
pub(crate) async fn accept_loop<S, B>(
    listener: TcpListener,
    service: S,
    header_read_timeout: Duration,
    stop: impl Future<Output = ()>,
    role: &'static str,
) where
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper enforces no header read timeout at all.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(%err, role, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service.clone())
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(err) = conn.await {
                        tracing::debug!(%err, role, "connection ended with an error");
                    }
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            role,
            "requests still running {DRAIN_TIMEOUT:?} after shutdown were dropped"
        );
    }
}
