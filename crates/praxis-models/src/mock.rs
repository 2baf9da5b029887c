//! The mock provider: a deterministic inspect-and-summarize agent, no LLM involved.
//!
//! It really uses the tools it is offered and reads their results back from the history,
//! so its final answer is built only from what the workspace contained. Being stateless,
//! it works out where it is from its own earlier tool calls in `request.messages`:
//! 1. map the workspace (`repo_map`, else `list_files`);
//! 2. read the README and up to three entry points in one reply (`fs_read`);
//! 3. look for TODO-style markers (`grep`);
//! 4. answer with a summary.
//!
//! Steps whose tool is not offered are skipped; failed or denied calls are reported.

mod summary;

use crate::{BoxFuture, DeltaSink, ModelError, Provider, estimate_usage, stream_words};
use praxis_core::{Message, ModelRequest, ModelResponse, Role, ToolCall, cmd};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use summary::{one_line, summary};

const MOCK_MODEL: &str = "mock-inspector-1";

const TODO_PATTERN: &str = "TODO|FIXME|XXX|HACK";
const READ_LINES: u64 = 80;
const MAX_ENTRY_POINTS: usize = 3;

/// Entry points looked for in the map, highest priority first.
const ENTRY_POINTS: &[&str] = &[
    "Cargo.toml",
    "package.json",
    "go.mod",
    "pyproject.toml",
    "setup.py",
    "src/main.rs",
    "src/lib.rs",
    "main.go",
    "cmd/*/main.go",
    "main.py",
    "app.py",
    "__main__.py",
    "src/index.ts",
    "src/index.js",
    "index.js",
];

/// Prefixes of a tool result that reports a failed, refused or rejected call.
const FAILURE_PREFIXES: &[&str] = &[
    "[error] ",
    "[timeout] ",
    "[cancelled] ",
    "denied by policy (",
    "denied by approver ",
    "rejected: ",
];

#[derive(Debug, Default, Clone, Copy)]
pub struct MockProvider;

impl MockProvider {
    pub fn new() -> Self {
        MockProvider
    }
}

impl Provider for MockProvider {
    fn name(&self) -> &str {
        "mock"
    }

    fn model(&self) -> &str {
        MOCK_MODEL
    }

    fn for_delegate(&self, _task: &str) -> Result<std::sync::Arc<dyn Provider>, ModelError> {
        // Stateless: a sub-agent gets the same deterministic inspector.
        Ok(std::sync::Arc::new(MockProvider::new()))
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
        deltas: &'a dyn DeltaSink,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let (content, tool_calls) = if request.is_compaction() {
                (crate::extractive_summary(request), Vec::new())
            } else if let Some(question) = crate::critic::question_of(request) {
                // A key-result critic call: judged from the evidence it was given.
                let answer = crate::critic::mock_judge(&question);
                (
                    serde_json::to_string(&answer).unwrap_or_default(),
                    Vec::new(),
                )
            } else {
                next_reply(request)
            };
            // Quoted workspace text must never turn into a shell intent: the kernel runs any
            // `<cmd>` block found in a reply without tool calls.
            let content = content
                .replace(cmd::OPEN, "[cmd]")
                .replace(cmd::CLOSE, "[/cmd]");
            stream_words(&content, 3, deltas);
            Ok(ModelResponse {
                usage: estimate_usage(request, &content, &tool_calls),
                content,
                tool_calls,
                model: MOCK_MODEL.into(),
                reasoning: Vec::new(),
            })
        })
    }
}

/// One earlier call of ours and what came back for it.
struct Past<'a> {
    call: &'a ToolCall,
    result: Option<&'a str>,
}

impl Past<'_> {
    /// The result text when the call succeeded.
    fn ok(&self) -> Option<&str> {
        self.result.filter(|r| failure(r).is_none())
    }
    fn path(&self) -> &str {
        self.call
            .arguments
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

fn failure(result: &str) -> Option<&str> {
    FAILURE_PREFIXES
        .iter()
        .any(|p| result.starts_with(p))
        .then_some(result)
}

struct History<'a> {
    turn: usize,
    calls: Vec<Past<'a>>,
}

impl<'a> History<'a> {
    fn of(messages: &'a [Message]) -> Self {
        let results: HashMap<&str, &str> = messages
            .iter()
            .filter(|m| m.role == Role::Tool)
            .filter_map(|m| Some((m.tool_call_id.as_deref()?, m.content.as_str())))
            .collect();
        let assistants: Vec<&Message> = messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .collect();
        let calls = assistants
            .iter()
            .flat_map(|m| &m.tool_calls)
            .map(|call| Past {
                call,
                result: results.get(call.id.as_str()).copied(),
            })
            .collect();
        History {
            turn: assistants.len() + 1,
            calls,
        }
    }
    fn called(&self, tool: &str) -> bool {
        self.calls.iter().any(|p| p.call.name == tool)
    }
    fn of_tool(&self, tool: &str) -> impl Iterator<Item = &Past<'a>> {
        self.calls.iter().filter(move |p| p.call.name == tool)
    }
}

/// Decides the next reply from the history: tool calls, or a final answer with none.
fn next_reply(request: &ModelRequest) -> (String, Vec<ToolCall>) {
    let history = History::of(&request.messages);
    let offered = |tool: &str| request.tools.iter().any(|t| t.name == tool);
    let call = |i: usize, name: &str, arguments: Value| ToolCall {
        id: format!("mock-{}-{}", history.turn, i + 1),
        name: name.into(),
        arguments,
    };

    // 1. Map the workspace; fall back to list_files when repo_map is missing or failed.
    let map_ok = history
        .calls
        .iter()
        .any(|p| (p.call.name == "repo_map" || p.call.name == "list_files") && p.ok().is_some());
    if !map_ok {
        if offered("repo_map") && !history.called("repo_map") {
            return (
                "Mapping the workspace first.".into(),
                vec![call(0, "repo_map", json!({}))],
            );
        }
        if offered("list_files") && !history.called("list_files") {
            return (
                "Listing the workspace files first.".into(),
                vec![call(0, "list_files", json!({}))],
            );
        }
        if !offered("repo_map") && !offered("list_files") {
            return (cannot_inspect(request), Vec::new());
        }
    }
    let inventory = inventory(&history);

    // 2. Read the README and the main entry points, all in one reply.
    if offered("fs_read") && !history.called("fs_read") {
        let reads = files_to_read(inventory.as_ref());
        if !reads.is_empty() {
            let calls = reads
                .iter()
                .enumerate()
                .map(|(i, path)| call(i, "fs_read", json!({"path": path, "end_line": READ_LINES})))
                .collect();
            return (format!("Reading {}.", reads.join(", ")), calls);
        }
    }

    // 3. Look for markers of unfinished work.
    if offered("grep") && !history.called("grep") {
        return (
            "Looking for TODO/FIXME markers.".into(),
            vec![call(
                0,
                "grep",
                json!({"pattern": TODO_PATTERN, "max_matches": 50}),
            )],
        );
    }

    // 4. Summarize.
    (summary(request, &history, inventory.as_ref()), Vec::new())
}

fn header(request: &ModelRequest) -> String {
    format!(
        "Mock summary of {} (deterministic mock model, no LLM involved)\nTask: {}",
        workspace_name(&request.messages),
        one_line(task(&request.messages), 300)
    )
}

fn cannot_inspect(request: &ModelRequest) -> String {
    format!(
        "{}\nI cannot inspect the workspace without read tools: neither repo_map nor list_files \
         is offered to this run, so there is nothing to summarize.",
        header(request)
    )
}

/// The workspace directory name, from the system prompt's `Workspace: /abs/path (` line.
fn workspace_name(messages: &[Message]) -> String {
    messages
        .iter()
        .filter(|m| m.role == Role::System)
        .find_map(|m| {
            let rest = &m.content[m.content.find("Workspace: ")? + "Workspace: ".len()..];
            let line = rest.lines().next().unwrap_or("");
            let path = line.split(" (").next().unwrap_or(line).trim();
            let path = path.trim_end_matches('.').trim_end_matches(['/', '\\']);
            let name = path.rsplit(['/', '\\']).next().unwrap_or("").trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .unwrap_or_else(|| "workspace".into())
}

fn task(messages: &[Message]) -> &str {
    messages
        .iter()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.trim())
        .unwrap_or("")
}

// ---- the workspace inventory (from repo_map or list_files) ----

struct Entry {
    path: String,
    symbols: Vec<(String, String)>,
}

struct Inventory {
    /// Files in the workspace, as the tool reported (may exceed `files.len()`).
    total: usize,
    files: Vec<Entry>,
    symbols: usize,
}

impl Inventory {
    fn has(&self, path: &str) -> bool {
        self.files.iter().any(|f| f.path == path)
    }
    fn entry(&self, path: &str) -> Option<&Entry> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// The latest successful map or listing.
fn inventory(history: &History) -> Option<Inventory> {
    history
        .calls
        .iter()
        .rev()
        .filter(|p| p.call.name == "repo_map" || p.call.name == "list_files")
        .find_map(|p| p.ok())
        .map(parse_inventory)
}

/// Parses both formats: an optional `# N files under PATH` header, one path per line,
/// symbols as `  KIND NAME` lines under their file, and `[... N more ...]` markers.
fn parse_inventory(text: &str) -> Inventory {
    let mut header_total = None;
    let mut more = 0usize;
    let mut files: Vec<Entry> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("# ") {
            if header_total.is_none() && files.is_empty() {
                header_total = leading_number(rest);
            }
            continue;
        }
        if trimmed.starts_with("[...") {
            more += leading_number(trimmed.trim_start_matches("[...").trim_start()).unwrap_or(0);
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some(file) = files.last_mut() {
                let (kind, name) = trimmed
                    .split_once(char::is_whitespace)
                    .unwrap_or(("", trimmed));
                file.symbols
                    .push((kind.to_string(), name.trim().to_string()));
            }
            continue;
        }
        files.push(Entry {
            path: trimmed.trim_start_matches("./").to_string(),
            symbols: Vec::new(),
        });
    }
    let listed = files.len();
    Inventory {
        total: header_total.unwrap_or(listed + more).max(listed),
        symbols: files.iter().map(|f| f.symbols.len()).sum(),
        files,
    }
}

fn leading_number(text: &str) -> Option<usize> {
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn readme(inv: &Inventory) -> Option<&str> {
    let mut candidates: Vec<&str> = inv
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| !p.contains('/') && p.to_ascii_lowercase().starts_with("readme"))
        .collect();
    candidates.sort_by_key(|p| (!p.eq_ignore_ascii_case("readme.md"), p.to_string()));
    candidates.first().copied()
}

fn entry_points(inv: &Inventory) -> Vec<&str> {
    let mut found = Vec::new();
    for pattern in ENTRY_POINTS {
        if let Some(dir_pattern) = pattern.strip_prefix("cmd/*/") {
            found.extend(inv.files.iter().map(|f| f.path.as_str()).filter(|p| {
                let parts: Vec<&str> = p.split('/').collect();
                parts.len() == 3 && parts[0] == "cmd" && parts[2] == dir_pattern
            }));
        } else if inv.has(pattern) {
            found.push(pattern);
        }
    }
    if found.is_empty() {
        found.extend(
            inv.files
                .iter()
                .map(|f| f.path.as_str())
                .filter(|p| language(p).is_some_and(|l| l.source)),
        );
    }
    found.truncate(MAX_ENTRY_POINTS);
    found
}

fn files_to_read(inv: Option<&Inventory>) -> Vec<String> {
    let Some(inv) = inv else { return Vec::new() };
    let mut reads: Vec<String> = readme(inv).into_iter().map(String::from).collect();
    for path in entry_points(inv) {
        if !reads.iter().any(|r| r == path) {
            reads.push(path.to_string());
        }
    }
    reads
}

struct Language {
    name: &'static str,
    source: bool,
}

fn language(path: &str) -> Option<Language> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let (stem, ext) = file.rsplit_once('.')?;
    if stem.is_empty() {
        return None; // dotfiles such as .gitignore have no language
    }
    let (name, source) = match ext.to_ascii_lowercase().as_str() {
        "rs" => ("Rust", true),
        "py" => ("Python", true),
        "go" => ("Go", true),
        "ts" | "tsx" => ("TypeScript", true),
        "js" | "jsx" | "mjs" | "cjs" => ("JavaScript", true),
        "java" => ("Java", true),
        "kt" | "kts" => ("Kotlin", true),
        "c" | "h" => ("C", true),
        "cc" | "cpp" | "cxx" | "hpp" | "hh" => ("C++", true),
        "cs" => ("C#", true),
        "rb" => ("Ruby", true),
        "php" => ("PHP", true),
        "swift" => ("Swift", true),
        "scala" => ("Scala", true),
        "sh" | "bash" => ("Shell", true),
        "lua" => ("Lua", true),
        "md" | "markdown" => ("Markdown", false),
        "rst" => ("reStructuredText", false),
        "txt" => ("Text", false),
        "toml" => ("TOML", false),
        "json" => ("JSON", false),
        "yml" | "yaml" => ("YAML", false),
        "html" | "htm" => ("HTML", false),
        "css" | "scss" => ("CSS", false),
        "sql" => ("SQL", false),
        "lock" => ("lockfile", false),
        _ => {
            return Some(Language {
                name: "",
                source: false,
            });
        }
    };
    Some(Language { name, source })
}

/// Top five languages by file count, e.g. "Rust 12, Markdown 3, TOML 2".
fn languages(inv: &Inventory) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for f in &inv.files {
        if let Some(lang) = language(&f.path) {
            let label = if lang.name.is_empty() {
                let ext = f.path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
                format!(".{ext}")
            } else {
                lang.name.to_string()
            };
            *counts.entry(label).or_default() += 1;
        }
    }
    let mut sorted: Vec<(String, usize)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if sorted.is_empty() {
        return "no file extensions to go by".into();
    }
    sorted
        .iter()
        .take(5)
        .map(|(l, n)| format!("{l} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- the final answer ----
