//! `fs_patch`: change part of an existing file, by search/replace edits or a unified diff.
//! All or nothing: the file is written only if every edit (or hunk) applies.

use crate::registry::{path_resource, run_blocking};
use crate::{Access, BoxFuture, ExecContext, Tool, Workspace, WorkspaceError};
use praxis_core::{AccessMode, Effect, Observation, Resource};
use schemars::JsonSchema;
use serde::Deserialize;
use std::io::{Read, Seek, SeekFrom, Write};

pub const NAME: &str = "fs_patch";

/// Arguments of `fs_patch`: `path` plus exactly one of `diff` or `edits`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsPatchArgs {
    /// Existing file to change, relative to the workspace root.
    pub path: String,
    /// A unified diff of this one file (`@@ -l,n +l,n @@` hunks with context lines).
    #[serde(default)]
    pub diff: Option<String>,
    /// Search/replace edits, applied in order to the file's text.
    #[serde(default)]
    pub edits: Option<Vec<Edit>>,
}

/// One search/replace edit.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    /// Exact text to find (whitespace and indentation included). Must occur exactly once
    /// unless `replace_all` is true.
    pub search: String,
    /// Text to put in its place.
    pub replace: String,
    /// Replace every occurrence (default false).
    #[serde(default)]
    pub replace_all: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct FsPatchTool;

impl Tool for FsPatchTool {
    type Args = FsPatchArgs;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str = "Change an existing file of the workspace: give either \
         `edits` (exact search/replace pairs, applied in order) or `diff` (a unified diff of \
         that file), not both. Nothing is written unless every edit or hunk applies.";
    const EFFECT: Effect = Effect::Write;

    fn touches(&self, args: &FsPatchArgs) -> Vec<Resource> {
        path_resource(&args.path, AccessMode::Write)
    }

    fn run<'a>(&'a self, ctx: &'a ExecContext, args: FsPatchArgs) -> BoxFuture<'a, Observation> {
        let ws = ctx.workspace.clone();
        let max_bytes = ctx.limits.read_bytes.max(4 * 1024 * 1024);
        run_blocking(NAME, args, move |args: FsPatchArgs| {
            patch(&ws, &args, max_bytes)
        })
    }
}

fn patch(ws: &Workspace, args: &FsPatchArgs, max_bytes: usize) -> Observation {
    let path = &args.path;
    let change = match (&args.diff, &args.edits) {
        (Some(_), Some(_)) => {
            return Observation::error(
                "give either `diff` or `edits`, not both (use one fs_patch call per form)",
            );
        }
        (None, None) => {
            return Observation::error(
                "give one of `diff` (a unified diff) or `edits` (search/replace pairs)",
            );
        }
        (Some(diff), None) => Change::Diff(diff),
        (None, Some(edits)) => {
            if edits.is_empty() {
                return Observation::error("`edits` is empty: give at least one edit");
            }
            Change::Edits(edits)
        }
    };
    // One descriptor for the read and the write back: the file is never opened twice.
    let opened = match ws.open_file(path, Access::ReadWrite) {
        Ok(f) => f,
        Err(WorkspaceError::IsDirectory { .. }) => {
            return Observation::error(format!("`{path}` is a directory, not a file"));
        }
        Err(e) => return Observation::error(e.to_string()),
    };
    let mut file = opened.file;
    let mut bytes = Vec::new();
    if let Err(e) = (&mut file)
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
    {
        return Observation::error(format!("cannot read `{path}`: {e}"));
    }
    if bytes.len() > max_bytes {
        return Observation::error(format!(
            "`{path}` is larger than {max_bytes} bytes; fs_patch does not edit files that large"
        ));
    }
    let Ok(original) = String::from_utf8(bytes) else {
        return Observation::error(format!(
            "`{path}` is not UTF-8 text; fs_patch only edits text"
        ));
    };
    let (patched, summary) = match change {
        Change::Edits(edits) => match apply_edits(&original, edits) {
            Ok(text) => (text, format!("{} edit(s) applied", edits.len())),
            Err(e) => return Observation::error(format!("`{path}` was not changed: {e}")),
        },
        Change::Diff(diff) => match apply_diff(&original, diff) {
            Ok((text, hunks)) => (text, format!("{hunks} hunk(s) applied")),
            Err(e) => return Observation::error(format!("`{path}` was not changed: {e}")),
        },
    };
    let rel = opened.display;
    if let Err(e) = rewrite(&mut file, patched.as_bytes()) {
        return Observation::error(format!("cannot write `{rel}`: {e}"));
    }
    let (removed, added) = line_delta(&original, &patched);
    Observation::ok(format!(
        "patched {rel}: {summary} (-{removed} +{added} lines)"
    ))
}

/// Replaces the whole content of `file` (open for reading and writing) with `bytes`.
fn rewrite(file: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.flush()
}

enum Change<'a> {
    Diff(&'a str),
    Edits(&'a [Edit]),
}

/// Applies `edits` in order; the first failure explains itself and nothing is returned.
fn apply_edits(original: &str, edits: &[Edit]) -> Result<String, String> {
    let mut text = original.to_string();
    for (i, edit) in edits.iter().enumerate() {
        let n = i + 1;
        if edit.search.is_empty() {
            return Err(format!("edit {n}: `search` is empty"));
        }
        let starts: Vec<usize> = text.match_indices(&edit.search).map(|(at, _)| at).collect();
        match starts.len() {
            0 => return Err(not_found(n, &text, &edit.search)),
            1 => text = text.replacen(&edit.search, &edit.replace, 1),
            _ if edit.replace_all => text = text.replace(&edit.search, &edit.replace),
            count => {
                let lines: Vec<String> = starts
                    .iter()
                    .map(|&at| (line_of(&text, at)).to_string())
                    .collect();
                return Err(format!(
                    "edit {n}: the search text occurs {count} times (at lines {}); add \
                     surrounding lines to make it unique, or set replace_all: true",
                    lines.join(", ")
                ));
            }
        }
    }
    Ok(text)
}

/// 1-based line number of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].bytes().filter(|&b| b == b'\n').count() + 1
}

/// "edit N: search text not found" plus where the closest match is and how it differs.
fn not_found(n: usize, text: &str, search: &str) -> String {
    let file_lines: Vec<&str> = text.lines().collect();
    let search_lines: Vec<&str> = search.lines().collect();
    let first = search_lines.first().copied().unwrap_or("");
    let mut message = format!("edit {n}: the search text was not found");
    // The file line most similar to the search's first line (ties: the earliest).
    let best = file_lines
        .iter()
        .enumerate()
        .map(|(i, line)| (similarity(first, line), i))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let Some((_, start)) = best.filter(|(score, _)| *score > 0.0) else {
        message.push_str(" (no line of the file resembles its first line)");
        return message;
    };
    // Walk the search lines from there to the first line that differs.
    for (k, expected) in search_lines.iter().enumerate() {
        let line_no = start + k + 1;
        let Some(actual) = file_lines.get(start + k) else {
            message.push_str(&format!(
                "; the closest match starts at line {} but the file ends at line {}, before \
                 search line {} (`{}`)",
                start + 1,
                file_lines.len(),
                k + 1,
                clip(expected)
            ));
            return message;
        };
        if actual != expected {
            let column = first_difference(expected, actual);
            message.push_str(&format!(
                "; closest match: line {line_no}, which differs at column {column}:\n  \
                 expected: `{}`\n  actual:   `{}`",
                clip(expected),
                clip(actual)
            ));
            return message;
        }
    }
    // Every line equal but no exact occurrence: the difference is in line endings or in a
    // trailing newline of the search text.
    message.push_str(&format!(
        "; lines {}..{} match line by line, so the difference is in line endings or a \
         trailing newline",
        start + 1,
        start + search_lines.len()
    ));
    message
}

/// 1-based column (in characters) of the first difference between two lines.
fn first_difference(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count() + 1
}

/// Similarity of two lines in [0, 1]: 1 - edit distance / longer length (on trimmed lines,
/// so an indentation slip still finds its line; the column report shows the slip).
fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.trim().chars().take(300).collect();
    let b: Vec<char> = b.trim().chars().take(300).collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 0.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    1.0 - prev[b.len()] as f64 / longest as f64
}

fn clip(line: &str) -> String {
    const MAX: usize = 200;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        let mut s: String = line.chars().take(MAX).collect();
        s.push_str("...");
        s
    }
}

/// Applies a unified diff; on failure names the hunk, the line where its context was
/// expected, and the expected vs actual line there.
fn apply_diff(original: &str, diff: &str) -> Result<(String, usize), String> {
    let patch = diffy::Patch::from_str(diff).map_err(|e| {
        format!("could not parse the diff: {e} (expected `@@ -l,n +l,n @@` hunks of one file)")
    })?;
    let hunks = patch.hunks();
    if hunks.is_empty() {
        return Err("the diff has no hunks (`@@ -l,n +l,n @@` headers)".to_string());
    }
    match diffy::apply(original, &patch) {
        Ok(text) => Ok((text, hunks.len())),
        Err(e) => {
            // diffy only says "error applying hunk #N": find where and why.
            let number = e
                .to_string()
                .rsplit('#')
                .next()
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(1);
            Err(describe_hunk_failure(original, hunks, number))
        }
    }
}

fn describe_hunk_failure(original: &str, hunks: &[diffy::Hunk<'_, str>], number: usize) -> String {
    let total = hunks.len();
    let Some(hunk) = hunks.get(number.saturating_sub(1)) else {
        return format!("hunk {number} of {total} does not apply");
    };
    let file_lines: Vec<&str> = original.split_inclusive('\n').collect();
    let expected: Vec<&str> = hunk
        .lines()
        .iter()
        .filter_map(|l| match l {
            diffy::Line::Context(s) | diffy::Line::Delete(s) => Some(*s),
            diffy::Line::Insert(_) => None,
        })
        .collect();
    let start = hunk.old_range().start().max(1);
    let head = format!(
        "hunk {number} of {total} (`@@ -{} @@`) does not apply",
        hunk.old_range()
    );
    for (k, want) in expected.iter().enumerate() {
        let line_no = start + k;
        match file_lines.get(line_no - 1) {
            None => {
                return format!(
                    "{head}: it expects `{}` at line {line_no}, but the file has only {} lines",
                    clip(want.trim_end_matches('\n')),
                    file_lines.len()
                );
            }
            Some(have) if have.trim_end_matches('\n') != want.trim_end_matches('\n') => {
                return format!(
                    "{head}: its context does not match the file at line {line_no} (and was not \
                     found elsewhere):\n  expected: `{}`\n  actual:   `{}`",
                    clip(want.trim_end_matches('\n')),
                    clip(have.trim_end_matches('\n'))
                );
            }
            Some(_) => {}
        }
    }
    format!(
        "{head}: its lines match the file at line {start}, but that region overlaps an \
         earlier hunk or differs in its final newline"
    )
}

/// Lines removed and added between two texts (a multiset difference of lines: cheap and
/// good enough for a summary).
fn line_delta(before: &str, after: &str) -> (usize, usize) {
    use std::collections::HashMap;
    let mut counts: HashMap<&str, isize> = HashMap::new();
    for line in before.lines() {
        *counts.entry(line).or_default() += 1;
    }
    for line in after.lines() {
        *counts.entry(line).or_default() -= 1;
    }
    let removed = counts
        .values()
        .filter(|&&c| c > 0)
        .map(|&c| c as usize)
        .sum();
    let added = counts
        .values()
        .filter(|&&c| c < 0)
        .map(|&c| (-c) as usize)
        .sum();
    (removed, added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Registry, ToolContract};
    use praxis_core::{Contracts, ExecStatus};
    use serde_json::Value;
    use serde_json::json;
    use std::fs;

    const SRC: &str = "fn main() {\n    let x = compute(1);\n    println!(\"{x}\");\n}\n\nfn compute(v: i32) -> i32 {\n    v + 1\n}\n";

    fn fixture() -> (tempfile::TempDir, ExecContext) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("main.rs"), SRC).unwrap();
        let ctx = ExecContext::new(Workspace::new(dir.path()).unwrap());
        (dir, ctx)
    }

    async fn run(ctx: &ExecContext, args: Value) -> Observation {
        FsPatchTool.execute(ctx, args).await
    }

    fn read(dir: &tempfile::TempDir) -> String {
        fs::read_to_string(dir.path().join("main.rs")).unwrap()
    }

    #[tokio::test]
    async fn edits_apply_in_order() {
        let (dir, ctx) = fixture();
        let o = run(
            &ctx,
            json!({"path": "main.rs", "edits": [
                {"search": "compute(1)", "replace": "compute(2)"},
                {"search": "    v + 1\n", "replace": "    v * 2\n    // doubled\n"},
            ]}),
        )
        .await;
        assert_eq!(o.status, ExecStatus::Ok, "{}", o.output);
        assert_eq!(o.output, "patched main.rs: 2 edit(s) applied (-2 +3 lines)");
        assert_eq!(
            read(&dir),
            SRC.replace("compute(1)", "compute(2)")
                .replace("    v + 1\n", "    v * 2\n    // doubled\n")
        );
    }

    #[tokio::test]
    async fn ambiguous_search_lists_lines_and_replace_all_works() {
        let (dir, ctx) = fixture();
        let o = run(
            &ctx,
            json!({"path": "main.rs", "edits": [{"search": "compute", "replace": "calc"}]}),
        )
        .await;
        assert_eq!(o.status, ExecStatus::Error);
        assert_eq!(
            o.output,
            "`main.rs` was not changed: edit 1: the search text occurs 2 times (at lines 2, 6); \
             add surrounding lines to make it unique, or set replace_all: true"
        );
        assert_eq!(read(&dir), SRC);
        let o = run(&ctx, json!({"path": "main.rs", "edits": [{"search": "compute", "replace": "calc", "replace_all": true}]})).await;
        assert_eq!(o.output, "patched main.rs: 1 edit(s) applied (-2 +2 lines)");
        assert_eq!(read(&dir), SRC.replace("compute", "calc"));
    }

    #[tokio::test]
    async fn missing_search_reports_closest_line_and_column_and_writes_nothing() {
        let (dir, ctx) = fixture();
        let o = run(
            &ctx,
            json!({"path": "main.rs", "edits": [
                {"search": "fn main() {", "replace": "pub fn main() {"},
                {"search": "    let x = compute(3);\n    println!", "replace": "?"},
            ]}),
        )
        .await;
        assert_eq!(o.status, ExecStatus::Error);
        assert_eq!(
            o.output,
            "`main.rs` was not changed: edit 2: the search text was not found; closest match: \
             line 2, which differs at column 21:\n  expected: `    let x = compute(3);`\n  \
             actual:   `    let x = compute(1);`"
        );
        // All or nothing: edit 1 was not written either.
        assert_eq!(read(&dir), SRC);
        // A later line of a multi-line search is pinpointed too.
        let o = run(
            &ctx,
            json!({"path": "main.rs", "edits": [
                {"search": "fn compute(v: i32) -> i32 {\n    v - 1\n", "replace": ""},
            ]}),
        )
        .await;
        assert!(
            o.output
                .contains("closest match: line 7, which differs at column 7"),
            "{}",
            o.output
        );
        let o = run(
            &ctx,
            json!({"path": "main.rs", "edits": [{"search": "zzzz", "replace": ""}]}),
        )
        .await;
        assert!(
            o.output.contains("edit 1: the search text was not found"),
            "{}",
            o.output
        );
    }

    #[tokio::test]
    async fn unified_diff_applies() {
        let (dir, ctx) = fixture();
        let diff = "--- a/main.rs\n+++ b/main.rs\n@@ -5,4 +5,4 @@\n \n fn compute(v: i32) -> i32 {\n-    v + 1\n+    v + 2\n }\n";
        let o = run(&ctx, json!({"path": "main.rs", "diff": diff})).await;
        assert_eq!(o.status, ExecStatus::Ok, "{}", o.output);
        assert_eq!(o.output, "patched main.rs: 1 hunk(s) applied (-1 +1 lines)");
        assert_eq!(read(&dir), SRC.replace("v + 1", "v + 2"));
    }

    #[tokio::test]
    async fn failing_hunk_names_line_and_expected_vs_actual() {
        let (dir, ctx) = fixture();
        let diff = "--- a/main.rs\n+++ b/main.rs\n@@ -1,2 +1,2 @@\n fn main() {\n-    let x = compute(1);\n+    let x = compute(5);\n@@ -6,3 +6,3 @@\n fn compute(v: i32) -> i32 {\n-    v + 100\n+    v + 2\n }\n";
        let o = run(&ctx, json!({"path": "main.rs", "diff": diff})).await;
        assert_eq!(o.status, ExecStatus::Error);
        assert_eq!(
            o.output,
            "`main.rs` was not changed: hunk 2 of 2 (`@@ -6,3 @@`) does not apply: its context \
             does not match the file at line 7 (and was not found elsewhere):\n  expected: \
             `    v + 100`\n  actual:   `    v + 1`"
        );
        assert_eq!(read(&dir), SRC);
        let o = run(
            &ctx,
            json!({"path": "main.rs", "diff": "this is not a diff"}),
        )
        .await;
        assert_eq!(o.status, ExecStatus::Error);
        assert!(o.output.contains("diff"), "{}", o.output);
    }

    #[tokio::test]
    async fn exactly_one_of_diff_or_edits() {
        let (_d, ctx) = fixture();
        let o = run(&ctx, json!({"path": "main.rs"})).await;
        assert_eq!(o.status, ExecStatus::Error);
        assert!(o.output.contains("give one of `diff`"), "{}", o.output);
        let o = run(&ctx, json!({"path": "main.rs", "diff": "", "edits": []})).await;
        assert!(o.output.contains("not both"), "{}", o.output);
        let o = run(&ctx, json!({"path": "main.rs", "edits": []})).await;
        assert!(o.output.contains("`edits` is empty"), "{}", o.output);
    }

    #[tokio::test]
    async fn escapes_and_missing_files_are_errors() {
        let (dir, ctx) = fixture();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("s.rs");
        fs::write(&secret, "fn main() {\n").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("leak.rs")).unwrap();
        let edits = json!([{"search": "fn main", "replace": "fn pwned"}]);
        for path in ["../s.rs", secret.to_str().unwrap(), "leak.rs", "missing.rs"] {
            let o = run(&ctx, json!({"path": path, "edits": edits})).await;
            assert_eq!(o.status, ExecStatus::Error, "{path}: {}", o.output);
        }
        assert_eq!(fs::read_to_string(&secret).unwrap(), "fn main() {\n");
    }

    #[test]
    fn schema_rejects_bad_arguments() {
        let r = Registry::builtin();
        let err = r
            .compile(
                NAME,
                &json!({"path": "a", "edits": [{"search": "a", "replace": "b", "all": true}]}),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("`edits/0`: unknown field `all`"), "{err}");
        let err = r
            .compile(NAME, &json!({"path": "a", "edits": "s/a/b/"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`edits`"), "{err}");
        assert!(r.compile(NAME, &json!({"path": "a", "diff": "@@"})).is_ok());
    }
}
