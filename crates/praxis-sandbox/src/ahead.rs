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
//!
//! The paths of those common grants are opened once more upstream where the worker is a
//! fork: the pool's fork server calls [`open_ahead`] once, and every worker it forks
//! inherits the descriptors and adds its rules from them (no `open`, `stat`, `readlink` and
//! `close` for each of about 200 paths in every worker). A rule binds the file it was opened
//! on, so a path swapped since then is granted as it was when the fork server opened it
//! (never more: the same grants are checked against the deny paths for each sandbox, and
//! the inherited files are used only when the worker's own list of grants is the same);
//! the fork server opens them again once they are a second old.

use crate::landlock_rules::{self, Resolver, Rule};
use crate::namespaces::{self, SharedNetwork};
use crate::{SandboxPolicy, probe};
use landlock::RulesetCreated;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// The cgroup bases were swept of what dead processes left ([`crate::cgroup`]).
    swept: bool,
    /// The parts taken so far, by name.
    taken: Vec<&'static str>,
}

static SPARE: Mutex<Option<Spare>> = Mutex::new(None);

/// The common grants' paths opened by [`open_ahead`] (in the fork server, then inherited by
/// each worker it forks), where each resolves, and the grants they are for.
struct OpenedAhead {
    common: Rules,
    opened: landlock_rules::Opened,
    resolver: Resolver,
}

static OPENED: Mutex<Option<OpenedAhead>> = Mutex::new(None);

/// Common grant paths [`prepare_ahead`] opened in this process (none when it took the ones
/// [`open_ahead`] opened before this process was forked).
static GRANT_PATHS_OPENED: AtomicUsize = AtomicUsize::new(0);

/// How many paths of the common grants this process's [`prepare_ahead`] opened itself.
pub fn grant_paths_opened() -> usize {
    GRANT_PATHS_OPENED.load(Ordering::Relaxed)
}

/// Opens, in this process, the paths of the common grants of a sandbox with the default
/// policy (`O_PATH`), for the processes it will fork: each one's [`prepare_ahead`] adds its
/// rules from these descriptors. Returns them: a fork that closes its inherited descriptors
/// keeps these. Nothing where the host has no Landlock. Call it after the host facts are
/// adopted ([`crate::adopt_probe`], [`crate::adopt_etc_readable`]), so that nothing is probed
/// or walked here.
pub fn open_ahead() -> Vec<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    crate::pid_init::argument_area();
    if probe().landlock_abi.is_none() {
        return Vec::new();
    }
    let mut resolver = Resolver::default();
    let common =
        landlock_rules::common_grants(&SandboxPolicy::new(PathBuf::new()), &mut resolver).rules;
    let opened = landlock_rules::open_all(&common, &mut resolver);
    let fds = opened
        .iter()
        .flatten()
        .map(|(file, _)| file.as_raw_fd())
        .collect();
    *held(&OPENED) = Some(OpenedAhead {
        common,
        opened,
        resolver,
    });
    fds
}

fn spare() -> MutexGuard<'static, Option<Spare>> {
    held(&SPARE)
}

/// `slot` locked (a poisoned lock is taken as it is: its value is replaced or taken whole).
fn held<T>(slot: &'static Mutex<T>) -> MutexGuard<'static, T> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes, in this process, what a sandbox with the default policy will need: the shared
/// network namespace and both Landlock rulesets with their common grants. Parts the host
/// cannot have are skipped, and a part that cannot be made is left to the sandbox, which
/// makes it again and reports what fails. Replaces what an earlier call made.
pub fn prepare_ahead() {
    crate::pid_init::argument_area();
    let host = probe();
    let mut made = Spare {
        swept: crate::cgroup::sweep_bases(&host),
        ..Spare::default()
    };
    // Not where a spawner has proven itself: each sandbox's spawner makes its own network
    // namespace when its first command starts, and a run without one needs none.
    if host.user_namespaces && !crate::spawner_proven() {
        made.network = namespaces::shared_network(false).ok();
    }
    // Closed below once the rules hold them (or unused, when they are not for these grants).
    let inherited = held(&OPENED).take();
    if host.landlock_abi.is_some() {
        let (mut resolver, inherited) = match inherited {
            Some(ahead) => (ahead.resolver, Some((ahead.common, ahead.opened))),
            None => (Resolver::default(), None),
        };
        let common =
            landlock_rules::common_grants(&SandboxPolicy::new(PathBuf::new()), &mut resolver).rules;
        // Each common path opened once for both rulesets (by the fork server when it opened
        // the same ones); the run's mount plan resolves every granted path, and the common
        // ones are resolved from the same descriptors.
        let opened = match inherited {
            Some((held, opened)) if held == common => opened,
            _ => {
                GRANT_PATHS_OPENED.fetch_add(common.len(), Ordering::Relaxed);
                landlock_rules::open_all(&common, &mut resolver)
            }
        };
        let (commands, worker) = landlock_rules::add_to_both(
            landlock_rules::commands_ruleset(false),
            landlock_rules::worker_ruleset(),
            &common,
            &opened,
        );
        drop(opened);
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

/// Whether the cgroup bases were swept ahead (once: the next sandbox sweeps them again).
pub(crate) fn take_swept() -> bool {
    spare()
        .as_mut()
        .is_some_and(|s| std::mem::take(&mut s.swept))
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
