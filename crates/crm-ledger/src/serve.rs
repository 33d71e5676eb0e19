//! `crm-ledger serve`: publish API, log, projectors and query API in one
//! process, stopped cleanly by SIGINT or SIGTERM.
//!
//! Shutdown order: stop accepting connections and let in-flight requests
//! finish (every publish that was answered is already fsynced), stop the
//! projectors after their current batch, then close the log (its writer
//! finishes every queued append first) and flush the store.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::serve::ListenerExt;
use crm_http::{AppState, Limits};
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::LogError;
use crm_projector::{Handle, IngestActivity, Lanes, Projector, RunnerConfig, Store};

use crate::cli::{LogBackend, Role, ServeArgs};

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
    open_embedded_with(EmbeddedConfig::new(data_dir.join("log")))
}

/// [`open_embedded`] with settings.
pub fn open_embedded_with(config: EmbeddedConfig) -> Result<Arc<EmbeddedLog>> {
    let log_dir = config.dir.clone();
    match EmbeddedLog::open(config) {
        Ok(log) => Ok(Arc::new(log)),
        Err(LogError::Locked(m)) => bail!("{m} (stop it first, or use another --data-dir)"),
        Err(e) => Err(e).with_context(|| format!("opening the log in {}", log_dir.display())),
    }
}

/// Opens the read models' store. With `check_later` it is not read whole
/// before it is used: the projector reads it in the background (a server
/// with a log; damage found then is rebuilt from the log). A read-only
/// server, which has no log to rebuild from, reads it first.
fn open_store(data_dir: &std::path::Path, cache_mb: u64, check_later: bool) -> Result<Store> {
    let (dir, cache) = (data_dir.join("store"), cache_mb * 1024 * 1024);
    let opened = if check_later {
        Store::open_checking_later(&dir, cache)
    } else {
        Store::open(&dir, cache)
    };
    opened.map_err(|e| {
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

/// How long a stopping server waits for the read-model store's last flush.
const FINAL_FLUSH_LIMIT: Duration = Duration::from_secs(10);

pub async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let huge_pages = transparent_huge_pages_off();
    if args.read_only && args.log.backend == LogBackend::Kafka {
        bail!(
            "--read-only serves the read models of a data dir without a log: leave out --log kafka"
        );
    }
    let security = crate::keys::security(&args)?;
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
        let store = open_store(data_dir, args.store_cache_mb, false)?;
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
        let mut log_config = EmbeddedConfig::new(data_dir.join("log"));
        log_config.min_free_bytes = args.log_min_free_mb * 1024 * 1024;
        log_config.index_memtable_ids = args.log_index_memtable_ids;
        let opened = crate::logs::open(&args.log, || open_embedded_with(log_config)).await?;
        let store = open_store(data_dir, args.store_cache_mb, true)?;
        let dyn_log = opened.log.clone();
        // Roles: ingest takes publishes only; project runs the projectors
        // (and the operations routes); query runs the projectors and answers
        // queries; all does everything.
        let (publishes, projects, queries) = match args.role {
            Role::Ingest => (true, false, false),
            Role::Project => (false, true, false),
            Role::Query => (false, true, true),
            Role::All => (true, true, true),
        };
        // With publishes and projections in one process, the projections
        // take at most `--projection-lanes` cores while publishes are
        // answered (crm_projector::lanes).
        let ingest_activity =
            (publishes && projects && args.projection_lanes > 0).then(IngestActivity::new);
        // The folds yield the CPU to queries and publishes (a process that
        // only projects has nothing to yield to, and loses nothing).
        crm_projector::set_fold_priority(args.projection_nice);
        let config = RunnerConfig {
            // Kafka cannot refuse a re-published event_id: the projections
            // skip an event_id they have applied already.
            dedup_event_ids: !dyn_log.deduplicates(),
            lanes: ingest_activity
                .as_ref()
                .map(|a| Lanes::new(a.clone(), args.projection_lanes)),
            ..RunnerConfig::default()
        };
        let projections = if projects { projections } else { Vec::new() };
        let projector = Arc::new(Projector::start(
            &store,
            dyn_log.clone(),
            projections,
            config,
        )?);
        let state = AppState::new(Some(dyn_log), projector.handles.clone(), limits, metrics)
            .with_projector(projector.clone())
            .with_roles(publishes, queries);
        let state = match ingest_activity {
            Some(a) => state.with_ingest_activity(a),
            None => state,
        };
        (state, Some(projector), opened.embedded, store)
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %data_dir.display(),
        read_only = args.read_only,
        ready_ms = started.elapsed().as_millis() as u64,
        transparent_huge_pages = huge_pages,
        projection_nice = %args.projection_nice,
        "crm-ledger ready"
    );
    let app = crm_http::router_with(state, security)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Answers go out at once: with Nagle's algorithm a response written in
    // two parts could wait for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;

    if let Some(p) = projector {
        p.stop().await;
    }
    if let Some(log) = log {
        log.close();
    }
    if store.has_failed() {
        // sled refuses everything after an I/O error, and flushing it, or
        // dropping it (which flushes), can wait forever for the write that
        // failed: the store is left as it is. Every batch was committed
        // with its checkpoint; what sled did not write is applied again
        // from the log at the next start.
        tracing::warn!("the read-model store's last commit failed: stopping without flushing it; the read models resume from their last durable checkpoints");
        std::mem::forget(store);
    } else {
        // Bounded all the same: a server asked to stop must stop.
        match tokio::time::timeout(FINAL_FLUSH_LIMIT, store.flush_async()).await {
            Ok(flushed) => flushed?,
            Err(_) => {
                tracing::warn!(
                    limit_s = FINAL_FLUSH_LIMIT.as_secs(),
                    "the read-model store did not flush in time; stopping without it: the read models resume from their last durable checkpoints"
                );
                // Dropping it would flush it again.
                std::mem::forget(store);
            }
        }
    }
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Turns transparent huge pages off for the server process (Linux), unless
/// the operator set `MIMALLOC_ALLOW_THP` to decide it. mimalloc asks the
/// kernel for 2 MiB pages for its arenas; the kernel then zeroes 2 MiB at
/// each first touch, and keeps whole 2 MiB pages resident for partly used
/// memory. Measured with `bench ingest` (docs/performance.md): with huge
/// pages the first requests of a fresh server waited 150-290 ms (41% of the
/// server's CPU in its first half second went to zeroing pages), and the
/// ingest process held twice the memory (234-254 MB against 104-145 MB).
/// The setting is the process's own (`prctl(PR_SET_THP_DISABLE)`): nothing
/// system-wide changes. Returns what was done, for the ready line.
fn transparent_huge_pages_off() -> &'static str {
    #[cfg(target_os = "linux")]
    {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return "as MIMALLOC_ALLOW_THP says";
        }
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a
        // flag of this process; no memory is read or written through them.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc == 0 {
            "off"
        } else {
            "could not be turned off"
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        "not applicable"
    }
}
