//! Replayable history over HTTP: the world of a run at any entry, run-to-run diffs, replay,
//! and branching a run from an earlier entry. The same runtime functions `praxis world`,
//! `praxis diff`, `praxis replay` and `praxis branch` present, with the tenant checks of
//! every other run route.

use crate::api::{ApiError, AppState, ApproveMode, ErrorBody, Tenant, blocking};
use crate::runs::Job;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use praxis_core::record::{RunStarted, kinds, parse_payload};
use praxis_runtime::compare::{CompareError, diff_runs};
use praxis_runtime::recorded::RecordError;
use praxis_runtime::replay::{ReplayError, replay};
use praxis_runtime::world::{WorldError, diff, world_at};
use praxis_runtime::{BranchFrom, RunOptions, new_run_id};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

// ---------------------------------------------------------------------------------------
// Shapes

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorldQuery {
    /// The entry the world is the state after (default: the run's last entry).
    #[param(value_type = Option<u64>)]
    pub at: Option<String>,
    /// Answer this file's content as of `at` instead of the listing.
    pub path: Option<String>,
    /// `true`: answer the unified diff from the run's start to `at`.
    #[param(value_type = Option<bool>)]
    pub diff: Option<String>,
}

/// `GET /v1/runs/{id}/world`: the workspace as the run's committed effects left it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorldView {
    pub run_id: String,
    /// The entry this is the state after.
    pub at: u64,
    /// Paths the run changed up to `at` (deleted ones included: absent from `files`).
    pub changed: Vec<String>,
    /// Every file that existed then: path -> blob id (null: content not recorded).
    pub files: BTreeMap<String, Option<String>>,
}

/// `GET /v1/runs/{id}/world?diff=true`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorldDiff {
    pub run_id: String,
    pub at: u64,
    /// Unified diff from the run's start to `at` (what `praxis world --diff` prints).
    pub diff: String,
}

/// `POST /v1/runs/{id}/branch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchRun {
    /// The last entry of the origin's history the branch keeps (rounded down to a point
    /// where the run waited for the model; the answer says where).
    pub at: u64,
    /// Default: the server's configured provider (`scripted` is implied by `script`).
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// An inline script for the scripted provider: `{"turns": [...]}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub script: Option<Value>,
    /// An extra instruction for the model (e.g. a different approach to take).
    #[serde(default)]
    pub task: Option<String>,
    /// A writ to act under (default: the origin's writ as recorded).
    #[serde(default)]
    pub writ: Option<String>,
    /// The branch's step limit (default: the origin's); steps of the history count.
    #[serde(default)]
    pub max_steps: Option<u32>,
    #[serde(default)]
    pub approve: ApproveMode,
}

/// `201` answer to `POST /v1/runs/{id}/branch`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Branched {
    /// The new run.
    pub id: String,
    /// The origin run.
    pub branch_of: String,
    /// The last origin entry in the branch's history.
    pub branched_at: u64,
    /// `running` or `queued`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// The branch's workspace on the server (the origin's world as of `branched_at`).
    pub workspace: String,
}

// The next shapes document bodies serialized from praxis-runtime types (which do not
// derive ToSchema); a test checks they list the same fields as the real ones.

/// `GET /v1/runs/{id}/diff/{other}`: `praxis diff A B --json`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RunDiff {
    pub run_a: String,
    pub run_b: String,
    pub steps_a: u64,
    pub steps_b: u64,
    /// How many leading steps are identical.
    pub common_prefix: u64,
    /// Null: the trajectories are identical.
    pub divergence: Option<Divergence>,
    /// The steps after the divergent one, compact (`tool verdict status, ...`).
    pub rest_a: Vec<String>,
    pub rest_b: Vec<String>,
    /// How each run ended (`stop_reason`; null: unfinished).
    pub end_a: Option<String>,
    pub end_b: Option<String>,
    /// Files whose final content differs, in path order.
    pub files: Vec<FileDifference>,
}

/// The first step where the runs differ (null side: that run had no more steps).
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Divergence {
    /// 1-based position in the trajectories.
    pub index: u64,
    pub a: Option<Step>,
    pub b: Option<Step>,
}

/// One model reply and what came of it.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Step {
    pub step: u32,
    pub content: String,
    pub calls: Vec<StepCall>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct StepCall {
    pub tool: String,
    #[schema(value_type = Object)]
    pub arguments: Value,
    /// `allow`, `deny` or `needs_approval`.
    pub verdict: String,
    pub rule: String,
    /// `ok`, `error`, `timeout`, `cancelled`; null when it did not run.
    pub status: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct FileDifference {
    pub path: String,
    /// `only_a`, `only_b` or `differs`.
    pub change: String,
    /// Unified diff (`--- a/P` is run A); null for binary or unrecorded content.
    pub diff: Option<String>,
    pub note: Option<String>,
}

/// `POST /v1/runs/{id}/replay`: `praxis replay --json`. `status` says whether every
/// recorded entry was re-emitted with the same hash.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Replayed {
    Matched {
        run_id: String,
        entries: u64,
        /// What the kernel waited for when the record ran out (null: the run finished).
        unfinished: Option<String>,
    },
    Diverged {
        run_id: String,
        seq: u64,
        kind: String,
        /// The recorded payload (null when the record lacks the entry).
        #[schema(value_type = Object)]
        expected: Value,
        /// What the replayed kernel emitted (null when it emits nothing there).
        #[schema(value_type = Object)]
        got: Value,
        detail: String,
    },
}

// ---------------------------------------------------------------------------------------
// Errors

pub(crate) fn record_error(e: RecordError) -> ApiError {
    match e {
        // Visible but without entries: queued, or refused before it recorded anything.
        RecordError::RunNotFound { run_id } => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run {run_id} has no entries in the ledger yet"),
        ),
        RecordError::Ledger { .. } => ApiError::internal(e),
        RecordError::Malformed { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
    }
}

fn world_error(e: WorldError) -> ApiError {
    match e {
        WorldError::Record(e) => record_error(e),
        WorldError::NoSuchEntry { .. } => ApiError::invalid("at", e.to_string()),
        WorldError::NoSnapshot { .. } | WorldError::ContentUnknown { .. } => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        WorldError::MissingBlob { .. } | WorldError::Blob { .. } => ApiError::internal(e),
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

#[utoipa::path(get, path = "/v1/runs/{id}/world", params(("id" = String, Path), WorldQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The listing (`WorldView`); with `path`, the file's content (`text/plain` when it is UTF-8, else `application/octet-stream`); with `diff=true`, `WorldDiff`", body = WorldView),
        (status = 404, description = "No such run, or `path` did not exist at `at`", body = ErrorBody),
        (status = 409, description = "The record cannot rebuild the world (no snapshot, content not recorded)", body = ErrorBody),
        (status = 422, description = "`at` is not an entry of the run; `field` names the input", body = ErrorBody)))]
pub(crate) async fn world(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    Query(query): Query<WorldQuery>,
) -> Result<Response, ApiError> {
    let at = match query.at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(at) => Some(at.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "at",
                format!("`at` must be an entry seq (a whole number), not {at:?}"),
            )
        })?),
    };
    let show_diff = match query.diff.as_deref().map(str::trim) {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "diff",
                format!("`diff` must be true or false, not {other:?}"),
            ));
        }
    };
    let path = query.path.filter(|p| !p.is_empty());
    if show_diff && path.is_some() {
        return Err(ApiError::invalid(
            "diff",
            "give `path` (one file) or `diff=true` (every change), not both",
        ));
    }
    blocking(move || {
        let (id, _) = state.visible(&tenant, &id)?;
        let ledger = &*state.manager.ledger;
        let world = world_at(ledger, &id, at).map_err(world_error)?;
        let seq = world.at();
        if let Some(path) = path {
            // Recorded paths are relative to the workspace root, without `./`.
            let rel = path.trim_start_matches("./");
            let content = world.content(ledger, rel).map_err(world_error)?;
            let Some(content) = content else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("`{path}` did not exist at seq {seq} of run {id}"),
                )
                .with_field("path"));
            };
            let kind = if std::str::from_utf8(&content).is_ok() {
                "text/plain; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            return Ok(([(header::CONTENT_TYPE, kind)], content).into_response());
        }
        if show_diff {
            let start = world_at(ledger, &id, Some(1)).map_err(world_error)?;
            let diff = diff(ledger, &start, &world).map_err(world_error)?;
            return Ok(Json(WorldDiff {
                run_id: id,
                at: seq,
                diff,
            })
            .into_response());
        }
        Ok(Json(WorldView {
            run_id: id,
            at: seq,
            changed: world.changed_paths().iter().cloned().collect(),
            files: world.files().clone(),
        })
        .into_response())
    })
    .await
}

#[utoipa::path(get, path = "/v1/runs/{id}/diff/{other}",
    params(("id" = String, Path, description = "Run A"), ("other" = String, Path, description = "Run B")),
    security(("bearer" = [])),
    responses((status = 200, body = RunDiff),
        (status = 404, description = "Either run is missing (or another tenant's)", body = ErrorBody),
        (status = 409, description = "A run's record cannot be compared", body = ErrorBody)))]
pub(crate) async fn run_diff(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((id, other)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let (a, _) = state.visible(&tenant, &id)?;
        let (b, _) = state.visible(&tenant, &other)?;
        let diff = diff_runs(&*state.manager.ledger, &a, &b).map_err(|e| match e {
            CompareError::Record(e) => record_error(e),
            CompareError::World { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        })?;
        Ok(Json(diff).into_response())
    })
    .await
}

#[utoipa::path(post, path = "/v1/runs/{id}/replay", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Matched or diverged: `status` says which", body = Replayed),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The record cannot be re-driven", body = ErrorBody)))]
pub(crate) async fn replay_run(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let (id, _) = state.visible(&tenant, &id)?;
        // Verdicts depend on the contracts: replay with the registry this server runs with.
        let report = replay(&*state.manager.ledger, state.config.registry.clone(), &id).map_err(
            |e| match e {
                ReplayError::Record(e) => record_error(e),
                e @ (ReplayError::Kernel { .. } | ReplayError::Stalled { .. }) => {
                    ApiError::new(StatusCode::CONFLICT, e.to_string())
                }
            },
        )?;
        let mut value = serde_json::to_value(&report).map_err(ApiError::internal)?;
        value["run_id"] = json!(id);
        Ok(Json(value).into_response())
    })
    .await
}

#[utoipa::path(post, path = "/v1/runs/{id}/branch", params(("id" = String, Path, description = "The origin run")),
    request_body = BranchRun, security(("bearer" = [])),
    responses(
        (status = 201, description = "Branch accepted (started or queued); it runs like a created run", body = Branched),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Invalid request (e.g. `at` is not a point the run can branch from); `field` names the input", body = ErrorBody),
        (status = 429, description = "Every slot busy and the queue full; see Retry-After", body = ErrorBody),
        (status = 503, description = "Shutting down", body = ErrorBody)))]
pub(crate) async fn branch_run(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    crate::api::JsonBody(request): crate::api::JsonBody<BranchRun>,
) -> Result<Response, ApiError> {
    let run_id = new_run_id();
    let shared = state.clone();
    let new_id = run_id.clone();
    let caller = tenant.clone();
    let (origin, from, point, options) = blocking(move || {
        let (origin, _) = shared.visible(&caller, &id)?;
        let entries = shared.manager.ledger.entries(&origin, 0)?;
        if entries.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("run {origin} has no entries in the ledger yet; nothing to branch from"),
            ));
        }
        // Checked here so a bad `at` is a 422 rather than a failed run after the 201.
        let point = praxis_runtime::branch::branch_seq(&entries, request.at)
            .map_err(|why| ApiError::invalid("at", format!("`at` {}: {why}", request.at)))?;
        if request.max_steps == Some(0) {
            return Err(ApiError::invalid(
                "max_steps",
                "`max_steps` must be at least 1",
            ));
        }
        let (provider_name, provider, prices, confinement) = shared.cognition(
            request.provider.clone(),
            request.model.clone(),
            request.script.clone(),
        )?;
        let workspace = shared.config.home.runtime_workspace(&new_id);
        // The runtime takes the origin's spec (with the branch's workspace and provider);
        // this one is what the run shows while it waits in the queue.
        let mut spec: praxis_core::RunSpec = entries
            .first()
            .and_then(|e| parse_payload::<RunStarted>(kinds::RUN_STARTED, &e.payload).ok())
            .map(|started| started.spec)
            .ok_or_else(|| {
                ApiError::internal(format!("run {origin}: its recorded spec is unreadable"))
            })?;
        spec.workspace = workspace.display().to_string();
        spec.provider = provider_name;
        let mut options = RunOptions::new(spec, provider);
        // Without a writ the branch keeps acting under the origin's writ as recorded.
        if let Some(token) = &request.writ {
            options.writ = Some(shared.grant(token, &caller)?);
        }
        options.prices = prices;
        confinement.apply(&mut options);
        options.checkpoint_key = shared.config.checkpoint_key.clone();
        options.approver = shared.approver(request.approve)?;
        let from = BranchFrom {
            run_id: origin.clone(),
            at: request.at,
            workspace,
            note: request.task.filter(|t| !t.trim().is_empty()),
            max_steps: request.max_steps,
        };
        Ok((origin, from, point, options))
    })
    .await?;
    let workspace = from.workspace.display().to_string();
    let admission = state.manager.submit(
        run_id.clone(),
        tenant.0,
        options,
        Job::Branch(Box::new(from)),
    )?;
    let (status, queue_position) = state.admitted(admission)?;
    let answer = Branched {
        id: run_id.clone(),
        branch_of: origin,
        branched_at: point,
        status,
        queue_position,
        workspace,
    };
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/runs/{run_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
