//! The same ledger on Kafka, against a real Kafka-protocol broker (Tansu,
//! started by `scripts/test`; its address in `CRM_KAFKA_BROKERS`). In CI a
//! missing broker fails these tests; elsewhere they say why they skip.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, wait_live, Server, BIN};

const PROJECTIONS: [&str; 3] = ["customers", "cases", "campaigns"];

fn brokers() -> Option<String> {
    match std::env::var("CRM_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CRM_KAFKA_BROKERS is not set: CI must run the Kafka tests (scripts/test starts a broker)")
        }
        _ => {
            eprintln!("skipping a Kafka test: CRM_KAFKA_BROKERS is not set (scripts/test starts a broker)");
            None
        }
    }
}

fn topic(name: &str) -> String {
    format!("e2e-{name}-{}-{}", std::process::id(), free_port())
}

fn demo_file(dir: &std::path::Path, customers: &str) -> std::path::PathBuf {
    let file = dir.join("demo.ndjson");
    let ok = Command::new(BIN)
        .args([
            "demo",
            "--customers",
            customers,
            "--days",
            "5",
            "--seed",
            "7",
            "--out",
        ])
        .arg(&file)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    file
}

fn publish(server: &Server, file: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .arg("publish")
        .arg(file)
        .args(["--url", &server.base])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn digest(data_dir: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .arg("digest")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn embedded_digest(dir: &std::path::Path, file: &std::path::Path) -> String {
    let data = dir.join("embedded");
    let mut server = Server::start(&data, &[]).await;
    publish(&server, file);
    for p in PROJECTIONS {
        wait_live(&server, p).await;
    }
    assert!(server.terminate().success());
    digest(&data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_history_gives_the_same_read_models_on_embedded_and_on_kafka() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = demo_file(dir.path(), "40");
    let expected = embedded_digest(dir.path(), &file).await;

    let topic = topic("same");
    let data = dir.path().join("kafka");
    let kafka = ["--log", "kafka", "--brokers", &brokers, "--topic", &topic];
    let mut server = Server::start(&data, &kafka).await;
    let first = publish(&server, &file);
    assert!(first.contains(" 0 rejected"), "{first}");
    // Kafka cannot refuse a re-published event_id at append: publishing the
    // same history again appends copies, which the projections skip.
    publish(&server, &file);
    for p in PROJECTIONS {
        wait_live(&server, p).await;
    }
    assert!(server.terminate().success());
    assert_eq!(
        digest(&data),
        expected,
        "read models on Kafka (with every event published twice) = embedded"
    );

    // An offline rebuild from the topic gives the same digests too.
    let out = Command::new(BIN)
        .args(["rebuild", "--digest", "--out"])
        .arg(dir.path().join("rebuilt"))
        .args(kafka)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_stream_resumes_without_a_lost_or_doubled_event() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = demo_file(dir.path(), "60");
    let expected = embedded_digest(dir.path(), &file).await;

    let topic = topic("kill");
    let kafka = ["--log", "kafka", "--brokers", &brokers, "--topic", &topic];
    // Ingest and query processes scaled apart.
    let mut ingest_args = kafka.to_vec();
    ingest_args.extend(["--role", "ingest"]);
    let ingest = Server::start(&dir.path().join("ingest"), &ingest_args).await;
    publish(&ingest, &file);
    let q = reqwest::get(ingest.url("/v1/customers/x")).await.unwrap();
    assert_eq!(q.status(), 404, "an ingest process answers no queries");

    let data = dir.path().join("query");
    let mut query_args = kafka.to_vec();
    query_args.extend(["--role", "query"]);
    for round in 0..3 {
        let mut query = Server::start(&data, &query_args).await;
        tokio::time::sleep(Duration::from_millis(300 + 400 * round)).await;
        query.kill();
    }
    let mut query = Server::start(&data, &query_args).await;
    let r = reqwest::Client::new()
        .post(query.url("/v1/events"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a query process takes no publishes");
    for p in PROJECTIONS {
        wait_live(&query, p).await;
    }
    assert!(query.terminate().success());
    assert_eq!(
        digest(&data),
        expected,
        "killed three times mid-stream, no event lost or applied twice"
    );
}

fn tansu() -> Option<std::path::PathBuf> {
    if let Some(b) = std::env::var_os("TANSU_BIN") {
        return Some(b.into());
    }
    let home = std::path::PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/tansu");
    if home.exists() {
        return Some(home);
    }
    Command::new("tansu")
        .arg("--version")
        .output()
        .ok()
        .map(|_| "tansu".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_goes_down_makes_publish_answer_503_within_a_bounded_time() {
    let Some(_) = brokers() else { return };
    let Some(tansu) = tansu() else {
        panic!("the tansu binary is needed for this test (scripts/kafka-broker.sh install)");
    };
    let dir = tempfile::tempdir().unwrap();
    // A broker of this test's own, to stop.
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut broker = Command::new(tansu)
        .args([
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "test broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let brokers = format!("127.0.0.1:{port}");
    let server = Server::start(
        &dir.path().join("d"),
        &[
            "--log",
            "kafka",
            "--brokers",
            &brokers,
            "--topic",
            "down",
            "--role",
            "ingest",
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let event = |id: &str| {
        serde_json::json!({"event_id": id, "type": "case.closed", "occurred_at": "2026-11-20T10:00:00Z",
        "source": "e2e", "case_id": "k1", "data": {}})
    };
    let r: serde_json::Value = client
        .post(server.url("/v1/events"))
        .json(&event("up"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["accepted"], 1, "{r}");

    broker.kill().unwrap();
    broker.wait().unwrap();
    let started = Instant::now();
    let r = client
        .post(server.url("/v1/events"))
        .json(&event("down"))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503, "publish with the broker down");
    assert!(r.headers().get("retry-after").is_some());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "log_unavailable");
    eprintln!("publish answered 503 after {took:?} with the broker down");
    assert!(
        took < Duration::from_secs(30),
        "bounded, not a hang: {took:?}"
    );
}

/// The Kafka settings of the command line reach librdkafka: a property it
/// does not know stops `serve` before it listens, naming the property, for
/// every client, the producer and the readers alike; a flag that is not
/// `[producer:|reader:]KEY=VALUE` is named. No broker is needed: the
/// settings are checked first.
#[test]
fn kafka_properties_reach_librdkafka_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |flags: &[&str]| {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log", "kafka"])
            .args(["--brokers", "127.0.0.1:1", "--data-dir"])
            .arg(dir.path())
            .args(flags)
            .env("CRM_LEDGER_LOG_FORMAT", "text")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for clients in ["", "producer:", "reader:"] {
        let err = serve(&["--kafka-property", &format!("{clients}no.such.property=1")]);
        assert!(
            err.contains("No such configuration property") && err.contains("no.such.property"),
            "{clients}: {err}"
        );
    }
    for bad in [
        "queued.max.messages.kbytes",
        "consumer:fetch.wait.max.ms=5",
        "reader:=5",
    ] {
        let err = serve(&["--kafka-property", bad]);
        assert!(
            err.contains("--kafka-property") && err.contains("KEY=VALUE"),
            "{bad}: {err}"
        );
    }
    let err = serve(&["--replication-factor", "0"]);
    assert!(err.contains("0 is not a replication factor"), "{err}");
}
