//! Routes, request and response shapes, authentication and errors of the HTTP API.

use crate::config::{AuthSetting, ServerConfig};
use crate::metrics::Metrics;
use crate::runs::{Admission, Counters, Ghost, Job, Known, Manager, row_of};
use crate::sse::Feed;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use praxis_core::{Contracts, Limits, RunStatus};
use praxis_ledger::approvals::{ApprovalError, ApprovalStore};
use praxis_ledger::tokens::TokenStore;
use praxis_ledger::{Entry, Ledger};
use praxis_runtime::approval::{FixedDecision, StoreApprover};
use praxis_runtime::{RunOptions, new_run_id, overview};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;
use utoipa::{IntoParams, OpenApi, ToSchema};

pub(crate) struct Shared {
    pub manager: Arc<Manager>,
    pub approvals: Arc<ApprovalStore>,
    pub tokens: Arc<TokenStore>,
    pub metrics: Arc<Metrics>,
    pub config: ServerConfig,
    pub shutdown: watch::Receiver<bool>,
}

pub(crate) type AppState = Arc<Shared>;

/// The tenant a request acts for (`default` when authentication is off).
#[derive(Clone, Debug)]
pub(crate) struct Tenant(pub String);

/// Runs without a recorded owner (e.g. started by a local `praxis run`) belong here.
pub const DEFAULT_TENANT: &str = "default";

// ---------------------------------------------------------------------------------------
// Errors

/// Every error answer: `{"error": "...", "field": "..."}` (field only when one input is to
/// blame).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
        }
    }

    /// Names the input to blame in the body's `field`.
    pub(crate) fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no {what}"))
    }

    pub(crate) fn internal(error: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

impl From<praxis_ledger::LedgerError> for ApiError {
    fn from(e: praxis_ledger::LedgerError) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            field: self.field,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"praxis\""),
            );
        }
        response
    }
}

/// A JSON body with errors a client can act on: 413 over the size limit, 415 without a
/// JSON content type, 422 for malformed JSON or a wrong field (named).
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a JSON body (Content-Type: application/json)",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(
            |rejection: BytesRejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(status, "request body too large")
                } else {
                    ApiError::new(status, format!("cannot read the request body: {rejection}"))
                }
            },
        )?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.inner().to_string();
                let field = if path == "." || path.is_empty() {
                    backticked_field(&message)
                } else {
                    Some(path.clone())
                };
                ApiError {
                    field: field.clone(),
                    ..ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        match field {
                            Some(f) if path != "." => format!("invalid `{f}`: {message}"),
                            _ => format!("invalid request: {message}"),
                        },
                    )
                }
            })
    }
}

/// The field serde names in "missing field `task`" / "unknown field `x`".
fn backticked_field(message: &str) -> Option<String> {
    let start = message.find("field `")? + "field `".len();
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

// ---------------------------------------------------------------------------------------
// Shapes

/// Who answers proposals that need approval.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApproveMode {
    /// Wait for a decision through `POST /v1/approvals/{id}` (or `praxis approve`).
    #[default]
    Wait,
    /// Approve everything (refused in production mode).
    Auto,
    /// Deny everything that needs approval.
    Never,
}

/// `POST /v1/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// What the agent should do.
    pub task: String,
    /// Workspace directory on the server (default: a fresh directory under
    /// `$PRAXIS_HOME/workspaces/RUN_ID`).
    #[serde(default)]
    pub workspace: Option<String>,
    /// `mock` (default) or `scripted` (implied by `script`).
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// A writ token (its text) the run acts under; default: the development writ.
    #[serde(default)]
    pub writ: Option<String>,
    #[serde(default)]
    pub max_steps: Option<u32>,
    #[serde(default)]
    pub max_seconds: Option<u64>,
    /// The same limits as an object (`max_steps`, `max_seconds`, `max_invalid_replies`);
    /// a top-level `max_steps`/`max_seconds` may not also be given.
    #[serde(default)]
    pub limits: Option<LimitsBody>,
    #[serde(default)]
    pub read_only: bool,
    /// Tool allowlist (default: every tool).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// An inline script for the scripted provider: `{"turns": [...]}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub script: Option<Value>,
    #[serde(default)]
    pub approve: ApproveMode,
}

/// Run limits in a create request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[serde(default)]
    pub max_steps: Option<u32>,
    #[serde(default)]
    pub max_seconds: Option<u64>,
    #[serde(default)]
    pub max_invalid_replies: Option<u32>,
}

/// `POST /v1/runs/{id}/resume` (every field optional; the body may be left out).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRun {
    /// Default: the provider the run was started with.
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Needed for scripted runs: scripts are not recorded.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub script: Option<Value>,
    /// A writ to act under from now on (default: the writ recorded at run start).
    #[serde(default)]
    pub writ: Option<String>,
    /// Who approves re-running a tool call that was in flight (anything but a read).
    #[serde(default)]
    pub approve: ApproveMode,
}

/// `201` answer to `POST /v1/runs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: String,
    /// `running` or `queued`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, ToSchema)]
pub struct UsageView {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// One run, as `GET /v1/runs/{id}` and the list show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    /// queued, running, awaiting_approval, completed, failed, cancelled, interrupted.
    pub status: String,
    /// What a live run is doing: queued, starting, model, tool, awaiting_approval, running,
    /// finishing (null when not live in this server).
    pub phase: Option<String>,
    pub active_tool: Option<String>,
    pub stop_reason: Option<String>,
    pub final_answer: Option<String>,
    pub error: Option<String>,
    pub steps: u64,
    pub tool_calls: u64,
    pub usage: UsageView,
    pub task: String,
    pub workspace: String,
    pub provider: String,
    pub started_at: String,
    /// Seq of the run's last ledger entry (0: none yet).
    pub last_seq: u64,
    pub tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// What crash recovery did about the run at server start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunView>,
    /// Runs matching the filter, before paging.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only runs with this status.
    pub status: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<usize>,
    /// Runs to skip (newest first).
    pub offset: Option<usize>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Replay entries after this seq (the `Last-Event-ID` header wins when both are sent).
    pub after: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelAnswer {
    pub id: String,
    /// `cancelling` (a running run stops at its next await point) or `cancelled` (queued).
    pub status: String,
}

/// A proposal waiting for a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    /// `RUN_ID:CALL_ID`; `POST /v1/approvals/{id}` also takes the run id alone.
    pub id: String,
    pub run_id: String,
    pub call_id: String,
    pub tool: String,
    #[schema(value_type = Object)]
    pub arguments: Value,
    pub reason: String,
    pub requested_at: String,
    pub expires_at_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    pub approvals: Vec<ApprovalView>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    Approve,
    Deny,
}

/// `POST /v1/approvals/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideApproval {
    pub decision: DecisionKind,
    #[serde(default)]
    pub reason: String,
    /// The call to decide when the id names only the run and several are pending.
    #[serde(default)]
    pub call_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionAnswer {
    pub id: String,
    pub run_id: String,
    pub call_id: String,
    pub decision: DecisionKind,
    pub by: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolView {
    pub name: String,
    pub description: String,
    /// read, write, exec, network or external.
    pub effect: String,
    /// JSON Schema of the arguments object.
    #[schema(value_type = Object)]
    pub parameters: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolList {
    pub tools: Vec<ToolView>,
}

/// `POST /v1/writs/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyWrit {
    pub writ: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WritVerdict {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// id, subject, tenant, issuer, expires_at, blocks (when valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub writ: Option<Value>,
}

// ---------------------------------------------------------------------------------------
// Router

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Praxis API",
        description = "Governed agent runs: create, follow (SSE), approve, cancel, export; replayable history: world, diff, replay, branch."
    ),
    paths(
        create_run,
        list_runs,
        get_run,
        run_events,
        export_ledger,
        cancel_run,
        resume_run,
        crate::history::world,
        crate::history::run_diff,
        crate::history::replay_run,
        crate::history::branch_run,
        list_approvals,
        decide_approval,
        list_tools,
        verify_writ,
        health,
        ready,
        metrics
    ),
    components(schemas(
        CreateRun,
        LimitsBody,
        ResumeRun,
        Created,
        crate::history::WorldView,
        crate::history::WorldDiff,
        crate::history::BranchRun,
        crate::history::Branched,
        crate::history::RunDiff,
        crate::history::Divergence,
        crate::history::Step,
        crate::history::StepCall,
        crate::history::FileDifference,
        crate::history::Replayed,
        RunView,
        RunList,
        UsageView,
        CancelAnswer,
        ApprovalView,
        ApprovalList,
        DecideApproval,
        DecisionAnswer,
        DecisionKind,
        ApproveMode,
        ToolView,
        ToolList,
        VerifyWrit,
        WritVerdict,
        ErrorBody,
        Counters
    )),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of this API (what `/openapi.json` serves).
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| json!({ "error": e.to_string() }).to_string())
}

pub(crate) fn router(state: AppState) -> Router {
    let authenticated = Router::new()
        .route("/v1/runs", post(create_run).get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/runs/{id}/events", get(run_events))
        .route("/v1/runs/{id}/ledger", get(export_ledger))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/runs/{id}/resume", post(resume_run))
        .route("/v1/runs/{id}/world", get(crate::history::world))
        .route("/v1/runs/{id}/diff/{other}", get(crate::history::run_diff))
        .route("/v1/runs/{id}/replay", post(crate::history::replay_run))
        .route("/v1/runs/{id}/branch", post(crate::history::branch_run))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", post(decide_approval))
        .route("/v1/tools", get(list_tools))
        .route("/v1/writs/verify", post(verify_writ))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let open = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready));
    let mut app = open
        .merge(authenticated)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.body_limit,
        ));
    if !state.config.allowed_origins.is_empty() {
        let origins: Vec<HeaderValue> = state
            .config
            .allowed_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::HeaderName::from_static("last-event-id"),
                ])
                .expose_headers([header::RETRY_AFTER, header::LOCATION]),
        );
    }
    app.with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route (see /openapi.json)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route (see /openapi.json)",
    )
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    state
        .metrics
        .request(&method, &route, response.status().as_u16());
    response
}

impl Shared {
    /// Whether requests must carry a token: `PRAXIS_AUTH=on`, or (auto) any token exists.
    /// Asked per request, so `praxis token create` takes effect without a restart.
    pub fn auth_on(&self) -> Result<bool, praxis_ledger::LedgerError> {
        match self.config.auth {
            AuthSetting::On => Ok(true),
            AuthSetting::Off => Ok(false),
            AuthSetting::Auto => self.tokens.any(),
        }
    }

    fn tenant_of(&self, headers: &HeaderMap) -> Result<Tenant, ApiError> {
        if !self.auth_on()? {
            return Ok(Tenant(DEFAULT_TENANT.into()));
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication required: send Authorization: Bearer TOKEN (create one with `praxis token create --tenant T`)",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "malformed Authorization header: expected `Bearer TOKEN`",
                )
            })?;
        match self.tokens.tenant_for(token)? {
            Some(tenant) => Ok(Tenant(tenant)),
            None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid API token")),
        }
    }

    /// The run `id` if `tenant` may see it; 404 otherwise (another tenant's run is
    /// indistinguishable from a missing one).
    pub(crate) fn visible(&self, tenant: &Tenant, id: &str) -> Result<(String, Known), ApiError> {
        let missing = || ApiError::not_found(format_args!("run {id}"));
        if id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(missing());
        }
        let known = self.manager.known(id);
        let owner = match &known {
            Known::Queued { tenant, .. } | Known::Active { tenant, .. } => tenant.clone(),
            Known::Ghost(g) => g.tenant.clone(),
            Known::Unknown { .. } => {
                let owner = self
                    .tokens
                    .run_tenant(id)?
                    .unwrap_or_else(|| DEFAULT_TENANT.into());
                if owner == tenant.0 && self.manager.ledger.entries(id, 0)?.is_empty() {
                    return Err(missing());
                }
                owner
            }
        };
        if owner != tenant.0 {
            return Err(missing());
        }
        Ok((id.to_string(), known))
    }
}

async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match state.tenant_of(req.headers()) {
        Ok(tenant) => {
            if let Some(slot) = req.extensions().get::<crate::listen::ConnectionSlot>() {
                slot.authenticated();
            }
            req.extensions_mut().insert(tenant);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

// ---------------------------------------------------------------------------------------
// Runs

#[utoipa::path(post, path = "/v1/runs", request_body = CreateRun, security(("bearer" = [])),
    responses(
        (status = 201, description = "Run accepted (started or queued)", body = Created),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "Invalid request; `field` names the input", body = ErrorBody),
        (status = 429, description = "Every slot busy and the queue full; see Retry-After", body = ErrorBody),
        (status = 503, description = "Shutting down", body = ErrorBody)))]
async fn create_run(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    JsonBody(request): JsonBody<CreateRun>,
) -> Result<Response, ApiError> {
    let run_id = new_run_id();
    let shared = state.clone();
    let id = run_id.clone();
    let options = blocking(move || shared.build_options(&id, request)).await?;
    let admission = state
        .manager
        .submit(run_id.clone(), tenant.0.clone(), options, Job::Start)?;
    let (status, queue_position) = state.admitted(admission)?;
    let created = Created {
        id: run_id.clone(),
        status,
        queue_position,
    };
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/runs/{run_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

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
    fn build_options(&self, run_id: &str, req: CreateRun) -> Result<RunOptions, ApiError> {
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

    /// The view of a run, from the ledger plus what this process knows live.
    fn view(&self, id: &str, known: Known) -> Result<RunView, ApiError> {
        match known {
            Known::Queued {
                tenant,
                task,
                workspace,
                provider,
                created_at,
                position,
                ..
            } => Ok(RunView {
                id: id.into(),
                status: RunStatus::Queued.as_str().into(),
                phase: Some("queued".into()),
                active_tool: None,
                stop_reason: None,
                final_answer: None,
                error: None,
                steps: 0,
                tool_calls: 0,
                usage: UsageView::default(),
                task,
                workspace,
                provider,
                started_at: created_at,
                last_seq: 0,
                tenant,
                queue_position: Some(position),
                recovery: None,
            }),
            Known::Ghost(ghost) => Ok(ghost_view(id, ghost, self.manager.ledger.entries(id, 0)?)),
            Known::Active {
                tenant,
                hub,
                recovered,
            } => {
                let entries = self.manager.ledger.entries(id, 0)?;
                let state = hub.state();
                let mut view = match row_of(&entries) {
                    Some(row) => ledger_view(&row, &entries, tenant),
                    None => RunView {
                        id: id.into(),
                        status: RunStatus::Running.as_str().into(),
                        phase: None,
                        active_tool: None,
                        stop_reason: None,
                        final_answer: None,
                        error: None,
                        steps: 0,
                        tool_calls: 0,
                        usage: UsageView::default(),
                        task: String::new(),
                        workspace: String::new(),
                        provider: String::new(),
                        started_at: String::new(),
                        last_seq: 0,
                        tenant,
                        queue_position: None,
                        recovery: None,
                    },
                };
                // The ledger's last entry is not always the request (a resumed run waits
                // again after `run_resumed`); the live phase knows.
                if state.phase == "awaiting_approval" && view.status == "running" {
                    view.status = RunStatus::AwaitingApproval.as_str().into();
                }
                view.phase = Some(state.phase.to_string());
                view.active_tool = state.active_tool;
                view.recovery = recovered;
                Ok(view)
            }
            Known::Unknown { recovered } => {
                let entries = self.manager.ledger.entries(id, 0)?;
                let row = row_of(&entries)
                    .ok_or_else(|| ApiError::not_found(format_args!("run {id}")))?;
                let tenant = self
                    .tokens
                    .run_tenant(id)?
                    .unwrap_or_else(|| DEFAULT_TENANT.into());
                let mut view = ledger_view(&row, &entries, tenant);
                view.recovery = recovered;
                Ok(view)
            }
        }
    }
}

fn ledger_view(row: &praxis_ledger::RunRow, entries: &[Entry], tenant: String) -> RunView {
    let o = overview(row);
    let counters = Counters::from_entries(entries);
    let finished = row.finished.as_ref();
    let usage = finished
        .map(|f| UsageView {
            input_tokens: f["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: f["usage"]["output_tokens"].as_u64().unwrap_or(0),
        })
        .unwrap_or(UsageView {
            input_tokens: counters.input_tokens,
            output_tokens: counters.output_tokens,
        });
    RunView {
        id: o.run_id,
        status: o.status.as_str().into(),
        phase: None,
        active_tool: None,
        stop_reason: o.stop_reason,
        final_answer: o.final_answer,
        error: o.error,
        steps: finished
            .and_then(|f| f["steps"].as_u64())
            .unwrap_or(counters.steps),
        tool_calls: finished
            .and_then(|f| f["tool_calls"].as_u64())
            .unwrap_or(counters.tool_calls),
        usage,
        task: o.task,
        workspace: o.workspace,
        provider: o.provider,
        started_at: o.started_at,
        last_seq: o.last_seq,
        tenant,
        queue_position: None,
        recovery: None,
    }
}

fn ghost_view(id: &str, ghost: Ghost, entries: Vec<Entry>) -> RunView {
    let counters = Counters::from_entries(&entries);
    RunView {
        id: id.into(),
        status: ghost.status.as_str().into(),
        phase: None,
        active_tool: None,
        stop_reason: Some(
            match ghost.status {
                RunStatus::Cancelled => "cancelled",
                _ => "failed",
            }
            .into(),
        ),
        final_answer: None,
        error: ghost.error,
        steps: counters.steps,
        tool_calls: counters.tool_calls,
        usage: UsageView {
            input_tokens: counters.input_tokens,
            output_tokens: counters.output_tokens,
        },
        task: ghost.task,
        workspace: ghost.workspace,
        provider: ghost.provider,
        started_at: ghost.created_at,
        last_seq: entries.last().map_or(0, |e| e.seq),
        tenant: ghost.tenant,
        queue_position: None,
        recovery: None,
    }
}

#[utoipa::path(get, path = "/v1/runs", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = RunList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_runs(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid query: {e}"),
        )
    })?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            serde_json::from_value::<RunStatus>(json!(s))
                .map_err(|_| {
                    ApiError::invalid(
                        "status",
                        format!("unknown status `{s}` (queued, running, awaiting_approval, completed, failed, cancelled, interrupted)"),
                    )
                })?
                .as_str(),
        ),
    };
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let offset = query.offset.unwrap_or(0);
    let shared = state.clone();
    let tenant_name = tenant.0.clone();
    blocking(move || {
        let mut views = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (id, known) in shared.manager.unledgered() {
            let owner = match &known {
                Known::Queued { tenant, .. } => tenant.clone(),
                Known::Ghost(g) => g.tenant.clone(),
                _ => continue,
            };
            if owner == tenant_name {
                seen.insert(id.clone());
                views.push(shared.view(&id, known)?);
            }
        }
        let owners = shared.tokens.run_tenants()?;
        for row in shared.manager.ledger.runs()? {
            if seen.contains(&row.run_id) {
                continue;
            }
            let owner = owners
                .get(&row.run_id)
                .map(String::as_str)
                .unwrap_or(DEFAULT_TENANT);
            if owner != tenant_name {
                continue;
            }
            let mut view = ledger_view(&row, &[], owner.to_string());
            if let Known::Active { hub, .. } = shared.manager.known(&row.run_id) {
                let live = hub.state();
                if live.phase == "awaiting_approval" && view.status == "running" {
                    view.status = RunStatus::AwaitingApproval.as_str().into();
                }
                view.phase = Some(live.phase.to_string());
                view.active_tool = live.active_tool;
            }
            views.push(view);
        }
        let views: Vec<RunView> = views
            .into_iter()
            .filter(|v| status.is_none_or(|s| v.status == s))
            .collect();
        let total = views.len();
        Ok(Json(RunList {
            runs: views.into_iter().skip(offset).take(limit).collect(),
            total,
            offset,
            limit,
        }))
    })
    .await
}

#[utoipa::path(get, path = "/v1/runs/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    blocking(move || {
        let (id, known) = state.visible(&tenant, &id)?;
        state.view(&id, known).map(Json)
    })
    .await
}

#[utoipa::path(get, path = "/v1/runs/{id}/events", params(("id" = String, Path), EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this seq")),
    security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream: `id` = seq, `event` = entry kind, `data` = the entry as in `praxis ledger export`; `event: delta` (no id) carries `{\"text\"}`; ends after the run's last entry", content_type = "text/event-stream"),
        (status = 404, body = ErrorBody)))]
async fn run_events(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let shared = state.clone();
    let (id, _) = blocking(move || shared.visible(&tenant, &id)).await?;
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    "Last-Event-ID",
                    "Last-Event-ID must be an entry seq (a whole number)",
                )
            })?,
        None => query.after.unwrap_or(0),
    };
    let feed = Feed::new(
        id,
        after,
        state.manager.clone(),
        state.shutdown.clone(),
        state.config.poll_interval,
        state.metrics.clone(),
    );
    let sse = Sse::new(feed.into_stream()).keep_alive(
        KeepAlive::new()
            .interval(state.config.heartbeat)
            .text("heartbeat"),
    );
    let mut response = sse.into_response();
    // Proxies must not buffer a live feed.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[utoipa::path(get, path = "/v1/runs/{id}/ledger", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "JSON lines, as `praxis ledger export`", content_type = "application/x-ndjson"),
        (status = 404, body = ErrorBody)))]
async fn export_ledger(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let body = blocking(move || {
        let (id, _) = state.visible(&tenant, &id)?;
        let mut out = Vec::new();
        for entry in state.manager.ledger.entries(&id, 0)? {
            serde_json::to_writer(&mut out, &entry).map_err(ApiError::internal)?;
            out.push(b'\n');
        }
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

#[utoipa::path(post, path = "/v1/runs/{id}/cancel", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 202, body = CancelAnswer), (status = 404, body = ErrorBody),
        (status = 409, description = "Finished, or driven by another process", body = ErrorBody)))]
async fn cancel_run(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let (id, known) = state.visible(&tenant, &id)?;
        let status = match known {
            Known::Queued { .. } => "cancelled",
            _ => "cancelling",
        };
        let reason = format!("cancelled through the API (tenant {})", tenant.0);
        if state.manager.cancel(&id, &reason) {
            return Ok((
                StatusCode::ACCEPTED,
                Json(CancelAnswer {
                    id,
                    status: status.into(),
                }),
            )
                .into_response());
        }
        let view = state.view(&id, state.manager.known(&id))?;
        let message = match view.status.as_str() {
            "running" | "awaiting_approval" => {
                format!("run {id} is driven by another process, not this server; cancel it there")
            }
            other => format!("run {id} is not running (status {other})"),
        };
        Err(ApiError::new(StatusCode::CONFLICT, message))
    })
    .await
}

#[utoipa::path(post, path = "/v1/runs/{id}/resume", params(("id" = String, Path)), request_body = ResumeRun,
    security(("bearer" = [])),
    responses((status = 202, description = "Resuming (or queued)", body = Created), (status = 404, body = ErrorBody),
        (status = 409, description = "Not interrupted", body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn resume_run(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    http: Request,
) -> Result<Response, ApiError> {
    // The body is optional: no body (or an empty one) means every default.
    let empty = http
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_none_or(|len| len.as_bytes() == b"0")
        && !http.headers().contains_key(header::TRANSFER_ENCODING);
    let request = if empty {
        ResumeRun::default()
    } else {
        JsonBody::<ResumeRun>::from_request(http, &()).await?.0
    };
    let shared = state.clone();
    let (id, owner, options) = blocking(move || {
        let (id, known) = shared.visible(&tenant, &id)?;
        let view = shared.view(&id, known)?;
        if view.status != RunStatus::Interrupted.as_str() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "run {id} is {}: only an interrupted run (its driver is gone) can be resumed",
                    view.status
                ),
            ));
        }
        let entries = shared.manager.ledger.entries(&id, 0)?;
        let spec: praxis_core::RunSpec = entries
            .first()
            .and_then(|e| serde_json::from_value(e.payload["spec"].clone()).ok())
            .ok_or_else(|| {
                ApiError::internal(format!("run {id}: its recorded spec is unreadable"))
            })?;
        let options = shared.resume_options(&spec, &request)?;
        Ok((id, view.tenant, options))
    })
    .await?;
    let status = match state
        .manager
        .submit(id.clone(), owner, options, Job::Resume)?
    {
        Admission::Started => "resuming",
        Admission::Queued { .. } => "queued",
        Admission::Full => {
            return Err(ApiError {
                retry_after: Some(state.config.retry_after_secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "every run slot is busy and the queue is full; retry later",
                )
            });
        }
        Admission::ShuttingDown => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            ));
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(Created {
            id,
            status: status.into(),
            queue_position: None,
        }),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Approvals

#[utoipa::path(get, path = "/v1/approvals", security(("bearer" = [])),
    responses((status = 200, body = ApprovalList), (status = 401, body = ErrorBody)))]
async fn list_approvals(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
) -> Result<Json<ApprovalList>, ApiError> {
    blocking(move || {
        let mut approvals = Vec::new();
        for request in state.approvals.pending()? {
            let Ok((run_id, known)) = state.visible(&tenant, &request.run_id) else {
                continue;
            };
            // A request left behind by a driver that is gone can never take effect.
            let live = match known {
                Known::Active { .. } => true,
                other => matches!(
                    state.view(&run_id, other).map(|v| v.status),
                    Ok(s) if s == "awaiting_approval"
                ),
            };
            if !live {
                continue;
            }
            approvals.push(ApprovalView {
                id: format!("{}:{}", request.run_id, request.call_id),
                arguments: serde_json::from_str(&request.arguments)
                    .unwrap_or(Value::String(request.arguments.clone())),
                run_id: request.run_id,
                call_id: request.call_id,
                tool: request.tool,
                reason: request.reason,
                requested_at: request.requested_at,
                expires_at_ms: request.expires_at_ms,
            });
        }
        Ok(Json(ApprovalList { approvals }))
    })
    .await
}

#[utoipa::path(post, path = "/v1/approvals/{id}", request_body = DecideApproval,
    params(("id" = String, Path, description = "RUN_ID:CALL_ID, or RUN_ID for the run's only pending proposal")),
    security(("bearer" = [])),
    responses((status = 200, body = DecisionAnswer), (status = 404, body = ErrorBody),
        (status = 409, description = "Already decided, or several pending", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn decide_approval(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecideApproval>,
) -> Result<Json<DecisionAnswer>, ApiError> {
    blocking(move || {
        let (run, call) = match id.split_once(':') {
            Some((run, call)) => (run.to_string(), Some(call.to_string())),
            None => (id.clone(), body.call_id.clone()),
        };
        let (run_id, _) = state
            .visible(&tenant, &run)
            .map_err(|_| ApiError::not_found(format_args!("approval {id}")))?;
        let approved = body.decision == DecisionKind::Approve;
        let by = format!("api:{}", tenant.0);
        match state
            .approvals
            .decide(&run_id, call.as_deref(), approved, &by, &body.reason)
        {
            Ok(call_id) => Ok(Json(DecisionAnswer {
                id: format!("{run_id}:{call_id}"),
                run_id,
                call_id,
                decision: body.decision,
                by,
            })),
            Err(ApprovalError::Ledger(e)) => Err(e.into()),
            Err(e @ ApprovalError::NothingPending { .. }) => {
                Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string()))
            }
            Err(e) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Tools, writs, operations

#[utoipa::path(get, path = "/v1/tools", security(("bearer" = [])),
    responses((status = 200, body = ToolList)))]
async fn list_tools(State(state): State<AppState>) -> Json<ToolList> {
    let tools = state
        .config
        .registry
        .specs()
        .into_iter()
        .map(|spec| ToolView {
            effect: serde_json::to_value(spec.effect)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            name: spec.name,
            description: spec.description,
            parameters: spec.parameters,
        })
        .collect();
    Json(ToolList { tools })
}

#[utoipa::path(post, path = "/v1/writs/verify", request_body = VerifyWrit, security(("bearer" = [])),
    responses((status = 200, description = "`valid` says whether the writ verifies against this server's trust anchor now", body = WritVerdict),
        (status = 422, body = ErrorBody)))]
async fn verify_writ(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<VerifyWrit>,
) -> Result<Json<WritVerdict>, ApiError> {
    let Some(source) = state.config.writs.clone() else {
        return Err(ApiError::invalid(
            "writ",
            "this server has no writ trust anchor configured",
        ));
    };
    blocking(move || {
        let token = body.writ.trim();
        if token.is_empty() {
            return Err(ApiError::invalid("writ", "`writ` must not be empty"));
        }
        let grant = source(Some(token)).map_err(|e| ApiError::invalid("writ", format!("{e:#}")))?;
        Ok(Json(
            match praxis_writ::verify(&grant.token, &grant.anchor, SystemTime::now()) {
                Ok(writ) => WritVerdict {
                    valid: true,
                    error: None,
                    writ: Some(writ.describe()),
                },
                Err(e) => WritVerdict {
                    valid: false,
                    error: Some(e.to_string()),
                    writ: None,
                },
            },
        ))
    })
    .await
}

#[utoipa::path(get, path = "/health", responses((status = 200, description = "The process is up")))]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/ready", responses(
    (status = 200, description = "Ready: `{\"status\":\"ready\"}`; with a valid token also the ledger's health"),
    (status = 503, description = "Not ready: `{\"status\":\"not_ready\"}`; with a valid token also why")))]
async fn ready(State(state): State<AppState>, headers: HeaderMap) -> Response {
    /// What anyone may learn: ready or not, nothing about the data dir or the ledger.
    #[derive(Serialize)]
    struct Readiness {
        status: &'static str,
    }
    let detailed = headers.contains_key(header::AUTHORIZATION)
        && matches!(state.auth_on(), Ok(true))
        && state.tenant_of(&headers).is_ok();
    let ledger = state.manager.ledger.clone();
    let accepting = !*state.shutdown.borrow();
    let health = tokio::task::spawn_blocking(move || ledger.check_health()).await;
    let ready = accepting && matches!(&health, Ok(Ok(report)) if report.quick_check == "ok");
    if !detailed {
        return if ready {
            Json(Readiness { status: "ready" }).into_response()
        } else {
            let not_ready = Json(Readiness {
                status: "not_ready",
            });
            (StatusCode::SERVICE_UNAVAILABLE, not_ready).into_response()
        };
    }
    match health {
        Ok(Ok(report)) if ready => {
            Json(json!({ "status": "ready", "ledger": report })).into_response()
        }
        Ok(Ok(report)) if accepting => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("ledger integrity check failed: {}", report.quick_check),
        )
        .into_response(),
        Ok(Ok(_)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )
        .into_response(),
        Ok(Err(e)) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[utoipa::path(get, path = "/metrics", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let shared = state.clone();
    let by_status = blocking(move || {
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        for status in [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::AwaitingApproval,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Interrupted,
        ] {
            by_status.insert(status.as_str().into(), 0);
        }
        let mut ghosts = std::collections::HashSet::new();
        for (id, known) in shared.manager.unledgered() {
            let status = match known {
                Known::Queued { .. } => RunStatus::Queued,
                Known::Ghost(g) => g.status,
                _ => continue,
            };
            ghosts.insert(id);
            *by_status.entry(status.as_str().into()).or_default() += 1;
        }
        for row in shared.manager.ledger.runs()? {
            if !ghosts.contains(&row.run_id) {
                *by_status
                    .entry(overview(&row).status.as_str().into())
                    .or_default() += 1;
            }
        }
        Ok(by_status)
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&by_status),
    )
        .into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}
