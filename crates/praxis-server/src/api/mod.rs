//! Routes, request and response shapes, authentication and errors of the HTTP API.

mod auth;
mod dto;
mod error;
mod openapi;
mod options;
mod routes;
mod views;

pub use dto::*;
pub use error::ErrorBody;
pub(crate) use error::{ApiError, JsonBody};
pub use openapi::openapi_json;

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::runs::Manager;
use auth::authenticate;
pub(crate) use auth::{auth_on, tenant_of};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use openapi::openapi;
use praxis_ledger::approvals::ApprovalStore;
use praxis_ledger::tokens::TokenStore;
use routes::{approvals::*, ops::*, runs::*};
use std::sync::Arc;
use tokio::sync::watch;

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
        .route("/v1/schema/records", get(records_schema))
        .route("/v1/schema/feed", get(feed_schema))
        .route("/v1/writs/verify", post(verify_writ))
        .route("/v1/runs/{id}/verify", get(crate::audit::verify_chain))
        .route("/v1/runs/{id}/whatif", post(crate::audit::what_if))
        .route("/v1/session", get(crate::ui::session))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let open = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready));
    let mut app = open
        .merge(crate::ui::routes())
        .merge(authenticated)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.body_limit,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::ui::origin_guard,
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
    app.layer(middleware::from_fn(crate::ui::security_headers))
        .with_state(state)
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route (see /openapi.json)")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route (see /openapi.json)",
    )
}

pub(crate) async fn count_requests(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
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

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}
