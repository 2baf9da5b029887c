//! `[[mcp_servers]]`: the MCP servers whose tools a run is offered (see `praxis-mcp`).
//! Declared in the home `praxis.toml` only: a workspace's are dropped with a warning (a
//! repository must not be able to start processes or reach endpoints). Parsed here, once,
//! into [`McpServer`]s; an error names the field (`mcp_servers[1].url`).

use praxis_core::Effect;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One `[[mcp_servers]]` table as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// What tools are named after: `mcp__{name}__{tool}`.
    pub name: String,
    /// The program of a stdio server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Added to the server's clean environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The endpoint of a streamable HTTP server (`http://host:port/mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP header name -> the environment variable holding its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The effect class of every tool of the server (default `exec`).
    #[serde(default = "default_effect")]
    pub effect: Effect,
    /// How long one call (or the start) may take before the server counts as hung.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_effect() -> Effect {
    Effect::Exec
}

fn default_timeout() -> u64 {
    60
}

/// How Praxis reaches a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum McpTransport {
    /// A child process speaking JSON-RPC on stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    /// Streamable HTTP; `headers` are (header name, environment variable).
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
}

/// A checked `[[mcp_servers]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpServer {
    pub name: String,
    pub transport: McpTransport,
    pub effect: Effect,
    pub timeout: Duration,
}

/// A field of `[[mcp_servers]]` that is wrong, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`mcp_servers[{index}].{field}`: {problem}")]
pub struct McpConfigError {
    pub index: usize,
    pub field: String,
    pub problem: String,
}

/// The longest server name: the tool names built from it must fit providers' 64 characters.
pub const MAX_SERVER_NAME: usize = 24;

/// Checks every entry; the first problem is returned, naming its field.
pub fn check(servers: &[McpServerConfig]) -> Result<Vec<McpServer>, McpConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut checked = Vec::new();
    for (index, s) in servers.iter().enumerate() {
        let err = |field: &str, problem: String| McpConfigError {
            index,
            field: field.to_string(),
            problem,
        };
        if s.name.is_empty()
            || s.name.len() > MAX_SERVER_NAME
            || s.name.contains("__")
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(err(
                "name",
                format!(
                    "{:?} must be 1 to {MAX_SERVER_NAME} lowercase letters, digits, `_` or `-`, \
                     without `__`",
                    s.name
                ),
            ));
        }
        if !seen.insert(s.name.clone()) {
            return Err(err("name", format!("{:?} is declared twice", s.name)));
        }
        if !(1..=3600).contains(&s.timeout_seconds) {
            return Err(err(
                "timeout_seconds",
                format!("{} is not within 1..=3600", s.timeout_seconds),
            ));
        }
        let transport = match (&s.command, &s.url) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "url",
                    "set either `command` (stdio) or `url` (HTTP), not both".into(),
                ));
            }
            (None, None) => {
                return Err(err(
                    "command",
                    "set `command` (a stdio server) or `url` (a streamable HTTP server)".into(),
                ));
            }
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err(err("command", "is empty".into()));
                }
                if !s.headers.is_empty() {
                    return Err(err(
                        "headers",
                        "only an HTTP server (`url`) takes headers".into(),
                    ));
                }
                for (key, value) in &s.env {
                    if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                        return Err(err(&format!("env.{key}"), "is not a valid variable".into()));
                    }
                }
                if let Some(i) = s.args.iter().position(|a| a.contains('\0')) {
                    return Err(err(&format!("args[{i}]"), "contains a NUL byte".into()));
                }
                McpTransport::Stdio {
                    command: command.clone(),
                    args: s.args.clone(),
                    env: s.env.clone(),
                }
            }
            (None, Some(url)) => {
                let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
                if !scheme_ok || url.contains(char::is_whitespace) {
                    return Err(err(
                        "url",
                        format!("{url:?} is not an http:// or https:// URL"),
                    ));
                }
                if !s.args.is_empty() || !s.env.is_empty() {
                    let field = if s.args.is_empty() { "env" } else { "args" };
                    return Err(err(
                        field,
                        "only a stdio server (`command`) takes it".into(),
                    ));
                }
                for (header, var) in &s.headers {
                    let token = |t: &str| {
                        !t.is_empty()
                            && t.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    };
                    if !token(header) {
                        return Err(err(
                            &format!("headers.{header}"),
                            "is not a header name".into(),
                        ));
                    }
                    if !token(var) {
                        return Err(err(
                            &format!("headers.{header}"),
                            format!("{var:?} is not an environment variable name"),
                        ));
                    }
                }
                McpTransport::Http {
                    url: url.clone(),
                    headers: s.headers.clone().into_iter().collect(),
                }
            }
        };
        checked.push(McpServer {
            name: s.name.clone(),
            transport,
            effect: s.effect,
            timeout: Duration::from_secs(s.timeout_seconds),
        });
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<McpServer>, String> {
        #[derive(Deserialize)]
        struct File {
            mcp_servers: Vec<McpServerConfig>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        check(&file.mcp_servers).map_err(|e| e.to_string())
    }

    #[test]
    fn a_stdio_and_an_http_server() {
        let servers = parse(
            "[[mcp_servers]]\nname = \"everything\"\ncommand = \"node\"\nargs = [\"x.js\"]\n\
             env = { A = \"1\" }\n\n[[mcp_servers]]\nname = \"web\"\nurl = \"http://127.0.0.1:9/mcp\"\n\
             headers = { Authorization = \"WEB_TOKEN\" }\neffect = \"network\"\ntimeout_seconds = 5\n",
        )
        .unwrap();
        assert_eq!(servers[0].effect, Effect::Exec);
        assert_eq!(servers[0].timeout, Duration::from_secs(60));
        assert!(
            matches!(&servers[0].transport, McpTransport::Stdio { command, .. } if command == "node")
        );
        assert_eq!(
            servers[1].transport,
            McpTransport::Http {
                url: "http://127.0.0.1:9/mcp".into(),
                headers: vec![("Authorization".into(), "WEB_TOKEN".into())]
            }
        );
        assert_eq!(servers[1].effect, Effect::Network);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("name = \"A\"\ncommand = \"x\"", "`mcp_servers[0].name`"),
            ("name = \"a__b\"\ncommand = \"x\"", "`mcp_servers[0].name`"),
            ("name = \"a\"", "`mcp_servers[0].command`"),
            (
                "name = \"a\"\ncommand = \"x\"\nurl = \"http://h/mcp\"",
                "`mcp_servers[0].url`",
            ),
            (
                "name = \"a\"\nurl = \"file:///etc/passwd\"",
                "`mcp_servers[0].url`",
            ),
            (
                "name = \"a\"\ncommand = \"x\"\ntimeout_seconds = 0",
                "`mcp_servers[0].timeout_seconds`",
            ),
            (
                "name = \"a\"\ncommand = \"x\"\nheaders = { A = \"B\" }",
                "`mcp_servers[0].headers`",
            ),
            (
                "name = \"a\"\nurl = \"http://h/mcp\"\nheaders = { \"A:b\" = \"B\" }",
                "`mcp_servers[0].headers.A:b`",
            ),
            (
                "name = \"a\"\nurl = \"http://h/mcp\"\nargs = [\"x\"]",
                "`mcp_servers[0].args`",
            ),
            (
                "name = \"a\"\ncommand = \"x\"\nenv = { \"A=B\" = \"1\" }",
                "`mcp_servers[0].env.A=B`",
            ),
        ];
        for (body, field) in cases {
            let error = parse(&format!("[[mcp_servers]]\n{body}\n")).unwrap_err();
            assert!(error.starts_with(field), "{body}: {error}");
        }
        let twice = parse("[[mcp_servers]]\nname = \"a\"\ncommand = \"x\"\n[[mcp_servers]]\nname = \"a\"\ncommand = \"y\"\n")
            .unwrap_err();
        assert!(twice.starts_with("`mcp_servers[1].name`"), "{twice}");
        let unknown =
            parse("[[mcp_servers]]\nname = \"a\"\ncommand = \"x\"\ncwd = \"/\"\n").unwrap_err();
        assert!(unknown.contains("cwd"), "{unknown}");
    }
}
