//! The sled store of the read models.
//!
//! One sled database (`DATA_DIR/store`) holds one tree per projection. Each
//! tree holds the projection's own keys plus reserved ones (first byte 0x00):
//! `\0meta/format`, `\0meta/checkpoint`, `\0meta/applied`,
//! `\0meta/last_event_at`, dead letters under `\0dl/`, and the batch being
//! committed under `\0redo/`. The checkpoint is committed with the state it
//! covers ([`crate::commit`]).
//!
//! sled is never the source of truth: a store that cannot be opened, a tree
//! of another format version, or a tree whose metadata cannot be read is
//! dropped and rebuilt from the log.
//!
//! sled checks a page's CRC when it reads the page, and opening a database
//! reads only what its recovery needs. A store is therefore read whole once
//! per open (the *store check*): before the open returns
//! ([`Store::open`], used offline and read-only), or, for a server, in the
//! background after it is ready ([`Store::open_checking_later`], then
//! [`Store::run_check`], which the projector runs): reading a store of
//! millions of events takes 10 s to a minute, and a server that waits for
//! it takes no publish meanwhile. Damage found later is handled like a
//! failed commit: the store is reopened, checked before it is used, moved
//! aside if damaged, and the read models rebuilt from the log.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crm_log::Checkpoint;
use crm_projection::{KvRead, StoreError};
use serde::{Deserialize, Serialize};

pub(crate) const META_FORMAT: &[u8] = b"\x00meta/format";
pub(crate) const META_CHECKPOINT: &[u8] = b"\x00meta/checkpoint";
pub(crate) const META_APPLIED: &[u8] = b"\x00meta/applied";
pub(crate) const META_LAST_EVENT_AT: &[u8] = b"\x00meta/last_event_at";
pub(crate) const META_PREFIX: &[u8] = b"\x00meta/";
/// Present while a tree is built from nothing without writing ahead
/// (`commit::mark_unfinished`).
pub(crate) const META_UNFINISHED: &[u8] = b"\x00meta/unfinished";
/// The tree of registry entries `live/<name>` -> tree name.
const REGISTRY: &str = "registry";

/// Runtime key of an event already applied (only where the log does not
/// deduplicate, e.g. Kafka).
pub(crate) const SEEN_PREFIX: &[u8] = b"\x00seen/";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Log(#[from] crm_log::LogError),
    /// The store is closed for a moment (reopening after an I/O error).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Whether the error may come from damage in the store: what sled
    /// fails with, but for the I/O errors the operating system reports (a
    /// full disk, a lock held by another process, a failing device), after
    /// which the store may be perfectly good.
    pub fn may_be_damage(&self) -> bool {
        match self {
            Error::Sled(e) => sled_damage(e),
            Error::Other(_) => true,
            Error::Io(_) | Error::Log(_) | Error::Unavailable(_) => false,
        }
    }
}

/// [`Error::may_be_damage`] of a sled error.
fn sled_damage(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(e) => e.raw_os_error().is_none() && !e.to_string().contains("lock"),
        _ => true,
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Other(e.to_string())
    }
}

/// The read-model store: a sled database of projection trees.
///
/// Clones share one database, which the runtime can close and reopen in
/// place ([`Store::close`], [`Store::reopen`]): sled refuses every operation
/// after an I/O error (a full disk) until the database is opened again.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: RwLock<Option<sled::Db>>,
    dir: PathBuf,
    cache_bytes: u64,
    /// Commits still to fail on purpose (tests of recovery).
    injected_failures: AtomicU32,
    /// Commits still to fail halfway through their writes (tests of recovery).
    injected_midway: AtomicU32,
    /// Flushes of a runner that stops never finish (tests of the bound on
    /// them, see `runner::flush_on_stop`).
    injected_stuck_flushes: AtomicBool,
    /// Whether the open database was read whole (see the module's docs).
    check: Mutex<StoreCheck>,
    /// The next store check fails as if it had met damage (tests).
    injected_check_failure: AtomicBool,
    /// Times the database was reopened ([`Store::reopen`]).
    reopens: AtomicU64,
    /// The last commit into the open database failed (sled may refuse
    /// everything after an I/O error, and its flush may never return):
    /// cleared by a commit that succeeds, or when the database is reopened.
    failed: AtomicBool,
    /// A flush of the open database did not return in time (see
    /// [`Store::mark_stuck`]): cleared only when the database is reopened.
    stuck: AtomicBool,
    /// sled did not let go of the closed database in time
    /// ([`Store::close`]): the next [`Store::reopen`] starts afresh.
    abandoned: AtomicBool,
}

/// Whether the open database was read whole, once per open (see the
/// module's docs). `/readyz` shows it as `store_check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StoreCheck {
    /// Opened without the full read; nothing has read it yet.
    Pending,
    /// Being read: `entries` so far.
    Running { entries: u64 },
    /// Read whole without an error.
    Done { entries: u64, ms: u64 },
    /// The read met damage (or an I/O error): the store is reopened,
    /// checked again, and moved aside if the damage is still there.
    Failed { error: String },
}

/// How long [`Store::close`] waits for sled to let go of the database.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// Entries read between two looks at whether the check should stop.
const CHECK_STRIDE: u64 = 4096;

/// What opening a store does with one it cannot read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WhenDamaged {
    /// Move it aside and start afresh (the read models rebuild).
    MoveAside,
    /// Fail, touching nothing (inspection: `crm-ledger digest`).
    Fail,
}

impl Store {
    /// Opens the store in `dir`; one that is damaged is moved aside and
    /// started afresh (the projections rebuild from the log). An I/O error
    /// (a full disk, a lock held by another process) is returned as is:
    /// the store may be perfectly good.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, Error> {
        Store::open_with(dir, cache_bytes, WhenDamaged::MoveAside)
    }

    /// Opens an existing store to read it, changing nothing whatever it
    /// finds: a store that is missing or damaged is an error.
    pub fn open_existing(dir: &Path, cache_bytes: u64) -> Result<Store, Error> {
        if !dir.join("conf").is_file() {
            return Err(Error::Other(format!(
                "{} holds no read models",
                dir.display()
            )));
        }
        Store::open_with(dir, cache_bytes, WhenDamaged::Fail)
    }

    /// Opens the store in `dir` without reading it whole: the caller runs
    /// [`Store::run_check`] later ([`crate::Projector::start`] does, in the
    /// background). A store that sled itself cannot open is moved aside
    /// and started afresh, as by [`Store::open`].
    pub fn open_checking_later(dir: &Path, cache_bytes: u64) -> Result<Store, Error> {
        // Pending, or done if it was moved aside (a fresh store is empty).
        let (db, check) = open_db(dir, cache_bytes, WhenDamaged::MoveAside, false)?;
        Ok(Store::with_db(db, dir, cache_bytes, check))
    }

    fn open_with(dir: &Path, cache_bytes: u64, damaged: WhenDamaged) -> Result<Store, Error> {
        let (db, check) = open_db(dir, cache_bytes, damaged, true)?;
        Ok(Store::with_db(db, dir, cache_bytes, check))
    }

    fn with_db(db: sled::Db, dir: &Path, cache_bytes: u64, check: StoreCheck) -> Store {
        Store {
            inner: Arc::new(Inner {
                db: RwLock::new(Some(db)),
                dir: dir.to_path_buf(),
                cache_bytes,
                injected_failures: AtomicU32::new(0),
                injected_midway: AtomicU32::new(0),
                injected_stuck_flushes: AtomicBool::new(false),
                check: Mutex::new(check),
                injected_check_failure: AtomicBool::new(false),
                reopens: AtomicU64::new(0),
                failed: AtomicBool::new(false),
                stuck: AtomicBool::new(false),
                abandoned: AtomicBool::new(false),
            }),
        }
    }

    /// How many times the database was reopened since this store was
    /// opened (after a failed commit, or damage found by the check).
    pub fn reopens(&self) -> u64 {
        self.inner.reopens.load(Ordering::SeqCst)
    }

    /// Where the check of the open database stands.
    pub fn check(&self) -> StoreCheck {
        self.inner.check.lock().expect("lock").clone()
    }

    /// Moves the check from `Pending` or `Running` to `next`; a check that
    /// ended (or a reopen, which checks before it returns) is left alone.
    fn advance_check(&self, next: StoreCheck) -> bool {
        let mut check = self.inner.check.lock().expect("lock");
        let open = matches!(*check, StoreCheck::Pending | StoreCheck::Running { .. });
        if open {
            *check = next;
        }
        open
    }

    /// Reads every key and value of every tree once, if the open database
    /// was not read whole yet (see the module's docs), updating
    /// [`Store::check`] as it goes. Returns the error when it meets damage
    /// (the caller reopens the store: [`Store::close`], [`Store::reopen`]).
    /// Stops early, changing nothing, when `stop` is set or the store is
    /// closed (a reopen checks for itself).
    pub fn run_check(&self, stop: &AtomicBool) -> Result<(), Error> {
        if self.check() != StoreCheck::Pending {
            return Ok(());
        }
        let started = Instant::now();
        let closed =
            || stop.load(Ordering::SeqCst) || self.inner.db.read().expect("lock").is_none();
        let Ok(db) = self.db() else {
            return Ok(());
        };
        let result = read_whole(&db, |entries| {
            !closed() && self.advance_check(StoreCheck::Running { entries })
        })
        .map_err(Error::from)
        .and_then(|read| {
            if self
                .inner
                .injected_check_failure
                .swap(false, Ordering::SeqCst)
            {
                return Err(Error::Other(
                    "injected damage found by the store check (test)".into(),
                ));
            }
            Ok(read)
        });
        drop(db);
        match result {
            Ok(Some(entries)) => {
                let ms = started.elapsed().as_millis() as u64;
                if self.advance_check(StoreCheck::Done { entries, ms }) {
                    tracing::info!(
                        entries,
                        ms,
                        "read-model store checked: every page read without an error"
                    );
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) if closed() => {
                tracing::debug!(error = %e, "store check stopped");
                Ok(())
            }
            Err(e) => {
                self.advance_check(StoreCheck::Failed {
                    error: e.to_string(),
                });
                Err(e)
            }
        }
    }

    /// Makes the next [`Store::run_check`] fail as if it had met damage
    /// (tests of the recovery).
    #[doc(hidden)]
    pub fn inject_check_failure(&self) {
        self.inner
            .injected_check_failure
            .store(true, Ordering::SeqCst);
    }

    /// The database, unless it is closed for a reopen.
    fn db(&self) -> Result<sled::Db, Error> {
        self.inner.db.read().expect("lock").clone().ok_or_else(|| {
            Error::Unavailable(format!(
                "the read-model store {} is being reopened",
                self.inner.dir.display()
            ))
        })
    }

    /// Lets go of the database (after sled failed); every clone of the
    /// store answers [`Error::Unavailable`] until [`Store::reopen`]. Trees
    /// taken from it keep it open until they are dropped too.
    ///
    /// Blocks for up to [`CLOSE_LIMIT`]. Dropping a sled database flushes
    /// it, and after an I/O error sled's flush can wait forever for a write
    /// that failed (seen after a full disk). The database is therefore
    /// dropped on a thread of its own: if that has not finished in time,
    /// the database is abandoned to it, and the next [`Store::reopen`]
    /// starts a fresh store (the read models rebuild from the log) instead
    /// of waiting for a lock that is never let go.
    pub fn close(&self) {
        let Some(db) = self.inner.db.write().expect("lock").take() else {
            return;
        };
        let stuck = self.injected_stuck_flush();
        let (dropped_tx, dropped) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("store-close".into())
            .spawn(move || {
                if stuck {
                    // As sled's hung flush: the database is never let go.
                    let _held = (db, dropped_tx);
                    loop {
                        std::thread::park();
                    }
                }
                drop(db);
                let _ = dropped_tx.send(());
            });
        if let Err(e) = spawned {
            // The closure, and the database with it, was dropped here.
            tracing::warn!(error = %e, "could not start a thread to close the read-model store; closed it in place");
            return;
        }
        if dropped.recv_timeout(CLOSE_LIMIT).is_err() {
            self.inner.abandoned.store(true, Ordering::SeqCst);
            tracing::error!(
                store = %self.inner.dir.display(),
                limit_s = CLOSE_LIMIT.as_secs(),
                "sled did not let go of the read-model store in time after an I/O error (its flush waits for a write that failed); the store is abandoned and the read models are rebuilt from the log into a fresh one (the abandoned files' disk space returns when the process restarts)"
            );
        }
    }

    /// Says that a commit into the open database failed: until one
    /// succeeds or it is reopened, stopping runners and a stopping server
    /// do not flush it
    /// (see [`Store::has_failed`]).
    pub fn mark_failed(&self) {
        self.inner.failed.store(true, Ordering::SeqCst);
    }

    /// Says that a commit into the open database succeeded: sled is not
    /// refusing everything (a failed write of its own, e.g. one that met a
    /// full disk for a moment, is retried by the runner and passes once
    /// space is back), so flushing it is safe again.
    pub fn mark_healthy(&self) {
        if self.inner.failed.load(Ordering::Relaxed) {
            self.inner.failed.store(false, Ordering::SeqCst);
        }
    }

    /// Says that a flush of the open database did not return in time:
    /// sled waits for a write that failed, and nothing reaches the disk
    /// any more although commits still succeed (in memory). Until it is
    /// reopened, [`Store::has_failed`] is true.
    pub fn mark_stuck(&self) {
        self.inner.stuck.store(true, Ordering::SeqCst);
    }

    /// Whether the last commit into the open database failed, or a flush
    /// of it did not return in time ([`Store::mark_stuck`]).
    /// sled refuses everything after an I/O error, and its flush can then
    /// wait forever for the write that failed: such a database is not
    /// flushed, and whatever it did not write is applied again from the log.
    pub fn has_failed(&self) -> bool {
        self.inner.failed.load(Ordering::SeqCst) || self.inner.stuck.load(Ordering::SeqCst)
    }

    /// Opens the database again after [`Store::close`]. Fails while
    /// anything still holds the old one (sled's file lock), or while its
    /// I/O error lasts; the caller retries.
    pub fn reopen(&self) -> Result<(), Error> {
        let mut db = self.inner.db.write().expect("lock");
        if db.is_none() {
            if self.inner.abandoned.load(Ordering::SeqCst) {
                set_aside_abandoned(&self.inner.dir)?;
                self.inner.abandoned.store(false, Ordering::SeqCst);
            }
            let (opened, check) = open_db(
                &self.inner.dir,
                self.inner.cache_bytes,
                WhenDamaged::MoveAside,
                true,
            )?;
            *db = Some(opened);
            self.inner.failed.store(false, Ordering::SeqCst);
            self.inner.stuck.store(false, Ordering::SeqCst);
            *self.inner.check.lock().expect("lock") = check;
            self.inner.reopens.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// The tree of a projection (created empty when new).
    pub fn tree(&self, name: &str) -> Result<sled::Tree, Error> {
        Ok(self.db()?.open_tree(format!("projection/{name}"))?)
    }

    /// Removes a tree.
    pub fn drop_tree(&self, name: &str) -> Result<(), Error> {
        self.db()?.drop_tree(format!("projection/{name}"))?;
        Ok(())
    }

    /// The trees of projection `name`: its live one and any `name@N`.
    pub fn tree_names(&self, name: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for t in self.db()?.tree_names() {
            let t = String::from_utf8_lossy(&t).into_owned();
            if let Some(rest) = t.strip_prefix("projection/") {
                if rest == name || rest.strip_prefix(name).is_some_and(|r| r.starts_with('@')) {
                    out.push(rest.to_string());
                }
            }
        }
        Ok(out)
    }

    /// The name of the tree that serves projection `name` now: the registry
    /// says which (an online rebuild swaps in `name@N`); `name` by default.
    pub fn live_tree_name(&self, name: &str) -> Result<String, Error> {
        let registry = self.meta_tree(REGISTRY)?;
        Ok(match registry.get(format!("live/{name}"))? {
            Some(v) => String::from_utf8_lossy(&v).into_owned(),
            None => name.to_string(),
        })
    }

    /// The tree that serves projection `name` now.
    pub fn live_tree(&self, name: &str) -> Result<sled::Tree, Error> {
        self.tree(&self.live_tree_name(name)?)
    }

    /// Makes `tree` the one that serves projection `name`.
    pub fn set_live_tree(&self, name: &str, tree: &str) -> Result<(), Error> {
        self.meta_tree(REGISTRY)?
            .insert(format!("live/{name}"), tree.as_bytes())?;
        Ok(())
    }

    /// Drops every tree of projection `name` and forgets which was live: the
    /// next start builds it afresh under its plain name.
    pub fn reset(&self, name: &str) -> Result<(), Error> {
        for t in self.tree_names(name)? {
            self.drop_tree(&t)?;
        }
        self.meta_tree(REGISTRY)?.remove(format!("live/{name}"))?;
        Ok(())
    }

    /// A runtime tree that is not a projection's (the registry).
    pub fn meta_tree(&self, name: &str) -> Result<sled::Tree, Error> {
        Ok(self.db()?.open_tree(format!("meta/{name}"))?)
    }

    /// Flushes to disk without blocking the runtime (nothing to do while
    /// the store is closed).
    pub async fn flush_async(&self) -> Result<(), Error> {
        if let Ok(db) = self.db() {
            db.flush_async().await?;
        }
        Ok(())
    }

    /// A flush, as [`Store::flush_async`], that never returns while
    /// [`Store::inject_stuck_flushes`] is on (tests).
    pub async fn flush_probe(&self) -> Result<(), Error> {
        if self.injected_stuck_flush() {
            std::future::pending::<()>().await;
        }
        self.flush_async().await
    }

    /// Flushes to disk (sled's flush; the log remains the truth). Nothing
    /// to do while the store is closed.
    pub fn flush(&self) -> Result<(), Error> {
        if let Ok(db) = self.db() {
            db.flush()?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Makes the next `n` batch commits fail as a failed sled would (tests
    /// of the recovery; a full disk cannot be made on demand everywhere).
    #[doc(hidden)]
    pub fn inject_commit_failures(&self, n: u32) {
        self.inner.injected_failures.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` batch commits fail halfway through their writes,
    /// after the batch was written ahead, as a crash or a failing disk
    /// would leave them (tests of the recovery).
    #[doc(hidden)]
    pub fn inject_commit_failures_midway(&self, n: u32) {
        self.inner.injected_midway.store(n, Ordering::SeqCst);
    }

    /// Makes the flush of every runner that stops wait forever, as sled's
    /// flush was seen to after a full disk (tests of the bound on it).
    #[doc(hidden)]
    pub fn inject_stuck_flushes(&self, stuck: bool) {
        self.inner
            .injected_stuck_flushes
            .store(stuck, Ordering::SeqCst);
    }

    /// Whether flushes are to wait forever (see
    /// [`Store::inject_stuck_flushes`]).
    pub(crate) fn injected_stuck_flush(&self) -> bool {
        self.inner.injected_stuck_flushes.load(Ordering::SeqCst)
    }

    /// Whether this commit is to fail on purpose (see
    /// [`Store::inject_commit_failures`]).
    pub(crate) fn injected_failure(&self) -> Option<Error> {
        take_one(&self.inner.injected_failures)
            .then(|| Error::Other("injected store failure (test)".into()))
    }

    /// Whether this commit is to fail halfway (see
    /// [`Store::inject_commit_failures_midway`]).
    pub(crate) fn injected_midway_failure(&self) -> bool {
        take_one(&self.inner.injected_midway)
    }
}

/// Takes one from a counter of injected failures; false when none is left.
fn take_one(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Opens sled's database; with `check`, reads it whole before returning
/// (see the module's docs), and says so in the [`StoreCheck`] returned.
fn open_db(
    dir: &Path,
    cache_bytes: u64,
    damaged: WhenDamaged,
    check: bool,
) -> Result<(sled::Db, StoreCheck), Error> {
    let config = || sled::Config::new().path(dir).cache_capacity(cache_bytes);
    let opened = config().open().and_then(|db| {
        let check = if check {
            verify(&db)?
        } else {
            StoreCheck::Pending
        };
        Ok((db, check))
    });
    match opened {
        Ok(db) => Ok(db),
        // A lock held elsewhere, a full disk, a failing device: the store
        // may be perfectly good; moving it aside would throw it away.
        Err(e) if !sled_damage(&e) => Err(e.into()),
        Err(e) if damaged == WhenDamaged::Fail => Err(Error::Other(format!(
            "the read models in {} are damaged: {e}",
            dir.display()
        ))),
        Err(e) => {
            let aside = dir.with_extension(format!(
                "damaged-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S")
            ));
            // One copy is kept, for a look at the damage: the older ones go.
            remove_copies_moved_aside(dir);
            // The log is the truth: a copy is kept only if the disk still
            // has room to rebuild a store as large. Otherwise (a full disk
            // can itself leave a store that reads as damaged, e.g. an empty
            // snapshot file) the copies would fill the disk, and every
            // rebuild would meet a full disk and be moved aside in turn.
            let size = dir_size(dir);
            let room = dir
                .parent()
                .and_then(|p| fs4::available_space(p).ok())
                .unwrap_or(u64::MAX);
            if room < size {
                tracing::warn!(error = %e, store = %dir.display(), bytes = size, free_bytes = room,
                    "read-model store unreadable: deleting it (no room to keep a copy) and rebuilding from the log");
                std::fs::remove_dir_all(dir)?;
            } else {
                tracing::warn!(error = %e, store = %dir.display(), moved_to = %aside.display(),
                    "read-model store unreadable: moving it aside and rebuilding from the log");
                std::fs::rename(dir, &aside)?;
            }
            let fresh = StoreCheck::Done { entries: 0, ms: 0 };
            Ok((config().open()?, fresh))
        }
    }
}

/// Moves the store at `dir` out of the way after [`Store::close`] abandoned
/// it to a stuck thread (which may hold its files, and sled's lock on them,
/// until the process ends), then deletes it: the read models are rebuilt
/// from the log in a fresh store at `dir`.
fn set_aside_abandoned(dir: &Path) -> Result<(), Error> {
    if !dir.exists() {
        return Ok(());
    }
    let aside = dir.with_extension(format!(
        "abandoned-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
    ));
    std::fs::rename(dir, &aside)?;
    match std::fs::remove_dir_all(&aside) {
        Ok(()) => tracing::warn!(store = %dir.display(),
            "deleted the abandoned read-model store; the read models are rebuilt from the log"),
        Err(error) => tracing::warn!(store = %dir.display(), moved_to = %aside.display(), %error,
            "could not delete the abandoned read-model store; the read models are rebuilt from the log"),
    }
    Ok(())
}

/// Deletes the copies of the store at `dir` moved aside as damaged
/// (`STORE.damaged-TIME`, siblings of `dir`). Best effort: a copy that
/// cannot be deleted is left, and said so.
fn remove_copies_moved_aside(dir: &Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    let prefix = format!("{}.damaged-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(copy = %path.display(), "deleted an older copy of a damaged read-model store")
                }
                Err(error) => {
                    tracing::warn!(copy = %path.display(), %error, "could not delete an older copy of a damaged read-model store")
                }
            }
        }
    }
}

/// Bytes in the files under `dir` (what is left unread counts nothing).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Reads the store whole before it is used.
fn verify(db: &sled::Db) -> Result<StoreCheck, sled::Error> {
    let started = Instant::now();
    let entries = read_whole(db, |_| true)?.expect("never stopped");
    let ms = started.elapsed().as_millis() as u64;
    tracing::debug!(entries, ms, "read-model store checked");
    Ok(StoreCheck::Done { entries, ms })
}

/// Reads every key and value of every tree (sled verifies each page's CRC
/// as it reads it); returns how many, or `None` when `go_on` (asked with
/// the count so far every [`CHECK_STRIDE`] entries) said to stop.
fn read_whole(
    db: &sled::Db,
    mut go_on: impl FnMut(u64) -> bool,
) -> Result<Option<u64>, sled::Error> {
    let mut entries = 0u64;
    for name in db.tree_names() {
        // Dropped since the list was taken (an online rebuild's old tree):
        // opening it would create it again.
        if !db.tree_names().contains(&name) {
            continue;
        }
        for item in db.open_tree(&name)?.iter() {
            item?;
            entries += 1;
            if entries.is_multiple_of(CHECK_STRIDE) && !go_on(entries) {
                return Ok(None);
            }
        }
    }
    Ok(Some(entries))
}

/// A projection tree as a [`KvRead`].
#[derive(Clone)]
pub struct TreeKv(pub sled::Tree);

fn store_err(e: sled::Error) -> StoreError {
    StoreError(e.to_string())
}

impl KvRead for TreeKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).map_err(store_err)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<crm_projection::Entries, StoreError> {
        let iter = match after {
            Some(a) if a >= prefix => {
                let mut start = a.to_vec();
                start.push(0);
                self.0.range(start..)
            }
            _ => self.0.range(prefix.to_vec()..),
        };
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(store_err)?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<crm_projection::Entries, StoreError> {
        let Some(range) = crm_projection::range_before(prefix, before) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in self.0.range::<Vec<u8>, _>(range).rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(store_err)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

/// What the runtime keeps about a projection tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format: Option<u32>,
    pub checkpoint: Checkpoint,
    pub applied: u64,
    pub last_event_at: Option<String>,
}

/// Reads a tree's metadata; `Err` when it is unreadable (damaged).
pub fn read_meta(tree: &sled::Tree) -> Result<Meta, String> {
    let get = |k: &[u8]| tree.get(k).map_err(|e| e.to_string());
    let format = match get(META_FORMAT)? {
        None => None,
        Some(v) => Some(u32::from_le_bytes(
            v.as_ref().try_into().map_err(|_| "format key damaged")?,
        )),
    };
    let checkpoint = match get(META_CHECKPOINT)? {
        None => Checkpoint::default(),
        Some(v) => serde_json::from_slice(&v).map_err(|e| format!("checkpoint damaged: {e}"))?,
    };
    let applied = match get(META_APPLIED)? {
        None => 0,
        Some(v) => u64::from_le_bytes(v.as_ref().try_into().map_err(|_| "applied key damaged")?),
    };
    let last_event_at = match get(META_LAST_EVENT_AT)? {
        None => None,
        Some(v) => Some(String::from_utf8(v.to_vec()).map_err(|_| "last_event_at damaged")?),
    };
    Ok(Meta {
        format,
        checkpoint,
        applied,
        last_event_at,
    })
}

/// A digest of a projection's content: every key but the runtime's metadata
/// (positions and counters are not part of it), so equal histories give
/// equal digests whatever the delivery order.
pub fn digest(kv: &dyn KvRead) -> Result<String, StoreError> {
    let mut h = blake3::Hasher::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan(b"", after.as_deref(), 4096)?;
        let done = page.len() < 4096;
        for (k, v) in &page {
            if k.starts_with(META_PREFIX)
                || k.starts_with(SEEN_PREFIX)
                || k.starts_with(crate::commit::REDO_PREFIX)
            {
                continue;
            }
            h.update(&(k.len() as u64).to_le_bytes());
            h.update(k);
            h.update(&(v.len() as u64).to_le_bytes());
            h.update(v);
        }
        after = page.last().map(|(k, _)| k.clone());
        if done {
            break;
        }
    }
    Ok(h.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store check runs beside an online rebuild, which drops trees: a
    /// tree dropped after the check listed the trees is skipped, not
    /// created again by opening it.
    /// A store that reads as damaged is moved aside as one copy: an older
    /// copy goes. (A disk with no room for the copy: tests/e2e/disk_full.rs.)
    #[test]
    fn a_damaged_store_is_moved_aside_and_only_the_newest_copy_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("store");
        {
            let store = Store::open(&dir, 1 << 20).unwrap();
            store.tree("p").unwrap().insert("k", "v").unwrap();
            store.flush().unwrap();
        }
        // An empty snapshot file, as a full disk leaves one.
        std::fs::write(dir.join("snap.FFFFFFFFFFFFFFFF"), b"").unwrap();
        let older = d.path().join("store.damaged-20200101T000000");
        std::fs::create_dir(&older).unwrap();
        std::fs::write(older.join("db"), b"an older copy").unwrap();

        let store = Store::open(&dir, 1 << 20).unwrap();
        assert!(
            store.tree("p").unwrap().get("k").unwrap().is_none(),
            "a fresh store"
        );
        let copies: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("store.damaged-"))
            .collect();
        assert_eq!(copies.len(), 1, "{copies:?}");
        assert_ne!(
            copies[0], "store.damaged-20200101T000000",
            "the older copy was kept"
        );
        assert!(
            d.path().join(&copies[0]).join("db").is_file(),
            "the copy is the store"
        );
    }

    #[test]
    fn the_check_does_not_bring_back_a_tree_dropped_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let first = db.open_tree("projection/a").unwrap();
        for i in 0..2 * CHECK_STRIDE {
            first.insert(i.to_be_bytes(), &b"x"[..]).unwrap();
        }
        db.open_tree("projection/b")
            .unwrap()
            .insert(b"k", &b"v"[..])
            .unwrap();
        let names = db.tree_names();
        let (a, b) = (
            names.iter().position(|n| &n[..] == b"projection/a"),
            names.iter().position(|n| &n[..] == b"projection/b"),
        );
        assert!(a < b, "the check reads a before b: {names:?}");
        let mut dropped = false;
        let entries = read_whole(&db, |_| {
            if !dropped {
                dropped = db.drop_tree("projection/b").unwrap();
            }
            true
        })
        .unwrap()
        .unwrap();
        assert!(dropped);
        assert!(
            !db.tree_names().iter().any(|n| &n[..] == b"projection/b"),
            "a tree dropped during the check stays dropped"
        );
        assert!(entries >= 2 * CHECK_STRIDE, "{entries}");
    }
}
