//! A broker that cannot be reached makes every call answer `Unavailable`
//! within its bound: nothing hangs. Needs no broker (a closed port).

mod common;

use std::time::{Duration, Instant};

use crm_log::testkit::append;
use crm_log::{Checkpoint, Log, LogError};
use crm_log_kafka::{KafkaConfig, KafkaLog};

fn closed_port_config() -> KafkaConfig {
    common::init_tracing();
    // Nobody listens there: the listener is dropped at once.
    let port = common::free_port();
    let mut c =
        KafkaConfig::new(format!("127.0.0.1:{port}")).topic(common::unique("crm-unreachable"));
    c.append_timeout = Duration::from_secs(2);
    c.timeout_slack = Duration::from_secs(1);
    c.request_timeout = Duration::from_secs(2);
    c.health_timeout = Duration::from_secs(1);
    c
}

/// The hard bound of a call, with room for a loaded machine.
fn bound(c: &KafkaConfig) -> Duration {
    c.append_timeout + c.timeout_slack + Duration::from_secs(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_answers_unavailable_within_the_bound() {
    let config = closed_port_config();
    let limit = bound(&config);
    let log = KafkaLog::new(config).expect("clients are built without a broker");
    let batch: Vec<_> = (0..50)
        .map(|i| append(&format!("u{i}"), &format!("{}", i % 5), "c"))
        .collect();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), log.append(batch))
        .await
        .expect("append must not hang");
    let took = started.elapsed();
    assert!(
        matches!(result, Err(LogError::Unavailable(_))),
        "{result:?}"
    );
    assert!(took <= limit, "append took {took:?}, bound {limit:?}");
    // And again: a second append after a failed one is bounded too.
    let started = Instant::now();
    let result = log.append(vec![append("again", "1", "c")]).await;
    assert!(
        matches!(result, Err(LogError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() <= limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_health_end_and_reader_answer_unavailable() {
    let config = closed_port_config();
    let request_bound = config.request_timeout * 2 + config.timeout_slack + Duration::from_secs(2);

    let started = Instant::now();
    let connected =
        tokio::time::timeout(Duration::from_secs(60), KafkaLog::connect(config.clone()))
            .await
            .expect("connect must not hang");
    assert!(
        matches!(connected, Err(LogError::Unavailable(_))),
        "{connected:?}"
    );
    assert!(
        started.elapsed() <= request_bound,
        "connect took {:?}",
        started.elapsed()
    );

    let log = KafkaLog::new(config).unwrap();
    for (what, result) in [
        (
            "health",
            tokio::time::timeout(Duration::from_secs(60), log.health())
                .await
                .map(|r| r.map(|_| ())),
        ),
        (
            "end",
            tokio::time::timeout(Duration::from_secs(60), log.end())
                .await
                .map(|r| r.map(|_| ())),
        ),
        (
            "reader",
            tokio::time::timeout(Duration::from_secs(60), log.reader(&Checkpoint::default()))
                .await
                .map(|r| r.map(|_| ())),
        ),
    ] {
        let result = result.unwrap_or_else(|_| panic!("{what} must not hang"));
        assert!(
            matches!(result, Err(LogError::Unavailable(_))),
            "{what}: {result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_producer_queue_is_waited_on_within_the_bound() {
    let mut config = closed_port_config();
    // Room for 5 messages: the batch of 50 cannot all be queued.
    config.max_queued_messages = 5;
    let limit = bound(&config);
    let log = KafkaLog::new(config).unwrap();
    let batch: Vec<_> = (0..50)
        .map(|i| append(&format!("q{i}"), "1", "c"))
        .collect();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), log.append(batch))
        .await
        .expect("append must not hang");
    assert!(
        matches!(result, Err(LogError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() <= limit, "took {:?}", started.elapsed());
}
