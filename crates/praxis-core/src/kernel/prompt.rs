//! The built-in system prompt.

use crate::cmd;
use crate::types::*;

/// What the built-in system prompt says: where the model works, when, with which tools
/// under which protocol, and any instructions to append.
///
/// ```
/// use praxis_core::{PromptData, Protocol, build_system_prompt};
/// let prompt = build_system_prompt(&PromptData {
///     workspace: "/srv/repo".into(),
///     read_only: false,
///     protocol: Protocol::Tools,
///     tools: vec!["read_file".into(), "shell".into()],
///     now: 1_767_225_600_000, // 2026-01-01
///     instructions: Some("Answer in French.".into()),
/// });
/// assert!(prompt.contains("Workspace: /srv/repo"));
/// assert!(prompt.contains("Date: 2026-01-01"));
/// assert!(prompt.ends_with("Answer in French."));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptData {
    /// The workspace root as the model should see it.
    pub workspace: String,
    pub read_only: bool,
    pub protocol: Protocol,
    /// Names of the tools offered.
    pub tools: Vec<String>,
    /// Unix time in milliseconds (the date shown).
    pub now: Millis,
    /// Appended after the built-in text, separated by a blank line.
    pub instructions: Option<String>,
}

/// The built-in system prompt for `data` (the kernel's own, made public for callers that
/// drive their own loop).
pub fn build_system_prompt(data: &PromptData) -> String {
    let names: Vec<&str> = data.tools.iter().map(String::as_str).collect();
    let how = match data.protocol {
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
    let mut prompt = format!(
        "You are a coding agent running under Praxis, a governed runtime: you propose actions, \
         the runtime checks them against policy, runs the allowed ones and shows you the result.\n\
         Date: {date}. Platform: {os} {arch}. Workspace: {ws} (all paths are relative to it).{ro}\n\
         {how}\n\
         Work in small steps: inspect, edit, test, recover from failures. When the task is done, \
         reply with the final answer only, without any tool call or command.",
        date = civil_date(data.now),
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        ws = data.workspace,
        ro = if data.read_only {
            " This run is read-only."
        } else {
            ""
        },
    );
    if let Some(extra) = data
        .instructions
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        prompt.push_str("\n\n");
        prompt.push_str(extra);
    }
    prompt
}

/// The run's system prompt: the spec's own, or the built-in one (with the spec's
/// instructions appended).
pub(super) fn system_prompt(spec: &RunSpec, tools: &[ToolSpec], now: Millis) -> String {
    let instructions = match &spec.conversation.system_prompt {
        Some(SystemPrompt::Replace(prompt)) => return prompt.clone(),
        Some(SystemPrompt::Append(extra)) => Some(extra.clone()),
        None => None,
    };
    build_system_prompt(&PromptData {
        workspace: spec.workspace.clone(),
        read_only: spec.read_only,
        protocol: spec.protocol,
        tools: tools.iter().map(|t| t.name.clone()).collect(),
        now,
        instructions,
    })
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
