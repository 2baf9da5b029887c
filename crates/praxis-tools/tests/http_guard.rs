//! The `http` tool's SSRF guard against a real local HTTP server: loopback, metadata and
//! IPv6 loopback targets are refused, and so are redirects to them; with the test-only
//! loopback opening for one exact address the same request goes through (the control).

use praxis_core::{ExecStatus, Observation};
use praxis_tools::{ExecContext, Registry, Workspace};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP/1.1 server: `/ok` answers "hello from local", `/big` a megabyte,
/// `/to/<url>` redirects (302) to `<url>`. Counts the requests it served.
async fn server(addr: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let local = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&got).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let response = if path == "/ok" {
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 16\r\nconnection: close\r\n\r\nhello from local".to_string()
                } else if path == "/big" {
                    let body = "x".repeat(1 << 20);
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else if let Some(target) = path.strip_prefix("/to/") {
                    format!(
                        "HTTP/1.1 302 Found\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (local, hits)
}

fn ctx(open: &[SocketAddr]) -> (tempfile::TempDir, ExecContext) {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = ExecContext::new(Workspace::new(dir.path()).unwrap());
    ctx.limits.sandbox.http.allow_loopback = open.to_vec();
    (dir, ctx)
}

async fn get(ctx: &ExecContext, url: &str) -> Observation {
    Registry::builtin()
        .execute(ctx, "http", json!({"url": url, "timeout_secs": 20}))
        .await
}

#[tokio::test]
async fn loopback_metadata_and_ipv6_loopback_are_refused() {
    let (addr, hits) = server("127.0.0.1:0").await;
    let (_d, ctx) = ctx(&[]);
    for (url, why) in [
        (format!("http://{addr}/ok"), "loopback"),
        (format!("http://localhost:{}/ok", addr.port()), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "link-local",
        ),
        (format!("http://[::1]:{}/ok", addr.port()), "loopback"),
        ("http://[::ffff:127.0.0.1]/ok".to_string(), "loopback"),
        ("http://[::ffff:169.254.169.254]/".to_string(), "link-local"),
        ("http://10.0.0.1/".to_string(), "private"),
        ("http://100.64.0.1/".to_string(), "carrier-grade NAT"),
        ("http://0.0.0.0/".to_string(), "unspecified"),
    ] {
        let obs = get(&ctx, &url).await;
        assert_eq!(obs.status, ExecStatus::Error, "{url}: {}", obs.output);
        assert!(obs.output.contains("refused"), "{url}: {}", obs.output);
        assert!(obs.output.contains(why), "{url}: {}", obs.output);
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused request reached the server"
    );
}

#[tokio::test]
async fn the_loopback_opening_is_exact_and_redirects_are_rechecked() {
    let (addr, hits) = server("127.0.0.1:0").await;
    let (other, other_hits) = server("127.0.0.1:0").await;
    let (_d, ctx) = ctx(&[addr]);

    // Control: the opened address works.
    let obs = get(&ctx, &format!("http://{addr}/ok")).await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    assert!(obs.output.starts_with("HTTP 200 OK"), "{}", obs.output);
    assert!(
        obs.output.ends_with("\n\nhello from local"),
        "{}",
        obs.output
    );

    // A redirect from the opened address to another loopback port, to IPv6 loopback and to
    // the metadata endpoint: each hop is checked, none is reached.
    for (target, why) in [
        (format!("http://{other}/ok"), "loopback"),
        (format!("http://[::1]:{}/ok", other.port()), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "link-local",
        ),
    ] {
        let obs = get(&ctx, &format!("http://{addr}/to/{target}")).await;
        assert_eq!(obs.status, ExecStatus::Error, "{target}: {}", obs.output);
        assert!(
            obs.output.contains("redirect refused"),
            "{target}: {}",
            obs.output
        );
        assert!(obs.output.contains(why), "{target}: {}", obs.output);
        assert!(obs.output.contains("redirects: 302"), "{}", obs.output);
    }
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);

    // A same-host redirect to an allowed address is followed.
    let obs = get(&ctx, &format!("http://{addr}/to/http://{addr}/ok")).await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", obs.output);
    assert!(obs.output.contains("hello from local"), "{}", obs.output);
    assert!(obs.output.contains("redirects: 302"), "{}", obs.output);
    assert!(hits.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn bodies_are_capped_and_the_resource_is_the_host() {
    let (addr, _hits) = server("127.0.0.1:0").await;
    let (_d, mut ctx) = ctx(&[addr]);
    ctx.limits.output_bytes = 2000;
    let obs = get(&ctx, &format!("http://{addr}/big")).await;
    assert_eq!(obs.status, ExecStatus::Ok, "{}", &obs.output[..200]);
    assert!(obs.output.len() < 2100, "{}", obs.output.len());
    assert!(obs.output.contains("body cut at"), "{}", obs.output);
    assert!(obs.truncated_bytes > 1_000_000);
    let obs = get(&ctx, &format!("http://{addr}/missing")).await;
    assert_eq!(obs.status, ExecStatus::Error);
    assert!(obs.output.starts_with("HTTP 404"), "{}", obs.output);

    use praxis_core::{Contracts, Resource};
    let compiled = Registry::builtin()
        .compile(
            "http",
            &json!({"url": "https://API.Example.com:8443/v1?q=1"}),
        )
        .unwrap();
    assert_eq!(compiled.effect, praxis_core::Effect::Network);
    assert_eq!(
        compiled.resources,
        vec![Resource::Host {
            host: "api.example.com".into()
        }]
    );
    let obs = get(&ctx, "ftp://example.com/").await;
    assert!(obs.output.contains("only http and https"), "{}", obs.output);
}
