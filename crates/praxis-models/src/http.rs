//! The HTTP layer shared by the providers: client construction, status classification,
//! bounded stream readers (SSE and NDJSON) with an idle timeout, and retries with jittered
//! exponential backoff.

use crate::{ModelError, ProviderSettings, RetryPolicy, TimeoutKind};
use bytes::Bytes;
use eventsource_stream::{Event, EventStream, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// How much of an unexpected body is kept to show in an error.
const HEAD_BYTES: usize = 512;
/// Characters of a body shown in an error.
const SNIPPET_CHARS: usize = 200;
/// Characters of a server's error message quoted in an error.
const MESSAGE_CHARS: usize = 500;
/// Bytes of an error response read at most.
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// Where a provider sends its requests, for error messages.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub provider: &'static str,
    pub url: String,
    /// What to set when the server refuses the credentials.
    pub key_variable: &'static str,
}

impl Endpoint {
    pub fn bad_body(&self, status: u16, problem: impl Into<String>, body: &[u8]) -> ModelError {
        ModelError::BadBody {
            provider: self.provider.into(),
            url: self.url.clone(),
            status,
            problem: problem.into(),
            snippet: snippet(body),
        }
    }

    pub fn too_large(&self, limit: usize) -> ModelError {
        ModelError::TooLarge {
            provider: self.provider.into(),
            url: self.url.clone(),
            limit,
        }
    }

    pub fn broken(&self, message: impl Into<String>) -> ModelError {
        ModelError::StreamBroken {
            provider: self.provider.into(),
            url: self.url.clone(),
            message: message.into(),
        }
    }

    pub fn remote(&self, kind: &str, message: &str, retryable: bool) -> ModelError {
        ModelError::Remote {
            provider: self.provider.into(),
            url: self.url.clone(),
            kind: kind.into(),
            message: truncate(message, MESSAGE_CHARS),
            retryable,
        }
    }

    fn timeout(&self, kind: TimeoutKind, after: Duration) -> ModelError {
        ModelError::Timeout {
            provider: self.provider.into(),
            url: self.url.clone(),
            kind,
            after,
        }
    }

    /// Maps a reqwest failure; `request_timeout` is what a reqwest timeout means here.
    pub fn transport(&self, e: &reqwest::Error, request_timeout: Duration) -> ModelError {
        let message = error_chain(e);
        if e.is_builder() {
            ModelError::Config(format!(
                "cannot build the request to {}: {message}",
                self.url
            ))
        } else if e.is_connect() {
            ModelError::Connect {
                provider: self.provider.into(),
                url: self.url.clone(),
                message,
            }
        } else if e.is_timeout() {
            self.timeout(TimeoutKind::Request, request_timeout)
        } else {
            self.broken(message)
        }
    }
}

/// A reqwest error with its causes, which carry the useful part ("connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The HTTP client of one provider configuration: every request is bounded by the connect
/// and request timeouts. Built once per configuration and shared by every provider (and so
/// every run) that uses it: building one loads the TLS root store and starts a connection
/// pool, which a run must not pay for again.
pub(crate) fn client(settings: &ProviderSettings) -> Result<SharedClient, ModelError> {
    /// More distinct configurations than this in one process is not a server's steady
    /// state: the cache starts over rather than grow without bound.
    const MAX_CONFIGURATIONS: usize = 64;
    type Clients = HashMap<(Duration, Duration), SharedClient>;
    static CLIENTS: OnceLock<Mutex<Clients>> = OnceLock::new();
    let key = (settings.connect_timeout, settings.request_timeout);
    let mut clients = CLIENTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(shared) = clients.get(&key) {
        return Ok(shared.clone());
    }
    let built = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .user_agent(concat!("praxis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            ModelError::Config(format!(
                "cannot create the HTTP client: {}",
                error_chain(&e)
            ))
        })?;
    if clients.len() >= MAX_CONFIGURATIONS {
        clients.clear();
    }
    let shared = Arc::new(built);
    clients.insert(key, shared.clone());
    Ok(shared)
}

/// An HTTP client shared by the providers of one configuration (see [`client`]).
pub(crate) type SharedClient = Arc<reqwest::Client>;

/// Parses `url`, naming `variable` when it is not a usable http(s) URL.
pub(crate) fn parse_url(url: &str, variable: &str) -> Result<reqwest::Url, ModelError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ModelError::Config(format!("{variable} = {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ModelError::Config(format!(
            "{variable} = {url:?} must be an http:// or https:// URL with a host"
        )));
    }
    Ok(parsed)
}

/// Whether `url` points at this machine (127.0.0.0/8, localhost, ::1).
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Sends a JSON POST and returns the response if its status is a success; any other status
/// becomes the matching error, quoting the server's message.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    headers: &[(&'static str, String)],
    body: &Value,
    settings: &ProviderSettings,
) -> Result<reqwest::Response, ModelError> {
    let mut builder = client.post(&endpoint.url).json(body);
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let response = builder
        .send()
        .await
        .map_err(|e| endpoint.transport(&e, settings.request_timeout))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = read_error_body(response, settings.idle_timeout).await;
    let message = describe_error_body(&body);
    Err(if status == 401 || status == 403 {
        ModelError::Auth {
            provider: endpoint.provider.into(),
            url: endpoint.url.clone(),
            status,
            variable: endpoint.key_variable,
            message,
        }
    } else {
        ModelError::Status {
            provider: endpoint.provider.into(),
            url: endpoint.url.clone(),
            status,
            message,
            retry_after,
        }
    })
}

/// Whether the response says it is one JSON document (`application/json`, any parameters)
/// rather than a stream.
pub(crate) fn is_json(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// A whole (non-streamed) body: its status and bytes, at most `max_response_bytes`, each
/// chunk within the idle timeout.
pub(crate) async fn read_body(
    response: reqwest::Response,
    endpoint: &Endpoint,
    settings: &ProviderSettings,
) -> Result<(u16, Vec<u8>), ModelError> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    loop {
        match tokio::time::timeout(settings.idle_timeout, stream.next()).await {
            Err(_) => return Err(endpoint.timeout(TimeoutKind::Idle, settings.idle_timeout)),
            Ok(None) => return Ok((status, body)),
            Ok(Some(Err(e))) => return Err(endpoint.transport(&e, settings.request_timeout)),
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > settings.max_response_bytes {
                    return Err(endpoint.too_large(settings.max_response_bytes));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// Reads at most [`ERROR_BODY_BYTES`] of an error response; a body that breaks off or stalls
/// is shown as far as it came.
async fn read_error_body(response: reqwest::Response, idle: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while body.len() < ERROR_BODY_BYTES {
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(ERROR_BODY_BYTES);
    body
}

/// The server's own words from an error body: the message of the usual JSON error shapes
/// (OpenAI `{"error": {"message", "type"}}`, Anthropic `{"type": "error", "error": {...}}`,
/// Ollama `{"error": "..."}`, vLLM `{"message": ...}`), else a description with a snippet.
pub(crate) fn describe_error_body(body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return "the body is empty".into();
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(message) = json_error_message(&value)
    {
        return truncate(&message, MESSAGE_CHARS);
    }
    let text = String::from_utf8_lossy(body);
    if text.trim_start().starts_with('<') {
        format!("an HTML page instead of a JSON error: {:?}", snippet(body))
    } else {
        format!("{:?}", truncate(text.trim(), MESSAGE_CHARS))
    }
}

/// The message of a JSON error object, prefixed with its type when it has one.
pub(crate) fn json_error_message(value: &Value) -> Option<String> {
    let (kind, message) = match value.get("error") {
        Some(Value::String(s)) => (None, s.clone()),
        Some(error @ Value::Object(_)) => (
            error
                .get("type")
                .or_else(|| error.get("code"))
                .and_then(Value::as_str),
            error.get("message")?.as_str()?.to_string(),
        ),
        _ => (
            None,
            value
                .get("message")
                .or_else(|| value.get("detail"))?
                .as_str()?
                .to_string(),
        ),
    };
    Some(match kind {
        Some(kind) if !kind.is_empty() => format!("{kind}: {message}"),
        _ => message,
    })
}

/// The start of a body, as text on one line, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(HEAD_BYTES)];
    let text = String::from_utf8_lossy(head);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&collapsed, SNIPPET_CHARS)
}

/// At most `max` characters of `s`, marked with "…" when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// What has been received so far, shared between the byte stream and its reader.
#[derive(Default)]
struct Received {
    head: Vec<u8>,
    total: usize,
}

/// The response body as a stream of chunks that fails instead of letting one line (the unit
/// the parsers buffer) grow past `line_cap`, and records the first bytes for error messages.
struct CappedBody {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    endpoint: Endpoint,
    request_timeout: Duration,
    line_cap: usize,
    since_newline: usize,
    received: Arc<Mutex<Received>>,
}

impl Stream for CappedBody {
    type Item = Result<Bytes, ModelError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Ok(mut received) = this.received.lock() {
                    let room = HEAD_BYTES.saturating_sub(received.head.len());
                    received
                        .head
                        .extend_from_slice(&chunk[..chunk.len().min(room)]);
                    received.total += chunk.len();
                }
                match chunk.iter().rposition(|b| *b == b'\n' || *b == b'\r') {
                    Some(last) => this.since_newline = chunk.len() - last - 1,
                    None => this.since_newline += chunk.len(),
                }
                if this.since_newline > this.line_cap {
                    return Poll::Ready(Some(Err(this.endpoint.too_large(this.line_cap))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(this.endpoint.transport(&e, this.request_timeout))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn capped(
    response: reqwest::Response,
    endpoint: &Endpoint,
    settings: &ProviderSettings,
) -> (CappedBody, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let body = CappedBody {
        inner: Box::pin(response.bytes_stream()),
        endpoint: endpoint.clone(),
        request_timeout: settings.request_timeout,
        line_cap: settings.max_response_bytes,
        since_newline: 0,
        received: received.clone(),
    };
    (body, received)
}

/// Common state of the two stream readers: what was received, for the errors at the end.
struct Progress {
    endpoint: Endpoint,
    status: u16,
    idle: Duration,
    received: Arc<Mutex<Received>>,
    items: usize,
}

impl Progress {
    fn head_and_total(&self) -> (Vec<u8>, usize) {
        match self.received.lock() {
            Ok(r) => (r.head.clone(), r.total),
            Err(_) => (Vec::new(), 0),
        }
    }

    /// The stream ended (cleanly) without its end marker: an empty or foreign body is a
    /// bad body, a stream that had started is a broken one (retryable).
    fn ended_early(&self, expected: &str) -> ModelError {
        let (head, total) = self.head_and_total();
        if total == 0 || head.iter().all(u8::is_ascii_whitespace) {
            self.endpoint.bad_body(
                self.status,
                format!("an empty body instead of {expected}"),
                &head,
            )
        } else if self.items == 0 {
            let problem = if String::from_utf8_lossy(&head).trim_start().starts_with('<') {
                format!("an HTML page instead of {expected}")
            } else {
                format!("a body that is not {expected}")
            };
            self.endpoint.bad_body(self.status, problem, &head)
        } else {
            self.endpoint
                .broken("the connection closed before the stream's end marker")
        }
    }

    fn idle_timeout(&self) -> ModelError {
        self.endpoint.timeout(TimeoutKind::Idle, self.idle)
    }
}

/// Server-sent events of a streamed reply, each read within the idle timeout.
pub(crate) struct SseReader {
    events: EventStream<CappedBody>,
    progress: Progress,
}

impl SseReader {
    pub fn new(
        response: reqwest::Response,
        endpoint: &Endpoint,
        settings: &ProviderSettings,
    ) -> Self {
        let status = response.status().as_u16();
        let (body, received) = capped(response, endpoint, settings);
        SseReader {
            events: body.eventsource(),
            progress: Progress {
                endpoint: endpoint.clone(),
                status,
                idle: settings.idle_timeout,
                received,
                items: 0,
            },
        }
    }

    /// The next event, or `None` when the body ended.
    pub async fn next(&mut self) -> Result<Option<Event>, ModelError> {
        let p = &self.progress;
        match tokio::time::timeout(p.idle, self.events.next()).await {
            Err(_) => Err(p.idle_timeout()),
            Ok(None) => Ok(None),
            Ok(Some(Ok(event))) => {
                self.progress.items += 1;
                Ok(Some(event))
            }
            Ok(Some(Err(EventStreamError::Transport(e)))) => Err(e),
            Ok(Some(Err(EventStreamError::Utf8(_)))) => {
                let (head, _) = p.head_and_total();
                Err(p
                    .endpoint
                    .bad_body(p.status, "a body that is not UTF-8 text", &head))
            }
            Ok(Some(Err(EventStreamError::Parser(_)))) => {
                let (head, _) = p.head_and_total();
                Err(p.endpoint.bad_body(
                    p.status,
                    "a body that is not a server-sent event stream",
                    &head,
                ))
            }
        }
    }

    /// The error for a body that ended before the dialect's terminal event.
    pub fn ended_early(&self) -> ModelError {
        self.progress.ended_early("a server-sent event stream")
    }

    /// The error for an event whose data is not the JSON the dialect sends.
    pub fn bad_data(&self, error: &serde_json::Error, data: &str) -> ModelError {
        self.progress.endpoint.bad_body(
            self.progress.status,
            format!("an event whose data is not the expected JSON ({error})"),
            data.as_bytes(),
        )
    }
}

/// Newline-delimited JSON lines of a streamed reply (Ollama), each within the idle timeout.
pub(crate) struct LineReader {
    body: CappedBody,
    buffer: Vec<u8>,
    done: bool,
    progress: Progress,
}

impl LineReader {
    pub fn new(
        response: reqwest::Response,
        endpoint: &Endpoint,
        settings: &ProviderSettings,
    ) -> Self {
        let status = response.status().as_u16();
        let (body, received) = capped(response, endpoint, settings);
        LineReader {
            body,
            buffer: Vec::new(),
            done: false,
            progress: Progress {
                endpoint: endpoint.clone(),
                status,
                idle: settings.idle_timeout,
                received,
                items: 0,
            },
        }
    }

    /// The next non-empty line (without its line ending), or `None` when the body ended.
    pub async fn next(&mut self) -> Result<Option<String>, ModelError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if let Some(text) = self.line(&line)? {
                    return Ok(Some(text));
                }
                continue;
            }
            if self.done {
                // A last line without a newline still counts.
                let rest = std::mem::take(&mut self.buffer);
                return self.line(&rest);
            }
            match tokio::time::timeout(self.progress.idle, self.body.next()).await {
                Err(_) => return Err(self.progress.idle_timeout()),
                Ok(None) => self.done = true,
                Ok(Some(Ok(chunk))) => self.buffer.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => return Err(e),
            }
        }
    }

    fn line(&mut self, raw: &[u8]) -> Result<Option<String>, ModelError> {
        let text = std::str::from_utf8(raw).map_err(|_| {
            self.progress.endpoint.bad_body(
                self.progress.status,
                "a line that is not UTF-8 text",
                raw,
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        self.progress.items += 1;
        Ok(Some(text.to_string()))
    }

    pub fn ended_early(&self) -> ModelError {
        self.progress.ended_early("a stream of JSON lines")
    }

    pub fn bad_data(&self, error: &serde_json::Error, line: &str) -> ModelError {
        self.progress.endpoint.bad_body(
            self.progress.status,
            format!("a line that is not the expected JSON ({error})"),
            line.as_bytes(),
        )
    }
}

/// Counts the bytes of an assembled reply against `max_response_bytes`.
pub(crate) struct SizeCap {
    limit: usize,
    used: usize,
}

impl SizeCap {
    pub fn new(limit: usize) -> Self {
        SizeCap { limit, used: 0 }
    }

    pub fn add(&mut self, bytes: usize, endpoint: &Endpoint) -> Result<(), ModelError> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            return Err(endpoint.too_large(self.limit));
        }
        Ok(())
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `policy.max_attempts` is used up.
/// Retryable failures wait a jittered exponential backoff, or the server's `Retry-After`
/// (capped at `max_delay`). A retryable failure that used up the attempts comes back as
/// [`ModelError::RetriesExhausted`] (still retryable, so a failover chain moves on).
pub(crate) async fn with_retry<T, F, Fut>(
    label: &str,
    policy: &RetryPolicy,
    mut attempt: F,
) -> Result<T, ModelError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ModelError>>,
{
    let max = policy.max_attempts.max(1);
    let mut number = 1;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_retryable() && number < max => {
                tokio::time::sleep(backoff(policy, number, e.retry_after())).await;
                number += 1;
            }
            Err(e) if e.is_retryable() && number > 1 => {
                return Err(ModelError::RetriesExhausted {
                    provider: label.to_string(),
                    attempts: number,
                    last: Box::new(e),
                });
            }
            Err(e) => return Err(e),
        }
    }
}

/// The wait before retry number `retry` (1-based): the server's `Retry-After` capped at
/// `max_delay`, else `base_delay * 2^(retry-1)` capped at `max_delay`, of which the upper
/// half is random ("equal jitter") so that clients that failed together spread out.
pub(crate) fn backoff(policy: &RetryPolicy, retry: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(policy.max_delay);
    }
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    let full = policy
        .base_delay
        .saturating_mul(factor)
        .min(policy.max_delay);
    let half = full / 2;
    let jitter_nanos = fastrand::u64(0..=u64::try_from(half.as_nanos()).unwrap_or(u64::MAX));
    half + Duration::from_nanos(jitter_nanos)
}

/// A `Retry-After` value: delay seconds, or an HTTP date (a past date means now).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // Some servers send fractional seconds.
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
