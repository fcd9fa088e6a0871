//! The start configuration, the actor's first frame. Secrets (`env`,
//! `headers`) come this way, never on a command line.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum Start {
    /// A child process speaking MCP on its stdin/stdout.
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
        /// The child's complete environment.
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default)]
        cwd: Option<String>,
        #[serde(default = "default_init_timeout")]
        init_timeout_ms: u64,
    },
    /// A Streamable HTTP endpoint.
    Http {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default = "default_init_timeout")]
        init_timeout_ms: u64,
    },
}

fn default_init_timeout() -> u64 {
    30_000
}

impl Start {
    pub fn init_timeout_ms(&self) -> u64 {
        match self {
            Start::Stdio {
                init_timeout_ms, ..
            }
            | Start::Http {
                init_timeout_ms, ..
            } => *init_timeout_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_transports() {
        let s: Start = serde_json::from_str(
            r#"{"transport":"stdio","command":"/bin/x","args":["-a"],"env":{"K":"V"}}"#,
        )
        .unwrap();
        assert!(matches!(s, Start::Stdio { ref command, .. } if command == "/bin/x"));
        assert_eq!(s.init_timeout_ms(), 30_000);
        let h: Start = serde_json::from_str(
            r#"{"transport":"http","url":"http://127.0.0.1:1/mcp","init_timeout_ms":5}"#,
        )
        .unwrap();
        assert_eq!(h.init_timeout_ms(), 5);
    }
}
