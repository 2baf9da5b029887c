//! What each layer costs a spawn: `cargo test -p praxis-sandbox --release layer_costs --
//! --ignored --nocapture`. Prints medians; asserts only that every variant spawned.

use crate::{Sandbox, SandboxPolicy, probe};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The given quantile (0..=1) of `v`, in µs.
fn quantile(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
}

#[test]
#[ignore = "a measurement, run by hand"]
fn layer_costs() {
    let host = probe();
    let ws = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    let plan = sandbox.plan.clone();
    let n = std::env::var("LAYER_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // LAYER_BASH=1: `bash -c true` (what the runtime's bench spawns) instead of /bin/true.
    let bash = std::env::var_os("LAYER_BASH").is_some();
    type Variant = (&'static str, u32);
    // Bits: 1 fork (noop pre_exec), 2 cgroup, 4 userns, 8 netns, 16 rlimits, 32 landlock,
    // 64 seccomp, 128 the production path (`Sandbox::launch` with a cgroup).
    eprintln!("seccomp program lengths: {:?}", plan.seccomp_lengths());
    let variants: [Variant; 12] = [
        ("posix_spawn (no hook)", 0),
        ("fork (noop pre_exec)", 1),
        ("+ cgroup create/attach/remove", 1 | 2),
        ("+ unshare(USER)+maps", 1 | 4),
        ("+ unshare(USER|NET)+maps", 1 | 4 | 8),
        ("+ join shared user+net, own userns", 1 | 1024),
        ("+ rlimits", 1 | 16),
        ("+ no_new_privs+landlock", 1 | 32),
        ("+ no_new_privs+seccomp", 1 | 64),
        ("+ nnp + 1-instruction allow filter", 1 | 256),
        ("+ nnp + first seccomp program only", 1 | 512),
        ("Sandbox::launch + cgroup (spawner)", 128),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for _ in 0..n {
        for (i, (_, bits)) in variants.iter().enumerate() {
            let bits = *bits;
            let t = Instant::now();
            let cgroup = if bits & (2 | 128) != 0 {
                sandbox.spawn_cgroup().unwrap()
            } else {
                None
            };
            let mut cmd = if bash {
                let mut c = Command::new("/bin/bash");
                c.args(["-c", "true"]);
                c
            } else {
                Command::new("/bin/true")
            };
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if bits & 128 != 0 {
                // The production path: the sandbox's spawner (or its direct fallback).
                let program = if bash { "/bin/bash" } else { "/bin/true" };
                let args: Vec<String> = if bash {
                    vec!["-c".into(), "true".into()]
                } else {
                    Vec::new()
                };
                let launched = sandbox
                    .launch(
                        &crate::Launch {
                            program: std::path::Path::new(program),
                            args: &args,
                            env: &[],
                            cwd: ws.path(),
                            default_path: "/usr/bin:/bin",
                        },
                        cgroup.as_ref(),
                    )
                    .unwrap();
                let (status, _, _) = launched.wait_with_output().unwrap();
                if let Some(mut cg) = cgroup
                    && !cg.try_finish_now()
                {
                    cg.finish();
                }
                samples[i].push(t.elapsed());
                assert!(status.success(), "{}", variants[i].0);
                continue;
            }
            if bits != 0 {
                let plan = plan.clone();
                let cg = cgroup
                    .as_ref()
                    .and_then(|c| c.procs_fds()[0])
                    .map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd));
                unsafe {
                    cmd.pre_exec(move || plan.apply_parts(bits, cg));
                }
            }
            let status = cmd.status().unwrap();
            if let Some(mut cg) = cgroup
                && !cg.try_finish_now()
            {
                cg.finish();
            }
            samples[i].push(t.elapsed());
            assert!(status.success(), "{}", variants[i].0);
        }
    }
    eprintln!("host: {host:?}");
    eprintln!("landlock: {:?}", sandbox.report().layer("landlock"));
    eprintln!("{:<36} {:>8} {:>8}", "variant (µs)", "p10", "median");
    for ((name, _), mut s) in variants.iter().zip(samples) {
        eprintln!(
            "{name:<36} {:>8.0} {:>8.0}",
            quantile(&mut s, 0.1),
            quantile(&mut s, 0.5)
        );
    }
}

#[test]
#[ignore = "a measurement, run by hand"]
fn child_step_costs() {
    let ws = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(SandboxPolicy::new(ws.path())).unwrap();
    let names = [
        "cgroup write",
        "setns user",
        "setns net",
        "unshare user",
        "setgroups",
        "uid_map",
        "gid_map",
        "rlimits",
        "no_new_privs",
        "landlock",
        "seccomp",
    ];
    // Shared with the forked child, which writes its stamps here.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as *mut u64;
    assert!(!page.is_null());
    let stamps = page as usize;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for _ in 0..300 {
        let cgroup = sandbox.spawn_cgroup().unwrap();
        let plan = sandbox.plan.clone();
        let cg = cgroup
            .as_ref()
            .and_then(|c| c.procs_fds()[0])
            .map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd));
        let mut cmd = Command::new("/bin/true");
        unsafe { cmd.pre_exec(move || plan.apply_timed(cg, stamps as *mut u64)) };
        assert!(cmd.status().unwrap().success());
        if let Some(mut cg) = cgroup
            && !cg.try_finish_now()
        {
            cg.finish();
        }
        for (i, s) in samples.iter_mut().enumerate() {
            let (a, b) = unsafe { (*page.add(i), *page.add(i + 1)) };
            s.push(Duration::from_nanos(b - a));
        }
    }
    eprintln!("{:<16} {:>8} {:>8}", "step (µs)", "p10", "median");
    for (name, mut s) in names.iter().zip(samples) {
        eprintln!(
            "{name:<16} {:>8.1} {:>8.1}",
            quantile(&mut s, 0.1),
            quantile(&mut s, 0.5)
        );
    }
}
