//! The one place where proposals are judged. For now: the run's tool allowlist, workspace
//! confinement, read-only mode, and the step and time limits. Signed writs plug in here.

use crate::contract::Compiled;
use crate::types::{Effect, Millis, Resource, RunSpec, StopReason, Verdict};
use std::path::{Component, Path, PathBuf};

/// Names of the rules a verdict can cite (recorded in the ledger with every verdict).
pub mod rules {
    pub const CONTRACT: &str = "contract";
    pub const TOOL_ALLOWLIST: &str = "tool_allowlist";
    pub const READ_ONLY: &str = "read_only";
    pub const WORKSPACE_CONFINEMENT: &str = "workspace_confinement";
    pub const DEFAULT_ALLOW: &str = "default_allow";
}

#[derive(Clone, Debug)]
pub struct Policy {
    workspace: PathBuf,
    allowed_tools: Option<Vec<String>>,
    read_only: bool,
    max_steps: u32,
    max_millis: Option<u64>,
}

impl Policy {
    pub fn for_run(spec: &RunSpec) -> Self {
        Policy {
            workspace: PathBuf::from(&spec.workspace),
            allowed_tools: spec.tools.clone(),
            read_only: spec.read_only,
            max_steps: spec.limits.max_steps,
            max_millis: spec.limits.max_seconds.map(|s| s.saturating_mul(1000)),
        }
    }

    pub fn offers(&self, tool: &str) -> bool {
        self.allowed_tools
            .as_ref()
            .is_none_or(|list| list.iter().any(|t| t == tool))
    }

    /// Judges a compiled proposal. The first rule that denies wins.
    pub fn evaluate(&self, tool: &str, compiled: &Compiled) -> Verdict {
        if !self.offers(tool) {
            let allowed = self.allowed_tools.as_deref().unwrap_or_default().join(", ");
            return Verdict::deny(
                rules::TOOL_ALLOWLIST,
                format!("tool `{tool}` is not in this run's tool allowlist (allowed: {allowed})"),
            );
        }
        if self.read_only && compiled.effect > Effect::Read {
            return Verdict::deny(
                rules::READ_ONLY,
                format!(
                    "this run is read-only and `{tool}` has effect `{}`",
                    compiled.effect.as_str()
                ),
            );
        }
        for resource in &compiled.resources {
            if let Resource::Path { path, .. } = resource
                && let Err(why) = confine(&self.workspace, path)
            {
                return Verdict::deny(rules::WORKSPACE_CONFINEMENT, why);
            }
        }
        if self.allowed_tools.is_some() {
            Verdict::allow(rules::TOOL_ALLOWLIST)
        } else {
            Verdict::allow(rules::DEFAULT_ALLOW)
        }
    }

    /// The resources with every path confined and normalised relative to the workspace
    /// (as a writ's path globs expect them). Call only after `evaluate` allowed them.
    pub fn normalized(&self, resources: &[Resource]) -> Vec<Resource> {
        resources
            .iter()
            .map(|r| match r {
                Resource::Path { path, mode } => Resource::Path {
                    path: confine(&self.workspace, path).unwrap_or_else(|_| path.clone()),
                    mode: *mode,
                },
                other => other.clone(),
            })
            .collect()
    }

    /// Whether the run may make model call number `next_step`, at `now` after starting at `started`.
    pub fn before_step(
        &self,
        next_step: u32,
        started: Millis,
        now: Millis,
    ) -> Result<(), StopReason> {
        self.within_deadline(started, now)?;
        if next_step > self.max_steps {
            return Err(StopReason::MaxSteps);
        }
        Ok(())
    }

    pub fn within_deadline(&self, started: Millis, now: Millis) -> Result<(), StopReason> {
        match self.max_millis {
            Some(limit) if now.saturating_sub(started) >= limit => Err(StopReason::Deadline),
            _ => Ok(()),
        }
    }

    /// Absolute time at which the run's wall-clock limit expires.
    pub fn deadline(&self, started: Millis) -> Option<Millis> {
        self.max_millis.map(|m| started.saturating_add(m))
    }
}

/// Lexically confines `path` (relative to the workspace, or absolute inside it) and returns
/// it normalised relative to the workspace root ("." for the root itself). Symlinks are
/// not resolved here: the tool fabric re-checks the real path when it opens the file.
pub fn confine(workspace: &Path, path: &str) -> Result<String, String> {
    if path.contains('\0') {
        return Err(format!("path {path:?} contains a NUL byte"));
    }
    let given = Path::new(path);
    let relative = if given.is_absolute() {
        given.strip_prefix(workspace).map_err(|_| {
            format!(
                "path `{path}` is outside the workspace `{}`",
                workspace.display()
            )
        })?
    } else {
        given
    };
    let mut parts: Vec<&str> = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part),
                None => return Err(format!("path {path:?} is not valid UTF-8")),
            },
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("path `{path}` escapes the workspace through `..`"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("path `{path}` is outside the workspace"));
            }
        }
    }
    Ok(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{AccessMode, Limits};

    fn spec() -> RunSpec {
        RunSpec {
            conversation: Default::default(),
            protocol: Default::default(),
            compaction: None,
            task: "t".into(),
            workspace: "/ws".into(),
            provider: "mock".into(),
            model: String::new(),
            tools: None,
            read_only: false,
            limits: Limits {
                max_steps: 3,
                max_seconds: Some(10),
                max_invalid_replies: 3,
            },
        }
    }

    fn path(p: &str, mode: AccessMode) -> Compiled {
        let effect = if mode == AccessMode::Read {
            Effect::Read
        } else {
            Effect::Write
        };
        Compiled {
            effect,
            resources: vec![Resource::Path {
                path: p.into(),
                mode,
            }],
        }
    }

    #[test]
    fn confinement_normalises_and_rejects_escapes() {
        let ws = Path::new("/ws");
        assert_eq!(confine(ws, "src/../README.md").unwrap(), "README.md");
        assert_eq!(confine(ws, "./a/./b").unwrap(), "a/b");
        assert_eq!(confine(ws, "").unwrap(), ".");
        assert_eq!(confine(ws, "/ws/src/x.rs").unwrap(), "src/x.rs");
        assert!(
            confine(ws, "../etc/passwd")
                .unwrap_err()
                .contains("escapes")
        );
        assert!(confine(ws, "a/../../b").unwrap_err().contains("escapes"));
        assert!(confine(ws, "/etc/shadow").unwrap_err().contains("outside"));
        assert!(
            confine(ws, "/proc/self/environ")
                .unwrap_err()
                .contains("outside")
        );
        assert!(confine(ws, "/wsx/file").unwrap_err().contains("outside"));
        assert!(confine(ws, "a\0b").is_err());
    }

    #[test]
    fn allowlist_read_only_and_confinement_deny_with_their_rule() {
        let mut s = spec();
        let p = Policy::for_run(&s);
        assert_eq!(
            p.evaluate("fs_read", &path("a.txt", AccessMode::Read)),
            Verdict::allow(rules::DEFAULT_ALLOW)
        );
        let v = p.evaluate("fs_read", &path("../x", AccessMode::Read));
        assert_eq!(v.rule(), rules::WORKSPACE_CONFINEMENT);

        s.tools = Some(vec!["fs_read".into()]);
        let p = Policy::for_run(&s);
        assert_eq!(
            p.evaluate("fs_read", &path("a", AccessMode::Read)).kind(),
            "allow"
        );
        let v = p.evaluate("fs_write", &path("a", AccessMode::Write));
        assert_eq!((v.kind(), v.rule()), ("deny", rules::TOOL_ALLOWLIST));

        s.tools = None;
        s.read_only = true;
        let p = Policy::for_run(&s);
        let v = p.evaluate("fs_write", &path("a", AccessMode::Write));
        assert_eq!((v.kind(), v.rule()), ("deny", rules::READ_ONLY));
        assert_eq!(
            p.evaluate("fs_read", &path("a", AccessMode::Read)).kind(),
            "allow"
        );
    }

    #[test]
    fn step_and_time_limits() {
        let p = Policy::for_run(&spec());
        assert_eq!(p.before_step(3, 0, 9_999), Ok(()));
        assert_eq!(p.before_step(4, 0, 1), Err(StopReason::MaxSteps));
        assert_eq!(p.before_step(1, 0, 10_000), Err(StopReason::Deadline));
        assert_eq!(p.deadline(5), Some(10_005));
    }
}
