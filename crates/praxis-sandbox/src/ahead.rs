//! The parts of a sandbox that do not depend on its run, made before the run is known.
//!
//! A tool worker waiting in its runtime's pool calls [`prepare_ahead`]: the shared empty
//! network namespace is made, and the Landlock rulesets of the commands and of the worker
//! itself get every grant that is not the run's own (system directories, /etc, /proc,
//! devices, toolchains, PATH entries). The run's sandbox ([`crate::Sandbox::new`],
//! [`crate::Sandbox::confine_current_process`]) takes each part that fits its policy (the
//! same common grants; no network for commands) and adds the run's workspace and private
//! home; a part that does not fit is made for the run as it would be without this. Each
//! part is taken once: no two sandboxes share one.

use crate::landlock_rules::{self, Resolver, Rule};
use crate::namespaces::{self, SharedNetwork};
use crate::{SandboxPolicy, probe};
use landlock::RulesetCreated;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

type Rules = Vec<Rule>;

#[derive(Default)]
struct Spare {
    network: Option<SharedNetwork>,
    /// The commands' ruleset (without network) and the grants it holds.
    commands: Option<(Rules, RulesetCreated)>,
    /// The worker's own ruleset and the grants it holds.
    worker: Option<(Rules, RulesetCreated)>,
    /// The common grants' paths, resolved.
    resolver: Option<Resolver>,
    /// The parts taken so far, by name.
    taken: Vec<&'static str>,
}

static SPARE: Mutex<Option<Spare>> = Mutex::new(None);

fn spare() -> MutexGuard<'static, Option<Spare>> {
    SPARE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes, in this process, what a sandbox with the default policy will need: the shared
/// network namespace and both Landlock rulesets with their common grants. Parts the host
/// cannot have are skipped, and a part that cannot be made is left to the sandbox, which
/// makes it again and reports what fails. Replaces what an earlier call made.
pub fn prepare_ahead() {
    let host = probe();
    let mut made = Spare::default();
    // Not where a spawner has proven itself: each sandbox's spawner makes its own network
    // namespace when its first command starts, and a run without one needs none.
    if host.user_namespaces && !crate::spawner_proven() {
        made.network = namespaces::shared_network(false).ok();
    }
    if host.landlock_abi.is_some() {
        let mut resolver = Resolver::default();
        let common =
            landlock_rules::common_grants(&SandboxPolicy::new(PathBuf::new()), &mut resolver).rules;
        // Each common path opened once for both rulesets; the run's mount plan resolves
        // every granted path, and the common ones are resolved from the same descriptors.
        let (commands, worker) = landlock_rules::add_to_both(
            landlock_rules::commands_ruleset(false),
            landlock_rules::worker_ruleset(),
            &common,
            &mut resolver,
        );
        made.resolver = Some(resolver);
        if let Ok(created) = commands {
            made.commands = Some((common.clone(), created));
        }
        let pids = host.pids_cgroup.as_deref();
        let memory = pids
            .and(host.memory_cgroup.as_deref())
            .filter(|memory| Some(*memory) != pids);
        let extra = landlock_rules::worker_extra_grants(pids, memory);
        if let Ok(created) = worker.and_then(|c| landlock_rules::add(c, &extra)) {
            let mut rules = common;
            rules.extend(extra);
            made.worker = Some((rules, created));
        }
    }
    *spare() = Some(made);
}

/// The names of the parts this process's sandboxes took from [`prepare_ahead`], sorted
/// (`landlock`, `network_namespace`, `worker_landlock`).
pub fn made_ahead() -> Vec<String> {
    let mut taken: Vec<String> = spare()
        .as_ref()
        .map(|s| s.taken.iter().map(|name| name.to_string()).collect())
        .unwrap_or_default();
    taken.sort();
    taken
}

/// The common grants' paths resolved ahead, if not taken yet.
pub(crate) fn take_resolver() -> Option<Resolver> {
    spare().as_mut()?.resolver.take()
}

/// The shared network namespace made ahead, if any is left.
pub(crate) fn take_network() -> Option<SharedNetwork> {
    let mut slot = spare();
    let spare = slot.as_mut()?;
    let network = spare.network.take()?;
    spare.taken.push("network_namespace");
    Some(network)
}

/// The commands' ruleset made ahead, if it holds exactly `common` and the commands have no
/// network.
pub(crate) fn take_commands(common: &[Rule], allow_network: bool) -> Option<RulesetCreated> {
    if allow_network {
        return None;
    }
    take(|s| &mut s.commands, common, "landlock")
}

/// The worker's ruleset made ahead, if it holds exactly `rules`.
pub(crate) fn take_worker(rules: &[Rule]) -> Option<RulesetCreated> {
    take(|s| &mut s.worker, rules, "worker_landlock")
}

fn take(
    part: impl Fn(&mut Spare) -> &mut Option<(Rules, RulesetCreated)>,
    rules: &[Rule],
    name: &'static str,
) -> Option<RulesetCreated> {
    let mut slot = spare();
    let spare = slot.as_mut()?;
    let made = part(spare);
    if !made.as_ref().is_some_and(|(held, _)| held == rules) {
        return None;
    }
    let (_, created) = made.take()?;
    spare.taken.push(name);
    Some(created)
}
