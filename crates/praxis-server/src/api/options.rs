//! Run options from requests: provider, workspace, writ, limits, approver.

use crate::api::dto::*;
use crate::api::{ApiError, Shared, Tenant};
use crate::runs::Admission;
use axum::http::StatusCode;
use praxis_core::PriceTable;
use praxis_runtime::RunOptions;
use praxis_runtime::approval::{FixedDecision, StoreApprover};
use praxis_runtime::home::WorkspaceOrigin;
use praxis_runtime::run_request::{
    self, Asked, CognitionRequest, RequestError, RunRequest, Script,
};
use serde_json::Value;
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

    /// A writ sent by a client for `tenant`, checked against the server's trust anchor now
    /// (so a bad one is refused with a clear answer rather than after the run was
    /// accepted), and refused when it was issued for another tenant.
    pub(crate) fn grant(
        &self,
        token: &str,
        tenant: &Tenant,
    ) -> Result<praxis_runtime::WritGrant, ApiError> {
        let source = self.config.writs.as_ref().ok_or_else(|| {
            ApiError::invalid("writ", "this server has no writ trust anchor configured")
        })?;
        let grant = source(Some(token)).map_err(|e| ApiError::invalid("writ", format!("{e:#}")))?;
        let writ = praxis_writ::verify(&grant.token, &grant.anchor, SystemTime::now())
            .map_err(|e| ApiError::invalid("writ", format!("writ refused: {e}")))?;
        if writ.tenant() != tenant.0 {
            return Err(ApiError::invalid(
                "writ",
                format!(
                    "writ refused: it was issued for tenant `{}`, but this API token acts for tenant `{}`",
                    writ.tenant(),
                    tenant.0
                ),
            ));
        }
        Ok(grant)
    }

    /// A client's `workspace`: a directory under one of the tenant's workspace roots that
    /// does not reach the data dir (canonical, symlinks resolved); 422 naming `workspace`.
    pub(crate) fn client_workspace(
        &self,
        dir: &str,
        tenant: &Tenant,
    ) -> Result<std::path::PathBuf, ApiError> {
        let path = self
            .config
            .home
            .admit_workspace(std::path::Path::new(dir), WorkspaceOrigin::Given)
            .map_err(|e| ApiError::invalid("workspace", format!("workspace {e}")))?;
        if !self.config.workspace_roots.admits(&tenant.0, &path) {
            return Err(ApiError::invalid(
                "workspace",
                format!(
                    "workspace `{dir}` is outside the directories this server accepts workspaces under ({}; see PRAXIS_WORKSPACE_ROOTS)",
                    self.config.workspace_roots.describe()
                ),
            ));
        }
        Ok(path)
    }

    /// Everything a run needs, from a request, through the same resolver as `praxis run`;
    /// each problem names its field.
    pub(crate) fn build_options(
        &self,
        run_id: &str,
        tenant: &Tenant,
        req: CreateRun,
    ) -> Result<RunOptions, ApiError> {
        let nested = req.limits.as_ref();
        let either = |top: Option<u64>, inner: Option<u64>, name: &'static str| match (top, inner) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                name,
                format!("give `{name}` or `limits.{name}`, not both"),
            )),
            (Some(v), None) => Ok(Some(Asked::new(v, name))),
            (None, Some(v)) => Ok(Some(Asked::new(
                v,
                if name == "max_steps" {
                    "limits.max_steps"
                } else {
                    "limits.max_seconds"
                },
            ))),
            (None, None) => Ok(None),
        };
        let max_steps = either(
            req.max_steps.map(u64::from),
            nested.and_then(|l| l.max_steps).map(u64::from),
            "max_steps",
        )?
        .map(|a| Asked::new(u32::try_from(a.value).unwrap_or(u32::MAX), a.name));
        let max_seconds = either(
            req.max_seconds,
            nested.and_then(|l| l.max_seconds),
            "max_seconds",
        )?;
        if req.task.trim().is_empty() {
            return Err(ApiError::invalid("task", "`task` must not be empty"));
        }
        let writ = self.writ_for(req.writ.as_deref(), tenant)?;
        let approver = self.approver(req.approve)?;
        let workspace = match &req.workspace {
            Some(dir) => self.client_workspace(dir, tenant)?,
            None => {
                let dir = self.config.home.runtime_workspace(run_id);
                std::fs::create_dir_all(&dir).map_err(|e| {
                    ApiError::internal(format!("creating workspace {}: {e}", dir.display()))
                })?;
                dir
            }
        };
        let request = RunRequest {
            task: Asked::new(req.task, "task"),
            workspace,
            cognition: cognition_request(req.provider, req.model, req.script),
            protocol: req.protocol.map(|p| Asked::new(p, "protocol")),
            tool_choice: req.tool_choice.map(|c| Asked::new(c, "tool_choice")),
            max_steps,
            max_seconds,
            max_invalid_replies: nested
                .and_then(|l| l.max_invalid_replies)
                .map(|n| Asked::new(n, "limits.max_invalid_replies")),
            tools: req.tools,
            read_only: req.read_only,
        };
        let resolved = run_request::resolve(&self.config.home, request, &|k| std::env::var(k).ok())
            .map_err(refused)?;
        log_config(&resolved.warnings, &resolved.notes);
        let mut options = resolved.options;
        options.prices.0.extend(self.config.prices.0.clone());
        options.writ = writ;
        options.checkpoint_key = self.config.checkpoint_key.clone();
        options.approver = approver;
        Ok(options)
    }

    /// Starts a run accepted before a restart that has no entry yet, from its recorded
    /// request, through the same resolver as a new one; what was done, for the log and the
    /// run's view.
    pub(crate) fn start_accepted(&self, run: &praxis_ledger::tokens::AcceptedRun) -> String {
        let request = match serde_json::from_str::<CreateRun>(&run.request) {
            Ok(request) => request,
            Err(e) => {
                let why = format!("its recorded request cannot be read: {e}");
                self.manager
                    .unstartable(run, String::new(), String::new(), why.clone());
                return why;
            }
        };
        let (task, workspace) = (request.task.clone(), request.workspace.clone());
        let started = self
            .build_options(&run.run_id, &Tenant(run.tenant.clone()), request)
            .map_err(|e| e.message)
            .and_then(|options| {
                self.manager
                    .start_accepted(run, options)
                    .map_err(|e| e.to_string())
            });
        match started {
            Ok(()) => "accepted before the server stopped and not started then: started now".into(),
            Err(why) => {
                let why =
                    format!("accepted before the server stopped; it cannot be started now: {why}");
                self.manager
                    .unstartable(run, task, workspace.unwrap_or_default(), why.clone());
                why
            }
        }
    }

    /// The writ a new run acts under: the client's (verified, of the caller's tenant), or
    /// the development writ outside production mode.
    fn writ_for(
        &self,
        token: Option<&str>,
        tenant: &Tenant,
    ) -> Result<Option<praxis_runtime::WritGrant>, ApiError> {
        match (&self.config.writs, token) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ApiError::invalid(
                "writ",
                "this server has no writ trust anchor configured",
            )),
            (Some(_), None) if self.config.production => Err(ApiError::invalid(
                "writ",
                "production mode requires a writ (the development writ is disabled)",
            )),
            (Some(_), Some(token)) => Ok(Some(self.grant(token, tenant)?)),
            (Some(source), None) => {
                let grant =
                    source(None).map_err(|e| ApiError::invalid("writ", format!("{e:#}")))?;
                // Refused now, with a clear answer, rather than after the 201.
                praxis_writ::verify(&grant.token, &grant.anchor, SystemTime::now())
                    .map_err(|e| ApiError::invalid("writ", format!("writ refused: {e}")))?;
                Ok(Some(grant))
            }
        }
    }

    /// The cognition a resumed or branched run gets (an inline script, else the provider
    /// named, or the server's configured default) and the price table in force, through
    /// the same resolver as `praxis run`.
    pub fn cognition(
        &self,
        provider: Option<String>,
        model: Option<String>,
        script: Option<Value>,
    ) -> Result<
        (
            String,
            Arc<dyn praxis_models::Provider>,
            PriceTable,
            praxis_runtime::config::Confinement,
        ),
        ApiError,
    > {
        let request = cognition_request(provider, model, script);
        let cognition = run_request::cognition(&self.config.home, None, &request, &[], &|k| {
            std::env::var(k).ok()
        })
        .map_err(refused)?;
        log_config(&cognition.layered.warnings, &cognition.layered.notes);
        let mut prices =
            run_request::prices(&self.config.home, &cognition.layered).map_err(refused)?;
        prices.0.extend(self.config.prices.0.clone());
        let confinement = cognition
            .layered
            .confinement()
            .map_err(|e| refused(e.into()))?;
        Ok((cognition.name, cognition.provider, prices, confinement))
    }

    /// Options to resume an interrupted run with its recorded spec: the recorded provider
    /// (unless the request names one or sends a script), the server's approver, key, prices.
    pub fn resume_options(
        &self,
        spec: &praxis_core::RunSpec,
        tenant: &Tenant,
        req: &ResumeRun,
    ) -> Result<RunOptions, ApiError> {
        let recorded =
            (req.provider.is_none() && req.script.is_none()).then(|| spec.provider.clone());
        if recorded.as_deref() == Some("scripted") {
            return Err(ApiError::invalid(
                "script",
                "the run used the scripted provider and scripts are not recorded: send the `script` again (or another `provider`)",
            ));
        }
        let (_, provider, prices, confinement) = self.cognition(
            req.provider.clone().or(recorded),
            req.model.clone(),
            req.script.clone(),
        )?;
        let mut options = RunOptions::new(spec.clone(), provider);
        if let Some(token) = &req.writ {
            options.writ = Some(self.grant(token, tenant)?);
        }
        options.prices = prices;
        confinement.apply(&mut options);
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

/// The cognition fields of a request, as the resolver takes them.
fn cognition_request(
    provider: Option<String>,
    model: Option<String>,
    script: Option<Value>,
) -> CognitionRequest {
    CognitionRequest::named(
        provider,
        model,
        script.map(|s| Script::Inline(s.to_string())),
        ["provider", "model", "script"],
    )
}

/// A refused request: 422 naming the field, or 500 when the server's own configuration is
/// at fault.
fn refused(error: RequestError) -> ApiError {
    match error.field {
        Some(field) => ApiError::invalid(field, error.message),
        None => ApiError::internal(error.message),
    }
}

/// What the configuration said about a request (warnings, what a workspace `praxis.toml`
/// set), in the server's log.
fn log_config(warnings: &[String], notes: &[String]) {
    for warning in warnings {
        eprintln!("praxis serve: warning: {warning}");
    }
    for note in notes {
        eprintln!("praxis serve: {note}");
    }
}
