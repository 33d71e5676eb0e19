//! Readers started from a checkpoint in the middle of the log read exactly
//! what follows it, per partition, in order.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use crm_log::testkit::{append, read_n};
use crm_log::{AppendOutcome, Checkpoint, Position};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_read_back_from_a_checkpoint_in_the_middle() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let log = common::fresh_log(&brokers).await;

    // Two appends, so the records of a partition sit in several batches.
    let mut positions: BTreeMap<String, Position> = BTreeMap::new();
    for round in 0..2 {
        let batch: Vec<_> = (0..60)
            .map(|i| append(&format!("m{round}-{i}"), &format!("{}", i % 7), "c"))
            .collect();
        let ids: Vec<String> = batch.iter().map(|a| a.event_id.clone()).collect();
        for (id, o) in ids.into_iter().zip(log.append(batch).await.unwrap()) {
            let AppendOutcome::Appended(p) = o else {
                panic!("{o:?}")
            };
            positions.insert(id, p);
        }
    }
    let all = read_n(&*log, &Checkpoint::default(), 120).await;
    assert_eq!(all.len(), 120);

    // Per partition, the middle of what it holds.
    let mut per_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for p in positions.values() {
        per_partition.entry(p.partition).or_default().push(p.offset);
    }
    assert!(
        per_partition.len() > 1,
        "the streams spread over partitions"
    );
    let mut middle = Checkpoint::default();
    for (p, offsets) in &per_partition {
        middle.0.insert(*p, offsets.len() as u64 / 2);
    }
    let expected: Vec<_> = all
        .iter()
        .filter(|r| r.position.offset >= middle.next(r.position.partition))
        .cloned()
        .collect();
    let rest = read_n(&*log, &middle, expected.len()).await;
    assert_eq!(rest.len(), expected.len());
    // Nothing before the checkpoint, each partition in offset order.
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for r in &rest {
        assert!(
            r.position.offset >= middle.next(r.position.partition),
            "re-read {r:?}"
        );
        if let Some(prev) = last.insert(r.position.partition, r.position.offset) {
            assert_eq!(
                r.position.offset,
                prev + 1,
                "gap or reorder in partition {}",
                r.position.partition
            );
        }
        assert_eq!(positions[&r.event_id], r.position);
    }
    let mut got: Vec<_> = rest.iter().map(|r| r.event_id.clone()).collect();
    let mut want: Vec<_> = expected.iter().map(|r| r.event_id.clone()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // A reader at the end has nothing, and then the next record.
    let mut end = Checkpoint::default();
    for r in &all {
        end.advance(r.position);
    }
    let mut reader = log.reader(&end).await.unwrap();
    assert!(reader
        .next_batch(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    let o = log.append(vec![append("after", "3", "c")]).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        got = reader
            .next_batch(10, Duration::from_millis(500))
            .await
            .unwrap();
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got.len(), 1);
    assert_eq!(AppendOutcome::Appended(got[0].position), o[0]);
}
