//! Judging proposals and model calls against a writ's blocks. The effective authority is the
//! intersection of every block: each block must allow a proposal on its own, so a block
//! (however it got into the token) can only narrow what the others allow.

use crate::error::WritError;
use crate::shell::ShellRules;
use crate::spec::{Budget, ToolGrant, ToolMode, WritSpec, compile_glob, format_millis};
use globset::GlobMatcher;
use praxis_core::{AccessMode, Authorization, AuthzRequest, Millis, Resource, Spent, Verdict};

/// Rule names cited by verdicts (recorded in the ledger with every verdict).
pub mod rules {
    pub const ALLOW: &str = "writ";
    pub const TIME_WINDOW: &str = "writ.time_window";
    pub const TOOLS: &str = "writ.tools";
    pub const EFFECT_CEILING: &str = "writ.effect_ceiling";
    pub const PATHS: &str = "writ.paths";
    pub const COMMANDS: &str = "writ.commands";
    pub const HOSTS: &str = "writ.hosts";
    pub const APPROVALS: &str = "writ.approvals";
    /// Prefix of budget rules: `writ.budget.tool_calls`, `writ.budget.usd`, ...
    pub const BUDGET: &str = "writ.budget";
}

/// One block, with its times parsed and its globs compiled once.
#[derive(Clone, Debug)]
struct Block {
    spec: WritSpec,
    not_before: Option<Millis>,
    expires_at: Millis,
    /// Per tool (same order as `spec.tools`): compiled `paths`, None when unrestricted.
    globs: Vec<Option<Vec<GlobMatcher>>>,
}

/// The evaluable form of a list of resolved specs (block 0 first).
#[derive(Clone, Debug)]
pub struct Rules {
    blocks: Vec<Block>,
}

impl Rules {
    /// Specs must be resolved (absolute `expires_at`); `index` in errors is the block number.
    pub fn new(specs: Vec<WritSpec>) -> Result<Self, WritError> {
        if specs.is_empty() {
            return Err(WritError::BadBlock {
                block: 0,
                reason: "a writ needs at least one block".into(),
            });
        }
        let mut blocks = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            let bad = |e: WritError| WritError::BadBlock {
                block: index,
                reason: e.to_string(),
            };
            spec.validate().map_err(bad)?;
            let (not_before, expires_at) = spec.window().map_err(bad)?;
            let mut globs = Vec::with_capacity(spec.tools.len());
            for tool in &spec.tools {
                globs.push(match &tool.paths {
                    None => None,
                    Some(list) => Some(
                        list.iter()
                            .map(|g| compile_glob(g))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|reason| WritError::BadBlock {
                                block: index,
                                reason,
                            })?,
                    ),
                });
            }
            blocks.push(Block {
                spec,
                not_before,
                expires_at,
                globs,
            });
        }
        Ok(Rules { blocks })
    }

    pub fn specs(&self) -> impl Iterator<Item = &WritSpec> {
        self.blocks.iter().map(|b| &b.spec)
    }

    /// Whether the commands `tools` start may write the workspace's `.git` (it is mounted
    /// read-only for them otherwise). Every block must grant each of those tools it can run
    /// (granted by every block) for writing with a path pattern that names `.git` and
    /// covers its hooks, the same grant a file tool needs to write there; `**` does not.
    pub fn commands_write_git(&self, tools: &[String]) -> bool {
        let granted: Vec<&String> = tools
            .iter()
            .filter(|t| self.blocks.iter().all(|b| b.grant(t).is_some()))
            .collect();
        !granted.is_empty()
            && granted.iter().all(|t| {
                self.blocks.iter().all(|b| {
                    b.grant(t).is_some_and(|(tool, globs)| {
                        path_denial(tool, globs, GIT_HOOK, AccessMode::Write, 0).is_none()
                    })
                })
            })
    }

    /// The earliest expiry over all blocks.
    pub fn expires_at(&self) -> Millis {
        self.blocks.iter().map(|b| b.expires_at).min().unwrap_or(0)
    }

    /// The latest start over all blocks, if any block has one.
    pub fn not_before(&self) -> Option<Millis> {
        self.blocks.iter().filter_map(|b| b.not_before).max()
    }

    /// Checks the validity window of every block at `now`.
    pub(crate) fn check_time(&self, now: Millis) -> Result<(), WritError> {
        for (index, block) in self.blocks.iter().enumerate() {
            if now >= block.expires_at {
                return Err(WritError::Expired {
                    block: index,
                    expires_at: format_millis(block.expires_at),
                    now: format_millis(now),
                });
            }
            if let Some(nb) = block.not_before
                && now < nb
            {
                return Err(WritError::NotYetValid {
                    block: index,
                    not_before: format_millis(nb),
                    now: format_millis(now),
                });
            }
        }
        Ok(())
    }

    fn time_verdict(&self, now: Millis) -> Option<Verdict> {
        self.check_time(now)
            .err()
            .map(|e| Verdict::deny(rules::TIME_WINDOW, e.to_string()))
    }

    /// Judges one proposal: denials first (time, tool, ceiling, paths, commands, hosts, in
    /// every block), then budgets, then approvals; the first failure wins.
    pub fn authorize(&self, req: &AuthzRequest<'_>) -> Authorization {
        if let Some(v) = self.time_verdict(req.now) {
            return Authorization::Verdict(v);
        }
        for (index, block) in self.blocks.iter().enumerate() {
            if let Some(v) = block.deny(index, req) {
                return Authorization::Verdict(v);
            }
        }
        // A block's budget is soft only if that block itself lets a person approve going
        // over it; a budget hard in any block stops the call, whatever other blocks say.
        let mut soft = None;
        for (index, block) in self.blocks.iter().enumerate() {
            match block.tool_budgets(index, req.spent) {
                Some(Authorization::Exhausted { rule, reason }) if block.spec.approvals.budgets => {
                    soft.get_or_insert(Verdict::NeedsApproval {
                        rule,
                        reason: format!(
                            "{reason}; writ block {index} lets a person approve going over it"
                        ),
                    });
                }
                Some(exhausted) => return exhausted,
                None => {}
            }
        }
        if let Some(verdict) = soft {
            return Authorization::Verdict(verdict);
        }
        for (index, block) in self.blocks.iter().enumerate() {
            let approvals = &block.spec.approvals;
            if approvals.tools.iter().any(|t| t == req.tool) {
                return Authorization::Verdict(Verdict::NeedsApproval {
                    rule: rules::APPROVALS.into(),
                    reason: format!("block {index} requires approval for tool `{}`", req.tool),
                });
            }
            if approvals.effects.contains(&req.effect) {
                return Authorization::Verdict(Verdict::NeedsApproval {
                    rule: rules::APPROVALS.into(),
                    reason: format!(
                        "block {index} requires approval for effect `{}` (tool `{}`)",
                        req.effect.as_str(),
                        req.tool
                    ),
                });
            }
        }
        Authorization::Verdict(Verdict::allow(rules::ALLOW))
    }

    /// Whether another model call fits: time window, then model calls, tokens, money, wall.
    pub fn before_model_call(&self, now: Millis, spent: &Spent) -> Authorization {
        if let Some(v) = self.time_verdict(now) {
            return Authorization::Verdict(v);
        }
        for (index, block) in self.blocks.iter().enumerate() {
            let b = &block.spec.budget;
            if let Some(limit) = b.model_calls
                && spent.model_calls.saturating_add(1) > limit
            {
                return exhausted(index, "model_calls", limit, spent.model_calls);
            }
            if let Some(limit) = b.model_tokens
                && spent.model_tokens >= limit
            {
                return exhausted(index, "model_tokens", limit, spent.model_tokens);
            }
            if let Some(e) = money_and_wall(index, block, spent) {
                return e;
            }
        }
        Authorization::Verdict(Verdict::allow(rules::ALLOW))
    }

    /// What the writ still allows after `spent`: for each budget, the least that any block
    /// has left (None: no block limits it). Model calls and tool calls count one per call,
    /// so a remaining 0 allows none.
    pub fn remaining(&self, spent: &Spent) -> Budget {
        let least = |limits: &mut dyn Iterator<Item = Option<u64>>, used: u64| {
            limits.flatten().map(|l| l.saturating_sub(used)).min()
        };
        let budgets = || self.blocks.iter().map(|b| &b.spec.budget);
        Budget {
            tool_calls: least(&mut budgets().map(|b| b.tool_calls), spent.tool_calls),
            model_calls: least(&mut budgets().map(|b| b.model_calls), spent.model_calls),
            model_tokens: least(&mut budgets().map(|b| b.model_tokens), spent.model_tokens),
            wall_seconds: least(
                &mut budgets().map(|b| b.wall_seconds.map(|s| s.saturating_mul(1000))),
                spent.wall_ms,
            )
            .map(|ms| ms / 1000),
            usd: least(&mut budgets().map(|b| b.usd_micros()), spent.usd_micros)
                .map(|micros| micros as f64 / 1e6),
            bytes_written: least(&mut budgets().map(|b| b.bytes_written), spent.bytes_written),
        }
    }

    /// The smallest approval timeout over all blocks.
    pub fn approval_timeout_ms(&self) -> Option<u64> {
        self.blocks
            .iter()
            .filter_map(|b| b.spec.approvals.timeout_seconds)
            .min()
            .map(|s| s.saturating_mul(1000))
    }
}

/// A path whose write grant stands for write access to the whole `.git` of commands.
const GIT_HOOK: &str = ".git/hooks/pre-commit";

impl Block {
    /// The grant of tool `name` in this block, with its compiled path globs.
    fn grant(&self, name: &str) -> Option<(&ToolGrant, Option<&[GlobMatcher]>)> {
        let pos = self.spec.tools.iter().position(|t| t.name == name)?;
        Some((&self.spec.tools[pos], self.globs[pos].as_deref()))
    }

    fn deny(&self, index: usize, req: &AuthzRequest<'_>) -> Option<Verdict> {
        let spec = &self.spec;
        let Some(pos) = spec.tools.iter().position(|t| t.name == req.tool) else {
            let listed: Vec<&str> = spec.tools.iter().map(|t| t.name.as_str()).collect();
            return Some(Verdict::deny(
                rules::TOOLS,
                format!(
                    "tool `{}` is not granted by writ block {index} (granted: {})",
                    req.tool,
                    listed.join(", ")
                ),
            ));
        };
        let tool = &spec.tools[pos];
        if req.effect > spec.effect_ceiling {
            return Some(Verdict::deny(
                rules::EFFECT_CEILING,
                format!(
                    "tool `{}` has effect `{}` above the effect ceiling `{}` of writ block {index}",
                    req.tool,
                    req.effect.as_str(),
                    spec.effect_ceiling.as_str()
                ),
            ));
        }
        for resource in req.resources {
            let denied = match resource {
                Resource::Path { path, mode } => {
                    path_denial(tool, self.globs[pos].as_deref(), path, *mode, index)
                        .map(|why| Verdict::deny(rules::PATHS, why))
                }
                Resource::Command { command } => {
                    let rules = ShellRules {
                        allow: tool.allow_commands.as_deref().unwrap_or(&[]),
                        deny: tool.deny_commands.as_deref().unwrap_or(&[]),
                        allow_env: tool.allow_env.as_deref().unwrap_or(&[]),
                    };
                    // A command tool names its working directory as its first path.
                    let cwd = req
                        .resources
                        .iter()
                        .find_map(|r| match r {
                            Resource::Path { path, .. } => Some(path.as_str()),
                            _ => None,
                        })
                        .unwrap_or(".");
                    let globs = self.globs[pos].as_deref();
                    let judge_path = |path: &str, write: bool| {
                        let mode = if write {
                            AccessMode::Write
                        } else {
                            AccessMode::Read
                        };
                        path_denial(tool, globs, path, mode, index).map_or(Ok(()), Err)
                    };
                    crate::shell::check_command(command, &rules, cwd, &judge_path)
                        .err()
                        .map(|why| {
                            Verdict::deny(
                                rules::COMMANDS,
                                format!("writ block {index}, tool `{}`: {why}", tool.name),
                            )
                        })
                }
                Resource::Host { host } => {
                    host_denial(tool, host, index).map(|why| Verdict::deny(rules::HOSTS, why))
                }
            };
            if denied.is_some() {
                return denied;
            }
        }
        None
    }

    fn tool_budgets(&self, index: usize, spent: &Spent) -> Option<Authorization> {
        let b = &self.spec.budget;
        if let Some(limit) = b.tool_calls
            && spent.tool_calls.saturating_add(1) > limit
        {
            return Some(exhausted(index, "tool_calls", limit, spent.tool_calls));
        }
        if let Some(limit) = b.bytes_written
            && spent.bytes_written >= limit
        {
            return Some(exhausted(
                index,
                "bytes_written",
                limit,
                spent.bytes_written,
            ));
        }
        if let Some(e) = money_and_wall(index, self, spent) {
            return Some(e);
        }
        if let Some(limit) = b.model_tokens
            && spent.model_tokens >= limit
        {
            return Some(exhausted(index, "model_tokens", limit, spent.model_tokens));
        }
        None
    }
}

fn money_and_wall(index: usize, block: &Block, spent: &Spent) -> Option<Authorization> {
    let b = &block.spec.budget;
    if let Some(limit) = b.wall_seconds
        && spent.wall_ms >= limit.saturating_mul(1000)
    {
        return Some(Authorization::Exhausted {
            rule: format!("{}.wall_seconds", rules::BUDGET),
            reason: format!(
                "wall-clock budget of writ block {index} is used up: limit {limit} s, spent {} ms",
                spent.wall_ms
            ),
        });
    }
    if let Some(limit) = b.usd_micros()
        && spent.usd_micros >= limit
    {
        return Some(Authorization::Exhausted {
            rule: format!("{}.usd", rules::BUDGET),
            reason: format!(
                "money budget of writ block {index} is used up: limit ${:.6}, spent ${:.6}",
                limit as f64 / 1e6,
                spent.usd_micros as f64 / 1e6
            ),
        });
    }
    None
}

fn exhausted(index: usize, name: &str, limit: u64, spent: u64) -> Authorization {
    Authorization::Exhausted {
        rule: format!("{}.{name}", rules::BUDGET),
        reason: format!(
            "{name} budget of writ block {index} is used up: limit {limit}, spent {spent}"
        ),
    }
}

fn path_denial(
    tool: &ToolGrant,
    globs: Option<&[GlobMatcher]>,
    path: &str,
    mode: AccessMode,
    index: usize,
) -> Option<String> {
    // The run policy hands over normalised relative paths; anything else is refused here
    // rather than matched, so a glob can never be fooled by `..` or an absolute path.
    if path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path.split('/').any(|p| p == ".." || p.is_empty())
    {
        return Some(format!(
            "path `{path}` is not a normalised workspace-relative path"
        ));
    }
    if mode == AccessMode::Write && tool.mode() == ToolMode::Read {
        return Some(format!(
            "writ block {index} grants tool `{}` read-only access, but it would write `{path}`",
            tool.name
        ));
    }
    // A repository's `.git` holds hooks and config that run unconfined at the user's next
    // git command: writing there needs a pattern that names `.git` itself (`**` does not).
    if mode == AccessMode::Write && path.split('/').any(|p| p == ".git") {
        let patterns = tool.paths.as_deref().unwrap_or_default();
        let explicit = globs.is_some_and(|globs| {
            patterns.iter().zip(globs).any(|(pattern, glob)| {
                pattern.split('/').any(|p| p == ".git") && glob.is_match(path)
            })
        });
        if !explicit {
            return Some(format!(
                "`{path}` is inside a `.git` directory, which writ block {index} does not grant                  tool `{}` for writing (it needs a path pattern naming `.git`, e.g. `.git/**`)",
                tool.name
            ));
        }
    }
    if let Some(globs) = globs
        && !globs.iter().any(|g| g.is_match(path))
    {
        let listed = tool.paths.as_deref().unwrap_or_default().join(", ");
        return Some(format!(
            "path `{path}` is outside the paths writ block {index} grants tool `{}` ({listed})",
            tool.name
        ));
    }
    None
}

fn host_denial(tool: &ToolGrant, host: &str, index: usize) -> Option<String> {
    let patterns = tool.hosts.as_deref().unwrap_or_default();
    if patterns.iter().any(|p| host_matches(host, p)) {
        return None;
    }
    Some(if patterns.is_empty() {
        format!(
            "writ block {index} grants tool `{}` no network hosts, but it would reach `{host}`",
            tool.name
        )
    } else {
        format!(
            "host `{host}` is not among the hosts writ block {index} grants tool `{}` ({})",
            tool.name,
            patterns.join(", ")
        )
    })
}

/// `pattern` is an exact host name or `*.domain` (any subdomain of `domain`, at any depth,
/// but not `domain` itself). Comparison ignores case and a trailing dot.
pub(crate) fn host_matches(host: &str, pattern: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => {
            host.len() > suffix.len() && host.ends_with(suffix)
        }
        _ => host == pattern,
    }
}
