//! # Praxis as a library
//!
//! A governed agent loop to embed in your own program. A model *proposes*; the kernel
//! *decides* (contract, run policy, writ); tools run in the sandbox; every step is recorded
//! in a hash-chained ledger. This crate is the front door to the same runtime `praxis run`
//! uses: nothing here re-implements the loop.
//!
//! - [`Agent`]: stateless by default. You pass the history, it returns the steps and the
//!   new messages. The record is kept in memory (no data dir, no `$HOME`); one builder
//!   call ([`AgentBuilder::durable`]) keeps it in a data dir instead.
//! - [`Callbacks`]: streamed text and reasoning, step start and end, usage, tool calls
//!   and results, the turn's stop reason.
//! - [`ports`]: audit, budget, critic, delivery and usage sink, each a trait with a
//!   working default, set on the builder.
//! - [`build_system_prompt`]: the built-in system prompt, for callers that drive their
//!   own loop or want to see what the model is told.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), praxis::AgentError> {
//! let agent = praxis::Agent::builder()
//!     .provider("openai:gpt-4.1-mini") // or "mock", "scripted:FILE", a tier name
//!     .workspace("./repo")
//!     .build()?;
//! let history = Vec::new();
//! let result = agent
//!     .run(
//!         &history,
//!         "Fix the failing test",
//!         praxis::Callbacks::default()
//!             .on_delta(|t| print!("{t}"))
//!             .on_turn_end(|reason| eprintln!("{reason:?}")),
//!     )
//!     .await?;
//! println!("{:?} in {} steps", result.text, result.steps.len());
//! # Ok(())
//! # }
//! ```

mod agent;
mod callbacks;
pub mod cmd;
pub mod fanout;
pub mod ports;

pub use agent::{Agent, AgentBuilder, AgentError, RunControl, RunResult, Step, toml_value};
pub use callbacks::Callbacks;
pub use praxis_core::record::{Execution, ModelResponseRecord, ProposalRecord};
pub use praxis_core::{
    Message, PromptData, Protocol, Role, RunStatus, StopReason, Usage, build_system_prompt,
};
pub use praxis_runtime::Cancel;
pub use praxis_runtime::critic::{Judgement, KeyResult, KeyResultVerdict};
