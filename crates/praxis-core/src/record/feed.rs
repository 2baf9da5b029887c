//! The live feed's events and the published JSON Schemas.

use super::Record;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A ledger entry as `praxis ledger export` writes it (one JSON line) and as the live feed's
/// entry events carry it: the chain fields, and the record (`kind`, `payload`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntryLine {
    pub run_id: String,
    pub seq: u64,
    /// RFC 3339 UTC time the entry was appended.
    pub at: String,
    pub prev_hash: String,
    pub hash: String,
    #[serde(flatten)]
    pub record: Record,
}

/// One event of a run's live feed (`GET /v1/runs/{id}/events`, server-sent events). The SSE
/// `event` field names the variant: an entry's kind for entries (with `id` = its seq), or
/// `delta`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FeedEvent {
    /// A durable ledger entry (SSE `event` = its kind, `id` = its seq).
    Entry(Box<EntryLine>),
    /// Streamed model text, not ledgered (SSE `event` = `delta`).
    Delta(Delta),
}

/// The data of a `delta` feed event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Delta {
    pub text: String,
}

/// The JSON Schema of [`Record`] (what `GET /v1/schema/records` serves as `records`).
pub fn record_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Record)).expect("a schema is JSON")
}

/// The JSON Schema of the live feed's event data ([`FeedEvent`]).
pub fn feed_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(FeedEvent)).expect("a schema is JSON")
}
