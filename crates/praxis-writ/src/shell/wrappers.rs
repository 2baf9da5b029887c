//! Command-line grammars of wrappers that run another command (`timeout 5 rm x`).

use super::walker::WordInfo;

/// Command-line grammar of a wrapper that runs another command.
pub(super) struct WrapperSpec {
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
    pub(super) assignments: bool,
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

pub(super) fn wrapper_spec(name: &str) -> Option<WrapperSpec> {
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
    pub(super) fn inner_start(
        &self,
        name: &str,
        args: &[WordInfo],
    ) -> Result<Option<usize>, String> {
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
            // `env` and `sudo` take every word with `=` before the command as an assignment.
            while args
                .get(i)
                .is_some_and(|a| !a.text.starts_with('-') && a.text.contains('='))
            {
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
