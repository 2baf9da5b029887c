//! The delivery port: where a finished run's summary goes. [`Stdout`] prints it as one
//! JSON line, [`JsonlFile`] appends it to a file, [`Webhook`] POSTs it with retries,
//! exponential backoff and an HMAC-SHA256 signature of the body.

use super::BoxFuture;
use crate::RunResult;
use hmac::{Hmac, Mac};
use praxis_core::{RunStatus, StopReason, Usage};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// What is delivered: the run's outcome, not its record (that is the ledger's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub status: RunStatus,
    pub stop_reason: StopReason,
    pub text: Option<String>,
    pub error: Option<String>,
    pub usage: Usage,
    pub steps: usize,
}

impl RunSummary {
    pub fn of(result: &RunResult) -> Self {
        RunSummary {
            run_id: result.run_id.clone(),
            status: result.status,
            stop_reason: result.stop_reason,
            text: result.text.clone(),
            error: result.error.clone(),
            usage: result.usage,
            steps: result.steps.len(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("delivery: cannot encode the summary: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("delivery to {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("delivery to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("webhook {url}: {message}")]
    Config { url: String, message: String },
    /// The receiver refused the delivery (a 4xx other than 408/429): not retried.
    #[error("webhook {url} refused the delivery with HTTP {status}")]
    Refused { url: String, status: u16 },
    #[error("webhook {url} failed {attempts} times; last: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },
}

/// Delivers a finished run's summary.
pub trait Delivery: Send + Sync {
    fn deliver<'a>(&'a self, summary: &'a RunSummary) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Prints the summary as one JSON line on stdout.
pub struct Stdout;

impl Delivery for Stdout {
    fn deliver<'a>(&'a self, summary: &'a RunSummary) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let line = serde_json::to_string(summary)?;
            writeln!(std::io::stdout().lock(), "{line}").map_err(DeliveryError::Stdout)
        })
    }
}

/// Appends the summary as one JSON line to a file (created if missing).
pub struct JsonlFile(pub PathBuf);

impl Delivery for JsonlFile {
    fn deliver<'a>(&'a self, summary: &'a RunSummary) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let line = serde_json::to_string(summary)? + "\n";
            let file_error = |source| DeliveryError::File {
                path: self.0.display().to_string(),
                source,
            };
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.0)
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .map_err(file_error)
        })
    }
}

/// The header carrying `sha256=HEX`, the HMAC-SHA256 of the body under the shared secret.
pub const SIGNATURE_HEADER: &str = "x-praxis-signature";

/// POSTs the summary as JSON to a URL, signed (see [`SIGNATURE_HEADER`]) so the receiver
/// can check it came from the holder of the secret. Connection failures, timeouts, 408,
/// 429 and 5xx are retried with exponential backoff (`base_delay` doubled each attempt, at
/// most `max_delay`) up to `max_attempts` in all; any other non-2xx is final.
pub struct Webhook {
    url: reqwest::Url,
    secret: Vec<u8>,
    client: reqwest::Client,
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Webhook {
    /// A webhook to `url` (http or https) signing with `secret` (not empty).
    pub fn new(url: &str, secret: impl Into<Vec<u8>>) -> Result<Self, DeliveryError> {
        let config = |message: &str| DeliveryError::Config {
            url: url.to_string(),
            message: message.to_string(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| config(&format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(config("must be an http:// or https:// URL with a host"));
        }
        let secret = secret.into();
        if secret.is_empty() {
            return Err(config("the signing secret is empty"));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| config(&e.to_string()))?;
        Ok(Webhook {
            url: parsed,
            secret,
            client,
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        })
    }

    /// `sha256=HEX` of `body` under `secret`: what [`SIGNATURE_HEADER`] carries.
    pub fn signature(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `header` is the signature of `body` under `secret` (constant time).
    pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
        let Some(hex_sig) = header.strip_prefix("sha256=") else {
            return false;
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    }

    fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

impl Delivery for Webhook {
    fn deliver<'a>(&'a self, summary: &'a RunSummary) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(summary)?;
            let signature = Webhook::signature(&self.secret, &body);
            let url = self.url.to_string();
            let attempts = self.max_attempts.max(1);
            let mut last = String::new();
            for attempt in 1..=attempts {
                if attempt > 1 {
                    tokio::time::sleep(self.delay(attempt - 1)).await;
                }
                let sent = self
                    .client
                    .post(self.url.clone())
                    .header("content-type", "application/json")
                    .header(SIGNATURE_HEADER, &signature)
                    .header("x-praxis-run-id", &summary.run_id)
                    .header("x-praxis-attempt", attempt.to_string())
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => return Ok(()),
                    Ok(response) => {
                        let status = response.status().as_u16();
                        if !(status == 408 || status == 429 || status >= 500) {
                            return Err(DeliveryError::Refused { url, status });
                        }
                        last = format!("HTTP {status}");
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            Err(DeliveryError::Exhausted {
                url,
                attempts,
                last,
            })
        })
    }
}
