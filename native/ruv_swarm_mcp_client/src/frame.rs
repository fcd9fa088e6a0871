//! The conversation with the Elixir actor (`SwarmService.McpServers.Server`),
//! carried over the launcher's stdin/stdout relay: every message is a 4-byte
//! big-endian length followed by that many bytes of one JSON object.
//!
//! The first message from the actor is the start configuration
//! ([`crate::start::Start`]); after it come operations, each with a numeric
//! `id` the reply carries back:
//! * `{"op":"call","id":N,"tool":T,"arguments":{..},"timeout_ms":MS}`
//! * `{"op":"cancel","id":N}` (the caller gave up: `notifications/cancelled`)
//! * `{"op":"ping","id":N,"timeout_ms":MS}`
//! * `{"op":"list_tools","id":N}`
//!
//! To the actor: `ready` (once, with the negotiated protocol, the server's
//! identity and its tools), `result`, `error`, `pong`, `tools` (also sent
//! unasked after `notifications/tools/list_changed`), `progress`, and
//! `fatal` or `closed` as the last message before this program exits.
//!
//! End of file on stdin (the actor, its port or the VM is gone) ends the
//! program, and the launcher then ends the server's whole process tree.

use std::io::{self, Read, Write};

/// Largest frame accepted from the actor (tool arguments included).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Reads one frame; `Ok(None)` at a clean end of file.
pub fn read(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 4];
    match input.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(head) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Writes one frame (header and body in one write) and flushes.
pub fn write(output: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    output.write_all(&buf)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_eof_is_clean() {
        let mut out = Vec::new();
        write(&mut out, b"{\"a\":1}").unwrap();
        write(&mut out, b"").unwrap();
        let mut input = io::Cursor::new(out);
        assert_eq!(read(&mut input).unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(read(&mut input).unwrap().unwrap(), b"");
        assert!(read(&mut input).unwrap().is_none());
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut input = io::Cursor::new(u32::MAX.to_be_bytes().to_vec());
        assert!(read(&mut input).is_err());
    }
}
