//! The topic's layout and settings, as another Kafka client sees them.

mod common;

use crm_log::testkit::{append, read_n};
use crm_log::{Checkpoint, Log, LogError};
use crm_log_kafka::{KafkaConfig, KafkaLog};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_is_created_to_keep_events_forever() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let config = common::config(&brokers).partitions(4);
    let log = KafkaLog::connect(config.clone()).await.unwrap();
    assert_eq!(log.partitions().await.unwrap(), 4);
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let described = admin
        .describe_configs(
            [&ResourceSpecifier::Topic(&config.topic)],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let topic = described.into_iter().next().unwrap().unwrap();
    for (key, want) in [("retention.ms", "-1"), ("retention.bytes", "-1")] {
        let got = topic.get(key).and_then(|e| e.value.as_deref());
        assert_eq!(got, Some(want), "{key}");
    }
    // Never compacted: the broker's default (delete), not set explicitly.
    let policy = topic.get("cleanup.policy").and_then(|e| e.value.as_deref());
    assert!(matches!(policy, None | Some("delete")), "{policy:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_carry_the_event_metadata() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let config = common::config(&brokers);
    let log = KafkaLog::connect(config.clone()).await.unwrap();
    let mut a = append("h1", "1", "content");
    a.event_type = "case.opened".into();
    a.version = 3;
    a.content_hash = [0xab; 32];
    log.append(vec![a]).await.unwrap();
    let r = read_n(&log, &Checkpoint::default(), 1).await;
    assert_eq!(r[0].event_id, "h1");
    let headers = common::raw_headers(&config, 1).await;
    assert_eq!(headers[0].get("event_id").map(String::as_str), Some("h1"));
    assert_eq!(
        headers[0].get("type").map(String::as_str),
        Some("case.opened")
    );
    assert_eq!(headers[0].get("version").map(String::as_str), Some("3"));
    assert_eq!(
        headers[0].get("content_hash").map(String::as_str),
        Some("ab".repeat(32).as_str())
    );
    assert_eq!(headers[0].get("key").map(String::as_str), Some("s/1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_naming_a_missing_partition_is_refused() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let log = KafkaLog::connect(common::config(&brokers)).await.unwrap();
    let mut cp = Checkpoint::default();
    cp.0.insert(7, 1);
    let r = log.reader(&cp).await;
    assert!(
        matches!(r, Err(LogError::Corrupt(_))),
        "{:?}",
        r.map(|_| ())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_topic_keeps_its_partition_count() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let config = common::config(&brokers).partitions(2);
    KafkaLog::connect(config.clone()).await.unwrap();
    let again = KafkaLog::connect(KafkaConfig {
        partitions: 5,
        ..config
    })
    .await
    .unwrap();
    assert_eq!(again.partitions().await.unwrap(), 2);
    assert_eq!(again.end().await.unwrap().0.len(), 2);
    again.health().await.unwrap();
    assert_eq!(again.backend(), "kafka");
    assert!(!again.deduplicates());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_producer_queue_slows_appends_down_but_loses_nothing() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let mut config = common::config(&brokers);
    config.max_queued_messages = 4;
    let log = KafkaLog::connect(config).await.unwrap();
    let batch: Vec<_> = (0..200)
        .map(|i| append(&format!("b{i}"), &format!("{}", i % 3), "c"))
        .collect();
    let out = log.append(batch).await.expect("backpressure, not failure");
    assert_eq!(out.len(), 200);
    let read = read_n(&log, &Checkpoint::default(), 200).await;
    assert_eq!(read.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_beyond_the_end_is_refused_not_skipped() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let log = KafkaLog::connect(common::config(&brokers)).await.unwrap();
    log.append((0..5).map(|i| append(&format!("e{i}"), "x", "c")).collect())
        .await
        .unwrap();
    let end = log.end().await.unwrap();
    assert!(
        log.reader(&end).await.is_ok(),
        "the end itself is a valid checkpoint"
    );
    let mut beyond = end.clone();
    let (&p, &o) = end.0.iter().find(|(_, o)| **o > 0).unwrap();
    beyond.0.insert(p, o + 1);
    let r = log.reader(&beyond).await;
    assert!(
        matches!(r, Err(LogError::Corrupt(_))),
        "{:?}",
        r.map(|_| ())
    );
}
