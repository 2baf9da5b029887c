//! A guard in front of the third-party shell parser.
//!
//! brush-parser 0.4's tokenizer never ends on a here-document whose delimiter is empty once
//! unquoted (`cat <<""`, `<<''`, `<<'""'`, a quoted newline): it matches the empty delimiter
//! at the same place again and again, pushing an empty token each time until the process
//! runs out of memory. A model writes the command lines judged here, so such a line is
//! refused before it reaches the parser. The scan is deliberately coarse: it also refuses
//! a line with `<<` followed by nothing that survives unquoting inside a quoted string
//! (`echo '<<'`), which leaves that line unjudged (denied) rather than crashing.

/// Whether `src` has a here-document operator (`<<` or `<<-`, not the here-string `<<<`)
/// whose delimiter word is empty once quotes, `$`, backslashes and quoted newlines are
/// removed.
pub(super) fn has_empty_delimiter(src: &str) -> bool {
    let bytes = src.as_bytes();
    let mut from = 0;
    while let Some(found) = find(bytes, from) {
        let mut at = found + 2;
        if bytes.get(at) == Some(&b'<') {
            // `<<<` is a here-string; skip every `<` of the run.
            while bytes.get(at) == Some(&b'<') {
                at += 1;
            }
            from = at;
            continue;
        }
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        while matches!(bytes.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        let (end, kept) = delimiter_word(bytes, at);
        if kept == 0 {
            return true;
        }
        from = end;
    }
    false
}

fn find(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(2)
        .position(|w| w == b"<<")
        .map(|at| from + at)
}

/// The end of the word starting at `at` and how many of its bytes survive unquoting the
/// way the parser unquotes a delimiter: every `'` and `"` is dropped wherever it stands (so
/// `'""'` is empty too), a backslash keeps the byte after it; `$` and newlines are not
/// counted either, which only makes the guard refuse more.
fn delimiter_word(bytes: &[u8], mut at: usize) -> (usize, usize) {
    let mut kept = 0;
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    while let Some(&c) = bytes.get(at) {
        if escaped {
            escaped = false;
            if c != b'\n' {
                kept += 1;
            }
        } else if c == b'\\' {
            escaped = true;
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if !matches!(c, b'\'' | b'"' | b'$' | b'\n') {
                kept += 1;
            }
        } else {
            match c {
                b'\'' | b'"' => quote = Some(c),
                b'$' => {}
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' => break,
                _ => kept += 1,
            }
        }
        at += 1;
    }
    (at, kept)
}

#[cfg(test)]
mod tests {
    use super::has_empty_delimiter;

    #[test]
    fn empty_delimiters_are_found() {
        for line in [
            "x<<\"\" ",
            "x<<\"\"\t",
            "cat <<'' x",
            "cat <<-\"\"\t",
            "cat <<$'' y",
            "cat << \"\"\"\" z",
            "cat <<\"\n\" w",
            "cat <<",
            "a; b <<\"\"; c",
            "cat <<< x; cat <<'' y",
            "cat <<'\"\"' y",
            "cat <<\"''\" y",
            "x<<-\t'\"\"')\ta",
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
