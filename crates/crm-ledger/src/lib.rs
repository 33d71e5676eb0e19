//! # crm-ledger
//!
//! The binary's commands, as a library so that tests can drive them. `main`
//! only parses the command line and calls [`run`].

use std::process::ExitCode;

use anyhow::Result;

pub mod bench;
pub mod bench_stages;
pub mod cli;
pub mod demo;
pub mod keys;
pub mod logs;
pub mod projections;
pub mod publish;
pub mod rebuild;
pub mod replay;
pub mod schemas;
pub mod serve;
pub mod time;

/// Logs to stderr, as text or JSON lines; `RUST_LOG` filters (default info).
pub fn init_tracing(format: cli::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => builder.init(),
        cli::LogFormat::Json => builder.json().init(),
    }
}

/// Runs one command; the exit code says how it went.
pub async fn run(command: cli::Command) -> Result<ExitCode> {
    match command {
        cli::Command::Serve(a) => serve::serve(a).await,
        cli::Command::Publish(a) => publish::publish(a).await,
        cli::Command::Replay(a) => replay::replay(a).await,
        cli::Command::Rebuild(a) => rebuild::rebuild(a).await,
        cli::Command::Digest(a) => rebuild::digest(a),
        cli::Command::Bench(a) => bench::bench(a).await,
        cli::Command::Demo(a) => demo::demo(a),
        cli::Command::Keys(a) => keys::keys(a),
        cli::Command::Schemas(a) => schemas::schemas(a),
    }
}
