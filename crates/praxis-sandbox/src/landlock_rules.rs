//! The Landlock grants of a confined command and the ruleset built from them (in the
//! parent; the child only calls `landlock_restrict_self` on the resulting fd).

use crate::{SandboxError, SandboxPolicy, real_home};
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope,
};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The ABI whose access rights were tested here (kernel ABI 7 offers all of them); older
/// kernels get what they support (best effort), newer rights stay unhandled.
pub(crate) const ABI_USED: ABI = ABI::V6;

/// Toolchain homes pinned for confined commands (variable, default under the real home).
pub(crate) const TOOLCHAIN_HOMES: [(&str, &str); 3] = [
    ("CARGO_HOME", ".cargo"),
    ("RUSTUP_HOME", ".rustup"),
    ("PYENV_ROOT", ".pyenv"),
];

/// System directories readable and executable by every confined command.
const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Everything: read, write, create, remove, execute.
    Full,
    ReadExec,
    Read,
    /// A device or lock file read and written in place.
    FileReadWrite,
}

impl Grant {
    pub(crate) fn access(self, is_dir: bool) -> BitFlags<AccessFs> {
        let all = match self {
            Grant::Full => AccessFs::from_all(ABI_USED),
            Grant::ReadExec => AccessFs::from_read(ABI_USED),
            Grant::Read => AccessFs::ReadFile | AccessFs::ReadDir,
            Grant::FileReadWrite => {
                AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev
            }
        };
        if is_dir {
            all
        } else {
            all & AccessFs::from_file(ABI_USED)
        }
    }
}

/// A path and what is granted beneath it.
pub(crate) type Rule = (PathBuf, Grant);

#[derive(Debug)]
pub(crate) struct Grants {
    pub rules: Vec<(PathBuf, Grant)>,
    /// How many of the first rules are the run's own (its workspace and private home); the
    /// rest are [`common_grants`].
    pub own: usize,
    pub dropped: Vec<String>,
}

impl Grants {
    /// The run's own rules and the common ones.
    pub(crate) fn split(&self) -> (&[Rule], &[Rule]) {
        self.rules.split_at(self.own)
    }
}

pub(crate) fn toolchain_home(var: &str, default: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| real_home().map(|h| h.join(default)))?;
    dir.is_dir().then_some(dir)
}

/// A path as the kernel resolves it (itself when it cannot be resolved).
fn resolved(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// Paths as the kernel resolves them, each looked up once while a sandbox is made: its
/// grants and its mount plan resolve the same system directories, toolchains, PATH entries
/// and /etc files (a `readlink` for every component of each). A pooled worker fills one for
/// its run's sandbox while it waits ([`crate::ahead`]); otherwise each sandbox starts with
/// an empty one. Deny paths never come from it: they are resolved for each sandbox.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    known: HashMap<PathBuf, Option<PathBuf>>,
    /// Paths resolved from their descriptor (a `readlink` each).
    from_descriptors: usize,
}

impl Resolver {
    /// `path` canonicalized (None when it does not resolve: missing, or not traversable).
    pub(crate) fn canonical(&mut self, path: &Path) -> Option<PathBuf> {
        if let Some(known) = self.known.get(path) {
            return known.clone();
        }
        let real = path.canonicalize().ok();
        self.known.insert(path.to_path_buf(), real.clone());
        real
    }

    /// Notes where `path` resolves, `file` being its open `O_PATH` descriptor: as resolved
    /// once per process when it is a path of the /etc walk ([`etc_links`]), else from the
    /// descriptor.
    fn note(&mut self, path: &Path, file: &std::fs::File) {
        match etc_resolution(path) {
            Some(real) => {
                self.known.entry(path.to_path_buf()).or_insert(real);
            }
            None => self.note_open(path, file),
        }
    }

    /// Notes where `path` resolves from `file`, its open `O_PATH` descriptor: the kernel's
    /// own name for it (`/proc/self/fd/N`, one `readlink` where canonicalizing takes one per
    /// component). Falls back to canonicalizing when that name is not a plain path.
    fn note_open(&mut self, path: &Path, file: &std::fs::File) {
        use std::os::fd::AsRawFd;
        if self.known.contains_key(path) {
            return;
        }
        self.from_descriptors += 1;
        let named = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .ok()
            .filter(|p| {
                p.is_absolute() && !p.as_os_str().as_encoded_bytes().ends_with(b" (deleted)")
            });
        match named {
            Some(real) => {
                self.known.insert(path.to_path_buf(), Some(real));
            }
            None => {
                self.canonical(path);
            }
        }
    }
}

/// The grants of a sandbox for `workspace` with its private `home`: those two first
/// ([`Grants::own`] of them), then [`common_grants`].
pub(crate) fn grants(
    workspace: &Path,
    home: &Path,
    policy: &SandboxPolicy,
    resolver: &mut Resolver,
) -> Grants {
    let mut rules: Vec<(PathBuf, Grant)> = vec![
        (workspace.to_path_buf(), Grant::Full),
        (home.to_path_buf(), Grant::Full),
    ];
    rules.retain(|(p, _)| p.exists());
    let own = rules.len();
    let common = common_grants(policy, resolver);
    rules.extend(common.rules);
    Grants {
        rules,
        own,
        dropped: common.dropped,
    }
}

/// The grants that do not depend on the run's workspace: system directories, the readable
/// part of /etc, /proc, devices, toolchains, PATH entries and `policy`'s extra paths, none
/// exposing a deny path ([`Grants::own`] is 0).
pub(crate) fn common_grants(policy: &SandboxPolicy, resolver: &mut Resolver) -> Grants {
    let mut rules: Vec<(PathBuf, Grant)> = Vec::new();
    for dir in SYSTEM_DIRS {
        rules.push((PathBuf::from(dir), Grant::ReadExec));
    }
    // Other processes' sensitive /proc files (environ, mem) stay closed: Landlock refuses
    // ptrace-mode access from inside the domain to processes outside it. A rule on
    // /proc/self would bind to the parent's pid directory, so /proc is granted whole.
    rules.push((PathBuf::from("/proc"), Grant::Read));
    for dev in [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
    ] {
        rules.push((PathBuf::from(dev), Grant::FileReadWrite));
    }

    // Optional grants: toolchains, PATH entries, the operator's extra paths. None may
    // expose a deny path.
    let mut optional: Vec<(PathBuf, Grant)> = Vec::new();
    for (var, default) in TOOLCHAIN_HOMES {
        if let Some(dir) = toolchain_home(var, default) {
            if var == "CARGO_HOME" {
                // Cargo locks these even for offline builds; the registry itself stays
                // read-only so no run can plant code in another run's dependencies.
                for lock in [".package-cache", ".package-cache-mutate", ".global-cache"] {
                    optional.push((dir.join(lock), Grant::FileReadWrite));
                }
            }
            optional.push((dir, Grant::ReadExec));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.is_absolute() {
                optional.push((dir, Grant::ReadExec));
            }
        }
    }
    for path in &policy.read_paths {
        optional.push((path.clone(), Grant::ReadExec));
    }
    for path in &policy.write_paths {
        optional.push((path.clone(), Grant::Full));
    }
    // Each deny path resolved once, not once per optional grant.
    let deny: Vec<(&PathBuf, PathBuf)> =
        policy.deny_paths.iter().map(|d| (d, resolved(d))).collect();
    let mut dropped = Vec::new();
    for (path, grant) in optional {
        let Some(granted) = resolver.canonical(&path) else {
            continue;
        };
        // Granting `path` would expose a deny path equal to it or below it.
        if let Some((deny, _)) = deny.iter().find(|(_, real)| real.starts_with(&granted)) {
            dropped.push(format!(
                "{} (would expose {})",
                path.display(),
                deny.display()
            ));
            continue;
        }
        rules.push((path, grant));
    }
    rules.retain(|(p, _)| resolver.canonical(p).is_some());
    // Found by walking /etc (once per runtime), so not looked up again; one removed since
    // then grants nothing (`add` skips what it cannot open).
    rules.extend(etc_readable().iter().map(|p| (p.clone(), Grant::Read)));
    rules.dedup();
    Grants {
        rules,
        own: 0,
        dropped,
    }
}

/// The parts of /etc every user may read (world-readable files, and directories whose
/// whole subtree is), as few rules as possible. /etc/shadow, private keys and the like are
/// left out, which matters when the runtime runs as root (file permissions do not stop it).
pub fn etc_readable() -> &'static [PathBuf] {
    ETC_READABLE.get_or_init(|| {
        ETC_WALKS.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        cover(Path::new("/etc"), 0, &mut out);
        out
    })
}

/// The [`etc_readable`] paths that do not resolve to themselves (links, or paths below a
/// linked directory), with where they resolve (None: nowhere). Resolved once per process
/// (a tool worker adopts its runtime's, [`adopt_etc_readable`]), like the walk itself: an
/// entry swapped for a link since then still resolves as it did, so its new target is not
/// mounted back below a private directory, which hides it (this never widens a grant: each
/// rule holds the descriptor opened for its sandbox).
pub fn etc_links() -> &'static [(PathBuf, Option<PathBuf>)] {
    ETC_LINKS.get_or_init(|| {
        etc_readable()
            .iter()
            .filter_map(|path| {
                let real = path.canonicalize().ok();
                (real.as_deref() != Some(path.as_path())).then(|| (path.clone(), real))
            })
            .collect()
    })
}

static ETC_LINKS: OnceLock<Vec<(PathBuf, Option<PathBuf>)>> = OnceLock::new();

/// Where `path` resolves if it is an [`etc_readable`] path (None: it is not one).
fn etc_resolution(path: &Path) -> Option<Option<PathBuf>> {
    static RESOLVED: OnceLock<HashMap<&'static Path, Option<PathBuf>>> = OnceLock::new();
    RESOLVED
        .get_or_init(|| {
            let mut resolved: HashMap<&'static Path, Option<PathBuf>> = etc_readable()
                .iter()
                .map(|p| (p.as_path(), Some(p.clone())))
                .collect();
            for (path, real) in etc_links() {
                if let Some(slot) = resolved.get_mut(path.as_path()) {
                    *slot = real.clone();
                }
            }
            resolved
        })
        .get(path)
        .cloned()
}

/// The world-readable part of /etc, walked at most once per process.
static ETC_READABLE: OnceLock<Vec<PathBuf>> = OnceLock::new();
/// How many times this process walked /etc (0 or 1).
static ETC_WALKS: AtomicUsize = AtomicUsize::new(0);

/// Takes `paths` as this process's [`etc_readable`] instead of walking /etc, unless it
/// walked already (then false). For the tool worker: its runtime walked the same /etc once
/// per server (a stat of every file there) and hands the result to each worker.
pub fn adopt_etc_readable(paths: Vec<PathBuf>, links: Vec<(PathBuf, Option<PathBuf>)>) -> bool {
    let walked = ETC_READABLE.set(paths).is_ok();
    let resolved = ETC_LINKS.set(links).is_ok();
    walked && resolved
}

/// How many times this process walked /etc itself (0 when it adopted the list).
pub fn etc_walks() -> usize {
    ETC_WALKS.load(Ordering::Relaxed)
}

/// Adds rules covering the world-readable part of `path` to `out`; true if all of it is
/// (then the caller may grant a parent directory whole instead).
fn cover(path: &Path, depth: usize, out: &mut Vec<PathBuf>) -> bool {
    let Ok(meta) = path.symlink_metadata() else {
        return false;
    };
    if meta.file_type().is_symlink() {
        // The target is granted (or not) where it lives.
        return true;
    }
    let mode = meta.permissions().mode();
    if !meta.is_dir() {
        let readable = mode & 0o004 != 0;
        if readable && depth == 0 {
            out.push(path.to_path_buf());
        }
        return readable;
    }
    if mode & 0o005 != 0o005 || depth > 8 {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    let mut children = Vec::new();
    let mut all = true;
    for entry in entries.flatten() {
        let child = entry.path();
        let mut sub = Vec::new();
        if cover(&child, depth + 1, &mut sub) {
            children.push(child);
        } else {
            all = false;
            out.extend(sub);
        }
    }
    if all {
        if depth == 0 {
            out.push(path.to_path_buf());
        }
        return true;
    }
    // Not all of it: grant the readable children one by one.
    out.extend(children);
    false
}

/// Creates the ruleset and adds every grant. None when the kernel has no Landlock.
pub(crate) fn build(
    rules: &[(PathBuf, Grant)],
    allow_network: bool,
) -> Result<Option<OwnedFd>, SandboxError> {
    Ok(add(commands_ruleset(allow_network)?, rules)?.into())
}

/// A ruleset for commands (every filesystem access handled, signals and abstract sockets
/// scoped, TCP too without network), with no rule yet.
pub(crate) fn commands_ruleset(allow_network: bool) -> Result<RulesetCreated, SandboxError> {
    let err = |e: &dyn std::fmt::Display| SandboxError::Landlock(e.to_string());
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_USED))
        .map_err(|e| err(&e))?
        .scope(Scope::from_all(ABI_USED))
        .map_err(|e| err(&e))?;
    if !allow_network {
        // No port rules: every TCP connect and bind is denied.
        ruleset = ruleset
            .handle_access(AccessNet::from_all(ABI_USED))
            .map_err(|e| err(&e))?;
    }
    ruleset.create().map_err(|e| err(&e))
}

/// A ruleset for the worker itself (every filesystem access handled; not network, not
/// signals), with no rule yet.
pub(crate) fn worker_ruleset() -> Result<RulesetCreated, SandboxError> {
    let err = |e: &dyn std::fmt::Display| SandboxError::Landlock(e.to_string());
    Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_USED))
        .map_err(|e| err(&e))?
        .create()
        .map_err(|e| err(&e))
}

/// Adds a rule for each grant to `created` (one that vanished since it was listed grants
/// nothing).
pub(crate) fn add(
    mut created: RulesetCreated,
    rules: &[(PathBuf, Grant)],
) -> Result<RulesetCreated, SandboxError> {
    for (path, grant) in rules {
        let Some((file, is_dir)) = open_rule_path(path) else {
            continue;
        };
        created = add_rule(created, &file, grant.access(is_dir), path)?;
    }
    Ok(created)
}

/// Each of `common`'s paths opened as a rule's parent (None: it cannot be opened), noting
/// in `resolver` where each resolves (a sandbox's mount plan resolves every granted path).
pub(crate) type Opened = Vec<Option<(std::fs::File, bool)>>;

/// Opens each of `common`'s paths once, for [`add_to_both`] (see [`Opened`]).
pub(crate) fn open_all(common: &[Rule], resolver: &mut Resolver) -> Opened {
    common
        .iter()
        .map(|(path, _)| {
            let opened = open_rule_path(path);
            match &opened {
                Some((file, _)) => resolver.note(path, file),
                None => {
                    resolver.canonical(path);
                }
            }
            opened
        })
        .collect()
}

/// Adds each of `common` to both rulesets (the commands' and the worker's own) from its path
/// opened by [`open_all`] (`opened`, in the same order). A ruleset that failed stays failed;
/// the other goes on.
pub(crate) fn add_to_both(
    mut commands: Result<RulesetCreated, SandboxError>,
    mut worker: Result<RulesetCreated, SandboxError>,
    common: &[Rule],
    opened: &Opened,
) -> (
    Result<RulesetCreated, SandboxError>,
    Result<RulesetCreated, SandboxError>,
) {
    for ((path, grant), opened) in common.iter().zip(opened) {
        let Some((file, is_dir)) = opened else {
            continue;
        };
        let access = grant.access(*is_dir);
        commands = commands.and_then(|c| add_rule(c, file, access, path));
        worker = worker.and_then(|c| add_rule(c, file, access, path));
    }
    (commands, worker)
}

/// `path` opened as a rule's parent (`O_PATH`, as `PathFd` opens it) and whether it is a
/// directory, from the open file rather than a second walk. None when it cannot be opened.
fn open_rule_path(path: &Path) -> Option<(std::fs::File, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .ok()?;
    let is_dir = file.metadata().is_ok_and(|m| m.is_dir());
    Some((file, is_dir))
}

fn add_rule(
    created: RulesetCreated,
    file: &std::fs::File,
    access: BitFlags<AccessFs>,
    path: &Path,
) -> Result<RulesetCreated, SandboxError> {
    created
        .add_rule(PathBeneath::new(file, access))
        .map_err(|e| SandboxError::Landlock(format!("rule for `{}`: {e}", path.display())))
}

/// What the worker's own Landlock grants besides its sandbox's grants: the cgroups the
/// sandbox manages (`pids`, and `memory` on hosts with a v1 memory hierarchy) and the files
/// name resolution reads for the `http` tool (often links into /run, which the command
/// grants leave out).
pub(crate) fn worker_extra_grants(
    pids: Option<&Path>,
    memory: Option<&Path>,
) -> Vec<(PathBuf, Grant)> {
    let mut rules: Vec<(PathBuf, Grant)> = [pids, memory]
        .into_iter()
        .flatten()
        .map(|base| (base.to_path_buf(), Grant::Full))
        .collect();
    for file in ["/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf"] {
        if let Ok(real) = std::fs::canonicalize(file)
            && real.is_file()
        {
            rules.push((real, Grant::Read));
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path resolved from its open descriptor is where canonicalizing it leads, through
    /// symlinked directories and a symlinked file; a path that cannot be opened resolves to
    /// nothing, as it does canonicalized; and each rule added to both rulesets holds.
    /// `paths` granted read to both rulesets (each must take every rule): the resolver that
    /// noted where they resolve.
    fn added_to_both(paths: &[PathBuf]) -> Resolver {
        let common: Vec<Rule> = paths.iter().map(|p| (p.clone(), Grant::Read)).collect();
        let mut resolver = Resolver::default();
        let opened = open_all(&common, &mut resolver);
        let (commands, worker) =
            add_to_both(commands_ruleset(false), worker_ruleset(), &common, &opened);
        commands.expect("the commands' ruleset takes every rule");
        worker.expect("the worker's ruleset takes every rule");
        resolver
    }

    #[test]
    fn paths_resolved_from_their_descriptors_are_their_canonical_paths() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::fs::write(real.join("sub/file"), "x").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("via")).unwrap();
        std::os::unix::fs::symlink(real.join("sub/file"), dir.path().join("to-file")).unwrap();
        let paths = [
            dir.path().join("via/sub"),
            dir.path().join("via/sub/../sub/file"),
            dir.path().join("to-file"),
            real.clone(),
            dir.path().join("missing"),
            PathBuf::from("/etc"),
        ];
        let resolver = added_to_both(&paths);
        for path in &paths {
            let noted = resolver
                .known
                .get(path)
                .cloned()
                .expect("every path is noted");
            assert_eq!(noted, path.canonicalize().ok(), "{}", path.display());
        }
        assert_eq!(resolver.known[&dir.path().join("missing")], None);
        assert_eq!(
            resolver.known[&dir.path().join("to-file")],
            Some(real.canonicalize().unwrap().join("sub/file"))
        );
    }

    #[test]
    fn the_etc_walks_paths_resolve_as_canonicalizing_would_without_a_readlink_each() {
        let walked = etc_readable();
        assert!(
            !walked.is_empty(),
            "this host's /etc has world-readable files"
        );
        let resolver = added_to_both(walked);
        // Each resolves as canonicalizing it would, and none took a readlink of its own.
        for path in walked {
            assert_eq!(
                resolver.known.get(path).cloned().flatten(),
                path.canonicalize().ok(),
                "{}",
                path.display()
            );
        }
        assert_eq!(resolver.from_descriptors, 0);
    }
}
