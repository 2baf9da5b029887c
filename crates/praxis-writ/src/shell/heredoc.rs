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
//! It also never ends on a delimiter word that runs on into an expansion (`<<x$( ;#`,
//! `<<'x'$( ;#`), found by the fuzz target in CI.
//!
//! Rather than mirror the tokenizer, the guard accepts a `<<` only when its delimiter is a
//! word it can vouch for: plain bytes, quoted runs of plain bytes and spaces, and
//! backslash-escaped plain bytes, at least one plain byte in all, ending where a word ends.
//! It looks at every `<<` of the text, quoted or not, so it refuses more than it must
//! (`echo '<<'`, `$((1<<(2)))`, `cat <<$END`), which leaves such a line unjudged (denied)
//! rather than crashing the runtime.

/// Whether `src` has a `<<` whose here-document delimiter might be empty to the parser.
pub(super) fn has_empty_delimiter(src: &str) -> bool {
    let bytes = src.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'<' {
            at += 1;
            continue;
        }
        let length = bytes[at..].iter().take_while(|b| **b == b'<').count();
        // A `<` after an odd number of backslashes is a plain byte to the parser: `\<<<`
        // is a word ending in `<` and then a here-document, not a here-string.
        let backslashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        let run = length - backslashes % 2;
        at += length;
        match run {
            0 | 1 | 3 => continue, // a literal `<`, a redirection or a here-string
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

/// Whether the delimiter word at the start of `word` is one the guard vouches for (see the
/// module's text): it keeps a plain byte once unquoted and ends where a word ends.
fn delimiter_survives(word: &[u8]) -> bool {
    let escaped_plain = |at: usize| word.get(at + 1).is_some_and(|b| plain(*b));
    let (mut at, mut kept) = (0, false);
    loop {
        match word.get(at) {
            None => return kept,
            Some(b) if ends_word(*b) => return kept,
            Some(b) if plain(*b) => (at, kept) = (at + 1, true),
            Some(b'\\') if escaped_plain(at) => (at, kept) = (at + 2, true),
            Some(quote @ (b'\'' | b'"')) => {
                let quote = *quote;
                at += 1;
                loop {
                    match word.get(at) {
                        Some(b) if *b == quote => break,
                        Some(b) if plain(*b) => (at, kept) = (at + 1, true),
                        Some(b' ') => at += 1,
                        Some(b'\\') if escaped_plain(at) => (at, kept) = (at + 2, true),
                        _ => return false,
                    }
                }
                at += 1;
            }
            Some(_) => return false,
        }
    }
}

/// A byte after which the parser reads no more of the delimiter word.
fn ends_word(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b';' | b'|' | b'&' | b')' | b'<' | b'>'
    )
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
            "<<x$( ;#",
            "<<'x'$( ;#",
            "<<x'y'$( ;#",
            "<<\\>$( ;#",
            "cat <<$END",
            "cat <<E`x`",
            "cat <<'E\nF'",
            // Found by the 60-second run in CI: an escaped `<` before a here-string's `<<<`.
            "cat \\<<< \"\"\t",
            "\\g\"!\t<=$!*\\\\*o-\\!*'\n\n|<\n\\a\\$=.\\\nf\\\\\"\\<<< \"\"\t",
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
            "cat <<EOF>out.txt\nx\nEOF",
            "cat <<'END_OF_FILE' | python3 -\nprint(1)\nEND_OF_FILE",
            "x=$(cat <<EOF\nhi\nEOF\n)",
            "cat <<< word",
            "cat <<<\"\"",
            // An escaped backslash leaves the here-string a here-string.
            "cat \\\\<<< word",
            "echo \\< in",
            "echo a << b",
            "ls -la",
            "",
        ] {
            assert!(!has_empty_delimiter(line), "{line:?}");
        }
    }
}
