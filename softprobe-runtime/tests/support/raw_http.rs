//! A raw HTTP/1 client over a `TcpStream`: the bytes a test writes go out as they are, and
//! answers are read one by one (framed by length or chunked), so keep-alive, pipelining and
//! what a proxy writes on the wire can be checked. Also a raw upstream that writes the answer
//! bytes a test gives it and counts its connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that reads requests (bodies framed by length only) and writes `answer(n)` for
/// the n-th request of all its connections, closing the connection after it when `close`;
/// it counts its connections and keeps the request heads it read.
pub struct RawUpstream {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawUpstream {
    pub async fn start(answer: fn(usize) -> Vec<u8>, close: bool) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (counted, kept) = (connections.clone(), heads.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let (kept, requests) = (kept.clone(), requests.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        while !contains(&buf, b"\r\n\r\n") {
                            if !read_more(&mut stream, &mut buf).await {
                                return;
                            }
                        }
                        let end = find(&buf, b"\r\n\r\n").unwrap() + 4;
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let length = head
                            .lines()
                            .filter_map(|line| line.split_once(':'))
                            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                            .map_or(0, |(_, value)| value.trim().parse().unwrap());
                        while buf.len() < end + length {
                            if !read_more(&mut stream, &mut buf).await {
                                return;
                            }
                        }
                        buf.drain(..end + length);
                        kept.lock().unwrap().push(head);
                        let n = requests.fetch_add(1, Ordering::SeqCst);
                        if stream.write_all(&answer(n)).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        RawUpstream {
            addr,
            connections,
            heads,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Reads what `stream` has into `buf`; false when it closed or failed.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// One answer read from a raw connection: its head as text and its body, decoded.
#[derive(Debug)]
pub struct Answer {
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }
}

/// A client connection that reads answers one by one.
pub struct RawClient {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        RawClient {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more; false at the end of the stream.
    pub async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk));
        match read.await.expect("the proxy answers within 10 s") {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next answer; `head_only` for the answer to a HEAD request.
    pub async fn answer(&mut self, head_only: bool) -> Answer {
        while !contains(&self.buf, b"\r\n\r\n") {
            assert!(
                self.fill().await,
                "closed before an answer: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        let end = find(&self.buf, b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8(self.buf.drain(..end).collect()).unwrap();
        let mut answer = Answer {
            head,
            body: Vec::new(),
        };
        if head_only {
            return answer;
        }
        if answer
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            loop {
                while !contains(&self.buf, b"\r\n") {
                    assert!(self.fill().await, "closed inside a chunked body");
                }
                let line_end = find(&self.buf, b"\r\n").unwrap();
                let size_line = String::from_utf8(self.buf[..line_end].to_vec()).unwrap();
                let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
                while self.buf.len() < line_end + 2 + size + 2 {
                    assert!(self.fill().await, "closed inside a chunk");
                }
                self.buf.drain(..line_end + 2);
                answer.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    return answer;
                }
            }
        }
        let len: usize = answer
            .header("content-length")
            .expect("an answer framed by length or chunked")
            .parse()
            .unwrap();
        while self.buf.len() < len {
            assert!(self.fill().await, "closed inside the body");
        }
        answer.body = self.buf.drain(..len).collect();
        answer
    }

    /// Everything up to the end of the stream.
    pub async fn rest(&mut self) -> String {
        while self.fill().await {}
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }
}

/// Writes `head`, then `len` body bytes, as a client does that sends its whole body before
/// reading the answer, and checks the answer is a 413 naming `limit`: the test fails, naming
/// how far it got, if the peer closes before it has the whole body (the answer would be lost
/// to the reset). The answer is read until the peer closes (10 s at most).
pub async fn refused_after_whole_body(
    stream: &mut TcpStream,
    head: &str,
    len: usize,
    limit: usize,
) {
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    for sent in (0..len).step_by(chunk.len()) {
        let part = &chunk[..chunk.len().min(len - sent)];
        stream.write_all(part).await.unwrap_or_else(|e| {
            panic!("the peer closed the connection after {sent} of {len} body bytes: {e}")
        });
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "expected a 413 answer, got: {answer}"
    );
    assert!(
        answer.contains(&limit.to_string()),
        "the answer names the limit {limit}: {answer}"
    );
}
