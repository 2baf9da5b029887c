//! The accept loop. Each connection is HTTP/1 with a header-read timeout: a client that
//! connects and says nothing, sends half a request head, or keeps an idle keep-alive
//! connection open, is dropped after [`ServerConfig::header_read_timeout`]; a request body
//! must arrive within the same bound. Connections that have not authenticated yet are
//! capped ([`ServerConfig::max_unauthenticated`]): beyond the cap a new connection is
//! answered 503 and closed, while connections that did authenticate are not counted.
//!
//! [`ServerConfig::header_read_timeout`]: crate::ServerConfig::header_read_timeout
//! [`ServerConfig::max_unauthenticated`]: crate::ServerConfig::max_unauthenticated

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// How connections are bounded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub header_read_timeout: Duration,
    pub max_unauthenticated: usize,
}

/// The unauthenticated slot of one connection, in every request's extensions: the first
/// authenticated request on the connection gives it back.
#[derive(Clone)]
pub(crate) struct ConnectionSlot(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl ConnectionSlot {
    pub(crate) fn authenticated(&self) {
        drop(
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 71\r\n\r\n{\"error\":\"too many connections that have not authenticated; try again\"}";

/// Serves `app` on `listener` until `stop` turns true, then waits for the open connections
/// (each told to finish its current request and close).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    bounds: Bounds,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(bounds.max_unauthenticated));
    // Every connection task holds a sender; when all are gone, every connection is closed.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    eprintln!("praxis serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        // Small writes (a response's head and body, each SSE event) leave at once instead
        // of waiting on the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let slot = ConnectionSlot(Arc::new(Mutex::new(Some(permit))));
        tokio::spawn(connection(
            stream,
            app.clone(),
            slot,
            bounds,
            stop.clone(),
            open_tx.clone(),
        ));
    }
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

async fn refuse(stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut stream = stream;
    // Best effort, bounded: the peer may not read at all.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(BUSY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn connection(
    stream: TcpStream,
    app: Router,
    slot: ConnectionSlot,
    bounds: Bounds,
    mut stop: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
) {
    let body_timeout = bounds.header_read_timeout;
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(slot.clone());
        // A body that stalls longer than a head may is cut off (the handler sees an error).
        let request =
            request.map(|body| axum::body::Body::new(TimeoutBody::new(body_timeout, body)));
        app.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopped(&mut stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Resolves once `stop` is true (or its sender is gone), holding no borrow of it.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
