//! stdin and stdout for the client-facing transport.
//!
//! tokio's own `stdin()`/`stdout()` do every read and write on its blocking
//! thread pool, so each message crossed threads twice on its way in and twice
//! on its way out (about 0.1 ms a round trip on a busy 2-core machine). MCP
//! clients start the bridge with pipes on both ends; a pipe can be polled by
//! the runtime's own event loop, so when stdin and stdout are pipes they are
//! read and written on the runtime thread, non-blocking. Anything else (a
//! terminal, a file, /dev/null) keeps tokio's blocking-pool handles.
//!
//! Non-blocking mode belongs to the open file, which the parent may share,
//! so [`Stdio`] puts stdin's and stdout's original flags back when dropped.

use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

/// The bridge's stdin: a pipe on the event loop, or tokio's stdin.
pub enum Stdin {
    Pipe(pipe::Receiver),
    Blocking(tokio::io::Stdin),
}

/// The bridge's stdout: a pipe on the event loop, or tokio's stdout.
pub enum Stdout {
    Pipe(pipe::Sender),
    Blocking(tokio::io::Stdout),
}

/// Restores the file status flags of stdin and stdout when dropped.
pub struct Stdio {
    saved: Vec<(RawFd, libc::c_int)>,
}

impl Stdio {
    /// Opens stdin and stdout. Must be called inside the tokio runtime.
    pub fn open() -> (Stdio, Stdin, Stdout) {
        let mut guard = Stdio { saved: Vec::new() };
        let stdin = match guard.pipe(0, pipe::Receiver::from_owned_fd) {
            Some(receiver) => Stdin::Pipe(receiver),
            None => Stdin::Blocking(tokio::io::stdin()),
        };
        let stdout = match guard.pipe(1, pipe::Sender::from_owned_fd) {
            Some(sender) => Stdout::Pipe(sender),
            None => Stdout::Blocking(tokio::io::stdout()),
        };
        (guard, stdin, stdout)
    }

    /// Wraps a duplicate of `fd` with `wrap` (which checks that it is a pipe
    /// and makes it non-blocking), remembering the flags to restore.
    fn pipe<T>(
        &mut self,
        fd: RawFd,
        wrap: impl FnOnce(std::os::fd::OwnedFd) -> io::Result<T>,
    ) -> Option<T> {
        // SAFETY: fcntl(F_GETFL) only reads the flags of a descriptor number.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return None;
        }
        // SAFETY: fds 0 and 1 stay open for the life of the process.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let owned = borrowed.try_clone_to_owned().ok()?;
        match wrap(owned) {
            Ok(wrapped) => {
                self.saved.push((fd, flags));
                Some(wrapped)
            }
            Err(e) => {
                tracing::debug!(fd, "not a pipe, using blocking I/O: {e}");
                None
            }
        }
    }
}

impl Drop for Stdio {
    fn drop(&mut self) {
        for &(fd, flags) in &self.saved {
            // SAFETY: F_SETFL with flags read from the same descriptor.
            unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
        }
    }
}

impl AsyncRead for Stdin {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stdin::Pipe(p) => Pin::new(p).poll_read(cx, buf),
            Stdin::Blocking(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stdout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stdout::Pipe(p) => Pin::new(p).poll_write(cx, buf),
            Stdout::Blocking(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stdout::Pipe(p) => Pin::new(p).poll_flush(cx),
            Stdout::Blocking(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stdout::Pipe(p) => Pin::new(p).poll_shutdown(cx),
            Stdout::Blocking(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
