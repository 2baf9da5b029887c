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
