//! `crm-ledger`: see `crm_ledger::cli` and `shared/spec/cli.md`.

use clap::Parser;

/// mimalloc instead of the system allocator: publish and the projections
/// allocate many small, short-lived values, and glibc malloc both took a
/// fifth of the server's CPU and let its RSS drift up (docs/performance.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = crm_ledger::cli::Cli::parse();
    crm_ledger::init_tracing(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(crm_ledger::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
