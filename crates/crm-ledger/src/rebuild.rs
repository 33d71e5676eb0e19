//! `crm-ledger rebuild` (offline, with time travel) and `crm-ledger digest`.
//!
//! A rebuild folds the log into fresh read models: all of it, what had
//! *occurred* by `--as-of` (event time), or what the ledger had *recorded* by
//! `--known-at` (what it knew then). The projections run side by side, each
//! reading the log; the figure printed at the end is events applied per
//! second over all of them. `--digest` prints one `NAME DIGEST` line per
//! projection: equal for equal histories, whatever the delivery order.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use crm_log::Log;
use crm_projection::Projection;
use crm_projector::{EventFilter, Runner, RunnerConfig, Store, TreeKv};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{DigestArgs, LogBackend, RebuildArgs};

fn selected(projection: Option<&str>) -> Result<Vec<Arc<dyn Projection>>> {
    match projection {
        Some(name) => crate::projections::named(&[name.to_string()]),
        None => Ok(crate::projections::all()),
    }
}

fn empty_or_missing(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// What a rebuild produced.
pub struct Rebuilt {
    pub events: u64,
    pub seconds: f64,
    pub digests: Vec<(String, String)>,
}

/// Rebuilds `projections` from `log` into the store at `store_dir`.
pub async fn rebuild_into(
    log: Arc<dyn Log>,
    store_dir: &Path,
    projections: Vec<Arc<dyn Projection>>,
    filter: EventFilter,
    show_progress: bool,
) -> Result<Rebuilt> {
    let end = log.end().await?;
    let total = end.total();
    let store = Store::open(store_dir, 256 << 20)?;
    for p in &projections {
        store.reset(p.name())?;
    }
    let bar = if show_progress {
        ProgressBar::new(total * projections.len() as u64).with_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} events applied, {per_sec} eta {eta}",
            )
            .expect("template"),
        )
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let config = RunnerConfig {
        batch_max: 5000,
        filter,
        dedup_event_ids: !log.deduplicates(),
        // The trees are built from nothing, and a rebuild cut short is run
        // again from the start: no need to write each batch twice.
        write_ahead: false,
        ..RunnerConfig::default()
    };
    let mut tasks = Vec::new();
    for p in projections.iter().cloned() {
        let (mut runner, _handle) = Runner::new(&store, p.name(), p, log.clone(), config.clone())?;
        let end = end.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            runner
                .run_until(&end, |done| {
                    bar.inc(done - last);
                    last = done;
                })
                .await
        }));
    }
    for t in tasks {
        t.await??;
    }
    bar.finish_and_clear();
    for p in &projections {
        crm_projector::commit::mark_finished(&store.tree(p.name())?)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    store.flush()?;
    let mut digests = Vec::new();
    for p in &projections {
        let tree = store.tree(p.name())?;
        digests.push((p.name().to_string(), crm_projector::digest(&TreeKv(tree))?));
    }
    Ok(Rebuilt {
        events: total * projections.len() as u64,
        seconds,
        digests,
    })
}

pub async fn rebuild(args: RebuildArgs) -> Result<ExitCode> {
    let as_of = crate::time::parse_opt("as-of", args.as_of.as_deref())?;
    let known_at = crate::time::parse_opt("known-at", args.known_at.as_deref())?;
    let projections = selected(args.projection.as_deref())?;
    let data_dir = &args.log.data_dir;
    let kafka = args.log.backend == LogBackend::Kafka;
    if kafka && args.out.is_none() {
        bail!("rebuild from Kafka needs --out DIR (a serving process keeps its own read models)");
    }
    if !kafka && !data_dir.join("log").join("segments").is_dir() {
        bail!("{} holds no embedded log", data_dir.display());
    }
    let (store_dir, replace): (PathBuf, bool) = match &args.out {
        Some(out) => {
            if !empty_or_missing(out)? {
                bail!(
                    "--out {} exists and is not empty; choose a new directory",
                    out.display()
                );
            }
            (out.join("store"), false)
        }
        None => {
            if as_of.is_some() || known_at.is_some() {
                bail!("--as-of and --known-at need --out DIR: a past view must not replace the live read models");
            }
            (data_dir.join("store.rebuild"), true)
        }
    };
    let opened = crate::logs::open(&args.log, || crate::serve::open_embedded(data_dir)).await?;
    if replace {
        // Fails now, before any work, if a server holds the store.
        drop(
            Store::open(&data_dir.join("store"), 1 << 20).with_context(|| {
                format!(
                    "the read models in {} are in use (is a server running?)",
                    data_dir.join("store").display()
                )
            })?,
        );
        let _ = std::fs::remove_dir_all(&store_dir);
    }
    let filter = EventFilter { as_of, known_at };
    let result = rebuild_into(opened.log.clone(), &store_dir, projections, filter, true).await?;
    if let Some(log) = opened.embedded {
        log.close();
    }
    if replace {
        let live = data_dir.join("store");
        let old = data_dir.join("store.old");
        let _ = std::fs::remove_dir_all(&old);
        if live.exists() {
            std::fs::rename(&live, &old)?;
        }
        std::fs::rename(&store_dir, &live)?;
        let _ = std::fs::remove_dir_all(&old);
    }
    eprintln!(
        "rebuilt {} in {:.2} s: {:.0} events/s{}",
        result
            .digests
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        result.seconds,
        result.events as f64 / result.seconds.max(1e-9),
        match &args.out {
            Some(out) => format!(
                " (serve it with: crm-ledger serve --read-only --data-dir {})",
                out.display()
            ),
            None => String::new(),
        }
    );
    if args.digest {
        for (name, d) in &result.digests {
            println!("{name} {d}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn digest(args: DigestArgs) -> Result<ExitCode> {
    let projections = selected(args.projection.as_deref())?;
    let dir = args.data_dir.join("store");
    if !dir.is_dir() {
        bail!("{} holds no read models", args.data_dir.display());
    }
    // Read-only inspection: a damaged store is reported, never moved aside.
    let store = Store::open_existing(&dir, 64 << 20).map_err(|e| {
        if e.to_string().contains("lock") {
            anyhow::anyhow!(
                "the read models in {} are in use (is a server running?): {e}",
                dir.display()
            )
        } else {
            anyhow::anyhow!("reading the read models in {}: {e}", dir.display())
        }
    })?;
    for p in projections {
        let tree = store.live_tree(p.name())?;
        // A batch a crash cut short is completed first, as `serve` would at
        // start (it is part of opening the store, like sled's own recovery):
        // the digest is of the state the read model stands for.
        crm_projector::commit::finish(&tree)
            .map_err(|e| anyhow::anyhow!("the {} read model: {e}", p.name()))?;
        println!("{} {}", p.name(), crm_projector::digest(&TreeKv(tree))?);
    }
    Ok(ExitCode::SUCCESS)
}
