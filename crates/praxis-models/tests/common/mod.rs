//! A small HTTP/1.1 test server: answers each request with the next canned response,
//! streaming bodies in small pieces (with flushes and short pauses) so chunk boundaries
//! fall mid-line and mid-JSON, and records every request for assertions.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Lowercased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// How a canned response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The whole body, properly terminated.
    Complete,
    /// The connection is closed without terminating the chunked body.
    Disconnect,
    /// Nothing more is sent and the connection stays open (for idle timeouts).
    Hang,
}

#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Streamed with chunked transfer encoding in small pieces; else sent at once with a
    /// Content-Length.
    pub streamed: bool,
    pub end: End,
    /// Piece sizes for a streamed body (cycled; zeros skipped), with no pause between
    /// pieces; `None`: the default sizes with short pauses.
    pub pieces: Option<Vec<usize>>,
}

/// Piece sizes cycled through when streaming, chosen to split lines and JSON tokens.
const PIECES: &[usize] = &[7, 13, 5, 23, 11, 3, 17];

impl Canned {
    fn streamed(content_type: &str, body: &str) -> Self {
        Canned {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
            streamed: true,
            end: End::Complete,
            pieces: None,
        }
    }

    /// One JSON document, sent in chunks like the streams.
    pub fn json_chunked(body: &str) -> Self {
        Self::streamed("application/json; charset=utf-8", body)
    }

    /// A server-sent event stream.
    pub fn sse(body: &str) -> Self {
        Self::streamed("text/event-stream", body)
    }

    /// A stream of JSON lines (Ollama).
    pub fn ndjson(body: &str) -> Self {
        Self::streamed("application/x-ndjson", body)
    }

    /// A complete, non-streamed response.
    pub fn status(status: u16, content_type: &str, body: &str) -> Self {
        Canned {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
            streamed: false,
            end: End::Complete,
            pieces: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Streams the body in pieces of these sizes (cycled), without pauses.
    pub fn in_pieces(mut self, pieces: Vec<usize>) -> Self {
        self.pieces = Some(pieces);
        self
    }

    /// Sends only the first `bytes` of the body, then closes the connection.
    pub fn disconnect_after(mut self, bytes: usize) -> Self {
        self.body.truncate(bytes);
        self.end = End::Disconnect;
        self
    }

    /// Sends only the first `bytes` of the body, then goes silent with the connection open.
    pub fn hang_after(mut self, bytes: usize) -> Self {
        self.body.truncate(bytes);
        self.end = End::Hang;
        self
    }
}

pub struct TestServer {
    port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl TestServer {
    /// Starts a server that answers requests with `responses`, in order; requests beyond
    /// them get a 599 so a test notices.
    pub async fn start(responses: Vec<Canned>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let queue = Arc::new(Mutex::new(VecDeque::from(responses)));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let seen = seen.clone();
                let queue = queue.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, seen, queue).await;
                });
            }
        });
        TestServer { port, requests }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    mut socket: TcpStream,
    seen: Arc<Mutex<Vec<Recorded>>>,
    queue: Arc<Mutex<VecDeque<Canned>>>,
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut socket).await? else {
        return Ok(());
    };
    seen.lock().unwrap().push(request);
    let canned = queue.lock().unwrap().pop_front().unwrap_or_else(|| {
        Canned::status(
            599,
            "text/plain",
            "the test server has no canned response left",
        )
    });
    let mut head = format!("HTTP/1.1 {} Test\r\nconnection: close\r\n", canned.status);
    for (name, value) in &canned.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if canned.streamed {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("content-length: {}\r\n\r\n", canned.body.len()));
    }
    socket.write_all(head.as_bytes()).await?;
    socket.flush().await?;
    if !canned.streamed {
        socket.write_all(&canned.body).await?;
        socket.flush().await?;
        return socket.shutdown().await;
    }
    let mut rest = canned.body.as_slice();
    let custom: Vec<usize> = canned
        .pieces
        .iter()
        .flatten()
        .copied()
        .filter(|&n| n > 0)
        .collect();
    let pause = custom.is_empty();
    let mut sizes = if pause { PIECES.iter() } else { custom.iter() }.cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap_or(&8)).min(rest.len());
        let (piece, tail) = rest.split_at(size);
        socket.write_all(format!("{size:x}\r\n").as_bytes()).await?;
        socket.write_all(piece).await?;
        socket.write_all(b"\r\n").await?;
        socket.flush().await?;
        rest = tail;
        if pause {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    match canned.end {
        End::Complete => {
            socket.write_all(b"0\r\n\r\n").await?;
            socket.flush().await?;
            socket.shutdown().await
        }
        // Dropping the socket closes it mid-body.
        End::Disconnect => Ok(()),
        End::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            Ok(())
        }
    }
}

async fn read_request(socket: &mut TcpStream) -> std::io::Result<Option<Recorded>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[header_end..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Recorded {
        method,
        path,
        headers,
        body,
    }))
}

/// `data: ...` events of an OpenAI-style stream, ending with `data: [DONE]`.
pub fn openai_sse(chunks: &[Value]) -> String {
    let mut out = String::new();
    for chunk in chunks {
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

/// `event:`/`data:` pairs of an Anthropic stream (the event name is the data's `type`).
pub fn anthropic_sse(events: &[Value]) -> String {
    let mut out = String::new();
    for event in events {
        let name = event["type"].as_str().unwrap_or("message");
        out.push_str(&format!("event: {name}\ndata: {event}\n\n"));
    }
    out
}

/// Newline-delimited JSON.
pub fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}
