//! What runs in the forked spawner: it waits for the first command (when forked waiting),
//! sets itself up, then serves requests. Raw system calls only, on memory prepared before
//! the fork.

use super::*;

/// The spawner's reply, from inside it (raw send).
unsafe fn reply(pid: libc::pid_t, stage: Stage, errno: c_int) {
    let words = [pid, stage as i32, errno];
    // SAFETY: sends the 12 bytes of `words`.
    unsafe {
        libc::send(
            SOCKET_FD,
            words.as_ptr().cast(),
            std::mem::size_of_val(&words),
            libc::MSG_NOSIGNAL,
        )
    };
}

/// The forked spawner: set itself up, confine itself, then serve requests until the
/// runtime closes the socket.
///
/// # Safety
/// Only in the child of `fork`: raw system calls on `memory`, never returns.
pub(super) unsafe fn spawner_main(memory: &mut SpawnerMemory) -> ! {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        launch::reset_signal_handlers();
        wait_for_first_command(memory);
        // Confined first: the plan uses descriptors (the Landlock ruleset, the namespaces).
        // The PID namespace's init comes between the namespaces and the restrictions (it
        // mounts /proc, which Landlock and seccomp forbid).
        let mut init_watch = None;
        let confined = memory.plan.enter_namespaces().and_then(|()| {
            // Its memory is a copy of the runtime's: no command may read it. Set once its
            // id maps are written: without privilege a process that is not dumpable may not
            // write its own /proc/self/{setgroups,uid_map,gid_map}.
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
            if memory.plan.pid_namespace {
                init_watch = start_init(&memory.plan, memory.arguments)?;
                memory.pid_namespace = init_watch.is_some();
                if memory.pid_namespace {
                    memory.plan.grant_new_proc()?;
                }
            }
            memory.plan.restrict()
        });
        // Then nothing of the runtime's stays open: stdio to /dev/null, the socket at 3,
        // and every other descriptor closed.
        for fd in 0..3 {
            libc::dup2(memory.dev_null, fd);
        }
        if libc::dup3(memory.socket, SOCKET_FD, libc::O_CLOEXEC) != SOCKET_FD {
            libc::_exit(1);
        }
        // The init's pipe (numbered above INIT_WATCH_FD, so the socket move kept it).
        if let Some(fd) = init_watch
            && libc::dup3(fd, INIT_WATCH_FD, libc::O_CLOEXEC) != INIT_WATCH_FD
        {
            libc::_exit(1);
        }
        let first_closed = if init_watch.is_some() {
            INIT_WATCH_FD + 1
        } else {
            SOCKET_FD + 1
        };
        libc::syscall(libc::SYS_close_range, first_closed, u32::MAX, 0u32);
        if let Err(e) = confined {
            reply(
                -1,
                Stage::Confinement,
                e.raw_os_error().unwrap_or(libc::EINVAL),
            );
            libc::_exit(1);
        }
        // Ends with the runtime (its parent): the namespaces' credentials are set, so the
        // signal is not reset any more.
        die_with_runtime(memory);
        reply(i32::from(memory.pid_namespace), Stage::None, 0);
        loop {
            serve_one(memory);
        }
    }
}

/// Makes the spawner end when the runtime (its parent) does; a runtime already gone is no
/// longer its parent, and then it ends now.
///
/// # Safety
/// Only in the forked spawner: raw system calls.
unsafe fn die_with_runtime(memory: &SpawnerMemory) {
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
            || libc::getppid() != memory.runtime
        {
            libc::_exit(1);
        }
    }
}

/// Waits, holding nothing of the runtime's but what its setup needs, until the runtime asks
/// it to set itself up (one byte); leaves when the runtime closes the socket or dies.
///
/// # Safety
/// Only in the forked spawner: raw system calls.
unsafe fn wait_for_first_command(memory: &SpawnerMemory) {
    unsafe {
        libc::close(memory.runtime_end);
        // Ends with the runtime while it waits too (set again once its namespaces are made,
        // which resets it).
        die_with_runtime(memory);
        // Nothing of the runtime's stays open while it waits (a copy of a pipe's end would
        // keep its reader from seeing the end): /dev/null on 0-2, then every descriptor
        // closed but its socket, /dev/null and the plan's.
        for fd in 0..3 {
            libc::dup2(memory.dev_null, fd);
        }
        let [a, b, c] = memory.plan_fds;
        let mut keep = [memory.socket, memory.dev_null, a, b, c];
        keep.sort_unstable();
        let mut next: RawFd = 3;
        for fd in keep {
            if fd < next {
                continue;
            }
            if fd > next {
                libc::syscall(libc::SYS_close_range, next as u32, (fd - 1) as u32, 0u32);
            }
            next = fd + 1;
        }
        libc::syscall(libc::SYS_close_range, next as u32, u32::MAX, 0u32);
        let mut byte = 0u8;
        loop {
            let got = libc::recv(memory.socket, (&mut byte as *mut u8).cast(), 1, 0);
            if got == 1 {
                return;
            }
            if got == 0 || *libc::__errno_location() != libc::EINTR {
                libc::_exit(0);
            }
        }
    }
}

/// Receives one request, starts its command, replies, and closes what it received.
unsafe fn serve_one(memory: &mut SpawnerMemory) {
    unsafe {
        let mut control = [0u64; CONTROL_WORDS];
        let mut iov = libc::iovec {
            iov_base: memory.buffer.as_mut_ptr().cast(),
            iov_len: memory.buffer.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let got = libc::recvmsg(SOCKET_FD, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if got == 0 {
            libc::_exit(0);
        }
        if got < 0 {
            if *libc::__errno_location() == libc::EINTR {
                return;
            }
            libc::_exit(1);
        }
        // stdout, stderr and optionally one or two cgroup.procs.
        let mut fds = [-1 as RawFd; 4];
        let mut received = 0;
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                let n = ((*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..n {
                    let fd = *data.add(i);
                    if received < fds.len() {
                        fds[received] = fd;
                        received += 1;
                    } else {
                        libc::close(fd);
                    }
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
        let truncated = msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0;
        let request = &memory.buffer[..got as usize];
        match decode(request, &mut memory.pointers) {
            _ if truncated => reply(-1, Stage::None, libc::E2BIG),
            _ if received < 2 => reply(-1, Stage::None, libc::EINVAL),
            Err(errno) => reply(-1, Stage::None, errno),
            Ok(decoded) => {
                let pointers = memory.pointers.as_ptr();
                let mut context = ChildContext {
                    candidates: pointers,
                    argv: pointers.add(decoded.argv),
                    envp: pointers.add(decoded.envp),
                    cwd: request[decoded.cwd..].as_ptr().cast(),
                    // Its own /dev/null (see `spawner_main`).
                    stdin: 0,
                    stdout: fds[0],
                    stderr: fds[1],
                    cgroup_procs: [fds[2], fds[3]],
                    parent: if memory.pid_namespace {
                        0
                    } else {
                        memory.runtime
                    },
                    confine: None,
                    failed_stage: AtomicI32::new(Stage::None as i32),
                    failed_errno: AtomicI32::new(0),
                };
                match launch::clone_child(
                    &mut context,
                    &memory.stack,
                    libc::CLONE_PARENT,
                    std::ptr::null_mut(),
                ) {
                    Err(e) => {
                        let errno = e.raw_os_error().unwrap_or(libc::EINVAL);
                        reply(-1, Stage::None, errno);
                        // ENOMEM in a PID namespace: its init is gone, nothing can start
                        // here any more; the runtime starts commands directly from now on.
                        if memory.pid_namespace && errno == libc::ENOMEM {
                            libc::_exit(1);
                        }
                    }
                    Ok(pid) => match context.failure() {
                        Some((stage, errno)) => reply(pid, stage, errno),
                        None => reply(pid, Stage::None, 0),
                    },
                }
            }
        }
        for fd in fds.into_iter().take(received) {
            libc::close(fd);
        }
    }
}
