//! Checks over a recorded run that the console shows: the hash chain (`praxis ledger
//! verify`) and what-if under another writ (`praxis policy check`), with the tenant checks
//! of every other run route.

use crate::api::{ApiError, AppState, ErrorBody, JsonBody, Tenant, blocking};
use axum::extract::{Path, State};
use axum::{Extension, Json};
use praxis_ledger::VerifyReport;
use praxis_runtime::whatif::check;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;
use utoipa::ToSchema;

/// `GET /v1/runs/{id}/verify`: the run's hash chain recomputed, as `praxis ledger verify RUN`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainVerdict {
    pub run_id: String,
    /// Every entry links to the previous one and its hash recomputes.
    pub intact: bool,
    /// Entries checked (when intact).
    pub entries: u64,
    /// The first bad seq (when broken).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// `POST /v1/runs/{id}/whatif`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatIf {
    /// The writ (its text) to re-judge the run's recorded proposals under; it must verify
    /// against the server's trust anchor and be issued for the caller's tenant.
    pub writ: String,
}

/// A recorded proposal whose verdict the writ would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangedVerdictView {
    /// Seq of the `proposal` entry.
    pub seq: u64,
    pub tool: String,
    /// The recorded verdict: `allow`, `deny` or `needs_approval`.
    pub before: String,
    /// The verdict under the writ.
    pub after: String,
    /// `RULE: REASON` of the new verdict (`was RULE: REASON` when it becomes `allow`).
    pub reason: String,
}

/// `200` answer to `POST /v1/runs/{id}/whatif`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhatIfAnswer {
    pub run_id: String,
    /// Proposals judged under the writ whose verdict would change, in ledger order.
    pub changed: Vec<ChangedVerdictView>,
}

#[utoipa::path(get, path = "/v1/runs/{id}/verify", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ChainVerdict), (status = 404, body = ErrorBody)))]
pub(crate) async fn verify_chain(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Json<ChainVerdict>, ApiError> {
    blocking(move || {
        let (run_id, _) = state.visible(&tenant, &id)?;
        let verdict = match state.manager.ledger.verify_run(&run_id)? {
            VerifyReport::Intact { entries } => ChainVerdict {
                run_id,
                intact: true,
                entries,
                broken_seq: None,
                problem: None,
            },
            VerifyReport::Broken { seq, problem } => ChainVerdict {
                run_id,
                intact: false,
                entries: 0,
                broken_seq: Some(seq),
                problem: Some(problem),
            },
        };
        Ok(Json(verdict))
    })
    .await
}

#[utoipa::path(post, path = "/v1/runs/{id}/whatif", params(("id" = String, Path)),
    request_body = WhatIf, security(("bearer" = [])),
    responses((status = 200, body = WhatIfAnswer), (status = 404, body = ErrorBody),
        (status = 422, description = "The writ does not verify, or is of another tenant", body = ErrorBody)))]
pub(crate) async fn what_if(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<WhatIf>,
) -> Result<Json<WhatIfAnswer>, ApiError> {
    blocking(move || {
        let (run_id, _) = state.visible(&tenant, &id)?;
        let token = body.writ.trim();
        if token.is_empty() {
            return Err(ApiError::invalid("writ", "`writ` must not be empty"));
        }
        let grant = state.grant(token, &tenant)?;
        let writ = praxis_writ::verify(&grant.token, &grant.anchor, SystemTime::now())
            .map_err(|e| ApiError::invalid("writ", format!("writ refused: {e}")))?;
        let changed = check(
            &*state.manager.ledger,
            state.config.registry.clone(),
            &run_id,
            Some(Arc::new(writ)),
        )
        .map_err(crate::history::record_error)?;
        Ok(Json(WhatIfAnswer {
            run_id,
            changed: changed
                .into_iter()
                .map(|c| ChangedVerdictView {
                    seq: c.seq,
                    tool: c.tool,
                    before: c.before,
                    after: c.after,
                    reason: c.reason,
                })
                .collect(),
        }))
    })
    .await
}
