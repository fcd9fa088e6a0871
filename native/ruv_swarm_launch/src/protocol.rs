//! The launcher's conversation with its owner (an Erlang port opened with
//! `{:packet, 4}`): every message is a 4-byte big-endian length followed by
//! that many bytes, the first of which says what the message is.
//!
//! From the owner (stdin of the launcher):
//! * `0, bytes`: bytes for the command's stdin;
//! * `1`: close the command's stdin (end of input);
//! * `2`: end the command and every process it started, then report.
//!
//! End of file on stdin (the port was closed, its owner or the VM died) ends
//! the whole tree at once, without a report.
//!
//! To the owner (stdout of the launcher):
//! * `3, pid:u32`: the command started; its pid is also its session and
//!   process group id;
//! * `0, bytes`: bytes the command wrote to stdout;
//! * `1, bytes`: bytes it wrote to stderr (only with `--stderr stream`);
//! * `2, kind:u8, value:i32, leftovers:u32, stderr_tail`: the last message.
//!   `kind` is [`Exit`]; `leftovers` counts the descendants that were still
//!   running when the unit ended and were killed.

use std::io;

pub const IN_STDIN: u8 = 0;
pub const IN_CLOSE_STDIN: u8 = 1;
pub const IN_KILL: u8 = 2;

pub const OUT_STDOUT: u8 = 0;
pub const OUT_STDERR: u8 = 1;
pub const OUT_EXIT: u8 = 2;
pub const OUT_STARTED: u8 = 3;

/// How the unit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command exited with this status.
    Exited(i32),
    /// The command was killed by this signal (not by us).
    Signaled(i32),
    /// The command could not be started; the tail holds the reason.
    SpawnFailed(i32),
    /// The owner asked for the end (kill message).
    Killed,
}

impl Exit {
    fn encode(self) -> (u8, i32) {
        match self {
            Exit::Exited(code) => (0, code),
            Exit::Signaled(sig) => (1, sig),
            Exit::SpawnFailed(errno) => (2, errno),
            Exit::Killed => (3, 0),
        }
    }
}

/// Writes one message: header, tag and body, in as few writes as possible.
pub fn send(fd: i32, tag: u8, body: &[u8]) -> io::Result<()> {
    let len = (body.len() + 1) as u32;
    let mut head = [0u8; 5];
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4] = tag;
    let iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: both iovecs point at live buffers of the given lengths.
    let n = loop {
        let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    // A short write: send what is left of the header and body in order.
    let total = head.len() + body.len();
    if n < total {
        let mut rest = Vec::with_capacity(total - n);
        rest.extend_from_slice(&head);
        rest.extend_from_slice(body);
        write_all(fd, &rest[n..])?;
    }
    Ok(())
}

/// The final message.
pub fn send_exit(fd: i32, exit: Exit, leftovers: u32, tail: &[u8]) -> io::Result<()> {
    let (kind, value) = exit.encode();
    let mut body = Vec::with_capacity(9 + tail.len());
    body.push(kind);
    body.extend_from_slice(&value.to_be_bytes());
    body.extend_from_slice(&leftovers.to_be_bytes());
    body.extend_from_slice(tail);
    send(fd, OUT_EXIT, &body)
}

pub fn write_all(fd: i32, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is a live slice.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Splits complete messages off the front of `buf`.
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message (tag, body), if any.
    pub fn next_message(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() < 4 {
                return None;
            }
            let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            let len = len as usize;
            if self.buf.len() < 4 + len {
                return None;
            }
            let msg: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
            // An empty packet carries nothing: skip it.
            if let Some((&tag, body)) = msg.split_first() {
                return Some((tag, body.to_vec()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_splits_messages_across_reads() {
        let mut r = Reader::default();
        r.push(&[0, 0, 0, 3, IN_STDIN, b'a']);
        assert_eq!(r.next_message(), None);
        r.push(&[b'b', 0, 0, 0, 1, IN_CLOSE_STDIN, 0, 0, 0, 0]);
        assert_eq!(r.next_message(), Some((IN_STDIN, b"ab".to_vec())));
        assert_eq!(r.next_message(), Some((IN_CLOSE_STDIN, vec![])));
        assert_eq!(r.next_message(), None);
    }

    #[test]
    fn exit_kinds_encode_distinctly() {
        assert_eq!(Exit::Exited(3).encode(), (0, 3));
        assert_eq!(Exit::Signaled(9).encode(), (1, 9));
        assert_eq!(Exit::SpawnFailed(2).encode(), (2, 2));
        assert_eq!(Exit::Killed.encode(), (3, 0));
    }
}
