//! [`Agent`]: a governed agent loop for embedding. A run goes through the runtime's one
//! path (`run_request::resolve_in`, then `Runtime::run`): the same kernel, policy, writ,
//! sandbox and ledger records as `praxis run`.

mod drive;

use crate::callbacks::Callbacks;
use crate::ports::{
    Audit, AuditError, Budget, BudgetDenied, Checkpointer, Critic, Delivery, LedgerCheckpointer,
    MemoryCheckpointer, Ports, Review, UsageSink,
};
use drive::Job;
use praxis_core::record::{Execution, ModelResponseRecord, ProposalRecord};
use praxis_core::{Conversation, Message, Role, RunStatus, StopReason, SystemPrompt, Usage};
use praxis_ledger::checkpoint::CheckpointKey;
use praxis_ledger::{Entry, Ledger};
use praxis_runtime::approval::{Approver, FixedDecision};
use praxis_runtime::config::Override;
use praxis_runtime::critic::{Judgement, KeyResult};
use praxis_runtime::home::WorkspaceOrigin;
use praxis_runtime::run_request::{self, CognitionRequest, Script};
use praxis_runtime::{Cancel, DataHome, Runtime, WritGrant};
use praxis_tools::{Registry, SandboxSettings, ToolLimits};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why an agent could not be built or a run could not start. A run that starts and then
/// fails (model error, denied call, budget) is not an error: see [`RunResult::stop_reason`].
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A builder setting was refused; `setting` names the builder method.
    #[error("{setting}: {message}")]
    Setting {
        setting: &'static str,
        message: String,
    },
    #[error("data dir: {0}")]
    Home(#[from] praxis_runtime::home::HomeError),
    #[error("writ: {0}")]
    Writ(#[from] praxis_writ::WritError),
    #[error("checkpoint key: {0}")]
    Checkpoint(#[from] praxis_ledger::checkpoint::CheckpointError),
    #[error("ledger: {0}")]
    Ledger(#[from] praxis_ledger::LedgerError),
    #[error(transparent)]
    Runtime(#[from] praxis_runtime::RuntimeError),
    /// The budget port refused to start the run.
    #[error(transparent)]
    Budget(#[from] BudgetDenied),
    /// The audit port refused the run's record.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The critic could not read the run's evidence from its ledger.
    #[error("critic: {0}")]
    Critic(String),
    #[error("workspace `{path}`: {source}")]
    Workspace {
        path: String,
        source: std::io::Error,
    },
}

fn setting(setting: &'static str, message: impl Into<String>) -> AgentError {
    AgentError::Setting {
        setting,
        message: message.into(),
    }
}

/// One model call of a run and what came of it, read back from the run's ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The reply as recorded (`step`, `content`, `tool_calls`, `usage`, `reasoning`).
    pub reply: ModelResponseRecord,
    /// The calls the kernel judged for this reply, with their verdicts.
    pub calls: Vec<ProposalRecord>,
    /// The calls that ran.
    pub results: Vec<Execution>,
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub run_id: String,
    /// The final answer (None when the run stopped without one).
    pub text: Option<String>,
    pub status: RunStatus,
    pub stop_reason: StopReason,
    /// Why it failed, when it did.
    pub error: Option<String>,
    pub steps: Vec<Step>,
    pub usage: Usage,
    /// The turns this run added, the task first: append them to the history for the next
    /// turn. (When compaction shortened the conversation, the whole compacted
    /// conversation but the system prompt.)
    pub new_messages: Vec<Message>,
    /// The run's ledger entries, hash-chained and ending in a signed checkpoint.
    pub entries: Vec<Entry>,
    /// The critic's verdicts on the key results (see [`AgentBuilder::critic`]); None when
    /// none were given.
    pub judgement: Option<Judgement>,
    /// Why the delivery port failed, if it did (the run's result is here all the same).
    pub delivery_error: Option<String>,
}

/// Builds an [`Agent`]; see [`Agent::builder`].
#[derive(Clone, Default)]
pub struct AgentBuilder {
    provider: Option<String>,
    workspace: Option<PathBuf>,
    durable: Option<PathBuf>,
    system_prompt: Option<SystemPrompt>,
    flags: Vec<Override>,
    max_steps: Option<u32>,
    max_seconds: Option<u64>,
    protocol: Option<String>,
    tools: Option<Vec<String>>,
    read_only: bool,
    writ: Option<WritGrant>,
    approver: Option<Arc<dyn Approver>>,
    tool_limits: Option<ToolLimits>,
    ports: Ports,
}

impl AgentBuilder {
    /// The model: `mock`, `scripted:FILE`, `openai:MODEL`, `anthropic:MODEL`,
    /// `ollama:MODEL`, a preset (`huggingface:MODEL`, `lmstudio:MODEL`, `vllm:MODEL`,
    /// `llamacpp:MODEL`), a tier name from the configuration, or a comma-separated failover
    /// list. Default: the configuration's (`mock` unless a `praxis.toml` says otherwise).
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// The directory the agent works in (default: a fresh empty temporary directory that
    /// lives as long as the agent).
    pub fn workspace(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workspace = Some(dir.into());
        self
    }

    /// Keep the record in a data dir (`dir` as `PRAXIS_HOME`): its SQLite ledger, keys,
    /// development writ, `praxis.toml` and prices. Without it a run keeps its record in
    /// memory and nothing is written anywhere but the workspace.
    pub fn durable(mut self, dir: impl Into<PathBuf>) -> Self {
        self.durable = Some(dir.into());
        self
    }

    /// Replace the built-in system prompt (see [`crate::build_system_prompt`]).
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(SystemPrompt::Replace(prompt.into()));
        self
    }

    /// Append instructions to the built-in system prompt.
    pub fn instructions(mut self, extra: impl Into<String>) -> Self {
        self.system_prompt = Some(SystemPrompt::Append(extra.into()));
        self
    }

    /// Set any configuration key as a flag would (`providers.openai.base_url`,
    /// `model.tool_choice`, `compaction.mode`, `models.fast` (a tier) ...). See
    /// `praxis config`.
    pub fn config(mut self, key: &str, value: impl Into<toml_value::Value>) -> Self {
        self.flags.push(Override::flag(
            key,
            value.into().0,
            "Agent::builder().config",
        ));
        self
    }

    pub fn max_steps(mut self, n: u32) -> Self {
        self.max_steps = Some(n);
        self
    }

    pub fn max_seconds(mut self, n: u64) -> Self {
        self.max_seconds = Some(n);
        self
    }

    /// `tools` (native tool calls, the default) or `cmd` (`<cmd>` blocks).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// The tools the model is offered (default: every built-in tool).
    pub fn tools<S: Into<String>>(mut self, tools: impl IntoIterator<Item = S>) -> Self {
        self.tools = Some(tools.into_iter().map(Into::into).collect());
        self
    }

    /// Deny every call whose effect is above `read`.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The writ runs act under (default: a development writ, issued for each agent with a
    /// key of its own in memory, or with the data dir's key when durable).
    pub fn writ(mut self, token: impl Into<String>, anchor: praxis_writ::TrustAnchor) -> Self {
        self.writ = Some(WritGrant {
            token: token.into(),
            anchor,
        });
        self
    }

    /// Who answers calls the writ says need approval (default: nobody, they are denied).
    pub fn approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = Some(approver);
        self
    }

    /// Sandbox settings of the commands tools start (default: confined where the host
    /// allows, no network).
    pub fn sandbox(mut self, sandbox: SandboxSettings) -> Self {
        self.tool_limits
            .get_or_insert_with(ToolLimits::default)
            .sandbox = sandbox;
        self
    }

    /// Where each run's ledger entries go after the run (default:
    /// [`crate::ports::LedgerAudit`], which verifies the chain and keeps them).
    pub fn audit(mut self, audit: Arc<dyn Audit>) -> Self {
        self.ports.audit = audit;
        self
    }

    /// A spending gate asked before each run and told the actual spend after it (default:
    /// [`crate::ports::Unlimited`]).
    pub fn budget(mut self, budget: Arc<dyn Budget>) -> Self {
        self.ports.budget = budget;
        self
    }

    /// Judge each completed run against `key_results` with the runtime's critic (the one
    /// `praxis job` uses) over the agent's provider; the verdicts are in
    /// [`RunResult::judgement`].
    pub fn critic(mut self, key_results: Vec<KeyResult>) -> Self {
        self.ports.critic = Some(Review {
            critic: None,
            key_results,
        });
        self
    }

    /// [`AgentBuilder::critic`] with a critic of your own (e.g.
    /// `praxis_runtime::critic::Critic::new(reviewer_provider)`).
    pub fn critic_with(mut self, critic: Arc<dyn Critic>, key_results: Vec<KeyResult>) -> Self {
        self.ports.critic = Some(Review {
            critic: Some(critic),
            key_results,
        });
        self
    }

    /// Where each run's summary is delivered (default: nowhere but the returned result).
    pub fn delivery(mut self, delivery: Arc<dyn Delivery>) -> Self {
        self.ports.delivery = Some(delivery);
        self
    }

    /// Where runs are recorded so that one stopped before its end can be resumed with
    /// [`Agent::resume`] (default: the data dir's ledger when [`AgentBuilder::durable`],
    /// else [`crate::ports::MemoryCheckpointer`], an in-memory ledger per run kept until
    /// the run finishes).
    pub fn checkpointer(mut self, checkpointer: Arc<dyn Checkpointer>) -> Self {
        self.ports.checkpointer = Some(checkpointer);
        self
    }

    /// Receives each model call's usage (default: [`crate::ports::UsageTotals`]).
    pub fn usage_sink(mut self, sink: Arc<dyn UsageSink>) -> Self {
        self.ports.usage = sink;
        self
    }

    /// Checks the settings and the provider (a missing API key fails here), and prepares
    /// the writ and checkpoint key.
    pub fn build(mut self) -> Result<Agent, AgentError> {
        let env = |k: &str| std::env::var(k).ok();
        let home = self.durable.as_ref().map(DataHome::at);
        let (workspace, scratch) = match &self.workspace {
            Some(dir) => {
                let admitted = match &home {
                    Some(home) => home
                        .admit_workspace(dir, WorkspaceOrigin::Given)
                        .map_err(|e| setting("workspace", e.to_string()))?,
                    None => std::fs::canonicalize(dir).map_err(|source| AgentError::Workspace {
                        path: dir.display().to_string(),
                        source,
                    })?,
                };
                (admitted, None)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("praxis-agent-")
                    .tempdir()
                    .map_err(|source| AgentError::Workspace {
                        path: std::env::temp_dir().display().to_string(),
                        source,
                    })?;
                let path =
                    std::fs::canonicalize(dir.path()).map_err(|source| AgentError::Workspace {
                        path: dir.path().display().to_string(),
                        source,
                    })?;
                (path, Some(Arc::new(dir)))
            }
        };
        let cognition = cognition_request(self.provider.as_deref());
        // Fail at build time, not at the first run, on a bad provider or missing key.
        run_request::cognition_in(
            home.as_ref(),
            Some(&workspace),
            &cognition,
            &self.flags,
            &env,
        )
        .map_err(|e| setting("provider", e.message))?;
        let (durable, writ, checkpoint_key) = match &home {
            Some(home) => {
                let ledger: Arc<dyn Ledger> = home.open_ledger()?.ledger();
                let runtime =
                    Runtime::new(ledger, Arc::new(Registry::builtin())).with_home(home.clone());
                let writ = match self.writ {
                    Some(writ) => writ,
                    None => home.writ_grant(None, &env)?,
                };
                (Some(runtime), writ, home.checkpoint_key()?.0)
            }
            None => {
                let writ = match self.writ {
                    Some(writ) => writ,
                    None => development_writ()?,
                };
                (None, writ, CheckpointKey::generate()?)
            }
        };
        let checkpointer: Arc<dyn Checkpointer> = match (&durable, self.ports.checkpointer.take()) {
            (Some(_), Some(_)) => {
                return Err(setting(
                    "checkpointer",
                    "a durable agent checkpoints in its data dir's ledger; set .durable() or \
                     .checkpointer(), not both",
                ));
            }
            (Some(runtime), None) => Arc::new(LedgerCheckpointer(runtime.ledger().clone())),
            (None, Some(checkpointer)) => checkpointer,
            (None, None) => Arc::new(MemoryCheckpointer::default()),
        };
        Ok(Agent {
            inner: Arc::new(Inner {
                home,
                durable,
                checkpointer,
                registry: Arc::new(Registry::builtin()),
                cognition,
                flags: self.flags,
                workspace,
                _scratch: scratch,
                system_prompt: self.system_prompt,
                max_steps: self.max_steps,
                max_seconds: self.max_seconds,
                protocol: self.protocol,
                tools: self.tools,
                read_only: self.read_only,
                writ,
                checkpoint_key: Arc::new(checkpoint_key),
                approver: self
                    .approver
                    .unwrap_or_else(|| Arc::new(FixedDecision::never())),
                tool_limits: self.tool_limits.unwrap_or_default(),
                ports: self.ports,
            }),
        })
    }
}

/// A development writ issued with a key that exists only in this process.
fn development_writ() -> Result<WritGrant, AgentError> {
    let key = praxis_writ::IssuerKey::generate();
    let token = praxis_writ::issue(
        &praxis_writ::WritSpec::development("library"),
        &key,
        std::time::SystemTime::now(),
    )?;
    Ok(WritGrant {
        token,
        anchor: praxis_writ::TrustAnchor::from_hex(&key.public_hex())?,
    })
}

/// `scripted:FILE` is the scripted provider with its script; anything else goes to the
/// resolver as a provider selection.
fn cognition_request(provider: Option<&str>) -> CognitionRequest {
    const NAMES: [&str; 3] = ["provider", "provider", "provider"];
    match provider {
        Some(p) if p.starts_with("scripted:") => CognitionRequest::named(
            None,
            None,
            Some(Script::File(PathBuf::from(&p["scripted:".len()..]))),
            NAMES,
        ),
        other => CognitionRequest::named(other.map(str::to_string), None, None, NAMES),
    }
}

struct Inner {
    home: Option<DataHome>,
    /// The durable runtime (None: each run gets a runtime over the checkpointer's ledger).
    durable: Option<Runtime>,
    checkpointer: Arc<dyn Checkpointer>,
    registry: Arc<Registry>,
    cognition: CognitionRequest,
    flags: Vec<Override>,
    workspace: PathBuf,
    _scratch: Option<Arc<tempfile::TempDir>>,
    system_prompt: Option<SystemPrompt>,
    max_steps: Option<u32>,
    max_seconds: Option<u64>,
    protocol: Option<String>,
    tools: Option<Vec<String>>,
    read_only: bool,
    writ: WritGrant,
    checkpoint_key: Arc<CheckpointKey>,
    approver: Arc<dyn Approver>,
    tool_limits: ToolLimits,
    ports: Ports,
}

/// A governed agent. Cheap to clone; runs may go on concurrently.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), praxis::AgentError> {
/// let agent = praxis::Agent::builder().provider("mock").build()?;
/// let result = agent
///     .run(&[], "What is in this workspace?", praxis::Callbacks::default())
///     .await?;
/// assert_eq!(result.stop_reason, praxis::StopReason::Completed);
/// // Stateless: the caller keeps the history.
/// let history = result.new_messages;
/// let again = agent.run(&history, "And now?", Default::default()).await?;
/// assert!(again.text.is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl Agent {
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// The workspace runs act in (canonical).
    pub fn workspace(&self) -> &Path {
        &self.inner.workspace
    }

    /// Runs `task` after `history` (earlier turns, oldest first, without a system
    /// message) to its end.
    pub async fn run(
        &self,
        history: &[Message],
        task: &str,
        callbacks: Callbacks,
    ) -> Result<RunResult, AgentError> {
        self.run_with(history, task, &callbacks, RunControl::default())
            .await
    }

    /// [`Agent::run`] with a cancel handle and a run id chosen by the caller.
    pub async fn run_with(
        &self,
        history: &[Message],
        task: &str,
        callbacks: &Callbacks,
        control: RunControl,
    ) -> Result<RunResult, AgentError> {
        let inner = &*self.inner;
        if let Some(i) = history.iter().position(|m| m.role == Role::System) {
            return Err(setting(
                "history",
                format!(
                    "message {i} is a system message; set the system prompt with \
                     .system_prompt() or .instructions() instead"
                ),
            ));
        }
        let mut options = self.options(task, inner.workspace.clone())?;
        options.spec.conversation = Box::new(Conversation {
            history: history.to_vec(),
            system_prompt: inner.system_prompt.clone(),
        });
        options.cancel = control.cancel.unwrap_or_default();
        let run_id = control.run_id.unwrap_or_else(praxis_runtime::new_run_id);
        options.run_id = Some(run_id.clone());
        let runtime = self.runtime_for(&run_id);
        self.drive(runtime, Job::Run, options, callbacks, history.len(), task)
            .await
    }
}

/// Per-run controls for [`Agent::run_with`].
#[derive(Clone, Default)]
pub struct RunControl {
    /// Cancels the run (its running tool's process group is killed).
    pub cancel: Option<Cancel>,
    /// The run's id (default: a fresh ULID).
    pub run_id: Option<String>,
}

/// A configuration value for [`AgentBuilder::config`].
pub mod toml_value {
    /// A TOML value (strings, integers, booleans, arrays of strings).
    #[derive(Clone)]
    pub struct Value(pub(crate) toml::Value);
    impl From<&str> for Value {
        fn from(v: &str) -> Self {
            Value(toml::Value::String(v.into()))
        }
    }
    impl From<String> for Value {
        fn from(v: String) -> Self {
            Value(toml::Value::String(v))
        }
    }
    impl From<i64> for Value {
        fn from(v: i64) -> Self {
            Value(toml::Value::Integer(v))
        }
    }
    impl From<bool> for Value {
        fn from(v: bool) -> Self {
            Value(toml::Value::Boolean(v))
        }
    }
    impl From<Vec<&str>> for Value {
        fn from(v: Vec<&str>) -> Self {
            Value(toml::Value::Array(
                v.into_iter()
                    .map(|s| toml::Value::String(s.into()))
                    .collect(),
            ))
        }
    }
}
