//! Failover: several providers tried in order for each call.

use crate::{BoxFuture, DeltaSink, FailedAttempt, ModelError, Provider};
use praxis_core::{ModelRequest, ModelResponse};
use std::sync::Arc;

/// Tries its providers in order. It moves on only when a provider failed in a way that may
/// be transient and already used up its own retries (rate limits, overload, outages,
/// broken streams); auth, configuration and request errors are the user's to fix and come
/// back at once. The reply's `model` names the model that actually answered.
pub struct FailoverProvider {
    providers: Vec<Arc<dyn Provider>>,
}

/// A provider that tries `providers` in order (see [`FailoverProvider`]). A single provider
/// is returned as is.
pub fn failover(mut providers: Vec<Arc<dyn Provider>>) -> Arc<dyn Provider> {
    if providers.len() == 1
        && let Some(only) = providers.pop()
    {
        return only;
    }
    Arc::new(FailoverProvider { providers })
}

impl FailoverProvider {
    /// The providers, in the order they are tried.
    pub fn providers(&self) -> &[Arc<dyn Provider>] {
        &self.providers
    }
}

impl Provider for FailoverProvider {
    /// The first provider's name (the one normally answering).
    fn name(&self) -> &str {
        self.providers.first().map_or("failover", |p| p.name())
    }

    fn model(&self) -> &str {
        self.providers.first().map_or("", |p| p.model())
    }

    /// The smallest known window: any of the providers may have to take the context.
    fn context_window(&self) -> Option<u64> {
        self.providers
            .iter()
            .filter_map(|p| p.context_window())
            .min()
    }

    fn for_delegate(&self, task: &str) -> Result<Arc<dyn Provider>, ModelError> {
        let chain = self
            .providers
            .iter()
            .map(|p| p.for_delegate(task))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(failover(chain))
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
        deltas: &'a dyn DeltaSink,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            if self.providers.is_empty() {
                return Err(ModelError::Config(
                    "the failover chain has no providers".into(),
                ));
            }
            let mut attempts = Vec::new();
            for provider in &self.providers {
                match provider.complete(request, deltas).await {
                    Ok(response) => return Ok(response),
                    Err(error) if error.is_retryable() => attempts.push(FailedAttempt {
                        provider: format!("{}:{}", provider.name(), provider.model()),
                        error,
                    }),
                    Err(error) => return Err(error),
                }
            }
            Err(ModelError::AllFailed { attempts })
        })
    }
}
