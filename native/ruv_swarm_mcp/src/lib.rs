//! Stdio ⇄ Streamable HTTP bridge for the ruv_swarm MCP gateway.
//!
//! Claude Desktop and Claude Code launch MCP servers as child processes and
//! talk JSON-RPC over stdin/stdout. The swarm's tools live behind the
//! gateway's `/mcp` endpoint (Streamable HTTP). This crate joins the two with
//! no MCP layer in between: every message read from stdin is posted
//! unchanged to the gateway over kept-alive HTTP/1.1, and every message the gateway
//! sends (responses, notifications, server-initiated requests) is written to
//! stdout. The gateway, not the bridge, negotiates protocol versions and
//! answers every method, so new tools or methods need no bridge release.
//!
//! stdout carries only MCP messages; diagnostics go to stderr via `tracing`.

pub mod bridge;
pub mod config;
pub mod http;
pub mod stdio;

pub use bridge::{run, BridgeError};
pub use config::{Config, ConfigError};
