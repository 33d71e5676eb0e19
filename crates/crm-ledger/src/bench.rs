//! `crm-ledger bench`: the end-to-end load figures of `docs/performance.md`.
//!
//! Each mode starts `crm-ledger serve` as a child process (this same binary)
//! on a fresh data directory and a free loopback port, publishes demo events
//! (the `crm-ledger demo` history, cached once as NDJSON) through
//! `POST /v1/events`, and prints what it measured:
//!
//! * events/s, and the publish latency of each request (p50, p99, max);
//! * the server's resident memory, read from `/proc/PID/status`;
//! * the projection lag: how long ago the oldest acknowledged event that the
//!   read models do not show yet was acknowledged (sampled every 100 ms),
//!   and how long they take to catch up after the last publish;
//! * the **floor**, measured in the same run on the same events: parsing and
//!   type-checking them with `serde_json` alone (into the typed `Event`, no
//!   JSON Schema, no normalisation, no I/O) on one thread. Every rate is
//!   also printed as a fraction of it.
//!
//! Publishers are modelled like `crm-ledger publish`: events go to `--clients`
//! lanes by stream (a stream's events stay in order), each lane sends batches
//! of `--batch` events. Without `--rate` each lane sends its next batch when
//! the previous one is answered (closed loop: the most the server takes);
//! with `--rate` requests start on a fixed schedule whatever the answers
//! (open loop), and latency counts from the scheduled start. Every load is
//! bounded in events and time, and uses loopback only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use crm_events::{Event, Validator};
use serde::Deserialize;
use tokio::sync::mpsc;

/// `crm-ledger bench MODE`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: BenchMode,
}

#[derive(Debug, Subcommand)]
pub enum BenchMode {
    /// Durable ingest through POST /v1/events: events/s, latency, RSS, lag.
    Ingest(IngestArgs),
    /// GET /v1/customers/{id} and /v1/lookup at a fixed rate while ingest runs,
    /// on a store of --store-events events.
    Query(QueryArgs),
    /// Server RSS while ingesting --events events, at every --every events.
    Memory(MemoryArgs),
    /// Offline rebuild of all read models from a data dir's log (events/s).
    Rebuild(RebuildBenchArgs),
    /// The floor alone: the events parsed by serde_json, and validated.
    Floor(FloorArgs),
    /// A bare rdkafka producer (acks=all, idempotent, like the Kafka
    /// backend) sending the same events to a broker: the Kafka-mode ceiling.
    KafkaProducer(KafkaProducerArgs),
    /// Stage 4 of `bench rebuild --stages` (run by it, in its own process).
    #[command(hide = true)]
    StoreWrites(crate::bench_stages::StoreWritesArgs),
}

#[derive(Debug, Args)]
pub struct KafkaProducerArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub load: Load,
    /// Bootstrap servers, HOST:PORT.
    #[arg(long)]
    pub brokers: String,
    /// Topic (created with --partitions when missing).
    #[arg(long, default_value = "crm-bench-bare")]
    pub topic: String,
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Events to send.
    #[arg(long, default_value_t = 300_000)]
    pub events: u64,
    /// A librdkafka property of the producer, over the defaults above
    /// (repeatable), e.g. `linger.ms=1`: to compare the server's producer
    /// with a bare one configured alike.
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = producer_property)]
    pub properties: Vec<(String, String)>,
}

/// `KEY=VALUE` of a librdkafka property.
fn producer_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!(
            "{s:?} is not KEY=VALUE (a librdkafka property, e.g. linger.ms=1)"
        )),
    }
}

/// The events to publish.
#[derive(Debug, Clone, Args)]
pub struct Source {
    /// Customers of the demo history the events come from.
    #[arg(long, default_value_t = 200_000)]
    pub customers: usize,
    /// Days of the demo history.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Seed of the demo history.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// NDJSON file of events to publish; made from the demo history when
    /// missing (default: a cache file in the system's temporary directory).
    #[arg(long)]
    pub events_file: Option<PathBuf>,
}

/// The server under test.
#[derive(Debug, Clone, Args)]
pub struct ServerOpts {
    /// The server's data directory (default: a fresh temporary one, removed
    /// at the end unless --keep).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep the data directory at the end.
    #[arg(long)]
    pub keep: bool,
    /// More arguments for `crm-ledger serve`, space-separated, e.g.
    /// "--log kafka --brokers 127.0.0.1:9092".
    #[arg(long, allow_hyphen_values = true)]
    pub server_args: Option<String>,
    /// The `crm-ledger` binary to run as the server (default: this one), to
    /// compare builds under the same load.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
}

/// How events are published.
#[derive(Debug, Clone, Args)]
pub struct Load {
    /// Concurrent publishers (lanes by stream).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub server: ServerOpts,
    #[command(flatten)]
    pub load: Load,
    /// Events to publish.
    #[arg(long, default_value_t = 300_000)]
    pub events: u64,
    /// Open loop at this many events/s (0: closed loop, as fast as answered).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub server: ServerOpts,
    #[command(flatten)]
    pub load: Load,
    /// Events in the store before the query load (the first events of the
    /// source). A --data-dir whose log already holds them is reused.
    #[arg(long, default_value_t = 1_000_000)]
    pub store_events: u64,
    /// Query requests per second (each a customer view or a lookup, by a coin toss).
    #[arg(long, default_value_t = 5000.0)]
    pub qps: f64,
    /// Length of the query load.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Ingest rate during the query load, events/s (open loop; 0: none).
    #[arg(long, default_value_t = 10_000.0)]
    pub ingest_rate: f64,
    /// Connections the query load uses.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// The HTTP client of the query load: `light` (one hyper HTTP/1.1
    /// connection per worker, nothing else) or `reqwest` (a pooled client,
    /// as before session 16; about twice the load generator's CPU, which
    /// the server's two cores share).
    #[arg(long, value_enum, default_value_t = QueryClient::Light)]
    pub client: QueryClient,
}

/// The HTTP client the query load sends its requests with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryClient {
    Light,
    Reqwest,
}

#[derive(Debug, Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub server: ServerOpts,
    #[command(flatten)]
    pub load: Load,
    /// Events to publish.
    #[arg(long, default_value_t = 5_000_000)]
    pub events: u64,
    /// Print the RSS every this many events.
    #[arg(long, default_value_t = 1_000_000)]
    pub every: u64,
}

#[derive(Debug, Args)]
pub struct RebuildBenchArgs {
    /// A data directory with an embedded log (e.g. from `bench ingest --keep
    /// --data-dir DIR`); no server may be running on it.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Instead of a rebuild, time its stages one by one over the same
    /// events: reading the log, parsing, the projections' fold over an
    /// in-memory store, and sled committing the fold's writes.
    #[arg(long)]
    pub stages: bool,
    /// With --stages: the first this many events of the log (default all;
    /// they are held in memory).
    #[arg(long, requires = "stages")]
    pub events: Option<u64>,
    /// With --stages: keep the fold's writes in this file, for
    /// `bench store-writes --file FILE` (e.g. under a heap profiler).
    #[arg(long, requires = "stages")]
    pub writes_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FloorArgs {
    #[command(flatten)]
    pub source: Source,
    /// Events to measure.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
}

pub async fn bench(args: BenchArgs) -> Result<ExitCode> {
    if !matches!(args.mode, BenchMode::StoreWrites(_)) {
        print_machine();
    }
    match args.mode {
        BenchMode::Ingest(a) => ingest(a).await,
        BenchMode::Query(a) => query(a).await,
        BenchMode::Memory(a) => memory(a).await,
        BenchMode::Rebuild(a) => rebuild(a).await,
        BenchMode::KafkaProducer(a) => kafka_producer(a).await,
        BenchMode::StoreWrites(a) => crate::bench_stages::store_writes(a),
        BenchMode::Floor(a) => {
            let file = events_file(&a.source, a.events)?;
            let lines = read_lines(&file, 0, a.events)?;
            let floor = Floor::measure(&lines);
            floor.print();
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ------------------------------------------------------------------ machine

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The machine's disk traffic (Linux `/proc/vmstat`): bytes of dirty page
/// cache waiting to be written, and bytes written to disk since boot. A
/// load that overlaps the writeback of other processes' data (a build's
/// output, say) waits for it in every `fdatasync`: the bench prints both so
/// that such a run can be told from a slow server.
fn disk_traffic() -> Option<(u64, u64)> {
    let vmstat = std::fs::read_to_string("/proc/vmstat").ok()?;
    let field = |name: &str| {
        vmstat.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    // nr_dirty counts 4 KiB pages, pgpgout KiB.
    Some((field("nr_dirty")? * 4096, field("pgpgout")? * 1024))
}

/// "D MB dirty at the start, W MB written to disk during the load".
fn describe_disk(before: Option<(u64, u64)>) -> String {
    match (before, disk_traffic()) {
        (Some((dirty, out_before)), Some((_, out_after))) => format!(
            "machine: {} of dirty page cache at the start, {} written to disk during the load (every process)",
            mb(dirty),
            mb(out_after.saturating_sub(out_before))
        ),
        _ => "machine: disk traffic unknown (no /proc/vmstat)".into(),
    }
}

fn print_machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "machine: {cores} cores ({cpu}), load average {}",
        load_average()
    );
}

// ------------------------------------------------------------------ events

fn events_file(source: &Source, needed: u64) -> Result<PathBuf> {
    let path = match &source.events_file {
        Some(p) => p.clone(),
        None => std::env::temp_dir().join("crm-ledger-bench").join(format!(
            "demo-{}-{}-{}.ndjson",
            source.customers, source.days, source.seed
        )),
    };
    if !path.exists() {
        if source.events_file.is_some() {
            bail!("{} does not exist", path.display());
        }
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        let tmp = path.with_extension("tmp");
        eprintln!(
            "generating the demo history ({} customers, {} days, seed {}) into {}",
            source.customers,
            source.days,
            source.seed,
            path.display()
        );
        let started = Instant::now();
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        let mut failed = None;
        let config = crm_demo::DemoConfig::new(source.customers, source.days, source.seed);
        let summary = crm_demo::generate(&config, |v| {
            if failed.is_none() {
                let r = serde_json::to_writer(&mut out, &v)
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                if let Err(e) = r {
                    failed = Some(e);
                }
            }
        });
        if let Some(e) = failed {
            return Err(e).context("writing the demo history");
        }
        out.flush()?;
        drop(out);
        std::fs::rename(&tmp, &path)?;
        eprintln!(
            "{} events generated in {:.1} s",
            summary.events,
            started.elapsed().as_secs_f64()
        );
    }
    let have = count_lines(&path)?;
    if have < needed {
        bail!(
            "{} holds {have} events, {needed} are needed: raise --customers or --days",
            path.display()
        );
    }
    Ok(path)
}

fn count_lines(path: &Path) -> Result<u64> {
    let count_file = path.with_extension("count");
    let modified = std::fs::metadata(path)?.modified()?;
    if let Ok(m) = std::fs::metadata(&count_file) {
        if m.modified()? >= modified {
            if let Ok(n) = std::fs::read_to_string(&count_file)?.trim().parse() {
                return Ok(n);
            }
        }
    }
    let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut n = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            n += 1;
        }
    }
    let _ = std::fs::write(&count_file, n.to_string());
    Ok(n)
}

/// Lines `skip..skip + count` of an NDJSON file.
fn read_lines(path: &Path, skip: u64, count: u64) -> Result<Vec<String>> {
    let r = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut out = Vec::new();
    for line in r
        .lines()
        .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .skip(skip as usize)
        .take(count as usize)
    {
        out.push(line?);
    }
    Ok(out)
}

/// The capacity of each lane of a [`spawn_reader`] whose reader is joined
/// before the lanes are drained (every body read before the clock starts):
/// room for every body in any one lane, since streams do not spread evenly
/// over the lanes and a full lane would block the read for good.
fn preload_capacity(events: u64, batch: usize) -> usize {
    (events as usize / batch.max(1) + 2).max(4)
}

/// Reads `count` events from `skip` on a thread and hands them out as
/// NDJSON bodies of `batch` events, one channel per lane (by stream).
fn spawn_reader(
    path: PathBuf,
    skip: u64,
    count: u64,
    lanes: usize,
    batch: usize,
    capacity: usize,
) -> (
    Vec<mpsc::Receiver<Body>>,
    std::thread::JoinHandle<Result<u64>>,
) {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..lanes).map(|_| mpsc::channel(capacity)).unzip();
    let handle = std::thread::spawn(move || -> Result<u64> {
        let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
        let mut pending: Vec<Body> = (0..lanes).map(|_| Body::default()).collect();
        let mut line = Vec::new();
        let (mut seen, mut sent) = (0u64, 0u64);
        while sent < count {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if !line.iter().any(|b| !b.is_ascii_whitespace()) {
                continue;
            }
            seen += 1;
            if seen <= skip {
                continue;
            }
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            let lane = std::str::from_utf8(&line)
                .map(|l| crate::publish::lane_of(l, lanes))
                .unwrap_or(0);
            let b = &mut pending[lane];
            b.bytes.extend_from_slice(&line);
            b.events += 1;
            sent += 1;
            if b.events as usize >= batch {
                let full = std::mem::take(b);
                if txs[lane].blocking_send(full).is_err() {
                    return Ok(sent);
                }
            }
        }
        for (lane, b) in pending.into_iter().enumerate() {
            if b.events > 0 {
                let _ = txs[lane].blocking_send(b);
            }
        }
        Ok(sent)
    });
    (rxs, handle)
}

/// One request's NDJSON body.
#[derive(Default)]
struct Body {
    bytes: Vec<u8>,
    events: u32,
}

// ------------------------------------------------------------------ floor

/// The floor and the CPU cost of validation, on one thread, no I/O.
struct Floor {
    events: usize,
    bytes: usize,
    /// serde_json into the typed `Event`: events/s.
    typed: f64,
    /// serde_json into a `Value`: events/s.
    value: f64,
    /// The ingest validator (schema, typed parse, normalisation): events/s.
    validate: f64,
    /// Validation plus what publish computes per event (stream key, content
    /// hash, canonical JSON): events/s.
    ingest_cpu: f64,
}

impl Floor {
    fn measure(lines: &[String]) -> Floor {
        let sample = &lines[..lines.len().min(200_000)];
        let bytes = sample.iter().map(String::len).sum();
        let rate = |f: &dyn Fn(&str)| {
            // Best of two passes, to keep a stray pause out.
            let mut best = f64::MAX;
            for _ in 0..2 {
                let started = Instant::now();
                for l in sample {
                    f(l);
                }
                best = best.min(started.elapsed().as_secs_f64());
            }
            sample.len() as f64 / best.max(1e-9)
        };
        let typed = rate(&|l| {
            std::hint::black_box(Event::from_stored_json(l).expect("a valid event"));
        });
        let value = rate(&|l| {
            std::hint::black_box(serde_json::from_str::<serde_json::Value>(l).expect("JSON"));
        });
        let validator = Validator::new();
        let validate = rate(&|l| {
            std::hint::black_box(validator.validate_json(l.as_bytes()).ok());
        });
        let ingest_cpu = rate(&|l| {
            if let Ok(e) = validator.validate_json(l.as_bytes()) {
                std::hint::black_box((e.stream_key(), e.encode()));
            }
        });
        Floor {
            events: sample.len(),
            bytes,
            typed,
            value,
            validate,
            ingest_cpu,
        }
    }

    fn print(&self) {
        println!(
            "floor: {} events (mean {} bytes) parsed by serde_json into the typed Event on one thread: {:.0} events/s",
            self.events,
            self.bytes / self.events.max(1),
            self.typed
        );
        println!(
            "  for reference, one thread: serde_json Value {:.0}/s ({:.2}x floor), ingest validation {:.0}/s ({:.2}x), validation + hash + canonical JSON {:.0}/s ({:.2}x)",
            self.value,
            self.value / self.typed,
            self.validate,
            self.validate / self.typed,
            self.ingest_cpu,
            self.ingest_cpu / self.typed
        );
    }

    fn ratio(&self, rate: f64) -> String {
        format!("{:.2}x floor", rate / self.typed)
    }
}

// ------------------------------------------------------------------ server

struct Server {
    child: Child,
    url: String,
    dir: PathBuf,
    remove: bool,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Server {
    async fn start(opts: &ServerOpts) -> Result<Server> {
        let (dir, remove) = match &opts.data_dir {
            Some(d) => (d.clone(), false),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_nanos();
                (
                    std::env::temp_dir()
                        .join(format!("crm-ledger-bench-{}-{nanos}", std::process::id())),
                    !opts.keep,
                )
            }
        };
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("bench-server.log"))?;
        let bin = match &opts.server_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?,
        };
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        if let Some(extra) = &opts.server_args {
            cmd.args(extra.split_whitespace());
        }
        let child = cmd
            .env(
                "RUST_LOG",
                std::env::var("CRM_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting crm-ledger serve")?;
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            remove,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "the server exited ({status}); see {}",
                    server.dir.join("bench-server.log").display()
                );
            }
            if let Ok(r) = client.get(format!("{}/readyz", server.url)).send().await {
                // Measured once the server has read its store whole (in the
                // background after it is ready), not while it does.
                let ready = r.status().is_success();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                let check = body["store_check"]["state"].as_str();
                if ready && !matches!(check, Some("pending" | "running")) {
                    break;
                }
            }
            if Instant::now() > deadline {
                server.stop().await;
                bail!("the server did not get ready (and check its store) in 300 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (RSS, peak RSS) in bytes.
    fn rss(&self) -> Option<(u64, u64)> {
        rss_of(self.pid())
    }

    /// SIGTERM, then waits (SIGKILL after 60 s); removes a temporary dir.
    async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// CPU time (user + system) a process has used so far, from
/// `/proc/PID/stat` (`self` for this one), in clock ticks of 10 ms.
fn cpu_of(pid: &str) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after it.
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

pub(crate) fn rss_of(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

// ------------------------------------------------------------------ progress

/// What the publishers have had acknowledged, over time, per partition:
/// the projection lag is read against it.
#[derive(Default)]
struct Acks {
    /// (when, partition, highest offset acknowledged so far).
    history: Vec<(Instant, u32, u64)>,
    highest: BTreeMap<u32, u64>,
}

impl Acks {
    fn record(&mut self, token: &str) {
        let now = Instant::now();
        for part in token.split(',') {
            if let Some((p, o)) = part.split_once(':') {
                if let (Ok(p), Ok(o)) = (p.parse::<u32>(), o.parse::<u64>()) {
                    let h = self.highest.entry(p).or_insert(0);
                    if o > *h || self.history.iter().all(|(_, hp, _)| *hp != p) {
                        *h = (*h).max(o);
                        self.history.push((now, p, *h));
                    }
                }
            }
        }
    }

    /// How long ago the oldest acknowledged event past `applied` (per
    /// partition, the last applied offset) was acknowledged.
    fn lag(&self, applied: &BTreeMap<u32, Option<u64>>, now: Instant) -> Duration {
        let mut lag = Duration::ZERO;
        for (p, high) in &self.highest {
            let done = applied.get(p).copied().flatten();
            if done.is_some_and(|d| d >= *high) {
                continue;
            }
            if let Some((t, _, _)) = self
                .history
                .iter()
                .find(|(_, hp, o)| hp == p && done.is_none_or(|d| *o > d))
            {
                lag = lag.max(now.saturating_duration_since(*t));
            }
        }
        lag
    }

    fn covered_by(&self, applied: &BTreeMap<u32, Option<u64>>) -> bool {
        self.highest
            .iter()
            .all(|(p, h)| applied.get(p).copied().flatten().is_some_and(|d| d >= *h))
    }
}

#[derive(Deserialize)]
struct ProjectionInfo {
    position: Option<String>,
    #[serde(default)]
    lag: Option<u64>,
}

/// `GET /v1/projections`.
async fn projection_infos(client: &reqwest::Client, url: &str) -> Result<Vec<ProjectionInfo>> {
    Ok(client
        .get(format!("{url}/v1/projections"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Waits until no projection of the server lags behind its log.
async fn wait_no_lag(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let infos = projection_infos(client, url).await?;
        if infos.iter().all(|i| i.lag.unwrap_or(0) == 0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the projections did not catch up with the log");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Events in the server's log, as its projections see it (what each has
/// applied plus its lag); `None` when it runs no projection.
async fn logged(client: &reqwest::Client, url: &str) -> Result<Option<u64>> {
    Ok(projection_infos(client, url)
        .await?
        .iter()
        .map(|i| {
            let applied: u64 = i
                .position
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter_map(|part| part.split_once(':'))
                .filter_map(|(_, o)| o.parse::<u64>().ok())
                .map(|o| o + 1)
                .sum();
            applied + i.lag.unwrap_or(0)
        })
        .max())
}

/// Per partition, the last offset every projection has applied; `None`
/// when the server runs no projection (`--role ingest`).
async fn applied(
    client: &reqwest::Client,
    url: &str,
) -> Result<Option<BTreeMap<u32, Option<u64>>>> {
    let infos = projection_infos(client, url).await?;
    if infos.is_empty() {
        return Ok(None);
    }
    let mut out: BTreeMap<u32, Option<u64>> = BTreeMap::new();
    let mut partitions: Vec<BTreeMap<u32, u64>> = Vec::new();
    for i in &infos {
        let mut m = BTreeMap::new();
        for part in i.position.as_deref().unwrap_or("").split(',') {
            if let Some((p, o)) = part.split_once(':') {
                if let (Ok(p), Ok(o)) = (p.parse::<u32>(), o.parse::<u64>()) {
                    m.insert(p, o);
                }
            }
        }
        partitions.push(m);
    }
    let all: std::collections::BTreeSet<u32> =
        partitions.iter().flat_map(|m| m.keys().copied()).collect();
    for p in all {
        let min = partitions
            .iter()
            .map(|m| m.get(&p).copied())
            .min()
            .flatten();
        out.insert(p, min);
    }
    Ok(Some(out))
}

/// Watches for the machine itself stopping, with two witnesses:
/// - a thread that sleeps 10 ms at a time and notes each wake-up more than
///   50 ms late. On a virtual machine the whole guest is sometimes paused
///   for 0.1 s or so; every process waits, and so do the publishes;
/// - a thread that rewrites one 4 KiB block of a file in `probe_dir` (by
///   default on the server's disk) and `fdatasync`s it every 50 ms, and
///   notes each one that takes more than 50 ms: a virtual disk sometimes
///   completes nothing for 0.1-1 s, and every publish waits for its sync.
///
/// Printed beside the latencies so that such a stall is not taken for the
/// server's.
struct StallWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, Duration)>>,
    disk: Option<std::thread::JoinHandle<Vec<(Duration, Duration)>>>,
    probe: PathBuf,
}

impl StallWatch {
    const TICK: Duration = Duration::from_millis(10);
    const LATE: Duration = Duration::from_millis(50);
    const DISK_EVERY: Duration = Duration::from_millis(50);

    fn start(probe_dir: &Path) -> StallWatch {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let probe = probe_dir.join(format!(".bench-disk-probe-{}", std::process::id()));
        let disk = std::fs::File::create(&probe).ok().map(|file| {
            let stopped = stop.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut slow = Vec::new();
                let block = [7u8; 4096];
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    let before = Instant::now();
                    let synced = (&file)
                        .seek(std::io::SeekFrom::Start(0))
                        .and_then(|_| (&file).write_all(&block))
                        .and_then(|()| file.sync_data());
                    if synced.is_err() {
                        break;
                    }
                    let took = before.elapsed();
                    if took > Self::LATE {
                        slow.push((before - started, took));
                    }
                    std::thread::sleep(Self::DISK_EVERY.saturating_sub(took));
                }
                slow
            })
        });
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut stalls = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let before = Instant::now();
                std::thread::sleep(Self::TICK);
                let late = before.elapsed().saturating_sub(Self::TICK);
                if late > Self::LATE {
                    stalls.push((before - started, late));
                }
            }
            stalls
        });
        StallWatch {
            stop,
            thread,
            disk,
            probe,
        }
    }

    /// "machine stalls: ..." and "disk stalls: ..." for the report.
    fn finish(self) -> String {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let list = |v: &[(Duration, Duration)]| {
            v.iter()
                .take(8)
                .map(|(at, d)| format!("+{:.2}: {}", at.as_secs_f64(), ms(*d)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let stalls = self.thread.join().unwrap_or_default();
        let cpu = if stalls.is_empty() {
            format!(
                "machine stalls: none (a {} ms timer never woke up more than {} ms late)",
                Self::TICK.as_millis(),
                Self::LATE.as_millis()
            )
        } else {
            format!(
                "machine stalls: a {} ms timer woke up more than {} ms late {} times: {}",
                Self::TICK.as_millis(),
                Self::LATE.as_millis(),
                stalls.len(),
                list(&stalls)
            )
        };
        let disk = match self.disk.map(|t| t.join().unwrap_or_default()) {
            None => "disk stalls: not watched (the probe file could not be created)".to_string(),
            Some(slow) if slow.is_empty() => format!(
                "disk stalls: none (a 4 KiB write and fdatasync every {} ms never took more than {} ms)",
                Self::DISK_EVERY.as_millis(),
                Self::LATE.as_millis()
            ),
            Some(slow) => format!(
                "disk stalls: a 4 KiB write and fdatasync every {} ms took more than {} ms {} times: {}",
                Self::DISK_EVERY.as_millis(),
                Self::LATE.as_millis(),
                slow.len(),
                list(&slow)
            ),
        };
        let _ = std::fs::remove_file(&self.probe);
        format!("{cpu}\n{disk}")
    }
}

/// Samples the projection lag and the server's RSS every 100 ms.
struct Monitor {
    max_lag: Arc<Mutex<Duration>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    fn start(url: String, acks: Arc<Mutex<Acks>>) -> Monitor {
        let max_lag = Arc::new(Mutex::new(Duration::ZERO));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let m = max_lag.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.changed() => break,
                }
                if let Ok(Some(a)) = applied(&client, &url).await {
                    let lag = acks.lock().expect("lock").lag(&a, Instant::now());
                    let mut m = m.lock().expect("lock");
                    *m = (*m).max(lag);
                }
            }
        });
        Monitor {
            max_lag,
            stop,
            task,
        }
    }

    async fn finish(self) -> Duration {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let lag = *self.max_lag.lock().expect("lock");
        lag
    }
}

/// Waits until the projections show every acknowledged event; returns the
/// lag when called and the time it took.
async fn catch_up(
    client: &reqwest::Client,
    url: &str,
    acks: &Mutex<Acks>,
    timeout: Duration,
) -> Result<(Duration, Duration)> {
    let started = Instant::now();
    let Some(a) = applied(client, url).await? else {
        bail!("the server runs no projection");
    };
    let lag_now = acks.lock().expect("lock").lag(&a, started);
    loop {
        let a = applied(client, url).await?.unwrap_or_default();
        if acks.lock().expect("lock").covered_by(&a) {
            return Ok((lag_now, started.elapsed()));
        }
        if started.elapsed() > timeout {
            bail!("the projections did not catch up in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ------------------------------------------------------------------ publish

#[derive(Deserialize)]
struct Answer {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    consistency_token: Option<String>,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    failed: u64,
    first_error: Option<String>,
    latencies: Vec<Duration>,
    /// (sent this long after the start, latency) of every request.
    timeline: Vec<(Duration, Duration)>,
    /// Open loop: latency from the moment the request was sent (the
    /// latencies above count from its scheduled time).
    from_send: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.requests += other.requests;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.extend(other.latencies);
        self.timeline.extend(other.timeline);
        self.from_send.extend(other.from_send);
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Body,
    acks: &Mutex<Acks>,
    tally: &mut Tally,
) {
    tally.requests += 1;
    let resp = client
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body.bytes)
        .send()
        .await;
    let outcome: Result<Answer> = match resp {
        Ok(r) if r.status().is_success() => r.json::<Answer>().await.map_err(Into::into),
        Ok(r) => {
            let status = r.status();
            Err(anyhow!("{status}: {}", r.text().await.unwrap_or_default()))
        }
        Err(e) => Err(e.into()),
    };
    match outcome {
        Ok(a) => {
            tally.accepted += a.accepted;
            tally.duplicates += a.duplicates;
            tally.rejected += a.rejected;
            if a.rejected > 0 && tally.first_error.is_none() {
                tally.first_error = Some(format!("{} events rejected", a.rejected));
            }
            if let Some(t) = a.consistency_token {
                acks.lock().expect("lock").record(&t);
            }
        }
        Err(e) => {
            tally.failed += u64::from(body.events);
            if tally.first_error.is_none() {
                tally.first_error = Some(format!("{e:#}"));
            }
        }
    }
}

/// One HTTP/1.1 connection of the query load's light client.
struct LightConn(hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>);

/// GET `path` on the worker's own connection (opened, or opened again after
/// an error, on demand); true if the answer was a success and its body
/// arrived whole. The light client does per request what a real client
/// must: write the request, read the answer and its body, nothing more.
async fn light_get(conn: &mut Option<LightConn>, authority: &str, path: &str) -> bool {
    use http_body_util::BodyExt;
    if conn.is_none() {
        let Ok(stream) = tokio::net::TcpStream::connect(authority).await else {
            return false;
        };
        let _ = stream.set_nodelay(true);
        let io = hyper_util::rt::TokioIo::new(stream);
        let Ok((sender, driver)) = hyper::client::conn::http1::handshake(io).await else {
            return false;
        };
        tokio::spawn(driver);
        *conn = Some(LightConn(sender));
    }
    let Some(LightConn(sender)) = conn.as_mut() else {
        return false;
    };
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(http_body_util::Empty::new());
    let Ok(request) = request else {
        return false;
    };
    let ok = match sender.send_request(request).await {
        Ok(r) => {
            let good = r.status().is_success();
            good && r.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    };
    if !ok {
        // The connection may be gone: the next request opens a new one.
        *conn = None;
    }
    ok
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(1024)
        .build()?)
}

/// Publishes everything the lanes hold: closed loop (`rate` 0) or open
/// loop at `rate` events/s. Returns the tally and the elapsed time.
async fn publish_all(
    url: &str,
    lanes: Vec<mpsc::Receiver<Body>>,
    batch: usize,
    rate: f64,
    acks: Arc<Mutex<Acks>>,
) -> Result<(Tally, Duration)> {
    let client = client()?;
    let url = format!("{url}/v1/events");
    let started = Instant::now();
    let mut tally = Tally::default();
    if rate <= 0.0 {
        let mut tasks = Vec::new();
        for mut lane in lanes {
            let (client, url, acks) = (client.clone(), url.clone(), acks.clone());
            tasks.push(tokio::spawn(async move {
                let mut t = Tally::default();
                while let Some(body) = lane.recv().await {
                    let sent = Instant::now();
                    post(&client, &url, body, &acks, &mut t).await;
                    t.latencies.push(sent.elapsed());
                    t.timeline.push((sent - started, sent.elapsed()));
                }
                t
            }));
        }
        for task in tasks {
            tally.add(task.await?);
        }
    } else {
        let interval = Duration::from_secs_f64(batch as f64 / rate);
        // Bodies are taken from whichever lane has one: waiting on the lanes
        // in turn deadlocked a load that was not preloaded (the reader
        // blocked on one full lane while this loop waited on an empty one).
        // An open loop has several requests of a lane in flight anyway, so
        // it keeps no order between them.
        let (tx, mut merged) = mpsc::channel::<Body>(lanes.len() * 2);
        for mut lane in lanes {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(body) = lane.recv().await {
                    if tx.send(body).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut tasks = Vec::new();
        let mut k = 0u64;
        while let Some(body) = merged.recv().await {
            let scheduled = started + interval * k as u32;
            k += 1;
            tokio::time::sleep_until(scheduled.into()).await;
            let (client, url, acks) = (client.clone(), url.clone(), acks.clone());
            tasks.push(tokio::spawn(async move {
                let mut t = Tally::default();
                let sent = Instant::now();
                post(&client, &url, body, &acks, &mut t).await;
                t.from_send.push(sent.elapsed());
                t.latencies.push(scheduled.elapsed());
                t.timeline.push((scheduled - started, scheduled.elapsed()));
                t
            }));
        }
        for task in tasks {
            tally.add(task.await?);
        }
    }
    Ok((tally, started.elapsed()))
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn latency_line(latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    format!(
        "p50 {}, p99 {}, max {} (n={})",
        ms(percentile(latencies, 0.50)),
        ms(percentile(latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len()
    )
}

fn report_tally(tally: &mut Tally, elapsed: Duration, floor: &Floor, batch: usize) {
    let done = tally.accepted + tally.duplicates;
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "ingest: {done} events in {:.2} s: {rate:.0} events/s = {} (accepted {}, duplicates {}, rejected {}, failed {})",
        elapsed.as_secs_f64(),
        floor.ratio(rate),
        tally.accepted,
        tally.duplicates,
        tally.rejected,
        tally.failed
    );
    if let Some(e) = &tally.first_error {
        println!("  first error: {e}");
    }
    println!(
        "publish latency per request of {batch} events: {}",
        latency_line(&mut tally.latencies)
    );
    // Without the first second (a fresh server warms up: connections, the
    // phone library's regular expressions, the allocator's first pages).
    let mut steady: Vec<Duration> = tally
        .timeline
        .iter()
        .filter(|(at, _)| *at >= Duration::from_secs(1))
        .map(|(_, l)| *l)
        .collect();
    if !steady.is_empty() {
        println!(
            "  sent after the first second: {}",
            latency_line(&mut steady)
        );
    }
    if !tally.from_send.is_empty() {
        println!(
            "  from the moment each was sent (not its schedule): {}",
            latency_line(&mut tally.from_send)
        );
    }
    // When the tail happened: the slowest requests, by send time.
    tally.timeline.sort_by_key(|(_, l)| std::cmp::Reverse(*l));
    let mut slow: Vec<_> = tally.timeline.iter().take(6).copied().collect();
    slow.sort_by_key(|(at, _)| *at);
    if !slow.is_empty() {
        println!(
            "  slowest requests (sent at +s: latency): {}",
            slow.iter()
                .map(|(at, l)| format!("+{:.2}: {}", at.as_secs_f64(), ms(*l)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

// ------------------------------------------------------------------ modes

async fn ingest(a: IngestArgs) -> Result<ExitCode> {
    let file = events_file(&a.source, a.events)?;
    let lines = read_lines(&file, 0, a.events.min(200_000))?;
    let floor = Floor::measure(&lines);
    drop(lines);
    floor.print();

    // Every body is read before the clock starts when it fits in memory.
    let preload = a.events <= 2_000_000;
    let capacity = if preload {
        preload_capacity(a.events, a.load.batch)
    } else {
        32
    };
    let (lanes, reader) = spawn_reader(file, 0, a.events, a.load.clients, a.load.batch, capacity);
    if preload {
        // Wait for the reader without blocking the runtime.
        let reader = tokio::task::spawn_blocking(move || reader.join()).await?;
        reader.map_err(|_| anyhow!("the reader panicked"))??;
    }

    let server = Server::start(&a.server).await?;
    println!(
        "server: pid {}, {} ({}), RSS at start {}",
        server.pid(),
        server.url,
        a.server.server_args.as_deref().unwrap_or("embedded log"),
        server.rss().map_or("?".into(), |(r, _)| mb(r))
    );
    let load_before = load_average();
    let disk_before = disk_traffic();
    let acks = Arc::new(Mutex::new(Acks::default()));
    let monitor = Monitor::start(server.url.clone(), acks.clone());
    let stalls = StallWatch::start(
        a.server
            .data_dir
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(&std::env::temp_dir()),
    );
    let result = publish_all(&server.url, lanes, a.load.batch, a.rate, acks.clone()).await;
    let stalls = stalls.finish();
    let disk = describe_disk(disk_before);
    let max_lag = monitor.finish().await;
    let (mut tally, elapsed) = match result {
        Ok(r) => r,
        Err(e) => {
            server.stop().await;
            return Err(e);
        }
    };
    println!(
        "load: {} clients, batches of {}, {}; machine load average before {load_before}, after {}",
        a.load.clients,
        a.load.batch,
        if a.rate > 0.0 {
            format!("open loop at {:.0} events/s", a.rate)
        } else {
            "closed loop".into()
        },
        load_average()
    );
    println!("{disk}");
    println!("{stalls}");
    report_tally(&mut tally, elapsed, &floor, a.load.batch);
    let rss = server.rss();
    let catch = catch_up(&client()?, &server.url, &acks, Duration::from_secs(600)).await;
    match catch {
        Ok((lag_end, took)) => println!(
            "projection lag: max {} during the run, {} at the last answer; all projections caught up {} after it ({:.2} s after the first publish)",
            ms(max_lag),
            ms(lag_end),
            ms(took),
            (elapsed + took).as_secs_f64()
        ),
        Err(e) => println!("projection lag: max {} during the run; {e}", ms(max_lag)),
    }
    if let Some((now, peak)) = rss {
        let after = server.rss().map_or("?".into(), |(r, _)| mb(r));
        println!(
            "server RSS: {} at the end of the load, {after} after catch-up, peak {}",
            mb(now),
            mb(peak)
        );
    }
    server.stop().await;
    Ok(if tally.rejected + tally.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn memory(a: MemoryArgs) -> Result<ExitCode> {
    let file = events_file(&a.source, a.events)?;
    let lines = read_lines(&file, 0, a.events.min(200_000))?;
    let floor = Floor::measure(&lines);
    drop(lines);
    floor.print();
    let server = Server::start(&a.server).await?;
    println!(
        "server: pid {}, RSS at start {}",
        server.pid(),
        server.rss().map_or("?".into(), |(r, _)| mb(r))
    );
    let acks = Arc::new(Mutex::new(Acks::default()));
    let mut total = Tally::default();
    let started = Instant::now();
    let mut done = 0u64;
    while done < a.events {
        let n = a.every.min(a.events - done);
        let (lanes, reader) = spawn_reader(file.clone(), done, n, a.load.clients, a.load.batch, 16);
        let (tally, elapsed) =
            match publish_all(&server.url, lanes, a.load.batch, 0.0, acks.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    server.stop().await;
                    return Err(e);
                }
            };
        let _ = tokio::task::spawn_blocking(move || reader.join()).await;
        done += n;
        let got = tally.accepted + tally.duplicates;
        let rss_now = server.rss();
        let caught = catch_up(&client()?, &server.url, &acks, Duration::from_secs(1800)).await;
        let rss_caught = server.rss();
        println!(
            "{done} events ingested ({got} in this step at {:.0} events/s; load average {}): server RSS {} at the last answer, {} after the projections caught up ({}), peak so far {}",
            got as f64 / elapsed.as_secs_f64().max(1e-9),
            load_average(),
            rss_now.map_or("?".into(), |(r, _)| mb(r)),
            rss_caught.map_or("?".into(), |(r, _)| mb(r)),
            caught.map_or_else(|e| e.to_string(), |(_, t)| format!("in {}", ms(t))),
            rss_caught.map_or("?".into(), |(_, p)| mb(p)),
        );
        total.add(tally);
    }
    let elapsed = started.elapsed();
    let du = dir_size(&server.dir);
    report_tally(&mut total, elapsed, &floor, a.load.batch);
    println!("data dir: {} on disk", mb(du));
    server.stop().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Query targets from the stored events: customer ids and identities as
/// published.
#[allow(clippy::type_complexity)]
fn query_targets(path: &Path, count: u64) -> Result<(Vec<String>, Vec<(String, String)>)> {
    let r = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let (mut ids, mut identities) = (Vec::new(), Vec::new());
    for line in r.lines().take(count as usize) {
        let line = line?;
        if !line.contains("\"customer.registered\"") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if let Some(id) = v["customer_id"].as_str() {
            ids.push(id.to_string());
        }
        if let Some(list) = v["data"]["identities"].as_array() {
            for i in list {
                if let (Some(k), Some(val)) = (i["kind"].as_str(), i["value"].as_str()) {
                    identities.push((k.to_string(), val.to_string()));
                }
            }
        }
    }
    if ids.is_empty() || identities.is_empty() {
        bail!("no customer.registered events in the first {count} events");
    }
    Ok((ids, identities))
}

fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn query(a: QueryArgs) -> Result<ExitCode> {
    let extra = (a.ingest_rate * a.seconds as f64 * 1.5) as u64 + a.load.batch as u64;
    let file = events_file(&a.source, a.store_events + extra)?;
    let lines = read_lines(&file, 0, a.store_events.min(200_000))?;
    let floor = Floor::measure(&lines);
    drop(lines);
    floor.print();
    let (ids, identities) = query_targets(&file, a.store_events)?;

    let server = Server::start(&a.server).await?;
    let client = client()?;
    let acks = Arc::new(Mutex::new(Acks::default()));
    // The store: the first --store-events events (skipped when the log
    // already holds them). Counted from the log, not from what the read
    // models had applied when the last server stopped: the load after it
    // must publish new events, not duplicates.
    let have: u64 = logged(&client, &server.url).await?.unwrap_or_default();
    if have < a.store_events {
        eprintln!(
            "building the store: publishing {} events",
            a.store_events - have
        );
        let (lanes, reader) = spawn_reader(
            file.clone(),
            have,
            a.store_events - have,
            a.load.clients,
            a.load.batch,
            16,
        );
        let (mut tally, elapsed) =
            publish_all(&server.url, lanes, a.load.batch, 0.0, acks.clone()).await?;
        let _ = tokio::task::spawn_blocking(move || reader.join()).await;
        report_tally(&mut tally, elapsed, &floor, a.load.batch);
    }
    let (_, took) = catch_up(&client, &server.url, &acks, Duration::from_secs(3600)).await?;
    // Also what an earlier server left unapplied when it stopped: the
    // queries are to be measured with no backlog behind them.
    wait_no_lag(&client, &server.url, Duration::from_secs(3600)).await?;
    println!(
        "store: {} events (projections caught up {} after the last publish); server RSS {}",
        a.store_events.max(have),
        ms(took),
        server.rss().map_or("?".into(), |(r, _)| mb(r))
    );

    // Ingest in the background, open loop.
    let ingest = if a.ingest_rate > 0.0 {
        let n = (a.ingest_rate * a.seconds as f64) as u64;
        let (lanes, _reader) = spawn_reader(
            file.clone(),
            a.store_events.max(have),
            n,
            a.load.clients,
            a.load.batch,
            (n as usize / a.load.batch / a.load.clients + 2).max(4),
        );
        let (url, acks, batch, rate) = (
            server.url.clone(),
            acks.clone(),
            a.load.batch,
            a.ingest_rate,
        );
        // Let the reader fill the lanes first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Some(tokio::spawn(async move {
            publish_all(&url, lanes, batch, rate, acks).await
        }))
    } else {
        None
    };

    let load_before = load_average();
    let cpu_before = (cpu_of("self"), cpu_of(&server.pid().to_string()));
    let interval = Duration::from_secs_f64(1.0 / a.qps);
    let total = (a.qps * a.seconds as f64) as u64;
    // A fixed pool of connections takes requests in schedule order; a
    // request waiting for a free connection counts as late (latency from
    // schedule), as it would for a real client.
    let (work_tx, work_rx) = mpsc::unbounded_channel::<(bool, String, Instant)>();
    let work_rx = Arc::new(tokio::sync::Mutex::new(work_rx));
    let mut workers = Vec::new();
    let authority = server.url.trim_start_matches("http://").to_string();
    for _ in 0..a.connections.max(1) {
        let (client, work_rx) = (client.clone(), work_rx.clone());
        let (kind, authority) = (a.client, authority.clone());
        workers.push(tokio::spawn(async move {
            let mut done_here = Vec::new();
            let mut conn: Option<LightConn> = None;
            loop {
                let next = work_rx.lock().await.recv().await;
                let Some((lookup, url, scheduled)) = next else {
                    break;
                };
                let began = Instant::now();
                let ok = match kind {
                    QueryClient::Reqwest => match client.get(&url).send().await {
                        Ok(r) => {
                            let good = r.status().is_success();
                            let body = r.bytes().await;
                            good && body.is_ok()
                        }
                        Err(_) => false,
                    },
                    QueryClient::Light => {
                        let path = &url[url.find("/v1/").unwrap_or(0)..];
                        light_get(&mut conn, &authority, path).await
                    }
                };
                let done = Instant::now();
                done_here.push((lookup, ok, done - began, done - scheduled));
            }
            done_here
        }));
    }
    let started = Instant::now();
    let mut rng_state = a.source.seed | 1;
    let mut next = || {
        // xorshift: a fixed, cheap sequence of targets.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for k in 0..total {
        let scheduled = started + interval * k as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        // Which endpoint by a coin, not by turns: at a rate whose period
        // matches the ingest's requests, turns would put one endpoint in
        // every projection commit and the other in none.
        let lookup = next() >> 63 == 1;
        let url = if lookup {
            let (kind, value) = &identities[(next() % identities.len() as u64) as usize];
            format!(
                "{}/v1/lookup?kind={}&value={}",
                server.url,
                encode_path(kind),
                encode_path(value)
            )
        } else {
            let id = &ids[(next() % ids.len() as u64) as usize];
            format!("{}/v1/customers/{}", server.url, encode_path(id))
        };
        let _ = work_tx.send((lookup, url, scheduled));
    }
    drop(work_tx);
    let mut lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut sched: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut errors = [0u64; 2];
    for w in workers {
        for (lookup, ok, l, s) in w.await? {
            let i = usize::from(lookup);
            lat[i].push(l);
            sched[i].push(s);
            if !ok {
                errors[i] += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let load_after = load_average();
    let cpu_after = (cpu_of("self"), cpu_of(&server.pid().to_string()));
    let used = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
        (Some(b), Some(a)) => format!(
            "{:.1} s ({:.0}% of a core)",
            (a - b).as_secs_f64(),
            100.0 * (a - b).as_secs_f64() / elapsed.as_secs_f64()
        ),
        _ => "?".into(),
    };
    println!(
        "CPU during the query load: server {}, this load generator (queries and ingest) {}",
        used(cpu_before.1, cpu_after.1),
        used(cpu_before.0, cpu_after.0)
    );
    println!(
        "queries: {total} in {:.2} s ({:.0}/s scheduled at {:.0}/s), ingest {}; load average before {load_before}, after {load_after}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        a.qps,
        if a.ingest_rate > 0.0 {
            format!("open loop at {:.0} events/s", a.ingest_rate)
        } else {
            "off".into()
        }
    );
    for (i, name) in ["GET /v1/customers/{id}", "GET /v1/lookup"]
        .iter()
        .enumerate()
    {
        println!(
            "  {name}: {} errors; latency from send {}; from schedule {}",
            errors[i],
            latency_line(&mut lat[i]),
            latency_line(&mut sched[i])
        );
    }
    if let Some(ingest) = ingest {
        let (mut tally, elapsed) = ingest.await??;
        print!("  during it, ");
        report_tally(&mut tally, elapsed, &floor, a.load.batch);
    }
    println!(
        "server RSS: {}",
        server
            .rss()
            .map_or("?".into(), |(r, p)| format!("{} (peak {})", mb(r), mb(p)))
    );
    server.stop().await;
    Ok(if errors.iter().sum::<u64>() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn rebuild(a: RebuildBenchArgs) -> Result<ExitCode> {
    let log_dir = a.data_dir.join("log");
    // The floor on the stored events themselves.
    let mut lines = Vec::new();
    crm_log::embedded::scan_dir(&log_dir, |r| {
        lines.push(
            String::from_utf8(r.payload).map_err(|e| {
                crm_log::LogError::Corrupt(format!("stored event is not UTF-8: {e}"))
            })?,
        );
        Ok(lines.len() < 200_000)
    })?;
    if lines.is_empty() {
        bail!("{} holds no events", log_dir.display());
    }
    let floor = Floor::measure(&lines);
    drop(lines);
    floor.print();
    if a.stages {
        crate::bench_stages::stages(&a.data_dir, a.events, a.writes_file.as_deref(), floor.typed)?;
        return Ok(ExitCode::SUCCESS);
    }
    let log = crate::serve::open_embedded(&a.data_dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let out = std::env::temp_dir().join(format!("crm-ledger-bench-rebuild-{nanos}"));
    let load_before = load_average();
    let dyn_log: Arc<dyn crm_log::Log> = log.clone();
    let result = crate::rebuild::rebuild_into(
        dyn_log,
        &out.join("store"),
        crate::projections::all(),
        crm_projector::EventFilter::default(),
        false,
    )
    .await;
    log.close();
    let peak = rss_of(std::process::id());
    let _ = std::fs::remove_dir_all(&out);
    let r = result?;
    let n = r.digests.len().max(1) as u64;
    let log_events = r.events / n;
    let rate = r.events as f64 / r.seconds.max(1e-9);
    println!(
        "rebuild: {log_events} log events into {} read models in {:.2} s: {:.0} log events/s, {rate:.0} event applications/s = {} (load average before {load_before}, after {})",
        n,
        r.seconds,
        log_events as f64 / r.seconds.max(1e-9),
        floor.ratio(rate),
        load_average()
    );
    if let Some((_, peak)) = peak {
        println!("peak RSS of this process: {}", mb(peak));
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends the events with a bare rdkafka producer, in batches of `--batch`
/// per client, each batch awaited whole (like a publish request).
async fn kafka_producer(a: KafkaProducerArgs) -> Result<ExitCode> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::ClientConfig;

    let file = events_file(&a.source, a.events)?;
    let lines = read_lines(&file, 0, a.events.min(200_000))?;
    let floor = Floor::measure(&lines);
    drop(lines);
    floor.print();
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &a.brokers)
        .create()?;
    let topic = NewTopic::new(&a.topic, a.partitions, TopicReplication::Fixed(1));
    let _ = admin.create_topics([&topic], &AdminOptions::new()).await?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &a.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.messages", "1000000")
        .set("partitioner", "murmur2_random");
    for (k, v) in &a.properties {
        config.set(k, v);
    }
    let producer: FutureProducer = config.create()?;
    // Every body is read before the clock starts.
    let (lanes, reader) = spawn_reader(
        file,
        0,
        a.events,
        a.load.clients,
        a.load.batch,
        preload_capacity(a.events, a.load.batch),
    );
    let reader = tokio::task::spawn_blocking(move || reader.join()).await?;
    reader.map_err(|_| anyhow!("the reader panicked"))??;
    let load_before = load_average();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut lane in lanes {
        let producer = producer.clone();
        let topic = a.topic.clone();
        tasks.push(tokio::spawn(async move {
            let (mut sent, mut failed) = (0u64, 0u64);
            let mut latencies = Vec::new();
            while let Some(body) = lane.recv().await {
                let began = Instant::now();
                let mut deliveries = Vec::with_capacity(body.events as usize);
                for line in body.bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let key = stream_key_of(line);
                    let record = FutureRecord::to(&topic).key(&key).payload(line);
                    match producer.send_result(record) {
                        Ok(d) => deliveries.push(d),
                        Err(_) => failed += 1,
                    }
                }
                for d in deliveries {
                    match d.await {
                        Ok(Ok(_)) => sent += 1,
                        _ => failed += 1,
                    }
                }
                latencies.push(began.elapsed());
            }
            (sent, failed, latencies)
        }));
    }
    let (mut sent, mut failed, mut latencies) = (0, 0, Vec::new());
    for t in tasks {
        let (s, f, l) = t.await?;
        sent += s;
        failed += f;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    let rate = sent as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "bare rdkafka producer: {sent} events in {:.2} s: {rate:.0} events/s = {} ({failed} failed; {} clients, batches of {}; load average before {load_before}, after {})",
        elapsed.as_secs_f64(),
        floor.ratio(rate),
        a.load.clients,
        a.load.batch,
        load_average()
    );
    println!(
        "latency per batch of {}: {}",
        a.load.batch,
        latency_line(&mut latencies)
    );
    Ok(ExitCode::SUCCESS)
}

/// The stream key of an event line (`family/id`), as the Kafka backend keys
/// its messages.
fn stream_key_of(line: &[u8]) -> Vec<u8> {
    #[derive(Deserialize)]
    struct S<'a> {
        #[serde(rename = "type", borrow)]
        t: Option<&'a str>,
        customer_id: Option<&'a str>,
        interaction_id: Option<&'a str>,
        case_id: Option<&'a str>,
        campaign_id: Option<&'a str>,
    }
    let Ok(s) = serde_json::from_slice::<S<'_>>(line) else {
        return Vec::new();
    };
    let (family, id) = match s.t.and_then(|t| t.split('.').next()).unwrap_or("") {
        "customer" | "consent" => ("customer", s.customer_id),
        "interaction" => ("interaction", s.interaction_id),
        "case" => ("case", s.case_id),
        "campaign" => ("campaign", s.campaign_id),
        _ => ("", None),
    };
    format!("{family}/{}", id.unwrap_or("")).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_producer_property_is_key_equals_value_and_a_bad_one_is_named() {
        assert_eq!(
            producer_property("linger.ms=1"),
            Ok(("linger.ms".to_string(), "1".to_string()))
        );
        assert_eq!(
            producer_property(" compression.type = lz4 "),
            Ok(("compression.type".to_string(), "lz4".to_string()))
        );
        for bad in ["linger.ms", "=1", ""] {
            let e = producer_property(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    /// `bench kafka-producer --events 1000000` once hung for good: its lanes
    /// had room for a quarter of the bodies each, and one lane got more.
    #[test]
    fn a_preload_finishes_when_one_lane_gets_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        // Events without a stream id all go to one lane.
        std::fs::write(&path, "{}\n".repeat(10_000)).unwrap();
        let (lanes, reader) = spawn_reader(path, 0, 10_000, 4, 100, preload_capacity(10_000, 100));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(reader.join()).unwrap());
        let read = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the read blocked on a full lane")
            .expect("the reader panicked")
            .unwrap();
        assert_eq!(read, 10_000);
        let mut bodies: Vec<usize> = lanes.iter().map(|l| l.len()).collect();
        bodies.sort();
        assert_eq!(bodies, [0, 0, 0, 100]);
    }
}
