//! The embedded log: the backend contract, plus durability and recovery.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::testkit::{append, read_n};
use crm_log::{AppendOutcome, Checkpoint, Log, LogError};

fn open(dir: &Path) -> EmbeddedLog {
    EmbeddedLog::open(EmbeddedConfig::new(dir)).expect("open")
}

/// Copies a directory tree as a crash would leave it: a file the log's
/// background threads delete between the listing and its copy (a run
/// replaced by a merge, a `.tmp` renamed) is left out, as it would be
/// after a crash at that moment. In-process on purpose: a child process
/// (`cp`) forked while another test holds a log's `LOCK` keeps that lock's
/// file descriptor until it execs, and a test reopening its own log in
/// that moment was refused as "in use by another process" (4 runs of 100
/// of this test binary, and once in CI).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let copied = match entry.file_type() {
            Ok(t) if t.is_dir() => {
                copy_dir(&entry.path(), &target);
                Ok(0)
            }
            Ok(_) => std::fs::copy(entry.path(), &target),
            Err(e) => Err(e),
        };
        match copied {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => {
                other.unwrap();
            }
        }
    }
}

fn segment(dir: &Path) -> std::path::PathBuf {
    dir.join("segments").join(format!("{:020}.seg", 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_log_passes_the_backend_contract() {
    let dirs = Arc::new(std::sync::Mutex::new(Vec::new()));
    crm_log::testkit::run_all(|| {
        let dirs = dirs.clone();
        async move {
            let d = tempfile::tempdir().unwrap();
            let log: Arc<dyn Log> = Arc::new(open(d.path()));
            dirs.lock().unwrap().push(d);
            log
        }
    })
    .await;
}

#[tokio::test]
async fn small_segments_roll_and_read_back_across_them() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(d.path());
    cfg.segment_bytes = 2_000;
    let log = EmbeddedLog::open(cfg.clone()).unwrap();
    for b in 0..20 {
        let batch = (0..10)
            .map(|i| append(&format!("e{b}-{i}"), "1", "c"))
            .collect();
        log.append(batch).await.unwrap();
    }
    let segments = std::fs::read_dir(d.path().join("segments"))
        .unwrap()
        .count();
    assert!(segments > 5, "{segments} segments");
    assert_eq!(read_n(&log, &Checkpoint::default(), 200).await.len(), 200);
    // Resume in the middle of a later segment.
    let mut cp = Checkpoint::default();
    cp.0.insert(0, 137);
    let rest = read_n(&log, &cp, 63).await;
    assert_eq!(rest.len(), 63);
    assert_eq!(rest[0].position.offset, 137);
    drop(log);
    // Reopen: all segments verify, dedup still holds.
    let log = EmbeddedLog::open(cfg).unwrap();
    assert_eq!(log.len(), 200);
    let again = log.append(vec![append("e3-3", "1", "c")]).await.unwrap();
    assert!(matches!(again[0], AppendOutcome::Duplicate(_)));
}

#[tokio::test]
async fn events_and_dedup_survive_restart_even_without_the_index() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path());
        log.append(
            (0..10)
                .map(|i| append(&format!("e{i}"), "1", "c"))
                .collect(),
        )
        .await
        .unwrap();
    }
    // The id index is derived: delete it and it is rebuilt from the segments.
    std::fs::remove_dir_all(d.path().join("id-index")).unwrap();
    let log = open(d.path());
    assert_eq!(log.len(), 10);
    let out = log
        .append(vec![append("e4", "1", "c"), append("e5", "1", "changed")])
        .await
        .unwrap();
    assert!(matches!(out[0], AppendOutcome::Duplicate(p) if p.offset == 4));
    assert!(matches!(out[1], AppendOutcome::Conflict(p) if p.offset == 5));
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_never_served() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path());
        log.append((0..5).map(|i| append(&format!("e{i}"), "1", "c")).collect())
            .await
            .unwrap();
    }
    let seg = segment(d.path());
    let good_len = std::fs::metadata(&seg).unwrap().len();
    // A crash mid-write: half of a record header and body.
    {
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"'])
            .unwrap();
    }
    let log = open(d.path());
    assert_eq!(log.len(), 5);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        good_len,
        "tail cut off"
    );
    let out = log.append(vec![append("e5", "1", "c")]).await.unwrap();
    assert!(matches!(out[0], AppendOutcome::Appended(p) if p.offset == 5));
    assert_eq!(read_n(&log, &Checkpoint::default(), 6).await.len(), 6);
}

#[tokio::test]
async fn a_whole_but_damaged_last_record_is_a_torn_tail_too() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path());
        log.append((0..3).map(|i| append(&format!("e{i}"), "1", "c")).collect())
            .await
            .unwrap();
    }
    let seg = segment(d.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    flip_byte(&seg, len - 2);
    // A crash after the write but before the id index learnt of the record:
    // the index (derived) does not cover it.
    std::fs::remove_dir_all(d.path().join("id-index")).unwrap();
    let log = open(d.path());
    assert_eq!(
        log.len(),
        2,
        "the damaged last record was never acknowledged as whole"
    );
}

#[tokio::test]
async fn a_damaged_last_record_that_was_acknowledged_stops_the_open() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path());
        log.append((0..3).map(|i| append(&format!("e{i}"), "1", "c")).collect())
            .await
            .unwrap();
    }
    let seg = segment(d.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    flip_byte(&seg, len - 2);
    // The id index covers the record: it was acknowledged, so a bad CRC
    // there is damage, not a torn write, and nothing is cut off.
    let err = EmbeddedLog::open(EmbeddedConfig::new(d.path())).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, LogError::Corrupt(_)) && msg.contains("00000000000000000000.seg at byte"),
        "{msg}"
    );
    assert!(msg.contains("record 2 had been acknowledged"), "{msg}");
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len, "nothing cut");
    // And a replay of the files names the damage too.
    let err = crm_log::embedded::scan_dir(d.path(), |_| Ok(true));
    assert!(
        err.is_ok(),
        "the last record runs to the end: it may be mid-write"
    );
}

#[tokio::test]
async fn replay_of_the_files_names_damage_before_the_tail() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path());
        log.append(
            (0..10)
                .map(|i| append(&format!("e{i}"), "1", "c"))
                .collect(),
        )
        .await
        .unwrap();
    }
    let seg = segment(d.path());
    flip_byte(&seg, 16 + 8 + 3);
    let err = crm_log::embedded::scan_dir(d.path(), |_| Ok(true)).unwrap_err();
    assert!(err.to_string().contains("at byte 16"), "{err}");
}

#[tokio::test]
async fn a_damaged_id_index_is_rebuilt_from_the_log() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(d.path());
    cfg.index_memtable_ids = 300;
    {
        let log = EmbeddedLog::open(cfg.clone()).unwrap();
        for b in 0..20 {
            log.append(
                (0..100)
                    .map(|i| append(&format!("e{}", b * 100 + i), "1", "c"))
                    .collect(),
            )
            .await
            .unwrap();
        }
    }
    let runs = run_files(d.path());
    assert!(!runs.is_empty(), "ids were written to runs");
    // Flip a byte every 4 KiB of every file of the index.
    for entry in std::fs::read_dir(d.path().join("id-index")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let len = std::fs::metadata(&p).unwrap().len();
            for at in (4096..len).step_by(4096) {
                flip_byte(&p, at);
            }
        }
    }
    let log = EmbeddedLog::open(cfg).unwrap();
    assert_eq!(log.len(), 2000);
    // Duplicates are still recognised: the index is whole again.
    let out = log
        .append(vec![append("e7", "1", "c"), append("new", "1", "c")])
        .await
        .unwrap();
    assert!(matches!(out[0], AppendOutcome::Duplicate(_)), "{out:?}");
    assert!(matches!(out[1], AppendOutcome::Appended(_)), "{out:?}");
}

/// The run files of the id index.
fn run_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("id-index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "run"))
        .collect();
    v.sort();
    v
}

fn flip_byte(path: &Path, at: u64) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x55]).unwrap();
}

#[tokio::test]
async fn corruption_before_the_tail_stops_the_open_naming_file_and_offset() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path());
        log.append(
            (0..10)
                .map(|i| append(&format!("e{i}"), "1", "c"))
                .collect(),
        )
        .await
        .unwrap();
    }
    let seg = segment(d.path());
    flip_byte(&seg, 16 + 8 + 40);
    let err = EmbeddedLog::open(EmbeddedConfig::new(d.path())).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LogError::Corrupt(_)), "{msg}");
    assert!(
        msg.contains("00000000000000000000.seg") && msg.contains("at byte 16"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_directory() {
    let d = tempfile::tempdir().unwrap();
    let _log = open(d.path());
    let err = EmbeddedLog::open(EmbeddedConfig::new(d.path())).unwrap_err();
    assert!(matches!(err, LogError::Locked(_)), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
}

#[tokio::test]
async fn appends_after_close_are_refused_not_lost() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    log.close();
    let err = log.append(vec![append("x", "1", "c")]).await.unwrap_err();
    assert!(matches!(err, LogError::Unavailable(_)));
    assert!(log.health().await.is_err());
}

#[tokio::test]
async fn scan_dir_reads_a_log_that_is_open_elsewhere() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    log.append((0..7).map(|i| append(&format!("e{i}"), "1", "c")).collect())
        .await
        .unwrap();
    let mut ids = Vec::new();
    let n = crm_log::embedded::scan_dir(d.path(), |r| {
        ids.push(r.event_id);
        Ok(true)
    })
    .unwrap();
    assert_eq!(n, 7);
    assert_eq!(ids, (0..7).map(|i| format!("e{i}")).collect::<Vec<_>>());
    assert!(crm_log::embedded::scan_dir(&d.path().join("nope"), |_| Ok(true)).is_err());
}

/// Appends `n` events `{tag}{i}` in batches of `per`; returns their offsets.
async fn fill(log: &EmbeddedLog, tag: &str, n: usize, per: usize) -> Vec<u64> {
    let mut offsets = Vec::new();
    for start in (0..n).step_by(per) {
        let batch = (start..(start + per).min(n))
            .map(|i| append(&format!("{tag}{i}"), &format!("{}", i % 5), "c"))
            .collect();
        for o in log.append(batch).await.unwrap() {
            match o {
                AppendOutcome::Appended(p) => offsets.push(p.offset),
                other => panic!("{other:?}"),
            }
        }
    }
    offsets
}

/// Every id `{tag}{i}` answers duplicate at its offset, and conflict with
/// other content; a new id is appended.
async fn assert_dedup(log: &EmbeddedLog, tag: &str, offsets: &[u64], step: usize) {
    for (i, &at) in offsets.iter().enumerate().step_by(step) {
        let id = format!("{tag}{i}");
        let out = log
            .append(vec![
                append(&id, &format!("{}", i % 5), "c"),
                append(&id, "x", "changed"),
            ])
            .await
            .unwrap();
        assert!(
            matches!(out[0], AppendOutcome::Duplicate(p) if p.offset == at),
            "{id}: {out:?}"
        );
        assert!(
            matches!(out[1], AppendOutcome::Conflict(p) if p.offset == at),
            "{id}: {out:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_holds_across_index_flushes_merges_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(d.path());
    cfg.index_memtable_ids = 40;
    cfg.segment_bytes = 20_000;
    let log = EmbeddedLog::open(cfg.clone()).unwrap();
    let offsets = fill(&log, "e", 3_000, 23).await;
    assert_dedup(&log, "e", &offsets, 7).await;
    // Within one batch, and across group commits.
    let out = log
        .append(vec![
            append("new-1", "1", "c"),
            append("new-1", "1", "c"),
            append("new-1", "1", "other"),
        ])
        .await
        .unwrap();
    assert!(matches!(out[0], AppendOutcome::Appended(p) if p.offset == 3_000));
    assert!(matches!(out[1], AppendOutcome::Duplicate(p) if p.offset == 3_000));
    assert!(matches!(out[2], AppendOutcome::Conflict(p) if p.offset == 3_000));
    drop(log);
    let runs = run_files(d.path());
    // About 75 memtables were written out; merges (abandoned at close when
    // one is in progress) keep the count down.
    assert!(!runs.is_empty() && runs.len() < 30, "merged runs: {runs:?}");
    let log = EmbeddedLog::open(cfg).unwrap();
    assert_eq!(log.len(), 3_001);
    assert_dedup(&log, "e", &offsets, 3).await;
    let out = log.append(vec![append("new-1", "1", "c")]).await.unwrap();
    assert!(matches!(out[0], AppendOutcome::Duplicate(p) if p.offset == 3_000));
}

fn one_hash(_: &str) -> u64 {
    42
}

#[tokio::test]
async fn ids_with_the_same_64_bit_hash_are_told_apart_by_the_record() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(d.path());
    // Every id has the same hash: every lookup reads the records it finds.
    cfg.id_hash = Some(one_hash);
    cfg.index_memtable_ids = 16;
    let log = EmbeddedLog::open(cfg.clone()).unwrap();
    let offsets = fill(&log, "c", 150, 10).await;
    assert_dedup(&log, "c", &offsets, 1).await;
    drop(log);
    assert!(!run_files(d.path()).is_empty());
    let log = EmbeddedLog::open(cfg.clone()).unwrap();
    assert_dedup(&log, "c", &offsets, 1).await;
    let out = log.append(vec![append("c150", "1", "c")]).await.unwrap();
    assert!(matches!(out[0], AppendOutcome::Appended(p) if p.offset == 150));
    drop(log);
    // Runs written with another hash function are not used: rebuilt.
    cfg.id_hash = None;
    let log = EmbeddedLog::open(cfg).unwrap();
    assert_dedup(&log, "c", &offsets, 1).await;
}

#[tokio::test]
async fn ids_not_yet_in_a_run_are_indexed_from_the_segments_after_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(d.path().join("live"));
    cfg.index_memtable_ids = 100;
    let log = EmbeddedLog::open(cfg.clone()).unwrap();
    let offsets = fill(&log, "e", 250, 50).await;
    // Runs are written by a background thread: wait for the first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while run_files(&cfg.dir).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no run written in 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // A crash: the files as they are while the log is open (the last ids
    // are in the memtable only).
    let copy = d.path().join("crashed");
    copy_dir(&cfg.dir, &copy);
    drop(log);
    cfg.dir = copy.clone();
    let runs = run_files(&copy);
    assert!(!runs.is_empty(), "some ids are in runs");
    let log = EmbeddedLog::open(cfg).unwrap();
    assert_eq!(log.len(), 250);
    assert_dedup(&log, "e", &offsets, 1).await;
}

#[tokio::test]
async fn a_bad_last_record_covered_by_an_index_run_is_damage() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(d.path());
    cfg.index_memtable_ids = 5;
    {
        let log = EmbeddedLog::open(cfg.clone()).unwrap();
        fill(&log, "e", 10, 5).await;
    }
    // Full memtables are written out at the latest at close.
    let runs = run_files(d.path());
    assert!(
        runs.last()
            .unwrap()
            .to_string_lossy()
            .ends_with("-00000000000000000010.run"),
        "{runs:?}"
    );
    // Only the runs say what was acknowledged now.
    std::fs::remove_file(d.path().join("id-index/COMMITTED")).unwrap();
    let seg = segment(d.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    flip_byte(&seg, len - 2);
    let err = EmbeddedLog::open(cfg.clone()).unwrap_err();
    assert!(
        err.to_string().contains("record 9 had been acknowledged"),
        "{err}"
    );
    // Without the index, the same damage is a torn tail.
    std::fs::remove_dir_all(d.path().join("id-index")).unwrap();
    let log = EmbeddedLog::open(cfg).unwrap();
    assert_eq!(log.len(), 9);
}

#[tokio::test]
async fn an_index_ahead_of_the_log_is_cut_back_to_it() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(d.path());
    cfg.index_memtable_ids = 5;
    let offsets;
    {
        let log = EmbeddedLog::open(cfg.clone()).unwrap();
        offsets = fill(&log, "e", 10, 5).await;
        log.append(vec![append("x", "1", "c")]).await.unwrap();
    }
    let last = run_files(d.path()).pop().unwrap();
    let end: u64 = last.to_string_lossy()[..last.to_string_lossy().len() - 4]
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(end >= 10, "a run covers record 9: {last:?}");
    // The segment loses its last two records cleanly (a restore of an
    // older copy): the index's run [5, 10) and its marker are ahead.
    let seg = segment(d.path());
    let bytes = std::fs::read(&seg).unwrap();
    let mut starts = Vec::new();
    let mut pos = 16usize;
    while pos < bytes.len() {
        starts.push(pos);
        pos += 8 + u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
    }
    std::fs::write(&seg, &bytes[..starts[9]]).unwrap();
    let log = EmbeddedLog::open(cfg).unwrap();
    assert_eq!(log.len(), 9);
    assert_dedup(&log, "e", &offsets[..9], 1).await;
    let out = log
        .append(vec![append("e9", "1", "c"), append("x", "1", "c")])
        .await
        .unwrap();
    assert!(
        matches!(out[0], AppendOutcome::Appended(p) if p.offset == 9),
        "{out:?}"
    );
    assert!(
        matches!(out[1], AppendOutcome::Appended(p) if p.offset == 10),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_sled_index_of_the_old_format_is_deleted_at_open() {
    let d = tempfile::tempdir().unwrap();
    let offsets;
    {
        let log = open(d.path());
        offsets = fill(&log, "e", 30, 10).await;
    }
    // An upgraded data dir: the old index, none of the new.
    std::fs::remove_dir_all(d.path().join("id-index")).unwrap();
    std::fs::create_dir(d.path().join("ids")).unwrap();
    std::fs::write(d.path().join("ids/db"), b"old sled files").unwrap();
    let log = open(d.path());
    assert!(!d.path().join("ids").exists());
    assert_dedup(&log, "e", &offsets, 1).await;
}

#[tokio::test]
async fn an_index_of_another_log_is_not_used() {
    let d = tempfile::tempdir().unwrap();
    let cfg = |name: &str| {
        let mut c = EmbeddedConfig::new(d.path().join(name));
        c.index_memtable_ids = 5;
        c
    };
    let (a_offsets, b_offsets);
    {
        let a = EmbeddedLog::open(cfg("a")).unwrap();
        a_offsets = fill(&a, "a", 20, 5).await;
        let b = EmbeddedLog::open(cfg("b")).unwrap();
        b_offsets = fill(&b, "b", 20, 5).await;
    }
    // Segments of log b beside the index of log a (as after restoring
    // segments without deleting the index): same length, other ids.
    let b = d.path().join("b");
    std::fs::remove_dir_all(b.join("id-index")).unwrap();
    copy_dir(&d.path().join("a/id-index"), &b.join("id-index"));
    assert!(!run_files(&b).is_empty());
    let log = EmbeddedLog::open(cfg("b")).unwrap();
    assert_dedup(&log, "b", &b_offsets, 1).await;
    let out = log
        .append(
            (0..a_offsets.len())
                .map(|i| append(&format!("a{i}"), "1", "c"))
                .collect(),
        )
        .await
        .unwrap();
    assert!(
        out.iter().all(|o| matches!(o, AppendOutcome::Appended(_))),
        "{out:?}"
    );
}
