//! The contract every [`Log`] backend must pass. A backend's tests call
//! [`run_all`] with a factory that makes a fresh, empty log (its own topic for
//! Kafka), so the same assertions hold for the embedded log and for Kafka.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{Append, AppendOutcome, Checkpoint, Log, LogRecord, Position};

/// An append for tests: payload `{"n": n}`, stream `s/<stream>`.
pub fn append(id: &str, stream: &str, content: &str) -> Append {
    let payload = format!("{{\"id\":\"{id}\",\"content\":\"{content}\"}}").into_bytes();
    let mut hash = [0u8; 32];
    for (i, b) in content.bytes().enumerate() {
        hash[i % 32] ^= b.wrapping_add(i as u8);
    }
    Append {
        event_id: id.to_string(),
        stream_key: format!("s/{stream}"),
        content_hash: hash,
        event_type: "test.event".into(),
        version: 1,
        payload,
    }
}

fn position(o: &AppendOutcome) -> Position {
    match o {
        AppendOutcome::Appended(p) | AppendOutcome::Duplicate(p) | AppendOutcome::Conflict(p) => *p,
    }
}

/// Reads until `n` records have come (or a generous timeout passes).
pub async fn read_n(log: &dyn Log, from: &Checkpoint, n: usize) -> Vec<LogRecord> {
    let mut reader = log.reader(from).await.expect("reader");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while out.len() < n && tokio::time::Instant::now() < deadline {
        out.extend(
            reader
                .next_batch(n - out.len(), Duration::from_millis(500))
                .await
                .expect("read"),
        );
    }
    out
}

/// Runs every contract check, each on a fresh log from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Log>>,
{
    appended_events_read_back_in_stream_order(make().await).await;
    duplicates_and_conflicts(make().await).await;
    readers_resume_from_a_checkpoint(make().await).await;
    readers_wait_for_new_events(make().await).await;
    concurrent_publishers_lose_nothing(make().await).await;
}

/// Every appended event is read back once, each stream in publish order,
/// with the position append answered.
pub async fn appended_events_read_back_in_stream_order(log: Arc<dyn Log>) {
    let mut batch = Vec::new();
    for i in 0..60 {
        batch.push(append(
            &format!("e{i}"),
            &format!("{}", i % 4),
            &format!("c{i}"),
        ));
    }
    let outcomes = log.append(batch).await.expect("append");
    assert_eq!(outcomes.len(), 60);
    let mut positions = BTreeMap::new();
    for (i, o) in outcomes.iter().enumerate() {
        assert!(matches!(o, AppendOutcome::Appended(_)), "{o:?}");
        positions.insert(format!("e{i}"), position(o));
    }
    assert_eq!(
        positions.values().collect::<HashSet<_>>().len(),
        60,
        "positions are unique"
    );
    let end = log.end().await.expect("end");
    assert_eq!(end.total(), 60);
    let records = read_n(&*log, &Checkpoint::default(), 60).await;
    assert_eq!(records.len(), 60);
    let mut per_stream: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for r in &records {
        assert_eq!(
            positions[&r.event_id], r.position,
            "read position = append position"
        );
        let i: usize = r.event_id[1..].parse().unwrap();
        assert_eq!(
            r.payload,
            format!("{{\"id\":\"e{i}\",\"content\":\"c{i}\"}}").into_bytes()
        );
        per_stream.entry(i % 4).or_default().push(i);
    }
    for (s, ids) in per_stream {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "stream {s} out of order: {ids:?}"
        );
    }
}

/// Re-publishing an id: embedded logs answer duplicate or conflict (also
/// within one batch); logs that do not deduplicate append it again.
pub async fn duplicates_and_conflicts(log: Arc<dyn Log>) {
    let first = log.append(vec![append("a", "1", "x")]).await.unwrap();
    let AppendOutcome::Appended(p) = first[0] else {
        panic!("{first:?}")
    };
    let again = log
        .append(vec![
            append("a", "1", "x"),
            append("a", "1", "other"),
            append("b", "1", "y"),
            append("b", "1", "y"),
        ])
        .await
        .unwrap();
    if log.deduplicates() {
        assert_eq!(again[0], AppendOutcome::Duplicate(p));
        assert_eq!(again[1], AppendOutcome::Conflict(p));
        let AppendOutcome::Appended(pb) = again[2] else {
            panic!("{again:?}")
        };
        assert_eq!(again[3], AppendOutcome::Duplicate(pb));
        assert_eq!(
            log.end().await.unwrap().total(),
            2,
            "nothing duplicated was appended"
        );
        let records = read_n(&*log, &Checkpoint::default(), 2).await;
        assert_eq!(records.len(), 2);
    } else {
        assert!(again
            .iter()
            .all(|o| matches!(o, AppendOutcome::Appended(_))));
    }
}

/// A reader started from a checkpoint continues exactly there: no record
/// skipped, none read twice.
pub async fn readers_resume_from_a_checkpoint(log: Arc<dyn Log>) {
    let batch: Vec<_> = (0..40)
        .map(|i| append(&format!("r{i}"), &format!("{}", i % 3), "c"))
        .collect();
    log.append(batch).await.unwrap();
    let first = read_n(&*log, &Checkpoint::default(), 15).await;
    let mut cp = Checkpoint::default();
    for r in &first {
        cp.advance(r.position);
    }
    // Everything after the checkpoint, per partition.
    let rest_expected = 40 - cp.total() as usize;
    let rest = read_n(&*log, &cp, rest_expected).await;
    let mut seen: HashSet<String> = HashSet::new();
    for r in first
        .iter()
        .filter(|r| cp.next(r.position.partition) > r.position.offset)
    {
        assert!(seen.insert(r.event_id.clone()));
    }
    for r in &rest {
        assert!(
            cp.next(r.position.partition) <= r.position.offset,
            "re-read {r:?}"
        );
        assert!(
            seen.insert(r.event_id.clone()),
            "read twice: {}",
            r.event_id
        );
    }
    assert_eq!(seen.len(), 40, "every record read exactly once");
}

/// A reader at the end waits, and wakes for a new append.
pub async fn readers_wait_for_new_events(log: Arc<dyn Log>) {
    let mut reader = log.reader(&Checkpoint::default()).await.unwrap();
    let empty = reader
        .next_batch(10, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(empty.is_empty());
    let writer = log.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.append(vec![append("late", "1", "c")]).await.unwrap();
    });
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.is_empty() && tokio::time::Instant::now() < deadline {
        got = reader.next_batch(10, Duration::from_secs(5)).await.unwrap();
    }
    task.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event_id, "late");
}

/// Many concurrent publishers: every acknowledged event is in the log
/// exactly once.
pub async fn concurrent_publishers_lose_nothing(log: Arc<dyn Log>) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for b in 0..10 {
                let batch: Vec<_> = (0..25)
                    .map(|i| append(&format!("t{t}-b{b}-{i}"), &format!("{t}"), "c"))
                    .collect();
                let ids: Vec<String> = batch.iter().map(|a| a.event_id.clone()).collect();
                let out = log.append(batch).await.unwrap();
                for (id, o) in ids.into_iter().zip(out) {
                    assert!(matches!(o, AppendOutcome::Appended(_)));
                    acked.push(id);
                }
            }
            acked
        }));
    }
    let mut acked = HashSet::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 2000);
    let records = read_n(&*log, &Checkpoint::default(), 2000).await;
    let read: Vec<&str> = records.iter().map(|r| r.event_id.as_str()).collect();
    let unique: HashSet<&str> = read.iter().copied().collect();
    assert_eq!(read.len(), 2000, "nothing doubled");
    assert_eq!(unique.len(), 2000);
    assert!(
        acked.iter().all(|id| unique.contains(id.as_str())),
        "nothing lost"
    );
}
