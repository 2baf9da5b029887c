//! What a line does to the shell itself besides running commands: the variables it may
//! assign (for the environment rule) and whether it changes directory.

use super::walker::{Walker, WordInfo};

impl Walker {
    /// What builtins do to the shell itself: change directory, or assign variables by name
    /// (`export X=1`, `declare -n r=X`, `read X`, `printf -v X`, `let X=1`, `unset X`).
    /// Also: `alias n='...'` and `trap '...' SIG` run their text later, so it is parsed as
    /// a script now; `hash -p FILE NAME` and `enable -f LIB NAME` make a name run other code,
    /// which cannot be judged.
    pub(super) fn builtin_effects(
        &mut self,
        base: &str,
        args: &[WordInfo],
        depth: usize,
    ) -> Result<(), String> {
        let flag = |f: char| {
            args.iter()
                .any(|a| a.text.starts_with('-') && a.text.contains(f))
        };
        match base {
            "hash" if flag('p') => {
                return Err("`hash -p` makes a command name run another program".into());
            }
            "enable" if flag('f') => {
                return Err("`enable -f` loads a builtin from a shared object".into());
            }
            "alias" => {
                for arg in args {
                    if let Some((_, body)) = arg.text.split_once('=') {
                        if arg.dynamic {
                            return Err(format!("alias `{}` is computed at run time", arg.text));
                        }
                        self.script(body, depth + 1)?;
                    }
                }
            }
            "trap" => {
                let action = args.iter().find(|a| !a.text.starts_with('-'));
                if let Some(action) = action {
                    if action.dynamic {
                        return Err(format!(
                            "trap action `{}` is computed at run time",
                            action.text
                        ));
                    }
                    self.script(&action.text, depth + 1)?;
                }
            }
            "cd" | "pushd" | "popd" => self.changes_dir = true,
            "export" | "declare" | "typeset" | "local" | "readonly" => {
                let nameref = args
                    .iter()
                    .any(|a| a.text.starts_with('-') && a.text.contains('n'));
                for arg in args.iter().filter(|a| !a.text.starts_with(['-', '+'])) {
                    let (name, value) = match arg.text.split_once('=') {
                        Some((name, value)) => (name.trim_end_matches('+'), Some(value)),
                        None => (arg.text.as_str(), None),
                    };
                    self.assigned.push(leading_name(name).to_string());
                    if let Some(value) = value {
                        self.arithmetic(value);
                        // `declare -n r=PATH`: assigning `r` assigns PATH.
                        if nameref {
                            self.assigned.push(leading_name(value).to_string());
                        }
                    }
                }
            }
            "read" | "mapfile" | "readarray" | "getopts" | "unset" => {
                for arg in args.iter().filter(|a| !a.text.starts_with('-')) {
                    self.assigned.push(leading_name(&arg.text).to_string());
                }
            }
            "printf" => {
                for pair in args.windows(2) {
                    if pair[0].text == "-v" {
                        self.assigned.push(leading_name(&pair[1].text).to_string());
                    }
                }
            }
            "let" => {
                for arg in args {
                    self.arithmetic(&arg.text);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Variables an arithmetic text may assign: a name followed by `=` (not `==`), an
    /// operator-assignment (`+=`, `<<=`, ...) or next to `++`/`--`. Names held in variables
    /// (`$X=1`) are not known.
    pub(super) fn arithmetic(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if !(c.is_ascii_alphabetic() || c == b'_') {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let name = &text[start..i];
            let before = text[..start].trim_end();
            let mut rest = text[i..].trim_start();
            if rest.starts_with('[')
                && let Some(close) = rest.find(']')
            {
                rest = rest[close + 1..].trim_start();
            }
            let assigns = before.ends_with("++")
                || before.ends_with("--")
                || rest.starts_with("++")
                || rest.starts_with("--")
                || (rest.starts_with('=') && !rest.starts_with("=="))
                || ["+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="]
                    .iter()
                    .any(|op| rest.starts_with(op));
            // A digit-led run (`0x1F`) is a number, not a name; `$X` is a value.
            let is_value = before.ends_with('$');
            if assigns && !is_value {
                self.assigned.push(name.to_string());
            }
        }
    }

    /// `${X:=v}` and `${X=v}` assign X; subscripts and offsets are arithmetic.
    pub(super) fn parameter(&mut self, inner: &str) {
        let name = leading_name(inner);
        let rest = &inner[name.len()..];
        if rest.starts_with(":=") || rest.starts_with('=') {
            self.assigned.push(name.to_string());
        }
        self.arithmetic(rest);
    }
}

/// The shell name at the start of `text` (`PATH` in `PATH[0]`, `PATH+`, `PATH}`).
fn leading_name(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}
