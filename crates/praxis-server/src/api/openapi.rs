//! The OpenAPI document.

use crate::api::ErrorBody;
use crate::api::dto::*;
use crate::api::routes::{approvals::*, ops::*, runs::*};
use crate::runs::Counters;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::OpenApi;

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
        crate::audit::verify_chain,
        crate::audit::what_if,
        crate::ui::session,
        list_approvals,
        decide_approval,
        list_tools,
        records_schema,
        feed_schema,
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
        crate::audit::ChainVerdict,
        crate::audit::WhatIf,
        crate::audit::WhatIfAnswer,
        crate::audit::ChangedVerdictView,
        crate::ui::Session,
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
pub(crate) struct ApiDoc;

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

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}
