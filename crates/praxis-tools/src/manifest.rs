//! Manifest-backed tools: a `*.toml` file declares a tool (name, description, the JSON Schema
//! of its arguments, effect, and the argv it runs), so a user's own scripts become governed
//! tools without code. Arguments fill whole argv items (`"{path}"`); nothing goes through a
//! shell, so an argument like `"; rm -rf ~"` is one string handed to the program. The command
//! runs like `shell`'s: clean environment, the run's sandbox, a timeout, capped output.
//!
//! A manifest is parsed once where it enters ([`load_dirs`]): every field is checked there
//! and a malformed file is refused naming the file and the field.

use crate::process::{ProcessSpec, clean_env, run_process};
use crate::tools::shell::{SANDBOX_NOTE, call_timeout, observe, push_line, resolve_dir};
use crate::{BoxFuture, ExecContext, ToolContract};
use praxis_core::{AccessMode, Effect, ExecStatus, Observation, Resource, ToolSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The environment variable listing manifest directories (`:`-separated).
pub const MANIFEST_DIRS_ENV: &str = "PRAXIS_TOOL_MANIFEST_DIRS";

/// Longest timeout a manifest may declare (one hour, `test_run`'s maximum).
const MAX_TIMEOUT_SECONDS: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("tool manifest directory `{dir}`: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("tool manifest `{file}`: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the manifest's shape.
    #[error("tool manifest `{file}`: {message}")]
    Parse { file: PathBuf, message: String },
    /// A field parsed but its value is refused.
    #[error("tool manifest `{file}`: field `{field}`: {message}")]
    Field {
        file: PathBuf,
        field: String,
        message: String,
    },
}

/// A manifest as written (the file's shape; unknown fields are refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    name: String,
    description: String,
    /// JSON Schema of the arguments object.
    args: toml::Table,
    effect: Effect,
    command: Vec<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// One argv item: literal text, or the value of an argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgvItem {
    Literal(String),
    Arg(String),
}

/// A checked manifest: what the tool is and exactly what it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolManifest {
    /// The file it came from (for messages and `praxis tools`).
    pub file: PathBuf,
    pub spec: ToolSpec,
    /// The program (literal, never an argument) and its arguments.
    pub program: String,
    pub argv: Vec<ArgvItem>,
    /// Directory to run in, relative to the workspace root.
    pub cwd: String,
    pub timeout: Duration,
    /// Added to the clean environment every command gets.
    pub env: BTreeMap<String, String>,
}

/// The directories named by `PRAXIS_TOOL_MANIFEST_DIRS` (`:`-separated, empty parts
/// skipped), after `configured` ones (`[tools] manifest_dirs`).
pub fn manifest_dirs(configured: &[PathBuf], env_value: Option<&str>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = configured.to_vec();
    for part in env_value.unwrap_or("").split(':') {
        if !part.trim().is_empty() {
            dirs.push(PathBuf::from(part));
        }
    }
    dirs.dedup();
    dirs
}

/// Every `*.toml` manifest in `dirs` (sorted by file name within a directory). A missing or
/// unreadable directory, or any malformed manifest, refuses the lot: tools are not half
/// loaded.
pub fn load_dirs(dirs: &[PathBuf]) -> Result<Vec<ToolManifest>, ManifestError> {
    let mut manifests = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|source| ManifestError::Dir {
            dir: dir.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ManifestError::Dir {
                dir: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
                file: file.clone(),
                source,
            })?;
            manifests.push(parse(&file, &text)?);
        }
    }
    Ok(manifests)
}

/// Parses and checks one manifest; errors name `file` and the field.
pub fn parse(file: &Path, text: &str) -> Result<ToolManifest, ManifestError> {
    let raw: ManifestFile = toml::from_str(text).map_err(|e| ManifestError::Parse {
        file: file.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let refuse = |field: &str, message: String| ManifestError::Field {
        file: file.to_path_buf(),
        field: field.to_string(),
        message,
    };
    check_name(&raw.name).map_err(|m| refuse("name", m))?;
    if raw.description.trim().is_empty() {
        return Err(refuse("description", "must not be empty".into()));
    }
    let parameters = args_schema(raw.args).map_err(|m| refuse("args", m))?;
    let properties = parameters
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let Some((program, rest)) = raw.command.split_first() else {
        return Err(refuse("command", "must name a program".into()));
    };
    if program.is_empty() || placeholder(program).is_some() || program.contains('{') {
        return Err(refuse(
            "command[0]",
            "the program must be literal text (an argument may not choose what runs)".into(),
        ));
    }
    let mut argv = Vec::new();
    for (i, item) in rest.iter().enumerate() {
        let field = format!("command[{}]", i + 1);
        argv.push(argv_item(item, &properties).map_err(|m| refuse(&field, m))?);
    }
    let cwd = raw.cwd.unwrap_or_else(|| ".".to_string());
    check_cwd(&cwd).map_err(|m| refuse("cwd", m))?;
    let timeout = match raw.timeout_seconds {
        None => Duration::from_secs(120),
        Some(s) if (1..=MAX_TIMEOUT_SECONDS).contains(&s) => Duration::from_secs(s),
        Some(s) => {
            return Err(refuse(
                "timeout_seconds",
                format!("{s} is outside 1..={MAX_TIMEOUT_SECONDS}"),
            ));
        }
    };
    for (key, value) in &raw.env {
        let valid = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || value.contains('\0') {
            return Err(refuse(
                &format!("env.{key}"),
                "names must be letters, digits and `_` (not first a digit); values must not contain NUL".into(),
            ));
        }
    }
    Ok(ToolManifest {
        file: file.to_path_buf(),
        spec: ToolSpec {
            name: raw.name,
            description: raw.description,
            effect: raw.effect,
            parameters,
        },
        program: program.clone(),
        argv,
        cwd,
        timeout,
        env: raw.env,
    })
}

/// Tool names are what writs list: lowercase letters, digits and `_`, starting with a letter;
/// `mcp__` is reserved for MCP servers' tools.
fn check_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(format!(
            "`{name}` must be 1-64 lowercase letters, digits or `_`, starting with a letter"
        ));
    }
    if name.starts_with("mcp__") {
        return Err(format!(
            "`{name}`: the prefix `mcp__` is reserved for MCP tools"
        ));
    }
    Ok(())
}

/// The arguments' JSON Schema: an object schema; unknown fields are refused unless the
/// manifest says otherwise.
fn args_schema(args: toml::Table) -> Result<Value, String> {
    let mut schema = serde_json::to_value(args).map_err(|e| e.to_string())?;
    let Some(object) = schema.as_object_mut() else {
        return Err("must be a table".into());
    };
    match object.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        _ => return Err("must be a JSON Schema with type = \"object\"".into()),
    }
    if let Some(properties) = object.get("properties")
        && !properties.is_object()
    {
        return Err("`properties` must be a table".into());
    }
    object
        .entry("additionalProperties")
        .or_insert(Value::Bool(false));
    jsonschema::validator_for(&schema).map_err(|e| format!("not a valid JSON Schema: {e}"))?;
    Ok(schema)
}

/// `{name}` as a whole item -> Some(name).
fn placeholder(item: &str) -> Option<&str> {
    let inner = item.strip_prefix('{')?.strip_suffix('}')?;
    let valid = !inner.is_empty()
        && inner.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(inner)
}

fn argv_item(item: &str, properties: &Map<String, Value>) -> Result<ArgvItem, String> {
    let Some(name) = placeholder(item) else {
        if item.contains('{') || item.contains('}') {
            return Err(format!(
                "`{item}`: a placeholder must be a whole argv item (`{{name}}`), never part of one"
            ));
        }
        return Ok(ArgvItem::Literal(item.to_string()));
    };
    let Some(property) = properties.get(name) else {
        return Err(format!("`{item}` names no property of `args`"));
    };
    let scalar = ["string", "number", "integer", "boolean"];
    match property.get("type") {
        Some(Value::String(t)) if scalar.contains(&t.as_str()) => Ok(ArgvItem::Arg(name.into())),
        _ => Err(format!(
            "`{item}`: property `{name}` must declare type string, number, integer or boolean \
             (one argument fills one argv item)"
        )),
    }
}

/// Relative, without `..`: the directory stays inside the workspace (checked again
/// physically when the call runs).
fn check_cwd(cwd: &str) -> Result<(), String> {
    let path = Path::new(cwd);
    let inside = !cwd.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        Ok(())
    } else {
        Err(format!(
            "`{cwd}` must be a path inside the workspace (relative, without `..`)"
        ))
    }
}

impl ToolManifest {
    /// The argv after the program, with `args` filled in (an absent optional argument drops
    /// its item). Each argument is exactly one item, whatever it contains.
    pub fn render(&self, args: &Value) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(self.argv.len());
        for item in &self.argv {
            match item {
                ArgvItem::Literal(text) => out.push(text.clone()),
                ArgvItem::Arg(name) => match args.get(name) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) if s.contains('\0') => {
                        return Err(format!("argument `{name}` contains a NUL byte"));
                    }
                    Some(Value::String(s)) => out.push(s.clone()),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => out.push(v.to_string()),
                    Some(_) => {
                        return Err(format!(
                            "argument `{name}` must be a string, number or boolean"
                        ));
                    }
                },
            }
        }
        Ok(out)
    }
}

/// A manifest as a tool contract.
pub struct ManifestTool(pub ToolManifest);

impl ToolContract for ManifestTool {
    fn spec(&self) -> ToolSpec {
        self.0.spec.clone()
    }

    /// Its working directory: written to when the effect is write or more (like `shell`).
    fn resources(&self, _args: &Value) -> Vec<Resource> {
        let mode = if self.0.spec.effect >= Effect::Write {
            AccessMode::Write
        } else {
            AccessMode::Read
        };
        vec![Resource::Path {
            path: self.0.cwd.clone(),
            mode,
        }]
    }

    fn execute<'a>(&'a self, ctx: &'a ExecContext, args: Value) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let manifest = &self.0;
            let argv = match manifest.render(&args) {
                Ok(argv) => argv,
                Err(why) => {
                    return Observation::error(format!(
                        "invalid arguments for `{}`: {why}",
                        manifest.spec.name
                    ));
                }
            };
            let cwd = match resolve_dir(ctx, &manifest.cwd, "cwd") {
                Ok(dir) => dir,
                Err(obs) => return obs,
            };
            let timeout = match call_timeout(ctx, None, manifest.timeout, manifest.timeout) {
                Ok(t) => t,
                Err(obs) => return obs,
            };
            let mut env = clean_env();
            for (key, value) in &manifest.env {
                env.retain(|(k, _)| k != key);
                env.push((key.clone(), value.clone()));
            }
            let cap = ctx.limits.output_bytes;
            let spec = ProcessSpec {
                program: PathBuf::from(&manifest.program),
                args: argv,
                cwd,
                env,
                timeout,
                output_cap: cap,
                sandbox: ctx.sandbox.clone(),
            };
            let outcome = run_process(&spec).await;
            let mut observation = observe(&outcome, cap, timeout);
            if ctx.sandbox.is_some() && observation.status != ExecStatus::Ok {
                push_line(&mut observation.output, SANDBOX_NOTE);
            }
            observation
        })
    }

    fn origin(&self) -> crate::ToolOrigin {
        crate::ToolOrigin::Manifest {
            file: self.0.file.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
