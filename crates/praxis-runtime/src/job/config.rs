//! The job's configuration, read from the environment alone (the thoughtmesh Job contract)
//! and validated at once into typed values. Every error names the variable and the problem.

use crate::critic::KeyResult;
use praxis_writ::{ToolGrant, ToolMode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The settings the contract defines; each is read as `THOUGHTMESH_<NAME>` or
/// `PRAXIS_<NAME>` (both may be set only to the same value).
pub const MODEL_CONFIG: &str = "MODEL_CONFIG";
pub const OBJECTIVE: &str = "OBJECTIVE";
pub const KEY_RESULTS: &str = "KEY_RESULTS";
pub const TOOLS: &str = "TOOLS";
/// Praxis' own: the writ (token text or a file holding it) and the workspace.
pub const WRIT: &str = "PRAXIS_WRIT";
pub const WORKSPACE: &str = "PRAXIS_WORKSPACE";
/// The run this job records as: set by the server's Kubernetes executor, which created the
/// run (its owner, its Job) under this id before the pod started. Unset: a new id.
pub const RUN_ID: &str = "PRAXIS_RUN_ID";
/// The longest run id a job attaches to: `praxis-run-` + id is a Job name (a DNS-1123
/// label, 63 characters at most).
pub const MAX_ATTACHED_RUN_ID: usize = 52;

/// A configuration the job refuses (exit 2): `variable` is the environment variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct JobConfigError {
    pub variable: String,
    pub problem: String,
}

impl JobConfigError {
    pub fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        JobConfigError {
            variable: variable.into(),
            problem: problem.into(),
        }
    }
}

/// Provider kinds a job's model may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The keyless deterministic agent (`name` is ignored).
    Mock,
    /// Replays a script: `name` is the script file.
    Scripted,
    Openai,
    Anthropic,
    Ollama,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Mock => "mock",
            ProviderKind::Scripted => "scripted",
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
        }
    }

    /// The environment variables its API key and base URL are configured by (as `praxis
    /// config` reads them).
    fn key_and_url_vars(self) -> (Option<&'static str>, Option<&'static str>) {
        match self {
            ProviderKind::Openai => (Some("OPENAI_API_KEY"), Some("OPENAI_BASE_URL")),
            ProviderKind::Anthropic => (Some("ANTHROPIC_API_KEY"), Some("ANTHROPIC_BASE_URL")),
            ProviderKind::Ollama => (None, Some("OLLAMA_HOST")),
            ProviderKind::Mock | ProviderKind::Scripted => (None, None),
        }
    }
}

/// `*_MODEL_CONFIG`: `{"provider", "name", "api_key"?, "base_url"?}`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: ProviderKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

impl std::fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelConfig")
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl ModelConfig {
    /// The environment overrides this config stands for: its key and base URL under the
    /// names the layered configuration reads them by.
    pub fn env_overrides(&self) -> Vec<(&'static str, String)> {
        let (key_var, url_var) = self.provider.key_and_url_vars();
        let mut out = Vec::new();
        if let (Some(var), Some(key)) = (key_var, &self.api_key) {
            out.push((var, key.clone()));
        }
        if let (Some(var), Some(url)) = (url_var, &self.base_url) {
            out.push((var, url.clone()));
        }
        out
    }
}

/// How a tool entry may narrow the tool, with the fields of a writ block's tool grant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolNarrowing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ToolMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
}

impl ToolNarrowing {
    /// `granted` (the writ's grant of the tool) narrowed by this: each field given replaces
    /// the writ's, except `deny_commands`, which adds to it. Whether the result is within the
    /// writ is checked when it is appended as a block.
    pub fn narrow(&self, granted: &ToolGrant) -> ToolGrant {
        let mut grant = granted.clone();
        if let Some(paths) = &self.paths {
            grant.paths = Some(paths.clone());
        }
        if let Some(mode) = self.mode {
            grant.mode = Some(mode);
        }
        if let Some(allow) = &self.allow_commands {
            grant.allow_commands = Some(allow.clone());
        }
        if let Some(deny) = &self.deny_commands {
            let mut all = granted.deny_commands.clone().unwrap_or_default();
            all.extend(
                deny.iter()
                    .filter(|d| !all.contains(d))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            grant.deny_commands = Some(all);
        }
        if let Some(env) = &self.allow_env {
            grant.allow_env = Some(env.clone());
        }
        if let Some(hosts) = &self.hosts {
            grant.hosts = Some(hosts.clone());
        }
        grant
    }
}

/// One `*_TOOLS` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ToolNarrowing>,
}

/// Where the writ comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum WritSource {
    /// `PRAXIS_WRIT`: the token (read from the file when it named one).
    Token(String),
    /// Unset: a development writ issued with the data dir's local key.
    Development,
}

/// A job, as the environment configured it.
#[derive(Clone, Debug)]
pub struct JobConfig {
    pub model: ModelConfig,
    /// Which variable gave the model config (for errors found later).
    pub model_var: String,
    pub objective: String,
    pub objective_var: String,
    pub key_results: Vec<KeyResult>,
    /// The tools the run may use (None: every tool the writ grants).
    pub tools: Option<Vec<ToolConfig>>,
    pub tools_var: String,
    pub writ: WritSource,
    /// The workspace as given (admitted by the job before use).
    pub workspace: PathBuf,
    /// `PRAXIS_RUN_ID`: the id the run is recorded under (a run the server created).
    pub run_id: Option<String>,
}

/// `PRAXIS_RUN_ID`'s value, checked: 1 to [`MAX_ATTACHED_RUN_ID`] lower-case ASCII letters,
/// digits and inner `-` (what `praxis serve` makes, and what fits a Job's name).
pub fn attached_run_id(value: &str) -> Result<String, JobConfigError> {
    let id = value.trim();
    let problem = if id.is_empty() {
        Some("must not be empty".to_string())
    } else if id.len() > MAX_ATTACHED_RUN_ID {
        Some(format!(
            "is {} characters long; at most {MAX_ATTACHED_RUN_ID}",
            id.len()
        ))
    } else if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        Some(format!(
            "contains {c:?}; only lower-case ASCII letters, digits and `-` are allowed"
        ))
    } else if id.starts_with('-') || id.ends_with('-') {
        Some("must not start or end with `-`".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(JobConfigError::new(RUN_ID, problem)),
        None => Ok(id.to_string()),
    }
}

/// The value of setting `name`, and the variable it came from: `THOUGHTMESH_NAME` or
/// `PRAXIS_NAME`; both set to different values is an error.
fn setting(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<(String, String)>, JobConfigError> {
    let thoughtmesh = format!("THOUGHTMESH_{name}");
    let praxis = format!("PRAXIS_{name}");
    match (env(&thoughtmesh), env(&praxis)) {
        (Some(a), Some(b)) if a != b => Err(JobConfigError::new(
            format!("{thoughtmesh}/{praxis}"),
            "both are set, to different values: set one",
        )),
        (Some(a), _) => Ok(Some((thoughtmesh, a))),
        (None, Some(b)) => Ok(Some((praxis, b))),
        (None, None) => Ok(None),
    }
}

/// `text` as JSON of type `T`; errors name the variable and the path inside the value.
fn json<T: DeserializeOwned>(variable: &str, text: &str) -> Result<T, JobConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!("at `{path}`: ")
        };
        JobConfigError::new(variable, format!("{at}{}", e.inner()))
    })?;
    de.end().map_err(|e| {
        JobConfigError::new(variable, format!("trailing text after the JSON value: {e}"))
    })?;
    Ok(value)
}

/// A token given as text or as a file holding it (tokens are URL-safe base64, so a value
/// with `/` or `.` is taken as a path). `variable` names the setting in errors.
pub fn token_from_arg(variable: &str, arg: &str) -> Result<String, JobConfigError> {
    let path = std::path::Path::new(arg.trim());
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| {
            JobConfigError::new(
                variable,
                format!("cannot read writ file {}: {e}", path.display()),
            )
        })?;
        return Ok(text.trim().to_string());
    }
    if arg.contains(['/', '.']) {
        return Err(JobConfigError::new(
            variable,
            format!("cannot read writ file `{}`: no such file", arg.trim()),
        ));
    }
    Ok(arg.trim().to_string())
}

impl JobConfig {
    /// Reads and validates every setting; `known_tools` are the tools a run can have.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        known_tools: &[String],
    ) -> Result<JobConfig, JobConfigError> {
        let (objective_var, objective) = setting(env, OBJECTIVE)?.ok_or_else(|| {
            JobConfigError::new(
                format!("THOUGHTMESH_{OBJECTIVE}"),
                format!("missing: set THOUGHTMESH_{OBJECTIVE} (or PRAXIS_{OBJECTIVE}) to what the job should achieve"),
            )
        })?;
        let objective = objective.trim().to_string();
        if objective.is_empty() {
            return Err(JobConfigError::new(objective_var, "must not be empty"));
        }

        let (model_var, text) = setting(env, MODEL_CONFIG)?.ok_or_else(|| {
            JobConfigError::new(
                format!("THOUGHTMESH_{MODEL_CONFIG}"),
                format!("missing: set THOUGHTMESH_{MODEL_CONFIG} (or PRAXIS_{MODEL_CONFIG}) to {{\"provider\": \"openai\", \"name\": \"MODEL\"}} (provider one of mock, scripted, openai, anthropic, ollama)"),
            )
        })?;
        let model: ModelConfig = json(&model_var, &text)?;
        validate_model(&model_var, &model)?;

        let key_results = match setting(env, KEY_RESULTS)? {
            None => Vec::new(),
            Some((var, text)) => {
                let results: Vec<KeyResult> = json(&var, &text)?;
                for (i, result) in results.iter().enumerate() {
                    if result.statement().trim().is_empty() {
                        return Err(JobConfigError::new(
                            &var,
                            format!("[{i}]: the text must not be empty"),
                        ));
                    }
                    if result.check().is_some_and(|c| c.trim().is_empty()) {
                        return Err(JobConfigError::new(
                            &var,
                            format!(
                                "[{i}].check: must not be empty (leave it out to have the critic judge)"
                            ),
                        ));
                    }
                }
                results
            }
        };

        let (tools_var, tools) = match setting(env, TOOLS)? {
            None => (format!("THOUGHTMESH_{TOOLS}"), None),
            Some((var, text)) => {
                let tools: Vec<ToolConfig> = json(&var, &text)?;
                validate_tools(&var, &tools, known_tools)?;
                (var, Some(tools))
            }
        };

        let writ = match env(WRIT).filter(|v| !v.trim().is_empty()) {
            Some(value) => WritSource::Token(token_from_arg(WRIT, &value)?),
            None => WritSource::Development,
        };
        let workspace = match env(WORKSPACE).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => std::env::current_dir().map_err(|e| {
                JobConfigError::new(
                    WORKSPACE,
                    format!("unset, and the working directory is unreadable: {e}"),
                )
            })?,
        };
        if !workspace.is_dir() {
            return Err(JobConfigError::new(
                WORKSPACE,
                format!("{} is not a directory", workspace.display()),
            ));
        }
        let run_id = env(RUN_ID)
            .map(|value| attached_run_id(&value))
            .transpose()?;
        Ok(JobConfig {
            model,
            model_var,
            objective,
            objective_var,
            key_results,
            tools,
            tools_var,
            writ,
            workspace,
            run_id,
        })
    }
}

fn validate_model(var: &str, model: &ModelConfig) -> Result<(), JobConfigError> {
    let kind = model.provider;
    if model.name.trim().is_empty() && kind != ProviderKind::Mock {
        return Err(JobConfigError::new(
            var,
            format!(
                "`name` must not be empty (the {} model{})",
                kind.as_str(),
                if kind == ProviderKind::Scripted {
                    "'s script file"
                } else {
                    ""
                }
            ),
        ));
    }
    let (key_var, url_var) = kind.key_and_url_vars();
    if model.api_key.is_some() && key_var.is_none() {
        return Err(JobConfigError::new(
            var,
            format!("`api_key`: provider `{}` takes no API key", kind.as_str()),
        ));
    }
    if model
        .api_key
        .as_deref()
        .is_some_and(|k| k.trim().is_empty())
    {
        return Err(JobConfigError::new(
            var,
            "`api_key` must not be empty (leave it out to use the provider's usual variable)",
        ));
    }
    if let Some(url) = &model.base_url {
        if url_var.is_none() {
            return Err(JobConfigError::new(
                var,
                format!("`base_url`: provider `{}` takes no base URL", kind.as_str()),
            ));
        }
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() <= "https://".len()
        {
            return Err(JobConfigError::new(
                var,
                format!("`base_url`: `{url}` is not an http(s) URL"),
            ));
        }
    }
    Ok(())
}

fn validate_tools(var: &str, tools: &[ToolConfig], known: &[String]) -> Result<(), JobConfigError> {
    for (i, tool) in tools.iter().enumerate() {
        if !known.contains(&tool.name) {
            return Err(JobConfigError::new(
                var,
                format!(
                    "[{i}].name: unknown tool `{}`; known tools: {}",
                    tool.name,
                    known.join(", ")
                ),
            ));
        }
        if let Some(first) = tools[..i].iter().position(|t| t.name == tool.name) {
            return Err(JobConfigError::new(
                var,
                format!(
                    "[{i}].name: tool `{}` is already listed at [{first}]",
                    tool.name
                ),
            ));
        }
        if let Some(narrowing) = &tool.config {
            // The narrowing must be a valid writ grant on its own (globs, patterns, hosts).
            let spec = praxis_writ::WritSpec {
                tools: vec![narrowing.narrow(&ToolGrant::new(&tool.name))],
                ..praxis_writ::WritSpec::development("job")
            };
            spec.validate().map_err(|e| {
                JobConfigError::new(
                    var,
                    format!("[{i}].config: {}", e.to_string().replace("tools[0].", "")),
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
