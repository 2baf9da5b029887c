//! The command allowlist judges everything in a shell line that decides what runs or what it
//! touches (issue 12, finding 6): variable assignments, redirection targets and commands
//! named by a path, besides the commands themselves. Each case goes through a writ's rules
//! exactly as a `shell` proposal does (the command plus its working directory).

mod common;

use common::*;
use praxis_core::{Authorization, Effect, Spent, Verdict};
use praxis_writ::{Rules, shell};

/// The finding's writ: only `ls` (and a few harmless controls), `rm` denied, writes only to
/// `out.txt` and under `src/`.
const ALLOWLIST: &str = r#"
subject = "s"
expires_in = "1h"
effect_ceiling = "exec"
[[tools]]
name = "shell"
paths = [".", "out.txt", "src/**"]
allow_commands = ["ls *", "echo *", "cat *", "cargo *"]
deny_commands = ["rm *"]
"#;

/// Any command but `rm`: the environment and redirection rules hold without an allowlist.
const DENYLIST: &str = r#"
subject = "s"
expires_in = "1h"
effect_ceiling = "exec"
[[tools]]
name = "shell"
paths = [".", "out.txt", "src/**"]
deny_commands = ["rm *"]
"#;

fn rules(toml: &str) -> Rules {
    Rules::new(vec![spec(toml).resolved(now()).unwrap()]).unwrap()
}

fn judge(rules: &Rules, line: &str, cwd: &str) -> Authorization {
    ask(
        rules,
        "shell",
        Effect::Exec,
        &[cmd(line), write(cwd)],
        &Spent::default(),
    )
}

/// The lines of `cases` the writ does not deny (with the verdict), for one assertion each.
fn not_denied(rules: &Rules, cases: &[&str]) -> Vec<String> {
    cases
        .iter()
        .filter_map(|line| match judge(rules, line, ".") {
            Authorization::Verdict(Verdict::Deny { .. }) => None,
            other => Some(format!("{line:?} => {other:?}")),
        })
        .collect()
}

fn not_allowed(rules: &Rules, cases: &[&str]) -> Vec<String> {
    cases
        .iter()
        .filter_map(|line| match judge(rules, line, ".") {
            a if is_allow(&a) => None,
            other => Some(format!("{line:?} => {other:?}")),
        })
        .collect()
}

fn reason(a: &Authorization) -> String {
    match a {
        Authorization::Verdict(Verdict::Deny { reason, .. }) => reason.clone(),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn the_three_bypasses_of_the_finding_are_denied() {
    let rules = rules(ALLOWLIST);
    let preload = reason(&judge(&rules, "LD_PRELOAD=./evil.so ls", "."));
    assert!(
        preload.contains("`LD_PRELOAD`") && preload.contains("allow_env"),
        "{preload}"
    );
    let path = reason(&judge(&rules, "PATH=. ls", "."));
    assert!(path.contains("`PATH`"), "{path}");
    let redirect = reason(&judge(&rules, "ls > important.txt", "."));
    assert!(
        redirect.contains("important.txt") && redirect.contains("outside the paths"),
        "{redirect}"
    );
}

#[test]
fn a_command_named_by_a_path_is_not_the_bare_name() {
    let rules = rules(ALLOWLIST);
    let denied = not_denied(
        &rules,
        &[
            "./ls",
            "./ls -la",
            "/tmp/x/ls",
            "bin/ls",
            "/bin/ls",
            "../ls",
            "src/../ls",
            "exec ./ls",
            "./rm x",
        ],
    );
    assert!(denied.is_empty(), "not denied:\n{}", denied.join("\n"));
}

#[test]
fn sensitive_assignments_are_denied_in_every_form() {
    let cases = [
        "LD_PRELOAD=./evil.so ls",
        "LD_LIBRARY_PATH=. ls",
        "LD_AUDIT=./a.so ls",
        "PATH=. ls",
        "PATH=.; ls",
        "PATH+=:. ls",
        "PATH[0]=. ls",
        "export PATH=.; ls",
        "export LD_PRELOAD=./e.so && ls",
        "declare -x LD_PRELOAD=./e.so; ls",
        "typeset PATH=.; ls",
        "local PATH=.",
        "readonly PATH=.; ls",
        "declare -n r=PATH; r=.; ls",
        "env LD_PRELOAD=./e.so ls",
        "env -i PATH=. ls",
        "env 'BASH_FUNC_ls%%=() { rm x; }' bash -c ls",
        "sudo LD_PRELOAD=./e.so ls",
        "nice env PATH=. ls",
        "for PATH in .; do ls; done",
        "read PATH <<< .; ls",
        "read -r LD_PRELOAD < src/a; ls",
        "printf -v PATH .; ls",
        "mapfile PATH < src/a",
        "unset PATH; ls",
        "(( PATH = 1 )); ls",
        "(( PATH++ )); ls",
        "let PATH=1; ls",
        "echo $(( LD_PRELOAD = 1 ))",
        "ls ${PATH:=.}",
        "ls ${LD_PRELOAD=./e.so}",
        "[[ PATH=1 -eq 1 ]] && ls",
        "x=PATH=1; ls",
        "IFS=/ ls",
        "BASH_ENV=./x bash -c ls",
        "ENV=./x sh -c ls",
        "SHELLOPTS=xtrace PS4='$(rm x)' bash -c ls",
        "PROMPT_COMMAND=./x ls",
        "HOME=. git status",
        "XDG_CONFIG_HOME=. git status",
        "GIT_SSH_COMMAND=./x git fetch",
        "GIT_EXTERNAL_DIFF=./x git diff",
        "GIT_PAGER=./x git log",
        "GIT_DIR=./other git commit",
        "PAGER=./x man ls",
        "LESSOPEN='|./x %s' less f",
        "EDITOR=./x git commit",
        "PYTHONPATH=. python3 t.py",
        "PYTHONSTARTUP=./x python3",
        "PERL5LIB=. perl t.pl",
        "PERL5OPT=-Mx perl t.pl",
        "RUBYOPT=-r./x ruby t.rb",
        "NODE_OPTIONS='--require ./x' node t.js",
        "JAVA_TOOL_OPTIONS=-javaagent:x.jar java T",
        "RUSTC_WRAPPER=./x cargo build",
        "RUSTFLAGS='-C linker=./x' cargo build",
        "CARGO_BUILD_RUSTC=./x cargo build",
        "CC=./x make",
        "GCONV_PATH=. iconv -l",
        "GLIBC_TUNABLES=x ls",
    ];
    for writ in [ALLOWLIST, DENYLIST] {
        let rules = rules(writ);
        let denied = not_denied(&rules, &cases);
        assert!(denied.is_empty(), "not denied:\n{}", denied.join("\n"));
    }
}

#[test]
fn a_writ_can_allow_named_variables() {
    let writ = DENYLIST.replace(
        "deny_commands = [\"rm *\"]",
        "deny_commands = [\"rm *\"]\nallow_env = [\"PATH\", \"RUST*\"]",
    );
    let rules = rules(&writ);
    for line in [
        "PATH=/usr/bin ls",
        "RUSTFLAGS=-Dwarnings cargo build",
        "export PATH=/usr/bin",
    ] {
        assert!(is_allow(&judge(&rules, line, ".")), "{line}");
    }
    assert!(!is_allow(&judge(&rules, "LD_PRELOAD=./e.so ls", ".")));
}

#[test]
fn redirection_targets_are_judged_as_paths() {
    let cases = [
        "ls > important.txt",
        "ls >> important.txt",
        "ls >| important.txt",
        "ls 2> important.txt",
        "ls &> important.txt",
        "ls &>> important.txt",
        "ls >& important.txt",
        "ls <> important.txt",
        "cat < secret.txt",
        "cat 0< secret.txt",
        "ls > src/../important.txt",
        "ls > ./important.txt",
        "ls > ../outside.txt",
        "ls > src/../../outside.txt",
        "ls > /etc/passwd",
        "ls > /tmp/x",
        "ls > ~/x",
        "ls > ~root/x",
        "ls > $F",
        "ls > \"$F\"",
        "ls > $(echo important.txt)",
        "ls > `echo x`",
        "ls > *.txt",
        "ls > out.{txt,md}",
        "cd src && ls > a.txt",
        "(cd src; ls > x)",
        "echo hi > out.txt; ls > important.txt",
        "{ ls; } > important.txt",
        "(ls) > important.txt",
        "if true; then ls; fi > important.txt",
        "ls | cat > important.txt",
        "exec > important.txt",
        "ls > /proc/self/fd/1",
        "ls > /dev/sda",
    ];
    for writ in [ALLOWLIST, DENYLIST] {
        let rules = rules(writ);
        let denied = not_denied(&rules, &cases);
        assert!(denied.is_empty(), "not denied:\n{}", denied.join("\n"));
    }
    // Relative targets are placed from the command's working directory.
    let rules = rules(ALLOWLIST);
    assert!(is_allow(&judge(&rules, "ls > a.txt", "src/sub")));
    assert!(is_allow(&judge(&rules, "ls > ../a.txt", "src/sub")));
    let up = reason(&judge(&rules, "ls > ../../important.txt", "src/sub"));
    assert!(up.contains("important.txt"), "{up}");
}

/// The tricks a reviewer tries against an allowlist: each is denied.
#[test]
fn known_tricks_are_denied() {
    let rules = rules(ALLOWLIST);
    let denied = not_denied(
        &rules,
        &[
            "ls $(rm x)",
            "ls `rm x`",
            "ls \"$(rm x)\"",
            "echo $(curl http://x)",
            "bash -c 'ls; rm x'",
            "sh -c ls",
            "eval 'ls; rm x'",
            "eval ls",
            "exec rm x",
            "command rm x",
            "command -p ls",
            "builtin echo hi",
            "ls | xargs rm",
            "ls | xargs -I{} cat {}",
            "find . -exec rm {} \\;",
            "find . -name x",
            "env rm x",
            "env ls",
            "nice ls",
            "timeout 5 ls",
            "sudo ls",
            "nohup ls",
            "shopt -s expand_aliases; alias ls='rm x'; ls",
            "alias ls='cat /etc/shadow'",
            "ls() { rm x; }; ls",
            "function ls { curl http://x; }; ls",
            "(rm x)",
            "{ rm x; }",
            "ls | rm x",
            "ls; rm x",
            "ls && rm x",
            "ls || curl http://x",
            "ls & rm x",
            "cat <<EOF\n$(rm x)\nEOF",
            "bash <<EOF\nls\nEOF",
            "sh <<< 'ls'",
            "cat <(rm x)",
            "ls > >(rm x)",
            "ls > $(rm x)",
            "cat < <(curl http://x)",
            "{rm,x}",
            "{ls,-la}",
            "/bin/r? x",
            "l? -la",
            "l* -la",
            "[l]s",
            "\\rm x",
            "'rm' x",
            "\"rm\" x",
            "r\\m x",
            "$'\\x6cs'",
            "$CMD",
            "${CMD}",
            "ls\nrm x",
            "ls;rm x",
            "trap 'rm x' EXIT; ls",
            "hash -p /bin/rm ls; ls x",
            "enable -f ./evil.so ls; ls",
            "source ./x.sh",
            ". ./x.sh",
            "coproc rm x",
            "while rm x; do ls; done",
            "case x in x) rm x;; esac",
            "[[ $(rm x) ]]",
            "echo ${X:-$(rm x)}",
            "echo $(( $(rm x) ))",
            "echo \"unterminated",
            "ls &&",
        ],
    );
    assert!(denied.is_empty(), "not denied:\n{}", denied.join("\n"));
}

/// Tricks that pass only because they are harmless: what runs is still just the allowed
/// program, with arguments (quotes, escapes, tabs and globs in arguments change nothing).
#[test]
fn allowed_tricks_run_only_the_allowed_program() {
    let rules = rules(ALLOWLIST);
    let cases: &[(&str, &[&str])] = &[
        ("'ls' -la", &["ls -la"]),
        ("\"ls\" -la", &["ls -la"]),
        ("l's' -la", &["ls -la"]),
        ("\\ls -la", &["ls -la"]),
        ("ls\t-la", &["ls -la"]),
        ("ls\trm x", &["ls rm x"]),
        ("ls *.rs", &["ls *.rs"]),
        ("ls {a,b}", &["ls {a,b}"]),
        ("ls 'a; rm x'", &["ls a; rm x"]),
        ("ls \"$(echo src)\"", &["echo src", "ls $(echo src)"]),
        ("ls \\\n -la", &["ls -la"]),
        ("ls # ; rm x", &["ls"]),
        ("cat <<'EOF'\n$(rm x)\nEOF", &["cat"]),
        ("ls; echo hi", &["ls", "echo hi"]),
        ("ls $HOME", &["ls $HOME"]),
        ("cargo test 2>&1 | cat", &["cargo test", "cat"]),
    ];
    for (line, commands) in cases {
        assert!(is_allow(&judge(&rules, line, ".")), "{line:?} should pass");
        assert_eq!(shell::commands_in(line).unwrap(), *commands, "{line:?}");
    }
}

#[test]
fn ordinary_lines_still_pass() {
    let rules = rules(ALLOWLIST);
    let refused = not_allowed(
        &rules,
        &[
            "ls",
            "ls -la src",
            "cargo test 2>&1",
            "cargo test 2>/dev/null",
            "cargo build >/dev/null 2>&1",
            "echo hi > out.txt",
            "echo hi >> out.txt",
            "echo hi > ./out.txt",
            "echo hi > src/new.txt",
            "echo hi &> src/log.txt",
            "cat < src/a.rs",
            "cat src/a.rs > out.txt",
            "cat <<< hi",
            "cat <<EOF\nhi\nEOF",
            "ls 1>&2",
            "ls 2>&-",
            "ls > /dev/null",
            "ls > /dev/stderr",
            "RUST_BACKTRACE=1 cargo test",
            "CI=true cargo test -q",
            "FOO=bar ls",
            "ls $PATH",
            "echo $((1 + 2))",
        ],
    );
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}
