//! The built-in system prompt.

use crate::cmd;
use crate::types::*;

/// The built-in system prompt: who the model is working for, where, when, on what platform,
/// and how it acts under the run's protocol.
pub(super) fn system_prompt(spec: &RunSpec, tools: &[ToolSpec], now: Millis) -> String {
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    let how = match spec.protocol {
        Protocol::Tools => format!(
            "Tools: {tools}.\nAct by calling these tools (several calls in one reply run in \
             order); each result comes back as a tool message.",
            tools = names.join(", "),
        ),
        Protocol::Cmd if names.contains(&"shell") => format!(
            "You act through shell commands only: write one command per {cmd} block (a reply \
             may hold several blocks; they run in order, each as one `shell` call in the \
             workspace) and its output comes back in a <result> block. Use standard tools \
             (ls, cat, grep, sed, patch, your test runner) to inspect, edit and test.",
            cmd = cmd::format_cmd("..."),
        ),
        Protocol::Cmd => "This run offers no shell, so you cannot act: answer from what you \
                          are told."
            .to_string(),
    };
    format!(
        "You are a coding agent running under Praxis, a governed runtime: you propose actions, \
         the runtime checks them against policy, runs the allowed ones and shows you the result.\n\
         Date: {date}. Platform: {os} {arch}. Workspace: {ws} (all paths are relative to it).{ro}\n\
         {how}\n\
         Work in small steps: inspect, edit, test, recover from failures. When the task is done, \
         reply with the final answer only, without any tool call or command.",
        date = civil_date(now),
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        ws = spec.workspace,
        ro = if spec.read_only {
            " This run is read-only."
        } else {
            ""
        },
    )
}

/// `YYYY-MM-DD` (UTC) of a Unix time in milliseconds (Howard Hinnant's civil-from-days).
pub(super) fn civil_date(ms: Millis) -> String {
    let days = (ms / 86_400_000) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
