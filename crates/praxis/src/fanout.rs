//! Fan-out: N tasks × M providers, each run in a [`Lane`] slot keyed by its provider, so
//! the whole batch keeps a global bound and each provider its own.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use praxis::fanout::{LaneLimits, fanout};
//! let base = praxis::Agent::builder().config("models.second", vec!["mock"]);
//! let tasks = vec!["List the files".to_string(), "Say hello".to_string()];
//! let providers = vec!["mock".to_string(), "second".to_string()];
//! let limits = LaneLimits { global: 2, per_key: 1 };
//! let results = fanout(&base, &tasks, &providers, limits).await;
//! assert_eq!(results.len(), 4);
//! for r in &results {
//!     let run = r.result.as_ref().unwrap();
//!     assert_eq!(run.run_id, r.run_id);
//! }
//! # }
//! ```

use crate::agent::{AgentBuilder, AgentError, RunControl, RunResult};
use crate::callbacks::Callbacks;
pub use praxis_runtime::lane::{Lane, LaneLimits};
use std::time::Instant;

/// One run of the fan-out.
#[derive(Debug)]
pub struct FanoutResult {
    /// Index into the tasks.
    pub task: usize,
    pub provider: String,
    /// Assigned before the run starts, so a run that failed to start has one too.
    pub run_id: String,
    pub result: Result<RunResult, AgentError>,
    /// When the run got its slot, and when it gave it back.
    pub started: Instant,
    pub finished: Instant,
}

/// Runs every task with every provider (`base` with `.provider(p)`), at most
/// `limits.global` at once and `limits.per_key` per provider. Results come in task-major
/// order (task 0 with each provider, then task 1...).
pub async fn fanout(
    base: &AgentBuilder,
    tasks: &[String],
    providers: &[String],
    limits: LaneLimits,
) -> Vec<FanoutResult> {
    let lane = Lane::new(limits);
    let agents: Vec<_> = providers
        .iter()
        .map(|p| {
            base.clone()
                .provider(p.clone())
                .build()
                .map_err(|e| e.to_string())
        })
        .collect();
    let mut handles = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        for (p, provider) in providers.iter().enumerate() {
            let (lane, agent, task, provider) = (
                lane.clone(),
                agents[p].clone(),
                task.clone(),
                provider.clone(),
            );
            handles.push(tokio::spawn(async move {
                let run_id = praxis_runtime::new_run_id();
                let _slot = lane.acquire(&provider).await;
                let started = Instant::now();
                let result = match agent {
                    Ok(agent) => {
                        let control = RunControl {
                            run_id: Some(run_id.clone()),
                            ..RunControl::default()
                        };
                        agent
                            .run_with(&[], &task, &Callbacks::default(), control)
                            .await
                    }
                    Err(message) => Err(AgentError::Setting {
                        setting: "provider",
                        message,
                    }),
                };
                FanoutResult {
                    task: t,
                    provider,
                    run_id,
                    result,
                    started,
                    finished: Instant::now(),
                }
            }));
        }
    }
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(result) => results.push(result),
            // A panicking run is a bug: surface it where it happened.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    results
}
