//! Contracts of tools known only from a run's record (an MCP server's tools, whose specs the
//! run recorded in `run_started`): replay, resume and branch compile recorded calls with
//! them, and never run them (the recorded observations stand in).

use crate::{BoxFuture, ExecContext, Placement, Registry, RegistryError, ToolContract};
use praxis_core::{CompileError, Compiled, Contracts, Observation, Resource, ToolSpec};
use serde_json::Value;
use std::sync::Arc;

/// A tool as a run recorded it: its spec only.
struct RecordedTool(ToolSpec);

impl ToolContract for RecordedTool {
    fn spec(&self) -> ToolSpec {
        self.0.clone()
    }

    fn resources(&self, _: &Value) -> Vec<Resource> {
        Vec::new()
    }

    fn execute<'a>(&'a self, _: &'a ExecContext, _: Value) -> BoxFuture<'a, Observation> {
        let name = self.0.name.clone();
        Box::pin(async move {
            Observation::error(format!(
                "`{name}` is known here only from the run's record; it is not served by this \
                 installation"
            ))
        })
    }

    fn placement(&self) -> Placement {
        Placement::Driver
    }

    fn recorded(&self) -> bool {
        true
    }

    fn origin(&self) -> crate::ToolOrigin {
        crate::ToolOrigin::Recorded
    }
}

/// `base` with the recorded `tools` over it: a recorded spec wins over a live tool of the
/// same name, so a run replays with the contracts it ran with.
pub struct WithRecorded {
    base: Arc<dyn Contracts>,
    recorded: Registry,
    /// The recorded specs in their recorded order (what `recorded_specs` gives back).
    specs: Vec<ToolSpec>,
}

impl WithRecorded {
    /// Fails when a recorded schema does not compile (naming the tool).
    pub fn new(base: Arc<dyn Contracts>, tools: &[ToolSpec]) -> Result<Self, RegistryError> {
        let mut recorded = Registry::empty();
        for spec in tools {
            recorded.register(Arc::new(RecordedTool(spec.clone())))?;
        }
        Ok(WithRecorded {
            base,
            recorded,
            specs: tools.to_vec(),
        })
    }
}

impl Contracts for WithRecorded {
    fn specs(&self) -> Vec<ToolSpec> {
        let mut specs: Vec<ToolSpec> = self
            .base
            .specs()
            .into_iter()
            .filter(|s| self.recorded.get(&s.name).is_none())
            .collect();
        specs.extend(self.specs.iter().cloned());
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    fn compile(&self, tool: &str, arguments: &Value) -> Result<Compiled, CompileError> {
        if self.recorded.get(tool).is_some() {
            return self.recorded.compile(tool, arguments);
        }
        self.base.compile(tool, arguments).map_err(|e| match e {
            CompileError::UnknownTool { name, .. } => CompileError::UnknownTool {
                name,
                available: self.specs().into_iter().map(|s| s.name).collect(),
            },
            other => other,
        })
    }

    fn recorded_specs(&self) -> Vec<ToolSpec> {
        self.specs.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use praxis_core::Effect;
    use serde_json::json;

    #[test]
    fn recorded_tools_compile_by_their_recorded_schema() {
        let spec = ToolSpec {
            name: "mcp__srv__echo".into(),
            description: "echo".into(),
            effect: Effect::Exec,
            parameters: json!({"type": "object", "required": ["message"],
                "properties": {"message": {"type": "string"}}}),
        };
        let c =
            WithRecorded::new(Arc::new(Registry::builtin()), std::slice::from_ref(&spec)).unwrap();
        assert_eq!(
            c.compile("mcp__srv__echo", &json!({"message": "hi"}))
                .unwrap()
                .effect,
            Effect::Exec
        );
        let error = c.compile("mcp__srv__echo", &json!({})).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("missing required field `message`"),
            "{error}"
        );
        assert!(c.compile("fs_read", &json!({"path": "a"})).is_ok());
        match c.compile("nope", &json!({})).unwrap_err() {
            CompileError::UnknownTool { available, .. } => {
                assert!(available.contains(&"mcp__srv__echo".to_string()))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.recorded_specs(), vec![spec]);
        assert!(c.specs().iter().any(|s| s.name == "mcp__srv__echo"));
        // A schema that does not compile is refused, naming the tool.
        let bad = ToolSpec {
            parameters: json!({"type": 5}),
            ..c.recorded_specs()[0].clone()
        };
        let error = WithRecorded::new(Arc::new(Registry::builtin()), &[bad])
            .err()
            .unwrap();
        assert!(error.to_string().contains("mcp__srv__echo"), "{error}");
    }
}
