//! The catalogue of tools: each tool's contract plus its argument schema compiled once, so
//! that compiling an intent (validate, name resources) is pure and cheap. Also the small
//! helpers every built-in tool shares: spec generation, argument parsing, output capping.

use crate::manifest::{ManifestTool, ToolManifest};
use crate::{BoxFuture, ExecContext, Placement, ToolContract, ToolUpdates};
use jsonschema::error::ValidationErrorKind;
use praxis_core::{
    AccessMode, CompileError, Compiled, Contracts, Effect, Observation, Resource, ToolSpec,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("a tool named `{0}` is already registered")]
    Duplicate(String),
    #[error("tool `{tool}` has an invalid argument schema: {problem}")]
    InvalidSchema { tool: String, problem: String },
    /// A manifest tool could not join the registry (its name is taken, say).
    #[error("tool manifest `{}`: {source}", file.display())]
    Manifest {
        file: std::path::PathBuf,
        source: Box<RegistryError>,
    },
}

struct Entry {
    tool: Arc<dyn ToolContract>,
    spec: ToolSpec,
    /// Compiled when a tool from outside is registered (a bad schema refuses it), or when a
    /// built-in tool's arguments are first checked: its schema is generated from our own
    /// types (the tests compile every one), and a process that never compiles an intent
    /// (the tool worker, a `praxis` command that runs nothing) never pays for it.
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

/// `spec`'s argument schema, compiled.
fn validator_of(spec: &ToolSpec) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(&spec.parameters).map_err(|e| e.to_string())
}

/// Tools by name (a BTreeMap, so listings are sorted and deterministic).
#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
    /// The manifest tools among the entries (the worker is told them, to run them there).
    manifests: Vec<ToolManifest>,
    /// Where outside tools can change during a run, and the generation these entries reflect.
    updates: Option<(Arc<dyn ToolUpdates>, u64)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tools", &self.names())
            .finish()
    }
}

impl Registry {
    pub fn empty() -> Self {
        Registry::default()
    }

    /// The built-in tools.
    pub fn builtin() -> Self {
        use crate::tools::*;
        let tools: Vec<Arc<dyn ToolContract>> = vec![
            Arc::new(list_files::ListFilesTool),
            Arc::new(fs_read::FsReadTool),
            Arc::new(grep::GrepTool),
            Arc::new(repo_map::RepoMapTool),
            Arc::new(fs_write::FsWriteTool),
            Arc::new(fs_patch::FsPatchTool),
            Arc::new(shell::ShellTool),
            Arc::new(test_run::TestRunTool),
            Arc::new(http::HttpTool),
            Arc::new(delegate::DelegateTool),
        ];
        let mut registry = Registry::empty();
        for tool in tools {
            let name = tool.spec().name;
            if let Err(e) = registry.insert(tool, OnceLock::new()) {
                // The built-in names are our own: a failure here is a programming error
                // caught by the tests, not bad input.
                panic!("built-in tool `{name}` failed to register: {e}");
            }
        }
        registry
    }

    /// The built-in tools plus `manifests` (see [`crate::manifest`]). A manifest whose
    /// name is taken is refused naming its file.
    pub fn with_manifests(manifests: Vec<ToolManifest>) -> Result<Self, RegistryError> {
        let mut registry = Registry::builtin();
        for manifest in manifests {
            registry.add_manifest(manifest)?;
        }
        Ok(registry)
    }

    /// Adds one manifest tool.
    pub fn add_manifest(&mut self, manifest: ToolManifest) -> Result<(), RegistryError> {
        let file = manifest.file.clone();
        self.register(Arc::new(ManifestTool(manifest.clone())))
            .map_err(|source| RegistryError::Manifest {
                file,
                source: Box::new(source),
            })?;
        self.manifests.push(manifest);
        Ok(())
    }

    /// Follows `updates` (see [`ToolUpdates`]); the entries reflect `generation`.
    pub fn set_updates(&mut self, updates: Arc<dyn ToolUpdates>, generation: u64) {
        self.updates = Some((updates, generation));
    }

    /// The source of changes and the generation these entries reflect.
    pub fn updates(&self) -> Option<(&Arc<dyn ToolUpdates>, u64)> {
        self.updates.as_ref().map(|(u, g)| (u, *g))
    }

    /// This registry with its outside tools ([`ToolContract::recorded`]) replaced by `tools`,
    /// reflecting `generation`. A tool whose schema does not compile or whose name is taken
    /// is left out and named in the second value.
    pub fn with_outside_tools(
        &self,
        tools: Vec<Arc<dyn ToolContract>>,
        generation: u64,
    ) -> (Registry, Vec<String>) {
        let mut next = Registry {
            manifests: self.manifests.clone(),
            updates: self.updates.as_ref().map(|(u, _)| (u.clone(), generation)),
            ..Registry::default()
        };
        let mut refused = Vec::new();
        let kept = self
            .entries
            .values()
            .filter(|e| !e.tool.recorded())
            .map(|e| e.tool.clone());
        for tool in kept.chain(tools) {
            if let Err(e) = next.register(tool) {
                refused.push(e.to_string());
            }
        }
        (next, refused)
    }

    /// The manifest tools registered here.
    pub fn manifests(&self) -> &[ToolManifest] {
        &self.manifests
    }

    /// Adds a tool; its schema is compiled now. A duplicate name or an invalid schema is an
    /// error and leaves the registry unchanged.
    pub fn register(&mut self, tool: Arc<dyn ToolContract>) -> Result<(), RegistryError> {
        let spec = tool.spec();
        let validator = validator_of(&spec).map_err(|problem| RegistryError::InvalidSchema {
            tool: spec.name.clone(),
            problem,
        })?;
        self.insert(tool, OnceLock::from(Ok(validator)))
    }

    /// Adds `tool` with its validator (compiled, or to be compiled on first use).
    fn insert(
        &mut self,
        tool: Arc<dyn ToolContract>,
        validator: OnceLock<Result<jsonschema::Validator, String>>,
    ) -> Result<(), RegistryError> {
        let spec = tool.spec();
        if self.entries.contains_key(&spec.name) {
            return Err(RegistryError::Duplicate(spec.name));
        }
        self.entries.insert(
            spec.name.clone(),
            Entry {
                tool,
                spec,
                validator,
            },
        );
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ToolContract>> {
        self.entries.get(name).map(|e| &e.tool)
    }

    /// Registered tool names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Names of the registered tools whose effect is `effect` (`Exec`: those that start
    /// commands in the run's sandbox), sorted.
    pub fn names_with_effect(&self, effect: Effect) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.tool.spec().effect == effect)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Runs `tool` with `args`: in the worker process when the context's fabric is the
    /// worker and the tool's [`Placement`] is the worker, here otherwise. An unknown tool yields an
    /// error observation; the duration is measured here when the tool did not report one.
    pub fn execute<'a>(
        &'a self,
        ctx: &'a ExecContext,
        tool: &str,
        args: Value,
    ) -> BoxFuture<'a, Observation> {
        let Some(entry) = self.entries.get(tool) else {
            let message = format!(
                "unknown tool `{tool}`; available tools: {}",
                self.names().join(", ")
            );
            return Box::pin(async move { Observation::error(message) });
        };
        let tool = tool.to_string();
        Box::pin(async move {
            let started = Instant::now();
            let mut observation = match &ctx.fabric {
                crate::Fabric::Worker(worker) if entry.tool.placement() == Placement::Worker => {
                    worker.execute(&tool, args, ctx.deadline).await
                }
                _ => {
                    // What the call changes must be seen as changed after the git guard's
                    // last scan here.
                    crate::gitguard::changes_may_start().await;
                    entry.tool.execute(ctx, args).await
                }
            };
            if observation.duration_ms == 0 {
                observation.duration_ms =
                    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            }
            observation
        })
    }
}

impl Contracts for Registry {
    fn specs(&self) -> Vec<ToolSpec> {
        self.entries.values().map(|e| e.spec.clone()).collect()
    }

    fn compile(&self, tool: &str, arguments: &Value) -> Result<Compiled, CompileError> {
        let entry = self
            .entries
            .get(tool)
            .ok_or_else(|| CompileError::UnknownTool {
                name: tool.to_string(),
                available: self.names(),
            })?;
        if !arguments.is_object() {
            // A provider passes argument text it could not parse as a JSON string.
            let got = match arguments {
                Value::String(text) => format!("text that is not a JSON object: {}", clip(text)),
                other => clip(&other.to_string()),
            };
            return Err(CompileError::InvalidArguments {
                tool: tool.to_string(),
                problems: vec![format!("arguments must be a JSON object; got {got}")],
            });
        }
        let validator = match entry.validator.get_or_init(|| validator_of(&entry.spec)) {
            Ok(validator) => validator,
            Err(problem) => {
                return Err(CompileError::InvalidArguments {
                    tool: tool.to_string(),
                    problems: vec![format!("the tool's argument schema is invalid: {problem}")],
                });
            }
        };
        let mut problems: Vec<String> = validator
            .iter_errors(arguments)
            .flat_map(|e| describe(&e))
            .collect();
        if !problems.is_empty() {
            // The validator's order follows the schema; sorting keeps the message stable.
            problems.sort();
            problems.dedup();
            return Err(CompileError::InvalidArguments {
                tool: tool.to_string(),
                problems,
            });
        }
        Ok(Compiled {
            effect: entry.spec.effect,
            resources: entry.tool.resources(arguments),
        })
    }

    fn recorded_specs(&self) -> Vec<ToolSpec> {
        self.entries
            .values()
            .filter(|e| e.tool.recorded())
            .map(|e| e.spec.clone())
            .collect()
    }
}

/// One validation error as messages that name the field: "`path`: 5 is not of type
/// \"string\"", "missing required field `path`", "unknown field `pth`".
fn describe(error: &jsonschema::ValidationError<'_>) -> Vec<String> {
    let location = field_path(error.instance_path().as_str());
    let in_object = |what: String| match &location {
        Some(parent) => format!("`{parent}`: {what}"),
        None => what,
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            vec![in_object(format!("missing required field `{name}`"))]
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected
            .iter()
            .map(|name| in_object(format!("unknown field `{name}`")))
            .collect(),
        _ => match &location {
            Some(field) => vec![format!("`{field}`: {error}")],
            None => vec![format!("arguments: {error}")],
        },
    }
}

fn clip(text: &str) -> String {
    const MAX: usize = 120;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(MAX).collect::<String>())
    }
}

/// A JSON pointer ("/edits/0/search") as a field path ("edits/0/search"); None for the root.
fn field_path(pointer: &str) -> Option<String> {
    let trimmed = pointer.trim_start_matches('/');
    if trimmed.is_empty() {
        return None;
    }
    Some(
        trimmed
            .split('/')
            .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join("/"),
    )
}

/// The spec of a tool whose arguments are the struct `A`: the schema comes from schemars
/// (doc comments become descriptions), without the `$schema`/`title` keys providers do not
/// need.
pub fn tool_spec<A: schemars::JsonSchema>(
    name: &str,
    description: &str,
    effect: Effect,
) -> ToolSpec {
    let mut schema = schemars::schema_for!(A);
    schema.remove("$schema");
    schema.remove("title");
    ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        effect,
        parameters: schema.to_value(),
    }
}

/// Deserialises tool arguments, or an error observation naming what is wrong. The registry
/// validates against the schema before execution; this still guards direct callers.
pub fn parse_args<A: DeserializeOwned>(tool: &str, args: Value) -> Result<A, Observation> {
    serde_json::from_value(args)
        .map_err(|e| Observation::error(format!("invalid arguments for `{tool}`: {e}")))
}

/// The single resource of a tool whose `path` argument names what it touches.
pub fn path_resource(path: &str, mode: AccessMode) -> Vec<Resource> {
    vec![Resource::Path {
        path: path.to_string(),
        mode,
    }]
}

/// Runs a tool's body, blocking file system work, off the async threads. A panicking body
/// becomes an error observation.
pub fn run_blocking<A, F>(tool: &'static str, args: A, body: F) -> BoxFuture<'static, Observation>
where
    A: Send + 'static,
    F: FnOnce(A) -> Observation + Send + 'static,
{
    Box::pin(async move {
        tokio::task::spawn_blocking(move || body(args))
            .await
            .unwrap_or_else(|e| Observation::error(format!("{tool} failed: {e}")))
    })
}

/// Caps `text` at `limit` bytes (cut on a character boundary). Returns the text, with a final
/// marker line `[... truncated: N more bytes ...]` when cut, and N.
pub fn cap_output(text: String, limit: usize) -> (String, u64) {
    if text.len() <= limit {
        return (text, 0);
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = (text.len() - cut) as u64;
    let mut out = text;
    out.truncate(cut);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("[... truncated: {dropped} more bytes ...]"));
    (out, dropped)
}

/// An ok observation with `text` capped at `limit` bytes (the context's `output_bytes`).
pub fn capped_ok(limit: usize, text: String) -> Observation {
    let (output, truncated_bytes) = cap_output(text, limit);
    Observation {
        truncated_bytes,
        ..Observation::ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use praxis_core::{AccessMode, ExecStatus, Resource};
    use serde_json::json;

    #[test]
    fn builtin_has_all_tools_sorted_with_object_schemas() {
        let r = Registry::builtin();
        assert_eq!(
            r.names(),
            [
                "delegate",
                "fs_patch",
                "fs_read",
                "fs_write",
                "grep",
                "http",
                "list_files",
                "repo_map",
                "shell",
                "test_run"
            ]
        );
        let specs = r.specs();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, r.names());
        for spec in &specs {
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
            assert!(spec.parameters.get("$schema").is_none());
            assert!(!spec.description.is_empty());
            // Compiled on first use: every built-in schema must compile.
            if let Err(problem) = validator_of(spec) {
                panic!("built-in tool `{}`: {problem}", spec.name);
            }
        }
        // Not compiled until a tool's arguments are checked.
        assert!(r.entries.values().all(|e| e.validator.get().is_none()));
        r.compile("fs_read", &json!({"path": "a"})).unwrap();
        assert!(r.entries["fs_read"].validator.get().is_some());
        let read = specs.iter().find(|s| s.name == "fs_read").unwrap();
        assert_eq!(read.effect, Effect::Read);
        assert!(read.parameters["properties"]["path"]["description"].is_string());
        let write = specs.iter().find(|s| s.name == "fs_write").unwrap();
        assert_eq!(write.effect, Effect::Write);
    }

    #[test]
    fn register_rejects_duplicates_and_invalid_schemas() {
        struct Bad;
        impl ToolContract for Bad {
            fn spec(&self) -> ToolSpec {
                ToolSpec {
                    name: "bad".into(),
                    description: "d".into(),
                    effect: Effect::Read,
                    parameters: json!({"type": 12}),
                }
            }
            fn resources(&self, _: &Value) -> Vec<praxis_core::Resource> {
                Vec::new()
            }
            fn execute<'a>(&'a self, _: &'a ExecContext, _: Value) -> BoxFuture<'a, Observation> {
                Box::pin(async { Observation::ok("") })
            }
        }
        let mut r = Registry::builtin();
        let err = r
            .register(Arc::new(crate::tools::fs_read::FsReadTool))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a tool named `fs_read` is already registered"
        );
        let err = r.register(Arc::new(Bad)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("tool `bad` has an invalid argument schema"),
            "{err}"
        );
        assert!(r.get("bad").is_none());
    }

    #[test]
    fn compile_names_resources_and_effect() {
        let r = Registry::builtin();
        let c = r
            .compile("fs_write", &json!({"path": "a/b.txt", "content": "x"}))
            .unwrap();
        assert_eq!(c.effect, Effect::Write);
        assert_eq!(
            c.resources,
            vec![Resource::Path {
                path: "a/b.txt".into(),
                mode: AccessMode::Write
            }]
        );
        let c = r.compile("list_files", &json!({})).unwrap();
        assert_eq!(
            c.resources,
            vec![Resource::Path {
                path: ".".into(),
                mode: AccessMode::Read
            }]
        );
        // Pure and deterministic.
        assert_eq!(r.compile("list_files", &json!({})).unwrap(), c);
    }

    #[test]
    fn compile_rejects_unknown_tools_and_bad_arguments_by_field() {
        let r = Registry::builtin();
        match r.compile("fs_reed", &json!({})).unwrap_err() {
            CompileError::UnknownTool { name, available } => {
                assert_eq!(name, "fs_reed");
                assert_eq!(available, r.names());
            }
            other => panic!("unexpected {other:?}"),
        }
        let problems = |tool: &str, args: Value| match r.compile(tool, &args).unwrap_err() {
            CompileError::InvalidArguments { tool: t, problems } => {
                assert_eq!(t, tool);
                problems
            }
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            problems("fs_read", json!({"path": 5})),
            vec!["`path`: 5 is not of type \"string\"".to_string()]
        );
        assert_eq!(
            problems("fs_read", json!({})),
            vec!["missing required field `path`".to_string()]
        );
        assert_eq!(
            problems("fs_read", json!({"pth": "a"})),
            vec![
                "missing required field `path`".to_string(),
                "unknown field `pth`".to_string()
            ]
        );
        let p = problems("fs_patch", json!({"path": "a", "edits": [{"search": 1}]}));
        assert!(
            p.contains(&"`edits/0`: missing required field `replace`".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"`edits/0/search`: 1 is not of type \"string\"".to_string()),
            "{p:?}"
        );
        assert_eq!(
            problems("grep", json!("{\"pattern\": ")),
            vec!["arguments must be a JSON object; got text that is not a JSON object: {\"pattern\": ".to_string()]
        );
        assert_eq!(
            problems("grep", json!([1])),
            vec!["arguments must be a JSON object; got [1]".to_string()]
        );
        // A nested problem at the root of an object-typed value still names the field.
        let p = problems("fs_patch", json!({"path": "a", "edits": ["x"]}));
        assert_eq!(
            p,
            vec!["`edits/0`: \"x\" is not of type \"object\"".to_string()]
        );
    }

    #[tokio::test]
    async fn execute_unknown_tool_is_an_error_observation() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ExecContext::new(crate::Workspace::new(dir.path()).unwrap());
        let r = Registry::builtin();
        let o = r.execute(&ctx, "nope", json!({})).await;
        assert_eq!(o.status, ExecStatus::Error);
        assert!(o.output.contains("unknown tool `nope`"), "{}", o.output);
        std::fs::write(dir.path().join("a.txt"), "hi\n").unwrap();
        let o = r.execute(&ctx, "fs_read", json!({"path": "a.txt"})).await;
        assert_eq!((o.status, o.output.as_str()), (ExecStatus::Ok, "hi\n"));
    }

    #[test]
    fn cap_output_cuts_on_char_boundary_with_marker() {
        assert_eq!(cap_output("abc".into(), 3), ("abc".to_string(), 0));
        let (out, n) = cap_output("abcdef".into(), 4);
        assert_eq!(
            (out.as_str(), n),
            ("abcd\n[... truncated: 2 more bytes ...]", 2)
        );
        // "é" is two bytes: a cut inside it backs off to the boundary.
        let (out, n) = cap_output("aéb".into(), 2);
        assert_eq!(
            (out.as_str(), n),
            ("a\n[... truncated: 3 more bytes ...]", 3)
        );
        let (out, _) = cap_output("line\nmore".into(), 5);
        assert_eq!(out, "line\n[... truncated: 4 more bytes ...]");
    }
}
