//! Driving one projection over the log.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_events::Event;
use crm_log::{Checkpoint, Log, LogRecord};
use crm_projection::{dead_letter_key, DeadLetter, Entries, KvRead, Projection, StoreError, Tx};
use serde::Serialize;
use tokio::sync::{watch, Notify};

use crate::commit;
use crate::lanes::Lanes;
use crate::store::{
    read_meta, Error, Store, TreeKv, META_APPLIED, META_FORMAT, META_LAST_EVENT_AT, SEEN_PREFIX,
};

/// Which events a run keeps (time travel, `crm-ledger rebuild`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Keep events that occurred at or before this time (event time).
    pub as_of: Option<DateTime<Utc>>,
    /// Keep events the ledger had recorded at or before this time.
    pub known_at: Option<DateTime<Utc>>,
}

impl EventFilter {
    pub fn keeps(&self, e: &Event) -> bool {
        self.as_of.is_none_or(|t| e.occurred_at <= t)
            && self
                .known_at
                .is_none_or(|t| e.recorded_at.is_some_and(|r| r <= t))
    }
}

/// Settings of a runner.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Most events applied in one batch (one commit).
    pub batch_max: usize,
    /// How long a read waits for new events before looping.
    pub idle_wait: Duration,
    pub filter: EventFilter,
    /// Skip events whose `event_id` was already applied (for logs that do not
    /// deduplicate at append, e.g. Kafka).
    pub dedup_event_ids: bool,
    /// How the projections share the cores with ingest in this process
    /// (`None`: each applies whenever it has events).
    pub lanes: Option<Lanes>,
    /// Write each batch ahead before its keys (see [`crate::commit`]). Off
    /// only for a tree built from nothing whose build is started again if
    /// cut short (`crm-ledger rebuild`): the runner then needs an empty
    /// tree, marks it unfinished, and its owner calls
    /// [`crate::commit::mark_finished`] when every runner is done.
    pub write_ahead: bool,
    /// How often the projector checks that the store still makes its
    /// writes durable (a flush), and how long that flush may take before
    /// the store is taken for stuck and reopened (see
    /// `crate::probe_durability`). `None`: never checked.
    pub flush_probe: Option<(Duration, Duration)>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            batch_max: 2000,
            idle_wait: Duration::from_millis(250),
            filter: EventFilter::default(),
            dedup_event_ids: false,
            lanes: None,
            write_ahead: true,
            flush_probe: Some((Duration::from_secs(10), Duration::from_secs(30))),
        }
    }
}

/// State of a projection, as `GET /v1/projections` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Live,
    Rebuilding,
    Failed,
}

/// Status of one projection.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    pub status: State,
    /// Text form of the applied checkpoint (a token every applied event's
    /// position is covered by).
    pub checkpoint: Checkpoint,
    pub events_applied: u64,
    pub last_event_at: Option<String>,
    pub error: Option<String>,
    /// Fraction of the log applied during a rebuild.
    pub rebuild_progress: Option<f64>,
}

/// How long a stopping runner waits for its flush (see
/// `Runner::flush_on_stop`).
pub const STOP_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// A projection served to queries: its tree (swappable by a rebuild) and
/// its progress.
pub struct Handle {
    pub projection: Arc<dyn Projection>,
    /// `None` while the store is being reopened.
    tree: RwLock<Option<sled::Tree>>,
    applied: RwLock<watch::Receiver<Checkpoint>>,
    status: Arc<Mutex<Status>>,
}

impl Handle {
    pub fn name(&self) -> &'static str {
        self.projection.name()
    }
    /// The tree queries read (answering [`StoreError::unavailable`] while
    /// the store is being reopened).
    pub fn kv(&self) -> ServedKv {
        ServedKv(self.tree.read().expect("lock").clone().map(TreeKv))
    }

    /// Lets go of the tree (the store is about to be reopened): queries
    /// answer "unavailable" and the status says why until [`Handle::attach`].
    pub fn detach(&self, why: String) {
        self.tree.write().expect("lock").take();
        let mut s = self.status.lock().expect("lock");
        s.status = State::Failed;
        s.error = Some(why);
    }
    /// Progress, for consistency waits.
    pub fn applied(&self) -> watch::Receiver<Checkpoint> {
        self.applied.read().expect("lock").clone()
    }

    /// Updates the status in place (online rebuild progress).
    pub fn update_status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().expect("lock"));
    }

    /// Makes `runner` the one this handle serves: its tree, its progress
    /// and its status (the swap at the end of an online rebuild).
    pub fn attach(&self, runner: &mut Runner) {
        runner.status = self.status.clone();
        *self.applied.write().expect("lock") = runner.applied_tx.subscribe();
        *self.tree.write().expect("lock") = Some(runner.tree.clone());
        runner.show_live();
    }
    pub fn status(&self) -> Status {
        self.status.lock().expect("lock").clone()
    }

    /// A handle on a store that no runner writes (`serve --read-only`). The
    /// tree must hold a read model of this binary's format version.
    pub fn open_read_only(
        store: &Store,
        projection: Arc<dyn Projection>,
    ) -> Result<Arc<Handle>, Error> {
        let tree = store.tree(projection.name())?;
        // Completing a batch cut short is part of opening the store, as
        // sled's own recovery is: it changes no content a runner had not
        // already written ahead.
        commit::finish(&tree).map_err(|e| Error::Other(format!("{}: {e}", projection.name())))?;
        let meta =
            read_meta(&tree).map_err(|e| Error::Other(format!("{}: {e}", projection.name())))?;
        match meta.format {
            Some(f) if f == projection.format_version() => {}
            None => {
                return Err(Error::Other(format!(
                    "the store in {} holds no {} read model; rebuild it with `crm-ledger rebuild`",
                    store.dir().display(),
                    projection.name()
                )))
            }
            Some(f) => {
                return Err(Error::Other(format!(
                "the {} read model in {} is of format {f}, this binary reads format {}; rebuild it",
                projection.name(),
                store.dir().display(),
                projection.format_version()
            )))
            }
        }
        let (_, applied) = watch::channel(meta.checkpoint.clone());
        Ok(Arc::new(Handle {
            projection: projection.clone(),
            tree: RwLock::new(Some(tree)),
            applied: RwLock::new(applied),
            status: Arc::new(Mutex::new(Status {
                name: projection.name().to_string(),
                status: State::Live,
                checkpoint: meta.checkpoint,
                events_applied: meta.applied,
                last_event_at: meta.last_event_at,
                error: None,
                rebuild_progress: None,
            })),
        }))
    }
}

/// The read model a query reads: its tree, or nothing while the store is
/// being reopened.
pub struct ServedKv(Option<TreeKv>);

impl ServedKv {
    fn tree(&self) -> Result<&TreeKv, StoreError> {
        self.0.as_ref().ok_or_else(|| {
            StoreError::unavailable("the read-model store is being reopened after an I/O error")
        })
    }
}

impl KvRead for ServedKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree()?.get(key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        self.tree()?.scan(prefix, after, limit)
    }

    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        self.tree()?.scan_rev(prefix, before, limit)
    }
}

/// Prepares a projection's tree: a tree of another format version, or with
/// unreadable metadata, is cleared so that it rebuilds from the log.
pub fn prepare_tree(
    tree: &sled::Tree,
    projection: &dyn Projection,
) -> Result<crate::store::Meta, Error> {
    let want = projection.format_version();
    // A batch cut short (a crash, an I/O error) is completed first.
    let meta = match commit::finish(tree) {
        Ok(_) => read_meta(tree),
        Err(commit::FinishError::Damaged(why)) => Err(why),
        Err(commit::FinishError::Sled(e)) => return Err(e.into()),
    };
    match meta {
        Ok(meta) if meta.format == Some(want) => return Ok(meta),
        Ok(meta) if meta.format.is_none() && tree.is_empty() => {}
        Ok(meta) => tracing::warn!(
            projection = projection.name(),
            found = ?meta.format,
            want,
            "read model of another format version: rebuilding it from the log"
        ),
        Err(e) => tracing::warn!(
            projection = projection.name(),
            error = %e,
            "read model damaged: rebuilding it from the log"
        ),
    }
    tree.clear()?;
    tree.insert(META_FORMAT, &want.to_le_bytes())?;
    Ok(crate::store::Meta {
        format: Some(want),
        ..Default::default()
    })
}

/// Runs one projection over the log into its tree.
pub struct Runner {
    projection: Arc<dyn Projection>,
    tree: sled::Tree,
    log: Arc<dyn Log>,
    config: RunnerConfig,
    checkpoint: Checkpoint,
    applied_count: u64,
    last_event_at: Option<String>,
    applied_tx: watch::Sender<Checkpoint>,
    status: Arc<Mutex<Status>>,
    /// Told when a batch cannot be committed (the store failed).
    store_failed: Option<Arc<Notify>>,
    store: Store,
    /// A commit failed: the tree's progress must be read back before the
    /// next batch.
    unsure: bool,
}

impl Runner {
    /// Tells `notify` whenever a batch cannot be committed, so that the
    /// projector can reopen the store.
    pub fn notify_store_failure(mut self, notify: Arc<Notify>) -> Runner {
        self.store_failed = Some(notify);
        self
    }

    /// Ends a build from nothing committed in place (`write_ahead` off): the
    /// tree is marked finished, and the batches after this are written
    /// ahead. Call once every batch of the build is committed, before the
    /// tree is relied on (an online rebuild: before it becomes live).
    pub fn finish_build(&mut self) -> Result<(), Error> {
        if !self.config.write_ahead {
            commit::mark_finished(&self.tree)?;
            self.config.write_ahead = true;
        }
        Ok(())
    }

    /// Prepares `projection` in `store` and returns its runner and handle.
    pub fn new(
        store: &Store,
        tree_name: &str,
        projection: Arc<dyn Projection>,
        log: Arc<dyn Log>,
        config: RunnerConfig,
    ) -> Result<(Runner, Arc<Handle>), Error> {
        let tree = store.tree(tree_name)?;
        let meta = prepare_tree(&tree, &*projection)?;
        if !config.write_ahead {
            // Batches committed in place: only into a tree built from
            // nothing, marked so that a build cut short starts again.
            if meta.checkpoint != Checkpoint::default() || meta.applied != 0 {
                return Err(Error::Other(format!(
                    "{tree_name}: a read model that is not empty must be committed written ahead"
                )));
            }
            commit::mark_unfinished(&tree)?;
        }
        let (applied_tx, applied_rx) = watch::channel(meta.checkpoint.clone());
        let status = Arc::new(Mutex::new(Status {
            name: projection.name().to_string(),
            status: State::Live,
            checkpoint: meta.checkpoint.clone(),
            events_applied: meta.applied,
            last_event_at: meta.last_event_at.clone(),
            error: None,
            rebuild_progress: None,
        }));
        let handle = Arc::new(Handle {
            projection: projection.clone(),
            tree: RwLock::new(Some(tree.clone())),
            applied: RwLock::new(applied_rx),
            status: status.clone(),
        });
        Ok((
            Runner {
                projection,
                tree,
                log,
                config,
                checkpoint: meta.checkpoint,
                applied_count: meta.applied,
                last_event_at: meta.last_event_at,
                applied_tx,
                status,
                store_failed: None,
                store: store.clone(),
                unsure: false,
            },
            handle,
        ))
    }

    /// Applies the log until `shutdown` turns true. Errors of the log are
    /// retried with a pause; the projection's own errors become dead letters.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.projection.name();
        let mut reader = None;
        let mut reader_error = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if reader.is_none() {
                if self.unsure {
                    if let Err(e) = self.reload().await {
                        tracing::warn!(projection = name, error = %e, "cannot read the read model back; retrying");
                        self.store.mark_failed();
                        self.fail(e.to_string());
                        // sled refuses every operation after an I/O error
                        // until the store is reopened: say so, as a failed
                        // commit does.
                        if let Some(n) = &self.store_failed {
                            n.notify_one();
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                }
                match self.log.reader(&self.checkpoint).await {
                    Ok(r) => {
                        reader = Some(r);
                        reader_error = None;
                    }
                    Err(e) => {
                        let why = format!("cannot read the log: {e}");
                        // Said once per new error, not at every retry.
                        if reader_error.as_ref() != Some(&why) {
                            tracing::warn!(projection = name, error = %why, "retrying every second");
                            reader_error = Some(why.clone());
                        }
                        self.fail(why);
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                }
            }
            let r = reader.as_mut().expect("reader");
            let batch = tokio::select! {
                b = r.next_batch(self.config.batch_max, self.config.idle_wait) => b,
                _ = shutdown.changed() => continue,
            };
            match batch {
                Ok(records) if records.is_empty() => {}
                Ok(records) => {
                    if let Err(e) = self.apply_records(records).await {
                        // The batch may be half-written: it is completed or
                        // left out before anything else is applied.
                        self.unsure = true;
                        self.store.mark_failed();
                        tracing::error!(projection = name, error = %e, "applying a batch failed; retrying from the checkpoint");
                        self.fail(e.to_string());
                        if let Some(n) = &self.store_failed {
                            n.notify_one();
                        }
                        reader = None;
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(projection = name, error = %e, "reading the log failed; retrying");
                    self.fail(e.to_string());
                    reader = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        self.flush_on_stop().await;
    }

    /// Makes the batches applied so far durable before the runner stops
    /// (sled's own flusher would within half a second), within
    /// [`STOP_FLUSH_LIMIT`]. After an I/O error sled's flush can wait
    /// forever for a write that failed (seen after a full disk: the flush
    /// of a runner stopped for the store's reopen never returned, and the
    /// read models stayed failed), so it is bounded, and skipped by a
    /// runner whose commit failed, or whose store did. Nothing depends on it: each batch was
    /// committed with its checkpoint, and whatever sled did not write is
    /// applied again from the log.
    async fn flush_on_stop(&self) {
        if self.unsure || self.store.has_failed() {
            return;
        }
        let tree = self.tree.clone();
        let stuck = self.store.injected_stuck_flush();
        let flush = async move {
            if stuck {
                std::future::pending::<()>().await;
            }
            tree.flush_async().await.map_err(Error::from)
        };
        match tokio::time::timeout(STOP_FLUSH_LIMIT, flush).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(projection = self.projection.name(), error = %e, "flushing the read model at stop failed; what was not written is applied again from the log")
            }
            Err(_) => tracing::warn!(
                projection = self.projection.name(),
                limit_s = STOP_FLUSH_LIMIT.as_secs(),
                "flushing the read model at stop did not finish in time (the store failed?); stopping without it: what was not written is applied again from the log"
            ),
        }
    }

    /// Applies the log until the checkpoint covers `end` (offline rebuild).
    /// `progress` is called after each batch with the events applied so far.
    pub async fn run_until(
        &mut self,
        end: &Checkpoint,
        mut progress: impl FnMut(u64),
    ) -> Result<(), Error> {
        let mut reader = self.log.reader(&self.checkpoint).await?;
        let covered = |cp: &Checkpoint| end.0.iter().all(|(p, e)| cp.next(*p) >= *e);
        while !covered(&self.checkpoint) {
            let records = reader
                .next_batch(self.config.batch_max, self.config.idle_wait)
                .await?;
            if !records.is_empty() {
                self.apply_records(records).await?;
                progress(self.checkpoint.total());
            }
        }
        self.tree.flush_async().await?;
        Ok(())
    }

    /// Shows the runner live at its progress in its status.
    fn show_live(&self) {
        let mut s = self.status.lock().expect("lock");
        s.status = State::Live;
        s.error = None;
        s.checkpoint = self.checkpoint.clone();
        s.events_applied = self.applied_count;
        s.last_event_at = self.last_event_at.clone();
    }

    /// Reads the tree's progress back after a failed commit, completing
    /// the batch if it was written ahead (see `commit`).
    async fn reload(&mut self) -> Result<(), Error> {
        let tree = self.tree.clone();
        let meta = tokio::task::spawn_blocking(move || {
            commit::finish(&tree)?;
            read_meta(&tree).map_err(Error::Other)
        })
        .await
        .map_err(|e| Error::Other(format!("projection task failed: {e}")))??;
        self.checkpoint = meta.checkpoint;
        self.applied_count = meta.applied;
        self.last_event_at = meta.last_event_at;
        self.unsure = false;
        self.show_live();
        // A completed batch is now visible to those waiting for it.
        self.applied_tx.send_replace(self.checkpoint.clone());
        Ok(())
    }

    /// The checkpoint applied so far.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    fn fail(&self, error: String) {
        let mut s = self.status.lock().expect("lock");
        s.status = State::Failed;
        s.error = Some(error);
    }

    /// Applies records and commits them with the new checkpoint ([`commit`]).
    async fn apply_records(&mut self, records: Vec<LogRecord>) -> Result<(), Error> {
        if let Some(e) = self.store.injected_failure() {
            return Err(e);
        }
        let fail_midway = self.store.injected_midway_failure();
        let projection = self.projection.clone();
        let tree = self.tree.clone();
        let config = self.config.clone();
        let mut checkpoint = self.checkpoint.clone();
        let mut applied = self.applied_count;
        let mut last = self.last_event_at.clone();
        let n = records.len();
        // While publishes are being answered, wait for a lane (see
        // `lanes`): the permit is held until the batch is committed.
        let _lane = match &self.config.lanes {
            Some(lanes) => {
                let waiting = std::time::Instant::now();
                let lane = lanes.enter().await;
                if lane.is_some() {
                    metrics::histogram!("crm_projection_lane_wait_seconds", "projection" => self.projection.name())
                        .record(waiting.elapsed().as_secs_f64());
                }
                lane
            }
            None => None,
        };
        let (checkpoint, applied, last) = on_fold_thread(move || {
            apply_batch(
                &*projection,
                &tree,
                &config,
                &records,
                &mut checkpoint,
                &mut applied,
                &mut last,
                fail_midway,
            )
            .map(|()| (checkpoint, applied, last))
        })
        .await
        .map_err(|e| Error::Other(format!("projection task failed: {e}")))??;
        self.store.mark_healthy();
        self.checkpoint = checkpoint.clone();
        self.applied_count = applied;
        self.last_event_at = last;
        metrics::counter!("crm_projection_events_total", "projection" => self.projection.name())
            .increment(n as u64);
        self.show_live();
        self.applied_tx.send_replace(checkpoint);
        Ok(())
    }
}

/// The fold of one batch: every record applied on top of the tree, with
/// per-event isolation (a failing or panicking apply leaves only a dead
/// letter), then state and checkpoint committed together ([`commit`]).
/// `fail_midway` is for tests of the recovery only (the commit fails
/// halfway, see [`Store::inject_commit_failures_midway`]); false otherwise.
#[allow(clippy::too_many_arguments)]
pub fn apply_batch(
    projection: &dyn Projection,
    tree: &sled::Tree,
    config: &RunnerConfig,
    records: &[LogRecord],
    checkpoint: &mut Checkpoint,
    applied: &mut u64,
    last_event_at: &mut Option<String>,
    fail_midway: bool,
) -> Result<(), Error> {
    let started = std::time::Instant::now();
    let base = TreeKv(tree.clone());
    let mut tx = Tx::new(&base);
    for rec in records {
        checkpoint.advance(rec.position);
        let event = match std::str::from_utf8(&rec.payload)
            .map_err(|e| e.to_string())
            .and_then(|s| Event::from_stored_json(s).map_err(|e| e.to_string()))
        {
            Ok(e) => e,
            Err(e) => {
                let dl = DeadLetter {
                    event_id: rec.event_id.clone(),
                    event_type: String::new(),
                    occurred_at: String::new(),
                    error: format!("stored event at {} cannot be read: {e}", rec.position),
                    parked: false,
                };
                tx.put_reserved(
                    dead_letter_key(&rec.event_id),
                    serde_json::to_vec(&dl).expect("json"),
                );
                continue;
            }
        };
        if !config.filter.keeps(&event) {
            continue;
        }
        if config.dedup_event_ids {
            let mut seen = SEEN_PREFIX.to_vec();
            seen.extend_from_slice(event.event_id.as_bytes());
            if tx.get(&seen)?.is_some() {
                continue;
            }
            tx.put_reserved(seen, Vec::new());
        }
        let changes = {
            let mut child = Tx::new(&tx);
            let result =
                std::panic::catch_unwind(AssertUnwindSafe(|| projection.apply(&mut child, &event)));
            match result {
                Ok(Ok(())) => child.into_changes(),
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        Err(panic) => format!(
                            "projection panicked: {}",
                            panic
                                .downcast_ref::<String>()
                                .map(String::as_str)
                                .or_else(|| panic.downcast_ref::<&str>().copied())
                                .unwrap_or("(no message)")
                        ),
                        Ok(Ok(())) => unreachable!(),
                    };
                    tracing::warn!(projection = projection.name(), event_id = %event.event_id, error = %why, "dead-lettered");
                    metrics::counter!("crm_dead_letters_total", "projection" => projection.name())
                        .increment(1);
                    let mut dl = Tx::new(&tx);
                    dl.dead_letter(&event, why, false);
                    dl.into_changes()
                }
            }
        };
        tx.absorb(changes);
        *applied += 1;
        let later = last_event_at.as_deref().is_none_or(|l| {
            DateTime::parse_from_rfc3339(l).map_or(true, |l| event.occurred_at > l)
        });
        if later {
            *last_event_at = Some(crm_events::format_time(&event.occurred_at));
        }
    }
    tx.put_reserved(META_APPLIED.to_vec(), applied.to_le_bytes().to_vec());
    if let Some(l) = last_event_at {
        tx.put_reserved(META_LAST_EVENT_AT.to_vec(), l.as_bytes().to_vec());
    }
    let folded = started.elapsed();
    // Written ahead, then key by key, the checkpoint last (see `commit`):
    // no write takes sled's process-wide lock exclusively, so queries and
    // the other read models go on while it runs.
    let writes = tx.into_changes().0;
    let checkpoint_json = serde_json::to_vec(&*checkpoint).expect("json");
    let keys = if fail_midway {
        commit::commit_failing_midway(tree, writes, checkpoint_json)?
    } else if config.write_ahead {
        commit::commit(tree, writes, checkpoint_json)?
    } else {
        commit::commit_in_place(tree, writes, checkpoint_json)?
    };
    let committed = started.elapsed() - folded;
    metrics::histogram!("crm_projection_commit_seconds", "projection" => projection.name())
        .record(committed.as_secs_f64());
    tracing::debug!(
        projection = projection.name(),
        events = records.len(),
        keys,
        fold_ms = folded.as_secs_f64() * 1e3,
        commit_ms = committed.as_secs_f64() * 1e3,
        "batch applied"
    );
    Ok(())
}

/// How the threads that fold and commit batches share the CPU with the rest
/// of the process (`serve --projection-nice`). See [`set_fold_priority`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldPriority {
    /// On tokio's blocking pool, at the process's priority.
    Process,
    /// On threads of their own at this nice value (1 to 19).
    Nice(i32),
    /// On threads of their own in the idle scheduling class (Linux
    /// `SCHED_IDLE`, see [`crm_log::idle_this_thread`]).
    Idle,
}

impl std::str::FromStr for FoldPriority {
    type Err = String;

    /// `idle`, or a nice value from 0 (the process's priority) to 19.
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("idle") {
            return Ok(FoldPriority::Idle);
        }
        match s.parse::<i32>() {
            Ok(0) => Ok(FoldPriority::Process),
            Ok(n @ 1..=19) => Ok(FoldPriority::Nice(n)),
            _ => Err(format!(
                "expected `idle` or a nice value from 0 to 19, got `{s}`"
            )),
        }
    }
}

impl std::fmt::Display for FoldPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FoldPriority::Process => f.write_str("0"),
            FoldPriority::Nice(n) => write!(f, "{n}"),
            FoldPriority::Idle => f.write_str("idle"),
        }
    }
}

/// [`FoldPriority`] as one integer: 0 the process's priority, 1 to 19 a nice
/// value, [`FOLD_IDLE`] the idle class.
static FOLD_PRIORITY: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
const FOLD_IDLE: i32 = -1;

/// Makes every batch of this process fold and commit on threads of their
/// own (one per core) at `priority` (Linux; elsewhere the threads keep the
/// process's priority). A server that answers queries sets it (`serve
/// --projection-nice`, `idle` by default): a query or a publish then takes
/// the CPU from a fold at once instead of waiting for the scheduler to share
/// it, and the folds still get every cycle nothing else wants. Since no
/// commit takes sled's process-wide lock exclusively (see [`crate::commit`]),
/// a fold that waits for the CPU holds up no query. Call before the first
/// batch; later calls do not move threads already started.
pub fn set_fold_priority(priority: FoldPriority) {
    let encoded = match priority {
        FoldPriority::Process => 0,
        FoldPriority::Nice(n) => n.clamp(1, 19),
        FoldPriority::Idle => FOLD_IDLE,
    };
    FOLD_PRIORITY.store(encoded, std::sync::atomic::Ordering::Relaxed);
}

/// Runs `f` (a batch's fold and commit) off the async runtime: on the fold
/// threads when [`set_fold_priority`] asked for them, on tokio's blocking
/// pool otherwise. A panic comes back as an error, as a failed task would.
async fn on_fold_thread<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    let priority = FOLD_PRIORITY.load(std::sync::atomic::Ordering::Relaxed);
    if priority == 0 {
        return tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| e.to_string());
    }
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name(|i| format!("fold-{i}"))
            .start_handler(move |_| {
                let lowered = if priority == FOLD_IDLE {
                    crm_log::idle_this_thread()
                } else {
                    crm_log::lower_this_threads_priority(priority)
                };
                if let Err(error) = lowered {
                    tracing::debug!(%error, "could not lower the priority of a fold thread");
                }
            })
            .build()
            .expect("the fold threads start")
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(f))
            .map_err(|_| "a batch's fold or commit panicked".to_string());
        let _ = tx.send(result);
    });
    rx.await.map_err(|e| e.to_string())?
}

#[cfg(all(test, target_os = "linux"))]
mod fold_thread_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn folds_run_on_their_own_idle_threads_and_a_panic_is_an_error() {
        // The nice value is covered by tests/fold_priority.rs (the pool is
        // made once per process).
        set_fold_priority(FoldPriority::Idle);
        let (name, policy) = on_fold_thread(|| {
            // SAFETY: no argument but the calling thread (0).
            let policy = unsafe { libc::sched_getscheduler(0) };
            (std::thread::current().name().map(str::to_string), policy)
        })
        .await
        .unwrap();
        assert!(
            name.as_deref().unwrap_or("").starts_with("fold-"),
            "{name:?}"
        );
        assert_eq!(policy, libc::SCHED_IDLE, "the fold thread's policy");
        let failed = on_fold_thread(|| -> u8 { panic!("a fold that panics (test)") }).await;
        assert!(failed.is_err());
        // The pool goes on after a panic.
        assert_eq!(on_fold_thread(|| 7).await, Ok(7));
    }

    #[test]
    fn a_priority_is_idle_or_a_nice_value_and_reads_back_as_written() {
        for (text, priority) in [
            ("idle", FoldPriority::Idle),
            ("IDLE", FoldPriority::Idle),
            ("0", FoldPriority::Process),
            ("1", FoldPriority::Nice(1)),
            ("19", FoldPriority::Nice(19)),
        ] {
            assert_eq!(text.parse::<FoldPriority>(), Ok(priority), "{text}");
            assert_eq!(
                priority.to_string().parse::<FoldPriority>(),
                Ok(priority),
                "{priority}"
            );
        }
        for bad in ["20", "-1", "", "low", "10.5"] {
            let e = bad.parse::<FoldPriority>().unwrap_err();
            assert!(e.contains("idle") && e.contains(bad), "{bad}: {e}");
        }
    }
}
