//! The forwarding loop between the client-facing transport (stdio) and the
//! gateway-facing transport (Streamable HTTP).

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rmcp::model::{ClientJsonRpcMessage, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage};
use rmcp::service::{RoleClient, RoleServer};
use rmcp::transport::Transport;
use tokio::sync::mpsc;

/// Why the bridge stopped abnormally.
#[derive(Debug)]
pub enum BridgeError {
    /// The gateway connection ended (unreachable, refused the session, or
    /// closed it) while the client was still connected.
    UpstreamClosed,
    /// Writing to the client failed (stdout closed).
    Downstream(String),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::UpstreamClosed => f.write_str("the gateway connection closed"),
            BridgeError::Downstream(e) => write!(f, "writing to the MCP client failed: {e}"),
        }
    }
}

impl std::error::Error for BridgeError {}

/// How long to wait for the gateway session to be closed on exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long answers are awaited after stdin closes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

type SendFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A message queued for the gateway, with the id of the request it carries
/// (if any) so a failed delivery can be answered instead of left hanging.
struct Outgoing {
    request_id: Option<RequestId>,
    method: String,
    send: SendFuture,
}

/// Forwards messages between `client` (the MCP client on stdio) and
/// `gateway` (the Streamable HTTP transport) until the client disconnects,
/// `shutdown` resolves, or the gateway connection dies.
///
/// Requests the gateway never answers because delivery failed or the
/// connection died get a JSON-RPC error response naming `gateway_url`, so the
/// client sees why instead of waiting forever.
pub async fn run<C, G, S>(
    mut client: C,
    mut gateway: G,
    gateway_url: &str,
    shutdown: S,
) -> Result<(), BridgeError>
where
    C: Transport<RoleServer>,
    G: Transport<RoleClient>,
    S: Future<Output = ()>,
{
    // Sends to the gateway are awaited one at a time, in arrival order, on
    // their own task: the HTTP transport delivers a message only when its POST
    // completes, and awaiting that here would stop responses flowing back.
    let (queue_tx, mut queue_rx) = mpsc::unbounded_channel::<Outgoing>();
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel::<(Option<RequestId>, String)>();
    let mut sender = tokio::spawn(async move {
        while let Some(out) = queue_rx.recv().await {
            if let Err(reason) = out.send.await {
                tracing::warn!(method = %out.method, "could not forward to gateway: {reason}");
                if failed_tx.send((out.request_id, reason)).is_err() {
                    break;
                }
            }
        }
    });

    let mut pending: HashSet<RequestId> = HashSet::new();
    // Set once any message could not be delivered, so a session that lost its
    // gateway ends with a failure exit status even if the client leaves first.
    let mut delivery_failed = false;
    tokio::pin!(shutdown);

    // Once stdin closes, answers still owed are delivered (for a bounded
    // time) before exiting, so `printf ... | ruv_swarm_mcp` loses nothing.
    let mut stdin_open = true;
    let drain_deadline = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(drain_deadline);

    let result = loop {
        if !stdin_open && pending.is_empty() {
            break if delivery_failed {
                Err(BridgeError::UpstreamClosed)
            } else {
                Ok(())
            };
        }
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down on signal");
                break Ok(());
            }
            _ = &mut drain_deadline, if !stdin_open => {
                tracing::warn!(pending = pending.len(), "gave up waiting for answers after stdin closed");
                break Ok(());
            }
            incoming = client.receive(), if stdin_open => {
                let Some(message) = incoming else {
                    tracing::info!("client closed stdin");
                    stdin_open = false;
                    drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                    continue;
                };
                let request_id = request_id(&message);
                let method = method_name(&message);
                tracing::debug!(%method, "client -> gateway");
                if let Some(id) = &request_id {
                    pending.insert(id.clone());
                }
                let send = gateway.send(message);
                let send: SendFuture = Box::pin(async move { send.await.map_err(|e| e.to_string()) });
                if queue_tx.send(Outgoing { request_id, method, send }).is_err() {
                    break Err(BridgeError::UpstreamClosed);
                }
            }
            outgoing = gateway.receive() => {
                let Some(message) = outgoing else {
                    tracing::error!("gateway connection at {gateway_url} closed");
                    break Err(BridgeError::UpstreamClosed);
                };
                if let Some(id) = response_id(&message) {
                    pending.remove(id);
                }
                tracing::debug!("gateway -> client");
                client
                    .send(message)
                    .await
                    .map_err(|e| BridgeError::Downstream(e.to_string()))?;
            }
            Some((id, reason)) = failed_rx.recv() => {
                delivery_failed = true;
                if let Some(id) = id {
                    if pending.remove(&id) {
                        let error = gateway_error(gateway_url, &reason);
                        client
                            .send(ServerJsonRpcMessage::error(error, Some(id)))
                            .await
                            .map_err(|e| BridgeError::Downstream(e.to_string()))?;
                    }
                }
            }
        }
    };

    drop(queue_tx);
    if result.is_err() {
        // Sends still queued fail quickly once the connection is gone; wait
        // for them so a request is answered with the reason its own delivery
        // failed (say, the gateway refusing the token) rather than a generic one.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut sender).await;
        while let Ok((id, reason)) = failed_rx.try_recv() {
            if let Some(id) = id.filter(|id| pending.remove(id)) {
                let error = gateway_error(gateway_url, &reason);
                let _ = client
                    .send(ServerJsonRpcMessage::error(error, Some(id)))
                    .await;
            }
        }
        // Answer what is still outstanding so the client is not left waiting.
        for id in pending.drain() {
            let error = gateway_error(gateway_url, "the gateway connection closed");
            let _ = client
                .send(ServerJsonRpcMessage::error(error, Some(id)))
                .await;
        }
    }
    sender.abort();
    // Closing the HTTP transport ends the gateway session (DELETE /mcp). It
    // is bounded: rmcp's worker can wait for a message that will never come
    // (a client that left between `initialize` and `initialized`).
    match tokio::time::timeout(CLOSE_TIMEOUT, gateway.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("closing gateway transport: {e}"),
        Err(_) => tracing::debug!("gateway transport did not close in time; dropping it"),
    }
    let _ = client.close().await;
    result
}

fn gateway_error(url: &str, reason: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::INTERNAL_ERROR,
        format!("ruv_swarm gateway at {url} is unavailable: {reason}"),
        None,
    )
}

fn request_id(message: &ClientJsonRpcMessage) -> Option<RequestId> {
    match message {
        ClientJsonRpcMessage::Request(request) => Some(request.id.clone()),
        _ => None,
    }
}

fn response_id(message: &ServerJsonRpcMessage) -> Option<&RequestId> {
    match message {
        ServerJsonRpcMessage::Response(response) => Some(&response.id),
        ServerJsonRpcMessage::Error(error) => error.id.as_ref(),
        _ => None,
    }
}

/// The JSON-RPC method of a message, for logs only.
fn method_name(message: &ClientJsonRpcMessage) -> String {
    match message {
        ClientJsonRpcMessage::Request(r) => r.request.method().to_string(),
        ClientJsonRpcMessage::Notification(_) => "notification".into(),
        ClientJsonRpcMessage::Response(_) => "response".into(),
        ClientJsonRpcMessage::Error(_) => "error".into(),
    }
}
