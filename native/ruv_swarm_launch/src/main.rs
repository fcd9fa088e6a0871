//! `ruv_swarm_launch`: starts one OS command for the node and keeps every
//! process it starts under control.
//!
//! ```text
//! ruv_swarm_launch [--cd DIR] [--env NAME=VALUE]... [--stderr tail|stream]
//!                  [--rlimit-cpu SECONDS] [--rlimit-as BYTES]
//!                  [--rlimit-nofile N] [--rlimit-nproc N] -- EXECUTABLE [ARG]...
//! ```
//!
//! The owner is an Erlang port opened with `{:packet, 4}`; the messages are
//! described in [`protocol`]. The launcher
//! * makes itself the subreaper of its descendants, so a double-forked
//!   process stays its descendant;
//! * starts the command in its own session and process group with exactly
//!   the `--env` environment (nothing is inherited), the working directory
//!   and the limits given;
//! * relays stdin, stdout and stderr (stderr's last 4 KiB go into the final
//!   message, or all of it as it comes with `--stderr stream`);
//! * ends the whole tree (see [`tree`]) when the command exits (the unit
//!   ends with the command: leftovers are killed and counted), when the
//!   owner asks, when its stdin reaches end of file (the port closed, its
//!   owner or the VM died) and when its parent dies (`PR_SET_PDEATHSIG`).

mod protocol;
mod spawn;
mod tree;

use protocol::Exit;
use spawn::{Limit, Spec};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

const STDERR_TAIL: usize = 4096;
const CHUNK: usize = 65536;

struct Options {
    spec: Spec,
    stream_stderr: bool,
}

fn parse(args: Vec<std::ffi::OsString>) -> Result<Options, String> {
    let mut spec = Spec {
        argv: Vec::new(),
        env: Vec::new(),
        cd: None,
        limits: Vec::new(),
    };
    let mut stream_stderr = false;
    let mut it = args.into_iter();
    let cstr = |s: std::ffi::OsString| {
        CString::new(s.as_bytes()).map_err(|_| "arguments cannot hold NUL bytes".to_string())
    };
    let number = |flag: &str, v: Option<std::ffi::OsString>| -> Result<u64, String> {
        v.and_then(|v| v.to_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| format!("{flag} needs a non-negative integer"))
    };
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--") => {
                for a in it.by_ref() {
                    spec.argv.push(cstr(a)?);
                }
            }
            Some("--cd") => spec.cd = Some(cstr(it.next().ok_or("--cd needs a directory")?)?),
            Some("--env") => {
                let kv = it.next().ok_or("--env needs NAME=VALUE")?;
                if !kv.as_bytes().contains(&b'=') {
                    return Err("--env needs NAME=VALUE".into());
                }
                spec.env.push(cstr(kv)?);
            }
            Some("--stderr") => match it.next().as_ref().and_then(|s| s.to_str()) {
                Some("tail") => stream_stderr = false,
                Some("stream") => stream_stderr = true,
                _ => return Err("--stderr is tail or stream".into()),
            },
            Some("--rlimit-cpu") => spec
                .limits
                .push(Limit::Cpu(number("--rlimit-cpu", it.next())?)),
            Some("--rlimit-as") => spec
                .limits
                .push(Limit::AddressSpace(number("--rlimit-as", it.next())?)),
            Some("--rlimit-nofile") => spec
                .limits
                .push(Limit::OpenFiles(number("--rlimit-nofile", it.next())?)),
            Some("--rlimit-nproc") => spec
                .limits
                .push(Limit::Processes(number("--rlimit-nproc", it.next())?)),
            _ => return Err(format!("unknown option {arg:?}")),
        }
    }
    if spec.argv.is_empty() {
        return Err("no command given (after --)".into());
    }
    Ok(Options {
        spec,
        stream_stderr,
    })
}

fn main() {
    let opts = match parse(std::env::args_os().skip(1).collect()) {
        Ok(opts) => opts,
        Err(msg) => {
            let _ = protocol::send_exit(1, Exit::SpawnFailed(libc::EINVAL), 0, msg.as_bytes());
            std::process::exit(2);
        }
    };
    // SAFETY: plain process-attribute calls at startup, single-threaded.
    let sigfd = unsafe { setup() };
    let mut owner_open = true;
    let announce = |pid: libc::pid_t| {
        owner_open = protocol::send(1, protocol::OUT_STARTED, &(pid as u32).to_be_bytes()).is_ok();
    };
    let child = match spawn::spawn(&opts.spec, announce) {
        Ok(child) => child,
        Err((errno, msg)) => {
            let _ = protocol::send_exit(1, Exit::SpawnFailed(errno), 0, msg.as_bytes());
            std::process::exit(0);
        }
    };
    let code = Unit::new(child, sigfd, opts.stream_stderr, owner_open).run();
    std::process::exit(code);
}

/// Subreaper, parent-death signal, no core dumps or /proc peeking at our
/// memory, and every signal we care about delivered through a signalfd.
unsafe fn setup() -> i32 {
    let parent = libc::getppid();
    libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGTERM as libc::c_ulong,
        0,
        0,
        0,
    );
    // Non-dumpable: another process of the same user cannot read this one's
    // /proc/<pid>/environ or memory. Reset by exec in the command.
    libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    libc::signal(libc::SIGINT, libc::SIG_IGN);
    libc::signal(libc::SIGQUIT, libc::SIG_IGN);

    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    for sig in [libc::SIGCHLD, libc::SIGTERM, libc::SIGHUP] {
        libc::sigaddset(&mut set, sig);
    }
    libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
    // The parent died before the death signal was armed.
    if libc::getppid() != parent {
        libc::kill(libc::getpid(), libc::SIGTERM);
    }
    fd
}

/// Why the loop stopped.
enum End {
    /// The command exited with this wait status (not yet reaped).
    MainExited(libc::c_int),
    /// The owner asked for the end.
    Kill,
    /// The owner is gone (port closed, parent died): end silently.
    OwnerGone,
}

struct Unit {
    pid: libc::pid_t,
    stdin: i32,
    stdout: i32,
    stderr: i32,
    sigfd: i32,
    stream_stderr: bool,
    pending_in: Vec<u8>,
    close_in: bool,
    reader: protocol::Reader,
    tail: Vec<u8>,
    owner_open: bool,
}

impl Unit {
    fn new(c: spawn::Child, sigfd: i32, stream_stderr: bool, owner_open: bool) -> Unit {
        // SAFETY: setting O_NONBLOCK on our end of the stdin pipe.
        unsafe {
            let fl = libc::fcntl(c.stdin, libc::F_GETFL);
            libc::fcntl(c.stdin, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        Unit {
            pid: c.pid,
            stdin: c.stdin,
            stdout: c.stdout,
            stderr: c.stderr,
            sigfd,
            stream_stderr,
            pending_in: Vec::new(),
            close_in: false,
            reader: protocol::Reader::default(),
            tail: Vec::new(),
            owner_open,
        }
    }

    fn run(mut self) -> i32 {
        let end = if self.owner_open {
            self.serve()
        } else {
            End::OwnerGone
        };
        let (exit, ended) = match end {
            End::MainExited(status) => {
                let ended = tree::end_all(self.pid, true, self.sigfd);
                (status_exit(ended.main_status.unwrap_or(status)), ended)
            }
            End::Kill => (Exit::Killed, tree::end_all(self.pid, true, self.sigfd)),
            End::OwnerGone => {
                tree::end_all(self.pid, true, self.sigfd);
                return 0;
            }
        };
        self.drain();
        if self.owner_open {
            let _ = protocol::send_exit(1, exit, ended.leftovers, &self.tail);
        }
        0
    }

    /// Relays until the command exits or the owner ends the unit.
    fn serve(&mut self) -> End {
        let mut buf = vec![0u8; CHUNK];
        loop {
            if self.close_in && self.pending_in.is_empty() && self.stdin >= 0 {
                close(&mut self.stdin);
            }
            let mut fds = vec![
                pollfd(0, libc::POLLIN),
                pollfd(self.sigfd, libc::POLLIN),
                pollfd(self.stdout, libc::POLLIN),
                pollfd(self.stderr, libc::POLLIN),
            ];
            if self.stdin >= 0 && !self.pending_in.is_empty() {
                fds.push(pollfd(self.stdin, libc::POLLOUT));
            }
            // SAFETY: fds is a valid array; negative fds are ignored by poll.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                continue;
            }
            let ready = |i: usize| fds.get(i).is_some_and(|f| f.revents != 0);

            if ready(1) {
                for sig in tree::drain_signals(self.sigfd) {
                    if sig == libc::SIGTERM as u32 || sig == libc::SIGHUP as u32 {
                        return End::OwnerGone;
                    }
                }
                if let Some(status) = self.reap_until_main() {
                    return End::MainExited(status);
                }
            }
            if ready(0) {
                match read(0, &mut buf) {
                    0 => return End::OwnerGone,
                    n if n > 0 => {
                        self.reader.push(&buf[..n as usize]);
                        while let Some((tag, body)) = self.reader.next_message() {
                            match tag {
                                protocol::IN_STDIN if !self.close_in => {
                                    self.pending_in.extend_from_slice(&body)
                                }
                                protocol::IN_CLOSE_STDIN => self.close_in = true,
                                protocol::IN_KILL => return End::Kill,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            if ready(2) && !self.forward(true, &mut buf) {
                return End::OwnerGone;
            }
            if ready(3) && !self.forward(false, &mut buf) {
                return End::OwnerGone;
            }
            if ready(4) {
                self.write_stdin();
            }
        }
    }

    /// Reaps exited descendants (orphans re-parented to us) and stops at
    /// the command itself, which is left unreaped: its process group id
    /// cannot be reused while it is a zombie.
    fn reap_until_main(&mut self) -> Option<libc::c_int> {
        loop {
            // SAFETY: siginfo_t is plain data filled by waitid.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r = unsafe {
                libc::waitid(
                    libc::P_ALL,
                    0,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL,
                )
            };
            // SAFETY: si_pid is valid after a successful waitid.
            let pid = unsafe { info.si_pid() };
            if r < 0 || pid == 0 {
                return None;
            }
            let mut status = 0;
            if pid == self.pid {
                // Its wait status, still without reaping.
                let status = unsafe { wait_status(&info) };
                return Some(status);
            }
            unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
        }
    }

    /// Forwards one read of stdout or stderr. False when the owner is gone.
    fn forward(&mut self, stdout: bool, buf: &mut [u8]) -> bool {
        let fd = if stdout { self.stdout } else { self.stderr };
        let n = read(fd, buf);
        if n <= 0 {
            if n == 0 || !retryable() {
                if stdout {
                    close(&mut self.stdout)
                } else {
                    close(&mut self.stderr)
                }
            }
            return true;
        }
        let data = &buf[..n as usize];
        if stdout {
            return self.send(protocol::OUT_STDOUT, data);
        }
        self.keep_tail(data);
        if self.stream_stderr {
            return self.send(protocol::OUT_STDERR, data);
        }
        true
    }

    fn send(&mut self, tag: u8, data: &[u8]) -> bool {
        if protocol::send(1, tag, data).is_err() {
            self.owner_open = false;
        }
        self.owner_open
    }

    fn keep_tail(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        if self.tail.len() > STDERR_TAIL {
            let cut = self.tail.len() - STDERR_TAIL;
            self.tail.drain(..cut);
        }
    }

    fn write_stdin(&mut self) {
        // SAFETY: writing from a live buffer to our pipe end.
        let n = unsafe {
            libc::write(
                self.stdin,
                self.pending_in.as_ptr() as *const libc::c_void,
                self.pending_in.len(),
            )
        };
        if n > 0 {
            self.pending_in.drain(..n as usize);
        } else if n < 0 && !retryable() {
            // The command closed its stdin: what it did not read is dropped.
            self.pending_in.clear();
            self.close_in = true;
            close(&mut self.stdin);
        }
    }

    /// After the tree is gone: whatever is left in the output pipes. Every
    /// writer is dead, so this ends at EOF; the bound only guards against a
    /// pipe end smuggled out of the tree.
    fn drain(&mut self) {
        close(&mut self.stdin);
        let mut buf = vec![0u8; CHUNK];
        while self.stdout >= 0 || self.stderr >= 0 {
            let mut fds = [
                pollfd(self.stdout, libc::POLLIN),
                pollfd(self.stderr, libc::POLLIN),
            ];
            // SAFETY: valid pollfd array.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) } <= 0 {
                break;
            }
            if fds[0].revents != 0 && self.owner_open {
                self.forward(true, &mut buf);
            } else if fds[0].revents != 0 {
                close(&mut self.stdout);
            }
            if fds[1].revents != 0 {
                self.forward(false, &mut buf);
            }
        }
    }
}

unsafe fn wait_status(info: &libc::siginfo_t) -> libc::c_int {
    let status = info.si_status();
    match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        // Killed or dumped: the signal number in the low bits.
        _ => status & 0x7f,
    }
}

fn status_exit(status: libc::c_int) -> Exit {
    if libc::WIFSIGNALED(status) {
        Exit::Signaled(libc::WTERMSIG(status))
    } else {
        Exit::Exited(libc::WEXITSTATUS(status))
    }
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: reading into a live buffer.
    unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) }
}

fn retryable() -> bool {
    matches!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EINTR) | Some(libc::EAGAIN)
    )
}

fn close(fd: &mut i32) {
    if *fd >= 0 {
        // SAFETY: closing a descriptor we own, once.
        unsafe { libc::close(*fd) };
        *fd = -1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(|s| s.into()).collect()
    }

    #[test]
    fn parses_options_and_command() {
        let o = parse(args(&[
            "--cd",
            "/tmp",
            "--env",
            "A=1",
            "--rlimit-cpu",
            "5",
            "--stderr",
            "stream",
            "--",
            "/bin/echo",
            "--cd",
        ]))
        .unwrap();
        assert_eq!(o.spec.argv.len(), 2);
        assert_eq!(o.spec.argv[1].to_str().unwrap(), "--cd");
        assert_eq!(o.spec.env[0].to_str().unwrap(), "A=1");
        assert_eq!(o.spec.limits, vec![Limit::Cpu(5)]);
        assert!(o.stream_stderr);
    }

    #[test]
    fn refuses_bad_options() {
        assert!(parse(args(&["--env", "NOEQUALS", "--", "x"])).is_err());
        assert!(parse(args(&["--rlimit-as", "lots", "--", "x"])).is_err());
        assert!(parse(args(&["--"])).is_err());
        assert!(parse(args(&["--bogus", "--", "x"])).is_err());
    }
}
