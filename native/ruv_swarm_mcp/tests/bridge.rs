//! End-to-end tests of the `ruv_swarm_mcp` binary against a scripted
//! Streamable HTTP gateway on loopback. The fake gateway is deliberately
//! small and independent of rmcp: it checks what the bridge really puts on
//! the wire (headers, session id, bodies) and answers with JSON and SSE.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    authorization: Option<String>,
    session: Option<String>,
    body: Option<Value>,
}

struct FakeGateway {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn start_gateway(require_token: Option<&'static str>) -> FakeGateway {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let log = log.clone();
            thread::spawn(move || serve(stream, log, require_token));
        }
    });
    FakeGateway { url, seen }
}

fn serve(mut stream: TcpStream, log: Arc<Mutex<Vec<Seen>>>, require_token: Option<&str>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let method = request_line
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let (mut length, mut authorization, mut session) = (0usize, None, None);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        let value = value.trim().to_string();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap(),
            "authorization" => authorization = Some(value),
            "mcp-session-id" => session = Some(value),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body: Option<Value> = serde_json::from_slice(&body).ok();
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        authorization: authorization.clone(),
        session,
        body: body.clone(),
    });

    if let Some(token) = require_token {
        if authorization.as_deref() != Some(&format!("Bearer {token}")) {
            return reply(
                &mut stream,
                "401 Unauthorized",
                "application/json",
                &[],
                "{}",
            );
        }
    }
    match method.as_str() {
        "GET" => reply(&mut stream, "405 Method Not Allowed", "text/plain", &[], ""),
        "DELETE" => reply(&mut stream, "200 OK", "text/plain", &[], ""),
        _ => {
            let body = body.unwrap();
            let id = body.get("id").cloned();
            match body["method"].as_str().unwrap_or("") {
                "initialize" => {
                    let result = json!({"jsonrpc": "2.0", "id": id, "result": {
                        "protocolVersion": body["params"]["protocolVersion"],
                        "capabilities": {"tools": {"listChanged": false}},
                        "serverInfo": {"name": "fake-gateway", "version": "0.0.1"}}});
                    reply(
                        &mut stream,
                        "200 OK",
                        "application/json",
                        &[("Mcp-Session-Id", "session-1")],
                        &result.to_string(),
                    )
                }
                "tools/list" => {
                    let result = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
                        {"name": "swarm_init", "description": "Create a swarm",
                         "inputSchema": {"type": "object"}}]}});
                    reply(
                        &mut stream,
                        "200 OK",
                        "application/json",
                        &[],
                        &result.to_string(),
                    )
                }
                "tools/call" => {
                    // Answer over SSE with a progress notification first, as a
                    // gateway does for long calls.
                    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": "p1", "progress": 1, "total": 2}});
                    let result = json!({"jsonrpc": "2.0", "id": id, "result": {
                        "content": [{"type": "text", "text": "swarm created"}], "isError": false}});
                    let sse = format!(
                        "event: message\ndata: {progress}\n\nevent: message\ndata: {result}\n\n"
                    );
                    reply(&mut stream, "200 OK", "text/event-stream", &[], &sse)
                }
                _ if id.is_none() => reply(&mut stream, "202 Accepted", "text/plain", &[], ""),
                other => {
                    let error = json!({"jsonrpc": "2.0", "id": id, "error": {
                        "code": -32601, "message": format!("Method not found: {other}")}});
                    reply(
                        &mut stream,
                        "200 OK",
                        "application/json",
                        &[],
                        &error.to_string(),
                    )
                }
            }
        }
    }
}

fn reply(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &str,
) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Bridge {
    fn start(url: &str, token: Option<&str>) -> Bridge {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ruv_swarm_mcp"));
        command
            .env("RUV_SWARM_URL", url)
            .env_remove("RUV_SWARM_TOKEN")
            .env("RUV_SWARM_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(token) = token {
            command.env("RUV_SWARM_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Bridge {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// Every stdout line must be a JSON-RPC message: that is the contract
    /// with the MCP client.
    fn recv(&mut self) -> Value {
        let mut line = String::new();
        assert!(
            self.stdout.read_line(&mut line).unwrap() > 0,
            "bridge closed stdout"
        );
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("non-JSON on stdout ({e}): {line:?}"));
        assert_eq!(value["jsonrpc"], "2.0", "{line}");
        value
    }

    fn finish(mut self) -> (i32, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut rest = String::new();
                self.stdout.read_to_string(&mut rest).unwrap();
                return (status.code().unwrap_or(-1), rest);
            }
            assert!(
                Instant::now() < deadline,
                "bridge did not exit after stdin closed"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bridge-test", "version": "1"}}})
}

#[test]
fn forwards_a_whole_session_with_token_and_session_id() {
    let gateway = start_gateway(Some("t0k"));
    let mut bridge = Bridge::start(&gateway.url, Some("Bearer t0k"));

    bridge.send(initialize(1));
    let init = bridge.recv();
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["serverInfo"]["name"], "fake-gateway");
    bridge.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));

    bridge.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let list = bridge.recv();
    assert_eq!(list["id"], 2);
    assert_eq!(list["result"]["tools"][0]["name"], "swarm_init");

    bridge.send(
        json!({"jsonrpc": "2.0", "id": "call-3", "method": "tools/call",
        "params": {"name": "swarm_init", "arguments": {"topology": "mesh"},
                   "_meta": {"progressToken": "p1"}}}),
    );
    let progress = bridge.recv();
    assert_eq!(progress["method"], "notifications/progress");
    let call = bridge.recv();
    assert_eq!(call["id"], "call-3");
    assert_eq!(call["result"]["content"][0]["text"], "swarm created");

    // A method the bridge has never heard of still reaches the gateway.
    bridge.send(json!({"jsonrpc": "2.0", "id": 4, "method": "swarm/custom", "params": {}}));
    let custom = bridge.recv();
    assert_eq!(custom["id"], 4);
    assert_eq!(custom["error"]["code"], -32601);

    let (code, rest) = bridge.finish();
    assert_eq!(code, 0);
    assert!(
        rest.trim().is_empty(),
        "unexpected output after close: {rest:?}"
    );

    let seen = gateway.seen.lock().unwrap().clone();
    let posts: Vec<&Seen> = seen.iter().filter(|s| s.method == "POST").collect();
    let methods: Vec<&str> = posts
        .iter()
        .map(|s| s.body.as_ref().unwrap()["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call",
            "swarm/custom"
        ]
    );
    assert!(seen
        .iter()
        .all(|s| s.authorization.as_deref() == Some("Bearer t0k")));
    // Every request after initialize carries the session the gateway issued.
    assert!(posts[1..]
        .iter()
        .all(|s| s.session.as_deref() == Some("session-1")));
    // The tool call's arguments arrive untouched.
    assert_eq!(
        posts[3].body.as_ref().unwrap()["params"]["arguments"]["topology"],
        "mesh"
    );
    // Closing stdin ends the gateway session.
    assert!(seen
        .iter()
        .any(|s| s.method == "DELETE" && s.session.as_deref() == Some("session-1")));
}

#[test]
fn unreachable_gateway_answers_the_request_and_exits_non_zero() {
    // Bind and drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut bridge = Bridge::start(&url, None);
    bridge.send(initialize(7));
    let reply = bridge.recv();
    assert_eq!(reply["id"], 7);
    assert!(
        reply["error"]["message"].as_str().unwrap().contains(&url),
        "{reply}"
    );
    let (code, rest) = bridge.finish();
    assert_ne!(code, 0);
    for line in rest.lines() {
        serde_json::from_str::<Value>(line).expect("stdout carries only JSON-RPC");
    }
}

#[test]
fn rejected_token_is_reported_to_the_client() {
    let gateway = start_gateway(Some("right"));
    let mut bridge = Bridge::start(&gateway.url, Some("wrong"));
    bridge.send(initialize(1));
    let reply = bridge.recv();
    assert_eq!(reply["id"], 1);
    assert!(reply.get("error").is_some(), "{reply}");
    let (code, _) = bridge.finish();
    assert_ne!(code, 0);
}

#[test]
fn malformed_input_gets_invalid_request_and_bridge_keeps_going() {
    let gateway = start_gateway(None);
    let mut bridge = Bridge::start(&gateway.url, None);
    bridge.send(json!({"jsonrpc": "2.0", "id": 1, "nonsense": true}));
    let reply = bridge.recv();
    assert_eq!(reply["error"]["code"], -32600);
    bridge.send(initialize(2));
    assert_eq!(bridge.recv()["id"], 2);
    let (code, _) = bridge.finish();
    assert_eq!(code, 0);
}

#[test]
fn help_and_bad_flags() {
    let bin = env!("CARGO_BIN_EXE_ruv_swarm_mcp");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("RUV_SWARM_TOKEN"));
    let bad = Command::new(bin).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stdout.is_empty());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown argument: --bogus"));
}

#[test]
fn answers_owed_when_stdin_closes_are_still_delivered() {
    let gateway = start_gateway(None);
    let mut bridge = Bridge::start(&gateway.url, None);
    // Write everything and close stdin at once, as `printf ... | bridge` does.
    bridge.send(initialize(1));
    bridge.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    bridge.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let (code, rest) = bridge.finish();
    assert_eq!(code, 0);
    let ids: Vec<Value> = rest
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, [json!(1), json!(2)], "{rest}");
}

#[test]
fn answers_streamed_over_sse_after_stdin_closes_are_delivered_promptly() {
    let gateway = start_gateway(None);
    let mut bridge = Bridge::start(&gateway.url, None);
    bridge.send(initialize(1));
    bridge.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "swarm_init", "arguments": {}}}));
    let started = Instant::now();
    let (code, rest) = bridge.finish();
    assert_eq!(code, 0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the drain deadline"
    );
    let messages: Vec<Value> = rest
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    assert_eq!(messages.len(), 3, "{rest}");
    assert_eq!(messages[1]["method"], "notifications/progress");
    assert_eq!(messages[2]["id"], 2);
}
