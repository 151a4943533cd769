//! The service under test behind [`Session::serve`](crate::Session::serve), type-erased.
//!
//! `serve` is generic over the user's service and its body, so whatever it does is compiled in
//! every test crate that calls it. Here the service becomes one boxed function of a request
//! (the only generic step, a few lines), and the accept loop with hyper's HTTP/1 and HTTP/2
//! server is compiled once, in this crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;

/// The error type every erased service and body reports.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the erased service answers.
type Answer = Pin<
    Box<
        dyn Future<Output = Result<http::Response<UnsyncBoxBody<Bytes, BoxError>>, BoxError>>
            + Send,
    >,
>;

/// The service under test as one shared function of a request.
pub(crate) type Served = Arc<dyn Fn(http::Request<Incoming>) -> Answer + Send + Sync>;

/// Erases `service`: each request gets a clone of it, waits until it is ready and calls it,
/// as hyper-util's tower adapter does.
pub(crate) fn erase<S, B>(service: S) -> Served
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Arc::new(move |req| {
        let mut service = service.clone();
        Box::pin(async move {
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = service.call(req).await.map_err(Into::into)?;
            Ok(response.map(|body| {
                body.map_frame(|frame| frame.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                    .map_err(Into::into)
                    .boxed_unsync()
            }))
        })
    })
}

/// Accepts connections on `listener` and serves each with `service` (HTTP/1 or HTTP/2, as
/// the client speaks), until the task is aborted.
pub(crate) async fn accept_loop(listener: std::net::TcpListener, service: Served) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("softprobe: cannot serve the service under test: {e}");
            return;
        }
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let answer = service(req);
                async move { answer.await.map_err(ServiceError) }
            });
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, svc)
                    .await;
        });
    }
}

/// A failure of the service under test, as hyper reports it: the connection closes.
#[derive(Debug)]
struct ServiceError(BoxError);

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the service under test failed: {}", self.0)
    }
}

impl std::error::Error for ServiceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
