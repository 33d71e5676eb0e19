//! # crm-projector
//!
//! The projector runtime. For each [`crm_projection::Projection`] it reads the
//! log from the projection's checkpoint, applies events in batches on top of
//! the projection's sled tree, and commits the state changes *and* the new
//! checkpoint together ([`commit`]: the batch is written ahead, then key by
//! key, so that no commit holds sled's process-wide lock): after a crash the
//! projection resumes exactly after the last event it committed, never
//! applying one twice or skipping one.
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
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub mod commit;
pub mod lanes;
pub mod runner;
pub mod store;

pub use lanes::{IngestActivity, Lanes, Publishing};
pub use runner::{
    set_fold_priority, EventFilter, FoldPriority, Handle, Runner, RunnerConfig, State, Status,
    STOP_FLUSH_LIMIT,
};
pub use store::{digest, Error, Store, StoreCheck, TreeKv};

/// How long a tree replaced by an online rebuild stays readable for the
/// queries that were reading it.
const OLD_TREE_GRACE: Duration = Duration::from_secs(30);

/// The nice value of the thread that reads a store opened with
/// [`Store::open_checking_later`] (background work, like the id index's).
const STORE_CHECK_NICE: i32 = 10;

struct Slot {
    handle: Arc<Handle>,
    /// The live runner's task and its own stop signal.
    live: Mutex<Option<(JoinHandle<()>, watch::Sender<bool>)>>,
    rebuilding: AtomicBool,
}

/// What the projector's tasks share.
struct Shared {
    slots: Vec<Arc<Slot>>,
    store: Store,
    log: Arc<dyn Log>,
    config: RunnerConfig,
    rebuilds: Mutex<Vec<JoinHandle<()>>>,
    /// Told by a runner that could not commit a batch.
    store_failed: Arc<Notify>,
    /// The store is being reopened: no online rebuild may start.
    recovering: AtomicBool,
    /// Stops the store check (shutdown).
    check_stop: Arc<AtomicBool>,
}

impl Shared {
    /// Starts `runner` as the live runner of `slot`.
    fn start_live(&self, slot: &Slot, runner: Runner) {
        let (stop, rx) = watch::channel(false);
        let runner = runner.notify_store_failure(self.store_failed.clone());
        let task = tokio::spawn(runner.run(rx));
        *slot.live.lock().expect("lock") = Some((task, stop));
    }
}

/// The running projections of a process.
pub struct Projector {
    pub handles: Vec<Arc<Handle>>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    /// The thread reading the store whole, when it was opened without.
    checker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Why an online rebuild could not start.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("no projection named {0:?}")]
    Unknown(String),
    #[error("{0} is already rebuilding")]
    AlreadyRebuilding(String),
    #[error("the read-model store is being reopened after an I/O error; try again shortly")]
    Recovering,
}

impl Projector {
    /// Prepares every projection's tree and starts its runner, and a
    /// supervisor that reopens the store when sled fails (see
    /// [`supervise`]). A store opened with [`Store::open_checking_later`]
    /// is read whole on a background thread at nice 10 meanwhile; damage it
    /// finds is handled like a failed commit (the store is reopened, checked
    /// before use, moved aside if still damaged, and the read models
    /// rebuilt from the log). Damage met before that, while the trees
    /// are prepared, gets the same treatment at once.
    pub fn start(
        store: &Store,
        log: Arc<dyn Log>,
        projections: Vec<Arc<dyn Projection>>,
        config: RunnerConfig,
    ) -> Result<Projector, Error> {
        let unchecked = store.check() == StoreCheck::Pending;
        match Projector::start_on(store, log.clone(), projections.clone(), config.clone()) {
            Err(e) if unchecked && e.may_be_damage() => {
                tracing::warn!(error = %e, store = %store.dir().display(),
                    "the read-model store failed before it was checked: reading it whole now (moved aside and rebuilt from the log if damaged)");
                store.close();
                store.reopen()?;
                Projector::start_on(store, log, projections, config)
            }
            started => started,
        }
    }

    fn start_on(
        store: &Store,
        log: Arc<dyn Log>,
        projections: Vec<Arc<dyn Projection>>,
        config: RunnerConfig,
    ) -> Result<Projector, Error> {
        let (shutdown, _) = watch::channel(false);
        let mut handles = Vec::new();
        let mut slots = Vec::new();
        let mut runners = Vec::new();
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
            handles.push(handle.clone());
            runners.push(runner);
            slots.push(Arc::new(Slot {
                handle,
                live: Mutex::new(None),
                rebuilding: AtomicBool::new(false),
            }));
        }
        let shared = Arc::new(Shared {
            slots,
            store: store.clone(),
            log,
            config,
            rebuilds: Mutex::new(Vec::new()),
            store_failed: Arc::new(Notify::new()),
            recovering: AtomicBool::new(false),
            check_stop: Arc::new(AtomicBool::new(false)),
        });
        for (slot, runner) in shared.slots.iter().zip(runners) {
            shared.start_live(slot, runner);
        }
        let supervisor = tokio::spawn(supervise(shared.clone(), shutdown.subscribe()));
        tokio::spawn(probe_durability(shared.clone(), shutdown.subscribe()));
        let checker = (store.check() == StoreCheck::Pending)
            .then(|| spawn_store_check(&shared))
            .transpose()?;
        Ok(Projector {
            handles,
            shared,
            shutdown,
            supervisor: Mutex::new(Some(supervisor)),
            checker: Mutex::new(checker),
        })
    }

    /// Where the check of the store stands (see [`Store::run_check`]).
    pub fn store_check(&self) -> StoreCheck {
        self.shared.store.check()
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
        let shared = &self.shared;
        let slot = shared
            .slots
            .iter()
            .find(|s| s.handle.name() == name)
            .cloned()
            .ok_or_else(|| RebuildError::Unknown(name.to_string()))?;
        // Taken under the rebuilds lock, which recovery holds while it
        // waits for the rebuilds: none starts once recovery has begun.
        let mut rebuilds = shared.rebuilds.lock().expect("lock");
        if shared.recovering.load(Ordering::SeqCst) {
            return Err(RebuildError::Recovering);
        }
        if slot.rebuilding.swap(true, Ordering::SeqCst) {
            return Err(RebuildError::AlreadyRebuilding(name.to_string()));
        }
        slot.handle.update_status(|s| {
            s.status = State::Rebuilding;
            s.rebuild_progress = Some(0.0);
        });
        let task_shared = shared.clone();
        let shutdown = self.shutdown.subscribe();
        let task = tokio::spawn(async move {
            let result = rebuild_slot(&slot, &task_shared, shutdown).await;
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
                // A failure after the live runner was stopped for the swap
                // leaves the projection without one: tell the supervisor,
                // which restarts every runner on a reopened store.
                task_shared.store_failed.notify_one();
            }
            slot.rebuilding.store(false, Ordering::SeqCst);
        });
        rebuilds.push(task);
        Ok(())
    }

    /// Stops every runner after its current batch and waits for them.
    pub async fn stop(&self) {
        let _ = self.shutdown.send(true);
        self.shared.check_stop.store(true, Ordering::SeqCst);
        let supervisor = self.supervisor.lock().expect("lock").take();
        if let Some(t) = supervisor {
            let _ = t.await;
        }
        stop_all(&self.shared).await;
        // It stops within a stride of entries; it holds the database open
        // until then.
        let checker = self.checker.lock().expect("lock").take();
        if let Some(t) = checker {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Starts the background read of a store opened without it (see
/// [`Projector::start`]); damage found tells the supervisor.
fn spawn_store_check(shared: &Arc<Shared>) -> Result<std::thread::JoinHandle<()>, Error> {
    let store = shared.store.clone();
    let stop = shared.check_stop.clone();
    let failed = shared.store_failed.clone();
    let thread = std::thread::Builder::new()
        .name("store-check".into())
        .spawn(move || {
            if let Err(error) = crm_log::lower_this_threads_priority(STORE_CHECK_NICE) {
                tracing::debug!(%error, "could not lower the priority of the store check");
            }
            if let Err(e) = store.run_check(&stop) {
                tracing::error!(error = %e, store = %store.dir().display(),
                    "the read-model store check met damage: reopening the store (moved aside and rebuilt from the log if the damage is still there)");
                failed.notify_one();
            }
        })?;
    Ok(thread)
}

/// Waits for the online rebuilds, then stops every live runner.
async fn stop_all(shared: &Shared) {
    let rebuilds: Vec<_> = shared.rebuilds.lock().expect("lock").drain(..).collect();
    for t in rebuilds {
        let _ = t.await;
    }
    for slot in &shared.slots {
        let live = slot.live.lock().expect("lock").take();
        if let Some((mut task, stop)) = live {
            let _ = stop.send(true);
            if tokio::time::timeout(RUNNER_STOP_LIMIT, &mut task)
                .await
                .is_err()
            {
                // Not expected (a runner stops after its batch, and bounds
                // its last flush); if it happens, a stuck runner must not
                // keep the store from being reopened or the process from
                // stopping. Each batch is committed with its checkpoint:
                // one cut short is applied again from the log.
                tracing::error!(
                    projection = slot.handle.name(),
                    limit_s = RUNNER_STOP_LIMIT.as_secs(),
                    "a projection's runner did not stop in time: abandoning it"
                );
                task.abort();
                let _ = task.await;
            }
        }
    }
}

/// How long [`stop_all`] waits for a runner to stop.
const RUNNER_STOP_LIMIT: Duration = Duration::from_secs(60);

/// Reopens the store whenever a runner reports that it could not commit.
///
/// sled 0.34 refuses every operation after one I/O error (a full disk, most
/// often) until the database is opened again; without this the read models
/// would stay `failed` until the process restarts. Recovery stops every
/// runner, lets go of every tree (queries answer 503 meanwhile), reopens
/// the store (retrying while the error lasts or a query still holds the
/// old database), and starts the runners again from their checkpoints,
/// which were committed with their state ([`commit`]): nothing is applied
/// twice or skipped. Repeated failures back off, up to a minute apart.
async fn supervise(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut pause = RECOVERY_PAUSE_MIN;
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shared.store_failed.notified() => {}
            _ = shutdown.changed() => return,
        }
        // Failures close together are one.
        if let Some(at) = last {
            if at.elapsed() > Duration::from_secs(300) {
                pause = RECOVERY_PAUSE_MIN;
            }
            let wait = pause.saturating_sub(at.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            pause = (pause * 2).min(RECOVERY_PAUSE_MAX);
        }
        if *shutdown.borrow() {
            return;
        }
        // A notice left over from before the last recovery.
        let needed = matches!(shared.store.check(), StoreCheck::Failed { .. })
            || shared.store.has_failed()
            || shared.slots.iter().any(|s| {
                s.handle.status().status == State::Failed || s.live.lock().expect("lock").is_none()
            });
        if !needed {
            continue;
        }
        let started = tokio::time::Instant::now();
        if recover(&shared, &mut shutdown).await {
            metrics::counter!("crm_store_reopened_total").increment(1);
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "read-model store reopened; the projections resume from their checkpoints"
            );
        }
        last = Some(tokio::time::Instant::now());
    }
}

/// Checks now and then that the store still makes its writes durable.
///
/// After an I/O error (a full disk) sled 0.34 can be left with a write that
/// failed and that every later flush waits for, forever: commits still
/// succeed, in memory, and the read models look live, but nothing reaches
/// the disk any more (seen in the disk-full test). A flush that has not
/// returned within the limit ([`RunnerConfig::flush_probe`]) marks the
/// store failed and tells the supervisor, which reopens it (abandoning the
/// database if sled does not let go of it, see [`Store::close`]).
async fn probe_durability(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some((every, limit)) = shared.config.flush_probe else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if shared.recovering.load(Ordering::SeqCst) || shared.store.has_failed() {
            continue;
        }
        let flush = shared.store.flush_probe();
        tokio::select! {
            done = tokio::time::timeout(limit, flush) => {
                // A flush that fails says so at the runners' next commit.
                if done.is_err() {
                    tracing::error!(
                        limit_s = limit.as_secs_f64(),
                        "the read-model store did not make its writes durable in time (sled's flush is stuck after an I/O error): reopening it"
                    );
                    shared.store.mark_stuck();
                    shared.store_failed.notify_one();
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

const RECOVERY_PAUSE_MIN: Duration = Duration::from_secs(1);
const RECOVERY_PAUSE_MAX: Duration = Duration::from_secs(60);

/// One recovery (see [`supervise`]); false when shutdown came first.
async fn recover(shared: &Arc<Shared>, shutdown: &mut watch::Receiver<bool>) -> bool {
    let why = match shared.store.check() {
        StoreCheck::Failed { error } => format!(
            "the read-model store check met damage ({error}); the store is being reopened, and moved aside and rebuilt from the log if the damage is still there"
        ),
        _ => "the read-model store failed (an I/O error, e.g. a full disk) and is being reopened"
            .into(),
    };
    tracing::warn!(why, "the read-model store failed: reopening it");
    shared.recovering.store(true, Ordering::SeqCst);
    stop_all(shared).await;
    for slot in &shared.slots {
        slot.handle.detach(why.clone());
    }
    // Off the async workers: closing may wait for sled (`Store::close`).
    let closing = shared.store.clone();
    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
    let mut attempt = 0u32;
    let restarted = loop {
        if *shutdown.borrow() {
            break false;
        }
        attempt += 1;
        // Off the async workers: the reopen reads the whole store (seconds
        // to a minute for millions of events).
        let reopening = shared.clone();
        let reopened = tokio::task::spawn_blocking(move || reopen_and_restart(&reopening))
            .await
            .unwrap_or_else(|e| Err(Error::Other(format!("reopening the store panicked: {e}"))));
        match reopened {
            Ok(()) => break true,
            Err(e) => {
                // Expected for a moment: something still holds the old
                // database (sled's file lock), or the disk is still full.
                if attempt % 10 == 1 {
                    tracing::warn!(attempt, error = %e, "reopening the read-model store failed; retrying");
                }
                for slot in &shared.slots {
                    slot.handle.update_status(|s| {
                        s.error = Some(format!(
                            "the read-model store failed and cannot be reopened yet: {e}"
                        ))
                    });
                }
                shared.store.close();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    };
    shared.recovering.store(false, Ordering::SeqCst);
    restarted
}

fn reopen_and_restart(shared: &Shared) -> Result<(), Error> {
    shared.store.reopen()?;
    let mut runners = Vec::new();
    for slot in &shared.slots {
        let p = slot.handle.projection.clone();
        let live = shared.store.live_tree_name(p.name())?;
        let (runner, _) = Runner::new(
            &shared.store,
            &live,
            p,
            shared.log.clone(),
            shared.config.clone(),
        )?;
        runners.push(runner);
    }
    for (slot, mut runner) in shared.slots.iter().zip(runners) {
        slot.handle.attach(&mut runner);
        shared.start_live(slot, runner);
    }
    Ok(())
}

async fn rebuild_slot(
    slot: &Slot,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let (store, log, config) = (&shared.store, shared.log.clone(), shared.config.clone());
    let name = slot.handle.name();
    let current = store.live_tree_name(name)?;
    let generation = current
        .rsplit_once('@')
        .and_then(|(_, g)| g.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    let fresh = format!("{name}@{generation}");
    store.drop_tree(&fresh)?;
    // Built from nothing, and dropped if the process stops before the swap:
    // its batches need not be written ahead until it is live.
    let config = RunnerConfig {
        write_ahead: false,
        ..config
    };
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
    runner.finish_build()?;
    store.set_live_tree(name, &fresh)?;
    store.flush_async().await?;
    slot.handle.attach(&mut runner);
    shared.start_live(slot, runner);
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
