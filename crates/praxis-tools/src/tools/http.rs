//! `http`: one HTTP request to a host the writ allowed, behind an SSRF guard that no writ can
//! switch off: the host is resolved once, every address is checked (loopback, private,
//! link-local/metadata, CGNAT, multicast, broadcast, unspecified and their IPv6 forms are
//! refused), and the connection goes to exactly the checked addresses (no second lookup,
//! no proxy). Redirects are followed by hand on the same host only, each hop checked
//! again; a redirect to another host is returned, not followed (the writ approved this host,
//! not that one). Body size and time are capped.

use super::shell::{call_timeout, push_line};
use crate::{BoxFuture, ExecContext, Tool};
use praxis_core::{Effect, ExecStatus, Observation, Resource};
use praxis_sandbox::ssrf::AddressGuard;
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue, LOCATION};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const NAME: &str = "http";
const MAX_REDIRECTS: usize = 5;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Head => reqwest::Method::HEAD,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        }
    }
}

/// Arguments of `http`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpArgs {
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Request method (default GET).
    #[serde(default)]
    pub method: Option<HttpMethod>,
    /// Request headers.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Request body (text).
    #[serde(default)]
    pub body: Option<String>,
    /// Seconds before the request is abandoned (default 30, at most 300).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub timeout_secs: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct HttpTool;

/// The host part of a URL as the writ names hosts: lowercase name or bare IP literal.
pub fn host_of(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Domain(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

impl Tool for HttpTool {
    type Args = HttpArgs;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str = "Make one HTTP(S) request to a public host. Returns the status line, response \
             headers and the body (capped). Private, loopback and metadata addresses are \
             refused; redirects to another host are returned, not followed.";
    const EFFECT: Effect = Effect::Network;

    fn touches(&self, args: &HttpArgs) -> Vec<Resource> {
        let host = Url::parse(&args.url)
            .ok()
            .and_then(|u| host_of(&u))
            .unwrap_or_else(|| args.url.clone());
        vec![Resource::Host { host }]
    }

    fn run<'a>(&'a self, ctx: &'a ExecContext, args: HttpArgs) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let started = Instant::now();
            let mut observation = request(ctx, args).await.unwrap_or_else(|o| o);
            observation.duration_ms = started.elapsed().as_millis() as u64;
            observation
        })
    }
}

/// Resolves `url`'s host once and checks every address; returns the addresses to connect to.
async fn resolve_checked(
    url: &Url,
    guard: &AddressGuard,
    remaining: Duration,
) -> Result<Vec<SocketAddr>, String> {
    let host = host_of(url).ok_or_else(|| format!("`{url}` has no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("`{url}` has no port"))?;
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        _ => tokio::time::timeout(remaining, tokio::net::lookup_host((host.as_str(), port)))
            .await
            .map_err(|_| format!("resolving `{host}` timed out"))?
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("`{host}` resolves to no address"));
    }
    // One bad address refuses the host: a name answering with both a public and a private
    // address is a rebinding attempt, not a choice to make.
    for addr in &addrs {
        guard.check(&host, *addr)?;
    }
    Ok(addrs)
}

fn error(text: impl Into<String>) -> Observation {
    Observation::error(text)
}

async fn request(ctx: &ExecContext, args: HttpArgs) -> Result<Observation, Observation> {
    let guard = &ctx.limits.sandbox.http;
    let timeout = call_timeout(ctx, args.timeout_secs, DEFAULT_TIMEOUT, MAX_TIMEOUT)?;
    let deadline = Instant::now() + timeout;
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let mut url =
        Url::parse(&args.url).map_err(|e| error(format!("invalid url `{}`: {e}", args.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(error(format!(
            "invalid url `{}`: only http and https are supported",
            args.url
        )));
    }
    let origin_host =
        host_of(&url).ok_or_else(|| error(format!("invalid url `{}`: no host", args.url)))?;
    let mut method = args.method.unwrap_or_default().as_reqwest();
    let mut body = args.body.clone();
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in args.headers.iter().flatten() {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| error(format!("invalid header name `{name}`: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| error(format!("invalid value for header `{name}`: {e}")))?;
        headers.insert(name, value);
    }
    let mut hops: Vec<String> = Vec::new();
    for _ in 0..=MAX_REDIRECTS {
        let addrs = resolve_checked(&url, guard, remaining())
            .await
            .map_err(|why| error(with_hops(&hops, &format!("{url}: {why}"))))?;
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(remaining());
        if let Some(url::Host::Domain(domain)) = url.host() {
            builder = builder.resolve_to_addrs(domain, &addrs);
        }
        let client = builder
            .build()
            .map_err(|e| error(format!("cannot build the HTTP client: {e}")))?;
        let mut req = client
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(body) = &body {
            req = req.body(body.clone());
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(Observation {
                    status: ExecStatus::Timeout,
                    ..error(with_hops(
                        &hops,
                        &format!("{url}: timed out after {timeout:?}"),
                    ))
                });
            }
            Err(e) => {
                return Err(error(with_hops(
                    &hops,
                    &format!("{url}: request failed: {}", error_chain(&e)),
                )));
            }
        };
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status.is_redirection()
            && let Some(location) = location
        {
            let next = url.join(&location).map_err(|e| {
                error(format!(
                    "{url} redirects to an invalid location `{location}`: {e}"
                ))
            })?;
            hops.push(format!("{} {url} -> {next}", status.as_u16()));
            if !matches!(next.scheme(), "http" | "https") {
                return Err(error(with_hops(
                    &hops,
                    "redirect refused: not http or https",
                )));
            }
            // Checked even when it will not be followed, so the model learns it is blocked.
            if let Err(why) = resolve_checked(&next, guard, remaining()).await {
                return Err(error(with_hops(
                    &hops,
                    &format!("redirect refused: {next}: {why}"),
                )));
            }
            if host_of(&next).as_deref() != Some(origin_host.as_str()) {
                let mut obs = render(ctx, &url, response, &hops).await;
                push_line(
                    &mut obs.output,
                    &format!(
                        "[redirect to another host not followed: this call was approved for \
                         `{origin_host}`; call http with {next} to follow it]"
                    ),
                );
                return Ok(obs);
            }
            if status == reqwest::StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = None;
            }
            url = next;
            continue;
        }
        return Ok(render(ctx, &url, response, &hops).await);
    }
    Err(error(with_hops(
        &hops,
        &format!("more than {MAX_REDIRECTS} redirects; stopped"),
    )))
}

fn with_hops(hops: &[String], message: &str) -> String {
    if hops.is_empty() {
        return message.to_string();
    }
    format!("{message}\nredirects: {}", hops.join("; "))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Status line, redirects, headers and the body, read up to the output cap (the rest is
/// not downloaded).
async fn render(
    ctx: &ExecContext,
    url: &Url,
    mut response: reqwest::Response,
    hops: &[String],
) -> Observation {
    let cap = ctx.limits.output_bytes;
    let status = response.status();
    let mut head = format!(
        "HTTP {} {} ({url})\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if !hops.is_empty() {
        head.push_str(&format!("redirects: {}\n", hops.join("; ")));
    }
    for (name, value) in response.headers() {
        head.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    head.push('\n');
    let room = cap.saturating_sub(head.len());
    let mut body: Vec<u8> = Vec::new();
    let mut cut = false;
    let mut read_error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(room - body.len());
                body.extend_from_slice(&chunk[..take]);
                if take < chunk.len() {
                    cut = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(error_chain(&e));
                break;
            }
        }
    }
    let mut output = head;
    output.push_str(&String::from_utf8_lossy(&body));
    let mut truncated_bytes = 0;
    if cut {
        let total = response.content_length();
        truncated_bytes = total.map_or(1, |t| t.saturating_sub(body.len() as u64));
        push_line(
            &mut output,
            &match total {
                Some(t) => format!("[... body cut at {} of {t} bytes ...]", body.len()),
                None => format!("[... body cut at {} bytes ...]", body.len()),
            },
        );
    }
    if let Some(e) = &read_error {
        push_line(&mut output, &format!("[body read failed: {e}]"));
    }
    let ok = (status.is_success() || status.is_redirection()) && read_error.is_none();
    Observation {
        status: if ok {
            ExecStatus::Ok
        } else {
            ExecStatus::Error
        },
        exit_code: None,
        output,
        truncated_bytes,
        duration_ms: 0,
        files_changed: Vec::new(),
        child_spent: None,
        git_removed: Vec::new(),
    }
}
