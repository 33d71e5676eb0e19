//! Broker plumbing for the tests.
//!
//! The broker address comes from `CRM_KAFKA_BROKERS` (`.ci/run` starts one
//! with `scripts/kafka-broker.sh`). Without it, a Tansu broker is started on
//! a free loopback port when the `tansu` binary is found (on `PATH`, in
//! `~/.cargo/bin`, or at `TANSU_BIN`), so `cargo test -p crm-log-kafka` works
//! locally with no setup. Without either, the tests fail when `CI` is set
//! and are skipped with a message otherwise.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crm_log::Log;
use crm_log_kafka::{KafkaConfig, KafkaLog};

/// A name no other test run uses: topics and groups are never shared.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where the `tansu` binary is, if anywhere.
pub fn tansu_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("tansu");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".cargo/bin/tansu");
    p.is_file().then_some(p)
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// A Tansu broker started by a test. Killed on drop; also killed by a
/// watchdog when the test process exits without dropping it (statics).
pub struct Tansu {
    pub port: u16,
    /// The storage engine URL (`sqlite://tansu.db` is relative to `dir`).
    pub storage: String,
    /// The broker's working directory, removed when the broker is dropped
    /// (or by the watchdog when the test process ends).
    pub dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

/// The storage engine of a broker that keeps its data across restarts
/// (needs tansu built with `--features libsql`).
pub const PERSISTENT: &str = "sqlite://tansu.db";
/// Tansu's in-memory engine: everything is lost when it stops.
pub const MEMORY: &str = "memory://tansu/";

impl Tansu {
    /// Starts Tansu on `port` with this storage engine URL, in a new
    /// temporary directory; waits until the port accepts connections.
    pub fn start(port: u16, storage: &str) -> Result<Tansu, String> {
        let bin = tansu_bin()
            .ok_or("no tansu binary (cargo install tansu --locked --features dynostore,libsql)")?;
        let dir = std::env::temp_dir().join(unique("crm-tansu"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut t = Tansu {
            port,
            storage: storage.to_string(),
            log: dir.join("broker.log"),
            dir,
            bin,
            child: None,
        };
        t.spawn()?;
        Ok(t)
    }

    /// Starts Tansu with the persistent (sqlite) engine when this tansu has
    /// it, else with the memory engine.
    pub fn start_best(port: u16) -> Result<Tansu, String> {
        if tansu_bin().is_none() {
            return Err(
                "no tansu binary (cargo install tansu --locked --features dynostore,libsql)".into(),
            );
        }
        match Tansu::start(port, PERSISTENT) {
            Ok(t) => Ok(t),
            Err(e) => {
                eprintln!(
                    "tansu has no persistent engine here ({}); using {MEMORY}",
                    e.lines().last().unwrap_or("")
                );
                Tansu::start(port, MEMORY)
            }
        }
    }

    /// Whether the broker keeps its data across a restart.
    pub fn persistent(&self) -> bool {
        self.storage.starts_with("sqlite:")
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| e.to_string())?;
        // The broker runs under a small shell that kills it when this test
        // process is gone, so no broker outlives `cargo test`.
        let script = r#"
"$TANSU" broker --storage-engine "$STORAGE" --listener-url "$URL" --advertised-listener-url "$URL" &
child=$!
echo $child > tansu.pid
trap 'kill $child 2>/dev/null; wait $child 2>/dev/null; exit 0' TERM INT
while kill -0 "$OWNER" 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done
kill $child 2>/dev/null
wait $child
status=$?
kill -0 "$OWNER" 2>/dev/null || rm -rf "$PWD"
exit $status
"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("TANSU", &self.bin)
            .env("STORAGE", &self.storage)
            .env("URL", &url)
            .env("OWNER", std::process::id().to_string())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting tansu: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !accepts(self.port) {
            if let Some(status) = self
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .map_err(|e| e.to_string())?
            {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("tansu exited ({status}) before listening:\n{log}"));
            }
            if Instant::now() > deadline {
                return Err("tansu did not listen within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Kills the broker and waits until its port is closed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // TERM reaches the watchdog shell, which kills the broker.
            let _ = Command::new("kill")
                .arg(c.id().to_string())
                .stderr(Stdio::null())
                .status();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while accepts(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker process with SIGKILL (a crash: no orderly
    /// shutdown) and waits until its port is closed.
    pub fn crash(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("tansu.pid")) {
            let _ = Command::new("kill")
                .args(["-KILL", pid.trim()])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while accepts(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// The broker's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The brokers every test of this process uses: `CRM_KAFKA_BROKERS`, or a
/// Tansu started once for the process. `None` (after a message) when there
/// is neither; panics when `CI` is set, since a missing broker must fail CI.
pub fn brokers() -> Option<String> {
    init_tracing();
    static SHARED: OnceLock<Result<(String, Option<Tansu>), String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        if let Ok(b) = std::env::var("CRM_KAFKA_BROKERS") {
            if !b.trim().is_empty() {
                return Ok((b, None));
            }
        }
        match Tansu::start_best(free_port()) {
            Ok(t) => {
                eprintln!(
                    "crm-log-kafka tests: CRM_KAFKA_BROKERS is unset; started tansu at {}",
                    t.brokers()
                );
                Ok((t.brokers(), Some(t)))
            }
            Err(e) => Err(e),
        }
    });
    match shared {
        Ok((b, _)) => Some(b.clone()),
        Err(e) => {
            let msg = format!(
                "no Kafka broker for the crm-log-kafka tests: CRM_KAFKA_BROKERS is unset and {e}"
            );
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{msg} (CI is set: a missing broker is a failure; see scripts/kafka-broker.sh)"
                );
            }
            eprintln!("SKIPPED: {msg}");
            None
        }
    }
}

/// Whether a test that runs its own broker can: panics in CI without tansu.
pub fn own_broker_possible() -> bool {
    if tansu_bin().is_some() {
        return true;
    }
    let msg = "this test starts and kills its own Tansu broker, and no tansu binary was found \
               (cargo install tansu --locked --features dynostore,libsql)";
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// Logs of the crate and librdkafka, filtered by `RUST_LOG`.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Settings for a fresh topic of its own on `brokers`, with short timeouts.
pub fn config(brokers: &str) -> KafkaConfig {
    let mut c = KafkaConfig::new(brokers).topic(unique("crm-test"));
    c.group_prefix = unique("crm-test-group");
    c.append_timeout = Duration::from_secs(5);
    c.request_timeout = Duration::from_secs(10);
    // librdkafka's own debug contexts, e.g. `eos,msg,broker` (shown with
    // RUST_LOG=librdkafka=debug).
    if let Ok(debug) = std::env::var("CRM_KAFKA_TEST_DEBUG") {
        c.properties.push(("debug".into(), debug));
    }
    c
}

/// A connected log on a fresh topic.
pub async fn fresh_log(brokers: &str) -> Arc<dyn Log> {
    Arc::new(
        KafkaLog::connect(config(brokers))
            .await
            .expect("connect to Kafka"),
    )
}

/// The headers (and the key, as `key`) of the first `n` messages of the
/// topic, read with a plain rdkafka consumer: what another Kafka client sees.
pub async fn raw_headers(
    config: &KafkaConfig,
    n: usize,
) -> Vec<std::collections::BTreeMap<String, String>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", unique("crm-test-raw"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..config.partitions as i32 {
            tpl.add_partition_offset(&config.topic, p, rdkafka::Offset::Offset(0))
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while out.len() < n && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(500)) {
                let m = m.unwrap();
                let mut h = std::collections::BTreeMap::new();
                if let Some(hs) = m.headers() {
                    for x in hs.iter() {
                        h.insert(
                            x.key.to_string(),
                            String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                h.insert(
                    "key".into(),
                    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                );
                out.push(h);
            }
        }
        out
    })
    .await
    .unwrap()
}
