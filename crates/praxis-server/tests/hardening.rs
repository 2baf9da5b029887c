//! The server's front door against clients that do not play by the rules (issue 12, item
//! 8): `/ready` tells strangers nothing but ready or not; silent, half-sent and idle
//! connections are closed after the header-read timeout; connections that have not
//! authenticated are capped, and an authenticated client still gets through.

use praxis_ledger::tokens::TokenStore;
use praxis_runtime::DataHome;
use praxis_server::{Server, ServerConfig};
use serde_json::{Value, json};
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than any bound under test: reaching it means the server never acted.
const NEVER: Duration = Duration::from_secs(60);

struct Served {
    home: TempDir,
    server: Server,
}

impl Served {
    async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Served {
        let home = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(DataHome::at(home.path()));
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::start(listener, config).await.unwrap();
        Served { home, server }
    }

    fn token(&self, tenant: &str) -> String {
        TokenStore::open(&self.home.path().join("ledger.db"))
            .unwrap()
            .create(tenant)
            .unwrap()
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.server.addr()).await.unwrap()
    }
}

fn request(path: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nhost: praxis\r\n{auth}\r\n")
}

/// Sends `request` on `stream` and reads one response: status and body.
async fn roundtrip(stream: &mut TcpStream, request: &str) -> (u16, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let response = tokio::time::timeout(NEVER, async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]);
                    return (status, body.to_string());
                }
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert_ne!(n, 0, "the connection closed before a whole response");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    response.expect("no response")
}

/// Whether the server closes `stream` (EOF or reset) before [`NEVER`].
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 4096];
    let closed = tokio::time::timeout(NEVER, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                // A 408 or the like before closing is fine.
                Ok(_) => continue,
            }
        }
    })
    .await;
    closed.is_ok()
}

#[tokio::test]
async fn ready_says_only_ready_without_a_valid_token() {
    let s = Served::start(|_| {}).await;
    let home = s.home.path().display().to_string();
    let mut conn = s.connect().await;
    // Auth off (no token exists): nothing about the data dir either.
    let (status, body) = roundtrip(&mut conn, &request("/ready", None)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "ready"})
    );

    let token = s.token("ops");
    for presented in [None, Some("prx_not_a_token"), Some("")] {
        let (status, body) = roundtrip(&mut conn, &request("/ready", presented)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"status": "ready"}),
            "token {presented:?}"
        );
        assert!(!body.contains(&home));
    }
    // A valid token may learn more.
    let (status, body) = roundtrip(&mut conn, &request("/ready", Some(&token))).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ledger"]["quick_check"], "ok", "{body}");
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn silent_half_sent_and_idle_connections_are_closed() {
    let s = Served::start(|c| c.header_read_timeout = Duration::from_millis(500)).await;
    // Connects and says nothing.
    let mut silent = s.connect().await;
    // Half a request head.
    let mut half = s.connect().await;
    half.write_all(b"GET /health HTTP/1.1\r\nhost: praxis\r\nx-slow: ")
        .await
        .unwrap();
    // A whole request, then an idle keep-alive connection.
    let mut idle = s.connect().await;
    let (status, _) = roundtrip(&mut idle, &request("/health", None)).await;
    assert_eq!(status, 200);
    // Headers sent, the announced body never comes.
    let mut stalled = s.connect().await;
    stalled
        .write_all(
            b"POST /v1/runs HTTP/1.1\r\nhost: praxis\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"task\":",
        )
        .await
        .unwrap();
    for (what, conn) in [
        ("silent", &mut silent),
        ("half-sent", &mut half),
        ("idle", &mut idle),
        ("stalled body", &mut stalled),
    ] {
        assert!(
            closed_by_server(conn).await,
            "the {what} connection stayed open"
        );
    }
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unauthenticated_connections_beyond_the_cap_are_refused() {
    const CAP: usize = 3;
    let s = Served::start(|c| c.max_unauthenticated = CAP).await;
    let token = s.token("ops");
    // An authenticated client, connected before the flood.
    let mut client = s.connect().await;
    let (status, body) = roundtrip(&mut client, &request("/v1/runs", Some(&token))).await;
    assert_eq!(status, 200, "{body}");

    // The flood: connections that never authenticate. Unauthenticated requests (a public
    // route, a bad token) do not count as authenticating.
    let mut flood = Vec::new();
    for i in 0..CAP {
        let mut conn = s.connect().await;
        let path = if i % 2 == 0 { "/health" } else { "/v1/runs" };
        let (status, _) = roundtrip(&mut conn, &request(path, Some("prx_wrong"))).await;
        assert!(status == 200 || status == 401, "{status}");
        flood.push(conn);
    }
    let mut refused = s.connect().await;
    let (status, body) = roundtrip(&mut refused, &request("/health", None)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not authenticated"), "{body}");
    assert!(closed_by_server(&mut refused).await);

    // The authenticated client is not affected.
    let (status, body) = roundtrip(&mut client, &request("/v1/runs", Some(&token))).await;
    assert_eq!(status, 200, "{body}");

    // A slot frees when a flooding connection goes away.
    drop(flood.pop());
    let deadline = tokio::time::Instant::now() + NEVER;
    loop {
        let mut conn = s.connect().await;
        let (status, _) = roundtrip(&mut conn, &request("/health", None)).await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no slot ever freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.server.shutdown().await.unwrap();
}
