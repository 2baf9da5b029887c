//! The OS sandbox boundary of Praxis: what confines a command a model proposed.
//!
//! A [`Sandbox`] is prepared once per run, in the parent, from a [`SandboxPolicy`]: the
//! Landlock ruleset (a file descriptor), the seccomp programs (BPF), the rlimits, the
//! namespace setup and a private HOME/TMPDIR. The layers are applied with raw system calls,
//! in this order: join the sandbox's empty network namespace (see `namespaces`) and unshare
//! a user namespace with the id maps, a mount namespace (see `mounts`), in the spawner a
//! PID namespace with its own /proc (see `spawner`), `setrlimit`, `PR_SET_NO_NEW_PRIVS`,
//! `landlock_restrict_self`, and the seccomp filter last (it forbids `unshare` and `setns`).
//! They are applied once, to the sandbox's spawner (see `spawner`), whose commands inherit
//! them; without a spawner, each command applies them itself ([`Sandbox::launch`]). Every
//! command first joins a pids cgroup of its own, with its memory bound (kept by the sandbox for
//! reuse once empty). Nothing in a
//! child allocates or locks: the parent is multi-threaded.
//!
//! Layers that the host lacks are reported (see [`SandboxReport`]), never faked. The
//! [`ssrf`] module holds the address guard of the `http` tool.

mod ahead;
mod cgroup;
mod child;
mod confine_self;
mod homes;
mod landlock_rules;
mod launch;
#[cfg(test)]
mod layer_bench;
mod lifetime;
mod mounts;
mod namespaces;
mod pid_init;
mod policy;
pub mod probe;
mod report;
mod seccomp;
mod spawner;
pub mod ssrf;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use ahead::{grant_paths_opened, made_ahead, open_ahead, prepare_ahead};
pub use cgroup::{CommandsEnded, SpawnCgroup, end_commands_of};
pub use homes::WorkerHome;
pub use landlock_rules::{adopt_etc_readable, etc_links, etc_readable, etc_walks};
pub use launch::{Launch, Launched, launch, reap};
pub use lifetime::{exit_with_parent, pidfd_open};
pub(crate) use policy::real_home;
pub use policy::{ResourceLimits, SandboxPolicy, default_deny_paths};
pub use probe::{HostSupport, adopt_probe, host_probes, probe};
pub use report::{Layer, SandboxReport};
pub use spawner::{note_spawner_proven, spawner_proven};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot build the Landlock ruleset: {0}")]
    Landlock(String),
    #[error("cannot compile the seccomp filter: {0}")]
    Seccomp(String),
    #[error("cannot create the private home `{}`: {source}", path.display())]
    Home {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox workspace `{}` is not an existing directory", path.display())]
    Workspace { path: PathBuf },
    #[error("cannot create the pids cgroup `{}`: {source}", path.display())]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How [`Sandbox::new`] learns that the namespace layers work on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tested {
    /// By the spawner entering them (no throwaway child).
    Spawner,
    /// Each in a throwaway child first (commands started directly enter them).
    EachLayer,
}

/// A prepared confinement. Cheap to share (`Arc`); every spawn reuses the same ruleset fd
/// and BPF programs.
#[derive(Debug)]
pub struct Sandbox {
    plan: Arc<child::ChildPlan>,
    home: PathBuf,
    policy: SandboxPolicy,
    report: SandboxReport,
    cgroups: Option<Arc<cgroup::CgroupPool>>,
    /// Starts commands with the layers already applied (None: each command applies them).
    /// A spawner found dead is replaced by a fresh one with every layer, so no layer (the
    /// PID namespace above all) is lost for later commands.
    spawner: std::sync::Mutex<Option<spawner::Spawner>>,
    /// Its spawner started at once with every layer its plan asked for (see
    /// [`Sandbox::proves_spawner`]).
    proves_spawner: bool,
    /// The toolchain homes found when the sandbox was made, then HOME and TMPDIR: what
    /// [`Sandbox::environment`] sets (looked up once, not on every spawn).
    pinned_env: Vec<(String, String)>,
    /// The commands' Landlock grants, computed once: the worker confines itself to them
    /// too ([`Sandbox::confine_current_process`]).
    grants: landlock_rules::Grants,
    /// A command was asked of it ([`Sandbox::launch`]): see [`Sandbox::started_commands`].
    commands_started: std::sync::atomic::AtomicBool,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The private home holds only what confined commands left there.
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

impl Sandbox {
    /// Prepares every layer the host supports. Fails only when something that should work
    /// does not (a ruleset that cannot be built, a home that cannot be created); a layer
    /// the host lacks is reported as unavailable instead.
    ///
    /// The spawner is tried first with every namespace layer and no throwaway test child:
    /// it enters the same namespaces (the shared network namespace, the mount namespace)
    /// the tests would, so once it runs they would have passed. Only when it cannot start is
    /// the sandbox prepared again with each namespace layer tested first, so that commands
    /// started directly get the layers this host allows.
    pub fn new(policy: SandboxPolicy) -> Result<Sandbox, SandboxError> {
        match Self::prepare(policy.clone(), Tested::Spawner)? {
            Some(sandbox) => Ok(sandbox),
            None => Ok(Self::prepare(policy, Tested::EachLayer)?
                .expect("a sandbox tested layer by layer is always prepared")),
        }
    }

    /// [`Sandbox::new`] with the namespace layers tested as `tested` says; None when
    /// `Tested::Spawner` and the spawner could not start.
    fn prepare(policy: SandboxPolicy, tested: Tested) -> Result<Option<Sandbox>, SandboxError> {
        let workspace = policy
            .workspace
            .canonicalize()
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| SandboxError::Workspace {
                path: policy.workspace.clone(),
            })?;
        let host = probe();
        // Once a spawner with every layer has started on this host (in a tool worker, see
        // [`Sandbox::proves_spawner`]), a sandbox's spawner waits: it is forked and sets
        // itself up (its namespaces, the network one included) at the first command, so a
        // run that starts none forks no spawner and makes no namespace.
        let waits = tested == Tested::Spawner && spawner::spawner_proven();
        let home = homes::make_private_home(policy.home_parent.as_deref())?;
        let mut report = SandboxReport::default();

        // Landlock.
        // Filled while a pooled worker waited, else empty.
        let mut resolver = ahead::take_resolver().unwrap_or_default();
        let grants = landlock_rules::grants(&workspace, &home, &policy, &mut resolver);
        report.dropped_grants = grants.dropped.clone();
        let landlock_fd: Option<OwnedFd> = match host.landlock_abi {
            Some(abi) => {
                // The common grants made ahead (a pooled worker), else all of them now.
                let (own, common) = grants.split();
                let fd = match ahead::take_commands(common, policy.allow_network) {
                    Some(created) => landlock_rules::add(created, own)?.into(),
                    None => landlock_rules::build(&grants.rules, policy.allow_network)?,
                };
                report.push(
                    "landlock",
                    fd.is_some(),
                    format!(
                        "ABI {abi}: read-write {} and the private home; read-only system dirs, \
                         /proc, toolchains; everything else denied{}; signals and abstract \
                         sockets scoped to the sandbox ({} rules)",
                        workspace.display(),
                        if policy.allow_network {
                            ""
                        } else {
                            "; TCP connect and bind denied"
                        },
                        grants.rules.len()
                    ),
                );
                fd
            }
            None => {
                report.push(
                    "landlock",
                    false,
                    "unavailable: the kernel has no Landlock (or it is disabled)",
                );
                None
            }
        };

        // Namespaces.
        let namespaces = if host.user_namespaces {
            let mut netns_detail = "not applied: network allowed for this run".to_string();
            let namespaces = if policy.allow_network {
                child::Namespaces::Unshare(libc::CLONE_NEWUSER)
            } else {
                let shared = match tested {
                    Tested::Spawner => match ahead::take_network() {
                        Some(made) => Ok(Some(made)),
                        None if waits => Ok(None),
                        None => namespaces::shared_network(false).map(Some),
                    },
                    Tested::EachLayer => namespaces::shared_network(true).map(Some),
                };
                match shared {
                    Ok(None) => {
                        netns_detail = "an empty network namespace (no interfaces) made once \
                                        for this sandbox, by its spawner when the first command \
                                        starts; each command runs in a user namespace of the \
                                        spawner's, without capabilities over it"
                            .into();
                        child::Namespaces::OwnNetwork
                    }
                    Ok(Some(shared)) => {
                        netns_detail = "an empty network namespace (no interfaces) made once \
                                        for this sandbox; each command joins it from a user \
                                        namespace of its own, without capabilities over it"
                            .into();
                        child::Namespaces::Join(shared)
                    }
                    Err(why) => {
                        // Correct but slower: a new network namespace per command.
                        netns_detail = format!(
                            "new network namespace without interfaces per command (a shared \
                             one could not be set up: {why})"
                        );
                        child::Namespaces::Unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET)
                    }
                }
            };
            report.push(
                "user_namespace",
                true,
                "new user namespace per command (own uid/gid mapped to themselves, setgroups \
                 denied)",
            );
            report.push("network_namespace", !policy.allow_network, netns_detail);
            namespaces
        } else {
            let why = host
                .user_namespaces_why
                .clone()
                .unwrap_or_else(|| "unavailable".into());
            report.push("user_namespace", false, why.clone());
            report.push("network_namespace", false, why);
            child::Namespaces::Keep
        };

        // Seccomp.
        let seccomp = if host.seccomp {
            let programs = seccomp::programs(!policy.allow_network)?;
            report.push(
                "seccomp",
                true,
                "EPERM for ptrace, mount, modules, keyctl, bpf, perf_event_open, kexec, reboot, \
                 swap, unshare/setns and namespace clones, io_uring; clone3 ENOSYS",
            );
            report.push(
                "socket_families",
                true,
                if policy.allow_network {
                    "socket() only for AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK with \
                     NETLINK_ROUTE (getaddrinfo and getifaddrs list interfaces with it); \
                     AF_VSOCK, AF_PACKET, other netlink protocols and every other family \
                     refused"
                } else {
                    "socket() only for AF_UNIX (socketpair and sockets in the workspace \
                     work); AF_INET, AF_INET6, AF_NETLINK, AF_VSOCK, AF_PACKET and every \
                     other family refused"
                },
            );
            programs
        } else {
            report.push(
                "seccomp",
                false,
                "unavailable: the kernel has no seccomp filter mode",
            );
            report.push(
                "socket_families",
                false,
                "unavailable: the kernel has no seccomp filter mode",
            );
            Vec::new()
        };

        // Rlimits and the pids cgroup.
        let uid = unsafe { libc::getuid() };
        let nproc_effective = uid != 0;
        let rlimits = child::rlimits(&policy.limits, host.user_namespaces);
        report.push(
            "rlimits",
            true,
            format!(
                "cpu {}s, address space {} MiB, {} open files, {} processes{}, file size {} MiB, no core dumps",
                policy.limits.cpu_seconds,
                policy.limits.address_space_bytes >> 20,
                policy.limits.open_files,
                policy.limits.processes,
                if nproc_effective {
                    ""
                } else {
                    " (RLIMIT_NPROC does not bind uid 0: the pids cgroup does)"
                },
                policy.limits.file_size_bytes >> 20
            ),
        );
        let cgroup_base = host.pids_cgroup.clone();
        // What dead processes left in the cgroups: swept while a pooled worker waited, else now.
        if !ahead::take_swept() {
            cgroup::sweep_bases(&host);
        }
        match &cgroup_base {
            Some(base) => report.push(
                "pids_cgroup",
                true,
                format!(
                    "pids.max {} in a cgroup per command under {}; everything left in it is \
                     killed when the command ends",
                    policy.limits.processes,
                    base.display()
                ),
            ),
            None => report.push(
                "pids_cgroup",
                false,
                host.pids_cgroup_why
                    .clone()
                    .unwrap_or_else(|| "unavailable".into()),
            ),
        }
        let memory = match (&cgroup_base, &host.memory_cgroup) {
            (Some(_), Some(base)) => {
                report.push(
                    "memory_cgroup",
                    true,
                    format!(
                        "{} MiB for each command and everything it started (cgroup under {}); \
                         beyond it the kernel kills a process of the command and the outcome \
                         says so",
                        policy.limits.memory_bytes >> 20,
                        base.display()
                    ),
                );
                Some(cgroup::MemoryBound {
                    base: base.clone(),
                    bytes: policy.limits.memory_bytes,
                })
            }
            (None, _) => {
                report.push(
                    "memory_cgroup",
                    false,
                    "unavailable: it is set up with the pids cgroup, which this host lacks",
                );
                None
            }
            (_, None) => {
                report.push(
                    "memory_cgroup",
                    false,
                    host.memory_cgroup_why
                        .clone()
                        .unwrap_or_else(|| "unavailable".into()),
                );
                None
            }
        };
        report.push(
            "environment",
            true,
            format!(
                "scrubbed environment; private HOME and TMPDIR in {}",
                home.display()
            ),
        );

        let cgroups =
            cgroup_base.map(|base| cgroup::CgroupPool::new(base, policy.limits.processes, memory));
        let mut plan = child::ChildPlan::new(namespaces, rlimits, landlock_fd, seccomp);
        if host.user_namespaces {
            let granted: Vec<PathBuf> = grants.rules.iter().map(|(p, _)| p.clone()).collect();
            let read_only = if policy.git_writable {
                Vec::new()
            } else {
                mounts::git_dirs(&workspace)
            };
            let mounts =
                mounts::MountPlan::new(&granted, !policy.allow_network, &read_only, &mut resolver);
            let detail = mounts.describe();
            plan.mounts = Some(mounts);
            // Tried once in a throwaway child, the way every command enters it (or by the
            // spawner, which enters it the same way).
            let works = match tested {
                Tested::Spawner => Some(true),
                // SAFETY: raw system calls only, in a forked child.
                Tested::EachLayer => probe::in_child(|| unsafe { plan.enter_namespaces().is_ok() }),
            };
            if works == Some(true) {
                report.push("mount_namespace", true, detail);
                plan.pid_namespace = true;
            } else {
                plan.mounts = None;
                report.push(
                    "mount_namespace",
                    false,
                    "unavailable: a mount namespace could not be set up in the sandbox's user \
                     namespace on this host (open_tree/move_mount or tmpfs refused)",
                );
            }
        } else {
            let why = host
                .user_namespaces_why
                .clone()
                .unwrap_or_else(|| "unavailable".into());
            report.push("mount_namespace", false, why);
        }
        let plan = Arc::new(plan);
        let started = if waits {
            spawner::Spawner::fork_waiting(plan.clone(), plan.pid_namespace)
        } else {
            spawner::Spawner::start(plan.clone())
        };
        let mut proves = false;
        let spawner = match started {
            Ok(spawner) => {
                let which = match spawner.pid() {
                    Some(pid) => format!("pid {pid}"),
                    None => "forked and set up at the first command: it refuses to start any \
                             command if it cannot apply every layer listed here"
                        .into(),
                };
                report.launcher = format!(
                    "spawner ({which}): the layers are applied once, in a process that \
                     starts every command and that commands inherit them from; commands of \
                     this sandbox share its user namespace and Landlock domain"
                );
                proves = !waits && (spawner.pid_namespace() || !plan.pid_namespace);
                Some(spawner)
            }
            Err(_) if tested == Tested::Spawner => {
                // Its private home goes; the next preparation makes its own.
                let _ = std::fs::remove_dir_all(&home);
                return Ok(None);
            }
            Err(why) => {
                report.launcher = format!(
                    "direct: each command applies the layers itself (the spawner could not \
                     start: {why})"
                );
                None
            }
        };
        match &spawner {
            // A waiting spawner makes it when it sets itself up, or starts nothing.
            Some(_) if waits && plan.pid_namespace => report.push(
                "pid_namespace",
                true,
                "a PID namespace of the spawner's commands with its own /proc, made when the \
                 first command starts: no host process is visible to them; when the spawner \
                 ends (with the runtime), the kernel kills every process in it",
            ),
            Some(spawner) if spawner.pid_namespace() => report.push(
                "pid_namespace",
                true,
                "a PID namespace of the spawner's commands with its own /proc: no host process \
                 is visible to them; when the spawner ends (with the runtime), the kernel kills \
                 every process in it",
            ),
            Some(_) => report.push(
                "pid_namespace",
                false,
                if plan.pid_namespace {
                    "unavailable: the host refused a PID namespace in the sandbox's user namespace"
                } else {
                    "unavailable: it needs the user and mount namespaces"
                },
            ),
            None => report.push(
                "pid_namespace",
                false,
                "unavailable: only commands started by the spawner get one",
            ),
        }
        if spawner.is_some()
            && let Some(layer) = report
                .layers
                .iter_mut()
                .find(|l| l.name == "user_namespace")
            && layer.active
        {
            layer.detail = "a user namespace of the sandbox's own (ids mapped to themselves, \
                            setgroups denied), shared by its commands"
                .into();
        }
        let mut pinned_env: Vec<(String, String)> = landlock_rules::TOOLCHAIN_HOMES
            .iter()
            .filter_map(|(name, default)| {
                landlock_rules::toolchain_home(name, default)
                    .map(|dir| (name.to_string(), dir.display().to_string()))
            })
            .collect();
        pinned_env.push(("HOME".into(), home.display().to_string()));
        pinned_env.push(("TMPDIR".into(), home.join("tmp").display().to_string()));
        Ok(Some(Sandbox {
            plan,
            home,
            policy,
            report,
            cgroups,
            spawner: std::sync::Mutex::new(spawner),
            proves_spawner: proves,
            pinned_env,
            grants,
            commands_started: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    pub fn report(&self) -> &SandboxReport {
        &self.report
    }

    /// The directories mounted read-only for commands (the workspace's git directories
    /// when the sandbox was made; none without a mount namespace).
    pub fn read_only_dirs(&self) -> &[PathBuf] {
        self.plan
            .mounts
            .as_ref()
            .map_or(&[], |m| m.read_only_paths())
    }

    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// The private HOME of confined commands (TMPDIR is its `tmp` subdirectory).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Whether a command was ever asked of this sandbox ([`Sandbox::launch`], started or
    /// not). Until one is, its spawner (if any) has made no namespace and nothing ran in
    /// it, so nothing of a command can outlive its run.
    pub fn started_commands(&self) -> bool {
        self.commands_started
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Empties the private home (its `tmp` stays, empty): what a reused sandbox's next run
    /// must not see of the last one's.
    pub fn empty_home(&self) -> std::io::Result<()> {
        homes::empty_private_home(&self.home)
    }

    /// `base` (an already scrubbed environment) with HOME and TMPDIR pointing into the
    /// private home, and the toolchain homes (CARGO_HOME, RUSTUP_HOME, PYENV_ROOT) pinned
    /// to the real ones so tools still find them under the new HOME.
    pub fn environment(&self, base: &[(String, String)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = base
            .iter()
            .filter(|(k, _)| k != "HOME" && k != "TMPDIR")
            .cloned()
            .collect();
        for (name, value) in &self.pinned_env {
            // A toolchain home the caller set wins; HOME and TMPDIR were filtered out above.
            if !env.iter().any(|(k, _)| k == name) {
                env.push((name.clone(), value.clone()));
            }
        }
        env
    }

    /// This spawn's pids cgroup when the host offers one (None otherwise): an empty one the
    /// sandbox kept from an earlier command, or a new one. Keep it alive until the command
    /// and everything it started are gone, then call [`SpawnCgroup::try_finish_now`] or
    /// [`SpawnCgroup::finish`].
    pub fn spawn_cgroup(&self) -> Result<Option<SpawnCgroup>, SandboxError> {
        self.cgroups.as_ref().map(|pool| pool.take()).transpose()
    }

    /// Whether a spawner starts this sandbox's commands (one that waits for the first
    /// command included: it is forked then).
    pub fn has_spawner(&self) -> bool {
        self.spawner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|s| s.is_alive())
    }

    /// The pid of the spawner that starts this sandbox's commands, if one runs (a waiting
    /// spawner is forked at the sandbox's first command: none before).
    pub fn spawner_pid(&self) -> Option<i32> {
        self.spawner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|s| s.is_alive())
            .and_then(|s| s.pid())
    }

    /// Whether its spawner started at once with every layer its plan asked for: the proof
    /// that a later sandbox's spawner may wait for its first command on this host. The
    /// tool worker notes it ([`note_spawner_proven`]) and tells its runtime, which tells
    /// later workers. A process that makes sandboxes for itself (the in-process fabric)
    /// does not: its spawners all start at once (with waiting ones, a server's idle memory
    /// grew faster under the load test; see ARCHITECTURE.md).
    pub fn proves_spawner(&self) -> bool {
        self.proves_spawner
    }

    /// Whether its spawner still waits for the sandbox's first command to be forked and set
    /// itself up (see [`spawner_proven`]): until then the sandbox has made no namespace.
    pub fn spawner_waits(&self) -> bool {
        self.spawner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|s| s.is_alive() && !s.is_awake())
    }

    /// Starts a confined command: through the spawner while it runs, else directly, with
    /// every layer applied in the child. `cgroup` is this command's (see
    /// [`Sandbox::spawn_cgroup`]); the command joins it before exec.
    pub fn launch(
        &self,
        launch: &Launch<'_>,
        cgroup: Option<&SpawnCgroup>,
    ) -> std::io::Result<Launched> {
        self.commands_started
            .store(true, std::sync::atomic::Ordering::Release);
        let procs = cgroup.map_or([None, None], |c| c.procs_fds());
        let mut slot = self
            .spawner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Twice at most: a spawner found gone (before it took the request, so nothing
        // started) is replaced by a fresh one with every layer, which gets the command.
        for _ in 0..2 {
            if slot.as_ref().is_some_and(|s| !s.is_alive()) {
                *slot = spawner::Spawner::start(self.plan.clone()).ok();
            }
            let Some(spawner) = slot.as_ref() else {
                break;
            };
            match spawner.launch(launch, procs) {
                Ok(launched) => return Ok(launched),
                Err(spawner::SpawnerError::Failed(e)) => return Err(e),
                // Gone: replaced above on the next round.
                Err(spawner::SpawnerError::Unavailable) if !spawner.is_alive() => {}
                // Too large a request: the direct path applies the same layers.
                Err(spawner::SpawnerError::Unavailable) => break,
            }
        }
        drop(slot);
        let plan = &self.plan;
        // SAFETY: runs in the launched child before exec; raw system calls only.
        let confine = || unsafe { plan.apply() };
        launch::launch_direct(
            launch,
            procs.map(|fd| fd.map_or(-1, |fd| fd.as_raw_fd())),
            Some(&confine),
        )
    }
}
