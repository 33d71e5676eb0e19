//! The command line (`shared/spec/cli.md`). Every flag also reads an
//! environment variable `CRM_LEDGER_<FLAG>`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "crm-ledger",
    version,
    about = "Event-sourced ledger for contact-center CRM data"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "CRM_LEDGER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole ledger in one process: publish API, log, projectors, query API.
    Serve(ServeArgs),
    /// Send an NDJSON file (or - for stdin) to a running ledger in batches.
    Publish(PublishArgs),
    /// The log's events in order as NDJSON (analysts).
    Replay(ReplayArgs),
    /// Rebuild read models from the log (offline) into a directory.
    Rebuild(RebuildArgs),
    /// Write a realistic, reproducible contact-center history as NDJSON.
    Demo(DemoArgs),
    /// Print the JSON Schemas, or check that a directory holds exactly them.
    Schemas(SchemasArgs),
    /// Make or hash API keys for `serve --api-keys FILE`.
    Keys(crate::keys::KeysArgs),
    /// Print `NAME DIGEST` per read model of a data dir as it is (server stopped).
    Digest(DigestArgs),
    /// Load figures: ingest, queries, memory, rebuild (docs/performance.md).
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogBackend {
    Embedded,
    Kafka,
}

/// Where the log is.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Data directory of the embedded log and of the read models.
    #[arg(long, env = "CRM_LEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Log backend.
    #[arg(
        long = "log",
        env = "CRM_LEDGER_LOG",
        value_enum,
        default_value = "embedded"
    )]
    pub backend: LogBackend,
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT] (with --log kafka).
    #[arg(long, env = "CRM_LEDGER_BROKERS")]
    pub brokers: Option<String>,
    /// Kafka topic (with --log kafka).
    #[arg(long, env = "CRM_LEDGER_TOPIC", default_value = "crm.events")]
    pub topic: String,
    /// Partitions of the Kafka topic when it is created (with --log kafka).
    #[arg(long, env = "CRM_LEDGER_PARTITIONS", default_value_t = 3)]
    pub partitions: u32,
    /// Replication factor of the Kafka topic when it is created (with --log
    /// kafka). Production: 3, with min.insync.replicas=2 (docs/kafka.md).
    #[arg(long, env = "CRM_LEDGER_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: u32,
    /// A librdkafka property, `KEY=VALUE` for every Kafka client, or
    /// `producer:KEY=VALUE` / `reader:KEY=VALUE` for the producer or the
    /// projections' readers only; applied after the ledger's own settings.
    /// Repeat the flag (comma-separated in the variable). E.g.
    /// client.rack=eu-west-1a, reader:queued.max.messages.kbytes=32768.
    #[arg(
        long = "kafka-property",
        env = "CRM_LEDGER_KAFKA_PROPERTIES",
        value_delimiter = ',',
        value_parser = kafka_property,
        value_name = "[producer:|reader:]KEY=VALUE"
    )]
    pub kafka_properties: Vec<KafkaProperty>,
}

/// Which Kafka clients a `--kafka-property` is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaClients {
    All,
    Producer,
    Readers,
}

/// One `--kafka-property`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaProperty {
    pub clients: KafkaClients,
    pub key: String,
    pub value: String,
}

/// `[producer:|reader:]KEY=VALUE` of a librdkafka property.
fn kafka_property(s: &str) -> Result<KafkaProperty, String> {
    let bad = || {
        format!(
            "{s:?} is not [producer:|reader:]KEY=VALUE (a librdkafka property, e.g. client.rack=eu-west-1a)"
        )
    };
    let (key, value) = s.split_once('=').ok_or_else(bad)?;
    let (clients, key) = match key.split_once(':') {
        None => (KafkaClients::All, key),
        Some(("producer", k)) => (KafkaClients::Producer, k),
        Some(("reader", k)) => (KafkaClients::Readers, k),
        Some(_) => return Err(bad()),
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(bad());
    }
    Ok(KafkaProperty {
        clients,
        key: key.to_string(),
        value: value.to_string(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Publish API and log only.
    Ingest,
    /// Projectors only (with the operations routes).
    Project,
    /// Projectors and query API.
    Query,
    /// Everything in one process.
    All,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// Address to listen on.
    #[arg(long, env = "CRM_LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Which parts this process runs.
    #[arg(long, env = "CRM_LEDGER_ROLE", value_enum, default_value = "all")]
    pub role: Role,
    /// Projections to run (comma-separated): customers, cases, campaigns.
    #[arg(
        long,
        env = "CRM_LEDGER_PROJECTIONS",
        value_delimiter = ',',
        default_value = "customers,cases,campaigns"
    )]
    pub projections: Vec<String>,
    /// Serve the read models in --data-dir without a log: queries only.
    #[arg(long, env = "CRM_LEDGER_READ_ONLY")]
    pub read_only: bool,
    /// Largest request body of POST /v1/events, in bytes.
    #[arg(long, env = "CRM_LEDGER_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Largest single event, in bytes.
    #[arg(long, env = "CRM_LEDGER_MAX_EVENT_BYTES", default_value_t = 256 * 1024)]
    pub max_event_bytes: usize,
    /// Most events in one publish request.
    #[arg(long, env = "CRM_LEDGER_MAX_BATCH_EVENTS", default_value_t = 10_000)]
    pub max_batch_events: usize,
    /// How many projections may apply a batch at once while this process is
    /// answering publishes (0: no limit). With `--role all` on few cores,
    /// one leaves the other cores to ingest; the projections catch up side
    /// by side once publishes stop.
    #[arg(long, env = "CRM_LEDGER_PROJECTION_LANES", default_value_t = 1)]
    pub projection_lanes: usize,
    /// Priority of the threads that fold and commit the read models'
    /// batches (Linux), so that queries and publishes get the CPU first:
    /// `idle` (the idle scheduling class: the folds run on CPU time nothing
    /// else wants), a nice value from 1 to 19, or 0 (the process's priority).
    #[arg(long, env = "CRM_LEDGER_PROJECTION_NICE", default_value = "idle")]
    pub projection_nice: crm_projector::FoldPriority,
    /// sled cache for the read models, in MiB.
    #[arg(long, env = "CRM_LEDGER_STORE_CACHE_MB", default_value_t = 256)]
    pub store_cache_mb: u64,
    /// API keys file: lines `ROLE HASH [NAME]` (ROLE publisher, reader or
    /// admin; HASH the hex BLAKE3 of the key, see `crm-ledger keys`). Keys can
    /// also come from CRM_LEDGER_API_KEYS=role:key,role:key (hashed at load).
    /// Without any key, authentication is off and serve listens on loopback
    /// addresses only.
    #[arg(long, env = "CRM_LEDGER_API_KEYS_FILE")]
    pub api_keys: Option<PathBuf>,
    /// Requests per second allowed per API key (per client address when
    /// authentication is off); 0 turns the limit off. Past it: 429 with
    /// Retry-After.
    #[arg(long, env = "CRM_LEDGER_RATE_LIMIT", default_value_t = 0.0)]
    pub rate_limit: f64,
    /// Requests a key may send at once above the rate (the bucket size).
    #[arg(long, env = "CRM_LEDGER_RATE_BURST", default_value_t = 100.0)]
    pub rate_burst: f64,
    /// Publish answers 507 while the data dir's disk has less free space than
    /// this (MiB), keeping room for the read models and the id index; 0 writes
    /// until the disk is full.
    #[arg(long, env = "CRM_LEDGER_LOG_MIN_FREE_MB", default_value_t = 64)]
    pub log_min_free_mb: u64,
    /// Event ids the embedded log's id index keeps in memory (about 27 bytes
    /// each) before writing them to a sorted run file; fewer means smaller
    /// and more numerous runs.
    #[arg(long, env = "CRM_LEDGER_LOG_INDEX_MEMTABLE_IDS", default_value_t = crm_log::embedded::DEFAULT_INDEX_MEMTABLE_IDS)]
    pub log_index_memtable_ids: usize,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// NDJSON file, or - for stdin.
    pub file: String,
    /// Base URL of the ledger.
    #[arg(long, env = "CRM_LEDGER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Events per request.
    #[arg(long, env = "CRM_LEDGER_BATCH", default_value_t = 1000)]
    pub batch: usize,
    /// Requests in flight at once.
    #[arg(long, env = "CRM_LEDGER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Print every rejected event's error (default: the first 20).
    #[arg(long, env = "CRM_LEDGER_VERBOSE")]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// Only events that occurred at or after this time (RFC 3339).
    #[arg(long, env = "CRM_LEDGER_FROM")]
    pub from: Option<String>,
    /// Only events that occurred before this time (RFC 3339).
    #[arg(long, env = "CRM_LEDGER_UNTIL")]
    pub until: Option<String>,
    /// Only events whose type starts with this prefix (e.g. `case.`).
    #[arg(long = "type", env = "CRM_LEDGER_TYPE")]
    pub type_prefix: Option<String>,
    /// Only events that concern this customer: its own, its interactions',
    /// its cases', its campaign contacts', and those of customers merged
    /// with it.
    #[arg(long, env = "CRM_LEDGER_CUSTOMER")]
    pub customer: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long, env = "CRM_LEDGER_OUT")]
    pub out: Option<PathBuf>,
    /// Leave out the ledger's own fields (recorded_at, position) so the output
    /// can be published to another ledger.
    #[arg(long, env = "CRM_LEDGER_PUBLISHABLE")]
    pub publishable: bool,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// Only this projection (default: all).
    #[arg(long, env = "CRM_LEDGER_PROJECTION")]
    pub projection: Option<String>,
    /// Keep events that occurred up to TIME (what had happened by then).
    #[arg(long, env = "CRM_LEDGER_AS_OF")]
    pub as_of: Option<String>,
    /// Keep events recorded up to TIME (what the ledger knew then).
    #[arg(long, env = "CRM_LEDGER_KNOWN_AT")]
    pub known_at: Option<String>,
    /// Directory of the rebuilt read models (serve it with serve --read-only
    /// --data-dir DIR); it must not exist yet or be empty. Without --out the
    /// data dir's own read models are replaced (not allowed with --as-of or
    /// --known-at).
    #[arg(long, env = "CRM_LEDGER_OUT")]
    pub out: Option<PathBuf>,
    /// Print `NAME DIGEST` per projection.
    #[arg(long, env = "CRM_LEDGER_DIGEST")]
    pub digest: bool,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Data directory whose read models (DIR/store) to digest.
    #[arg(long, env = "CRM_LEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Only this projection (default: all).
    #[arg(long, env = "CRM_LEDGER_PROJECTION")]
    pub projection: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of customers.
    #[arg(long, env = "CRM_LEDGER_CUSTOMERS", default_value_t = 1000)]
    pub customers: usize,
    /// Days of history.
    #[arg(long, env = "CRM_LEDGER_DAYS", default_value_t = 30)]
    pub days: u32,
    /// Random seed: the same seed gives the same history.
    #[arg(long, env = "CRM_LEDGER_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Write to this file instead of stdout.
    #[arg(long, env = "CRM_LEDGER_OUT")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SchemasArgs {
    /// Check that DIR holds exactly the schemas (non-zero exit when not).
    #[arg(long, env = "CRM_LEDGER_SCHEMAS_CHECK")]
    pub check: Option<PathBuf>,
    /// Write the schemas into DIR (one file each).
    #[arg(long, env = "CRM_LEDGER_SCHEMAS_WRITE", conflicts_with = "check")]
    pub write: Option<PathBuf>,
    /// Write the event reference page (docs/events.md) to FILE.
    #[arg(long, env = "CRM_LEDGER_SCHEMAS_DOCS")]
    pub docs: Option<PathBuf>,
}
