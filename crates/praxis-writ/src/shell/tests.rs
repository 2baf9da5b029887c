use super::*;

fn cmds(line: &str) -> Vec<String> {
    match commands_in(line) {
        Ok(c) => c,
        Err(e) => panic!("{line:?} should parse: {e}"),
    }
}

fn pats(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

#[test]
fn command_table() {
    let table: &[(&str, &[&str])] = &[
        ("ls; rm -rf x", &["ls", "rm -rf x"]),
        (
            "echo $(curl http://x)",
            &["curl http://x", "echo $(curl http://x)"],
        ),
        ("a && b || c", &["a", "b", "c"]),
        ("a | b & c", &["a", "b", "c"]),
        (
            "bash -c 'ls && rm -rf /'",
            &["bash -c ls && rm -rf /", "ls", "rm -rf /"],
        ),
        (
            "sh -c \"cat x | rm y\"",
            &["sh -c cat x | rm y", "cat x", "rm y"],
        ),
        ("bash -ec 'rm x'", &["bash -ec rm x", "rm x"]),
        ("cat <<EOF\nrm -rf /\nEOF", &["cat"]),
        ("cat <<'EOF'\n$(rm x)\nEOF", &["cat"]),
        ("cat <<EOF\n$(rm x)\nEOF", &["rm x", "cat"]),
        ("bash <<EOF\nrm -rf /\nEOF", &["bash", "rm -rf /"]),
        ("sh <<< 'rm y'", &["sh", "rm y"]),
        ("echo \"a; rm -rf /\"", &["echo a; rm -rf /"]),
        ("echo \"a && b; rm x\"", &["echo a && b; rm x"]),
        ("'rm' -rf x", &["rm -rf x"]),
        ("\\rm x", &["rm x"]),
        ("echo `rm x`", &["rm x", "echo `rm x`"]),
        (
            "echo $(echo $(rm x))",
            &["rm x", "echo $(rm x)", "echo $(echo $(rm x))"],
        ),
        (
            "echo \"in quotes $(rm q)\"",
            &["rm q", "echo in quotes $(rm q)"],
        ),
        ("(cd src && rm x)", &["cd src", "rm x"]),
        ("{ ls; rm x; }", &["ls", "rm x"]),
        ("for f in *; do rm $f; done", &["rm $f"]),
        ("for f in $(ls); do cat $f; done", &["ls", "cat $f"]),
        (
            "if true; then rm x; elif a; then b; else c; fi",
            &["true", "rm x", "a", "b", "c"],
        ),
        ("while read l; do echo $l; done", &["read l", "echo $l"]),
        ("case $x in a) rm a;; *) ls;; esac", &["rm a", "ls"]),
        ("f() { rm x; }; f", &["rm x", "f"]),
        ("timeout 5 rm x", &["timeout 5 rm x", "rm x"]),
        (
            "timeout -s KILL 5 rm x",
            &["timeout -s KILL 5 rm x", "rm x"],
        ),
        (
            "sudo -u root env A=1 rm x",
            &["sudo -u root env A=1 rm x", "env A=1 rm x", "rm x"],
        ),
        (
            "nice -n 5 xargs -0 rm",
            &["nice -n 5 xargs -0 rm", "xargs -0 rm", "rm"],
        ),
        ("exec rm x", &["exec rm x", "rm x"]),
        ("exec > log", &["exec"]),
        ("command rm x", &["command rm x", "rm x"]),
        (
            "nohup builtin rm x &",
            &["nohup builtin rm x", "builtin rm x", "rm x"],
        ),
        (
            "find . -name '*.o' -exec rm {} \\;",
            &["find . -name *.o -exec rm {} ;", "rm {}"],
        ),
        ("eval 'rm x'", &["eval rm x", "rm x"]),
        ("eval \"$X\"", &["eval $X"]),
        ("FOO=$(rm x) ls", &["rm x", "ls"]),
        ("FOO=1 cargo test", &["cargo test"]),
        ("FOO=$(rm x)", &["rm x"]),
        ("echo hi > out.txt 2>&1", &["echo hi"]),
        ("echo hi > $(rm x)", &["rm x", "echo hi"]),
        (
            "diff <(ls a) <(rm b)",
            &["ls a", "rm b", "diff <(ls a) <(rm b)"],
        ),
        ("echo ${X:-$(rm x)}", &["rm x", "echo ${X:-$(rm x)}"]),
        (
            "echo $(( 1 + $(rm x) ))",
            &["rm x", "echo $(( 1 + $(rm x) ))"],
        ),
        ("[[ -f $(rm x) ]] && ls", &["rm x", "ls"]),
        ("[ -f x ] && ls", &["[ -f x ]", "ls"]),
        ("ls # ; rm x", &["ls"]),
        ("export A=$(rm x)", &["rm x", "export A=$(rm x)"]),
        ("xargs -I{} rm {}", &["xargs -I{} rm {}", "rm {}"]),
        ("sudo -i", &["sudo -i"]),
        ("time rm x", &["rm x"]),
        ("! rm x", &["rm x"]),
        ("ls \"$(rm x)\" *.rs", &["rm x", "ls $(rm x) *.rs"]),
        ("bash script.sh <<EOF\nrm x\nEOF", &["bash script.sh"]),
        ("ls \\\n  -la", &["ls -la"]),
        ("", &[]),
    ];
    let mismatches: Vec<String> = table
        .iter()
        .filter(|(line, expected)| cmds(line) != pats(expected))
        .map(|(line, _)| format!("{line:?} => {:?}", cmds(line)))
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn unjudgeable_lines_are_errors() {
    for line in [
        "$CMD x",
        "$(echo rm) -rf x",
        "`echo rm` x",
        "\"$CMD\" x",
        "$'\\x72m' x",
        "/bin/r? x",
        "{rm,-rf,x}",
        "timeout 5 $CMD x",
        "sudo $OPTS rm x",
        "timeout --bogus 5 rm x",
        "env -S 'rm x'",
        "bash -c \"$SCRIPT\"",
        "echo \"unterminated",
        "echo 'unterminated",
        "echo $(rm x",
        "if true; then ls",
        "ls &&",
        "echo \"${X:-'$(rm x)'}\"",
    ] {
        assert!(commands_in(line).is_err(), "{line:?} should be an error");
        assert!(judge(line, &[], &[]).is_err(), "{line:?} should be denied");
    }
}

#[test]
fn nesting_is_bounded() {
    let mut line = "ls".to_string();
    for _ in 0..(MAX_DEPTH + 2) {
        line = format!("echo $({line})");
    }
    let err = commands_in(&line).unwrap_err();
    assert!(err.contains("nesting"), "{err}");
}

#[test]
fn patterns() {
    assert!(pattern_matches("ls *", "ls"));
    assert!(pattern_matches("ls *", "ls -la"));
    assert!(!pattern_matches("ls *", "lsblk"));
    assert!(!pattern_matches("ls *", "echo ls"));
    assert!(pattern_matches(
        "cargo * --release",
        "cargo build --release"
    ));
    assert!(!pattern_matches("cargo * --release", "cargo build"));
    assert!(pattern_matches("*", "anything at all"));
    assert!(pattern_matches("git status", "git status"));
    assert!(!pattern_matches("git status", "git status -s"));
    assert!(pattern_matches("a*b*c", "axxbyyc"));
    assert!(!pattern_matches("a*b*c", "axxbyy"));
    assert!(pattern_matches("ls [x]", "ls [x]"), "only * is special");
}

#[test]
fn allow_and_deny() {
    let allow = pats(&["ls *", "cat *", "cargo *", "echo *", "bash *", "timeout *"]);
    let deny = pats(&["rm *"]);
    let check = |line: &str| judge(line, &allow, &deny);

    assert_eq!(check("ls"), Ok(()));
    assert_eq!(check("ls -la && cat x | cargo test"), Ok(()));
    assert_eq!(check("echo \"a; rm -rf /\""), Ok(()));
    assert_eq!(check("cat <<EOF\nrm -rf /\nEOF"), Ok(()));

    let err = check("ls; rm -rf x").unwrap_err();
    assert!(
        err.contains("`rm -rf x`") && err.contains("`rm *`"),
        "{err}"
    );
    for line in [
        "echo $(rm x)",
        "bash -c 'ls && rm -rf /'",
        "timeout 5 rm x",
        "/bin/rm x",
        "(cd src && rm x)",
        "for f in *; do rm $f; done",
        "FOO=$(rm x) ls",
    ] {
        let err = check(line).unwrap_err();
        assert!(err.contains("denied by pattern `rm *`"), "{line}: {err}");
    }

    let err = check("ls && curl http://x").unwrap_err();
    assert!(
        err.contains("`curl http://x`") && err.contains("no allowed"),
        "{err}"
    );
    assert!(check("echo $(curl http://x)").is_err());
    assert!(
        check("$CMD x")
            .unwrap_err()
            .contains("computed at run time")
    );
    assert!(
        check("echo \"oops")
            .unwrap_err()
            .contains("cannot be judged")
    );

    // Deny wins over allow, even when allow is a catch-all.
    let err = judge("rm x", &pats(&["*"]), &deny).unwrap_err();
    assert!(err.contains("denied"), "{err}");
    // An empty allow list allows every command not denied.
    assert_eq!(judge("whoami; id", &[], &deny), Ok(()));
    assert!(judge("whoami; rm x", &[], &deny).is_err());
    // Allow sees the path as written: `/bin/ls` needs its own pattern.
    assert!(judge("/bin/ls", &pats(&["ls *"]), &[]).is_err());
}

/// Commands only: every redirection target is accepted, no variable is allowed.
fn judge(line: &str, allow: &[String], deny: &[String]) -> Result<(), String> {
    let rules = ShellRules {
        allow,
        deny,
        allow_env: &[],
    };
    check_command(line, &rules, ".", &|_, _| Ok(()))
}

#[test]
fn adjacent_parentheses_are_arithmetic_and_spaced_ones_are_subshells() {
    assert_eq!(commands_in("(( rm ))").unwrap(), Vec::<String>::new());
    assert_eq!(commands_in("( (rm -rf x) )").unwrap(), vec!["rm -rf x"]);
    assert_eq!(
        commands_in("echo a; ( ( ( rm ) ) )").unwrap(),
        vec!["echo a", "rm"]
    );
    assert_eq!(
        commands_in("bash -c '( ( rm ) )'").unwrap(),
        vec!["bash -c ( ( rm ) )", "rm"]
    );
}
