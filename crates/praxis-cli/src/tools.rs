//! `praxis tools`: every tool a run can call, with its effect, where it comes from and the
//! JSON Schema of its arguments. A table by default, JSON with `--json`.

use anyhow::Result;
use praxis_runtime::DataHome;
use praxis_tools::ToolInfo;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::ExitCode;

/// The part of an argument schema the table shows: the properties and which are required.
#[derive(Debug, Default, Deserialize)]
struct ObjectSchema {
    #[serde(default)]
    properties: BTreeMap<String, PropertySchema>,
    #[serde(default)]
    required: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct PropertySchema {
    #[serde(rename = "type", default)]
    kind: Option<Kind>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Kind {
    One(String),
    Many(Vec<String>),
}

impl Kind {
    /// "string", "integer?" for an optional (nullable) integer.
    fn label(&self) -> String {
        match self {
            Kind::One(kind) => kind.clone(),
            Kind::Many(kinds) => {
                let real: Vec<&str> = kinds
                    .iter()
                    .map(String::as_str)
                    .filter(|k| *k != "null")
                    .collect();
                let nullable = real.len() < kinds.len();
                format!("{}{}", real.join("|"), if nullable { "?" } else { "" })
            }
        }
    }
}

/// `name: type` for each argument, required ones marked with `*`.
fn arguments(schema: &Value) -> String {
    let schema = ObjectSchema::deserialize(schema).unwrap_or_default();
    schema
        .properties
        .iter()
        .map(|(name, property)| {
            let mark = if schema.required.contains(name) {
                "*"
            } else {
                ""
            };
            match &property.kind {
                Some(kind) => format!("{name}{mark}: {}", kind.label()),
                None => format!("{name}{mark}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table: one row per tool (name, effect, source, arguments), then its description.
pub fn render(tools: &[ToolInfo]) -> String {
    let width = tools.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:<width$}  {:<7}  {:<8}  ARGUMENTS (* required)\n",
        "NAME", "EFFECT", "SOURCE"
    );
    for tool in tools {
        out.push_str(&format!(
            "{:<width$}  {:<7}  {:<8}  {}\n{:<width$}  {}\n",
            tool.name,
            tool.effect.as_str(),
            tool.origin.as_str(),
            arguments(&tool.input_schema),
            "",
            tool.description,
        ));
    }
    out
}

pub async fn tools(home: &DataHome, json: bool) -> Result<ExitCode> {
    let (registry, mcp) = praxis_mcp::client::tool_set_from_env(home).await?;
    for warning in mcp.warnings() {
        eprintln!("praxis: warning: {warning}");
    }
    let tools = registry.catalogue();
    if json {
        println!("{}", serde_json::to_string_pretty(&tools)?);
    } else {
        print!("{}", render(&tools));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use praxis_core::Effect;
    use praxis_tools::{Registry, ToolOrigin};

    #[test]
    fn every_builtin_tool_is_listed_with_its_schema() {
        let tools = Registry::builtin().catalogue();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, Registry::builtin().names());
        let read = tools.iter().find(|t| t.name == "fs_read").unwrap();
        assert_eq!(
            (read.effect, &read.origin),
            (Effect::Read, &ToolOrigin::BuiltIn)
        );
        assert_eq!(
            arguments(&read.input_schema),
            "end_line: integer?, max_bytes: integer?, path*: string, start_line: integer?"
        );
        let table = render(&tools);
        assert!(table.starts_with("NAME "), "{table}");
        assert!(
            table.contains("shell       exec     built-in  command*: string, cwd: string?"),
            "{table}"
        );
    }
}
