//! The `<cmd>` text protocol: a model without native tool calling acts by writing shell
//! commands in `<cmd>…</cmd>` blocks; each block's result returns wrapped in `<result>`.
//!
//! Blocks do not nest: a block's body ends at the first `</cmd>` after its opening tag, so
//! a literal `<cmd>` inside a body is just text. A `</cmd>` with no opening is ignored.

pub const OPEN: &str = "<cmd>";
pub const CLOSE: &str = "</cmd>";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CmdParseError {
    #[error("unclosed <cmd> block starting at byte {offset}: add </cmd> after the command")]
    Unclosed { offset: usize },
}

/// Bodies of every `<cmd>` block in order, trimmed. Empty bodies are kept (as "") so the
/// caller can tell "no blocks" from "only empty blocks".
pub fn parse_cmd_blocks(text: &str) -> Result<Vec<String>, CmdParseError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    let mut consumed = 0;
    while let Some(start) = rest.find(OPEN) {
        let body_start = start + OPEN.len();
        let Some(len) = rest[body_start..].find(CLOSE) else {
            return Err(CmdParseError::Unclosed {
                offset: consumed + start,
            });
        };
        blocks.push(rest[body_start..body_start + len].trim().to_string());
        let next = body_start + len + CLOSE.len();
        consumed += next;
        rest = &rest[next..];
    }
    Ok(blocks)
}

/// The text with every complete `<cmd>` block removed (an unclosed block is removed to the
/// end), whitespace tidied: what the model said around its commands.
pub fn strip_cmd_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let body_start = start + OPEN.len();
        match rest[body_start..].find(CLOSE) {
            Some(len) => rest = &rest[body_start + len + CLOSE.len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Wraps one command's output for the model. A non-zero exit status is stated inside.
pub fn format_result(output: &str, exit_code: Option<i32>) -> String {
    let mut body = output.trim_end_matches('\n').to_string();
    if let Some(code) = exit_code.filter(|c| *c != 0) {
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str(&format!("[exit code {code}]"));
    }
    format!("<result>\n{body}\n</result>")
}

/// Formats a block of commands as a model would write them (for scripts and tests).
pub fn format_cmd(command: &str) -> String {
    format!("{OPEN}{command}{CLOSE}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_blocks_in_order() {
        let t = "look:\n<cmd>ls -la</cmd> then <cmd> cat README.md </cmd>";
        assert_eq!(
            parse_cmd_blocks(t).unwrap(),
            vec!["ls -la", "cat README.md"]
        );
    }

    #[test]
    fn no_blocks_is_empty() {
        assert!(parse_cmd_blocks("The answer is 42.").unwrap().is_empty());
    }

    #[test]
    fn unclosed_block_is_an_error_with_offset() {
        let t = "<cmd>ls</cmd> and <cmd>echo hi";
        assert_eq!(
            parse_cmd_blocks(t),
            Err(CmdParseError::Unclosed { offset: 18 })
        );
    }

    #[test]
    fn nested_open_tag_is_literal_and_body_ends_at_first_close() {
        let t = "<cmd>grep '<cmd>' notes.txt</cmd>";
        assert_eq!(parse_cmd_blocks(t).unwrap(), vec!["grep '<cmd>' notes.txt"]);
        let t = "<cmd>echo <cmd>x</cmd></cmd>";
        assert_eq!(parse_cmd_blocks(t).unwrap(), vec!["echo <cmd>x"]);
    }

    #[test]
    fn empty_block_is_kept_as_empty() {
        assert_eq!(parse_cmd_blocks("<cmd>  \n </cmd>").unwrap(), vec![""]);
    }

    #[test]
    fn multiline_body_is_kept() {
        let t = "<cmd>\ncd src &&\n  ls\n</cmd>";
        assert_eq!(parse_cmd_blocks(t).unwrap(), vec!["cd src &&\n  ls"]);
    }

    #[test]
    fn stray_close_tag_is_ignored() {
        assert_eq!(
            parse_cmd_blocks("done </cmd> <cmd>ls</cmd>").unwrap(),
            vec!["ls"]
        );
    }

    #[test]
    fn strip_keeps_the_prose() {
        let t = "First I list.\n<cmd>ls</cmd>\nThen I read. <cmd>cat x</cmd>";
        assert_eq!(strip_cmd_blocks(t), "First I list.\n\nThen I read.");
        assert_eq!(strip_cmd_blocks("a <cmd>unclosed"), "a");
    }

    #[test]
    fn result_format_states_failure() {
        assert_eq!(format_result("hi\n", Some(0)), "<result>\nhi\n</result>");
        assert_eq!(
            format_result("boom", Some(2)),
            "<result>\nboom\n[exit code 2]\n</result>"
        );
        assert_eq!(
            format_result("", Some(1)),
            "<result>\n[exit code 1]\n</result>"
        );
    }
}
