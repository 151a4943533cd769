//! A recorded response is marked `sp.http.response.body.incomplete` exactly when its body
//! really ended early: shorter than its content-length, cut by an upstream reset, or
//! abandoned by a client that went away. A body that arrived whole (sized, chunked or empty)
//! carries no mark. Real sockets throughout: a raw TCP upstream writes each answer by hand,
//! the egress proxy records in a capture session, and the case file is read back.

mod support;

use std::sync::Arc;
use std::time::Duration;

use softprobe_runtime::case::{Case, Exchange};
use softprobe_runtime::proxy::{EgressProxy, StoreBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::*;

const INCOMPLETE: &str = "sp.http.response.body.incomplete";

/// An upstream that answers by path, writing the bytes itself so that it can lie about
/// lengths, close early or reset the connection.
async fn raw_upstream() -> String {
    let listener = TcpListener::bind(localhost()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                match path.as_str() {
                    "/sized" => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                            .await;
                    }
                    "/chunked" => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n")
                            .await;
                    }
                    "/empty" => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                    }
                    "/short" => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nhello")
                            .await;
                        let _ = stream.shutdown().await;
                    }
                    "/reset" => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
                            .await;
                        let _ = stream.flush().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        // SO_LINGER 0: closing sends RST instead of FIN.
                        let _ = stream.set_zero_linger();
                        drop(stream);
                    }
                    "/slow" => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
                            .await;
                        // The rest never comes while the client is still there.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    _ => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn marked(hop: &Exchange) -> Option<String> {
    hop.extra_attributes
        .iter()
        .find(|kv| kv.key == INCOMPLETE)
        .map(|kv| format!("{:?}", kv.value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bodies_that_really_ended_early_are_marked_incomplete() {
    let runtime = runtime().await;
    let rt = runtime.uri();
    let egress = EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .service("truth")
        .start()
        .await
        .unwrap();
    let upstream = raw_upstream().await;
    let session = create_session(&rt, "capture").await;
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(egress.uri_for_session(&session)).unwrap())
        .build()
        .unwrap();

    // Whole bodies: read to the end by the client.
    for path in ["/sized", "/chunked", "/empty"] {
        let resp = proxied
            .get(format!("{upstream}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let body = resp.bytes().await.unwrap();
        let expected: &[u8] = if path == "/empty" { b"" } else { b"hello" };
        assert_eq!(&body[..], expected, "{path}");
    }
    // Shorter than its content-length, then a clean close: the client sees an error.
    let short = proxied
        .get(format!("{upstream}/short"))
        .send()
        .await
        .unwrap();
    assert!(short.bytes().await.is_err(), "a short body is an error");
    // Reset by the upstream after half the body.
    let reset = proxied
        .get(format!("{upstream}/reset"))
        .send()
        .await
        .unwrap();
    assert!(reset.bytes().await.is_err(), "a reset body is an error");
    // The client reads the first bytes and goes away.
    let mut slow = proxied
        .get(format!("{upstream}/slow"))
        .send()
        .await
        .unwrap();
    let first = slow.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"hello");
    drop(slow);
    drop(proxied);

    wait_extracted(&rt, &session, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("truth.case.json");
    close_to(&rt, &session, &out).await;
    let case = Case::read(&out).unwrap();
    let hops = case.exchanges().unwrap();
    let by_path = |p: &str| {
        hops.iter()
            .find(|h| h.path == p)
            .unwrap_or_else(|| panic!("no hop {p} in {hops:#?}"))
    };
    for path in ["/sized", "/chunked", "/empty"] {
        assert_eq!(
            marked(by_path(path)),
            None,
            "{path} arrived whole but is marked incomplete"
        );
    }
    assert_eq!(
        by_path("/sized")
            .response_body
            .as_ref()
            .map(|b| b.as_bytes().to_vec()),
        Some(b"hello".to_vec())
    );
    for path in ["/short", "/reset", "/slow"] {
        assert!(
            marked(by_path(path)).is_some(),
            "{path} ended early but carries no {INCOMPLETE}: {:#?}",
            by_path(path)
        );
    }
    egress.shutdown().await;
}

/// Case files under `dir` (recursively), skipping build output and dependencies.
fn case_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | ".git" | "node_modules") {
                case_files(&path, out);
            }
        } else if name.ends_with(".json") {
            out.push(path);
        }
    }
}

/// A committed recording may say its body was cut short only when it is a fixture about
/// exactly that (its file name says `incomplete`): anything else is a capture that lied.
#[test]
fn no_committed_case_claims_a_cut_short_body_without_being_about_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let mut files = Vec::new();
    case_files(&root, &mut files);
    assert!(
        files.len() > 10,
        "found only {} JSON files under {}",
        files.len(),
        root.display()
    );
    let liars: Vec<String> = files
        .iter()
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("incomplete"))
        })
        .filter(|p| {
            std::fs::read_to_string(p).is_ok_and(|text| text.contains(&format!("\"{INCOMPLETE}\"")))
        })
        .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
        .collect();
    assert!(
        liars.is_empty(),
        "these committed cases mark a response body as cut short ({INCOMPLETE}) but are not \
         fixtures about it (their name does not say `incomplete`); capture them again or \
         remove the attribute if the body was whole:\n  {}",
        liars.join("\n  ")
    );
}
