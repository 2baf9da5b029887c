//! Configuration: `praxis.toml` in the data dir and in the workspace, layered under
//! environment variables and command-line flags, with the source of every value.
//!
//! Layers, later wins: built-in defaults < `$PRAXIS_HOME/praxis.toml` < `WORKSPACE/praxis.toml`
//! < environment < flags. A workspace file may not set `[providers]` or `[prices]`: a
//! repository must not be able to send your API keys to its own endpoint or make budgets
//! free. API keys come from the environment only and are never printed.
//!
//! Merging is done over TOML tables here rather than with figment, whose 0.10 line would add
//! a second `toml` major version to the tree; the provenance it offers is kept per leaf key.

use crate::home::DataHome;
use praxis_core::{Compaction, CompactionMode};
use praxis_models::{ModelError, Provider, ProviderSettings, ToolChoice};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const CONFIG_FILE: &str = "praxis.toml";

mod types;
pub use types::{
    CompactionConfig, Config, Endpoint, LimitsConfig, MIN_COMMAND_MEMORY_BYTES, ModelConfig,
    OllamaEndpoint, OpenAiEndpoint, ProvidersConfig, ToolsConfig,
};

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error(transparent)]
    Provider(#[from] ModelError),
}

/// A value set by the environment or a flag: dotted key, TOML value, where it came from.
#[derive(Clone, Debug)]
pub struct Override {
    pub key: String,
    pub value: toml::Value,
    pub source: Source,
}

impl Override {
    pub fn flag(key: &str, value: impl Into<toml::Value>, flag: &str) -> Self {
        Override {
            key: key.into(),
            value: value.into(),
            source: Source::Flag(flag.into()),
        }
    }
}

/// The effective configuration, the source of each leaf key, and warnings to show.
#[derive(Clone, Debug)]
pub struct Layered {
    pub config: Config,
    pub sources: BTreeMap<String, Source>,
    pub warnings: Vec<String>,
    /// What a workspace `praxis.toml` set (to be said, so a repository changes nothing
    /// silently).
    pub notes: Vec<String>,
    /// Environment variables holding API keys: name -> whether it is set.
    pub keys: BTreeMap<String, bool>,
    settings_env: ProviderSettings,
}

/// Environment variables that set config keys.
const ENV_KEYS: &[(&str, &str)] = &[
    ("PRAXIS_PROVIDER", "model.provider"),
    ("PRAXIS_PROTOCOL", "model.protocol"),
    ("OPENAI_BASE_URL", "providers.openai.base_url"),
    ("ANTHROPIC_BASE_URL", "providers.anthropic.base_url"),
    ("OLLAMA_HOST", "providers.ollama.host"),
];

/// Environment variables that set whole-number config keys (bytes).
const ENV_BYTE_KEYS: &[(&str, &str)] = &[
    ("PRAXIS_COMMAND_MEMORY_BYTES", "limits.command_memory_bytes"),
    ("PRAXIS_RUN_BLOB_BYTES", "limits.run_blob_bytes"),
    ("PRAXIS_DATA_DIR_BLOB_BYTES", "limits.data_dir_blob_bytes"),
];

/// The overrides [`ENV_BYTE_KEYS`] set in `env`; a value that is not a whole number of bytes
/// is an error naming the variable and the setting.
fn env_byte_overrides(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Override>, ConfigError> {
    let mut overrides = Vec::new();
    for (var, key) in ENV_BYTE_KEYS {
        let Some(raw) = env(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let bytes = raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ConfigError::Invalid {
                source_name: format!("env {var}"),
                message: format!(
                    "{var} = `{raw}` is not a whole number of bytes (it sets {key}, e.g. \
                     {var}=1073741824 for 1 GiB)"
                ),
            })?;
        overrides.push(Override {
            key: key.to_string(),
            value: toml::Value::Integer(bytes),
            source: Source::Env(var.to_string()),
        });
    }
    Ok(overrides)
}

/// A `provider` + `model` pair as one `model.provider` selection: `--model` completes a
/// provider given without one (`openai` + `gpt-4.1-mini` -> `openai:gpt-4.1-mini`). The
/// error names the offending field (`model`) and says why.
pub fn provider_selection(
    provider: Option<&str>,
    model: Option<&str>,
) -> Result<Option<String>, (&'static str, String)> {
    match (provider, model) {
        (Some(p), Some(m)) if !p.contains(':') => Ok(Some(format!("{p}:{m}"))),
        (Some(p), Some(_)) => Err((
            "model",
            format!("provider `{p}` already names its model; leave the model out"),
        )),
        (Some(p), None) => Ok(Some(p.to_string())),
        (None, Some(m)) => Err((
            "model",
            format!("model `{m}` needs a provider (e.g. `openai` with model `{m}`)"),
        )),
        (None, None) => Ok(None),
    }
}

/// Loads every layer. `env` reads environment variables (tests pass their own).
pub fn load(
    home: &DataHome,
    workspace: Option<&Path>,
    flags: &[Override],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Layered, ConfigError> {
    load_layers(Some(home), workspace, flags, env)
}

/// [`load`] for an embedder that may have no data dir (`home` None: no home file layer).
pub fn load_layers(
    home: Option<&DataHome>,
    workspace: Option<&Path>,
    flags: &[Override],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Layered, ConfigError> {
    let mut merged = toml::Table::new();
    let mut sources = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    let defaults = toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid {
        source_name: "built-in defaults".into(),
        message: e.to_string(),
    })?;
    merge(&mut merged, defaults, "", &Source::Default, &mut sources);
    let home_file = home.map(|h| h.root().join(CONFIG_FILE));
    let mut files: Vec<(PathBuf, bool)> = home_file.iter().map(|f| (f.clone(), false)).collect();
    if let Some(ws) = workspace {
        files.push((ws.join(CONFIG_FILE), true));
    }
    for (path, in_workspace) in files {
        let Some(mut table) = read_file(&path)? else {
            continue;
        };
        if in_workspace {
            let home_config =
                Config::deserialize(toml::Value::Table(merged.clone())).map_err(|e| {
                    ConfigError::Invalid {
                        source_name: "the home configuration".into(),
                        message: e.to_string(),
                    }
                })?;
            if table.remove("tools").is_some() {
                warnings.push(format!(
                    "ignored [tools] in {}: tools may only be declared in {} or the \
                     environment (a repository must not be able to start processes)",
                    path.display(),
                    home_file
                        .as_deref()
                        .map_or("the home configuration".into(), |f| f.display().to_string())
                ));
            }
            if table.remove("mcp_servers").is_some() {
                warnings.push(format!(
                    "ignored mcp_servers in {}: MCP servers may only be declared in {} (a \
                     repository must not be able to start processes or reach endpoints)",
                    path.display(),
                    home_file
                        .as_deref()
                        .map_or("the home configuration".into(), |f| f.display().to_string())
                ));
            }
            narrow(&mut table, &home_config, &path, &mut warnings, &mut notes);
            for section in ["providers", "prices"] {
                if table.remove(section).is_some() {
                    warnings.push(format!(
                        "ignored [{section}] in {}: it may only be set in {} or the \
                         environment (a repository must not redirect API keys or change prices)",
                        path.display(),
                        home_file
                            .as_deref()
                            .map_or("the home configuration".into(), |f| f.display().to_string())
                    ));
                }
            }
        }
        merge(&mut merged, table, "", &Source::File(path), &mut sources);
    }
    let mut overrides: Vec<Override> = ENV_KEYS
        .iter()
        .filter_map(|(var, key)| {
            let value = env(var).filter(|v| !v.trim().is_empty())?;
            Some(Override {
                key: key.to_string(),
                value: toml::Value::String(value),
                source: Source::Env(var.to_string()),
            })
        })
        .collect();
    overrides.extend(env_byte_overrides(env)?);
    overrides.extend(flags.iter().cloned());
    for o in overrides {
        set_path(&mut merged, &o.key, o.value);
        sources.insert(o.key, o.source);
    }
    let config: Config =
        Config::deserialize(toml::Value::Table(merged)).map_err(|e| ConfigError::Invalid {
            source_name: "the merged configuration".into(),
            message: e.to_string(),
        })?;
    crate::mcp_config::check(&config.mcp_servers).map_err(|e| ConfigError::Invalid {
        source_name: "the home configuration".into(),
        message: e.to_string(),
    })?;
    let keys = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]
        .iter()
        .map(|k| (k.to_string(), env(k).is_some_and(|v| !v.trim().is_empty())))
        .collect();
    Ok(Layered {
        config,
        sources,
        warnings,
        notes,
        keys,
        settings_env: ProviderSettings::from_vars(env),
    })
}

/// The provider kinds a selection stands for: `openai:gpt-4.1` -> openai; a tier -> the
/// kinds of its models.
fn provider_kinds(selection: &str, tiers: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let kind = |spec: &str| spec.trim().split(':').next().unwrap_or("").to_string();
    match tiers.get(selection.trim()) {
        Some(tier) => tier.iter().map(|s| kind(s)).collect(),
        None => selection.split(',').map(kind).collect(),
    }
}

/// A workspace file may only narrow the home configuration: it cannot switch to another
/// provider kind (nor define tiers), and a limit above the home's is clamped to it. Each
/// refusal is a warning; each value it does set is a note.
fn narrow(
    table: &mut toml::Table,
    home: &Config,
    path: &Path,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    let file = path.display();
    if table.remove("models").is_some() {
        warnings.push(format!(
            "ignored [models] in {file}: model tiers may only be defined in the home praxis.toml or the environment"
        ));
    }
    if let Some(toml::Value::Table(model)) = table.get_mut("model") {
        if let Some(selection) = model.get("provider").and_then(|v| v.as_str()) {
            let allowed = provider_kinds(&home.model.provider, &home.models);
            let asked = provider_kinds(selection, &home.models);
            if asked.iter().any(|k| !allowed.contains(k)) {
                warnings.push(format!(
                    "ignored model.provider = {selection:?} in {file}: a workspace may not switch from the {} provider to another kind (set it in the home praxis.toml or with --provider)",
                    allowed.join("/")
                ));
                model.remove("provider");
            }
        }
        let ceilings: [(&str, Option<u64>); 3] = [
            (
                "max_output_tokens",
                Some(u64::from(home.model.max_output_tokens)),
            ),
            ("max_attempts", Some(u64::from(home.model.max_attempts))),
            ("thinking_budget", home.model.thinking_budget.map(u64::from)),
        ];
        clamp(model, "model", &ceilings, &file.to_string(), warnings);
    }
    if let Some(toml::Value::Table(limits)) = table.get_mut("limits") {
        let ceilings = [
            ("max_steps", Some(u64::from(home.limits.max_steps))),
            ("max_seconds", Some(home.limits.max_seconds)),
            (
                "command_memory_bytes",
                Some(home.limits.command_memory_bytes),
            ),
            ("run_blob_bytes", Some(home.limits.run_blob_bytes)),
            ("data_dir_blob_bytes", Some(home.limits.data_dir_blob_bytes)),
        ];
        clamp(limits, "limits", &ceilings, &file.to_string(), warnings);
    }
    let mut set = Vec::new();
    flatten(table, "", &mut |key, value| {
        if !matches!(key.split('.').next(), Some("providers" | "prices")) {
            set.push(format!("{key} = {value}"));
        }
    });
    if !set.is_empty() {
        notes.push(format!("{file} sets {}", set.join(", ")));
    }
}

/// Clamps each numeric key of `table` to its ceiling (None: the home sets none, so the
/// workspace may not set one either).
fn clamp(
    table: &mut toml::Table,
    section: &str,
    ceilings: &[(&str, Option<u64>)],
    file: &str,
    warnings: &mut Vec<String>,
) {
    for (key, ceiling) in ceilings {
        let Some(asked) = table.get(*key).and_then(|v| v.as_integer()) else {
            continue;
        };
        match ceiling {
            Some(max) if u64::try_from(asked).is_ok_and(|a| a > *max) => {
                warnings.push(format!(
                    "{section}.{key} = {asked} in {file} is above the home configuration's {max}: using {max} (a workspace may only narrow limits)"
                ));
                table.insert(
                    key.to_string(),
                    toml::Value::Integer(i64::try_from(*max).unwrap_or(i64::MAX)),
                );
            }
            None => {
                warnings.push(format!(
                    "ignored {section}.{key} = {asked} in {file}: the home configuration sets none, and a workspace may only narrow limits"
                ));
                table.remove(*key);
            }
            Some(_) => {}
        }
    }
}

/// A config file as a table, validated against the schema so a typo names its file.
fn read_file(path: &Path) -> Result<Option<toml::Table>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.into(),
                source,
            });
        }
    };
    let invalid = |message: String| ConfigError::Invalid {
        source_name: path.display().to_string(),
        message,
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(table))
}

/// Merges `layer` into `into`, recording `source` for every leaf it sets.
fn merge(
    into: &mut toml::Table,
    layer: toml::Table,
    prefix: &str,
    source: &Source,
    sources: &mut BTreeMap<String, Source>,
) {
    for (key, value) in layer {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(table)) => {
                merge(existing, table, &path, source, sources);
            }
            (_, toml::Value::Table(table)) => {
                let mut fresh = toml::Table::new();
                merge(&mut fresh, table, &path, source, sources);
                into.insert(key, toml::Value::Table(fresh));
            }
            (_, value) => {
                sources.insert(path, source.clone());
                into.insert(key, value);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut at = table;
    for part in parts {
        let entry = at
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            unreachable!("made a table above")
        };
        at = next;
    }
    at.insert(last.to_string(), value);
}

impl Layered {
    /// Provider settings: keys from the environment, everything else from the config.
    pub fn provider_settings(&self) -> Result<ProviderSettings, ConfigError> {
        let model = &self.config.model;
        let tool_choice: ToolChoice =
            model
                .tool_choice
                .parse()
                .map_err(|e: praxis_models::SettingParseError| ConfigError::Invalid {
                    source_name: self.source_of("model.tool_choice"),
                    message: e.to_string(),
                })?;
        let mut settings = self.settings_env.clone();
        settings.openai_base_url = self.config.providers.openai.base_url.clone();
        settings.openai_stream = self.config.providers.openai.stream;
        settings.anthropic_base_url = self.config.providers.anthropic.base_url.clone();
        settings.ollama_host = self.config.providers.ollama.host.clone();
        settings.protocol = model.protocol;
        settings.tool_choice = tool_choice;
        settings.context_window = model.context_window;
        settings.max_output_tokens = model.max_output_tokens;
        settings.request_timeout = Duration::from_secs(model.request_timeout_secs.max(1));
        settings.idle_timeout = Duration::from_secs(model.idle_timeout_secs.max(1));
        settings.retry.max_attempts = model.max_attempts.max(1);
        settings.thinking_budget = model.thinking_budget;
        Ok(settings)
    }

    /// The provider selected by `model.provider` (a tier name expands to its failover list).
    pub fn provider(&self, script: Option<&Path>) -> Result<Arc<dyn Provider>, ConfigError> {
        let selection = self.config.model.provider.trim();
        let spec = match self.config.models.get(selection) {
            Some(tier) if tier.is_empty() => {
                return Err(ConfigError::Invalid {
                    source_name: self.source_of(&format!("models.{selection}")),
                    message: format!("tier `{selection}` lists no models"),
                });
            }
            Some(tier) => tier.join(","),
            None => selection.to_string(),
        };
        let settings = self.provider_settings()?;
        Ok(praxis_models::provider_from_spec(&spec, &settings, script)?)
    }

    /// The compaction a run gets with `provider` (None when off or the window is unknown).
    pub fn compaction(&self, provider: &dyn Provider) -> Result<Option<Compaction>, ConfigError> {
        let c = &self.config.compaction;
        let mode = match c.mode.as_str() {
            "off" => return Ok(None),
            "truncate" => CompactionMode::Truncate,
            "summarize" => CompactionMode::Summarize,
            other => {
                return Err(ConfigError::Invalid {
                    source_name: self.source_of("compaction.mode"),
                    message: format!(
                        "unknown compaction mode `{other}`: expected truncate, summarize or off"
                    ),
                });
            }
        };
        if !(1..=100).contains(&c.threshold_percent) {
            return Err(ConfigError::Invalid {
                source_name: self.source_of("compaction.threshold_percent"),
                message: format!("{} is not a percentage from 1 to 100", c.threshold_percent),
            });
        }
        let window = provider
            .context_window()
            .or(self.config.model.context_window)
            .or(match provider.name() {
                "openai" => Some(128_000),
                "anthropic" => Some(200_000),
                "ollama" => Some(32_768),
                _ => None,
            });
        Ok(window.map(|context_window| Compaction {
            mode,
            context_window,
            threshold_percent: c.threshold_percent,
            keep_recent: c.keep_recent,
        }))
    }

    /// The memory bound of each command and the blob caps of a run, from `[limits]`. An
    /// unusable value is an error naming the setting and where it was set.
    pub fn confinement(&self) -> Result<Confinement, ConfigError> {
        let limits = &self.config.limits;
        if limits.command_memory_bytes < MIN_COMMAND_MEMORY_BYTES {
            return Err(ConfigError::Invalid {
                source_name: self.source_of("limits.command_memory_bytes"),
                message: format!(
                    "limits.command_memory_bytes = {} is below the smallest bound a command can run in ({MIN_COMMAND_MEMORY_BYTES} bytes, 16 MiB)",
                    limits.command_memory_bytes
                ),
            });
        }
        let capture = praxis_tools::CaptureLimits {
            max_run_blob_bytes: limits.run_blob_bytes,
            max_data_dir_blob_bytes: limits.data_dir_blob_bytes,
            ..praxis_tools::CaptureLimits::default()
        };
        Ok(Confinement {
            command_memory_bytes: limits.command_memory_bytes,
            capture,
        })
    }

    pub fn source_of(&self, key: &str) -> String {
        self.sources
            .get(key)
            .map_or_else(|| "default".to_string(), ToString::to_string)
    }

    /// Every leaf key with its value and source, sorted (what `praxis config` shows).
    pub fn entries(&self) -> Vec<(String, toml::Value, Source)> {
        let table = toml::Table::try_from(&self.config).unwrap_or_default();
        let mut out = Vec::new();
        flatten(&table, "", &mut |key, value| {
            let source = self.sources.get(&key).cloned().unwrap_or(Source::Default);
            out.push((key, value.clone(), source));
        });
        out
    }
}

/// What `[limits]` bounds beyond the kernel's limits: a command's memory and a run's blobs.
#[derive(Clone, Debug)]
pub struct Confinement {
    pub command_memory_bytes: u64,
    pub capture: praxis_tools::CaptureLimits,
}

impl Confinement {
    /// Puts these bounds into a run's options (sub-runs inherit them from there).
    pub fn apply(self, options: &mut crate::driver::RunOptions) {
        options.tool_limits.sandbox.resources.memory_bytes = self.command_memory_bytes;
        options.capture = self.capture;
    }
}

fn flatten(table: &toml::Table, prefix: &str, f: &mut dyn FnMut(String, &toml::Value)) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten(t, &path, f),
            other => f(path, other),
        }
    }
}

#[cfg(test)]
mod tests;
