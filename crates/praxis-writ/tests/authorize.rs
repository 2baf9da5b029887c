mod common;

use common::*;
use praxis_core::{Authorization, Effect, Spent};
use praxis_writ::{Rules, WritSpec};

fn rules(toml: &str) -> Rules {
    let s = WritSpec::from_toml_str(toml)
        .unwrap()
        .resolved(now())
        .unwrap();
    Rules::new(vec![s]).unwrap()
}

const WRIT: &str = r#"
subject = "agent-1"
expires_in = "1h"
effect_ceiling = "exec"
[budget]
tool_calls = 20
model_calls = 30
model_tokens = 1000
wall_seconds = 600
usd = 1.0
bytes_written = 4096
[[tools]]
name = "fs_read"
paths = ["**"]
mode = "read"
[[tools]]
name = "fs_write"
paths = ["src/**", "README.md"]
[[tools]]
name = "shell"
allow_commands = ["ls *", "cat *", "cargo *"]
deny_commands = ["rm *"]
[[tools]]
name = "http"
hosts = ["api.example.com", "*.cdn.net"]
[[tools]]
name = "fetch"
[approvals]
effects = ["exec"]
timeout_seconds = 120
"#;

#[test]
fn decision_table() {
    let r = rules(WRIT);
    let none = Spent::default();
    let table: Vec<(&str, Effect, Vec<praxis_core::Resource>, &str)> = vec![
        (
            "fs_read",
            Effect::Read,
            vec![read("src/main.rs")],
            "allow:writ",
        ),
        ("fs_read", Effect::Read, vec![read(".")], "allow:writ"),
        (
            "fs_read",
            Effect::Read,
            vec![read("../etc/passwd")],
            "deny:writ.paths",
        ),
        (
            "fs_read",
            Effect::Read,
            vec![read("/etc/passwd")],
            "deny:writ.paths",
        ),
        (
            "fs_read",
            Effect::Write,
            vec![write("a.txt")],
            "deny:writ.paths",
        ),
        (
            "fs_write",
            Effect::Write,
            vec![write("src/a/b.rs")],
            "allow:writ",
        ),
        (
            "fs_write",
            Effect::Write,
            vec![write("README.md")],
            "allow:writ",
        ),
        (
            "fs_write",
            Effect::Write,
            vec![write("docs/README.md")],
            "deny:writ.paths",
        ),
        (
            "fs_write",
            Effect::Write,
            vec![write("srcx/a.rs")],
            "deny:writ.paths",
        ),
        (
            "fs_write",
            Effect::Write,
            vec![read("src/a.rs"), write("Cargo.toml")],
            "deny:writ.paths",
        ),
        ("git", Effect::Read, vec![], "deny:writ.tools"),
        (
            "shell",
            Effect::Exec,
            vec![cmd("ls -la")],
            "needs_approval:writ.approvals",
        ),
        (
            "shell",
            Effect::Exec,
            vec![cmd("ls")],
            "needs_approval:writ.approvals",
        ),
        (
            "shell",
            Effect::Exec,
            vec![cmd("cargo test && rm -rf target")],
            "deny:writ.commands",
        ),
        (
            "shell",
            Effect::Exec,
            vec![cmd("cat x | sh -c 'rm y'")],
            "deny:writ.commands",
        ),
        (
            "shell",
            Effect::Exec,
            vec![cmd("ls $(python evil.py)")],
            "deny:writ.commands",
        ),
        (
            "shell",
            Effect::Exec,
            vec![cmd("ls 'unterminated")],
            "deny:writ.commands",
        ),
        (
            "shell",
            Effect::Exec,
            vec![cmd("echo hi")],
            "deny:writ.commands",
        ),
        (
            "http",
            Effect::Network,
            vec![host("api.example.com")],
            "deny:writ.effect_ceiling",
        ),
        (
            "http",
            Effect::Exec,
            vec![host("api.example.com")],
            "needs_approval:writ.approvals",
        ),
        (
            "http",
            Effect::Read,
            vec![host("API.example.com")],
            "allow:writ",
        ),
        (
            "http",
            Effect::Read,
            vec![host("x.y.cdn.net")],
            "allow:writ",
        ),
        (
            "http",
            Effect::Read,
            vec![host("cdn.net")],
            "deny:writ.hosts",
        ),
        (
            "http",
            Effect::Read,
            vec![host("evil.com")],
            "deny:writ.hosts",
        ),
        (
            "fetch",
            Effect::Read,
            vec![host("api.example.com")],
            "deny:writ.hosts",
        ),
    ];
    for (tool, effect, res, want) in table {
        let got = ask(&r, tool, effect, &res, &none);
        assert_eq!(rule_of(&got), want, "{tool} {effect:?} {res:?}: {got:?}");
    }
}

#[test]
fn each_budget_is_exhausted_with_its_rule() {
    let r = rules(WRIT);
    let cases = [
        (
            Spent {
                tool_calls: 19,
                ..Default::default()
            },
            "allow:writ",
        ),
        (
            Spent {
                tool_calls: 20,
                ..Default::default()
            },
            "exhausted:writ.budget.tool_calls",
        ),
        (
            Spent {
                bytes_written: 4095,
                ..Default::default()
            },
            "allow:writ",
        ),
        (
            Spent {
                bytes_written: 4096,
                ..Default::default()
            },
            "exhausted:writ.budget.bytes_written",
        ),
        (
            Spent {
                wall_ms: 599_999,
                ..Default::default()
            },
            "allow:writ",
        ),
        (
            Spent {
                wall_ms: 600_000,
                ..Default::default()
            },
            "exhausted:writ.budget.wall_seconds",
        ),
        (
            Spent {
                usd_micros: 999_999,
                ..Default::default()
            },
            "allow:writ",
        ),
        (
            Spent {
                usd_micros: 1_000_000,
                ..Default::default()
            },
            "exhausted:writ.budget.usd",
        ),
        (
            Spent {
                model_tokens: 1000,
                ..Default::default()
            },
            "exhausted:writ.budget.model_tokens",
        ),
    ];
    for (spent, want) in cases {
        let got = ask(&r, "fs_read", Effect::Read, &[read("a")], &spent);
        assert_eq!(rule_of(&got), want, "{spent:?}");
    }
    let Authorization::Exhausted { reason, .. } = ask(
        &r,
        "fs_read",
        Effect::Read,
        &[read("a")],
        &Spent {
            tool_calls: 20,
            ..Default::default()
        },
    ) else {
        panic!("expected exhausted")
    };
    assert!(reason.contains("limit 20, spent 20"), "{reason}");
    // A denial wins over an exhausted budget.
    let got = ask(
        &r,
        "git",
        Effect::Read,
        &[],
        &Spent {
            tool_calls: 99,
            ..Default::default()
        },
    );
    assert_eq!(rule_of(&got), "deny:writ.tools");

    let model = [
        (
            Spent {
                model_calls: 29,
                ..Default::default()
            },
            "allow:writ",
        ),
        (
            Spent {
                model_calls: 30,
                ..Default::default()
            },
            "exhausted:writ.budget.model_calls",
        ),
        (
            Spent {
                model_tokens: 1000,
                ..Default::default()
            },
            "exhausted:writ.budget.model_tokens",
        ),
        (
            Spent {
                usd_micros: 1_000_000,
                ..Default::default()
            },
            "exhausted:writ.budget.usd",
        ),
        (
            Spent {
                wall_ms: 600_000,
                ..Default::default()
            },
            "exhausted:writ.budget.wall_seconds",
        ),
        (
            Spent {
                tool_calls: 1000,
                ..Default::default()
            },
            "allow:writ",
        ),
    ];
    for (spent, want) in model {
        assert_eq!(
            rule_of(&r.before_model_call(now_ms(), &spent)),
            want,
            "{spent:?}"
        );
    }
}

#[test]
fn time_window_and_approvals() {
    let r = rules(WRIT);
    let none = Spent::default();
    let late = now_ms() + 3600 * 1000;
    assert_eq!(
        rule_of(&ask_at(
            &r,
            "fs_read",
            Effect::Read,
            &[read("a")],
            &none,
            late
        )),
        "deny:writ.time_window"
    );
    assert_eq!(
        rule_of(&r.before_model_call(late, &none)),
        "deny:writ.time_window"
    );
    assert_eq!(rule_of(&r.before_model_call(late - 1, &none)), "allow:writ");
    assert_eq!(r.approval_timeout_ms(), Some(120_000));

    let by_tool = rules(
        "subject = \"a\"\nexpires_in = \"1h\"\neffect_ceiling = \"write\"\n[[tools]]\nname = \"fs_write\"\n[approvals]\ntools = [\"fs_write\"]\n",
    );
    let got = ask(&by_tool, "fs_write", Effect::Write, &[write("x")], &none);
    assert_eq!(rule_of(&got), "needs_approval:writ.approvals");
    assert!(got_reason(&got).contains("fs_write"));
    assert_eq!(by_tool.approval_timeout_ms(), None);
}

fn got_reason(a: &Authorization) -> String {
    match a {
        Authorization::Verdict(v) => v.reason().to_string(),
        Authorization::Exhausted { reason, .. } => reason.clone(),
    }
}

#[test]
fn every_block_must_allow_and_the_smallest_timeout_wins() {
    let wide = WritSpec::from_toml_str(WRIT)
        .unwrap()
        .resolved(now())
        .unwrap();
    let narrow = WritSpec::from_toml_str(
        "subject = \"b\"\nexpires_in = \"10m\"\neffect_ceiling = \"write\"\n[[tools]]\nname = \"fs_write\"\npaths = [\"src/x/**\"]\n[approvals]\ntimeout_seconds = 30\n",
    )
    .unwrap()
    .resolved(now())
    .unwrap();
    let r = Rules::new(vec![wide, narrow]).unwrap();
    let none = Spent::default();
    assert_eq!(
        rule_of(&ask(
            &r,
            "fs_write",
            Effect::Write,
            &[write("src/x/a.rs")],
            &none
        )),
        "allow:writ"
    );
    let denied = ask(&r, "fs_write", Effect::Write, &[write("src/y.rs")], &none);
    assert_eq!(rule_of(&denied), "deny:writ.paths");
    assert!(got_reason(&denied).contains("block 1"), "{denied:?}");
    assert_eq!(
        rule_of(&ask(&r, "fs_read", Effect::Read, &[read("a")], &none)),
        "deny:writ.tools"
    );
    assert_eq!(
        rule_of(&ask_at(
            &r,
            "fs_write",
            Effect::Write,
            &[write("src/x/a.rs")],
            &none,
            now_ms() + 600_000
        )),
        "deny:writ.time_window"
    );
    assert_eq!(r.approval_timeout_ms(), Some(30_000));
}

/// Finding 8 of the adversarial review: a write into `.git/hooks` ran unconfined at the
/// user's next commit. `**` does not reach into a `.git` directory for writing; a pattern
/// naming `.git` does, and reading stays as granted.
#[test]
fn writing_into_git_needs_a_pattern_naming_it() {
    let none = Spent::default();
    let broad = rules(
        r#"
subject = "agent-1"
expires_in = "1h"
effect_ceiling = "exec"
[[tools]]
name = "fs_write"
paths = ["**"]
[[tools]]
name = "fs_read"
paths = ["**"]
"#,
    );
    for path in [
        ".git/hooks/pre-commit",
        ".git/config",
        "sub/.git/hooks/post-merge",
    ] {
        let got = ask(&broad, "fs_write", Effect::Write, &[write(path)], &none);
        assert_eq!(rule_of(&got), "deny:writ.paths", "{path}: {got:?}");
    }
    for (tool, effect, res) in [
        ("fs_write", Effect::Write, write("src/.gitignore")),
        ("fs_write", Effect::Write, write("git/x")),
        ("fs_read", Effect::Read, read(".git/config")),
    ] {
        let got = ask(&broad, tool, effect, std::slice::from_ref(&res), &none);
        assert_eq!(rule_of(&got), "allow:writ", "{res:?}: {got:?}");
    }
    let granted = rules(
        r#"
subject = "agent-1"
expires_in = "1h"
effect_ceiling = "exec"
[[tools]]
name = "fs_write"
paths = ["src/**", ".git/hooks/**"]
"#,
    );
    let got = ask(
        &granted,
        "fs_write",
        Effect::Write,
        &[write(".git/hooks/pre-commit")],
        &none,
    );
    assert_eq!(rule_of(&got), "allow:writ", "{got:?}");
    let got = ask(
        &granted,
        "fs_write",
        Effect::Write,
        &[write(".git/config")],
        &none,
    );
    assert_eq!(rule_of(&got), "deny:writ.paths", "{got:?}");
}
