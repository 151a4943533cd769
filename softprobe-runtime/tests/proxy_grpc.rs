//! gRPC through the proxies with tonic on both ends (messages from prost derives; no protoc):
//! a unary call and a server-streaming call reach a tonic server over h2c with their
//! trailers, capture records the unary call with its service, method, unframed messages and
//! status, and replay answers it with the upstream stopped. Server- and client-streaming calls
//! replay their recorded message sequences in order. A call nothing recorded fails at once with
//! a gRPC status naming the call.

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use http::uri::PathAndQuery;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use softprobe_runtime::case::{AnyValue, Body, Case, Exchange};
use softprobe_runtime::grpc::{GRPC_STATUS, RPC_METHOD, RPC_SERVICE, RPC_SYSTEM, STREAMING};
use softprobe_runtime::proxy::{EgressProxy, IngressProxy, StoreBackend};
use tokio::net::TcpListener;
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

use support::*;

#[derive(Clone, PartialEq, prost::Message)]
struct ReserveRequest {
    #[prost(string, tag = "1")]
    sku: String,
    #[prost(uint32, tag = "2")]
    qty: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ReserveReply {
    #[prost(string, tag = "1")]
    reservation: String,
    #[prost(uint32, tag = "2")]
    left: u32,
}

const RESERVE: &str = "/shop.Inventory/Reserve";
const WATCH: &str = "/shop.Inventory/Watch";
const TALLY: &str = "/shop.Inventory/Tally";

/// The inventory service: `Reserve` answers a reservation, or `NOT_FOUND` for sku `none`;
/// `Watch` streams two stock levels.
async fn inventory() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(localhost()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let resp = match req.uri().path() {
                        RESERVE => {
                            let reserve = tower::service_fn(
                                |req: tonic::Request<ReserveRequest>| async move {
                                    let asked = req.into_inner();
                                    if asked.sku == "none" {
                                        return Err(Status::not_found("no such sku: none"));
                                    }
                                    Ok(tonic::Response::new(ReserveReply {
                                        reservation: format!("r-{}-{}", asked.sku, asked.qty),
                                        left: 10 - asked.qty,
                                    }))
                                },
                            );
                            tonic::server::Grpc::new(
                                ProstCodec::<ReserveReply, ReserveRequest>::default(),
                            )
                            .unary(reserve, req)
                            .await
                        }
                        WATCH => {
                            let watch =
                                tower::service_fn(|_: tonic::Request<ReserveRequest>| async move {
                                    let levels = (0..2).map(|i| {
                                        Ok(ReserveReply {
                                            reservation: String::new(),
                                            left: 5 - i,
                                        })
                                    });
                                    Ok::<_, Status>(tonic::Response::new(
                                        futures_util::stream::iter(levels.collect::<Vec<_>>()),
                                    ))
                                });
                            tonic::server::Grpc::new(
                                ProstCodec::<ReserveReply, ReserveRequest>::default(),
                            )
                            .server_streaming(watch, req)
                            .await
                        }
                        TALLY => {
                            let tally = tower::service_fn(
                                |req: tonic::Request<tonic::Streaming<ReserveRequest>>| async move {
                                    let mut asked = req.into_inner();
                                    let mut skus = Vec::new();
                                    let mut total = 0;
                                    while let Some(item) = asked.message().await? {
                                        skus.push(item.sku);
                                        total += item.qty;
                                    }
                                    Ok::<_, Status>(tonic::Response::new(ReserveReply {
                                        reservation: skus.join("+"),
                                        left: total,
                                    }))
                                },
                            );
                            tonic::server::Grpc::new(
                                ProstCodec::<ReserveReply, ReserveRequest>::default(),
                            )
                            .client_streaming(tally, req)
                            .await
                        }
                        _ => Status::unimplemented("no such method").into_http(),
                    };
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .http2_only()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), task)
}

type Client = tonic::client::Grpc<tonic::transport::Channel>;

async fn grpc_client(uri: &str) -> Client {
    let channel = tonic::transport::Channel::from_shared(uri.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

async fn reserve(
    client: &mut Client,
    session: &str,
    sku: &str,
    qty: u32,
) -> Result<ReserveReply, Status> {
    client.ready().await.unwrap();
    let mut req = tonic::Request::new(ReserveRequest {
        sku: sku.to_owned(),
        qty,
    });
    req.metadata_mut()
        .insert("x-softprobe-session-id", session.parse().unwrap());
    client
        .unary(
            req,
            PathAndQuery::from_static(RESERVE),
            ProstCodec::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

async fn watch(client: &mut Client, session: &str) -> Result<Vec<u32>, Status> {
    client.ready().await.unwrap();
    let mut req = tonic::Request::new(ReserveRequest::default());
    req.metadata_mut()
        .insert("x-softprobe-session-id", session.parse().unwrap());
    let mut stream = client
        .server_streaming::<_, ReserveReply, _>(
            req,
            PathAndQuery::from_static(WATCH),
            ProstCodec::default(),
        )
        .await?
        .into_inner();
    let mut levels = Vec::new();
    while let Some(reply) = stream.message().await? {
        levels.push(reply.left);
    }
    Ok(levels)
}

/// Client streaming: sends one request per `(sku, qty)`, gets their tally.
async fn tally(
    client: &mut Client,
    session: &str,
    items: &[(&str, u32)],
) -> Result<ReserveReply, Status> {
    client.ready().await.unwrap();
    let items: Vec<ReserveRequest> = items
        .iter()
        .map(|(sku, qty)| ReserveRequest {
            sku: (*sku).to_owned(),
            qty: *qty,
        })
        .collect();
    let mut req = tonic::Request::new(futures_util::stream::iter(items));
    req.metadata_mut()
        .insert("x-softprobe-session-id", session.parse().unwrap());
    client
        .client_streaming(req, PathAndQuery::from_static(TALLY), ProstCodec::default())
        .await
        .map(tonic::Response::into_inner)
}

fn attr<'a>(hop: &'a Exchange, key: &str) -> Option<&'a AnyValue> {
    hop.extra_attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value)
}

async fn close(
    rt: &str,
    session: &str,
    n: u64,
    dir: &tempfile::TempDir,
) -> (serde_json::Value, Vec<Exchange>) {
    wait_extracted(rt, session, n).await;
    let out = dir.path().join(format!("{session}.case.json"));
    close_to(rt, session, &out).await;
    let hops = Case::read(&out).unwrap().exchanges().unwrap();
    (
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap(),
        hops,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_through_the_ingress_keeps_trailers_and_records_the_call() {
    let (upstream, _task) = inventory().await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let ingress = IngressProxy::builder()
        .upstream(upstream)
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let session = create_session(&rt, "capture").await;
    let mut client = grpc_client(&ingress.uri()).await;

    let reply = reserve(&mut client, &session, "A-1", 3).await.unwrap();
    assert_eq!(reply.reservation, "r-A-1-3");
    // The error status travels in the trailers: it reaches the client intact.
    let err = reserve(&mut client, &session, "none", 1).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "no such sku: none")
    );
    assert_eq!(watch(&mut client, &session).await.unwrap(), vec![5, 4]);

    let (_, hops) = close(&rt, &session, 3, &dir).await;
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_softprobe"))
        .args(["inspect", "case"])
        .arg(dir.path().join(format!("{session}.case.json")))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    let line = |status: &str, call: &str| {
        shown.lines().any(|l| {
            let cells: Vec<&str> = l.split('│').map(str::trim).collect();
            cells.contains(&"grpc") && cells.contains(&status) && cells.contains(&call)
        })
    };
    assert!(line("OK", "shop.Inventory/Reserve"), "{shown}");
    assert!(line("NOT_FOUND", "shop.Inventory/Reserve"), "{shown}");
    assert!(
        line("OK", "shop.Inventory/Watch (1 → 2 messages)"),
        "{shown}"
    );
    let ok = hops
        .iter()
        .find(|h| h.path == RESERVE && attr(h, GRPC_STATUS) == Some(&AnyValue::Int(0)))
        .unwrap_or_else(|| panic!("{hops:#?}"));
    assert_eq!(attr(ok, RPC_SYSTEM), Some(&AnyValue::String("grpc".into())));
    assert_eq!(
        attr(ok, RPC_SERVICE),
        Some(&AnyValue::String("shop.Inventory".into()))
    );
    assert_eq!(
        attr(ok, RPC_METHOD),
        Some(&AnyValue::String("Reserve".into()))
    );
    // Messages without their framing: they decode as the protobuf messages themselves.
    let Some(Body::Binary(request)) = &ok.request_body else {
        panic!("{ok:#?}")
    };
    let asked = <ReserveRequest as prost::Message>::decode(&request[..]).unwrap();
    assert_eq!(asked.sku, "A-1");
    let Some(Body::Binary(answer)) = &ok.response_body else {
        panic!("{ok:#?}")
    };
    let answered = <ReserveReply as prost::Message>::decode(&answer[..]).unwrap();
    assert_eq!(answered.left, 7);
    let failed = hops
        .iter()
        .find(|h| attr(h, GRPC_STATUS) == Some(&AnyValue::Int(5)))
        .unwrap();
    assert_eq!(
        attr(failed, "sp.grpc.message"),
        Some(&AnyValue::String("no such sku: none".into()))
    );
    let streamed = hops.iter().find(|h| h.path == WATCH).unwrap();
    assert_eq!(attr(streamed, STREAMING), Some(&AnyValue::Bool(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_through_the_egress_is_replayed_offline_and_unanswerable_calls_fail_fast() {
    let (upstream, task) = inventory().await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let egress = EgressProxy::builder()
        .upstream(upstream)
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let session = create_session(&rt, "capture").await;
    let mut client = grpc_client(&egress.uri()).await;
    let captured = reserve(&mut client, &session, "A-1", 3).await.unwrap();
    assert_eq!(watch(&mut client, &session).await.unwrap(), vec![5, 4]);
    let items = [("A-1", 2), ("B-2", 5)];
    let tallied = tally(&mut client, &session, &items).await.unwrap();
    assert_eq!((tallied.reservation.as_str(), tallied.left), ("A-1+B-2", 7));
    let (case, hops) = close(&rt, &session, 3, &dir).await;
    // Each streaming call holds its messages in order, counted, in both directions.
    let counts = |path: &str| {
        let hop = hops.iter().find(|h| h.path == path).unwrap();
        (
            attr(hop, softprobe_runtime::grpc::REQUEST_MESSAGES).cloned(),
            attr(hop, softprobe_runtime::grpc::RESPONSE_MESSAGES).cloned(),
        )
    };
    assert_eq!(counts(WATCH), (None, Some(AnyValue::Int(2))));
    assert_eq!(
        counts(TALLY),
        (Some(AnyValue::Int(2)), Some(AnyValue::Int(1)))
    );

    task.abort();
    let replay = create_session(&rt, "replay").await;
    post(&rt, &format!("/v1/sessions/{replay}/load-case"), case).await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    let mut client = grpc_client(&egress.uri()).await;
    let replayed = reserve(&mut client, &replay, "A-1", 3).await.unwrap();
    assert_eq!(replayed, captured);

    // Streaming calls replay their recorded messages in order, with the upstream gone.
    assert_eq!(watch(&mut client, &replay).await.unwrap(), vec![5, 4]);
    assert_eq!(tally(&mut client, &replay, &items).await.unwrap(), tallied);
    // The client's messages are compared in order: the same items sent the other way round
    // are still answered (the recorded answer is served), and reported as request drift.
    let swapped = [("B-2", 5), ("A-1", 2)];
    assert_eq!(
        tally(&mut client, &replay, &swapped).await.unwrap(),
        tallied
    );
    assert_eq!(stats(&rt, &replay).await["requestDrift"], 1);
    let state: serde_json::Value = reqwest::get(format!("{rt}/v1/sessions/{replay}/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let drift = state["requestDrift"].to_string();
    assert!(drift.contains("shop.Inventory/Tally"), "{state}");

    client.ready().await.unwrap();
    let mut req = tonic::Request::new(ReserveRequest::default());
    req.metadata_mut()
        .insert("x-softprobe-session-id", replay.parse().unwrap());
    let err = client
        .unary::<_, ReserveReply, _>(
            req,
            PathAndQuery::from_static("/shop.Inventory/Cancel"),
            ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message()
            .starts_with("softprobe strict miss for shop.Inventory/Cancel: "),
        "{}",
        err.message()
    );
    assert_eq!(stats(&rt, &replay).await["strictMisses"], 1);
}

/// The same replay with the proxy reaching the runtime over its OTLP API: the recorded
/// trailers travel in the `/v1/inject` answer and still end the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_replay_works_through_a_remote_runtime() {
    let (upstream, task) = inventory().await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let egress = EgressProxy::builder()
        .upstream(upstream)
        .backend(Arc::new(
            softprobe_runtime::proxy::RemoteBackend::new(&rt, None).unwrap(),
        ))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let session = create_session(&rt, "capture").await;
    let mut client = grpc_client(&egress.uri()).await;
    let captured = reserve(&mut client, &session, "B-7", 2).await.unwrap();
    let failed = reserve(&mut client, &session, "none", 1).await.unwrap_err();
    let (case, _) = close(&rt, &session, 2, &dir).await;

    task.abort();
    let replay = create_session(&rt, "replay").await;
    post(&rt, &format!("/v1/sessions/{replay}/load-case"), case).await;
    let mut client = grpc_client(&egress.uri()).await;
    assert_eq!(
        reserve(&mut client, &replay, "B-7", 2).await.unwrap(),
        captured
    );
    let again = reserve(&mut client, &replay, "none", 1).await.unwrap_err();
    assert_eq!(
        (again.code(), again.message()),
        (failed.code(), failed.message())
    );
}
