//! `delegate`: start a sub-agent on a task under an attenuated writ. The contract lives here
//! so the kernel and policy judge it like any tool; the sub-run itself is driven by the
//! runtime (it needs cognition, the ledger and the parent's writ, which tools never see).

use crate::{BoxFuture, ExecContext, Placement, Tool};
use praxis_core::{Effect, Observation, Resource};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

pub const NAME: &str = "delegate";

/// Arguments of `delegate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateArgs {
    /// What the sub-agent should do.
    pub task: String,
    /// The sub-agent's writ spec (same keys as a writ spec file, as JSON). It is appended to
    /// this run's writ as an attenuation block, so it can only narrow this run's authority;
    /// anything that would widen it is refused.
    pub writ: Value,
    /// Maximum model calls of the sub-agent (default 10).
    #[serde(default)]
    pub max_steps: Option<u32>,
}

#[derive(Default)]
pub struct DelegateTool;

impl Tool for DelegateTool {
    type Args = DelegateArgs;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str = "Start a sub-agent on a task under a narrower writ; its final answer comes back as \
             this call's result.";
    // What the sub-agent may do is bounded by its own (attenuated) writ, checked on each of
    // its steps; starting it touches nothing.
    const EFFECT: Effect = Effect::Read;
    // The sub-run is driven by the runtime (and gets a worker of its own).
    const PLACEMENT: Placement = Placement::Driver;

    fn touches(&self, _: &DelegateArgs) -> Vec<Resource> {
        Vec::new()
    }

    fn run<'a>(&'a self, _: &'a ExecContext, _: DelegateArgs) -> BoxFuture<'a, Observation> {
        Box::pin(async {
            Observation::error(
                "delegate starts a sub-run and is executed by the runtime driver, which was not \
                 attached to this call",
            )
        })
    }
}
