//! `/v1/approvals`.

use crate::api::dto::*;
use crate::api::{ApiError, AppState, ErrorBody, JsonBody, Tenant, blocking};
use crate::runs::Known;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use praxis_ledger::approvals::ApprovalError;
use serde_json::Value;

#[utoipa::path(get, path = "/v1/approvals", security(("bearer" = [])),
    responses((status = 200, body = ApprovalList), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_approvals(
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
pub(crate) async fn decide_approval(
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
