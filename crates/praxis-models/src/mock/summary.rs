//! The mock agent's final answer: a summary built only from what its tool calls returned
//! (the README, the entry points, the manifests, the markers found).

use super::*;

pub(super) fn summary(
    request: &ModelRequest,
    history: &History,
    inv: Option<&Inventory>,
) -> String {
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
pub(super) fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{}…", cut.trim_end())
    }
}
