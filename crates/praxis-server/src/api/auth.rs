//! Authentication: API tokens to tenants, and which runs a tenant may see.

use crate::api::{ApiError, AppState, DEFAULT_TENANT, Shared, Tenant};
use crate::config::AuthSetting;
use crate::runs::Known;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use praxis_ledger::tokens::TokenStore;

/// Whether requests must carry a token under `setting` (auto: once any token exists).
pub(crate) fn auth_on(
    setting: AuthSetting,
    tokens: &TokenStore,
) -> Result<bool, praxis_ledger::LedgerError> {
    match setting {
        AuthSetting::On => Ok(true),
        AuthSetting::Off => Ok(false),
        AuthSetting::Auto => tokens.any(),
    }
}

/// The tenant whose API token `headers` carry (`default` when authentication is off); 401
/// without a valid one. Every authenticated surface (the API, the MCP endpoint) asks here.
pub(crate) fn tenant_of(
    auth_on: bool,
    tokens: &TokenStore,
    headers: &HeaderMap,
) -> Result<Tenant, ApiError> {
    if !auth_on {
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
    match tokens.tenant_for(token)? {
        Some(tenant) => Ok(Tenant(tenant)),
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid API token")),
    }
}

impl Shared {
    /// Whether requests must carry a token: `PRAXIS_AUTH=on`, or (auto) any token exists.
    /// Asked per request, so `praxis token create` takes effect without a restart.
    pub fn auth_on(&self) -> Result<bool, praxis_ledger::LedgerError> {
        auth_on(self.config.auth, &self.tokens)
    }

    pub(crate) fn tenant_of(&self, headers: &HeaderMap) -> Result<Tenant, ApiError> {
        tenant_of(self.auth_on()?, &self.tokens, headers)
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
        let owner = match known.tenant() {
            Some(tenant) => tenant.to_string(),
            None => {
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

pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
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
