//! Whether a child spec is no wider than a parent block, field by field. The checks are
//! deliberately conservative (they may refuse a child that is in fact narrower); evaluation
//! intersects all blocks anyway, so these checks exist to tell the delegator early and
//! precisely what they asked for that they cannot have.
//!
//! Path globs: a child glob is covered by the parent's globs for the same tool only if
//! - it is textually equal to one of them, or
//! - the parent has `**` (everything in the workspace), or
//! - a parent glob is `D/**` with `D` free of glob syntax, and the child glob starts with
//!   `D/` (so everything it can match lies under `D/`).
//!
//! Hosts: a child host is covered if equal to a parent host, or if a parent pattern
//! `*.domain` covers it (`a.domain`, `*.sub.domain`).

use crate::error::WritError;
use crate::eval::host_matches;
use crate::spec::{ToolMode, WritSpec};

/// Refuses `child` if it grants anything that parent block `index` does not.
pub(crate) fn check(parent: &WritSpec, index: usize, child: &WritSpec) -> Result<(), WritError> {
    let of = format!("parent block {index}");
    if child.tenant != parent.tenant {
        return Err(WritError::widening(
            "tenant",
            format!(
                "`{}` differs from `{}` in {of}",
                child.tenant, parent.tenant
            ),
        ));
    }
    if child.effect_ceiling > parent.effect_ceiling {
        return Err(WritError::widening(
            "effect_ceiling",
            format!(
                "`{}` is above `{}` in {of}",
                child.effect_ceiling.as_str(),
                parent.effect_ceiling.as_str()
            ),
        ));
    }
    let (_, parent_exp) = parent.window()?;
    let (_, child_exp) = child.window()?;
    if child_exp > parent_exp {
        return Err(WritError::widening(
            "expires_at",
            format!(
                "{} is later than {} in {of}",
                child.expires_at.as_deref().unwrap_or_default(),
                parent.expires_at.as_deref().unwrap_or_default()
            ),
        ));
    }

    for ((name, p), (_, c)) in parent
        .budget
        .integers()
        .into_iter()
        .zip(child.budget.integers())
    {
        if let Some(p) = p {
            match c {
                None => {
                    return Err(WritError::widening(
                        format!("budget.{name}"),
                        format!("missing, but {of} limits it to {p}"),
                    ));
                }
                Some(c) if c > p => {
                    return Err(WritError::widening(
                        format!("budget.{name}"),
                        format!("{c} is more than {p} in {of}"),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    if let Some(p) = parent.budget.usd {
        match child.budget.usd {
            None => {
                return Err(WritError::widening(
                    "budget.usd",
                    format!("missing, but {of} limits it to {p}"),
                ));
            }
            Some(c) if c > p => {
                return Err(WritError::widening(
                    "budget.usd",
                    format!("{c} is more than {p} in {of}"),
                ));
            }
            Some(_) => {}
        }
    }

    for (i, ct) in child.tools.iter().enumerate() {
        let field = |rest: &str| format!("tools[{i}].{rest}");
        let Some(pt) = parent.tool(&ct.name) else {
            return Err(WritError::widening(
                field("name"),
                format!("tool `{}` is not granted by {of}", ct.name),
            ));
        };
        if let Some(parent_globs) = &pt.paths {
            let Some(child_globs) = &ct.paths else {
                return Err(WritError::widening(
                    field("paths"),
                    format!(
                        "missing (any path), but {of} limits `{}` to {}",
                        ct.name,
                        parent_globs.join(", ")
                    ),
                ));
            };
            for (j, glob) in child_globs.iter().enumerate() {
                if !glob_covered(glob, parent_globs) {
                    return Err(WritError::widening(
                        field(&format!("paths[{j}]")),
                        format!(
                            "`{glob}` is not within {} granted to `{}` by {of}",
                            parent_globs.join(", "),
                            ct.name
                        ),
                    ));
                }
            }
        }
        if pt.mode() == ToolMode::Read && ct.mode() == ToolMode::ReadWrite {
            return Err(WritError::widening(
                field("mode"),
                format!(
                    "read-write (the default), but {of} grants `{}` read only",
                    ct.name
                ),
            ));
        }
        let parent_allow = pt.allow_commands.as_deref().unwrap_or_default();
        if !parent_allow.is_empty() {
            // An empty allow list allows every command, so the child must keep a list.
            let child_allow = ct.allow_commands.as_deref().unwrap_or_default();
            if child_allow.is_empty() {
                return Err(WritError::widening(
                    field("allow_commands"),
                    format!(
                        "missing or empty (any command), but {of} allows only {}",
                        parent_allow.join(", ")
                    ),
                ));
            }
            for (j, pattern) in child_allow.iter().enumerate() {
                if !parent_allow.contains(pattern) {
                    return Err(WritError::widening(
                        field(&format!("allow_commands[{j}]")),
                        format!(
                            "`{pattern}` is not among the commands {of} allows ({})",
                            parent_allow.join(", ")
                        ),
                    ));
                }
            }
        }
        let child_deny = ct.deny_commands.as_deref().unwrap_or_default();
        for pattern in pt.deny_commands.iter().flatten() {
            if !child_deny.contains(pattern) {
                return Err(WritError::widening(
                    field("deny_commands"),
                    format!("drops `{pattern}`, which {of} denies"),
                ));
            }
        }
        let parent_env = pt.allow_env.as_deref().unwrap_or_default();
        for (j, pattern) in ct.allow_env.iter().flatten().enumerate() {
            if !parent_env.contains(pattern) && !parent_env.iter().any(|p| p == "*") {
                return Err(WritError::widening(
                    field(&format!("allow_env[{j}]")),
                    if parent_env.is_empty() {
                        format!(
                            "`{pattern}`, but {of} lets `{}` assign no sensitive variable",
                            ct.name
                        )
                    } else {
                        format!(
                            "`{pattern}` is not among the variables {of} lets `{}` assign ({})",
                            ct.name,
                            parent_env.join(", ")
                        )
                    },
                ));
            }
        }
        let parent_hosts = pt.hosts.as_deref().unwrap_or_default();
        for (j, host) in ct.hosts.iter().flatten().enumerate() {
            if !parent_hosts.iter().any(|p| host_covered(host, p)) {
                return Err(WritError::widening(
                    field(&format!("hosts[{j}]")),
                    if parent_hosts.is_empty() {
                        format!("`{host}`, but {of} grants `{}` no hosts", ct.name)
                    } else {
                        format!(
                            "`{host}` is not within {} granted to `{}` by {of}",
                            parent_hosts.join(", "),
                            ct.name
                        )
                    },
                ));
            }
        }
    }

    // Under hard budgets, letting a person approve going over them is more, not less.
    if child.approvals.budgets && !parent.approvals.budgets && !parent.budget.is_empty() {
        return Err(WritError::widening(
            "approvals.budgets",
            format!("true, but the budgets of {of} are hard (it does not set it)"),
        ));
    }
    for tool in &parent.approvals.tools {
        if child.tool(tool).is_some() && !child.approvals.tools.contains(tool) {
            return Err(WritError::widening(
                "approvals.tools",
                format!("drops `{tool}`, which {of} requires approval for"),
            ));
        }
    }
    for effect in &parent.approvals.effects {
        if !child.approvals.effects.contains(effect) {
            return Err(WritError::widening(
                "approvals.effects",
                format!(
                    "drops `{}`, which {of} requires approval for",
                    effect.as_str()
                ),
            ));
        }
    }
    Ok(())
}

fn glob_covered(child: &str, parents: &[String]) -> bool {
    parents.iter().any(|p| {
        if p == child || p == "**" {
            return true;
        }
        match p.strip_suffix("/**") {
            Some(dir) if !dir.is_empty() && !has_glob_syntax(dir) => {
                child.starts_with(dir) && child[dir.len()..].starts_with('/')
            }
            _ => false,
        }
    })
}

fn has_glob_syntax(text: &str) -> bool {
    text.contains(['*', '?', '[', ']', '{', '}', '\\', '!'])
}

fn host_covered(child: &str, parent: &str) -> bool {
    let child = child.trim_end_matches('.').to_ascii_lowercase();
    let parent = parent.trim_end_matches('.').to_ascii_lowercase();
    if child == parent {
        return true;
    }
    // `*.sub.domain` is within `*.domain`; a plain host is checked like a request.
    let probe = child.strip_prefix('*').unwrap_or(&child);
    if probe.starts_with('.') {
        parent.starts_with("*.") && probe.ends_with(&parent[1..]) && probe.len() > parent.len() - 1
    } else {
        host_matches(&child, &parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_coverage_is_conservative() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(glob_covered("src/**", &p(&["src/**"])));
        assert!(glob_covered("anything/*.rs", &p(&["**"])));
        assert!(glob_covered("src/a/*.rs", &p(&["src/**"])));
        assert!(!glob_covered("srcx/a.rs", &p(&["src/**"])));
        assert!(!glob_covered("**", &p(&["src/**"])));
        assert!(!glob_covered("src", &p(&["src/**"])));
        assert!(!glob_covered("*/a.rs", &p(&["src/**"])));
        // The parent's directory must be literal for the prefix rule.
        assert!(!glob_covered("s*/x", &p(&["s*/**"])));
        assert!(!glob_covered("src/*.rs", &p(&["src/*.txt"])));
    }

    #[test]
    fn host_coverage() {
        assert!(host_covered("api.example.com", "api.example.com"));
        assert!(host_covered("api.example.com", "*.example.com"));
        assert!(host_covered("*.sub.example.com", "*.example.com"));
        assert!(host_covered("*.example.com", "*.example.com"));
        assert!(!host_covered("*.example.com", "api.example.com"));
        assert!(!host_covered("example.com", "*.example.com"));
        assert!(!host_covered("*.com", "*.example.com"));
        assert!(!host_covered("evil-example.com", "*.example.com"));
    }
}
