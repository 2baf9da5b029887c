//! A guard in front of the third-party shell parser.
//!
//! brush-parser 0.4's tokenizer never ends on a here-document whose delimiter is empty once
//! unquoted: it matches the empty delimiter at the same place again and again, pushing an
//! empty token each time until the process runs out of memory. Its unquoting drops every
//! `'` and `"` wherever they stand, so `<<""`, `<<''` and `<<'""'` are all empty, and so is
//! a delimiter it never finds (`<< #comment`, `<<` at the end, `<<` before an operator). A
//! model writes the command lines judged here, so such a line is refused before it reaches
//! the parser.
//!
//! Rather than mirror the tokenizer, the guard accepts a `<<` only when the delimiter
//! plainly starts with a byte that survives unquoting. It looks at every `<<` of the text,
//! quoted or not, so it refuses more than it must (`echo '<<'`, `$((1<<(2)))`), which
//! leaves such a line unjudged (denied) rather than crashing the runtime.

/// Whether `src` has a `<<` whose here-document delimiter might be empty to the parser.
pub(super) fn has_empty_delimiter(src: &str) -> bool {
    let bytes = src.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'<' {
            at += 1;
            continue;
        }
        let run = bytes[at..].iter().take_while(|b| **b == b'<').count();
        at += run;
        match run {
            1 | 3 => continue, // a redirection or a here-string
            2 => {}
            _ => return true, // `<<<<`: how the parser splits it is not worth guessing
        }
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        while matches!(bytes.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        if !delimiter_survives(&bytes[at..]) {
            return true;
        }
    }
    false
}

/// Whether the delimiter word at the start of `word` certainly keeps a byte once unquoted.
fn delimiter_survives(word: &[u8]) -> bool {
    match word {
        [first, ..] if plain(*first) => true,
        // A backslash keeps the byte after it (a backslash-newline joins lines instead).
        [b'\\', next, ..] => *next != b'\n',
        [quote @ (b'\'' | b'"'), rest @ ..] => {
            let inside = rest.split(|b| b == quote).next().unwrap_or_default();
            inside.iter().enumerate().any(|(i, b)| match b {
                b'\'' | b'"' | b'\n' => false,
                b'\\' => inside.get(i + 1).is_some_and(|n| *n != b'\n'),
                _ => true,
            })
        }
        _ => false,
    }
}

/// A byte the parser's unquoting keeps and that cannot start a comment or an operator.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'+' | b'/' | b':' | b'@')
}

#[cfg(test)]
mod tests {
    use super::has_empty_delimiter;

    #[test]
    fn empty_or_unclear_delimiters_are_refused() {
        for line in [
            "x<<\"\" ",
            "x<<\"\"\t",
            "cat <<'' x",
            "cat <<-\"\"\t",
            "cat << \"\"\"\" z",
            "cat <<'\"\"' y",
            "cat <<\"''\" y",
            "x<<-\t'\"\"')\ta",
            "cat <<\"\n\" w",
            "cat <<",
            "cat << #comment",
            "cat <<;",
            "cat <<\\\nEOF",
            "a; b <<\"\"; c",
            "cat <<< x; cat <<'' y",
            "cat <<<<\"\"",
            ".\"\"l/= ({\"}$(<w<(\\\\-.\n<< \t#?({{\\\\p/a}",
            "$\n\t - i< \n.*?=\\\\>).!{*<<\"\"\t",
        ] {
            assert!(has_empty_delimiter(line), "{line:?}");
        }
    }

    #[test]
    fn ordinary_here_documents_and_strings_pass() {
        for line in [
            "cat <<EOF\nhi\nEOF",
            "cat <<-'EOF'\n\thi\nEOF",
            "cat <<\"E F\"\nx\nE F",
            "cat <<\\EOF\nx\nEOF",
            "cat > a.cpp <<'EOF'\nstd::cout << \"\\n\" << x << std::endl;\nEOF",
            "python3 - <<PY\nprint(1 << 3)\nPY",
            "cat <<< word",
            "cat <<<\"\"",
            "echo a << b",
            "ls -la",
            "",
        ] {
            assert!(!has_empty_delimiter(line), "{line:?}");
        }
    }
}
