//! `crm-ledger serve`: publish API, log, projectors and query API in one
//! process, stopped cleanly by SIGINT or SIGTERM.
//!
//! Shutdown order: stop accepting connections and let in-flight requests
//! finish (every publish that was answered is already fsynced), stop the
//! projectors after their current batch, then close the log (its writer
//! finishes every queued append first) and flush the store.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use crm_http::{AppState, Limits};
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::{Log, LogError};
use crm_projector::{Handle, Projector, RunnerConfig, Store};

use crate::cli::{LogBackend, ServeArgs};

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

/// Opens the embedded log of a data dir, with a clear error when another
/// process holds it.
pub fn open_embedded(data_dir: &std::path::Path) -> Result<Arc<EmbeddedLog>> {
    match EmbeddedLog::open(EmbeddedConfig::new(data_dir.join("log"))) {
        Ok(log) => Ok(Arc::new(log)),
        Err(LogError::Locked(m)) => bail!("{m} (stop it first, or use another --data-dir)"),
        Err(e) => {
            Err(e).with_context(|| format!("opening the log in {}", data_dir.join("log").display()))
        }
    }
}

fn open_store(data_dir: &std::path::Path, cache_mb: u64) -> Result<Store> {
    Store::open(&data_dir.join("store"), cache_mb * 1024 * 1024).map_err(|e| {
        if e.to_string().to_lowercase().contains("lock") || e.to_string().contains("WouldBlock") {
            anyhow::anyhow!(
                "the read models in {} are in use by another crm-ledger process ({e})",
                data_dir.join("store").display()
            )
        } else {
            anyhow::anyhow!(
                "opening the read models in {}: {e}",
                data_dir.join("store").display()
            )
        }
    })
}

pub async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let started = Instant::now();
    if args.log.backend == LogBackend::Kafka {
        bail!("--log kafka is not available in this build yet; use the embedded log");
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let projections = crate::projections::named(&args.projections)?;
    let data_dir = &args.log.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let limits = Limits {
        max_request_bytes: args.max_request_bytes,
        max_event_bytes: args.max_event_bytes,
        max_batch_events: args.max_batch_events,
    };

    let (state, projector, log, store) = if args.read_only {
        let store = open_store(data_dir, args.store_cache_mb)?;
        let handles = projections
            .into_iter()
            .map(|p| Handle::open_read_only(&store, p))
            .collect::<Result<Vec<_>, _>>()?;
        (
            AppState::new(None, handles, limits, metrics),
            None,
            None,
            store,
        )
    } else {
        let log = open_embedded(data_dir)?;
        let store = open_store(data_dir, args.store_cache_mb)?;
        let dyn_log: Arc<dyn Log> = log.clone();
        let projector = Projector::start(
            &store,
            dyn_log.clone(),
            projections,
            RunnerConfig::default(),
        )?;
        let state = AppState::new(Some(dyn_log), projector.handles.clone(), limits, metrics);
        (state, Some(projector), Some(log), store)
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %data_dir.display(),
        read_only = args.read_only,
        ready_ms = started.elapsed().as_millis() as u64,
        "crm-ledger ready"
    );
    axum::serve(listener, crm_http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;

    if let Some(p) = projector {
        p.stop().await;
    }
    if let Some(log) = log {
        log.close();
    }
    store.flush()?;
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}
