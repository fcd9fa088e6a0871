//! The forwarding loop: newline-delimited JSON-RPC on stdin/stdout, one
//! POST per message to the gateway's Streamable HTTP endpoint.
//!
//! Messages travel as bytes. Each line from the client is looked at only as
//! far as routing needs (id, method, and for the stateless revision the
//! fields its headers mirror) and posted unchanged; each message from the
//! gateway (a JSON body, or the events of an SSE response or of the
//! session's GET stream) is written to stdout unchanged, one per line.
//! POSTs start in arrival order, each once the previous one has its response
//! head, so `initialize` is answered before anything that follows it is sent
//! and a long SSE-answered call does not hold up the next request.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Notify};

use crate::config::Config;
use crate::http::{Conn, Endpoint, Pool, Response, SseParser, MAX_BODY};

/// Why the bridge stopped abnormally.
#[derive(Debug)]
pub enum BridgeError {
    /// A message could not be delivered to the gateway (unreachable,
    /// refused the session or the token) during the session.
    UpstreamClosed,
    /// Writing to the client failed (stdout closed).
    Downstream(String),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::UpstreamClosed => f.write_str("the gateway could not be reached"),
            BridgeError::Downstream(e) => write!(f, "writing to the MCP client failed: {e}"),
        }
    }
}

impl std::error::Error for BridgeError {}

/// How long the gateway session's DELETE may take on exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long answers are awaited after stdin closes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the bridge needs to know of a client message.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    result: Option<serde::de::IgnoredAny>,
    error: Option<serde::de::IgnoredAny>,
}

/// The parameters the stateless revision's headers mirror.
#[derive(Deserialize, Default)]
struct Params<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
    #[serde(rename = "_meta", borrow)]
    meta: Option<Meta<'a>>,
}

/// `_meta` of a stateless-revision (2026-07-28) request, which carries the
/// protocol version instead of a session.
#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow)]
    version: Option<Cow<'a, str>>,
}

/// A gateway message's id, to settle what the client is owed.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<serde::de::IgnoredAny>,
}

/// A client message ready to post.
struct Outgoing {
    body: Vec<u8>,
    /// The request's id as JSON text (requests only).
    id: Option<String>,
    method: String,
    /// Headers of the stateless revision, when the message carries one.
    modern: Option<String>,
}

#[derive(Default)]
struct Session {
    id: Option<String>,
    version: Option<String>,
    get_stream: bool,
}

struct Shared {
    endpoint: Endpoint,
    url: String,
    auth: Option<String>,
    session: Mutex<Session>,
    pool: Mutex<Pool>,
    /// Ids of requests not answered yet.
    pending: Mutex<HashSet<String>>,
    /// Signalled whenever a pending request is settled.
    settled: Notify,
    out: mpsc::UnboundedSender<Line>,
    /// Set once any message could not be delivered.
    failed: AtomicBool,
}

/// Forwards between `input`/`output` (the MCP client's stdio) and the
/// gateway until the client closes stdin (and owed answers are delivered),
/// or `shutdown` resolves.
///
/// Requests the gateway cannot answer (unreachable, refused) get a JSON-RPC
/// error naming the gateway's URL, so the client sees why instead of
/// waiting forever.
pub async fn run<R, W, S>(
    input: R,
    output: W,
    config: &Config,
    shutdown: S,
) -> Result<(), BridgeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
    S: Future<Output = ()>,
{
    let endpoint = Endpoint::parse(&config.url).map_err(|_| BridgeError::UpstreamClosed)?;
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Line>();
    let shared = Arc::new(Shared {
        endpoint,
        url: config.url.clone(),
        auth: config.token.clone(),
        session: Mutex::default(),
        pool: Mutex::default(),
        pending: Mutex::default(),
        settled: Notify::new(),
        out: out_tx,
        failed: AtomicBool::new(false),
    });
    let mut writer = tokio::spawn(write_out(output, out_rx));

    // Posts one message at a time, in arrival order.
    let (post_tx, mut post_rx) = mpsc::unbounded_channel::<Outgoing>();
    let poster_shared = shared.clone();
    let mut poster = tokio::spawn(async move {
        while let Some(message) = post_rx.recv().await {
            deliver(&poster_shared, message).await;
        }
    });

    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::with_capacity(4096);
    let mut stdin_open = true;
    let drain_deadline = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(drain_deadline);
    tokio::pin!(shutdown);

    let mut post_tx = Some(post_tx);
    let mut poster_done = false;
    let result = loop {
        if !stdin_open && poster_done && shared.pending.lock().unwrap().is_empty() {
            break Ok(());
        }
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down on signal");
                break Ok(());
            }
            _ = &mut drain_deadline, if !stdin_open => {
                let owed = shared.pending.lock().unwrap().len();
                tracing::warn!(pending = owed, "gave up waiting for answers after stdin closed");
                break Ok(());
            }
            written = &mut writer => {
                break Err(BridgeError::Downstream(match written {
                    Ok(Err(e)) => e,
                    _ => "stdout writer stopped".into(),
                }));
            }
            _ = &mut poster, if !poster_done => {
                // Everything read is posted; answers may still be streaming.
                poster_done = true;
            }
            _ = shared.settled.notified(), if !stdin_open => {}
            read = read_line(&mut input, &mut line), if stdin_open => {
                match read {
                    Ok(0) | Err(_) => {
                        if let Err(e) = read {
                            tracing::error!("reading stdin: {e}");
                        }
                        tracing::info!("client closed stdin");
                        stdin_open = false;
                        post_tx = None;
                        drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                    }
                    Ok(_) => {
                        if let (Some(message), Some(tx)) = (classify(&shared, &line), &post_tx) {
                            if let Some(id) = &message.id {
                                shared.pending.lock().unwrap().insert(id.clone());
                            }
                            let _ = tx.send(message);
                        }
                        line.clear();
                    }
                }
            }
        }
    };
    drop(post_tx);
    poster.abort();

    // Closing ends the gateway session (DELETE /mcp), bounded.
    let session = shared.session.lock().unwrap().id.clone();
    if session.is_some()
        && tokio::time::timeout(CLOSE_TIMEOUT, close_session(&shared))
            .await
            .is_err()
    {
        tracing::debug!("the gateway did not confirm the session's end in time");
    }
    // Let the writer write what is queued.
    let (flushed_tx, flushed_rx) = tokio::sync::oneshot::channel();
    if shared.out.send(Line::Flush(flushed_tx)).is_ok() {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, flushed_rx).await;
    }
    writer.abort();
    match result {
        Ok(()) if shared.failed.load(Ordering::Relaxed) => Err(BridgeError::UpstreamClosed),
        other => other,
    }
}

/// What the stdout writer is given.
enum Line {
    Message(Vec<u8>),
    /// Answered once everything before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Reads one line (up to MAX_BODY bytes; longer lines are dropped).
async fn read_line<R: AsyncRead + Unpin>(
    input: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let n = input.read_until(b'\n', line).await?;
        if n == 0 {
            return Ok(0);
        }
        if line.len() > MAX_BODY {
            tracing::error!("dropped a message longer than {MAX_BODY} bytes");
            line.clear();
            continue;
        }
        return Ok(line.len());
    }
}

/// Writes each queued message as one line, batching what is queued.
async fn write_out<W: AsyncWrite + Unpin>(
    mut output: W,
    mut rx: mpsc::UnboundedReceiver<Line>,
) -> Result<(), String> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut flushed = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(line) = next {
            match line {
                Line::Message(message) => push_line(&mut buf, &message),
                Line::Flush(done) => flushed.push(done),
            }
            next = rx.try_recv().ok();
        }
        if !buf.is_empty() {
            output.write_all(&buf).await.map_err(|e| e.to_string())?;
            output.flush().await.map_err(|e| e.to_string())?;
            buf.clear();
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
    Ok(())
}

/// One message per line: a raw newline in JSON is whitespace between
/// tokens (strings cannot hold one), so it becomes a space.
fn push_line(buf: &mut Vec<u8>, message: &[u8]) {
    let start = buf.len();
    buf.extend_from_slice(message.trim_ascii());
    for b in &mut buf[start..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    buf.push(b'\n');
}

/// Decides what a client line is; answers an invalid one itself.
fn classify(shared: &Shared, line: &[u8]) -> Option<Outgoing> {
    let text = line.trim_ascii();
    if text.is_empty() {
        return None;
    }
    if text[0] == b'[' {
        // A batch (2025-03-26): forwarded as it is.
        if serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err() {
            tracing::debug!("ignoring unparsable input");
            return None;
        }
        return Some(Outgoing {
            body: text.to_vec(),
            id: None,
            method: "batch".into(),
            modern: None,
        });
    }
    let envelope: Envelope = match serde_json::from_slice(text) {
        Ok(envelope) => envelope,
        Err(e) if e.is_syntax() || e.is_eof() => {
            // Like the SDKs: unparsable input has no id to answer.
            tracing::debug!("ignoring unparsable input: {e}");
            return None;
        }
        Err(e) => {
            tracing::debug!("invalid message: {e}");
            invalid_request(shared);
            return None;
        }
    };
    let id = envelope.id.map(|id| id.get().to_string());
    let (method, id) = match (&envelope.method, id) {
        (Some(method), id) => (method.to_string(), id),
        (None, Some(_)) if envelope.result.is_some() || envelope.error.is_some() => {
            ("response".to_string(), None)
        }
        _ => {
            invalid_request(shared);
            return None;
        }
    };
    let modern = envelope
        .params
        .and_then(|p| serde_json::from_str::<Params>(p.get()).ok())
        .and_then(|params| modern_headers(&method, &params));
    Some(Outgoing {
        body: text.to_vec(),
        id,
        method,
        modern,
    })
}

fn invalid_request(shared: &Shared) {
    let invalid =
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}"#;
    let _ = shared.out.send(Line::Message(invalid.to_vec()));
}

/// The stateless revision's mirrored headers, for a message that carries
/// its version in `_meta`.
fn modern_headers(method: &str, params: &Params) -> Option<String> {
    let version = params.meta.as_ref()?.version.as_ref()?;
    let mut headers = format!(
        "MCP-Protocol-Version: {}\r\nMcp-Method: {}\r\n",
        header_value(version),
        header_value(method)
    );
    let name = match method {
        "tools/call" | "prompts/get" => params.name.as_deref(),
        "resources/read" => params.uri.as_deref(),
        _ => None,
    };
    if let Some(name) = name {
        headers.push_str(&format!("Mcp-Name: {}\r\n", header_value(name)));
    }
    Some(headers)
}

/// A header value as it may travel: plain visible ASCII (inner spaces
/// allowed) as is, anything else as `=?base64?...?=`.
fn header_value(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.starts_with("=?base64?")
        && value.bytes().all(|b| (0x20..0x7f).contains(&b));
    if plain {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("=?base64?{}?=", base64(value.as_bytes())))
    }
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The request head common to every request, without Content-Length.
fn head(shared: &Shared, method: &str, extra: Option<&str>) -> Vec<u8> {
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json, text/event-stream\r\n",
        shared.endpoint.path, shared.endpoint.authority
    );
    if let Some(token) = &shared.auth {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if method == "POST" {
        head.push_str("Content-Type: application/json\r\n");
    }
    match extra {
        Some(modern) => head.push_str(modern),
        None => {
            let session = shared.session.lock().unwrap();
            if let Some(id) = &session.id {
                head.push_str(&format!("Mcp-Session-Id: {id}\r\n"));
            }
            if let Some(version) = &session.version {
                head.push_str(&format!("MCP-Protocol-Version: {version}\r\n"));
            }
        }
    }
    head.into_bytes()
}

/// Sends a request on a kept-alive connection (or a new one) and reads the
/// response head. Only a request that could not be written is sent again on
/// a new connection (the gateway closed the idle one): once it is written
/// the gateway may have run it, and running a write twice is worse than
/// answering that the connection was lost.
async fn exchange(shared: &Shared, head: &[u8], body: &[u8]) -> Result<Response, String> {
    let idle = shared.pool.lock().unwrap().take();
    if let Some(mut conn) = idle {
        if conn.send(head, body).await.is_ok() {
            return conn.response().await.map_err(|reason| {
                format!("{reason} (the call may or may not have run: check before retrying)")
            });
        }
        tracing::debug!("kept-alive connection closed; sending on a new one");
    }
    let mut conn = Conn::connect(&shared.endpoint).await?;
    conn.send(head, body).await?;
    conn.response().await
}

fn give_back(shared: &Shared, response: Response) {
    if let Some(conn) = response.into_conn() {
        shared.pool.lock().unwrap().put(conn);
    }
}

/// Posts one client message and passes the gateway's answer on.
async fn deliver(shared: &Arc<Shared>, message: Outgoing) {
    let head = head(shared, "POST", message.modern.as_deref());
    tracing::debug!(method = %message.method, "client -> gateway");
    let mut response = match exchange(shared, &head, &message.body).await {
        Ok(response) => response,
        Err(reason) => return failed(shared, message.id.as_deref(), &reason),
    };
    let initialize = message.method == "initialize";
    if initialize {
        if let Some(session) = response.session_id.clone() {
            shared.session.lock().unwrap().id = Some(session);
        }
    }
    if response.event_stream && (200..300).contains(&response.status) {
        let shared = shared.clone();
        tokio::spawn(async move {
            let outcome = stream_events(&shared, &mut response).await;
            if let Err(reason) = outcome {
                tracing::warn!("response stream ended early: {reason}");
            }
            if let Some(id) = &message.id {
                // A stream that ended without the answer: say so.
                if shared.pending.lock().unwrap().contains(id) {
                    failed(
                        &shared,
                        Some(id),
                        "the response stream ended without an answer",
                    );
                }
            }
            give_back(&shared, response);
        });
        return;
    }
    let status = response.status;
    let challenge = response.challenge.take();
    let body = match response.body().await {
        Ok(body) => body,
        Err(reason) => return failed(shared, message.id.as_deref(), &reason),
    };
    give_back(shared, response);
    if (200..300).contains(&status) {
        if initialize {
            remember_version(shared, &body);
        }
        if message.method == "notifications/initialized" {
            open_get_stream(shared);
        }
        if body.trim_ascii().is_empty() {
            return;
        }
        settle(shared, &body);
        let _ = shared.out.send(Line::Message(body));
        return;
    }
    // Refused: forward the gateway's JSON-RPC answer to this request if it
    // is one, else answer with the status.
    let answers_it = message.id.as_deref().is_some_and(|id| {
        serde_json::from_slice::<Answer>(&body)
            .ok()
            .and_then(|a| a.id.map(|i| i.get() == id))
            .unwrap_or(false)
    });
    shared.failed.store(true, Ordering::Relaxed);
    if answers_it {
        settle(shared, &body);
        let _ = shared.out.send(Line::Message(body));
    } else {
        failed(
            shared,
            message.id.as_deref(),
            &refusal(status, challenge, &body),
        );
    }
}

/// Why the gateway refused a message, in words: its status, its
/// WWW-Authenticate challenge, and the message of its JSON-RPC error.
fn refusal(status: u16, challenge: Option<String>, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Refusal {
        error: Option<RefusalError>,
    }
    #[derive(Deserialize)]
    struct RefusalError {
        message: Option<String>,
    }
    let mut reason = match status {
        401 => "Auth required: the gateway refused the token (HTTP 401".to_string(),
        403 => "Forbidden (HTTP 403".to_string(),
        404 => "session not found (HTTP 404".to_string(),
        429 => "rate limited (HTTP 429".to_string(),
        other => format!("HTTP {other}"),
    };
    if status == 401 || status == 403 || status == 404 || status == 429 {
        reason.push(')');
    }
    if let Some(challenge) = challenge {
        reason.push_str(&format!("; WWW-Authenticate: {challenge}"));
    }
    match serde_json::from_slice::<Refusal>(body) {
        Ok(Refusal {
            error: Some(RefusalError {
                message: Some(message),
            }),
        }) => reason.push_str(&format!(": {message}")),
        _ if !body.trim_ascii().is_empty() => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            reason.push_str(&format!(": {text}"));
        }
        _ => {}
    }
    reason
}

/// Remembers the negotiated version from an initialize answer.
fn remember_version(shared: &Shared, body: &[u8]) {
    #[derive(Deserialize)]
    struct Init {
        result: Option<InitResult>,
    }
    #[derive(Deserialize)]
    struct InitResult {
        #[serde(rename = "protocolVersion")]
        protocol_version: Option<String>,
    }
    if let Ok(Init {
        result: Some(InitResult {
            protocol_version: Some(version),
        }),
    }) = serde_json::from_slice(body)
    {
        shared.session.lock().unwrap().version = Some(version);
    }
}

/// Marks the request a gateway message answers as answered.
fn settle(shared: &Shared, message: &[u8]) {
    if let Ok(answer) = serde_json::from_slice::<Answer>(message) {
        if answer.method.is_none() {
            if let Some(id) = answer.id {
                if shared.pending.lock().unwrap().remove(id.get()) {
                    shared.settled.notify_one();
                }
            }
        }
    }
}

/// Answers an undeliverable request with an error naming the gateway.
fn failed(shared: &Shared, id: Option<&str>, reason: &str) {
    shared.failed.store(true, Ordering::Relaxed);
    tracing::warn!("could not forward to the gateway: {reason}");
    let Some(id) = id else { return };
    if !shared.pending.lock().unwrap().remove(id) {
        return;
    }
    shared.settled.notify_one();
    let message = serde_json::json!({
        "jsonrpc": "2.0",
        "id": serde_json::from_str::<serde_json::Value>(id).unwrap_or(serde_json::Value::Null),
        "error": {
            "code": -32603,
            "message": format!("ruv_swarm gateway at {} is unavailable: {reason}", shared.url),
        }
    });
    let _ = shared
        .out
        .send(Line::Message(message.to_string().into_bytes()));
}

/// Passes each event of an SSE response to the client.
async fn stream_events(shared: &Shared, response: &mut Response) -> Result<(), String> {
    let mut parser = SseParser::default();
    while let Some(bytes) = response.chunk().await? {
        parser.feed(&bytes, |data| {
            settle(shared, &data);
            let _ = shared.out.send(Line::Message(data));
        });
    }
    Ok(())
}

/// Opens the session's GET stream (server-initiated messages), once.
fn open_get_stream(shared: &Arc<Shared>) {
    {
        let mut session = shared.session.lock().unwrap();
        if session.id.is_none() || session.get_stream {
            return;
        }
        session.get_stream = true;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        let mut last_id: Option<String> = None;
        loop {
            let mut head = head(&shared, "GET", None);
            if let Some(id) = &last_id {
                head.extend_from_slice(format!("Last-Event-ID: {id}\r\n").as_bytes());
            }
            let outcome = async {
                let mut conn = Conn::connect(&shared.endpoint).await?;
                conn.send(&head, b"").await?;
                conn.response().await
            }
            .await;
            match outcome {
                Ok(mut response) if response.status == 200 && response.event_stream => {
                    backoff = Duration::from_millis(500);
                    let mut parser = SseParser::default();
                    while let Ok(Some(bytes)) = response.chunk().await {
                        parser.feed(&bytes, |data| {
                            settle(&shared, &data);
                            let _ = shared.out.send(Line::Message(data));
                        });
                    }
                    last_id = parser.last_id.or(last_id);
                }
                Ok(response) if response.status == 405 || response.status == 404 => {
                    tracing::debug!(status = response.status, "no GET stream from the gateway");
                    return;
                }
                Ok(response) => {
                    tracing::debug!(status = response.status, "GET stream refused");
                }
                Err(reason) => tracing::debug!("GET stream failed: {reason}"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    });
}

async fn close_session(shared: &Shared) {
    let head = head(shared, "DELETE", None);
    match exchange(shared, &head, b"").await {
        Ok(mut response) => {
            let _ = response.body().await;
            tracing::debug!(status = response.status, "gateway session closed");
        }
        Err(reason) => tracing::debug!("closing the gateway session: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        assert_eq!(header_value("swarm_init"), "swarm_init");
        assert_eq!(header_value("a b"), "a b");
        assert_eq!(header_value("é"), "=?base64?w6k=?=");
        assert_eq!(header_value(" x"), "=?base64?IHg=?=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn one_message_per_line() {
        let mut buf = Vec::new();
        push_line(&mut buf, b"{\"a\":\n1}\n");
        assert_eq!(buf, b"{\"a\": 1}\n");
    }
}
