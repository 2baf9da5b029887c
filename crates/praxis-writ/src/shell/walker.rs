//! The walk over a parsed shell line: every command it can run, in the order bash starts them.

use super::MAX_DEPTH;
use super::wrappers::wrapper_spec;
use brush_parser::ast::{
    AndOrList, AssignmentName, AssignmentValue, CaseClauseCommand, Command,
    CommandPrefixOrSuffixItem, CompoundCommand, CompoundList, ExtendedTestExpr, IoFileRedirectKind,
    IoFileRedirectTarget, IoRedirect, Pipeline, RedirectList, SimpleCommand,
};
use brush_parser::word::{WordPiece, WordPieceWithSource};
use brush_parser::{Parser, ParserOptions};

/// Shells whose `-c` argument (or stdin here-doc) is parsed as a script.
const SHELLS: &[&str] = &["bash", "sh", "zsh", "dash", "ksh", "ash", "mksh"];

/// One word after quote removal.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WordInfo {
    /// Quote-removed text; expansions keep their source text.
    pub(super) text: String,
    /// Contains a parameter, command or arithmetic expansion (or an opaque `$'..'`).
    pub(super) dynamic: bool,
    /// Contains an unquoted glob or brace expansion, so its runtime value may differ.
    pub(super) glob: bool,
}

/// A file a redirection opens: `> out` (write), `< in` (read).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Redirection {
    pub(super) target: WordInfo,
    pub(super) write: bool,
}

#[derive(Default)]
pub(super) struct Walker {
    pub(super) out: Vec<String>,
    /// Variables the line may assign (`X=1 cmd`, `export X=1`, `env X=1 cmd`, `for X in`,
    /// `read X`, `${X:=v}`, `(( X=1 ))`, ...), for the environment rule.
    pub(super) assigned: Vec<String>,
    /// File redirection targets, with whether they are written.
    pub(super) redirects: Vec<Redirection>,
    /// The line changes its working directory (`cd`, `pushd`, `popd`), so relative
    /// redirection targets cannot be placed.
    pub(super) changes_dir: bool,
    /// Command substitutions seen so far, to check that a `$(` in raw text was understood.
    substitutions: usize,
    /// The text being walked (the line, or a `bash -c` argument while that is walked), for
    /// what the parser's tree does not say.
    source: String,
}

impl Walker {
    /// Parses `src` as a script and records its commands.
    pub(super) fn script(&mut self, src: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels in {src:?}"));
        }
        if super::heredoc::has_empty_delimiter(src) {
            return Err(format!(
                "a here-document delimiter in {src:?} that is not a plain word is not judged (the parser may never end on it)"
            ));
        }
        let options = ParserOptions::default();
        // The parser is third-party code fed untrusted input: a panic must become a denial.
        let parsed = std::panic::catch_unwind(|| {
            Parser::new(std::io::Cursor::new(src.as_bytes()), &options).parse_program()
        })
        .map_err(|_| format!("shell parser crashed on {src:?}"))?;
        let program = parsed.map_err(|e| format!("cannot parse {src:?}: {e}"))?;
        let outer = std::mem::replace(&mut self.source, src.to_string());
        let walked = program
            .complete_commands
            .iter()
            .try_for_each(|list| self.list(list, depth));
        self.source = outer;
        walked
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
            CompoundCommand::Arithmetic(a) => {
                // The parser reads `( ( rm ) )` as the arithmetic command `((rm))`, but bash
                // starts arithmetic only at two adjacent parentheses: anything else is a
                // subshell in a subshell, whose commands run.
                let at = self.source.get(a.loc.start.index..).unwrap_or_default();
                if !at.starts_with("((") {
                    return self.script(&a.expr.value, depth + 1);
                }
                self.arithmetic(&a.expr.value);
                self.raw_text(&a.expr.value, depth)
            }
            CompoundCommand::ArithmeticForClause(f) => {
                for expr in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    self.arithmetic(&expr.value);
                    self.raw_text(&expr.value, depth)?;
                }
                self.list(&f.body.list, depth)
            }
            CompoundCommand::BraceGroup(g) => self.list(&g.list, depth),
            CompoundCommand::Subshell(s) => self.list(&s.list, depth),
            CompoundCommand::ForClause(f) => {
                self.assigned.push(f.variable_name.clone());
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
                // `-eq` and friends evaluate both operands as arithmetic.
                self.arithmetic(&a.value);
                self.arithmetic(&b.value);
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
            IoRedirect::File(_, kind, target) => match target {
                IoFileRedirectTarget::Filename(w) => {
                    let target = self.word(&w.value, depth)?;
                    let write = !matches!(kind, IoFileRedirectKind::Read);
                    self.redirects.push(Redirection { target, write });
                    Ok(None)
                }
                IoFileRedirectTarget::Duplicate(w) => {
                    // `>&2`, `<&0`, `>&-`, `>&3-` duplicate or close descriptors; any other
                    // word (`>&file`) names a file that stdout and stderr are written to.
                    let target = self.word(&w.value, depth)?;
                    let digits = target.text.trim_end_matches('-');
                    let descriptor = !target.dynamic
                        && (target.text == "-"
                            || (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())));
                    if !descriptor {
                        let write = !matches!(kind, IoFileRedirectKind::DuplicateInput);
                        self.redirects.push(Redirection { target, write });
                    }
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
                let target = self.word(&w.value, depth)?;
                self.redirects.push(Redirection {
                    target,
                    write: true,
                });
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
                    match &assignment.name {
                        AssignmentName::VariableName(name) => self.assigned.push(name.clone()),
                        AssignmentName::ArrayElementName(name, index) => {
                            self.assigned.push(name.clone());
                            self.arithmetic(index);
                        }
                    }
                    match &assignment.value {
                        AssignmentValue::Scalar(w) => {
                            // A value may be evaluated as arithmetic (`declare -i`).
                            self.arithmetic(&w.value);
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
        } else if let Some(spec) = wrapper_spec(base) {
            let start = spec.inner_start(base, args)?;
            if spec.assignments {
                // `env NAME=VALUE cmd`: every word with `=` before the command is assigned.
                for arg in &args[..start.unwrap_or(args.len())] {
                    if !arg.text.starts_with('-')
                        && let Some((name, _)) = arg.text.split_once('=')
                    {
                        self.assigned.push(name.to_string());
                    }
                }
            }
            if let Some(start) = start {
                self.invocation(&args[start..], stdin_texts, depth)?;
            }
        } else {
            self.builtin_effects(base, args, depth)?;
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
                    if source.starts_with("${") {
                        self.parameter(inner);
                    }
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
                    self.arithmetic(&expr.value);
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
