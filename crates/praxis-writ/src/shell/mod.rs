//! Compound-shell matcher: which commands does a shell line run, and does a writ allow them?
//!
//! A writ says e.g. `allow_commands = ["ls *", "cargo *"]`, `deny_commands = ["rm *"]`.
//! A model may propose any bash line, so the line is parsed with a real bash parser
//! (`brush-parser`) and EVERY simple command it can run is judged; a line that cannot be
//! parsed is denied.
//!
//! What counts as a command: every simple command in pipelines, `&&`, `||`, `;`, `&`,
//! subshells `( )`, groups `{ }`, `if`/`while`/`until`/`for`/`case` bodies and conditions,
//! function bodies, `coproc`, `$(...)` and backtick command substitutions anywhere in a word
//! (also inside double quotes, assignments, redirection targets, `[[ ]]` tests, arithmetic,
//! unquoted here-doc bodies), `<(...)`/`>(...)` process substitutions, and the script of
//! `bash`/`sh`/`zsh`/`dash`/`ksh`/`ash`/`mksh -c '...'`, parsed recursively. Each command is
//! its words with quotes removed, joined by single spaces (`'rm' -rf x` is `rm -rf x`);
//! words containing expansions keep their source text (`rm $f`). Commands are listed in the
//! order bash starts them: substitutions before the command whose words contain them.
//!
//! Security rules:
//! - A command whose name is dynamic (`$CMD x`, `$(echo rm) x`, `$'\x72m'`, an unquoted glob
//!   or brace expansion such as `/bin/r?` or `{rm,x}`) cannot be judged: error.
//! - Wrappers report both themselves and the wrapped command, so deny patterns on the inner
//!   command still bite: `exec`, `command`, `builtin`, `env`, `nice`, `timeout`, `xargs`,
//!   `sudo`, `doas`, `nohup`, `time`, `setsid`, `stdbuf` (`timeout 5 rm x` yields
//!   `timeout 5 rm x` and `rm x`), and `find ... -exec CMD ... ;`. A wrapper option this module
//!   does not know, a dynamic word before the wrapped command, or `env -S` is an error: a
//!   misread option could hide the real command.
//! - `eval ARGS` is reported as-is (a writ must allow `eval *` explicitly); when its
//!   arguments are static they are also parsed as a script and their commands reported.
//! - Here-doc bodies are data, not commands (`cat <<EOF` is `cat`), except that command
//!   substitutions in an unquoted-delimiter body do run, and a shell reading its script from
//!   stdin (`bash <<EOF`, `sh <<< '...'`) runs the body: it is parsed as a script.
//! - Redirections are not part of the command text (`echo hi > out` is `echo hi`), but
//!   substitutions in redirection targets are commands.
//! - Quoted operators are not operators: `echo "a; rm x"` is one command `echo a; rm x`.
//! - Assignments before a command are not part of its text (`FOO=1 cargo test` is
//!   `cargo test`), but substitutions in them are commands.
//! - A `$(` or backtick inside a parameter expansion or arithmetic text that cannot be
//!   resolved to a substitution is an error, as are parse errors, unterminated quotes and
//!   nesting deeper than [`MAX_DEPTH`].
//! - Deny patterns are also tried against the command with its name's directory stripped
//!   (`/bin/rm x` is denied by `rm *`); allow patterns see the text as written.
//!
//! Known limits: values of variables are unknown, so e.g. an arithmetic context that
//! evaluates a variable holding `a[$(cmd)]` is not seen; scripts run by name (`./x.sh`,
//! `source x`), interpreters' own `-c`/`-e` flags (`python -c`) and programs that run
//! commands from their arguments (`git -c core.pager=...`) are reported only as themselves,
//! so a writ should not allow such programs with `*` when that matters.


mod walker;
mod wrappers;

#[cfg(test)]
mod tests;

use walker::Walker;

/// Deepest nesting of recursive parses (`bash -c`, substitutions, `eval`) accepted.
pub const MAX_DEPTH: usize = 16;

/// Every simple command in a shell line (pipelines, `&&`, `||`, `;`, `&`, subshells `( )`,
/// groups `{ }`, if/while/for/case bodies and conditions, function bodies, `$(...)` and
/// backtick command substitutions anywhere in words (including inside double quotes and
/// assignments), `<(...)` `>(...)` process substitutions, and the argument of
/// `bash -c`/`sh -c`/`zsh -c`/`dash -c` parsed recursively), each as its words joined by
/// single spaces, e.g. "rm -rf x", in the order bash starts them. Words are given with quotes
/// removed (so `'rm' -rf x` is "rm -rf x"). Unparseable => Err(reason).
pub fn commands_in(line: &str) -> Result<Vec<String>, String> {
    let mut walker = Walker::default();
    walker.script(line, 0)?;
    Ok(walker.out)
}

/// Ok(()) when EVERY command of `line` matches at least one `allow` pattern (an empty allow
/// list allows every command) and none matches a `deny` pattern; Err(reason naming the
/// offending command and, for a deny, the pattern). Patterns are globs over the command text
/// where `*` matches any run of characters (including none and spaces) and everything else is
/// literal; a pattern ending in " *" also matches the bare command without arguments ("ls *"
/// matches "ls").
pub fn check_command(line: &str, allow: &[String], deny: &[String]) -> Result<(), String> {
    let commands =
        commands_in(line).map_err(|e| format!("shell line {line:?} cannot be judged: {e}"))?;
    // Denials first, across the whole line: they are the more useful reason to report.
    for command in &commands {
        let stripped = strip_name_dir(command);
        if let Some(pattern) = deny
            .iter()
            .find(|p| pattern_matches(p, command) || pattern_matches(p, &stripped))
        {
            return Err(format!(
                "command `{command}` is denied by pattern `{pattern}`"
            ));
        }
    }
    for command in &commands {
        if !allow.is_empty() && !allow.iter().any(|p| pattern_matches(p, command)) {
            return Err(format!(
                "command `{command}` matches no allowed pattern ({})",
                allow.join(", ")
            ));
        }
    }
    Ok(())
}

/// Glob match where `*` is any run of characters and a trailing " *" is optional.
fn pattern_matches(pattern: &str, text: &str) -> bool {
    if glob(pattern, text) {
        return true;
    }
    match pattern.strip_suffix(" *") {
        Some(bare) => glob(bare, text),
        None => false,
    }
}

/// Anchored wildcard match; iterative with single backtrack point (linear-ish, no recursion).
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `/usr/bin/rm -rf x` -> `rm -rf x`, so deny patterns cannot be dodged with a path.
fn strip_name_dir(command: &str) -> String {
    let (name, rest) = match command.split_once(' ') {
        Some((n, r)) => (n, Some(r)),
        None => (command, None),
    };
    let base = name.rsplit('/').next().unwrap_or(name);
    match rest {
        Some(r) => format!("{base} {r}"),
        None => base.to_string(),
    }
}
