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

use crate::{BoxFuture, DeltaSink, ModelError, Provider, estimate_usage, stream_words};
use praxis_core::{Message, ModelRequest, ModelResponse, Role, ToolCall, cmd};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

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

fn summary(request: &ModelRequest, history: &History, inv: Option<&Inventory>) -> String {
    let mut out = header(request);
    out.push('\n');
    let offered = |tool: &str| request.tools.iter().any(|t| t.name == tool);

    match inv {
        Some(inv) => {
            let listed = if inv.files.len() < inv.total {
                format!(" (first {} listed)", inv.files.len())
            } else {
                String::new()
            };
            out.push_str(&format!(
                "Files: {}{listed}; languages by extension: {}.\n",
                inv.total,
                languages(inv)
            ));
        }
        None => out.push_str("Files: unknown (the workspace could not be mapped).\n"),
    }

    // README.
    let reads: Vec<&Past> = history.of_tool("fs_read").collect();
    let readme_read = inv
        .and_then(readme)
        .and_then(|name| reads.iter().find(|p| p.path() == name));
    match readme_read {
        Some(p) => match p.ok() {
            Some(text) => out.push_str(&describe_readme(p.path(), &file_text(text))),
            None => out.push_str(&format!("README ({}): could not be read.\n", p.path())),
        },
        None if inv.and_then(readme).is_some() && !offered("fs_read") => {
            out.push_str("README: present but not read (fs_read is not offered).\n");
        }
        None if inv.is_some() => out.push_str("README: none at the workspace root.\n"),
        None => {}
    }

    // Entry points.
    let entries: Vec<&&Past> = reads
        .iter()
        .filter(|p| inv.and_then(readme).is_none_or(|r| r != p.path()))
        .collect();
    if !entries.is_empty() {
        out.push_str("Entry points read:\n");
        for p in entries {
            let line = match p.ok() {
                Some(text) => describe_entry(p.path(), &file_text(text), inv),
                None => "could not be read (see below)".into(),
            };
            out.push_str(&format!("- {}: {line}\n", p.path()));
        }
    } else if inv.is_some() && !offered("fs_read") {
        out.push_str("Entry points: not read (fs_read is not offered).\n");
    } else if inv.is_some() {
        out.push_str("Entry points: none recognised.\n");
    }

    // Symbols.
    if let Some(inv) = inv {
        if inv.symbols > 0 {
            out.push_str(&format!(
                "Top-level symbols in the map: {}; notable: {}.\n",
                inv.symbols,
                notable_symbols(inv).join(", ")
            ));
        } else {
            out.push_str("Top-level symbols in the map: none listed.\n");
        }
    }

    // Markers.
    match history.of_tool("grep").last() {
        Some(p) => match p.ok() {
            Some(text) => out.push_str(&describe_markers(text)),
            None => out.push_str("TODO/FIXME markers: unknown (the search failed).\n"),
        },
        None if !offered("grep") => {
            out.push_str("TODO/FIXME markers: not checked (grep is not offered).\n");
        }
        None => {}
    }

    // Problems.
    let problems: Vec<String> = history
        .calls
        .iter()
        .filter_map(|p| {
            let why = match p.result {
                None => "no result was recorded".to_string(),
                Some(r) => one_line(failure(r)?, 200),
            };
            Some(format!("- {} {}: {why}", p.call.name, p.call.arguments))
        })
        .collect();
    if problems.is_empty() {
        out.push_str("Denied or failed tool calls: none.");
    } else {
        out.push_str("Denied or failed tool calls:\n");
        out.push_str(&problems.join("\n"));
    }
    out
}

/// A read file's text without the fs_read truncation marker.
fn file_text(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    while lines
        .last()
        .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with("[... truncated:"))
    {
        lines.pop();
    }
    lines.join("\n")
}

fn describe_readme(path: &str, text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let is_rule = |l: &str| {
        let t = l.trim();
        !t.is_empty() && t.chars().all(|c| matches!(c, '=' | '-' | '~' | '*' | '#'))
    };
    let title = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty() && !is_rule(l) && !l.starts_with('<') && !l.starts_with("[!["))
        .map(|l| l.trim_start_matches('#').trim().to_string());
    let mut paragraph: Vec<&str> = Vec::new();
    let mut in_fence = false;
    let mut past_title = false;
    for line in &lines {
        let t = line.trim();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if !past_title {
            past_title = title.as_deref().is_some_and(|title| t.ends_with(title));
            continue;
        }
        let noise = t.starts_with('#')
            || t.starts_with('<')
            || t.starts_with("[![")
            || t.starts_with("![")
            || is_rule(t);
        if t.is_empty() || noise {
            if !paragraph.is_empty() {
                break;
            }
            continue;
        }
        paragraph.push(t);
    }
    let title = title.map_or_else(|| "(no title)".to_string(), |t| format!("\"{t}\""));
    let mut out = format!("README ({path}): {title}");
    if !paragraph.is_empty() {
        out.push_str(&format!(" — {}", one_line(&paragraph.join(" "), 300)));
    }
    out.push('\n');
    out
}

fn describe_entry(path: &str, text: &str, inv: Option<&Inventory>) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let lines = match text.lines().count() {
        1 => "1 line read".to_string(),
        n => format!("{n} lines read"),
    };
    let declared = match file {
        "Cargo.toml" => manifest(text, &["package"], "package")
            .or_else(|| section(text, "workspace").then(|| "a Cargo workspace manifest".into())),
        "pyproject.toml" => manifest(text, &["project", "tool.poetry"], "project"),
        "package.json" => package_json(text),
        "go.mod" => text
            .lines()
            .find_map(|l| l.trim().strip_prefix("module "))
            .map(|m| format!("Go module {}", m.trim().trim_matches('"'))),
        "setup.py" => setup_py_name(text).map(|n| format!("Python package `{n}`")),
        _ => None,
    };
    let symbols = inv
        .and_then(|inv| inv.entry(path))
        .map(|e| &e.symbols)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let shown: Vec<String> = s.iter().take(6).map(|(k, n)| join_kind(k, n)).collect();
            let more = s.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("declares {}{more}", shown.join(", "))
        });
    let facts: Vec<String> = [declared, symbols].into_iter().flatten().collect();
    if facts.is_empty() {
        format!("{lines}, nothing recognisable declared")
    } else {
        format!("{} ({lines})", facts.join("; "))
    }
}

fn join_kind(kind: &str, name: &str) -> String {
    if kind.is_empty() {
        name.to_string()
    } else {
        format!("{kind} {name}")
    }
}

fn section(text: &str, name: &str) -> bool {
    text.lines().any(|l| l.trim() == format!("[{name}]"))
}

/// `name` (and `version`) from the first of `sections` present in a TOML manifest.
fn manifest(text: &str, sections: &[&str], what: &str) -> Option<String> {
    let mut current = String::new();
    let mut found: HashMap<&str, (String, Option<String>)> = HashMap::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t.trim_matches(['[', ']']).trim().to_string();
            continue;
        }
        let Some(&section) = sections.iter().find(|s| **s == current) else {
            continue;
        };
        let Some((key, value)) = t.split_once('=') else {
            continue;
        };
        let value = toml_string(value);
        let entry = found.entry(section).or_insert((String::new(), None));
        match key.trim() {
            "name" => entry.0 = value,
            "version" if !value.starts_with('{') => entry.1 = Some(value),
            _ => {}
        }
    }
    sections.iter().find_map(|s| {
        let (name, version) = found.get(s)?;
        if name.is_empty() {
            return None;
        }
        Some(match version {
            Some(v) => format!("{what} `{name}` version {v}"),
            None => format!("{what} `{name}`"),
        })
    })
}

fn package_json(text: &str) -> Option<String> {
    let name_version = match serde_json::from_str::<Value>(text) {
        Ok(v) => (
            v.get("name").and_then(Value::as_str).map(String::from),
            v.get("version").and_then(Value::as_str).map(String::from),
        ),
        // A cut-off read is not valid JSON: take the first `"name":` line instead.
        Err(_) => (
            text.lines().find_map(|l| {
                let rest = l
                    .trim()
                    .strip_prefix("\"name\"")?
                    .trim_start()
                    .strip_prefix(':')?;
                Some(
                    rest.trim()
                        .trim_end_matches(',')
                        .trim_matches('"')
                        .to_string(),
                )
            }),
            None,
        ),
    };
    match name_version {
        (Some(n), Some(v)) => Some(format!("npm package `{n}` version {v}")),
        (Some(n), None) => Some(format!("npm package `{n}`")),
        _ => None,
    }
}

/// A TOML value as plain text: a quoted string's body, or the bare value before a comment.
fn toml_string(value: &str) -> String {
    let value = value.trim();
    match value.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let body = &value[1..];
            body[..body.find(q).unwrap_or(body.len())].to_string()
        }
        _ => value.split('#').next().unwrap_or("").trim().to_string(),
    }
}

/// The `name=` keyword argument of a `setup(...)` call.
fn setup_py_name(text: &str) -> Option<String> {
    text.match_indices("name").find_map(|(at, _)| {
        let standalone = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let rest = text[at + "name".len()..].trim_start().strip_prefix('=')?;
        let rest = rest.trim_start();
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let body = &rest[1..];
        if !standalone {
            return None;
        }
        Some(body[..body.find(quote)?].to_string())
    })
}

/// Up to eight symbols, type-like declarations first, in map order.
fn notable_symbols(inv: &Inventory) -> Vec<String> {
    const TYPE_KINDS: &[&str] = &[
        "struct",
        "enum",
        "trait",
        "class",
        "interface",
        "type",
        "union",
    ];
    let all: Vec<(&str, &str, &str)> = inv
        .files
        .iter()
        .flat_map(|f| {
            f.symbols
                .iter()
                .map(move |(k, n)| (k.as_str(), n.as_str(), f.path.as_str()))
        })
        .collect();
    let types = all.iter().filter(|(k, _, _)| TYPE_KINDS.contains(k));
    let rest = all.iter().filter(|(k, _, _)| !TYPE_KINDS.contains(k));
    types
        .chain(rest)
        .take(8)
        .map(|(k, n, p)| format!("{} ({p})", join_kind(k, n)))
        .collect()
}

fn describe_markers(text: &str) -> String {
    let mut matches: Vec<(&str, &str, &str)> = Vec::new();
    let mut more = 0usize;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("[...") {
            more += leading_number(t.trim_start_matches("[...").trim_start()).unwrap_or(0);
            continue;
        }
        let mut parts = line.splitn(3, ':');
        if let (Some(path), Some(num), rest) = (parts.next(), parts.next(), parts.next())
            && !path.is_empty()
            && !num.is_empty()
            && num.chars().all(|c| c.is_ascii_digit())
        {
            matches.push((path, num, rest.unwrap_or("").trim()));
        }
    }
    let total = matches.len() + more;
    if total == 0 {
        return "TODO/FIXME markers: 0.\n".into();
    }
    let first: Vec<String> = matches
        .iter()
        .take(2)
        .map(|(p, n, t)| format!("{p}:{n} ({})", one_line(t, 60)))
        .collect();
    format!(
        "TODO/FIXME markers: {total}; first: {}.\n",
        first.join(", ")
    )
}

/// `text` on one line, cut to `max` characters with an ellipsis.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{}…", cut.trim_end())
    }
}
