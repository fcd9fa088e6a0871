//! Ending every descendant of the launcher, however it forked.
//!
//! The launcher is the children's subreaper, so a process whose parent dies
//! is re-parented to the launcher, never to init: every process the command
//! started is either a child of the launcher or has a living ancestor that
//! is. Ending the tree is therefore a loop: kill every direct child, reap,
//! and look again, until `waitpid` answers `ECHILD` (no child at all, so no
//! descendant at all). A process forked while this runs has a parent that is
//! not yet killed; once that parent dies the new process becomes our child
//! and is killed in the next round. A process with SIGKILL pending cannot
//! fork. Nothing is ever signalled but the launcher's own children and the
//! command's process group while its leader is still unreaped (so that id
//! cannot have been reused).

use std::fs;

/// Pids of the launcher's direct children (running or zombies).
pub fn children() -> Vec<libc::pid_t> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    // The launcher has one thread, so its thread id is its pid.
    match fs::read_to_string(format!("/proc/{me}/task/{me}/children")) {
        Ok(text) => text
            .split_ascii_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        Err(_) => scan_children(me),
    }
}

/// Without CONFIG_PROC_CHILDREN: every process whose parent is `me`.
fn scan_children(me: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let name = entry.ok()?.file_name();
        let pid: libc::pid_t = name.to_str()?.parse().ok()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        (ppid_of(&stat)? == me).then_some(pid)
    })
    .collect()
}

/// The parent pid in a `/proc/<pid>/stat` line (the name may hold spaces
/// and parentheses, so it is skipped up to the last `)`).
pub fn ppid_of(stat: &str) -> Option<libc::pid_t> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// What ending the tree found.
pub struct Ended {
    /// The command's own status, if it was reaped here.
    pub main_status: Option<libc::c_int>,
    /// Descendants (not the command itself) killed while still running.
    pub leftovers: u32,
}

/// Kills and reaps every descendant. `main` is the command's pid; when it
/// is still unreaped its process group is killed first (one signal for the
/// common case). `sigfd` is the signal fd that reports SIGCHLD.
pub fn end_all(main: libc::pid_t, main_unreaped: bool, sigfd: i32) -> Ended {
    let mut ended = Ended {
        main_status: None,
        leftovers: 0,
    };
    if main_unreaped {
        // SAFETY: main is our unreaped child, so its pgid is ours to signal.
        unsafe { libc::kill(-main, libc::SIGKILL) };
    }
    loop {
        for pid in children() {
            // SAFETY: pid is our own child (or already gone: ESRCH).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        loop {
            let mut status = 0;
            // SAFETY: plain waitpid on our own children.
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
            if r > 0 {
                if r == main {
                    ended.main_status = Some(status);
                } else if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL {
                    ended.leftovers += 1;
                }
                continue;
            }
            if r == 0 {
                break;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                // No child left: no descendant left.
                _ => return ended,
            }
        }
        wait_for_signal(sigfd, 50);
    }
}

/// Waits up to `ms` for a signal on `sigfd` and consumes what is there.
pub fn wait_for_signal(sigfd: i32, ms: i32) {
    let mut pfd = libc::pollfd {
        fd: sigfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut pfd, 1, ms) } > 0 {
        drain_signals(sigfd);
    }
}

/// Reads every pending signal off `sigfd` (non-blocking) and returns them.
pub fn drain_signals(sigfd: i32) -> Vec<u32> {
    let mut out = Vec::new();
    loop {
        // SAFETY: signalfd_siginfo is plain data; the read fills it.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = unsafe { libc::read(sigfd, &mut info as *mut _ as *mut libc::c_void, size) };
        if n as usize != size {
            return out;
        }
        out.push(info.ssi_signo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_read_past_a_tricky_name() {
        assert_eq!(ppid_of("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(ppid_of("42 (sleep) R 1 1 1"), Some(1));
        assert_eq!(ppid_of("garbage"), None);
    }
}
