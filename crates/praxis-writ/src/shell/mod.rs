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
//!   (`/bin/rm x` is denied by `rm *`); allow patterns see the text as written, so a command
//!   named by a path (`./ls`, `bin/ls`, `/tmp/x/ls`) is not the bare name (`ls *`).
//!
//! Besides its commands, [`check_command`] judges what else decides what runs or what is
//! touched:
//! - Variables the line assigns (`LD_PRELOAD=x ls`, `PATH=. ls`, `export`, `declare`,
//!   `env X=1 cmd`, `sudo X=1 cmd`, `for X in`, `read X`, `printf -v X`, `unset X`, `let`,
//!   `(( X=1 ))`, `${X:=v}`) are checked against [`SENSITIVE_ENV`]: names that make a
//!   program load or run other code (the dynamic loader, `PATH`, shell start-up files,
//!   interpreters' module paths and options, git's and cargo's command hooks, pagers and
//!   editors, `HOME` and its config dirs). They are denied unless the tool's `allow_env`
//!   lists them; so is any name that is not a shell identifier (`env 'BASH_FUNC_ls%%=...'`).
//! - File redirection targets (`>`, `>>`, `>|`, `<>`, `&>`, `>&file`: written; `<`: read)
//!   are workspace paths, judged against the tool's path scopes like any other path. A
//!   target computed at run time, starting with `~`, absolute (except `/dev/null`,
//!   `/dev/stdin`, `/dev/stdout`, `/dev/stderr`), escaping the working directory's
//!   workspace, or relative in a line that changes directory (`cd`) is denied. Here-docs,
//!   here-strings and descriptor duplications (`2>&1`) open no file.
//!
//! Known limits: values of variables are unknown, so e.g. an arithmetic context that
//! evaluates a variable holding `a[$(cmd)]` is not seen; scripts run by name (`./x.sh`,
//! `source x`), interpreters' own `-c`/`-e` flags (`python -c`) and programs that run
//! commands from their arguments (`git -c core.pager=...`) are reported only as themselves,
//! so a writ should not allow such programs with `*` when that matters.

mod effects;
mod heredoc;
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
    walk(line).map(|walker| walker.out)
}

fn walk(line: &str) -> Result<Walker, String> {
    let mut walker = Walker::default();
    walker.script(line, 0)?;
    Ok(walker)
}

/// Environment variables whose value decides what code a program loads or runs (`*` is
/// any run of characters). Assigning one is denied unless the writ's `allow_env` allows it.
pub const SENSITIVE_ENV: &[&str] = &[
    // The dynamic loader and libc.
    "LD_*",
    "DYLD_*",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "RESOLV_HOST_CONF",
    "MALLOC_*",
    // Command lookup and shells.
    "PATH",
    "IFS",
    "ENV",
    "BASH_ENV",
    "BASH_FUNC_*",
    "BASHOPTS",
    "SHELLOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "SHELL",
    "CDPATH",
    "FPATH",
    "ZDOTDIR",
    "HOME",
    "XDG_*",
    // Interpreters.
    "PYTHON*",
    "PERL*",
    "RUBY*",
    "GEM_*",
    "BUNDLE_*",
    "NODE_*",
    "NPM_CONFIG_*",
    "npm_config_*",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "LUA_*",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "TCLLIBPATH",
    // Toolchains and build tools.
    "GIT_*",
    "CARGO*",
    "RUSTC*",
    "RUSTDOC*",
    "RUSTFLAGS",
    "RUSTUP_*",
    "GO*",
    "CGO_*",
    "CC",
    "CXX",
    "CPP",
    "LD",
    "AR",
    "AS",
    "MAKE",
    "MAKEFLAGS",
    "MFLAGS",
    // Programs that start other programs.
    "EDITOR",
    "VISUAL",
    "PAGER",
    "MANPAGER",
    "LESSOPEN",
    "LESSCLOSE",
    "BROWSER",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    "TERMINFO*",
];

/// The part of a writ tool grant that judges shell lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShellRules<'a> {
    /// An empty list allows every command.
    pub allow: &'a [String],
    pub deny: &'a [String],
    /// Patterns of variable names that may be assigned although [`SENSITIVE_ENV`] lists them.
    pub allow_env: &'a [String],
}

/// Ok(()) when EVERY command of `line` matches at least one `allow` pattern (an empty allow
/// list allows every command) and none matches a `deny` pattern, the line assigns no
/// sensitive variable `allow_env` does not allow, and `path` (called with a normalised
/// workspace path and whether it is written) accepts every file redirection target, placed
/// relative to `cwd` (the command's workspace-relative working directory); Err(reason naming
/// the offending command, assignment or target). Patterns are globs over the command text
/// where `*` matches any run of characters (including none and spaces) and everything else is
/// literal; a pattern ending in " *" also matches the bare command without arguments ("ls *"
/// matches "ls").
pub fn check_command(
    line: &str,
    rules: &ShellRules<'_>,
    cwd: &str,
    path: &dyn Fn(&str, bool) -> Result<(), String>,
) -> Result<(), String> {
    let walked = walk(line).map_err(|e| format!("shell line {line:?} cannot be judged: {e}"))?;
    let commands = &walked.out;
    // Denials first, across the whole line: they are the more useful reason to report.
    for command in commands {
        let stripped = strip_name_dir(command);
        if let Some(pattern) = rules
            .deny
            .iter()
            .find(|p| pattern_matches(p, command) || pattern_matches(p, &stripped))
        {
            return Err(format!(
                "command `{command}` is denied by pattern `{pattern}`"
            ));
        }
    }
    for name in &walked.assigned {
        env_allowed(name, rules.allow_env)?;
    }
    for redirect in &walked.redirects {
        let target = &redirect.target;
        if let Some(resolved) = redirect_path(target, cwd, walked.changes_dir)? {
            path(&resolved, redirect.write)
                .map_err(|why| format!("redirection to `{}`: {why}", target.text))?;
        }
    }
    for command in commands {
        if !rules.allow.is_empty() && !rules.allow.iter().any(|p| pattern_matches(p, command)) {
            return Err(format!(
                "command `{command}` matches no allowed pattern ({})",
                rules.allow.join(", ")
            ));
        }
    }
    Ok(())
}

/// Err when assigning `name` could change what runs and `allow_env` does not allow it.
fn env_allowed(name: &str, allow_env: &[String]) -> Result<(), String> {
    if allow_env.iter().any(|p| glob(p, name)) {
        return Ok(());
    }
    let identifier = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        return Err(format!(
            "assignment to `{name}`, which is not a shell variable name, is denied"
        ));
    }
    match SENSITIVE_ENV.iter().find(|p| glob(p, name)) {
        Some(pattern) => Err(format!(
            "assignment to `{name}` is denied: `{pattern}` variables decide what programs \
             load or run (a writ can allow it with `allow_env`)"
        )),
        None => Ok(()),
    }
}

/// Devices a redirection may open anywhere: they hold nothing and reach nothing.
const HARMLESS_TARGETS: [&str; 4] = ["/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr"];

/// The workspace path a redirection opens (None: a harmless device), or why it cannot be
/// placed.
fn redirect_path(
    target: &walker::WordInfo,
    cwd: &str,
    changes_dir: bool,
) -> Result<Option<String>, String> {
    let text = target.text.as_str();
    if target.dynamic || target.glob {
        return Err(format!(
            "redirection target `{text}` is computed at run time, so it cannot be judged"
        ));
    }
    if HARMLESS_TARGETS.contains(&text) {
        return Ok(None);
    }
    if text.starts_with('~') || text.starts_with('/') {
        return Err(format!(
            "redirection to `{text}` is outside the workspace (use a workspace-relative path)"
        ));
    }
    if changes_dir {
        return Err(format!(
            "redirection to `{text}` in a line that changes directory cannot be placed"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in cwd.split('/').chain(text.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("redirection to `{text}` leaves the workspace"));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(Some(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }))
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
