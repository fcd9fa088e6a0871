//! Starting the command: its own session and process group, stdin/stdout/
//! stderr on pipes to the launcher, exactly the environment it was given,
//! an optional working directory and resource limits.

use std::ffi::CString;
use std::io;

/// A resource limit applied (soft = hard) to the command before `exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// CPU seconds (RLIMIT_CPU).
    Cpu(u64),
    /// Address space in bytes (RLIMIT_AS).
    AddressSpace(u64),
    /// Open files (RLIMIT_NOFILE).
    OpenFiles(u64),
    /// Processes of the user (RLIMIT_NPROC; not enforced for root).
    Processes(u64),
}

/// What to start.
pub struct Spec {
    /// The executable (a path: the caller resolved it) and its arguments.
    pub argv: Vec<CString>,
    /// The complete environment, `NAME=value` each.
    pub env: Vec<CString>,
    pub cd: Option<CString>,
    pub limits: Vec<Limit>,
}

/// A started command: its pid and the launcher's ends of its pipes.
pub struct Child {
    pub pid: libc::pid_t,
    pub stdin: i32,
    pub stdout: i32,
    pub stderr: i32,
}

fn pipe() -> io::Result<(i32, i32)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor we own.
    unsafe { libc::close(fd) };
}

/// Starts the command. `announce` is called with its pid while the child
/// waits just before `exec`, so whoever owns the launcher knows the group
/// to end before the command can run (a command that kills the launcher at
/// once leaves nothing unknown behind). On failure before `exec` the error
/// says which step failed and why (the child reports it through a
/// close-on-exec pipe).
pub fn spawn(spec: &Spec, announce: impl FnOnce(libc::pid_t)) -> Result<Child, (i32, String)> {
    let os = |e: io::Error| (e.raw_os_error().unwrap_or(0), e.to_string());
    let (in_r, in_w) = pipe().map_err(os)?;
    let (out_r, out_w) = pipe().map_err(os)?;
    let (err_r, err_w) = pipe().map_err(os)?;
    let (rep_r, rep_w) = pipe().map_err(os)?;
    let (go_r, go_w) = pipe().map_err(os)?;

    // Everything the child touches is built before fork: after it only
    // async-signal-safe calls are made.
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let limits: Vec<(u32, u64)> = spec.limits.iter().map(|l| raw_limit(*l)).collect();
    let cd = spec.cd.as_ref().map(|c| c.as_ptr());

    // SAFETY: fork in a single-threaded process; the child below only
    // makes async-signal-safe calls before exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: child side, see above.
        unsafe {
            child(
                in_r,
                out_w,
                err_w,
                rep_w,
                (go_r, go_w),
                &argv,
                &envp,
                cd,
                &limits,
            )
        }
    }
    for fd in [in_r, out_w, err_w, rep_w, go_r] {
        close(fd);
    }
    announce(pid);
    // The child reads end of file and goes on to exec.
    close(go_w);

    // Either exec closes the report pipe (EOF, success) or the child wrote
    // [step, errno] before exiting.
    let mut report = [0u8; 5];
    let n = loop {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(rep_r, report.as_mut_ptr() as *mut libc::c_void, 5) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break n;
        }
    };
    close(rep_r);
    if n == 5 {
        let errno = i32::from_ne_bytes([report[1], report[2], report[3], report[4]]);
        let step = match report[0] {
            0 => "chdir",
            1 => "setrlimit",
            _ => "exec",
        };
        let mut status = 0;
        // SAFETY: reaping the child that just failed.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        for fd in [in_w, out_r, err_r] {
            close(fd);
        }
        let what = match step {
            "chdir" => format!(
                "cannot change to directory {:?}",
                spec.cd.as_ref().map(|c| c.to_string_lossy().into_owned())
            ),
            "exec" => format!("cannot execute {:?}", spec.argv[0].to_string_lossy()),
            _ => "cannot set a resource limit".to_string(),
        };
        return Err((
            errno,
            format!("{what}: {}", io::Error::from_raw_os_error(errno)),
        ));
    }
    Ok(Child {
        pid,
        stdin: in_w,
        stdout: out_r,
        stderr: err_r,
    })
}

// The resource type differs between C libraries (u32 on glibc, int on musl).
#[allow(clippy::unnecessary_cast)]
fn raw_limit(limit: Limit) -> (u32, u64) {
    match limit {
        Limit::Cpu(n) => (libc::RLIMIT_CPU as u32, n),
        Limit::AddressSpace(n) => (libc::RLIMIT_AS as u32, n),
        Limit::OpenFiles(n) => (libc::RLIMIT_NOFILE as u32, n),
        Limit::Processes(n) => (libc::RLIMIT_NPROC as u32, n),
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn child(
    stdin: i32,
    stdout: i32,
    stderr: i32,
    report: i32,
    (go_r, go_w): (i32, i32),
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    cd: Option<*const libc::c_char>,
    limits: &[(u32, u64)],
) -> ! {
    let fail = |step: u8| -> ! {
        let errno = *libc::__errno_location();
        let mut msg = [step, 0, 0, 0, 0];
        msg[1..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(report, msg.as_ptr() as *const libc::c_void, 5);
        libc::_exit(127)
    };

    // The launcher blocks and ignores signals for itself; the command gets
    // the defaults back.
    let mut all: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut all);
    libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP] {
        libc::signal(sig, libc::SIG_DFL);
    }
    // Own session and process group: no terminal signals from the node's
    // terminal, and one group to kill.
    libc::setsid();
    // Should the launcher itself be killed, the command goes with it.
    libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    );

    libc::dup2(stdin, 0);
    libc::dup2(stdout, 1);
    libc::dup2(stderr, 2);
    if let Some(dir) = cd {
        if libc::chdir(dir) < 0 {
            fail(0);
        }
    }
    for &(resource, value) in limits {
        // Never above the current hard limit: lowering needs no privilege.
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(resource as _, &mut lim);
        let value = (value as libc::rlim_t).min(lim.rlim_max);
        lim.rlim_cur = value;
        lim.rlim_max = value;
        if libc::setrlimit(resource as _, &lim) < 0 {
            fail(1);
        }
    }
    // Wait until the launcher has told its owner our pid (end of file on
    // the go pipe; also if the launcher died, and then the parent-death
    // signal is on its way).
    libc::close(go_w);
    let mut byte = 0u8;
    while libc::read(go_r, &mut byte as *mut u8 as *mut libc::c_void, 1) < 0
        && *libc::__errno_location() == libc::EINTR
    {}
    libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
    fail(2)
}
