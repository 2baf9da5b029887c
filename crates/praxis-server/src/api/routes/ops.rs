//! Tools, writs, health, readiness and metrics.

use crate::api::dto::*;
use crate::api::{ApiError, AppState, ErrorBody, JsonBody, blocking};
use crate::runs::Known;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use praxis_core::RunStatus;
use praxis_runtime::overview;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::SystemTime;

#[utoipa::path(get, path = "/v1/tools", security(("bearer" = [])),
    responses((status = 200, body = ToolList)))]
pub(crate) async fn list_tools(State(state): State<AppState>) -> Json<ToolList> {
    let tools = state
        .config
        .registry
        .catalogue()
        .into_iter()
        .map(|tool| ToolView {
            effect: tool.effect.as_str().to_string(),
            source: tool.origin.as_str().to_string(),
            server: tool.origin.server().map(str::to_string),
            name: tool.name,
            description: tool.description,
            parameters: tool.input_schema,
        })
        .collect();
    Json(ToolList { tools })
}

#[utoipa::path(post, path = "/v1/writs/verify", request_body = VerifyWrit, security(("bearer" = [])),
    responses((status = 200, description = "`valid` says whether the writ verifies against this server's trust anchor now", body = WritVerdict),
        (status = 422, body = ErrorBody)))]
pub(crate) async fn verify_writ(
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

/// The JSON Schema of ledger records (`schema/records.schema.json` in the repository).
#[utoipa::path(get, path = "/v1/schema/records", security(("bearer" = [])),
    responses((status = 200, description = "JSON Schema of every ledger record kind")))]
pub(crate) async fn records_schema() -> Json<Value> {
    Json(praxis_core::record::record_schema())
}

/// The JSON Schema of the live feed's event data (`schema/feed.schema.json`).
#[utoipa::path(get, path = "/v1/schema/feed", security(("bearer" = [])),
    responses((status = 200, description = "JSON Schema of the events of /v1/runs/{id}/events")))]
pub(crate) async fn feed_schema() -> Json<Value> {
    Json(praxis_core::record::feed_schema())
}

#[utoipa::path(get, path = "/health", responses((status = 200, description = "The process is up")))]
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/ready", responses(
    (status = 200, description = "Ready: `{\"status\":\"ready\"}`; with a valid token also the ledger's health"),
    (status = 503, description = "Not ready: `{\"status\":\"not_ready\"}`; with a valid token also why")))]
pub(crate) async fn ready(State(state): State<AppState>, headers: HeaderMap) -> Response {
    /// What anyone may learn: ready or not, nothing about the data dir or the ledger.
    #[derive(Serialize)]
    struct Readiness {
        status: &'static str,
    }
    let detailed = headers.contains_key(header::AUTHORIZATION)
        && matches!(state.auth_on(), Ok(true))
        && state.tenant_of(&headers).is_ok();
    let manager = state.manager.clone();
    let accepting = !*state.shutdown.borrow();
    let health = tokio::task::spawn_blocking(move || manager.health()).await;
    let ready = accepting && matches!(&health, Ok(Ok(report)) if report.problem().is_none());
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
            report.problem().unwrap_or_default(),
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
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
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
