//! The spawner's request codec, and the spawner applied to real commands.
use super::*;
use std::ffi::CStr;
use std::path::Path;

fn strings(args: &[&str]) -> ExecStrings {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env = vec![("PATH".to_string(), "/a:/b".to_string())];
    ExecStrings::new(&Launch {
        program: Path::new("prog"),
        args: &args,
        env: &env,
        cwd: Path::new("/work"),
        default_path: "/x",
    })
    .unwrap()
}

fn text(p: *const c_char) -> String {
    // SAFETY: decode points into the live request.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn a_request_decodes_to_what_was_encoded() {
    let request = encode(&strings(&["-c", "echo hi", ""])).unwrap();
    let mut pointers = vec![std::ptr::null(); 64];
    let decoded = decode(&request, &mut pointers).unwrap();
    assert_eq!(text(request[decoded.cwd..].as_ptr().cast()), "/work");
    let list = |from: usize| {
        pointers[from..]
            .iter()
            .take_while(|p| !p.is_null())
            .map(|&p| text(p))
            .collect::<Vec<_>>()
    };
    assert_eq!(list(0), ["/a/prog", "/b/prog"]);
    assert_eq!(list(decoded.argv), ["prog", "-c", "echo hi", ""]);
    assert_eq!(list(decoded.envp), ["PATH=/a:/b"]);
}

#[test]
fn malformed_requests_are_refused_not_trusted() {
    let good = encode(&strings(&["x"])).unwrap();
    let mut pointers = vec![std::ptr::null(); 64];
    // Cut anywhere: a missing NUL or a missing string.
    for cut in 0..good.len() {
        assert!(
            decode(&good[..cut], &mut pointers).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
    // Trailing bytes, and counts larger than the pointer space.
    let mut longer = good.clone();
    longer.push(b'x');
    assert_eq!(decode(&longer, &mut pointers), Err(libc::EINVAL));
    let mut huge = good.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    assert_eq!(decode(&huge, &mut pointers), Err(libc::E2BIG));
    assert_eq!(decode(&good, &mut pointers[..3]), Err(libc::E2BIG));
}

/// Runs `script` with bash in `sandbox`: (exit status, stdout + stderr).
fn run(sandbox: &crate::Sandbox, script: &str) -> (i32, String) {
    try_run(sandbox, script).unwrap()
}

fn try_run(sandbox: &crate::Sandbox, script: &str) -> io::Result<(i32, String)> {
    let args = vec!["-c".to_string(), script.to_string()];
    let env = vec![("PATH".to_string(), "/usr/bin:/bin".to_string())];
    let launch = Launch {
        program: Path::new("bash"),
        args: &args,
        env: &env,
        cwd: &sandbox.policy().workspace,
        default_path: "/usr/bin:/bin",
    };
    let (status, out, err) = sandbox.launch(&launch, None)?.wait_with_output()?;
    let text = String::from_utf8_lossy(&[out, err].concat()).into_owned();
    Ok((status.code().unwrap_or(-1), text))
}

/// On a host with the layers (CI's), commands go through the spawner; elsewhere the
/// spawner tests have nothing to test.
/// Notes the proof as the tool worker does when its sandbox's spawner started at once with
/// every layer, so later sandboxes here fork theirs waiting.
fn sandbox_with_spawner(ws: &Path) -> Option<crate::Sandbox> {
    let sandbox = crate::Sandbox::new(crate::SandboxPolicy::new(ws)).unwrap();
    if !sandbox.has_spawner() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no spawner in CI: {}",
            sandbox.report().launcher
        );
        return None;
    }
    if sandbox.proves_spawner() {
        crate::note_spawner_proven();
    }
    Some(sandbox)
}

#[test]
fn the_spawner_holds_nothing_of_the_runtime_and_cannot_be_read() {
    let ws = tempfile::tempdir().unwrap();
    // The first sandbox proves the spawner (it starts at once); the second's waits.
    let Some(_first) = sandbox_with_spawner(ws.path()) else {
        return;
    };
    let sandbox = crate::Sandbox::new(crate::SandboxPolicy::new(ws.path())).unwrap();
    // Waiting for its first command, it is not even forked; the command forks it.
    assert!(sandbox.spawner_waits());
    assert_eq!(sandbox.spawner_pid(), None);
    assert_eq!(run(&sandbox, "true").0, 0);
    let pid = sandbox.spawner_pid().unwrap();
    // Only /dev/null on 0-2, its socket and (with a PID namespace) its init's pipe: no
    // ledger, key or listening socket.
    let fds = open_fds(pid);
    let expected: &[i32] = if sandbox.report().layer("pid_namespace").unwrap().active {
        &[0, 1, 2, 3, 4]
    } else {
        &[0, 1, 2, 3]
    };
    assert_eq!(fds, expected);
    // A command may read its own environment (control) but not the spawner's, whose
    // memory is a copy of the runtime's.
    let (status, out) = run(&sandbox, "head -c 4 /proc/self/environ");
    assert_eq!(status, 0, "{out}");
    // Its stdin is the spawner's /dev/null.
    let (status, out) = run(&sandbox, "readlink /proc/self/fd/0");
    assert_eq!((status, out.as_str()), (0, "/dev/null\n"));
    let (status, out) = run(&sandbox, &format!("head -c 4 /proc/{pid}/environ"));
    assert_ne!(status, 0, "read the spawner's environment: {out}");
    let (status, out) = run(&sandbox, &format!("head -c 4 /proc/{pid}/mem"));
    assert_ne!(status, 0, "read the spawner's memory: {out}");
}

/// The descriptors `pid` holds, sorted.
fn open_fds(pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_string_lossy().parse().ok())
        .collect();
    fds.sort();
    fds
}

/// The namespace `kind` of `pid` (e.g. `net:[4026531840]`).
fn namespace(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Whether `holds` becomes true within 5 s (polled every 20 ms).
fn eventually(mut holds: impl FnMut() -> bool) -> bool {
    (0..250).any(|_| {
        let now = holds();
        if !now {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        now
    })
}

fn gone(pid: i32) -> bool {
    eventually(|| !Path::new(&format!("/proc/{pid}")).exists())
}

#[test]
fn once_proven_a_spawner_makes_its_namespaces_at_the_first_command_and_not_before() {
    let ws = tempfile::tempdir().unwrap();
    // Until the host is proven, a sandbox starts its spawner at once, which proves it.
    let Some(_first) = sandbox_with_spawner(ws.path()) else {
        return;
    };
    assert!(crate::spawner_proven());
    let sandbox = crate::Sandbox::new(crate::SandboxPolicy::new(ws.path())).unwrap();
    assert!(sandbox.spawner_waits(), "{}", sandbox.report().launcher);
    // Waiting, it is not forked: no process, so no namespace was made for it.
    assert_eq!(sandbox.spawner_pid(), None);
    // The report promises every layer, and the first command gets each of them.
    for layer in ["network_namespace", "mount_namespace", "pid_namespace"] {
        assert!(
            sandbox.report().layer(layer).is_some_and(|l| l.active),
            "{layer}"
        );
    }
    let (status, out) = run(
        &sandbox,
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; readlink /proc/self/ns/net; \
         readlink /proc/self/ns/pid; cat /etc/shadow >/dev/null 2>&1 || echo shadow-denied; \
         awk -F: 'NR > 2 { gsub(/ /, \"\", $1); print $1 }' /proc/net/dev; ps -e --no-headers | wc -l",
    );
    assert_eq!(status, 0, "{out}");
    assert!(!sandbox.spawner_waits());
    let pid = sandbox.spawner_pid().expect("forked at the first command");
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"),
        "{out}"
    );
    assert!(out.contains("shadow-denied"), "{out}");
    assert!(
        !out.contains(&namespace("self", "net")),
        "the host's network: {out}"
    );
    assert!(
        !out.contains(&namespace("self", "pid")),
        "the host's PIDs: {out}"
    );
    // Only loopback in its network namespace, and only its own processes in its PID
    // namespace (init, bash, ps, wc).
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[lines.len() - 2], "lo", "{out}");
    assert!(
        lines[lines.len() - 1].trim().parse::<u32>().unwrap() <= 5,
        "{out}"
    );
    // Set up, the spawner is in namespaces of its own.
    for kind in ["user", "net", "mnt"] {
        assert_ne!(
            namespace(&pid.to_string(), kind),
            namespace("self", kind),
            "{kind}"
        );
    }
}

#[test]
fn a_waiting_spawner_forked_at_the_first_command_and_lost_after_it_is_replaced() {
    let ws = tempfile::tempdir().unwrap();
    let Some(_first) = sandbox_with_spawner(ws.path()) else {
        return;
    };
    // Dropped without a command: nothing was forked.
    let unused = crate::Sandbox::new(crate::SandboxPolicy::new(ws.path())).unwrap();
    assert!(unused.spawner_waits() && unused.has_spawner());
    assert_eq!(unused.spawner_pid(), None);
    drop(unused);
    // Forked at its first command, then killed: the next command gets a fresh spawner
    // with every layer.
    let sandbox = crate::Sandbox::new(crate::SandboxPolicy::new(ws.path())).unwrap();
    assert_eq!(run(&sandbox, "true").0, 0);
    let pid = sandbox.spawner_pid().unwrap();
    // SAFETY: kill(2) on the spawner this sandbox forked.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(gone(pid));
    let (status, out) = run(
        &sandbox,
        "grep -E '^Seccomp:' /proc/self/status; readlink /proc/self/ns/pid",
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        !out.contains(&namespace("self", "pid")),
        "the host's PIDs: {out}"
    );
    assert_ne!(sandbox.spawner_pid(), Some(pid));
}

#[test]
fn commands_inherit_every_layer_cannot_reach_the_spawner_and_outlive_its_loss() {
    let ws = tempfile::tempdir().unwrap();
    let Some(sandbox) = sandbox_with_spawner(ws.path()) else {
        return;
    };
    let layers = "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; \
                  cat /etc/shadow >/dev/null 2>&1 || echo shadow-denied";
    let (status, before) = run(&sandbox, layers);
    assert_eq!(status, 0, "{before}");
    assert!(before.contains("NoNewPrivs:\t1"), "{before}");
    assert!(before.contains("Seccomp:\t2"), "{before}");
    assert!(before.contains("shadow-denied"), "{before}");
    let pid = sandbox.spawner_pid().unwrap();
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    // In their PID namespace commands cannot name the spawner (without one they share
    // its Landlock domain and could kill it).
    let pid_namespace = sandbox.report().layer("pid_namespace").unwrap().active;
    if pid_namespace {
        let (status, out) = run(&sandbox, &format!("kill -9 {pid}"));
        assert_ne!(status, 0, "{out}");
        assert!(out.contains("No such process"), "{out}");
        assert!(alive() && sandbox.spawner_pid().is_some());
    }
    // A spawner lost anyway (killed from outside): the next command gets a fresh spawner
    // with every layer, its PID namespace included.
    // SAFETY: kill(2) on the spawner this sandbox started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for _ in 0..100 {
        if !alive() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (status, after) = run(&sandbox, layers);
    assert_eq!(status, 0, "{after}");
    assert_eq!(after, before);
    let respawned = sandbox.spawner_pid().expect("a fresh spawner");
    assert_ne!(respawned, pid);
    if pid_namespace {
        let host = std::fs::read_link("/proc/self/ns/pid").unwrap();
        let (status, ns) = run(&sandbox, "readlink /proc/self/ns/pid");
        assert_eq!(status, 0, "{ns}");
        assert_ne!(
            ns.trim(),
            host.to_string_lossy(),
            "a command after the spawner's loss runs in the host's PID namespace"
        );
        let (status, out) = run(&sandbox, &format!("kill -0 {respawned}"));
        assert_ne!(status, 0, "a command can name the new spawner: {out}");
    }
}

#[test]
fn oversized_commands_are_left_to_the_direct_path() {
    let big = "x".repeat(REQUEST_CAP);
    assert!(encode(&strings(&[&big])).is_none());
    assert!(encode(&strings(&["small"])).is_some());
}
