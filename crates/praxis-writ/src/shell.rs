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

use brush_parser::ast::{
    AndOrList, AssignmentValue, CaseClauseCommand, Command, CommandPrefixOrSuffixItem,
    CompoundCommand, CompoundList, ExtendedTestExpr, IoFileRedirectTarget, IoRedirect, Pipeline,
    RedirectList, SimpleCommand,
};
use brush_parser::word::{WordPiece, WordPieceWithSource};
use brush_parser::{Parser, ParserOptions};

/// Deepest nesting of recursive parses (`bash -c`, substitutions, `eval`) accepted.
pub const MAX_DEPTH: usize = 16;

/// Shells whose `-c` argument (or stdin here-doc) is parsed as a script.
const SHELLS: &[&str] = &["bash", "sh", "zsh", "dash", "ksh", "ash", "mksh"];

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

/// One word after quote removal.
#[derive(Debug, Clone)]
struct WordInfo {
    /// Quote-removed text; expansions keep their source text.
    text: String,
    /// Contains a parameter, command or arithmetic expansion (or an opaque `$'..'`).
    dynamic: bool,
    /// Contains an unquoted glob or brace expansion, so its runtime value may differ.
    glob: bool,
}

#[derive(Default)]
struct Walker {
    out: Vec<String>,
    /// Command substitutions seen so far, to check that a `$(` in raw text was understood.
    substitutions: usize,
}

impl Walker {
    /// Parses `src` as a script and records its commands.
    fn script(&mut self, src: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels in {src:?}"));
        }
        let options = ParserOptions::default();
        // The parser is third-party code fed untrusted input: a panic must become a denial.
        let parsed = std::panic::catch_unwind(|| {
            Parser::new(std::io::Cursor::new(src.as_bytes()), &options).parse_program()
        })
        .map_err(|_| format!("shell parser crashed on {src:?}"))?;
        let program = parsed.map_err(|e| format!("cannot parse {src:?}: {e}"))?;
        for list in &program.complete_commands {
            self.list(list, depth)?;
        }
        Ok(())
    }

    fn list(&mut self, list: &CompoundList, depth: usize) -> Result<(), String> {
        for item in &list.0 {
            self.and_or(&item.0, depth)?;
        }
        Ok(())
    }

    fn and_or(&mut self, list: &AndOrList, depth: usize) -> Result<(), String> {
        self.pipeline(&list.first, depth)?;
        for next in &list.additional {
            match next {
                brush_parser::ast::AndOr::And(p) | brush_parser::ast::AndOr::Or(p) => {
                    self.pipeline(p, depth)?
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, pipeline: &Pipeline, depth: usize) -> Result<(), String> {
        for command in &pipeline.seq {
            self.command(command, depth)?;
        }
        Ok(())
    }

    fn command(&mut self, command: &Command, depth: usize) -> Result<(), String> {
        match command {
            Command::Simple(simple) => self.simple(simple, depth),
            Command::Compound(compound, redirects) => {
                self.compound(compound, depth)?;
                self.redirect_list(redirects.as_ref(), depth)
            }
            Command::Function(def) => {
                self.compound(&def.body.0, depth)?;
                self.redirect_list(def.body.1.as_ref(), depth)
            }
            Command::ExtendedTest(test, redirects) => {
                self.extended_test(&test.expr, depth)?;
                self.redirect_list(redirects.as_ref(), depth)
            }
        }
    }

    fn compound(&mut self, compound: &CompoundCommand, depth: usize) -> Result<(), String> {
        match compound {
            CompoundCommand::Arithmetic(a) => self.raw_text(&a.expr.value, depth),
            CompoundCommand::ArithmeticForClause(f) => {
                for expr in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    self.raw_text(&expr.value, depth)?;
                }
                self.list(&f.body.list, depth)
            }
            CompoundCommand::BraceGroup(g) => self.list(&g.list, depth),
            CompoundCommand::Subshell(s) => self.list(&s.list, depth),
            CompoundCommand::ForClause(f) => {
                for value in f.values.iter().flatten() {
                    self.word(&value.value, depth)?;
                }
                self.list(&f.body.list, depth)
            }
            CompoundCommand::CaseClause(c) => self.case(c, depth),
            CompoundCommand::IfClause(i) => {
                self.list(&i.condition, depth)?;
                self.list(&i.then, depth)?;
                for clause in i.elses.iter().flatten() {
                    if let Some(condition) = &clause.condition {
                        self.list(condition, depth)?;
                    }
                    self.list(&clause.body, depth)?;
                }
                Ok(())
            }
            CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
                self.list(&w.0, depth)?;
                self.list(&w.1.list, depth)
            }
            CompoundCommand::Coprocess(c) => self.command(&c.body, depth),
        }
    }

    fn case(&mut self, case: &CaseClauseCommand, depth: usize) -> Result<(), String> {
        self.word(&case.value.value, depth)?;
        for item in &case.cases {
            for pattern in &item.patterns {
                self.word(&pattern.value, depth)?;
            }
            if let Some(list) = &item.cmd {
                self.list(list, depth)?;
            }
        }
        Ok(())
    }

    fn extended_test(&mut self, expr: &ExtendedTestExpr, depth: usize) -> Result<(), String> {
        match expr {
            ExtendedTestExpr::And(a, b) | ExtendedTestExpr::Or(a, b) => {
                self.extended_test(a, depth)?;
                self.extended_test(b, depth)
            }
            ExtendedTestExpr::Not(e) | ExtendedTestExpr::Parenthesized(e) => {
                self.extended_test(e, depth)
            }
            ExtendedTestExpr::UnaryTest(_, w) => self.word(&w.value, depth).map(|_| ()),
            ExtendedTestExpr::BinaryTest(_, a, b) => {
                self.word(&a.value, depth)?;
                self.word(&b.value, depth).map(|_| ())
            }
        }
    }

    fn redirect_list(
        &mut self,
        redirects: Option<&RedirectList>,
        depth: usize,
    ) -> Result<(), String> {
        for redirect in redirects.iter().flat_map(|r| r.0.iter()) {
            self.redirect(redirect, depth)?;
        }
        Ok(())
    }

    /// Records substitutions in a redirection; returns the text fed to stdin by a here-doc
    /// or here-string, for shells that read their script from it.
    fn redirect(&mut self, redirect: &IoRedirect, depth: usize) -> Result<Option<String>, String> {
        match redirect {
            IoRedirect::File(_, _, target) => match target {
                IoFileRedirectTarget::Filename(w) | IoFileRedirectTarget::Duplicate(w) => {
                    self.word(&w.value, depth)?;
                    Ok(None)
                }
                IoFileRedirectTarget::Fd(_) => Ok(None),
                IoFileRedirectTarget::ProcessSubstitution(_, sub) => {
                    self.list(&sub.list, depth)?;
                    Ok(None)
                }
            },
            IoRedirect::HereDocument(_, doc) => {
                if doc.requires_expansion {
                    // Unquoted delimiter: `$(...)` in the body runs before the command.
                    let pieces = brush_parser::word::parse_heredoc(
                        &doc.doc.value,
                        &ParserOptions::default(),
                    )
                    .map_err(|e| format!("cannot parse here-doc body: {e}"))?;
                    self.pieces(&pieces, &doc.doc.value, true, depth)?;
                }
                Ok(Some(doc.doc.value.clone()))
            }
            IoRedirect::HereString(_, w) => Ok(Some(self.word(&w.value, depth)?.text)),
            IoRedirect::OutputAndError(w, _) => {
                self.word(&w.value, depth)?;
                Ok(None)
            }
        }
    }

    fn simple(&mut self, simple: &SimpleCommand, depth: usize) -> Result<(), String> {
        let mut words = Vec::new();
        let mut stdin_texts = Vec::new();
        for item in simple.prefix.iter().flat_map(|p| p.0.iter()) {
            match item {
                CommandPrefixOrSuffixItem::AssignmentWord(assignment, _) => {
                    // Assignments are not part of the command text, their substitutions run.
                    match &assignment.value {
                        AssignmentValue::Scalar(w) => {
                            self.word(&w.value, depth)?;
                        }
                        AssignmentValue::Array(elements) => {
                            for (key, value) in elements {
                                if let Some(key) = key {
                                    self.word(&key.value, depth)?;
                                }
                                self.word(&value.value, depth)?;
                            }
                        }
                    }
                }
                other => self.item(other, &mut words, &mut stdin_texts, depth)?,
            }
        }
        if let Some(name) = &simple.word_or_name {
            words.push(self.word(&name.value, depth)?);
        }
        for item in simple.suffix.iter().flat_map(|s| s.0.iter()) {
            match item {
                // After the name, `a=b` is an ordinary argument (`export a=$(x)`).
                CommandPrefixOrSuffixItem::AssignmentWord(_, w) => {
                    words.push(self.word(&w.value, depth)?)
                }
                other => self.item(other, &mut words, &mut stdin_texts, depth)?,
            }
        }
        if words.is_empty() {
            return Ok(());
        }
        self.invocation(&words, &stdin_texts, depth)
    }

    fn item(
        &mut self,
        item: &CommandPrefixOrSuffixItem,
        words: &mut Vec<WordInfo>,
        stdin_texts: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), String> {
        match item {
            CommandPrefixOrSuffixItem::IoRedirect(r) => {
                if let Some(text) = self.redirect(r, depth)? {
                    stdin_texts.push(text);
                }
            }
            CommandPrefixOrSuffixItem::Word(w)
            | CommandPrefixOrSuffixItem::AssignmentWord(_, w) => {
                words.push(self.word(&w.value, depth)?)
            }
            CommandPrefixOrSuffixItem::ProcessSubstitution(kind, sub) => {
                self.list(&sub.list, depth)?;
                let arrow = match kind {
                    brush_parser::ast::ProcessSubstitutionKind::Read => '<',
                    brush_parser::ast::ProcessSubstitutionKind::Write => '>',
                };
                words.push(WordInfo {
                    text: format!(
                        "{arrow}({})",
                        sub.list.to_string().trim().trim_end_matches(';')
                    ),
                    dynamic: true,
                    glob: false,
                });
            }
        }
        Ok(())
    }

    /// Records one command (its words after quote removal) and whatever it runs in turn.
    fn invocation(
        &mut self,
        words: &[WordInfo],
        stdin_texts: &[String],
        depth: usize,
    ) -> Result<(), String> {
        let Some(name) = words.first() else {
            return Ok(());
        };
        let text = words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if name.dynamic || name.glob {
            return Err(format!(
                "command name `{}` is computed at run time, so `{text}` cannot be judged",
                name.text
            ));
        }
        self.out.push(text);
        let base = name.text.rsplit('/').next().unwrap_or(&name.text);
        let args = &words[1..];
        if base == "eval" {
            // `eval` runs its joined arguments as a script; when they are known, judge it too.
            if !args.is_empty() && args.iter().all(|a| !a.dynamic) {
                let joined = args.iter().map(|a| a.text.as_str()).collect::<Vec<_>>();
                self.script(&joined.join(" "), depth + 1)?;
            }
        } else if SHELLS.contains(&base) {
            self.shell(base, args, stdin_texts, depth)?;
        } else if base == "find" {
            self.find_exec(args, depth)?;
        } else if let Some(spec) = wrapper_spec(base)
            && let Some(start) = spec.inner_start(base, args)?
        {
            self.invocation(&args[start..], stdin_texts, depth)?;
        }
        Ok(())
    }

    /// `bash [opts] -c SCRIPT ...` parses SCRIPT; `bash [opts]` with no script file reads
    /// its script from stdin, so here-doc / here-string bodies are parsed.
    fn shell(
        &mut self,
        name: &str,
        args: &[WordInfo],
        stdin_texts: &[String],
        depth: usize,
    ) -> Result<(), String> {
        let mut has_c = false;
        let mut has_s = false;
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            if arg.dynamic {
                return Err(format!(
                    "`{name}` option `{}` is computed at run time",
                    arg.text
                ));
            }
            let t = arg.text.as_str();
            if t == "--" || t == "-" {
                i += 1;
                break;
            }
            if matches!(t, "--rcfile" | "--init-file") {
                i += 2;
                continue;
            }
            if t.starts_with("--") {
                i += 1;
                continue;
            }
            let Some(flags) = t.strip_prefix('-').or_else(|| t.strip_prefix('+')) else {
                break;
            };
            has_c |= flags.contains('c');
            has_s |= flags.contains('s');
            // `-o opt` / `-O opt` take the next word.
            i += if flags.contains('o') || flags.contains('O') {
                2
            } else {
                1
            };
        }
        let operand = args.get(i);
        if has_c {
            let Some(script) = operand else {
                return Err(format!("`{name} -c` without a command string"));
            };
            if script.dynamic {
                return Err(format!(
                    "`{name} -c` script `{}` is computed at run time",
                    script.text
                ));
            }
            self.script(&script.text, depth + 1)
        } else if operand.is_none() || has_s {
            for text in stdin_texts {
                self.script(text, depth + 1)?;
            }
            Ok(())
        } else {
            Ok(())
        }
    }

    /// `find ... -exec CMD ARGS ;` (also `-execdir`, `-ok`, `-okdir`, `+` terminator).
    fn find_exec(&mut self, args: &[WordInfo], depth: usize) -> Result<(), String> {
        let mut i = 0;
        while i < args.len() {
            if matches!(
                args[i].text.as_str(),
                "-exec" | "-execdir" | "-ok" | "-okdir"
            ) {
                let start = i + 1;
                let mut end = start;
                while end < args.len() && !matches!(args[end].text.as_str(), ";" | "+") {
                    end += 1;
                }
                self.invocation(&args[start..end], &[], depth)?;
                i = end;
            }
            i += 1;
        }
        Ok(())
    }

    /// Analyses one raw word: records the substitutions it runs, returns its text.
    fn word(&mut self, raw: &str, depth: usize) -> Result<WordInfo, String> {
        let pieces = brush_parser::word::parse(raw, &ParserOptions::default())
            .map_err(|e| format!("cannot parse word {raw:?}: {e}"))?;
        self.pieces(&pieces, raw, false, depth)
    }

    fn pieces(
        &mut self,
        pieces: &[WordPieceWithSource],
        raw: &str,
        quoted: bool,
        depth: usize,
    ) -> Result<WordInfo, String> {
        let mut info = WordInfo {
            text: String::new(),
            dynamic: false,
            glob: false,
        };
        for piece in pieces {
            let source = raw.get(piece.start_index..piece.end_index).unwrap_or(raw);
            match &piece.piece {
                WordPiece::Text(t) => {
                    if !quoted && is_glob(t) {
                        info.glob = true;
                    }
                    info.text.push_str(t);
                }
                WordPiece::SingleQuotedText(t) => info.text.push_str(t),
                WordPiece::AnsiCQuotedText(t) => {
                    // Escapes in $'..' are not decoded here: keep the source and treat the
                    // word as opaque so it can never pass as a command name.
                    if t.contains('\\') {
                        info.dynamic = true;
                        info.text.push_str(source);
                    } else {
                        info.text.push_str(t);
                    }
                }
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    let inner = self.pieces(inner, raw, true, depth)?;
                    info.dynamic |= inner.dynamic;
                    info.text.push_str(&inner.text);
                }
                WordPiece::TildeExpansion(_) => info.text.push_str(source),
                WordPiece::ParameterExpansion(_) => {
                    info.dynamic = true;
                    info.text.push_str(source);
                    // `${X:-$(cmd)}`: the operand text may run commands.
                    let inner = source
                        .strip_prefix("${")
                        .and_then(|s| s.strip_suffix('}'))
                        .unwrap_or(source);
                    self.raw_text(inner, depth)?;
                }
                WordPiece::CommandSubstitution(script) => {
                    info.dynamic = true;
                    info.text.push_str(source);
                    self.substitutions += 1;
                    self.script(script, depth + 1)?;
                }
                WordPiece::BackquotedCommandSubstitution(script) => {
                    info.dynamic = true;
                    info.text.push_str(source);
                    self.substitutions += 1;
                    // Inside backticks `\$` stands for `$`.
                    self.script(&script.replace("\\$", "$"), depth + 1)?;
                }
                WordPiece::EscapeSequence(s) => {
                    let escaped = s.strip_prefix('\\').unwrap_or(s);
                    // Backslash-newline is a line continuation and vanishes.
                    if escaped != "\n" {
                        info.text.push_str(escaped);
                    }
                }
                WordPiece::ArithmeticExpression(expr) => {
                    info.dynamic = true;
                    info.text.push_str(source);
                    self.raw_text(&expr.value, depth)?;
                }
            }
        }
        Ok(info)
    }

    /// Text that bash expands like a word (parameter operands, arithmetic): record its
    /// substitutions, and refuse a `$(` or backtick that did not turn into one.
    fn raw_text(&mut self, text: &str, depth: usize) -> Result<(), String> {
        if !text.contains("$(") && !text.contains('`') {
            return Ok(());
        }
        let before = self.substitutions;
        if let Ok(pieces) = brush_parser::word::parse(text, &ParserOptions::default()) {
            self.pieces(&pieces, text, false, depth)?;
        }
        if self.substitutions == before {
            return Err(format!(
                "possible command substitution in {text:?} cannot be analysed"
            ));
        }
        Ok(())
    }
}

/// Unquoted characters that make bash rewrite a word (pathname or brace expansion).
fn is_glob(text: &str) -> bool {
    if text.contains('*') || text.contains('?') {
        return true;
    }
    // A lone `[` (the test command) stays literal; `[..]` is a bracket expression.
    if let Some(open) = text.find('[')
        && text[open + 1..].contains(']')
    {
        return true;
    }
    if let Some(open) = text.find('{') {
        let rest = &text[open + 1..];
        if rest.contains('}') && (rest.contains(',') || rest.contains("..")) {
            return true;
        }
    }
    false
}

/// Command-line grammar of a wrapper that runs another command.
struct WrapperSpec {
    /// Short options without a value.
    short_flags: &'static str,
    /// Short options whose value is attached or the next word.
    short_values: &'static str,
    /// Short options whose optional value can only be attached (`xargs -i`, `-l`, `-e`).
    short_optional: &'static str,
    long_flags: &'static [&'static str],
    long_values: &'static [&'static str],
    /// Operands between the options and the command (`timeout DURATION`).
    operands: usize,
    /// `NAME=VALUE` words may precede the command (`env`, `sudo`).
    assignments: bool,
    /// `-N` numeric options (`nice -10`).
    numeric: bool,
}

const fn spec(short_flags: &'static str, short_values: &'static str) -> WrapperSpec {
    WrapperSpec {
        short_flags,
        short_values,
        short_optional: "",
        long_flags: &[],
        long_values: &[],
        operands: 0,
        assignments: false,
        numeric: false,
    }
}

fn wrapper_spec(name: &str) -> Option<WrapperSpec> {
    Some(match name {
        "exec" => spec("cl", "a"),
        "command" => spec("pvV", ""),
        "builtin" | "nohup" => spec("", ""),
        "env" => WrapperSpec {
            long_flags: &[
                "ignore-environment",
                "null",
                "debug",
                "ignore-signal",
                "default-signal",
                "block-signal",
                "list-signal-handling",
            ],
            long_values: &["unset", "chdir"],
            assignments: true,
            ..spec("i0v", "uC")
        },
        "nice" => WrapperSpec {
            long_values: &["adjustment"],
            numeric: true,
            ..spec("", "n")
        },
        "timeout" => WrapperSpec {
            long_flags: &["preserve-status", "foreground", "verbose"],
            long_values: &["signal", "kill-after"],
            operands: 1,
            ..spec("v", "sk")
        },
        "xargs" => WrapperSpec {
            short_optional: "eil",
            long_flags: &[
                "null",
                "interactive",
                "no-run-if-empty",
                "verbose",
                "exit",
                "open-tty",
                "show-limits",
                "replace",
                "eof",
                "max-lines",
            ],
            long_values: &[
                "arg-file",
                "delimiter",
                "max-args",
                "max-procs",
                "max-chars",
                "process-slot-var",
            ],
            ..spec("0prtxo", "aEdILnPs")
        },
        "sudo" => WrapperSpec {
            long_flags: &[
                "askpass",
                "background",
                "bell",
                "preserve-env",
                "edit",
                "set-home",
                "login",
                "remove-timestamp",
                "reset-timestamp",
                "non-interactive",
                "preserve-groups",
                "stdin",
                "shell",
                "validate",
            ],
            long_values: &[
                "close-from",
                "chdir",
                "group",
                "host",
                "prompt",
                "chroot",
                "role",
                "type",
                "command-timeout",
                "other-user",
                "user",
            ],
            assignments: true,
            ..spec("AbBEeHiKklnNPSsVv", "CDghpRrtTUu")
        },
        "doas" => spec("nLs", "uC"),
        "time" => WrapperSpec {
            long_flags: &["portability", "verbose", "append", "quiet"],
            long_values: &["format", "output"],
            ..spec("pvaqV", "fo")
        },
        "setsid" => WrapperSpec {
            long_flags: &["ctty", "fork", "wait"],
            ..spec("cfw", "")
        },
        "stdbuf" => WrapperSpec {
            long_values: &["input", "output", "error"],
            ..spec("", "ioe")
        },
        _ => return None,
    })
}

impl WrapperSpec {
    /// Index in `args` of the wrapped command, None when the wrapper runs none
    /// (`exec >f`, `sudo -i`). Errors when an option is unknown or computed at run time,
    /// because misreading it could mistake an argument for the command or hide the command.
    fn inner_start(&self, name: &str, args: &[WordInfo]) -> Result<Option<usize>, String> {
        let unknown =
            |opt: &str| format!("unknown `{name}` option `{opt}`: cannot find the command it runs");
        let mut i = 0;
        while let Some(arg) = args.get(i) {
            if arg.dynamic || arg.glob {
                return Err(format!(
                    "`{name}` argument `{}` is computed at run time",
                    arg.text
                ));
            }
            let t = arg.text.as_str();
            if t == "--" {
                i += 1;
                break;
            }
            if name == "env" && (t == "-" || t.starts_with("-S") || t.starts_with("--split-string"))
            {
                if t == "-" {
                    i += 1;
                    continue;
                }
                return Err("`env -S` splits a string into a command: cannot be judged".into());
            }
            if let Some(long) = t.strip_prefix("--") {
                let (key, has_value) = match long.split_once('=') {
                    Some((k, _)) => (k, true),
                    None => (long, false),
                };
                if self.long_values.contains(&key) {
                    i += if has_value { 1 } else { 2 };
                } else if self.long_flags.contains(&key) {
                    i += 1;
                } else {
                    return Err(unknown(t));
                }
                continue;
            }
            let Some(cluster) = t.strip_prefix('-').filter(|c| !c.is_empty()) else {
                break;
            };
            if self.numeric && cluster.chars().all(|c| c.is_ascii_digit()) {
                i += 1;
                continue;
            }
            let mut consumed = 1;
            for (pos, c) in cluster.char_indices() {
                if self.short_values.contains(c) {
                    // Value is the rest of the cluster, or else the next word.
                    if pos + c.len_utf8() == cluster.len() {
                        consumed = 2;
                    }
                    break;
                }
                if self.short_optional.contains(c) {
                    break;
                }
                if !self.short_flags.contains(c) {
                    return Err(unknown(t));
                }
            }
            i += consumed;
        }
        if self.assignments {
            while args.get(i).is_some_and(|a| is_assignment(&a.text)) {
                i += 1;
            }
        }
        for _ in 0..self.operands {
            match args.get(i) {
                Some(a) if a.dynamic || a.glob => {
                    return Err(format!(
                        "`{name}` argument `{}` is computed at run time",
                        a.text
                    ));
                }
                Some(_) => i += 1,
                None => return Ok(None),
            }
        }
        Ok((i < args.len()).then_some(i))
    }
}

/// `NAME=VALUE` with a valid shell variable name.
fn is_assignment(text: &str) -> bool {
    match text.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
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
            assert!(
                check_command(line, &[], &[]).is_err(),
                "{line:?} should be denied"
            );
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
        let check = |line: &str| check_command(line, &allow, &deny);

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
        let err = check_command("rm x", &pats(&["*"]), &deny).unwrap_err();
        assert!(err.contains("denied"), "{err}");
        // An empty allow list allows every command not denied.
        assert_eq!(check_command("whoami; id", &[], &deny), Ok(()));
        assert!(check_command("whoami; rm x", &[], &deny).is_err());
        // Allow sees the path as written: `/bin/ls` needs its own pattern.
        assert!(check_command("/bin/ls", &pats(&["ls *"]), &[]).is_err());
    }
}
