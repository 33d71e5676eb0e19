//! # crm-projector
//!
//! The projector runtime. For each [`crm_projection::Projection`] it reads the
//! log from the projection's checkpoint, applies events in batches on top of
//! the projection's sled tree, and commits the state changes *and* the new
//! checkpoint in one atomic sled batch: after a crash the projection resumes
//! exactly after the last event it committed, never applying one twice or
//! skipping one.
//!
//! A tree that is missing, damaged, or of another format version is cleared
//! and rebuilt from the log by itself ([`runner::prepare_tree`]). An event a
//! projection cannot apply (an error, or even a panic) becomes a dead letter
//! and the projection goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crm_log::{Log, Token};
use crm_projection::Projection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod runner;
pub mod store;

pub use runner::{EventFilter, Handle, Runner, RunnerConfig, State, Status};
pub use store::{digest, Error, Store, TreeKv};

/// How long a tree replaced by an online rebuild stays readable for the
/// queries that were reading it.
const OLD_TREE_GRACE: Duration = Duration::from_secs(30);

struct Slot {
    handle: Arc<Handle>,
    /// The live runner's task and its own stop signal.
    live: Mutex<Option<(JoinHandle<()>, watch::Sender<bool>)>>,
    rebuilding: AtomicBool,
}

/// The running projections of a process.
pub struct Projector {
    pub handles: Vec<Arc<Handle>>,
    slots: Vec<Arc<Slot>>,
    store: Store,
    log: Arc<dyn Log>,
    config: RunnerConfig,
    shutdown: watch::Sender<bool>,
    rebuilds: Mutex<Vec<JoinHandle<()>>>,
}

/// Why an online rebuild could not start.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("no projection named {0:?}")]
    Unknown(String),
    #[error("{0} is already rebuilding")]
    AlreadyRebuilding(String),
}

impl Projector {
    /// Prepares every projection's tree and starts its runner.
    pub fn start(
        store: &Store,
        log: Arc<dyn Log>,
        projections: Vec<Arc<dyn Projection>>,
        config: RunnerConfig,
    ) -> Result<Projector, Error> {
        let (shutdown, _) = watch::channel(false);
        let mut handles = Vec::new();
        let mut slots = Vec::new();
        for p in projections {
            let name = p.name();
            let live = store.live_tree_name(name)?;
            // Leftovers of an online rebuild that did not finish.
            for tree in store.tree_names(name)? {
                if tree != live {
                    tracing::info!(projection = name, tree = %tree, "dropping an unfinished rebuild");
                    store.drop_tree(&tree)?;
                }
            }
            let (runner, handle) = Runner::new(store, &live, p, log.clone(), config.clone())?;
            let (stop, rx) = watch::channel(false);
            let task = tokio::spawn(runner.run(rx));
            handles.push(handle.clone());
            slots.push(Arc::new(Slot {
                handle,
                live: Mutex::new(Some((task, stop))),
                rebuilding: AtomicBool::new(false),
            }));
        }
        Ok(Projector {
            handles,
            slots,
            store: store.clone(),
            log,
            config,
            shutdown,
            rebuilds: Mutex::new(Vec::new()),
        })
    }

    /// The handle of a projection by name.
    pub fn handle(&self, name: &str) -> Option<&Arc<Handle>> {
        self.handles.iter().find(|h| h.name() == name)
    }

    /// Starts an online rebuild of `name`: a fresh tree is built from the
    /// start of the log beside the live one, which keeps answering; once it
    /// has caught up, the live runner stops, the new tree catches the last
    /// events, becomes live (recorded in the registry) and the old tree is
    /// dropped. A crash before the swap leaves the live tree serving; the
    /// unfinished tree is dropped at the next start.
    pub fn rebuild(&self, name: &str) -> Result<(), RebuildError> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.handle.name() == name)
            .cloned()
            .ok_or_else(|| RebuildError::Unknown(name.to_string()))?;
        if slot.rebuilding.swap(true, Ordering::SeqCst) {
            return Err(RebuildError::AlreadyRebuilding(name.to_string()));
        }
        slot.handle.update_status(|s| {
            s.status = State::Rebuilding;
            s.rebuild_progress = Some(0.0);
        });
        let store = self.store.clone();
        let log = self.log.clone();
        let config = self.config.clone();
        let shutdown = self.shutdown.subscribe();
        let task = tokio::spawn(async move {
            let result = rebuild_slot(&slot, &store, log, config, shutdown).await;
            slot.handle.update_status(|s| {
                s.rebuild_progress = None;
                match &result {
                    Ok(()) => {
                        s.status = State::Live;
                        s.error = None;
                    }
                    Err(e) => {
                        s.status = State::Live;
                        s.error = Some(format!(
                            "online rebuild failed, the previous read model keeps serving: {e}"
                        ));
                    }
                }
            });
            if let Err(e) = result {
                tracing::error!(projection = slot.handle.name(), error = %e, "online rebuild failed");
            }
            slot.rebuilding.store(false, Ordering::SeqCst);
        });
        self.rebuilds.lock().expect("lock").push(task);
        Ok(())
    }

    /// Stops every runner after its current batch and waits for them.
    pub async fn stop(&self) {
        let _ = self.shutdown.send(true);
        let rebuilds: Vec<_> = self.rebuilds.lock().expect("lock").drain(..).collect();
        for t in rebuilds {
            let _ = t.await;
        }
        for slot in &self.slots {
            let live = slot.live.lock().expect("lock").take();
            if let Some((task, stop)) = live {
                let _ = stop.send(true);
                let _ = task.await;
            }
        }
    }
}

async fn rebuild_slot(
    slot: &Slot,
    store: &Store,
    log: Arc<dyn Log>,
    config: RunnerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let name = slot.handle.name();
    let current = store.live_tree_name(name)?;
    let generation = current
        .rsplit_once('@')
        .and_then(|(_, g)| g.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    let fresh = format!("{name}@{generation}");
    store.drop_tree(&fresh)?;
    let (mut runner, _) = Runner::new(
        store,
        &fresh,
        slot.handle.projection.clone(),
        log.clone(),
        config,
    )?;
    let handle = slot.handle.clone();
    // Catch up while the live copy serves; repeat until close to the end.
    loop {
        let end = log.end().await?;
        let total = end.total().max(1) as f64;
        let run = runner.run_until(&end, |done| {
            handle.update_status(|s| s.rebuild_progress = Some((done as f64 / total).min(1.0)));
        });
        tokio::select! {
            r = run => r?,
            _ = shutdown.changed() => {
                drop(runner);
                store.drop_tree(&fresh)?;
                return Err(Error::Other("stopped before the rebuild finished".into()));
            }
        }
        let lag = runner.checkpoint().lag_behind(&log.end().await?);
        if lag < 10_000 {
            break;
        }
    }
    // Swap: stop the live runner, catch the last events, make the new tree live.
    let live = slot.live.lock().expect("lock").take();
    let old_tree = current;
    if let Some((task, stop)) = live {
        let _ = stop.send(true);
        let _ = task.await;
    }
    let end = log.end().await?;
    runner.run_until(&end, |_| {}).await?;
    store.set_live_tree(name, &fresh)?;
    store.flush_async().await?;
    slot.handle.attach(&mut runner);
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(runner.run(rx));
    *slot.live.lock().expect("lock") = Some((task, stop));
    // Queries that started before the swap may still read the old tree:
    // drop it after a grace period (if the process stops first, the next
    // start drops it as a tree that is not live).
    let store = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(OLD_TREE_GRACE).await;
        if let Err(e) = store.drop_tree(&old_tree) {
            tracing::warn!(tree = %old_tree, error = %e, "dropping a replaced read model failed; it is dropped at the next start");
        }
    });
    tracing::info!(projection = name, tree = %fresh, "online rebuild finished and swapped in");
    Ok(())
}

/// Waits until every handle in `handles` has applied `token`, up to
/// `timeout`. Returns whether they all did.
pub async fn wait_for(handles: &[Arc<Handle>], token: &Token, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    for h in handles {
        let mut rx = h.applied();
        loop {
            if rx.borrow_and_update().covers(token) {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // The runner was replaced (online rebuild swap): follow the new one.
                Ok(Err(_)) => {
                    rx = h.applied();
                    if tokio::time::Instant::now() >= deadline {
                        return rx.borrow().covers(token);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(_) => return rx.borrow().covers(token),
            }
        }
    }
    true
}
