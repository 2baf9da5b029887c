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
mod tests {
    use super::*;
    use crate::{ToolContract, Workspace};
    use serde_json::json;
    use std::path::Path;

    /// Captured from `cargo test --no-fail-fast` on a small crate (stdout then stderr;
    /// backtraces shortened).
    const CARGO_SAMPLE: &str = r#"
running 4 tests
test parser::rejects_bad ... FAILED
test tests::slow ... ignored
test tests::it_adds ... FAILED
test tests::works ... ok

failures:

---- parser::rejects_bad stdout ----

thread 'parser::rejects_bad' (10082) panicked at src/lib.rs:9:32:
accepted bad input
stack backtrace:
   0: __rustc::rust_begin_unwind
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.

---- tests::it_adds stdout ----

thread 'tests::it_adds' (10083) panicked at src/lib.rs:4:28:
assertion `left == right` failed
  left: 4
 right: 5
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.


failures:
    parser::rejects_bad
    tests::it_adds

test result: FAILED. 1 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.07s


running 1 test
test integ ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s


running 0 tests

test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

   Compiling demo v0.1.0 (/tmp/demo)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.52s
     Running unittests src/lib.rs (target/debug/deps/demo-8348ca7a80742723)
error: test failed, to rerun pass `--lib`
     Running tests/it.rs (target/debug/deps/it-a69063779ff8c574)
   Doc-tests demo
error: 1 target failed:
    `--lib`
"#;

    const PYTEST_SAMPLE: &str = r#".F.s                                                                     [100%]
=================================== FAILURES ===================================
___________________________________ test_bad ___________________________________

    def test_bad():
>       assert 1 == 2
E       assert 1 == 2

tests/test_math.py:5: AssertionError
=========================== short test summary info ============================
FAILED tests/test_math.py::test_bad - assert 1 == 2
FAILED tests/test_math.py::test_param[a b] - ValueError
2 failed, 2 passed, 1 skipped, 3 warnings in 0.05s
"#;

    const GO_SAMPLE: &str = "--- FAIL: TestAdd (0.00s)
    add_test.go:9: got 4, want 5
--- FAIL: TestTable (0.00s)
    --- FAIL: TestTable/negative (0.00s)
        add_test.go:20: bad
FAIL
FAIL\texample.com/demo/calc\t0.003s
ok  \texample.com/demo/util\t0.002s
?   \texample.com/demo/cmd\t[no test files]
FAIL
";

    const JEST_SAMPLE: &str = " FAIL  src/sum.test.js
  ● sum › adds negatives

    expect(received).toBe(expected) // Object.is equality

  ● Console

    console.log
      hello

Test Suites: 1 failed, 1 total
Tests:       1 failed, 3 passed, 1 skipped, 5 total
Snapshots:   0 total
Time:        0.512 s
";

    /// Captured from `npm test --silent` running `node --test` (node 20).
    const NODE_TAP_SAMPLE: &str = "TAP version 13
# Subtest: adds
ok 1 - adds
  ---
  duration_ms: 1.074285
  ...
# Subtest: fails badly
not ok 2 - fails badly
  ---
  duration_ms: 1.160585
  failureType: 'testCodeFailure'
  ...
1..2
# tests 2
# suites 0
# pass 1
# fail 1
# cancelled 0
# skipped 0
# todo 0
# duration_ms 60.82927
";

    #[test]
    fn cargo_sample() {
        let s = parse_cargo(CARGO_SAMPLE).expect("parsed");
        assert_eq!((s.failed, s.passed, s.skipped), (2, 2, 1));
        assert_eq!(s.failing, vec!["parser::rejects_bad", "tests::it_adds"]);
        assert_eq!(s.counts_line(), "2 failed, 2 passed, 1 skipped");
        assert_eq!(parse_cargo("error[E0425]: cannot find value `x`"), None);
    }

    #[test]
    fn cargo_failures_list_alone_still_names_tests() {
        // The head of a long run was cut: only the final list and result survive.
        let tail = "failures:\n    a::one\n    b::two\n\ntest result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s\n";
        let s = parse_cargo(tail).expect("parsed");
        assert_eq!(s.failing, vec!["a::one", "b::two"]);
        assert_eq!((s.failed, s.passed), (2, 5));
    }

    #[test]
    fn pytest_sample() {
        let s = parse_pytest(PYTEST_SAMPLE).expect("parsed");
        assert_eq!((s.failed, s.passed, s.skipped), (2, 2, 1));
        assert_eq!(
            s.failing,
            vec![
                "tests/test_math.py::test_bad",
                "tests/test_math.py::test_param[a b]"
            ]
        );
        let verbose = "==== 1 failed, 4 passed, 1 error in 65.20s (0:01:05) ====\n";
        let s = parse_pytest(verbose).expect("parsed");
        assert_eq!((s.failed, s.passed), (2, 4));
        let none = parse_pytest("no tests ran in 0.01s\n").expect("parsed");
        assert_eq!((none.failed, none.passed), (0, 0));
        assert_eq!(
            parse_pytest("ModuleNotFoundError: No module named pytest"),
            None
        );
    }

    #[test]
    fn go_sample() {
        let s = parse_go(GO_SAMPLE).expect("parsed");
        assert_eq!((s.failed, s.passed), (1, 1));
        assert_eq!(
            s.failing,
            vec!["TestAdd", "TestTable", "TestTable/negative"]
        );
        assert_eq!(s.counts_line(), "1 failed, 1 passed (packages)");
        assert_eq!(parse_go("go: cannot find main module"), None);
    }

    #[test]
    fn js_samples() {
        let s = parse_js(JEST_SAMPLE).expect("parsed");
        assert_eq!((s.failed, s.passed, s.skipped), (1, 3, 1));
        assert_eq!(s.failing, vec!["sum › adds negatives"]);
        let s = parse_js(NODE_TAP_SAMPLE).expect("parsed");
        assert_eq!((s.failed, s.passed, s.skipped), (1, 1, 0));
        assert_eq!(s.failing, vec!["fails badly"]);
        let s = parse_js("\n  3 passing (12ms)\n  1 pending\n  2 failing\n").expect("parsed");
        assert_eq!((s.failed, s.passed, s.skipped), (2, 3, 1));
        let s = parse_js("      Tests  1 failed | 4 passed (5)\n").expect("parsed");
        assert_eq!((s.failed, s.passed), (1, 4));
        assert_eq!(parse_js("npm ERR! missing script: test"), None);
    }

    #[test]
    fn make_tries_every_parser() {
        assert_eq!(
            parse_summary(Framework::Make, GO_SAMPLE),
            parse_go(GO_SAMPLE)
        );
        assert_eq!(
            parse_summary(Framework::Make, CARGO_SAMPLE),
            parse_cargo(CARGO_SAMPLE)
        );
        assert_eq!(parse_summary(Framework::Make, "all good\n"), None);
    }

    #[test]
    fn summary_formatting_caps_the_failing_list() {
        assert_eq!(
            format_summary(None, Some(2)),
            "summary: unavailable (exit code 2)\n"
        );
        let mut s = TestSummary::new("tests");
        s.failed = 25;
        s.failing = (0..25).map(|i| format!("t{i}")).collect();
        let text = format_summary(Some(&s), Some(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "summary: 25 failed, 0 passed");
        assert_eq!(lines[1], "failing:");
        assert_eq!(lines[2], "  t0");
        assert_eq!(lines[21], "  t19");
        assert_eq!(lines[22], "  ... and 5 more");
        assert_eq!(lines.len(), 23);
    }

    #[test]
    fn makefile_targets() {
        assert!(has_test_target("all:\n\techo\ntest: all\n\t./run\n"));
        assert!(has_test_target("lint test:\n\ttrue\n"));
        assert!(has_test_target("test:"));
        assert!(!has_test_target(".PHONY: test\ntests:\n\ttrue\n"));
        assert!(!has_test_target("test := 1\ntest-unit:\n\ttrue\n"));
        assert!(!has_test_target("build:\n\ttest -f x\n"));
    }

    #[test]
    fn detection_order_and_markers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        assert_eq!(detect(&Workspace::new(p).unwrap(), "."), None);
        std::fs::write(p.join("Makefile"), "test:\n\ttrue\n").unwrap();
        assert_eq!(
            detect(&Workspace::new(p).unwrap(), "."),
            Some((Framework::Make, "Makefile".into()))
        );
        std::fs::create_dir(p.join("tests")).unwrap();
        std::fs::write(p.join("tests/test_a.py"), "").unwrap();
        assert_eq!(
            detect(&Workspace::new(p).unwrap(), "."),
            Some((Framework::Pytest, "tests/test_a.py".into()))
        );
        std::fs::write(p.join("setup.cfg"), "[tool:pytest]\n").unwrap();
        assert_eq!(
            detect(&Workspace::new(p).unwrap(), "."),
            Some((Framework::Pytest, "setup.cfg".into()))
        );
        // A package.json without a test script does not claim the project.
        std::fs::write(p.join("package.json"), r#"{"scripts":{"build":"tsc"}}"#).unwrap();
        assert_eq!(
            detect(&Workspace::new(p).unwrap(), ".").map(|d| d.0),
            Some(Framework::Pytest)
        );
        std::fs::write(p.join("package.json"), r#"{"scripts":{"test":"jest"}}"#).unwrap();
        assert_eq!(
            detect(&Workspace::new(p).unwrap(), "."),
            Some((Framework::Npm, "package.json".into()))
        );
        std::fs::write(p.join("go.mod"), "module x\n").unwrap();
        assert_eq!(
            detect(&Workspace::new(p).unwrap(), "."),
            Some((Framework::Go, "go.mod".into()))
        );
        std::fs::write(p.join("Cargo.toml"), "[package]\n").unwrap();
        assert_eq!(
            detect(&Workspace::new(p).unwrap(), "."),
            Some((Framework::Cargo, "Cargo.toml".into()))
        );
    }

    /// Detection reads marker files: a FIFO under a marker's name is skipped, not waited on.
    #[test]
    fn detection_skips_fifos_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["package.json", "pyproject.toml", "Makefile"] {
            let path = std::ffi::CString::new(
                dir.path()
                    .join(name)
                    .as_os_str()
                    .as_encoded_bytes()
                    .to_vec(),
            )
            .unwrap();
            // SAFETY: a NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
        }
        let ws = Workspace::new(dir.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(detect(&ws, ".")).unwrap());
        let found = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("detection blocked on a FIFO");
        assert_eq!(found, None);
    }

    #[test]
    fn pyproject_marker() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pyproject.toml"), "[project]\nname='x'\n").unwrap();
        assert_eq!(detect(&Workspace::new(dir.path()).unwrap(), "."), None);
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[tool.pytest.ini_options]\naddopts='-q'\n",
        )
        .unwrap();
        assert_eq!(
            detect(&Workspace::new(dir.path()).unwrap(), "."),
            Some((Framework::Pytest, "pyproject.toml".into()))
        );
    }

    #[test]
    fn commands_and_resources() {
        assert_eq!(
            Framework::Cargo.command_with(Some("parser::")),
            "cargo test parser::"
        );
        assert_eq!(
            Framework::Npm.command_with(Some("-t sum")),
            "npm test --silent -- -t sum"
        );
        assert_eq!(Framework::Go.command_with(Some("  ")), "go test ./...");
        assert_eq!(
            TestRunTool.resources(&json!({"framework": "pytest", "path": "py", "args": "-k x"})),
            vec![
                Resource::Command {
                    command: "python3 -m pytest -q -k x".into()
                },
                Resource::Path {
                    path: "py".into(),
                    mode: AccessMode::Write
                },
            ]
        );
        assert_eq!(
            TestRunTool.resources(&json!({}))[0],
            Resource::Command {
                command: "auto-detected test command".into()
            }
        );
        let spec = TestRunTool.spec();
        assert_eq!(spec.effect, Effect::Exec);
        assert_eq!(spec.parameters["additionalProperties"], json!(false));
    }

    fn ctx(dir: &Path) -> ExecContext {
        ExecContext::new(Workspace::new(dir).unwrap())
    }

    fn make_project(dir: &Path, recipe: &str) {
        std::fs::write(dir.join("Makefile"), format!("test:\n{recipe}")).unwrap();
    }

    fn have_pytest() -> bool {
        std::process::Command::new("python3")
            .args(["-m", "pytest", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[tokio::test]
    async fn failing_project_reports_failure() {
        let dir = tempfile::tempdir().unwrap();
        let proj = dir.path().join("proj");
        std::fs::create_dir(&proj).unwrap();
        let ctx = ctx(dir.path());
        if have_pytest() {
            std::fs::write(
                proj.join("test_math.py"),
                "def test_good():\n    assert 1 + 1 == 2\n\ndef test_bad():\n    assert 1 + 1 == 3\n",
            )
            .unwrap();
            let obs = TestRunTool.execute(&ctx, json!({"path": "proj"})).await;
            assert_eq!(obs.status, ExecStatus::Error);
            assert_eq!(obs.exit_code, Some(1));
            assert!(
                obs.output.starts_with(
                    "test_run: python3 -m pytest -q (detected from test_math.py) -> FAILED, exit code 1\n\
                     summary: 1 failed, 1 passed\nfailing:\n  test_math.py::test_bad\n--- output ---\n"
                ),
                "{}",
                obs.output
            );
        } else {
            make_project(&proj, "\t@echo checking\n\tfalse\n");
            let obs = TestRunTool.execute(&ctx, json!({"path": "proj"})).await;
            assert_eq!(obs.status, ExecStatus::Error);
            assert_eq!(obs.exit_code, Some(2));
            assert!(
                obs.output.starts_with(
                    "test_run: make test (detected from Makefile) -> FAILED, exit code 2\n\
                     summary: unavailable (exit code 2)\n--- output ---\nchecking\n"
                ),
                "{}",
                obs.output
            );
            assert!(
                obs.output.contains("[stderr]\nmake: *** [Makefile:"),
                "{}",
                obs.output
            );
        }
    }

    #[tokio::test]
    async fn passing_make_project() {
        let dir = tempfile::tempdir().unwrap();
        make_project(dir.path(), "\t@echo '3 passing'\n");
        let ctx = ctx(dir.path());
        let obs = TestRunTool.execute(&ctx, json!({})).await;
        assert_eq!(obs.status, ExecStatus::Ok);
        assert_eq!(obs.exit_code, Some(0));
        assert_eq!(
            obs.output,
            "test_run: make test (detected from Makefile) -> passed\n\
             summary: 0 failed, 3 passed\n--- output ---\n3 passing\n"
        );
    }

    #[tokio::test]
    async fn npm_project_with_node_test_runner() {
        let npm_ok = std::process::Command::new("npm")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !npm_ok {
            eprintln!("npm not installed: skipping the npm end-to-end test");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("package.json"),
            r#"{"name":"t","version":"1.0.0","scripts":{"test":"node --test"}}"#,
        )
        .unwrap();
        std::fs::create_dir(p.join("test")).unwrap();
        std::fs::write(
            p.join("test/a.test.js"),
            "const test = require('node:test'); const assert = require('assert');\n\
             test('adds', () => assert.strictEqual(1 + 1, 2));\n\
             test('fails badly', () => assert.strictEqual(1, 2));\n",
        )
        .unwrap();
        let obs = TestRunTool.execute(&ctx(p), json!({})).await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert!(
            obs.output.starts_with(
                "test_run: npm test --silent (detected from package.json) -> FAILED, exit code 1\n\
                 summary: 1 failed, 1 passed\nfailing:\n  fails badly\n--- output ---\n"
            ),
            "{}",
            obs.output
        );
    }

    #[tokio::test]
    async fn nothing_detected_names_what_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let obs = TestRunTool.execute(&ctx(dir.path()), json!({})).await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert!(
            obs.output.contains("no test setup found in `.`"),
            "{}",
            obs.output
        );
        assert!(obs.output.contains("Cargo.toml") && obs.output.contains("Makefile"));
    }

    #[tokio::test]
    async fn explicit_framework_timeout_and_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        make_project(dir.path(), "\t@echo started\n\tsleep 30\n");
        let ctx = ctx(dir.path());
        let obs = TestRunTool
            .execute(&ctx, json!({"framework": "make", "timeout_secs": 1}))
            .await;
        assert_eq!(obs.status, ExecStatus::Timeout);
        assert!(
            obs.output.starts_with(
                "test_run: make test (framework requested) -> TIMED OUT after 1s; process group killed\n"
            ),
            "{}",
            obs.output
        );
        let obs = TestRunTool
            .execute(&ctx, json!({"framework": "maven"}))
            .await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert!(obs.output.contains("maven"), "{}", obs.output);
        let obs = TestRunTool.execute(&ctx, json!({"path": "../.."})).await;
        assert_eq!(obs.status, ExecStatus::Error);
        assert!(obs.output.contains("invalid path"), "{}", obs.output);
    }
}
