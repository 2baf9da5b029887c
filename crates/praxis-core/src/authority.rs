//! The seam between the kernel and a signed writ. The kernel asks an `Authority` about every
//! proposal and before every model call; implementations must be pure (time and spending
//! come in the request) so replay and what-if evaluation reproduce the same verdicts.

use crate::types::{Effect, Millis, Resource, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a run has consumed so far (derived from its recorded events, so it survives restarts).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Spent {
    pub tool_calls: u64,
    pub model_calls: u64,
    pub model_tokens: u64,
    /// Since the run started.
    pub wall_ms: u64,
    /// Money, in millionths of a US dollar, from the configured price table.
    pub usd_micros: u64,
    pub bytes_written: u64,
}

/// One proposal, as the authority sees it. Paths in `resources` are already normalised
/// relative to the workspace root by the run policy.
#[derive(Clone, Debug)]
pub struct AuthzRequest<'a> {
    pub tool: &'a str,
    pub arguments: &'a Value,
    pub effect: Effect,
    pub resources: &'a [Resource],
    pub now: Millis,
    pub spent: &'a Spent,
}

/// An authority's answer. `Exhausted` names a budget that this proposal (or the next model
/// call) would exceed: the proposal is denied and the run stops with `budget_exhausted`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    Verdict(Verdict),
    Exhausted { rule: String, reason: String },
}

pub trait Authority: Send + Sync {
    /// Judges one proposal that the run's own policy allowed.
    fn authorize(&self, request: &AuthzRequest<'_>) -> Authorization;

    /// Whether another model call is allowed (time window, model budgets).
    fn before_model_call(&self, now: Millis, spent: &Spent) -> Authorization;

    /// What is recorded at run start: writ id, digest, subject, tenant, the effective spec.
    fn describe(&self) -> Value;

    /// How long a proposal may wait for a human decision before it counts as denied.
    fn approval_timeout_ms(&self) -> Option<u64> {
        None
    }

    /// Whether the commands that `tools` start (they share one sandbox) may write the
    /// workspace's `.git` directory; otherwise it is read-only to them.
    fn commands_write_git(&self, tools: &[String]) -> bool {
        let _ = tools;
        false
    }
}
