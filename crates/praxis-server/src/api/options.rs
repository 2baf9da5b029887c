//! Run options from requests: provider, workspace, writ, limits, approver.

use crate::api::dto::*;
use crate::api::{ApiError, Shared};
use crate::runs::Admission;
use axum::http::StatusCode;
use praxis_core::Limits;
use praxis_runtime::RunOptions;
use praxis_runtime::approval::{FixedDecision, StoreApprover};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::SystemTime;

impl Shared {
    /// `running` or `queued` (with the queue position) for a new run; 429 with
    /// Retry-After when every slot is busy and the queue is full; 503 when shutting down.
    pub(crate) fn admitted(
        &self,
        admission: Admission,
    ) -> Result<(String, Option<usize>), ApiError> {
        match admission {
            Admission::Started => Ok(("running".into(), None)),
            Admission::Queued { position } => Ok(("queued".into(), Some(position))),
            Admission::Full => Err(ApiError {
                retry_after: Some(self.config.retry_after_secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "every run slot is busy and the queue is full; retry later",
                )
            }),
            Admission::ShuttingDown => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            )),
        }
    }

    /// A writ sent by a client, checked against the server's trust anchor now (so a bad
    /// one is refused with a clear answer rather than after the run was accepted).
    pub(crate) fn grant(&self, token: &str) -> Result<praxis_runtime::WritGrant, ApiError> {
        let source = self.config.writs.as_ref().ok_or_else(|| {
            ApiError::invalid("writ", "this server has no writ trust anchor configured")
        })?;
        let grant = source(Some(token)).map_err(|e| ApiError::invalid("writ", format!("{e:#}")))?;
        praxis_writ::verify(&grant.token, &grant.anchor, SystemTime::now())
            .map_err(|e| ApiError::invalid("writ", format!("writ refused: {e}")))?;
        Ok(grant)
    }

    /// Everything a run needs, from a request; each problem names its field.
    pub(crate) fn build_options(
        &self,
        run_id: &str,
        req: CreateRun,
    ) -> Result<RunOptions, ApiError> {
        let task = req.task.trim();
        if task.is_empty() {
            return Err(ApiError::invalid("task", "`task` must not be empty"));
        }
        let nested = req.limits.as_ref();
        if nested.is_some_and(|l| l.max_steps.is_some()) && req.max_steps.is_some() {
            return Err(ApiError::invalid(
                "max_steps",
                "give `max_steps` or `limits.max_steps`, not both",
            ));
        }
        if nested.is_some_and(|l| l.max_seconds.is_some()) && req.max_seconds.is_some() {
            return Err(ApiError::invalid(
                "max_seconds",
                "give `max_seconds` or `limits.max_seconds`, not both",
            ));
        }
        let defaults = Limits::default();
        let max_steps = req
            .max_steps
            .or(nested.and_then(|l| l.max_steps))
            .unwrap_or(defaults.max_steps);
        if max_steps == 0 {
            return Err(ApiError::invalid(
                "max_steps",
                "`max_steps` must be at least 1",
            ));
        }
        let (provider_name, provider) = self.cognition(
            req.provider.as_deref(),
            req.model.as_deref(),
            req.script.as_ref(),
        )?;
        let workspace = match &req.workspace {
            Some(dir) => {
                let path = std::fs::canonicalize(dir).map_err(|e| {
                    ApiError::invalid("workspace", format!("workspace `{dir}`: {e}"))
                })?;
                if !path.is_dir() {
                    return Err(ApiError::invalid(
                        "workspace",
                        format!("workspace `{dir}` is not a directory"),
                    ));
                }
                path
            }
            None => {
                let dir = self.config.home.root().join("workspaces").join(run_id);
                std::fs::create_dir_all(&dir).map_err(|e| {
                    ApiError::internal(format!("creating workspace {}: {e}", dir.display()))
                })?;
                dir
            }
        };
        let writ = match (&self.config.writs, req.writ.as_deref()) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ApiError::invalid(
                    "writ",
                    "this server has no writ trust anchor configured",
                ));
            }
            (Some(_), None) if self.config.production => {
                return Err(ApiError::invalid(
                    "writ",
                    "production mode requires a writ (the development writ is disabled)",
                ));
            }
            (Some(source), token) => {
                let grant =
                    source(token).map_err(|e| ApiError::invalid("writ", format!("{e:#}")))?;
                // Refused now, with a clear answer, rather than after the 201.
                praxis_writ::verify(&grant.token, &grant.anchor, SystemTime::now())
                    .map_err(|e| ApiError::invalid("writ", format!("writ refused: {e}")))?;
                Some(grant)
            }
        };
        // Limits fields added later keep their defaults.
        #[allow(clippy::needless_update)]
        let limits = Limits {
            max_steps,
            max_seconds: req
                .max_seconds
                .or(nested.and_then(|l| l.max_seconds))
                .or(defaults.max_seconds),
            max_invalid_replies: nested
                .and_then(|l| l.max_invalid_replies)
                .unwrap_or(defaults.max_invalid_replies),
            ..defaults
        };
        // Through serde, so fields added to RunSpec later take their defaults here.
        let spec: praxis_core::RunSpec = serde_json::from_value(json!({
            "task": task,
            "workspace": workspace.display().to_string(),
            "provider": provider_name,
            "model": req.model.clone().unwrap_or_default(),
            "tools": req.tools,
            "read_only": req.read_only,
            "limits": limits,
        }))
        .map_err(ApiError::internal)?;
        let mut options = RunOptions::new(spec, provider);
        options.writ = writ;
        options.prices = self.config.prices.clone();
        options.checkpoint_key = self.config.checkpoint_key.clone();
        options.approver = self.approver(req.approve)?;
        Ok(options)
    }

    /// The cognition a run gets: an inline script (scripted), else the provider named (or
    /// the server's configured default) through the same layered configuration as
    /// `praxis run` (`$PRAXIS_HOME/config.toml`, environment, API keys of the server).
    pub fn cognition(
        &self,
        provider: Option<&str>,
        model: Option<&str>,
        script: Option<&Value>,
    ) -> Result<(String, Arc<dyn praxis_models::Provider>), ApiError> {
        if let Some(script) = script {
            if let Some(other) = provider.filter(|p| *p != "scripted") {
                return Err(ApiError::invalid(
                    "provider",
                    format!(
                        "provider `{other}` does not use a script; use `scripted` or leave `provider` out"
                    ),
                ));
            }
            let provider = praxis_models::ScriptedProvider::from_json_str(
                &script.to_string(),
                "inline script",
            )
            .map_err(|e| ApiError::invalid("script", e.to_string()))?;
            return Ok(("scripted".into(), Arc::new(provider)));
        }
        let selection = praxis_runtime::config::provider_selection(provider, model)
            .map_err(|(field, message)| ApiError::invalid(field, message))?;
        if selection.as_deref().is_some_and(|s| s == "scripted") {
            return Err(ApiError::invalid(
                "script",
                "provider `scripted` needs an inline `script`",
            ));
        }
        let flags: Vec<praxis_runtime::config::Override> = selection
            .map(|s| praxis_runtime::config::Override::flag("model.provider", s, "provider"))
            .into_iter()
            .collect();
        let layered = praxis_runtime::config::load(&self.config.home, None, &flags, &|k| {
            std::env::var(k).ok()
        })
        .map_err(|e| ApiError::invalid("provider", e.to_string()))?;
        let provider = layered
            .provider(None)
            .map_err(|e| ApiError::invalid("provider", e.to_string()))?;
        Ok((layered.config.model.provider.clone(), provider))
    }

    /// Options to resume an interrupted run with its recorded spec: the recorded provider
    /// (unless the request names one or sends a script), the server's approver, key, prices.
    pub fn resume_options(
        &self,
        spec: &praxis_core::RunSpec,
        req: &ResumeRun,
    ) -> Result<RunOptions, ApiError> {
        let recorded =
            (req.provider.is_none() && req.script.is_none()).then_some(spec.provider.as_str());
        if recorded == Some("scripted") {
            return Err(ApiError::invalid(
                "script",
                "the run used the scripted provider and scripts are not recorded: send the `script` again (or another `provider`)",
            ));
        }
        let (_, provider) = self.cognition(
            req.provider.as_deref().or(recorded),
            req.model.as_deref(),
            req.script.as_ref(),
        )?;
        let mut options = RunOptions::new(spec.clone(), provider);
        if let Some(token) = &req.writ {
            options.writ = Some(self.grant(token)?);
        }
        options.prices = self.config.prices.clone();
        options.checkpoint_key = self.config.checkpoint_key.clone();
        options.approver = self.approver(req.approve)?;
        Ok(options)
    }

    pub(crate) fn approver(
        &self,
        mode: ApproveMode,
    ) -> Result<Arc<dyn praxis_runtime::approval::Approver>, ApiError> {
        Ok(match mode {
            ApproveMode::Wait => Arc::new(StoreApprover::new(self.approvals.clone())),
            ApproveMode::Never => Arc::new(FixedDecision::never()),
            ApproveMode::Auto if self.config.production => {
                return Err(ApiError::invalid(
                    "approve",
                    "`approve: auto` is refused in production mode",
                ));
            }
            ApproveMode::Auto => Arc::new(FixedDecision::auto()),
        })
    }
}
