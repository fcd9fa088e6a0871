//! A small HTTP/1.1 client for the one thing the bridge does: POST a
//! JSON-RPC message to the gateway's `/mcp` and read back JSON, an SSE
//! stream, or `202 Accepted`; GET the session's notification stream; DELETE
//! the session.
//!
//! Connections are kept alive and reused (TCP_NODELAY, one request at a time
//! per connection), and bodies are handed on as bytes: the bridge forwards
//! messages unchanged, so nothing here parses them. An earlier bridge ran on
//! rmcp's Streamable HTTP client, whose default reqwest client opens a
//! connection per message and whose worker deserialises every message into
//! rmcp's typed model and serialises it again: 0.25 ms per call on a 2-core
//! machine, more than the gateway takes to answer.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes a response head may take.
const MAX_HEAD: usize = 64 * 1024;

/// Most bytes a JSON response body (or one SSE event) may take.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// How long an idle connection is kept: below the gateway's keep-alive idle
/// bound (`header_timeout_ms`, 5 s by default), so the bridge closes an idle
/// connection before the gateway does.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// How long connecting to the gateway may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the gateway is.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`, for connecting and for the Host header.
    pub authority: String,
    /// The request target, e.g. `/mcp`.
    pub path: String,
}

impl Endpoint {
    /// Splits an `http://host[:port]/path` URL.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http:// URL: {url}"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("unsupported gateway URL: {url}"));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Endpoint { authority, path })
    }
}

/// A connection with what has been read from it but not yet consumed.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    idle_since: Instant,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

/// A response head, its body still on the connection.
pub struct Response {
    pub status: u16,
    pub event_stream: bool,
    pub session_id: Option<String>,
    /// The WWW-Authenticate challenge of a refusal, if any.
    pub challenge: Option<String>,
    framing: Framing,
    reusable: bool,
    conn: Conn,
    /// Bytes of a chunk still to read (Chunked framing).
    chunk_left: usize,
    /// The CRLF after a chunk's data is still to be read.
    crlf_pending: bool,
    done: bool,
}

/// Idle connections to the gateway, newest last.
#[derive(Default)]
pub struct Pool {
    idle: Vec<Conn>,
}

impl Pool {
    /// An idle connection that is still open, if any.
    pub fn take(&mut self) -> Option<Conn> {
        while let Some(conn) = self.idle.pop() {
            if conn.idle_since.elapsed() < IDLE_TIMEOUT && conn.is_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to its end.
    pub fn put(&mut self, mut conn: Conn) {
        conn.idle_since = Instant::now();
        self.idle.push(conn);
    }
}

impl Conn {
    /// A new connection to the gateway.
    pub async fn connect(endpoint: &Endpoint) -> Result<Conn, String> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&endpoint.authority))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("cannot connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            pos: 0,
            idle_since: Instant::now(),
        })
    }

    /// False once the gateway has closed (or sent something unasked on) an
    /// idle connection.
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    async fn fill(&mut self) -> Result<usize, String> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        self.stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| format!("reading from the gateway: {e}"))
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Sends a request: `head` ends before the blank line.
    pub async fn send(&mut self, head: &[u8], body: &[u8]) -> Result<(), String> {
        let mut out = Vec::with_capacity(head.len() + body.len() + 32);
        out.extend_from_slice(head);
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("writing to the gateway: {e}"))
    }

    /// Reads the response head.
    pub async fn response(mut self) -> Result<Response, String> {
        let end = loop {
            if let Some(i) = find(self.unread(), b"\r\n\r\n") {
                break self.pos + i;
            }
            if self.unread().len() > MAX_HEAD {
                return Err("response head too large".into());
            }
            if self.fill().await? == 0 {
                return Err("the gateway closed the connection".into());
            }
        };
        let head = std::str::from_utf8(&self.buf[self.pos..end])
            .map_err(|_| "response head is not text".to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
        let (mut length, mut chunked, mut close, mut event_stream) =
            (None, false, version == "HTTP/1.0", false);
        let (mut session_id, mut challenge) = (None, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| "bad content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("content-type") {
                event_stream = value.to_ascii_lowercase().starts_with("text/event-stream");
            } else if name.eq_ignore_ascii_case("mcp-session-id") {
                session_id = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("www-authenticate") {
                challenge = Some(value.to_string());
            }
        }
        self.pos = end + 4;
        let framing = match (chunked, length) {
            (true, _) => Framing::Chunked,
            (false, Some(n)) => Framing::Length(n),
            (false, None) if status == 204 || status == 304 => Framing::Length(0),
            (false, None) => Framing::Close,
        };
        Ok(Response {
            status,
            event_stream,
            session_id,
            challenge,
            framing,
            reusable: !close && framing != Framing::Close,
            conn: self,
            chunk_left: 0,
            crlf_pending: false,
            done: framing == Framing::Length(0),
        })
    }
}

impl Response {
    /// The next piece of the body, or None at its end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.done {
            return Ok(None);
        }
        match self.framing {
            Framing::Length(n) => {
                while self.conn.unread().len() < n {
                    if n > MAX_BODY {
                        return Err("response body too large".into());
                    }
                    if self.conn.fill().await? == 0 {
                        return Err("the gateway closed the connection mid-body".into());
                    }
                }
                let body = self.conn.unread()[..n].to_vec();
                self.conn.pos += n;
                self.done = true;
                Ok(Some(body))
            }
            Framing::Close => {
                if self.conn.unread().is_empty() && self.conn.fill().await? == 0 {
                    self.done = true;
                    return Ok(None);
                }
                let body = self.conn.unread().to_vec();
                self.conn.pos = self.conn.buf.len();
                Ok(Some(body))
            }
            Framing::Chunked => loop {
                if self.chunk_left > 0 {
                    if self.conn.unread().is_empty() && self.conn.fill().await? == 0 {
                        return Err("the gateway closed the connection mid-chunk".into());
                    }
                    let take = self.chunk_left.min(self.conn.unread().len());
                    let piece = self.conn.unread()[..take].to_vec();
                    self.conn.pos += take;
                    self.chunk_left -= take;
                    // The CRLF after the chunk data is read with the next size line.
                    self.crlf_pending = self.chunk_left == 0;
                    return Ok(Some(piece));
                }
                // A size line, preceded by the previous chunk's CRLF.
                if self.crlf_pending {
                    while self.conn.unread().len() < 2 {
                        if self.conn.fill().await? == 0 {
                            return Err("the gateway closed the connection mid-chunk".into());
                        }
                    }
                    self.conn.pos += 2;
                    self.crlf_pending = false;
                }
                let line_end = loop {
                    if let Some(i) = find(self.conn.unread(), b"\r\n") {
                        break i;
                    }
                    if self.conn.unread().len() > 1024 || self.conn.fill().await? == 0 {
                        return Err("bad chunked body".into());
                    }
                };
                let line = std::str::from_utf8(&self.conn.unread()[..line_end]).unwrap_or("");
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| "bad chunk size".to_string())?;
                self.conn.pos += line_end + 2;
                if size == 0 {
                    // Trailers (none expected) end with an empty line.
                    loop {
                        if let Some(i) = find(self.conn.unread(), b"\r\n") {
                            self.conn.pos += i + 2;
                            if i == 0 {
                                break;
                            }
                            continue;
                        }
                        if self.conn.fill().await? == 0 {
                            break;
                        }
                    }
                    self.done = true;
                    return Ok(None);
                }
                if size > MAX_BODY {
                    return Err("chunk too large".into());
                }
                self.chunk_left = size;
            },
        }
    }

    /// The whole body (bounded by MAX_BODY).
    pub async fn body(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        while let Some(piece) = self.chunk().await? {
            if body.is_empty() {
                body = piece;
            } else {
                body.extend_from_slice(&piece);
            }
            if body.len() > MAX_BODY {
                return Err("response body too large".into());
            }
        }
        Ok(body)
    }

    /// The connection, if the body was read to its end and it may carry
    /// another request.
    pub fn into_conn(self) -> Option<Conn> {
        (self.done && self.reusable && self.conn.unread().is_empty()).then_some(self.conn)
    }
}

/// Splits an SSE stream into the data of its `message` events.
#[derive(Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    event: Vec<u8>,
    /// The id of the last event that had one (for Last-Event-ID).
    pub last_id: Option<String>,
}

impl SseParser {
    /// Feeds bytes; calls `emit` with each complete message event's data.
    pub fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(Vec<u8>)) {
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            if line.is_empty() {
                let data = std::mem::take(&mut self.data);
                let event = std::mem::take(&mut self.event);
                if !data.is_empty() && (event.is_empty() || event == b"message") {
                    emit(data);
                }
                continue;
            }
            if line[0] == b':' {
                continue;
            }
            let (field, value) = match line.iter().position(|&c| c == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &b""[..]),
            };
            match field {
                b"data" => {
                    if !self.data.is_empty() {
                        // Between two data lines: whitespace inside JSON.
                        self.data.push(b' ');
                    }
                    self.data.extend_from_slice(value);
                }
                b"event" => self.event = value.to_vec(),
                b"id" => self.last_id = Some(String::from_utf8_lossy(value).into_owned()),
                _ => {}
            }
            if self.data.len() > MAX_BODY {
                self.data.clear();
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:4102/mcp").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("127.0.0.1:4102", "/mcp")
        );
        let e = Endpoint::parse("http://localhost").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("localhost:80", "/")
        );
        assert!(Endpoint::parse("https://x/mcp").is_err());
        assert!(Endpoint::parse("http://u:p@x/mcp").is_err());
    }

    #[test]
    fn sse_events_split_across_reads() {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        let stream = b": open\n\nevent: message\nid: 7\ndata: {\"a\":\ndata: 1}\n\nevent: other\ndata: x\n\ndata: {}\r\n\r\n";
        for piece in stream.chunks(3) {
            parser.feed(piece, |d| out.push(String::from_utf8(d).unwrap()));
        }
        assert_eq!(out, ["{\"a\": 1}", "{}"]);
        assert_eq!(parser.last_id.as_deref(), Some("7"));
    }
}
