//! `ruv_swarm_mcp`: a stdio MCP server that forwards to a ruv_swarm gateway.
//! See the library docs for the design; this file wires config, logging,
//! signals and stdio together; the forwarding is in `bridge` and `http`.

use std::process::ExitCode;

use ruv_swarm_mcp::config::{Command, USAGE};
use ruv_swarm_mcp::stdio::Stdio;
use tracing::level_filters::LevelFilter;

fn main() -> ExitCode {
    let command = match Command::parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("ruv_swarm_mcp: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match command {
        Command::Help => {
            // --help is asked for by a person, not an MCP client: stdout is fine.
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("ruv_swarm_mcp {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Run(config) => config,
    };

    // Logs must never reach stdout: it carries the MCP stream.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(log_level())
        .with_target(false)
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    runtime.block_on(async move {
        tracing::info!(url = %config.url, token = config.token.is_some(), "bridging stdio to gateway");
        let (_restore_flags, stdin, stdout) = Stdio::open();
        match ruv_swarm_mcp::run(stdin, stdout, &config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn log_level() -> LevelFilter {
    match std::env::var("RUV_SWARM_LOG").as_deref() {
        Ok("error") => LevelFilter::ERROR,
        Ok("warn") => LevelFilter::WARN,
        Ok("debug") => LevelFilter::DEBUG,
        Ok("trace") => LevelFilter::TRACE,
        Ok("off") => LevelFilter::OFF,
        _ => LevelFilter::INFO,
    }
}

/// Resolves on SIGTERM or SIGINT so the gateway session is closed cleanly.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}
