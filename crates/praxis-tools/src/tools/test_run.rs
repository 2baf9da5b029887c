//! `test_run`: detects and runs a project's test suite, and puts a parsed summary (counts
//! and failing test names) above the capped raw output, so a model sees what failed first.

use super::shell::{bash_spec, call_timeout, fmt_secs, push_line, render_streams, resolve_dir};
use crate::process::run_process;
use crate::{Access, BoxFuture, ExecContext, Tool, Workspace};
use praxis_core::{AccessMode, Effect, ExecStatus, Observation, Resource};
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::LazyLock;

/// Bytes kept per stream for parsing. Larger than the display cap so that the summary and
/// failure lists of a long run are still seen; only the display is held to the tool cap.
const PARSE_CAP: usize = 1024 * 1024;

/// Failing test names listed at most; the rest are counted.
const MAX_FAILING: usize = 20;

/// Arguments of `test_run`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRunArgs {
    /// Project directory, relative to the workspace root (default: the root).
    #[serde(default)]
    pub path: Option<String>,
    /// Test framework; detected from the project files when omitted.
    #[serde(default)]
    pub framework: Option<Framework>,
    /// Extra arguments appended to the test command, e.g. a test name filter.
    #[serde(default)]
    pub args: Option<String>,
    /// Seconds before the test run is killed. Defaults to the runtime's test timeout;
    /// larger values are capped at its maximum.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub timeout_secs: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Cargo,
    Pytest,
    Npm,
    Go,
    Make,
}

impl Framework {
    /// The command line that runs the suite.
    pub fn command(self) -> &'static str {
        match self {
            Framework::Cargo => "cargo test",
            Framework::Pytest => "python3 -m pytest -q",
            Framework::Npm => "npm test --silent",
            Framework::Go => "go test ./...",
            Framework::Make => "make test",
        }
    }

    /// The command line with the caller's extra arguments (npm passes them to the test
    /// script only after `--`).
    pub fn command_with(self, args: Option<&str>) -> String {
        match args.map(str::trim).filter(|a| !a.is_empty()) {
            None => self.command().to_string(),
            Some(extra) if self == Framework::Npm => format!("{} -- {extra}", self.command()),
            Some(extra) => format!("{} {extra}", self.command()),
        }
    }
}

/// What detection looks for, in order (also the message when nothing is found).
const LOOKED_FOR: &str = "Cargo.toml (cargo test); go.mod (go test ./...); package.json with a \
    scripts.test entry (npm test); pytest.ini, conftest.py, [tool.pytest...] in pyproject.toml, \
    [tool:pytest] in setup.cfg, or test_*.py files here or in tests/ or test/ (pytest); a \
    Makefile with a `test:` target (make test)";

/// The most of a marker file detection reads.
const MAX_MARKER_BYTES: u64 = 1024 * 1024;

/// Detects the test framework of the project in the workspace directory `dir`; returns it
/// with the file that gave it away. Unreadable, oversized, special (a FIFO) or malformed
/// files count as absent; everything is read through the workspace's descriptors.
pub fn detect(ws: &Workspace, dir: &str) -> Option<(Framework, String)> {
    let path = |name: &str| match dir {
        "." | "" => name.to_string(),
        _ => format!("{dir}/{name}"),
    };
    let read = |name: &str| {
        ws.read_capped(&path(name), MAX_MARKER_BYTES)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    };
    let is_file = |name: &str| ws.open_file(&path(name), Access::Read).is_ok();
    if is_file("Cargo.toml") {
        return Some((Framework::Cargo, "Cargo.toml".into()));
    }
    if is_file("go.mod") {
        return Some((Framework::Go, "go.mod".into()));
    }
    if let Some(text) = read("package.json")
        && serde_json::from_str::<PackageJson>(&text).is_ok_and(|p| p.scripts.test.is_some())
    {
        return Some((Framework::Npm, "package.json".into()));
    }
    for name in ["pytest.ini", "conftest.py"] {
        if is_file(name) {
            return Some((Framework::Pytest, name.into()));
        }
    }
    let contains = |name: &str, needle: &str| read(name).is_some_and(|text| text.contains(needle));
    if contains("pyproject.toml", "[tool.pytest") {
        return Some((Framework::Pytest, "pyproject.toml".into()));
    }
    if contains("setup.cfg", "[tool:pytest]") {
        return Some((Framework::Pytest, "setup.cfg".into()));
    }
    for sub in [".", "tests", "test"] {
        let Ok(names) = ws.list_dir(&path(sub)) else {
            continue;
        };
        let found = names.into_iter().find(|name| {
            name.ends_with(".py") && (name.starts_with("test_") || name.ends_with("_test.py"))
        });
        if let Some(name) = found {
            return Some((
                Framework::Pytest,
                if sub == "." {
                    name
                } else {
                    format!("{sub}/{name}")
                },
            ));
        }
    }
    for name in ["GNUmakefile", "makefile", "Makefile"] {
        if let Some(text) = read(name)
            && has_test_target(&text)
        {
            return Some((Framework::Make, name.into()));
        }
    }
    None
}

/// The part of a package.json detection looks at: a string `scripts.test`.
#[derive(Deserialize)]
struct PackageJson {
    #[serde(default)]
    scripts: Scripts,
}

#[derive(Default, Deserialize)]
struct Scripts {
    #[serde(default)]
    test: Option<String>,
}

/// Whether a Makefile declares a `test` target (alone or among others on one rule line);
/// `test := ...` is a variable, not a target.
pub fn has_test_target(makefile: &str) -> bool {
    static TARGET: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?m)^(?:[^\s:#=]+[ \t]+)*test(?:[ \t]+[^\s:#=]+)*[ \t]*::?(?:[^=]|$)")
            .expect("valid regex")
    });
    TARGET.is_match(makefile)
}

/// Counts and failing names parsed from a test run's output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestSummary {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    /// What was counted: "tests", or "packages" for `go test` (which lists only packages
    /// unless run verbosely).
    pub unit: &'static str,
    pub failing: Vec<String>,
}

impl TestSummary {
    fn new(unit: &'static str) -> Self {
        TestSummary {
            unit,
            ..Default::default()
        }
    }

    /// `N failed, M passed[, K skipped][ (packages)]`.
    pub fn counts_line(&self) -> String {
        let mut line = format!("{} failed, {} passed", self.failed, self.passed);
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        if self.unit != "tests" {
            line.push_str(&format!(" ({})", self.unit));
        }
        line
    }

    fn add_failing(&mut self, name: &str) {
        let name = name.trim();
        if !name.is_empty() && !self.failing.iter().any(|n| n == name) {
            self.failing.push(name.to_string());
        }
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid regex")
}

fn num(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

/// `cargo test`: every `test result:` line summed (one per test binary), failing names from
/// `test NAME ... FAILED` lines and the `failures:` name lists.
pub fn parse_cargo(output: &str) -> Option<TestSummary> {
    static RESULT: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored"));
    static FAILED: LazyLock<Regex> = LazyLock::new(|| re(r"^test (.+) \.\.\. FAILED$"));
    let mut summary = TestSummary::new("tests");
    let mut seen = false;
    for caps in RESULT.captures_iter(output) {
        seen = true;
        summary.passed += num(&caps[1]);
        summary.failed += num(&caps[2]);
        summary.skipped += num(&caps[3]);
    }
    let mut in_list = false;
    for line in output.lines() {
        let line = line.trim_end();
        if let Some(caps) = FAILED.captures(line) {
            summary.add_failing(&caps[1]);
        }
        // The second `failures:` block lists names indented by four spaces; the first one
        // (with the panic messages) starts with a blank line and yields nothing here.
        if line == "failures:" {
            in_list = true;
        } else if in_list {
            match line.strip_prefix("    ") {
                Some(name) if !name.starts_with(' ') => summary.add_failing(name),
                _ => in_list = false,
            }
        }
    }
    (seen || !summary.failing.is_empty()).then_some(summary)
}

/// pytest: the last `N failed, M passed ... in T s` line; failing node ids from the
/// `FAILED id - message` / `ERROR id` lines of the short summary.
pub fn parse_pytest(output: &str) -> Option<TestSummary> {
    static FINAL: LazyLock<Regex> = LazyLock::new(|| {
        re(r"^[=\s]*(\d+ [a-z]+(?:, \d+ [a-z]+)*) in [\d.]+s(?: \([^)]*\))?[=\s]*$")
    });
    static ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) ([a-z]+)"));
    static NO_TESTS: LazyLock<Regex> = LazyLock::new(|| re(r"^[=\s]*no tests ran in [\d.]+s"));
    static FAILED: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$"));
    let mut counts = None;
    let mut summary = TestSummary::new("tests");
    for line in output.lines() {
        let line = line.trim_end();
        if let Some(caps) = FINAL.captures(line) {
            counts = Some(caps[1].to_string());
        } else if NO_TESTS.is_match(line) {
            counts = Some(String::new());
        } else if let Some(caps) = FAILED.captures(line) {
            summary.add_failing(&caps[1]);
        }
    }
    let counts = counts?;
    for caps in ITEM.captures_iter(&counts) {
        let n = num(&caps[1]);
        match &caps[2] {
            "passed" | "xpassed" => summary.passed += n,
            // Collection and fixture errors fail the run like failed tests do.
            "failed" | "error" | "errors" => summary.failed += n,
            "skipped" | "xfailed" => summary.skipped += n,
            _ => {}
        }
    }
    Some(summary)
}

/// `go test`: `ok` and `FAIL` package lines counted, failing tests from `--- FAIL: Name`.
pub fn parse_go(output: &str) -> Option<TestSummary> {
    static FAIL_TEST: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*--- FAIL: (\S+)"));
    static OK_PKG: LazyLock<Regex> = LazyLock::new(|| re(r"^ok\s+\S+"));
    static FAIL_PKG: LazyLock<Regex> = LazyLock::new(|| re(r"^FAIL\s+\S+"));
    let mut summary = TestSummary::new("packages");
    let mut seen = false;
    for line in output.lines() {
        if let Some(caps) = FAIL_TEST.captures(line) {
            summary.add_failing(&caps[1]);
            seen = true;
        } else if OK_PKG.is_match(line) {
            summary.passed += 1;
            seen = true;
        } else if FAIL_PKG.is_match(line) {
            summary.failed += 1;
            seen = true;
        }
    }
    seen.then_some(summary)
}

/// JavaScript runners behind `npm test`: jest and vitest (`Tests: 1 failed, 2 passed`),
/// node's built-in runner (`# pass N` / `# fail N`, `not ok N - name`), mocha
/// (`N passing` / `N failing`).
pub fn parse_js(output: &str) -> Option<TestSummary> {
    static JEST: LazyLock<Regex> =
        LazyLock::new(|| re(r"^\s*Tests:?\s+(.*\d+ (?:failed|passed).*)$"));
    static ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) ([a-z]+)"));
    static JEST_FAIL: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*● (.+)$"));
    static TAP_COUNT: LazyLock<Regex> = LazyLock::new(|| re(r"^# (pass|fail|skipped) (\d+)$"));
    static TAP_FAIL: LazyLock<Regex> = LazyLock::new(|| re(r"^not ok \d+ - (.+)$"));
    static MOCHA: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*(\d+) (passing|failing|pending)\b"));
    let mut summary = TestSummary::new("tests");
    let mut jest_line = None;
    let mut seen = false;
    for line in output.lines() {
        let line = line.trim_end();
        if let Some(caps) = JEST.captures(line) {
            jest_line = Some(caps[1].to_string());
        } else if let Some(caps) = JEST_FAIL.captures(line) {
            // jest prints captured console output under `● Console`: not a test.
            if &caps[1] != "Console" {
                summary.add_failing(&caps[1]);
            }
        } else if let Some(caps) = TAP_COUNT.captures(line) {
            seen = true;
            let n = num(&caps[2]);
            match &caps[1] {
                "pass" => summary.passed += n,
                "fail" => summary.failed += n,
                _ => summary.skipped += n,
            }
        } else if let Some(caps) = TAP_FAIL.captures(line) {
            summary.add_failing(&caps[1]);
        } else if let Some(caps) = MOCHA.captures(line) {
            seen = true;
            let n = num(&caps[1]);
            match &caps[2] {
                "passing" => summary.passed += n,
                "failing" => summary.failed += n,
                _ => summary.skipped += n,
            }
        }
    }
    if let Some(counts) = jest_line {
        seen = true;
        for caps in ITEM.captures_iter(&counts) {
            let n = num(&caps[1]);
            match &caps[2] {
                "passed" => summary.passed += n,
                "failed" => summary.failed += n,
                "skipped" | "todo" | "pending" => summary.skipped += n,
                _ => {}
            }
        }
    }
    seen.then_some(summary)
}

/// The framework's own parser; for `make` (which can run anything) every parser in turn.
pub fn parse_summary(framework: Framework, output: &str) -> Option<TestSummary> {
    match framework {
        Framework::Cargo => parse_cargo(output),
        Framework::Pytest => parse_pytest(output),
        Framework::Go => parse_go(output),
        Framework::Npm => parse_js(output),
        Framework::Make => parse_cargo(output)
            .or_else(|| parse_pytest(output))
            .or_else(|| parse_go(output))
            .or_else(|| parse_js(output)),
    }
}

/// The `summary:` line and the `failing:` block.
pub fn format_summary(summary: Option<&TestSummary>, exit_code: Option<i32>) -> String {
    let Some(summary) = summary else {
        let code = exit_code.map_or_else(|| "none".to_string(), |c| c.to_string());
        return format!("summary: unavailable (exit code {code})\n");
    };
    let mut text = format!("summary: {}\n", summary.counts_line());
    if !summary.failing.is_empty() {
        text.push_str("failing:\n");
        for name in summary.failing.iter().take(MAX_FAILING) {
            text.push_str(&format!("  {name}\n"));
        }
        if summary.failing.len() > MAX_FAILING {
            text.push_str(&format!(
                "  ... and {} more\n",
                summary.failing.len() - MAX_FAILING
            ));
        }
    }
    text
}

#[derive(Default)]
pub struct TestRunTool;

impl Tool for TestRunTool {
    type Args = TestRunArgs;
    const NAME: &'static str = "test_run";
    const DESCRIPTION: &'static str = "Run the project's tests (cargo, pytest, npm, go or make; detected from the project \
             files unless `framework` is given). Returns a summary (counts and failing test \
             names) followed by the capped raw output.";
    const EFFECT: Effect = Effect::Exec;

    fn touches(&self, args: &TestRunArgs) -> Vec<Resource> {
        let extra = args.args.as_deref();
        // Detection reads files, which this function must not do: without an explicit
        // framework the command is named as what it is, an auto-detected one.
        let command = match args.framework {
            Some(framework) => framework.command_with(extra),
            None => match extra.map(str::trim).filter(|a| !a.is_empty()) {
                Some(extra) => format!("auto-detected test command {extra}"),
                None => "auto-detected test command".to_string(),
            },
        };
        vec![
            Resource::Command { command },
            Resource::Path {
                path: args.path.clone().unwrap_or_else(|| ".".to_string()),
                mode: AccessMode::Write,
            },
        ]
    }

    fn run<'a>(&'a self, ctx: &'a ExecContext, args: TestRunArgs) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let rel = args.path.as_deref().unwrap_or(".");
            let dir = match resolve_dir(ctx, rel, "path") {
                Ok(dir) => dir,
                Err(obs) => return obs,
            };
            let (framework, origin) = match args.framework {
                Some(framework) => (framework, "framework requested".to_string()),
                None => match detect(&ctx.workspace, rel) {
                    Some((framework, marker)) => (framework, format!("detected from {marker}")),
                    None => {
                        return Observation::error(format!(
                            "test_run: no test setup found in `{rel}`; looked for: {LOOKED_FOR}. \
                             Pass `framework` to choose one."
                        ));
                    }
                },
            };
            let timeout = match call_timeout(
                ctx,
                args.timeout_secs,
                ctx.limits.test_timeout,
                ctx.limits.max_test_timeout,
            ) {
                Ok(t) => t,
                Err(obs) => return obs,
            };
            let command = framework.command_with(args.args.as_deref());
            let cap = ctx.limits.output_bytes;
            let outcome =
                run_process(&bash_spec(ctx, &command, dir, timeout, PARSE_CAP.max(cap))).await;
            let duration_ms = outcome.duration.as_millis() as u64;

            let (verdict, status) = if let Some(why) = &outcome.spawn_error {
                (format!("could not start: {why}"), ExecStatus::Error)
            } else if outcome.timed_out {
                (
                    format!(
                        "TIMED OUT after {}; process group killed",
                        fmt_secs(timeout)
                    ),
                    ExecStatus::Timeout,
                )
            } else if let Some(signal) = outcome.signal {
                (
                    format!("FAILED, terminated by signal {signal}"),
                    ExecStatus::Error,
                )
            } else if outcome.exit_code == Some(0) {
                ("passed".to_string(), ExecStatus::Ok)
            } else {
                let code = outcome.exit_code.unwrap_or(-1);
                (format!("FAILED, exit code {code}"), ExecStatus::Error)
            };
            let mut parse_input = outcome.stdout.to_text_with_marker();
            push_line(&mut parse_input, &outcome.stderr.to_text_with_marker());
            let summary = parse_summary(framework, &parse_input);
            let (raw, truncated_bytes) = render_streams(&outcome.stdout, &outcome.stderr, cap);

            let mut output = format!("test_run: {command} ({origin}) -> {verdict}\n");
            output.push_str(&format_summary(summary.as_ref(), outcome.exit_code));
            output.push_str("--- output ---\n");
            output.push_str(&raw);
            Observation {
                status,
                exit_code: outcome.exit_code,
                output,
                truncated_bytes,
                duration_ms,
                files_changed: Vec::new(),
                child_spent: None,
                git_removed: Vec::new(),
            }
        })
    }
}

#[cfg(test)]
mod tests;
