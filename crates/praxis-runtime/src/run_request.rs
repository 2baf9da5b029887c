//! One resolver for every surface: what `praxis run`, `POST /v1/runs`, resume and branch
//! ask for ([`RunRequest`], each field remembering the name its surface knows it by) becomes
//! [`RunOptions`] through the same layered configuration (`praxis.toml` of the home and the
//! workspace, environment, request), the same provider selection, compaction and price
//! table. Errors name the field as the surface spells it (`--max-steps`, `max_steps`).
//!
//! What only a surface knows stays there: the writ source, the approver, the cancel signal,
//! and where a workspace may lie (the surface admits it first; see
//! [`DataHome::admit_workspace`]).

use crate::config::{self, ConfigError, Layered, Override};
use crate::driver::RunOptions;
use crate::home::{DataHome, HomeError};
use praxis_core::{Limits, PriceTable, Protocol, RunSpec};
use praxis_models::{Provider, ScriptedProvider, ToolChoice};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A value a surface asked for, with the name the surface knows it by (`--max-steps` in
/// the CLI, `max_steps` or `limits.max_steps` over HTTP).
#[derive(Clone, Debug)]
pub struct Asked<T> {
    pub value: T,
    pub name: &'static str,
}

impl<T> Asked<T> {
    pub fn new(value: T, name: &'static str) -> Self {
        Asked { value, name }
    }
}

/// A script for the scripted provider.
#[derive(Clone, Debug)]
pub enum Script {
    /// A script file (`--script FILE`).
    File(PathBuf),
    /// The script's JSON text, sent inline.
    Inline(String),
}

/// The cognition a surface asks for: provider (or tier), model, script.
#[derive(Clone, Debug, Default)]
pub struct CognitionRequest {
    pub provider: Option<Asked<String>>,
    pub model: Option<Asked<String>>,
    pub script: Option<Asked<Script>>,
}

impl CognitionRequest {
    /// A surface's provider, model and script, with the names it knows them by
    /// (`[provider, model, script]`).
    pub fn named(
        provider: Option<String>,
        model: Option<String>,
        script: Option<Script>,
        [provider_name, model_name, script_name]: [&'static str; 3],
    ) -> Self {
        CognitionRequest {
            provider: provider.map(|p| Asked::new(p, provider_name)),
            model: model.map(|m| Asked::new(m, model_name)),
            script: script.map(|s| Asked::new(s, script_name)),
        }
    }
}

/// What a surface asks a new run to be.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub task: Asked<String>,
    /// The workspace, already admitted by the surface (canonical).
    pub workspace: PathBuf,
    pub cognition: CognitionRequest,
    /// `tools` or `cmd`.
    pub protocol: Option<Asked<String>>,
    /// `auto`, `required`, `none` (see `praxis config`).
    pub tool_choice: Option<Asked<String>>,
    pub max_steps: Option<Asked<u32>>,
    pub max_seconds: Option<Asked<u64>>,
    pub max_invalid_replies: Option<Asked<u32>>,
    /// Tool allowlist (None: every tool).
    pub tools: Option<Vec<String>>,
    pub read_only: bool,
}

impl RunRequest {
    /// A request for `task` in `workspace` with every other field left to configuration.
    pub fn new(task: Asked<String>, workspace: PathBuf) -> Self {
        RunRequest {
            task,
            workspace,
            cognition: CognitionRequest::default(),
            protocol: None,
            tool_choice: None,
            max_steps: None,
            max_seconds: None,
            max_invalid_replies: None,
            tools: None,
            read_only: false,
        }
    }
}

/// A request the resolver refuses: `field` is the name of the input to blame as its
/// surface spells it (None: the server's or user's own configuration is at fault).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub field: Option<&'static str>,
    pub message: String,
}

impl RequestError {
    fn at(field: &'static str, message: impl Into<String>) -> Self {
        RequestError {
            field: Some(field),
            message: message.into(),
        }
    }

    fn config(error: impl std::fmt::Display) -> Self {
        RequestError {
            field: None,
            message: error.to_string(),
        }
    }
}

impl From<ConfigError> for RequestError {
    fn from(error: ConfigError) -> Self {
        RequestError::config(error)
    }
}

impl From<HomeError> for RequestError {
    fn from(error: HomeError) -> Self {
        RequestError::config(error)
    }
}

/// The resolved cognition, and the configuration it came from.
pub struct Cognition {
    pub provider: Arc<dyn Provider>,
    /// `model.provider` in force (`scripted` for a script).
    pub name: String,
    pub layered: Layered,
}

/// A resolved request: the options (spec, provider, prices), and what the configuration
/// had to say (warnings, and what a workspace `praxis.toml` set), for the surface to show.
pub struct Resolved {
    pub options: RunOptions,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

/// The cognition `request` asks for (an inline script, a script file, a provider or tier,
/// or the configured default), through the layered configuration of `home` and
/// `workspace`, with `extra` overrides (protocol, limits...) applied as flags.
pub fn cognition(
    home: &DataHome,
    workspace: Option<&Path>,
    request: &CognitionRequest,
    extra: &[Override],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cognition, RequestError> {
    cognition_in(Some(home), workspace, request, extra, env)
}

/// [`cognition`] for an embedder that may have no data dir (no home configuration layer).
pub fn cognition_in(
    home: Option<&DataHome>,
    workspace: Option<&Path>,
    request: &CognitionRequest,
    extra: &[Override],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cognition, RequestError> {
    let provider_name = request.provider.as_ref().map_or("provider", |p| p.name);
    let selection = config::provider_selection(
        request.provider.as_ref().map(|p| p.value.as_str()),
        request.model.as_ref().map(|m| m.value.as_str()),
    )
    .map_err(|(field, why)| {
        let name = match field {
            "model" => request.model.as_ref().map_or("model", |m| m.name),
            _ => provider_name,
        };
        RequestError::at(name, why)
    })?;
    let selection = match (selection, &request.script) {
        (Some(selection), Some(script)) if selection != "scripted" => {
            return Err(RequestError::at(
                provider_name,
                format!(
                    "provider `{selection}` does not use a script; use `scripted` or leave the provider out (the script is `{}`)",
                    script.name
                ),
            ));
        }
        (None, Some(_)) => Some("scripted".to_string()),
        (selection, _) => selection,
    };
    if selection.as_deref() == Some("scripted") && request.script.is_none() {
        return Err(RequestError::at(
            provider_name,
            "provider `scripted` needs a script",
        ));
    }
    let mut flags: Vec<Override> = selection
        .map(|s| Override::flag("model.provider", s, provider_name))
        .into_iter()
        .collect();
    flags.extend(extra.iter().cloned());
    let layered = config::load_layers(home, workspace, &flags, env).map_err(|e| match &e {
        ConfigError::Invalid { .. } | ConfigError::Provider(_) if request.provider.is_some() => {
            RequestError::at(provider_name, e.to_string())
        }
        _ => RequestError::config(e),
    })?;
    let provider: Arc<dyn Provider> = match &request.script {
        Some(Asked {
            value: Script::Inline(text),
            name,
        }) => Arc::new(
            ScriptedProvider::from_json_str(text, "inline script")
                .map_err(|e| RequestError::at(name, e.to_string()))?,
        ),
        Some(Asked {
            value: Script::File(path),
            name,
        }) => layered
            .provider(Some(path))
            .map_err(|e| RequestError::at(name, e.to_string()))?,
        None => layered.provider(None).map_err(|e| match request.provider {
            Some(_) => RequestError::at(provider_name, e.to_string()),
            None => RequestError::config(e),
        })?,
    };
    Ok(Cognition {
        provider,
        name: layered.config.model.provider.clone(),
        layered,
    })
}

/// The price table in force: `$PRAXIS_HOME/prices.toml`, then `[prices]` of the home
/// configuration (a workspace file may not set prices).
pub fn prices(home: &DataHome, layered: &Layered) -> Result<PriceTable, RequestError> {
    prices_in(Some(home), layered)
}

/// [`prices`] without a data dir: only the configuration's `[prices]`.
pub fn prices_in(home: Option<&DataHome>, layered: &Layered) -> Result<PriceTable, RequestError> {
    let mut prices = home.map(DataHome::prices).transpose()?.unwrap_or_default();
    prices.0.extend(layered.config.prices.0.clone());
    Ok(prices)
}

/// Everything a new run needs from `request`, the same way on every surface.
pub fn resolve(
    home: &DataHome,
    request: RunRequest,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, RequestError> {
    resolve_in(Some(home), request, &[], env)
}

/// [`resolve`] for an embedder (the `praxis` library) that may run without a data dir:
/// the same layers but the home's, the same provider selection, limits and compaction.
/// `settings` are configuration keys the embedder set (like flags, under the request's).
pub fn resolve_in(
    home: Option<&DataHome>,
    request: RunRequest,
    settings: &[Override],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, RequestError> {
    let task = request.task.value.trim();
    if task.is_empty() {
        return Err(RequestError::at(
            request.task.name,
            format!("`{}` must not be empty", request.task.name),
        ));
    }
    let mut flags = settings.to_vec();
    if let Some(protocol) = &request.protocol {
        Protocol::deserialize(toml::Value::String(protocol.value.clone())).map_err(|_| {
            RequestError::at(
                protocol.name,
                format!(
                    "unknown protocol `{}`: expected `tools` or `cmd`",
                    protocol.value
                ),
            )
        })?;
        flags.push(Override::flag(
            "model.protocol",
            protocol.value.as_str(),
            protocol.name,
        ));
    }
    if let Some(choice) = &request.tool_choice {
        choice
            .value
            .parse::<ToolChoice>()
            .map_err(|e| RequestError::at(choice.name, e.to_string()))?;
        flags.push(Override::flag(
            "model.tool_choice",
            choice.value.as_str(),
            choice.name,
        ));
    }
    if let Some(steps) = &request.max_steps {
        if steps.value == 0 {
            return Err(RequestError::at(
                steps.name,
                format!("`{}` must be at least 1", steps.name),
            ));
        }
        flags.push(Override::flag(
            "limits.max_steps",
            i64::from(steps.value),
            steps.name,
        ));
    }
    if let Some(secs) = &request.max_seconds {
        let value = i64::try_from(secs.value)
            .map_err(|_| RequestError::at(secs.name, format!("`{}` is too large", secs.name)))?;
        flags.push(Override::flag("limits.max_seconds", value, secs.name));
    }
    let cognition = cognition_in(
        home,
        Some(&request.workspace),
        &request.cognition,
        &flags,
        env,
    )?;
    let layered = &cognition.layered;
    let config = &layered.config;
    let compaction = layered
        .compaction(&*cognition.provider)
        .map_err(RequestError::config)?;
    let defaults = Limits::default();
    // Limits fields added later keep their defaults.
    #[allow(clippy::needless_update)]
    let limits = Limits {
        max_steps: config.limits.max_steps,
        max_seconds: Some(config.limits.max_seconds),
        max_invalid_replies: request
            .max_invalid_replies
            .map_or(defaults.max_invalid_replies, |m| m.value),
        ..defaults
    };
    let spec = RunSpec {
        conversation: Default::default(),
        protocol: config.model.protocol,
        compaction,
        task: task.to_string(),
        workspace: request.workspace.display().to_string(),
        provider: cognition.name.clone(),
        model: String::new(),
        tools: request.tools,
        read_only: request.read_only,
        limits,
    };
    let prices = prices_in(home, layered)?;
    let confinement = layered.confinement()?;
    let mut options = RunOptions::new(spec, cognition.provider.clone());
    options.prices = prices;
    confinement.apply(&mut options);
    Ok(Resolved {
        options,
        warnings: layered.warnings.clone(),
        notes: layered.notes.clone(),
    })
}
