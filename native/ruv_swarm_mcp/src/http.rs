//! The HTTP client the gateway transport runs on.

use std::time::Duration;

/// How long an idle connection to the gateway is kept for the next message:
/// below the gateway's keep-alive idle bound (`header_timeout_ms`, 5 s by
/// default), so the bridge closes an idle connection before the gateway does
/// and never sends a request on one the gateway is closing.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A reqwest client that keeps connections to the gateway alive.
///
/// rmcp's default client turns connection pooling off, so every message paid
/// for a TCP connect, and a gateway-side accept and handler start, on top of
/// the tool call itself (about 0.3 ms a call on loopback). Responses are read
/// to the end by the transport before a connection returns to the pool, and
/// TCP_NODELAY is on, so a reused connection never waits on delayed ACKs.
/// Redirects are not followed: the gateway never sends one, and a redirect
/// would otherwise replay the bearer token to wherever it points.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(8)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}
