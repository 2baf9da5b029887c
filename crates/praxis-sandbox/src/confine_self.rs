//! Confining the calling process itself: the tool worker, which opens workspace files for
//! the file tools, is Landlocked to what its tools and commands need, so that a bug in path
//! resolution (a race swapping a directory for a symlink) still reaches nothing else.

use crate::{Layer, Sandbox, SandboxError, ahead, landlock_rules};
use landlock::RulesetStatus;

impl Sandbox {
    /// Landlocks the calling thread, and every thread and process it starts from now on, to
    /// what this sandbox's commands may touch (the workspace and the private home
    /// read-write; system directories, toolchains, PATH entries, the world-readable part of
    /// /etc and /proc read-only; the deny paths never), plus the pids (and memory) cgroups the
    /// sandbox manages. Network access is not handled here (the `http` tool's address guard and the
    /// writ judge it), nor signals: the process must still kill the commands its spawner,
    /// started before this call, runs outside its domain.
    ///
    /// Landlock binds threads, not processes: call it before any thread that could run file
    /// code exists (the worker runs a current-thread runtime and calls it before its first
    /// call). The returned layer says what was applied; inactive when the kernel has none.
    pub fn confine_current_process(&self) -> Result<Layer, SandboxError> {
        // Without a spawner (it could not start), this process starts each command itself, and each command maps its ids
        // (writing its own /proc/self/uid_map) and builds its mount namespace before it
        // execs. Inside a Landlock domain both are refused (mount(2) to every process of a
        // domain), so confining this process would make every command fail. The commands'
        // layers win: this process stays unconfined, and says so.
        if !self.has_spawner() {
            return Ok(Layer {
                name: "worker_landlock".into(),
                active: false,
                detail: "not applied: this sandbox's spawner could not start, so its \
                         commands set up their namespaces from this process, which a \
                         Landlock domain forbids; the file tools stay confined by \
                         descriptors (openat2 beneath the workspace)"
                    .into(),
            });
        }
        let err = |e: &dyn std::fmt::Display| SandboxError::Landlock(e.to_string());
        let (own, common) = self.grants.split();
        let mut rest = common.to_vec();
        rest.extend(landlock_rules::worker_extra_grants(
            self.cgroups.as_ref().map(|pool| pool.base()),
            self.cgroups.as_ref().and_then(|pool| pool.memory_base()),
        ));
        // The common grants made ahead (a pooled worker), else all of them now.
        let created = match ahead::take_worker(&rest) {
            Some(created) => landlock_rules::add(created, own)?,
            None => landlock_rules::add(
                landlock_rules::add(landlock_rules::worker_ruleset()?, own)?,
                &rest,
            )?,
        };
        let rules = own.len() + rest.len();
        let status = created.restrict_self().map_err(|e| err(&e))?;
        let active = status.ruleset != RulesetStatus::NotEnforced;
        Ok(Layer {
            name: "worker_landlock".into(),
            active,
            detail: if active {
                format!(
                    "the worker itself: read-write {} and the private home; read-only system \
                     dirs, /proc, toolchains; the data dir and everything else denied ({} \
                     rules)",
                    self.policy.workspace.display(),
                    rules
                )
            } else {
                "not enforced: the kernel has no Landlock (or it is disabled)".into()
            },
        })
    }
}
