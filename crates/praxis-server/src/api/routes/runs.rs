//! `/v1/runs`: create, list, get, events, ledger, cancel, resume.

use crate::api::dto::*;
use crate::api::views::{fill_from_entries, ledger_view, live_view};
use crate::api::{ApiError, AppState, DEFAULT_TENANT, ErrorBody, JsonBody, Tenant, blocking};
use crate::runs::{Admission, Job, Known, row_of};
use crate::sse::Feed;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use praxis_core::RunStatus;
use praxis_core::record::{RunStarted, kinds, parse_payload};
use praxis_runtime::new_run_id;
use serde_json::json;

#[utoipa::path(post, path = "/v1/runs", request_body = CreateRun, security(("bearer" = [])),
    responses(
        (status = 201, description = "Run accepted (started or queued)", body = Created),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "Invalid request; `field` names the input", body = ErrorBody),
        (status = 429, description = "Every slot busy and the queue full; see Retry-After", body = ErrorBody),
        (status = 503, description = "Shutting down", body = ErrorBody)))]
pub(crate) async fn create_run(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    JsonBody(request): JsonBody<CreateRun>,
) -> Result<Response, ApiError> {
    let run_id = new_run_id();
    // Recorded with the run's owner before the 201: a crash before the run's first entry
    // does not lose it.
    let accepted = serde_json::to_string(&request).map_err(ApiError::internal)?;
    let shared = state.clone();
    let id = run_id.clone();
    let caller = tenant.clone();
    // What another server sharing the ledger needs to take the run over (the writ is
    // recorded in the run itself).
    let resume = ResumeRun {
        provider: request.provider.clone(),
        model: request.model.clone(),
        script: request.script.clone(),
        writ: None,
        approve: request.approve,
    };
    let options = blocking(move || {
        let options = shared.build_options(&id, &caller, request)?;
        if let Some(cluster) = &shared.manager.cluster {
            // Held (and renewed while the run waits in the queue) from now: if this server
            // dies before the run's first entry, another starts it once the lease expires.
            // Not for a run placed elsewhere: its pod records it, unfenced.
            if !shared.manager.places_new_runs_elsewhere()
                && !cluster.pg.acquire_lease(&id, cluster.lease)?
            {
                return Err(ApiError::internal(format!(
                    "run {id}: its new lease is held by another server"
                )));
            }
            crate::cluster::save_resume_request(cluster, &id, &resume)?;
        }
        Ok(options)
    })
    .await?;
    let admission =
        state
            .manager
            .submit_new(run_id.clone(), tenant.0.clone(), options, &accepted)?;
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

#[utoipa::path(get, path = "/v1/runs", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = RunList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn list_runs(
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
            if known.tenant() == Some(tenant_name.as_str()) {
                seen.insert(id.clone());
                views.push(shared.view(&id, known)?);
            }
        }
        let owners = shared.tokens.run_tenants()?;
        let rows = shared.manager.ledger.runs()?;
        // Runs that have their slot but no entry yet (waiting for their provider, or a Job
        // not started yet): listed as their own view says.
        let recorded: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.run_id.as_str()).collect();
        for (id, known) in shared.manager.active_runs() {
            if let Known::Active { tenant, .. } = &known
                && *tenant == tenant_name
                && !recorded.contains(id.as_str())
                && !seen.contains(&id)
            {
                seen.insert(id.clone());
                views.push(shared.view(&id, known)?);
            }
        }
        for row in rows {
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
            let known = shared.manager.known(&row.run_id);
            match known {
                Known::Active { hub, .. } => live_view(&mut view, hub.state()),
                // Its drive may have ended since the rows were read: its entries say.
                _ if view.status == RunStatus::Interrupted.as_str() => {
                    let entries = shared.manager.ledger.entries(&row.run_id, 0)?;
                    if let Some(now) = row_of(&entries) {
                        view = ledger_view(&now, &entries, owner.to_string());
                    }
                }
                _ => {}
            }
            views.push(view);
        }
        let views: Vec<RunView> = views
            .into_iter()
            .filter(|v| status.is_none_or(|s| v.status == s))
            .collect();
        let total = views.len();
        let mut page: Vec<RunView> = views.into_iter().skip(offset).take(limit).collect();
        // A ledger row carries no cost and no end time; read them for this page's runs only.
        for view in &mut page {
            if view.ended_at.is_none() && view.last_seq > 0 {
                let entries = shared.manager.ledger.entries(&view.id, 0)?;
                fill_from_entries(view, &entries);
            }
        }
        Ok(Json(RunList {
            runs: page,
            total,
            offset,
            limit,
        }))
    })
    .await
}

#[utoipa::path(get, path = "/v1/runs/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    // A live run's poll is answered on this thread when nothing needs reading.
    if let Some(view) = state.view_from_memory(&tenant, &id) {
        return Ok(Json(view));
    }
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
pub(crate) async fn run_events(
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
pub(crate) async fn export_ledger(
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
pub(crate) async fn cancel_run(
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
        if let Some(cluster) = &state.manager.cluster
            && matches!(
                view.status.as_str(),
                "running" | "awaiting_approval" | "interrupted"
            )
        {
            // Another server drives it (or will, after a takeover): the request waits in
            // the database for whoever holds the run's lease.
            cluster
                .cancels
                .request(&praxis_ledger::cancels::CancelRequest {
                    run_id: id.clone(),
                    reason,
                    by: format!("tenant {} through another server", tenant.0),
                    requested_at: praxis_ledger::now_rfc3339(),
                })?;
            return Ok((
                StatusCode::ACCEPTED,
                Json(CancelAnswer {
                    id,
                    status: "cancelling".into(),
                }),
            )
                .into_response());
        }
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
pub(crate) async fn resume_run(
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
            .and_then(|e| parse_payload::<RunStarted>(kinds::RUN_STARTED, &e.payload).ok())
            .map(|started| started.spec)
            .ok_or_else(|| {
                ApiError::internal(format!("run {id}: its recorded spec is unreadable"))
            })?;
        let options = shared.resume_options(&spec, &tenant, &request)?;
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
