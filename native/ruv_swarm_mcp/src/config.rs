//! Command line and environment configuration of the bridge.

use std::fmt;

/// Gateway endpoint used when neither `--url` nor `RUV_SWARM_URL` is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:4102/mcp";

/// What the bridge connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Full URL of the gateway's MCP endpoint.
    pub url: String,
    /// Bearer token sent as `Authorization: Bearer <token>`, if any.
    pub token: Option<String>,
}

/// Outcome of parsing the command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the bridge.
    Run(Config),
    /// Print usage and exit successfully.
    Help,
    /// Print the version and exit successfully.
    Version,
}

/// A command line or environment the bridge cannot work with.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Usage text printed by `--help` (and, on error, to stderr).
pub const USAGE: &str = "\
ruv_swarm_mcp: stdio MCP bridge to a ruv_swarm gateway

USAGE:
    ruv_swarm_mcp [--url URL]

OPTIONS:
    --url URL       gateway MCP endpoint (env RUV_SWARM_URL, default http://127.0.0.1:4102/mcp)
    -h, --help      print this help
    -V, --version   print the version

ENVIRONMENT:
    RUV_SWARM_URL     gateway MCP endpoint
    RUV_SWARM_TOKEN   bearer token for the gateway (never pass tokens on the command line)
    RUV_SWARM_LOG     stderr log level: error, warn, info (default), debug, trace
";

impl Command {
    /// Parses arguments (without the program name) with `env` as the
    /// environment lookup, so tests need not touch the process environment.
    pub fn parse<I, F>(args: I, env: F) -> Result<Command, ConfigError>
    where
        I: IntoIterator<Item = String>,
        F: Fn(&str) -> Option<String>,
    {
        let mut url = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "-V" | "--version" => return Ok(Command::Version),
                "--url" => match args.next() {
                    Some(value) => url = Some(value),
                    None => return Err(ConfigError("--url needs a value".into())),
                },
                other => match other.strip_prefix("--url=") {
                    Some(value) => url = Some(value.to_string()),
                    None => return Err(ConfigError(format!("unknown argument: {other}"))),
                },
            }
        }
        let url = url
            .or_else(|| env("RUV_SWARM_URL").filter(|u| !u.is_empty()))
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError(format!(
                "gateway URL must start with http:// or https://, got {url:?}"
            )));
        }
        if url.starts_with("https://") {
            // Built without a TLS stack on purpose (small binary, loopback gateway).
            return Err(ConfigError(
                "https gateways are not supported by this build; use mcp-remote or an http://127.0.0.1 URL".into(),
            ));
        }
        let token = env("RUV_SWARM_TOKEN")
            .map(|t| t.trim().to_string())
            .map(|t| match t.strip_prefix("Bearer ") {
                Some(rest) => rest.trim().to_string(),
                None => t,
            })
            .filter(|t| !t.is_empty());
        Ok(Command::Run(Config { url, token }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Command::parse(args.iter().map(|s| s.to_string()), move |key| {
            env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_to_loopback_gateway_without_token() {
        assert_eq!(
            parse(&[], &[]),
            Ok(Command::Run(Config {
                url: DEFAULT_URL.into(),
                token: None
            }))
        );
    }

    #[test]
    fn flag_beats_environment() {
        let cmd = parse(
            &["--url", "http://127.0.0.1:9/mcp"],
            &[("RUV_SWARM_URL", "http://127.0.0.1:8/mcp")],
        );
        assert_eq!(
            cmd,
            Ok(Command::Run(Config {
                url: "http://127.0.0.1:9/mcp".into(),
                token: None
            }))
        );
        let cmd = parse(&["--url=http://127.0.0.1:7/mcp"], &[]);
        assert!(matches!(cmd, Ok(Command::Run(Config { url, .. })) if url.ends_with(":7/mcp")));
    }

    #[test]
    fn token_comes_from_environment_and_bearer_prefix_is_tolerated() {
        for raw in ["s3cret", "Bearer s3cret", "  s3cret \n"] {
            let cmd = parse(&[], &[("RUV_SWARM_TOKEN", raw)]);
            assert!(
                matches!(&cmd, Ok(Command::Run(Config { token: Some(t), .. })) if t == "s3cret"),
                "{raw:?} gave {cmd:?}"
            );
        }
        let cmd = parse(&[], &[("RUV_SWARM_TOKEN", "")]);
        assert!(matches!(cmd, Ok(Command::Run(Config { token: None, .. }))));
    }

    #[test]
    fn bad_arguments_are_reported() {
        assert_eq!(
            parse(&["--port", "1"], &[]),
            Err(ConfigError("unknown argument: --port".into()))
        );
        assert!(parse(&["--url"], &[]).is_err());
        assert!(parse(&["--url", "ftp://x"], &[]).is_err());
        assert!(parse(&["--url", "https://example.test/mcp"], &[]).is_err());
        assert_eq!(parse(&["--help"], &[]), Ok(Command::Help));
        assert_eq!(parse(&["-V"], &[]), Ok(Command::Version));
    }
}
