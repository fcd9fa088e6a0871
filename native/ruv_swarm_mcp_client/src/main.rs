//! `ruv_swarm_mcp_client`: the node's MCP client for one external server.
//!
//! The node runs one of these per managed server, always under
//! `ruv_swarm_launch` (own session, subreaper, death with the node), so a
//! stdio server started here belongs to the launcher's tree and can never
//! outlive the node, and a crash in here ends only this server's
//! connection. The MCP side is rmcp, the official Rust SDK: handshake and
//! protocol negotiation, request ids, `notifications/cancelled` on timeout,
//! progress and `list_changed` notifications. See `frame.rs` for the
//! conversation with the Elixir actor.

mod frame;
mod handler;
mod start;

use handler::{Events, Handler};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, PingRequest, ServerResult,
};
use rmcp::service::{PeerRequestOptions, RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};
use serde::Deserialize;
use serde_json::{json, Value};
use start::Start;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Call {
        id: u64,
        tool: String,
        #[serde(default)]
        arguments: Option<serde_json::Map<String, Value>>,
        timeout_ms: u64,
    },
    Cancel {
        id: u64,
    },
    Ping {
        id: u64,
        timeout_ms: u64,
    },
    ListTools {
        id: u64,
    },
}

type Cancels = Arc<Mutex<HashMap<u64, tokio::sync::oneshot::Sender<()>>>>;

fn main() {
    let events = Events::spawn_writer();
    let mut stdin = std::io::stdin().lock();
    let start: Start = match frame::read(&mut stdin) {
        Ok(Some(body)) => match serde_json::from_slice(&body) {
            Ok(start) => start,
            Err(e) => fatal(&events, "config", &format!("bad start configuration: {e}")),
        },
        _ => std::process::exit(0),
    };
    drop(stdin);

    // Frames from the actor, read on their own thread (a blocking read on
    // a pipe wakes faster than tokio's pooled stdin).
    let (ops_tx, ops_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        while let Ok(Some(body)) = frame::read(&mut stdin) {
            if ops_tx.send(body).is_err() {
                break;
            }
        }
        // End of input: the actor is gone. Leave at once; the launcher
        // ends the server's tree.
        std::process::exit(0);
    });

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fatal(&events, "runtime", &e.to_string()),
    };
    runtime.block_on(run(start, events, ops_rx));
}

fn fatal(events: &Events, stage: &str, message: &str) -> ! {
    events.send(&json!({"ev": "fatal", "stage": stage, "message": message}));
    events.flush_and_exit(2)
}

async fn run(start: Start, events: Events, mut ops: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let handler = Handler::new(events.clone());
    let init_timeout = Duration::from_millis(start.init_timeout_ms());
    let mut child_exit = None;

    let connect = async {
        match start {
            Start::Stdio {
                command,
                args,
                env,
                cwd,
                ..
            } => {
                let mut cmd = tokio::process::Command::new(&command);
                cmd.args(&args)
                    .env_clear()
                    .envs(&env)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::inherit())
                    .kill_on_drop(true);
                if let Some(dir) = cwd {
                    cmd.current_dir(dir);
                }
                let mut child = cmd
                    .spawn()
                    .map_err(|e| ("spawn", format!("cannot start {command}: {e}")))?;
                let (Some(out), Some(inp)) = (child.stdout.take(), child.stdin.take()) else {
                    return Err(("spawn", "no pipes to the child".to_string()));
                };
                child_exit = Some(child);
                rmcp::serve_client(handler.clone(), (out, inp))
                    .await
                    .map_err(|e| ("initialize", e.to_string()))
            }
            Start::Http { url, headers, .. } => {
                let mut custom = HashMap::new();
                for (k, v) in headers {
                    let name = reqwest::header::HeaderName::try_from(k.as_str())
                        .map_err(|_| ("config", format!("invalid header name {k:?}")))?;
                    let value = reqwest::header::HeaderValue::try_from(v.as_str())
                        .map_err(|_| ("config", format!("invalid value for header {k:?}")))?;
                    custom.insert(name, value);
                }
                let config =
                    StreamableHttpClientTransportConfig::with_uri(url).custom_headers(custom);
                let transport =
                    StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
                rmcp::serve_client(handler.clone(), transport)
                    .await
                    .map_err(|e| ("initialize", e.to_string()))
            }
        }
    };

    let outcome = tokio::time::timeout(init_timeout, connect).await;
    let service = match outcome {
        Ok(Ok(service)) => service,
        Ok(Err((stage, message))) => {
            // A stdio server that exited says more than "connection closed".
            let message = match child_exit.as_mut() {
                Some(child) => match tokio::time::timeout(Duration::from_millis(500), child.wait())
                    .await
                {
                    Ok(Ok(status)) => format!("the server exited ({status}) before it was ready"),
                    _ => message,
                },
                None => message,
            };
            fatal(&events, stage, &message)
        }
        Err(_) => fatal(
            &events,
            "initialize",
            &format!(
                "no answer to initialize within {} ms",
                init_timeout.as_millis()
            ),
        ),
    };

    let peer = service.peer().clone();
    let tools = match peer.list_all_tools().await {
        Ok(tools) => tools,
        Err(e) => fatal(&events, "list_tools", &e.to_string()),
    };
    let info = peer.peer_info();
    events.send(&json!({
        "ev": "ready",
        "protocol": info.as_ref().map(|i| i.protocol_version.to_string()),
        "server": info.as_ref().and_then(|i| serde_json::to_value(&i.server_info).ok()),
        "tools": tools,
    }));

    if let Some(mut child) = child_exit.take() {
        let events = events.clone();
        tokio::spawn(async move {
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_default();
            events
                .send(&json!({"ev": "closed", "message": format!("the server exited ({status})")}));
            events.flush_and_exit(1);
        });
    }
    watch_close(service, events.clone());

    let cancels: Cancels = Arc::default();
    while let Some(body) = ops.recv().await {
        let op: Op = match serde_json::from_slice(&body) {
            Ok(op) => op,
            Err(e) => {
                events.send(&json!({"ev": "error", "id": null, "kind": "protocol", "message": e.to_string()}));
                continue;
            }
        };
        match op {
            Op::Call {
                id,
                tool,
                arguments,
                timeout_ms,
            } => {
                let peer = peer.clone();
                let events = events.clone();
                let handler = handler.clone();
                let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
                cancels.lock().unwrap().insert(id, cancel_tx);
                let cancels = cancels.clone();
                tokio::spawn(async move {
                    let mut params = CallToolRequestParams::new(tool);
                    if let Some(args) = arguments {
                        params = params.with_arguments(args);
                    }
                    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
                    let options =
                        PeerRequestOptions::with_timeout(Duration::from_millis(timeout_ms));
                    let reply = match peer.send_cancellable_request(request, options).await {
                        Err(e) => error_event(id, &e),
                        Ok(handle) => {
                            handler.track_progress(handle.progress_token.clone(), id);
                            let token = handle.progress_token.clone();
                            let reply = call_reply(id, handle, cancel_rx).await;
                            handler.untrack_progress(&token);
                            reply
                        }
                    };
                    cancels.lock().unwrap().remove(&id);
                    events.send(&reply);
                });
            }
            Op::Cancel { id } => {
                if let Some(tx) = cancels.lock().unwrap().remove(&id) {
                    let _ = tx.send(());
                }
            }
            Op::Ping { id, timeout_ms } => {
                let peer = peer.clone();
                let events = events.clone();
                tokio::spawn(async move {
                    let request = ClientRequest::PingRequest(PingRequest {
                        method: Default::default(),
                        extensions: Default::default(),
                    });
                    let options =
                        PeerRequestOptions::with_timeout(Duration::from_millis(timeout_ms));
                    let reply = match peer.send_cancellable_request(request, options).await {
                        Err(e) => error_event(id, &e),
                        Ok(handle) => match handle.await_response().await {
                            Ok(_) => json!({"ev": "pong", "id": id}),
                            Err(e) => error_event(id, &e),
                        },
                    };
                    events.send(&reply);
                });
            }
            Op::ListTools { id } => {
                let peer = peer.clone();
                let events = events.clone();
                tokio::spawn(async move {
                    let reply = match peer.list_all_tools().await {
                        Ok(tools) => json!({"ev": "tools", "id": id, "tools": tools}),
                        Err(e) => error_event(id, &e),
                    };
                    events.send(&reply);
                });
            }
        }
    }
}

async fn call_reply(
    id: u64,
    handle: rmcp::service::RequestHandle<RoleClient>,
    cancel_rx: tokio::sync::oneshot::Receiver<()>,
) -> Value {
    let cancel_handle_peer = handle.peer.clone();
    let request_id = handle.id.clone();
    tokio::select! {
        response = handle.await_response() => match response {
            Ok(ServerResult::CallToolResult(result)) => json!({"ev": "result", "id": id, "result": result}),
            Ok(other) => json!({"ev": "result", "id": id, "result": other}),
            Err(e) => error_event(id, &e),
        },
        Ok(()) = cancel_rx => {
            let _ = cancel_handle_peer
                .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
                    Some(request_id),
                    Some("the caller gave up".into()),
                ))
                .await;
            json!({"ev": "error", "id": id, "kind": "cancelled", "message": "cancelled"})
        }
    }
}

fn error_event(id: u64, error: &ServiceError) -> Value {
    match error {
        ServiceError::Timeout { timeout } => json!({
            "ev": "error", "id": id, "kind": "timeout",
            "message": format!("no answer within {} ms (notifications/cancelled sent)", timeout.as_millis()),
        }),
        ServiceError::McpError(e) => json!({
            "ev": "error", "id": id, "kind": "mcp", "code": e.code.0,
            "message": e.message, "data": e.data,
        }),
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => json!({
            "ev": "error", "id": id, "kind": "closed", "message": error.to_string(),
        }),
        other => json!({"ev": "error", "id": id, "kind": "other", "message": other.to_string()}),
    }
}

/// When the connection ends (the server closed it, garbage ended the
/// transport, an HTTP session could not be recovered), say so and leave:
/// the actor decides about restarts.
fn watch_close(service: RunningService<RoleClient, Handler>, events: Events) {
    tokio::spawn(async move {
        let reason = match service.waiting().await {
            Ok(reason) => format!("{reason:?}"),
            Err(e) => e.to_string(),
        };
        events.send(&json!({"ev": "closed", "message": format!("connection closed: {reason}")}));
        events.flush_and_exit(1);
    });
}
