//! The runtime over a real embedded log and sled: checkpoint with state,
//! dead letters, rebuild of damaged or old-format stores.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::note;
use crm_events::{Event, EventData};
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::{Append, AppendOutcome, Log, Token};
use crm_projection::{get_json, ApplyError, KvRead, Projection, Tx};
use crm_projector::{wait_for, Projector, RunnerConfig, Status, Store, StoreCheck};

/// Counts events per customer; fails on a `case.note_added` whose text is
/// "fail", panics on "panic".
struct Counter {
    version: u32,
}

static PANICS_ENABLED: AtomicBool = AtomicBool::new(true);

impl Projection for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    fn format_version(&self) -> u32 {
        self.version
    }
    fn apply(&self, tx: &mut Tx<'_>, e: &Event) -> Result<(), ApplyError> {
        if let EventData::CaseNoteAdded(n) = &e.data {
            if n.text == "fail" {
                tx.put("junk", "must be discarded");
                return Err(ApplyError("cannot apply this note".into()));
            }
            if n.text == "panic" && PANICS_ENABLED.load(Ordering::SeqCst) {
                panic!("boom");
            }
        }
        let key = format!("n/{}", e.case_id.as_deref().unwrap_or("-"));
        let n: u64 = tx.get_json(key.as_bytes())?.unwrap_or(0);
        tx.put_json(key, &(n + 1));
        Ok(())
    }
}

async fn publish(log: &dyn Log, batch: Vec<Append>) -> Token {
    let mut t = Token::default();
    for o in log.append(batch).await.unwrap() {
        if let AppendOutcome::Appended(p) = o {
            t.include(p);
        }
    }
    t
}

/// The projector with the counter projection of format `version`.
fn start(store: &Store, log: &Arc<dyn Log>, version: u32) -> Projector {
    Projector::start(
        store,
        log.clone(),
        vec![Arc::new(Counter { version })],
        RunnerConfig::default(),
    )
    .unwrap()
}

/// An embedded log and a read-model store in `dir`.
fn log_and_store(dir: &std::path::Path) -> (Arc<dyn Log>, Store) {
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.join("log"))).unwrap());
    let store = Store::open(&dir.join("store"), 8 << 20).unwrap();
    (log, store)
}

/// Adds the positions of `later` to `token`.
fn include(token: &mut Token, later: Token) {
    for (partition, offset) in later.0 {
        token.include(crm_log::Position { partition, offset });
    }
}

fn count(kv: &dyn KvRead, case: &str) -> u64 {
    get_json(kv, format!("n/{case}").as_bytes())
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_resumes_after_restart_and_dead_letters_failures() {
    let d = tempfile::tempdir().unwrap();
    let (log, store) = log_and_store(d.path());
    let projector = start(&store, &log, 1);
    let mut batch: Vec<_> = (0..50)
        .map(|i| note(&format!("e{i}"), "k1", "ok"))
        .collect();
    batch.push(note("bad", "k1", "fail"));
    batch.push(note("worse", "k1", "panic"));
    let token = publish(&*log, batch).await;
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(10)).await);
    let h = projector.handle("counter").unwrap().clone();
    assert_eq!(count(&h.kv(), "k1"), 50);
    assert!(
        h.kv().get(b"junk").unwrap().is_none(),
        "a failed event's changes are discarded"
    );
    let dls = h
        .kv()
        .scan(crm_projection::DEAD_LETTER_PREFIX, None, 10)
        .unwrap();
    assert_eq!(dls.len(), 2);
    let text = String::from_utf8(
        dls.iter()
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
            .concat(),
    )
    .unwrap();
    assert!(
        text.contains("cannot apply this note") && text.contains("projection panicked: boom"),
        "{text}"
    );
    assert_eq!(h.status().events_applied, 52);
    projector.stop().await;

    // Restart: nothing re-applied, new events continue from the checkpoint.
    let projector = start(&store, &log, 1);
    let token = publish(&*log, vec![note("e-new", "k1", "ok")]).await;
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(10)).await);
    assert_eq!(count(&projector.handle("counter").unwrap().kv(), "k1"), 51);
    projector.stop().await;

    // A new format version: the tree is rebuilt from the log, same answer.
    PANICS_ENABLED.store(false, Ordering::SeqCst);
    let projector = start(&store, &log, 2);
    let end = log.end().await.unwrap();
    let mut all = Token::default();
    all.0.insert(0, end.next(0) - 1);
    assert!(wait_for(&projector.handles, &all, Duration::from_secs(10)).await);
    assert_eq!(
        count(&projector.handle("counter").unwrap().kv(), "k1"),
        52,
        "rebuilt (the panic note now applies)"
    );
    projector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_metadata_rebuilds_the_tree() {
    let d = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(d.path().join("log"))).unwrap());
    publish(
        &*log,
        (0..10)
            .map(|i| note(&format!("e{i}"), "k2", "ok"))
            .collect(),
    )
    .await;
    let store = Store::open(&d.path().join("store"), 8 << 20).unwrap();
    {
        let projector = start(&store, &log, 1);
        let mut t = Token::default();
        t.0.insert(0, 9);
        assert!(wait_for(&projector.handles, &t, Duration::from_secs(10)).await);
        projector.stop().await;
    }
    let tree = store.tree("counter").unwrap();
    tree.insert(b"\x00meta/checkpoint", &b"{garbage"[..])
        .unwrap();
    tree.insert(b"n/k2", &b"999"[..]).unwrap();
    let projector = start(&store, &log, 1);
    let mut t = Token::default();
    t.0.insert(0, 9);
    assert!(wait_for(&projector.handles, &t, Duration::from_secs(10)).await);
    assert_eq!(count(&projector.handle("counter").unwrap().kv(), "k2"), 10);
    projector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_times_out_on_a_position_not_yet_written() {
    let d = tempfile::tempdir().unwrap();
    let (log, store) = log_and_store(d.path());
    let projector = start(&store, &log, 1);
    let t: Token = "0:5".parse().unwrap();
    assert!(!wait_for(&projector.handles, &t, Duration::from_millis(200)).await);
    projector.stop().await;
}

/// sled's flush was seen to wait forever after a full disk (a write it
/// waited for had failed). A runner stopping (for the store's reopen, or at
/// shutdown) flushes its tree: that flush is bounded, or the reopen never
/// happened and the read models stayed failed for good (CI, session 14).
/// Nothing is lost by giving up on it: each batch was committed with its
/// checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_that_never_returns_does_not_keep_a_runner_from_stopping() {
    let d = tempfile::tempdir().unwrap();
    let (log, store) = log_and_store(d.path());
    let projector = start(&store, &log, 1);
    let token = publish(&*log, vec![note("a", "k", "ok"), note("b", "k", "ok")]).await;
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(10)).await);
    store.inject_stuck_flushes(true);
    let started = std::time::Instant::now();
    tokio::time::timeout(
        crm_projector::STOP_FLUSH_LIMIT + Duration::from_secs(20),
        projector.stop(),
    )
    .await
    .expect("the projector stops although the flush never returns");
    assert!(
        started.elapsed() >= crm_projector::STOP_FLUSH_LIMIT,
        "the stuck flush was waited for, up to the limit"
    );
    store.inject_stuck_flushes(false);
    // Started again on the same store: what was committed is there.
    let projector = start(&store, &log, 1);
    let h = projector.handle("counter").unwrap();
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(10)).await);
    assert_eq!(count(&h.kv(), "k"), 2);
    projector.stop().await;
}

/// After an I/O error, dropping a sled database can hang in its flush too,
/// holding the database's files and sled's lock on them: the store would
/// never reopen. It is abandoned instead, and the read models are rebuilt
/// from the log into a fresh store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_sled_will_not_let_go_of_is_abandoned_and_rebuilt_from_the_log() {
    let d = tempfile::tempdir().unwrap();
    let (log, store) = log_and_store(d.path());
    let projector = start(&store, &log, 1);
    let mut token = publish(&*log, vec![note("a", "k", "ok"), note("b", "k", "ok")]).await;
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(10)).await);
    store.inject_stuck_flushes(true);
    store.inject_commit_failures(1);
    let later = publish(&*log, vec![note("c", "k", "ok")]).await;
    include(&mut token, later);
    let s = assert_resumed(&projector, &token, "k", 3).await;
    assert_eq!(s.events_applied, 3, "rebuilt from the start of the log");
    assert!(store.reopens() > 0);
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("store."))
        .collect();
    assert!(left.is_empty(), "the abandoned store was deleted: {left:?}");
    store.inject_stuck_flushes(false);
    projector.stop().await;
}

/// sled can be left waiting forever for a write that failed while commits
/// still succeed (in memory): the read models look live but nothing
/// reaches the disk. The projector's flush probe notices, and the store is
/// reopened (here abandoned, as the stuck flush keeps it) and rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_flush_is_stuck_is_noticed_and_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let (log, store) = log_and_store(d.path());
    let config = RunnerConfig {
        flush_probe: Some((Duration::from_millis(100), Duration::from_millis(500))),
        ..RunnerConfig::default()
    };
    let projector = Projector::start(
        &store,
        log.clone(),
        vec![Arc::new(Counter { version: 1 })],
        config,
    )
    .unwrap();
    let mut token = publish(&*log, vec![note("a", "k", "ok"), note("b", "k", "ok")]).await;
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(10)).await);
    store.inject_stuck_flushes(true);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store.reopens() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a store whose flush never returns was never reopened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.inject_stuck_flushes(false);
    let later = publish(&*log, vec![note("c", "k", "ok")]).await;
    include(&mut token, later);
    let s = assert_resumed(&projector, &token, "k", 3).await;
    assert_eq!(s.events_applied, 3, "rebuilt from the start of the log");
    projector.stop().await;
}

/// sled refuses everything after an I/O error until it is reopened: the
/// projector reopens the store by itself and the projections resume from
/// their checkpoints, neither losing nor doubling an event. (The full disk
/// itself is tested end to end in tests/e2e/disk_full.rs, where a tmpfs can
/// be mounted; here the commit failure is injected.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_is_reopened_and_the_projections_resume() {
    let d = tempfile::tempdir().unwrap();
    let (log, store) = log_and_store(d.path());
    let projector = start(&store, &log, 1);
    let h = projector.handle("counter").unwrap().clone();
    let token = publish(&*log, vec![note("before", "k", "ok")]).await;
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(10)).await);
    // A query holds the tree while the store fails: the reopen must wait
    // for it, not fail for good.
    let held = h.kv();

    store.inject_commit_failures(3);
    let mut token = publish(&*log, vec![note("during-1", "k", "ok")]).await;
    // Failed, then detached: queries answer "unavailable".
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let unavailable = loop {
        if let Err(e) = h.kv().get(b"n/k") {
            break e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failed store was never let go: {:?}",
            h.status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(unavailable.is_unavailable(), "{unavailable}");
    assert_eq!(h.status().status, crm_projector::State::Failed);
    let later = publish(&*log, vec![note("during-2", "k", "ok")]).await;
    include(&mut token, later);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);

    // Reopened (after the injected failures are spent) and caught up.
    let s = assert_resumed(&projector, &token, "k", 3).await;
    assert_eq!(s.events_applied, 3);
    projector.stop().await;
}

/// After the store was reopened: `token` applied, the counter of `case` at
/// `n` (every event applied exactly once), the projection live again with
/// no error. Returns its status.
async fn assert_resumed(projector: &Projector, token: &Token, case: &str, n: u64) -> Status {
    let h = projector.handle("counter").unwrap();
    assert!(
        wait_for(&projector.handles, token, Duration::from_secs(30)).await,
        "not caught up after the store was reopened: {:?}",
        h.status()
    );
    assert_eq!(count(&h.kv(), case), n, "every event applied exactly once");
    let s = h.status();
    assert_eq!(
        (s.status.clone(), s.error.clone()),
        (crm_projector::State::Live, None),
        "live again after the reopen: {s:?}"
    );
    s
}

/// Waits until the store check has ended, and returns how.
async fn check_ended(store: &Store) -> StoreCheck {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let check = store.check();
        if let StoreCheck::Done { .. } = check {
            return check;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store check did not end: {check:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A server's store is opened without being read whole (that takes 10 s to
/// a minute for millions of events, and nothing could be published
/// meanwhile); the projector reads it in the background. Damage the read
/// finds (injected here; real damage in tests/e2e/corruption.rs) reopens
/// the store, which is checked before it is used, and the projections go on
/// from their checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_checked_in_the_background_and_damage_found_reopens_it() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("store");
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(d.path().join("log"))).unwrap());
    let token = publish(
        &*log,
        (0..10)
            .map(|i| note(&format!("e{i}"), "k3", "ok"))
            .collect(),
    )
    .await;
    {
        let store = Store::open(&dir, 8 << 20).unwrap();
        assert!(
            matches!(store.check(), StoreCheck::Done { .. }),
            "Store::open reads the store before it returns"
        );
        let projector = start(&store, &log, 1);
        assert!(wait_for(&projector.handles, &token, Duration::from_secs(10)).await);
        projector.stop().await;
    }

    // Opened without the read: pending until the projector runs it.
    let store = Store::open_checking_later(&dir, 8 << 20).unwrap();
    assert_eq!(store.check(), StoreCheck::Pending);
    let projector = start(&store, &log, 1);
    let StoreCheck::Done { entries, .. } = check_ended(&store).await else {
        unreachable!()
    };
    assert!(entries >= 5, "the trees were read: {entries} entries");
    assert_eq!(store.reopens(), 0, "nothing found, nothing reopened");
    assert_eq!(count(&projector.handle("counter").unwrap().kv(), "k3"), 10);
    projector.stop().await;
    drop(projector);
    drop(store);

    // The read meets damage: the store is reopened (and checked then).
    let store = Store::open_checking_later(&dir, 8 << 20).unwrap();
    store.inject_check_failure();
    let projector = start(&store, &log, 1);
    let h = projector.handle("counter").unwrap().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.reopens() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "damage found but the store never reopened: {:?} {:?}",
            store.check(),
            h.status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(check_ended(&store).await, StoreCheck::Done { .. }));
    let more = publish(&*log, vec![note("after", "k3", "ok")]).await;
    assert_resumed(&projector, &more, "k3", 11).await;
    projector.stop().await;
}

/// Ten events on ten cases, published before any projection runs, so that
/// the first batch holds them all and its commit writes ten counters.
async fn ten_cases(log: &dyn Log) -> Token {
    publish(
        log,
        (0..10)
            .map(|i| note(&format!("m{i}"), &format!("c{i}"), "ok"))
            .collect(),
    )
    .await
}

/// A fresh log holding [`ten_cases`], and an empty store beside it.
async fn ten_cases_logged() -> (tempfile::TempDir, Arc<dyn Log>, Store, Token) {
    let d = tempfile::tempdir().unwrap();
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(d.path().join("log"))).unwrap());
    let token = ten_cases(&*log).await;
    let store = Store::open(&d.path().join("store"), 8 << 20).unwrap();
    (d, log, store, token)
}

/// A runner of the counter with no projector around it.
fn lone_runner(
    store: &Store,
    log: &Arc<dyn Log>,
) -> (crm_projector::Runner, Arc<crm_projector::Handle>) {
    crm_projector::Runner::new(
        store,
        "counter",
        Arc::new(Counter { version: 1 }),
        log.clone(),
        RunnerConfig::default(),
    )
    .unwrap()
}

fn each_counted_once(kv: &dyn KvRead) {
    for i in 0..10 {
        assert_eq!(count(kv, &format!("c{i}")), 1, "case c{i}");
    }
}

/// Starts a projector and checks that, once it has applied `token`, each of
/// the ten cases was counted once and ten events applied.
async fn start_and_see_each_counted_once(store: &Store, log: &Arc<dyn Log>, token: &Token) {
    let projector = start(store, log, 1);
    assert!(wait_for(&projector.handles, token, Duration::from_secs(30)).await);
    let h = projector.handle("counter").unwrap().clone();
    each_counted_once(&h.kv());
    assert_eq!(h.status().events_applied, 10);
    projector.stop().await;
}

/// A commit is written ahead and then key by key (`commit`): one that
/// fails halfway, after some of the counters were written, is completed
/// from what was written ahead when the store is reopened, and no event is
/// counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cut_short_is_completed_when_the_store_is_reopened() {
    let (_d, log, store, token) = ten_cases_logged().await;
    store.inject_commit_failures_midway(1);
    start_and_see_each_counted_once(&store, &log, &token).await;
}

/// The same failure seen by a runner on its own (no projector to reopen
/// the store): it reads its progress back before the next batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_reads_a_commit_cut_short_back_before_going_on() {
    let (_d, log, store, token) = ten_cases_logged().await;
    store.inject_commit_failures_midway(1);
    let (runner, handle) = lone_runner(&store, &log);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));
    let handles = [handle.clone()];
    assert!(wait_for(&handles, &token, Duration::from_secs(30)).await);
    each_counted_once(&handle.kv());
    assert_eq!(handle.status().events_applied, 10);
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// A process that stopped in the middle of a commit: the next start
/// completes the batch before anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cut_short_by_a_crash_is_completed_at_the_next_start() {
    let (_d, log, store, token) = ten_cases_logged().await;
    // Every commit fails halfway; the runner stops at the first failure.
    store.inject_commit_failures_midway(u32::MAX);
    {
        let (runner, handle) = lone_runner(&store, &log);
        let failed = Arc::new(tokio::sync::Notify::new());
        let runner = runner.notify_store_failure(failed.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(runner.run(stopped));
        tokio::time::timeout(Duration::from_secs(30), failed.notified())
            .await
            .expect("the commit failed");
        stop.send(true).unwrap();
        task.await.unwrap();
        // Half the counters are written; the checkpoint is not.
        let kv = handle.kv();
        let written = (0..10)
            .filter(|i| count(&kv, &format!("c{i}")) == 1)
            .count();
        assert!(
            (1..10).contains(&written),
            "{written} of 10 counters written before the failure"
        );
    }
    store.inject_commit_failures_midway(0);
    let projector = start(&store, &log, 1);
    let h = projector.handle("counter").unwrap().clone();
    // Complete before any event was read again: at start, not by replay.
    assert_eq!(h.status().events_applied, 10);
    each_counted_once(&h.kv());
    assert!(wait_for(&projector.handles, &token, Duration::from_secs(30)).await);
    each_counted_once(&h.kv());
    projector.stop().await;
}

/// A tree built from nothing without writing ahead (`crm-ledger rebuild`)
/// and cut short in the middle of a batch: the next start finds it marked
/// unfinished, clears it and builds it again from the log, so nothing the
/// half-written batch left is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_in_place_cut_short_is_built_again_at_the_next_start() {
    let (_d, log, store, token) = ten_cases_logged().await;
    {
        let config = RunnerConfig {
            write_ahead: false,
            ..RunnerConfig::default()
        };
        let (mut runner, handle) = crm_projector::Runner::new(
            &store,
            "counter",
            Arc::new(Counter { version: 1 }),
            log.clone(),
            config,
        )
        .unwrap();
        let end = log.end().await.unwrap();
        runner.run_until(&end, |_| {}).await.unwrap();
        each_counted_once(&handle.kv());
        // The process stops halfway through a next batch: one counter
        // written, no checkpoint, and the build never marked finished.
        let tree = store.tree("counter").unwrap();
        tree.insert(b"n/c0", serde_json::to_vec(&2u64).unwrap())
            .unwrap();
        assert_eq!(count(&handle.kv(), "c0"), 2);
    }
    start_and_see_each_counted_once(&store, &log, &token).await;
}

/// Only an empty read model is built without writing ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_with_progress_is_never_committed_in_place() {
    let (_d, log, store, _token) = ten_cases_logged().await;
    let (mut runner, _handle) = lone_runner(&store, &log);
    let end = log.end().await.unwrap();
    runner.run_until(&end, |_| {}).await.unwrap();
    drop(runner);
    let config = RunnerConfig {
        write_ahead: false,
        ..RunnerConfig::default()
    };
    let refused = crm_projector::Runner::new(
        &store,
        "counter",
        Arc::new(Counter { version: 1 }),
        log.clone(),
        config,
    );
    assert!(refused.is_err());
}
