//! Context compaction: before a model call whose conversation is estimated above the
//! configured share of the context window, older observations are truncated to stubs, or
//! summarized by the model (the summary replaces the older turns).

use super::{Command, Kernel, Phase, record};
use crate::record::{CompactionRecord, DroppedObservation, Record};
use crate::types::*;
use std::sync::Arc;

/// How a compacted observation's stub begins (so it is never compacted twice).
const COMPACTED_MARK: &str = "[compacted:";

impl Kernel {
    /// Estimated tokens of the next request: every message (text, tool calls, reasoning)
    /// plus the tool schemas offered.
    fn conversation_tokens(&self) -> u64 {
        let messages: u64 = self
            .messages
            .iter()
            .map(|m| {
                estimate_tokens(&m.content)
                    + m.tool_calls
                        .iter()
                        .map(|c| {
                            estimate_tokens(&c.name) + estimate_tokens(&c.arguments.to_string())
                        })
                        .sum::<u64>()
                    + m.reasoning
                        .iter()
                        .map(|r| estimate_tokens(&r.text))
                        .sum::<u64>()
            })
            .sum();
        let tools: u64 = self
            .offered
            .iter()
            .map(|t| estimate_tokens(&t.description) + estimate_tokens(&t.parameters.to_string()))
            .sum();
        messages + tools
    }

    /// Indices of observation messages (tool results, `<result>` blocks) after the task.
    fn observations(&self) -> Vec<usize> {
        self.messages
            .iter()
            .enumerate()
            .skip(2)
            .filter(|(_, m)| {
                m.role == Role::Tool || (m.role == Role::User && m.content.starts_with("<result>"))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Before a model call: when the conversation would exceed the configured share of the
    /// context window, compacts it. Truncation happens at once (recorded); a summary is asked
    /// of the model first (returns true: the summary request was issued instead of the step).
    pub(super) fn compact(&mut self, now: Millis, out: &mut Vec<Command>) -> bool {
        let Some(compaction) = self.spec.compaction.clone() else {
            return false;
        };
        let limit = compaction.context_window * u64::from(compaction.threshold_percent) / 100;
        let tokens_before = self.conversation_tokens();
        if tokens_before <= limit {
            return false;
        }
        if compaction.mode == CompactionMode::Summarize
            && let Some(cut) = self.summary_cut(compaction.keep_recent)
        {
            out.push(Command::CallModel(self.summary_request(cut)));
            self.phase = Phase::AwaitingSummary { cut, tokens_before };
            return true;
        }
        self.truncate(now, tokens_before, limit, compaction.keep_recent, None, out);
        false
    }

    /// Replaces the oldest observations (all but the `keep_recent` latest) by a stub until the
    /// estimate fits under `limit`, and records what was dropped.
    fn truncate(
        &mut self,
        now: Millis,
        tokens_before: u64,
        limit: u64,
        keep_recent: u32,
        error: Option<String>,
        out: &mut Vec<Command>,
    ) {
        let observations = self.observations();
        let droppable = observations.len().saturating_sub(keep_recent as usize);
        let mut dropped = Vec::new();
        let mut tokens = tokens_before;
        for &index in &observations[..droppable] {
            if tokens <= limit {
                break;
            }
            let message = &self.messages[index];
            if message.content.starts_with(COMPACTED_MARK) {
                continue;
            }
            let bytes = message.content.len();
            let stub = format!(
                "{COMPACTED_MARK} an observation of {bytes} bytes was dropped to fit the context \
                 window; run the tool again if you need it]"
            );
            let call_id = message.tool_call_id.clone();
            tokens = tokens - estimate_tokens(&message.content) + estimate_tokens(&stub);
            Arc::make_mut(&mut self.messages)[index].content = stub;
            dropped.push(DroppedObservation {
                message: index,
                call_id,
                bytes,
            });
        }
        if dropped.is_empty() && error.is_none() {
            return;
        }
        record(
            out,
            Record::Compaction(CompactionRecord::Truncate {
                step: self.steps,
                dropped,
                tokens_before,
                tokens_after: tokens,
                // Why the summary failed (so truncation happened instead), as the driver said it.
                summary_error: error,
                now,
            }),
        );
    }

    /// Where a summary ends: the start of the turn holding the `keep_recent`-th latest
    /// observation (an assistant message), so tool calls and their results stay together.
    fn summary_cut(&self, keep_recent: u32) -> Option<usize> {
        let observations = self.observations();
        let first_kept = if keep_recent == 0 {
            self.messages.len()
        } else {
            *observations.iter().rev().nth(keep_recent as usize - 1)?
        };
        let cut = (2..first_kept)
            .rev()
            .find(|&i| self.messages[i].role == Role::Assistant)?;
        // Something worth summarizing: at least one whole turn before the cut.
        (cut > 3).then_some(cut)
    }

    pub(super) fn summary_request(&self, cut: usize) -> ModelRequest {
        let mut transcript = String::new();
        for m in &self.messages[2..cut] {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool result",
            };
            transcript.push_str(&format!("[{role}] {}\n", m.content));
            for call in &m.tool_calls {
                transcript.push_str(&format!("[tool call] {} {}\n", call.name, call.arguments));
            }
        }
        ModelRequest {
            step: COMPACTION_STEP,
            messages: Arc::new(vec![
                Message::new(
                    Role::System,
                    "You compress a coding agent's working history so it fits its context \
                     window. Summarize the transcript: progress on the task, files inspected \
                     and changed, commands run and their key results, errors met, and what \
                     remains. Be concise and factual; keep paths, names and numbers exact.",
                ),
                Message::new(
                    Role::User,
                    // The task message carries any earlier summary: it is summarized again.
                    format!(
                        "Task: {}\n\nTranscript:\n{transcript}",
                        self.messages[1].content
                    ),
                ),
            ]),
            tools: Arc::new(Vec::new()),
        }
    }

    /// The summary arrived (or failed: then observations are truncated instead); the run's
    /// step is asked next.
    pub(super) fn summarized(
        &mut self,
        now: Millis,
        cut: usize,
        tokens_before: u64,
        reply: Result<ModelResponse, String>,
        out: &mut Vec<Command>,
    ) {
        self.phase = Phase::AwaitingModel;
        let compaction = self
            .spec
            .compaction
            .clone()
            .expect("only compaction asks for a summary");
        match reply {
            Ok(response) => {
                self.usage.add(response.usage);
                self.usd_micros += self.prices.cost_micros(&response.model, response.usage);
                let messages = Arc::make_mut(&mut self.messages);
                messages.drain(2..cut);
                messages[1].content = format!(
                    "{}\n\n[praxis] Summary of earlier work (compacted to fit the context \
                     window):\n{}",
                    self.spec.task, response.content
                );
                let tokens_after = self.conversation_tokens();
                record(
                    out,
                    Record::Compaction(CompactionRecord::Summarize {
                        step: self.steps,
                        replaced_messages: cut - 2,
                        summary: response.content,
                        model: response.model,
                        usage: response.usage,
                        tokens_before,
                        tokens_after,
                        now,
                    }),
                );
            }
            Err(error) => {
                let limit =
                    compaction.context_window * u64::from(compaction.threshold_percent) / 100;
                self.truncate(
                    now,
                    tokens_before,
                    limit,
                    compaction.keep_recent,
                    Some(error),
                    out,
                );
            }
        }
        out.push(Command::CallModel(self.current_request()));
    }
}
