//! `praxis job`: one objective, configured by the environment alone (the thoughtmesh Job
//! contract: `THOUGHTMESH_MODEL_CONFIG`, `_OBJECTIVE`, `_KEY_RESULTS`, `_TOOLS`, or the
//! same names with a `PRAXIS_` prefix; plus `PRAXIS_WRIT` and `PRAXIS_WORKSPACE`).
//!
//! The objective runs through the one run resolver ([`crate::run_request`]) under the writ,
//! narrowed by the tools' configs as an appended writ block. Then each key result is judged:
//! its `check` in the sandbox (through the `shell` tool, exit 0: met), or by the
//! [`Critic`] from the run's ledger. The job is achieved only when the run completed and
//! every key result is met.

pub mod config;

use crate::critic::{Critic, Evidence, JudgedBy, KeyResult, KeyResultVerdict, Quote};
use crate::driver::{Cancel, NoObserver, Runtime, WritGrant};
use crate::home::{DataHome, WorkspaceOrigin};
use crate::run_request::{self, Asked, CognitionRequest, RunRequest, Script};
use config::{JobConfig, JobConfigError, ProviderKind, WRIT, WritSource};
use praxis_core::{ExecStatus, RunStatus, Spent, StopReason, Usage};
use praxis_tools::{ExecContext, Workspace};
use praxis_writ::{TrustAnchor, WritSpec};
use serde::Serialize;
use std::sync::Arc;
use std::time::SystemTime;

/// Characters of a check's output kept as its evidence.
const CHECK_OUTPUT_CHARS: usize = 2000;

/// What `praxis job` prints: one JSON object.
#[derive(Clone, Debug, Serialize)]
pub struct JobReport {
    pub run_id: String,
    pub status: RunStatus,
    pub stop_reason: StopReason,
    pub final_answer: Option<String>,
    /// Why the run failed or was cancelled, when it did.
    pub error: Option<String>,
    pub key_results: Vec<KeyResultVerdict>,
    pub usage: JobUsage,
    /// Completed, and every key result met: the job exits 0 only then.
    pub achieved: bool,
}

/// Tokens the run used, and the critic's calls after it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobUsage {
    pub run: Usage,
    pub critic: Usage,
}

/// Why a job could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The configuration is refused (exit 2).
    #[error(transparent)]
    Config(#[from] JobConfigError),
    /// The run could not be driven (exit 1).
    #[error("{0}")]
    Run(String),
}

/// Runs the job `config` describes with `runtime` (whose ledger it records to), in `home`.
/// `env` is the process environment (the layered configuration reads it too); `cancel`
/// stops the run (the job then reports it without judging key results).
pub async fn run(
    home: &DataHome,
    runtime: &Runtime,
    config: &JobConfig,
    env: &dyn Fn(&str) -> Option<String>,
    cancel: Cancel,
) -> Result<JobReport, JobError> {
    let workspace = home
        .admit_workspace(&config.workspace, WorkspaceOrigin::Given)
        .map_err(|e| JobConfigError::new(config::WORKSPACE, e.to_string()))?;
    let overrides = config.model.env_overrides();
    let env_with_model = |key: &str| {
        overrides
            .iter()
            .find(|(var, _)| *var == key)
            .map(|(_, value)| value.clone())
            .or_else(|| env(key))
    };
    let mut request = RunRequest::new(
        Asked::new(config.objective.clone(), "objective"),
        workspace.clone(),
    );
    request.cognition = cognition(config);
    request.tools = config
        .tools
        .as_ref()
        .map(|tools| tools.iter().map(|t| t.name.clone()).collect());
    let resolved = run_request::resolve(home, request, &env_with_model).map_err(|e| {
        let variable = match e.field {
            Some("objective") => config.objective_var.clone(),
            _ => config.model_var.clone(),
        };
        JobConfigError::new(variable, e.message)
    })?;
    for warning in &resolved.warnings {
        eprintln!("praxis job: warning: {warning}");
    }
    let mut options = resolved.options;
    options.writ = Some(writ(home, config, env)?);
    let (key, _) = home
        .checkpoint_key()
        .map_err(|e| JobError::Run(e.to_string()))?;
    options.checkpoint_key = Some(Arc::new(key));
    options.cancel = cancel.clone();
    if let Some(run_id) = &config.run_id {
        // The run the server created for this pod: recorded under its id, and only once.
        let recorded = runtime
            .ledger()
            .entries(run_id, 0)
            .map_err(|e| JobError::Run(e.to_string()))?;
        if !recorded.is_empty() {
            return Err(JobError::Run(format!(
                "{}={run_id}: that run already has {} ledger entries; a job attaches only to a run that has not started",
                config::RUN_ID,
                recorded.len()
            )));
        }
        options.run_id = Some(run_id.clone());
    }
    let critic_provider = options.provider.clone();
    let tool_limits = options.tool_limits.clone();
    let report = runtime
        .run(options, &NoObserver)
        .await
        .map_err(|e| JobError::Run(e.to_string()))?;
    let result = &report.result;

    let mut usage = JobUsage {
        run: result.usage,
        critic: Usage::default(),
    };
    let key_results = if result.status == RunStatus::Completed {
        let judged = judge(
            runtime,
            &report.run_id,
            &workspace,
            tool_limits,
            &config.key_results,
            Critic::new(critic_provider),
            &cancel,
        )
        .await?;
        usage.critic = judged.1;
        judged.0
    } else {
        let why = format!("not judged: the run ended {}", result.status.as_str());
        config
            .key_results
            .iter()
            .map(|k| not_judged(k, &why))
            .collect()
    };
    let achieved = result.status == RunStatus::Completed && key_results.iter().all(|k| k.met);
    Ok(JobReport {
        run_id: report.run_id.clone(),
        status: result.status,
        stop_reason: result.stop_reason,
        final_answer: result.final_answer.clone(),
        error: result.error.clone(),
        key_results,
        usage,
        achieved,
    })
}

/// The model config as the resolver's cognition request.
fn cognition(config: &JobConfig) -> CognitionRequest {
    let model = &config.model;
    match model.provider {
        ProviderKind::Mock => CognitionRequest {
            provider: Some(Asked::new("mock".into(), "provider")),
            ..CognitionRequest::default()
        },
        ProviderKind::Scripted => CognitionRequest {
            provider: Some(Asked::new("scripted".into(), "provider")),
            script: Some(Asked::new(Script::File(model.name.clone().into()), "name")),
            ..CognitionRequest::default()
        },
        kind => CognitionRequest::named(
            Some(kind.as_str().to_string()),
            Some(model.name.clone()),
            None,
            ["provider", "name", "name"],
        ),
    }
}

/// The writ the run acts under: `PRAXIS_WRIT` (chained to the trust anchor) or a development
/// writ, with the tools' narrowings appended as a block.
fn writ(
    home: &DataHome,
    config: &JobConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<WritGrant, JobError> {
    let (token, anchor) = match &config.writ {
        WritSource::Token(token) => (
            token.clone(),
            home.trust_anchor(env)
                .map_err(|e| JobConfigError::new(WRIT, e.to_string()))?,
        ),
        WritSource::Development => {
            let (token, _) = home
                .development_writ()
                .map_err(|e| JobError::Run(e.to_string()))?;
            let anchor = home
                .local_anchor()
                .map_err(|e| JobError::Run(e.to_string()))?;
            (token, anchor)
        }
    };
    let now = SystemTime::now();
    let verified = praxis_writ::verify(&token, &anchor, now)
        .map_err(|e| JobConfigError::new(WRIT, e.to_string()))?;
    let Some(tools) = &config.tools else {
        return Ok(WritGrant { token, anchor });
    };
    if tools.iter().all(|t| t.config.is_none()) {
        // The run's tool allowlist is narrowing enough.
        return Ok(WritGrant { token, anchor });
    }
    let token = narrowed(&token, &anchor, &verified, config, now)?;
    Ok(WritGrant { token, anchor })
}

/// `token` with a block granting only the configured tools, each narrowed by its config.
fn narrowed(
    token: &str,
    anchor: &TrustAnchor,
    verified: &praxis_writ::VerifiedWrit,
    config: &JobConfig,
    now: SystemTime,
) -> Result<String, JobError> {
    let var = &config.tools_var;
    let blocks = verified.blocks();
    let last = blocks
        .last()
        .ok_or_else(|| JobConfigError::new(WRIT, "the writ has no block"))?;
    let mut grants = Vec::new();
    for (i, tool) in config.tools.iter().flatten().enumerate() {
        let Some(granted) = last.tool(&tool.name) else {
            return Err(JobConfigError::new(
                var,
                format!("[{i}].name: the writ does not grant tool `{}`", tool.name),
            )
            .into());
        };
        grants.push(match &tool.config {
            Some(narrowing) => narrowing.narrow(granted),
            None => granted.clone(),
        });
    }
    let child = WritSpec {
        subject: format!("{} (praxis job)", last.subject),
        tenant: verified.tenant().to_string(),
        not_before: None,
        expires_in: None,
        expires_at: None,
        effect_ceiling: blocks
            .iter()
            .map(|b| b.effect_ceiling)
            .min()
            .unwrap_or(last.effect_ceiling),
        budget: verified.rules().remaining(&Spent::default()),
        tools: grants,
        approvals: last.approvals.clone(),
    };
    praxis_writ::attenuate(token, anchor, &child, now).map_err(|e| {
        JobConfigError::new(var, format!("a tool's config does not fit the writ: {e}")).into()
    })
}

fn not_judged(key_result: &KeyResult, why: &str) -> KeyResultVerdict {
    KeyResultVerdict {
        key_result: key_result.statement().to_string(),
        met: false,
        judged_by: JudgedBy::NotJudged,
        evidence: Vec::new(),
        reason: why.to_string(),
    }
}

/// Judges every key result: checks in the sandbox, the rest by the critic (one batch, so
/// the evidence is read once). A cancel stops the judging; what is left is not judged.
async fn judge(
    runtime: &Runtime,
    run_id: &str,
    workspace: &std::path::Path,
    tool_limits: praxis_tools::ToolLimits,
    key_results: &[KeyResult],
    critic: Critic,
    cancel: &Cancel,
) -> Result<(Vec<KeyResultVerdict>, Usage), JobError> {
    let judging = async {
        let mut verdicts: Vec<Option<KeyResultVerdict>> = vec![None; key_results.len()];
        if key_results.iter().any(|k| k.check().is_some()) {
            let workspace = Workspace::new(workspace).map_err(|e| JobError::Run(e.to_string()))?;
            let ctx = ExecContext::for_run(workspace, tool_limits).await;
            for (i, key_result) in key_results.iter().enumerate() {
                if let Some(check) = key_result.check() {
                    verdicts[i] = Some(run_check(runtime, &ctx, key_result, check).await);
                }
            }
        }
        let for_critic: Vec<KeyResult> = key_results
            .iter()
            .filter(|k| k.check().is_none())
            .cloned()
            .collect();
        let mut usage = Usage::default();
        if !for_critic.is_empty() {
            let evidence = Evidence::of_run(&**runtime.ledger(), run_id)
                .map_err(|e| JobError::Run(e.to_string()))?;
            let judgement = critic.judge(&evidence, &for_critic).await;
            usage = judgement.usage;
            let mut critic_verdicts = judgement.verdicts.into_iter();
            for slot in verdicts.iter_mut().filter(|v| v.is_none()) {
                *slot = critic_verdicts.next();
            }
        }
        Ok((verdicts.into_iter().flatten().collect(), usage))
    };
    tokio::select! {
        judged = judging => judged,
        reason = cancel.wait() => Ok((
            key_results.iter().map(|k| not_judged(k, &format!("not judged: {reason}"))).collect(),
            Usage::default(),
        )),
    }
}

/// Runs a key result's check with the `shell` tool in the run's sandbox: exit 0 is met.
async fn run_check(
    runtime: &Runtime,
    ctx: &ExecContext,
    key_result: &KeyResult,
    check: &str,
) -> KeyResultVerdict {
    let args = praxis_tools::tools::shell::ShellArgs {
        command: check.to_string(),
        timeout_secs: None,
        cwd: None,
    };
    let args = serde_json::to_value(args).expect("shell arguments serialize");
    let observation = runtime.registry().execute(ctx, "shell", args).await;
    let met = observation.status == ExecStatus::Ok && observation.exit_code == Some(0);
    let output: String = observation
        .output
        .chars()
        .take(CHECK_OUTPUT_CHARS)
        .collect();
    KeyResultVerdict {
        key_result: key_result.statement().to_string(),
        met,
        judged_by: JudgedBy::Check,
        evidence: vec![Quote {
            seq: None,
            kind: "check".into(),
            quote: output,
        }],
        reason: match observation.exit_code {
            Some(code) => format!("`{check}` exited {code}"),
            None => format!("`{check}` {}", observation.status.as_str()),
        },
    }
}
