//! # crm-log-kafka
//!
//! The Kafka backend of the crm-ledger event log: [`KafkaLog`] implements
//! [`crm_log::Log`] on one Kafka topic, through librdkafka (the `rdkafka`
//! crate, librdkafka built from its bundled sources).
//!
//! ## Topic layout
//! One topic (default `crm.events`), created when missing with infinite
//! retention (`retention.ms=-1`, `retention.bytes=-1`): the log is the source
//! of truth and is never deleted. Each event is one message:
//!
//! | part | content |
//! |---|---|
//! | key | the stream key (`family/id`, [`Append::stream_key`]): it picks the partition, so a stream lives in one partition, in order |
//! | value | the stored event JSON ([`Append::payload`]) |
//! | header `event_id` | the idempotency key |
//! | header `type`, `version` | the event type and its schema version (decimal) |
//! | header `content_hash` | the content digest, 64 lowercase hex digits |
//!
//! A [`Position`] is the message's partition and offset.
//!
//! ## Writing
//! One idempotent producer (`enable.idempotence=true`, `acks=all`, at most 5
//! requests in flight, the Java-compatible `murmur2_random` partitioner),
//! which never bumps its own epoch: librdkafka never expires its messages
//! (`message.timeout.ms=0`), and a failure that could leave a gap stops it
//! (`enable.gapless.guarantee=true`); a stopped producer is replaced by a
//! new one, with a new producer id.
//! `append` enqueues the batch in order and answers only when every message
//! has its delivery report: nothing is answered `Appended` before the
//! in-sync replicas have it. The idempotent producer keeps the order of each
//! partition across retries, hence of each stream. A broker that is down or
//! slow makes `append` answer [`LogError::Unavailable`] after
//! [`KafkaConfig::append_timeout`] (the backend's own bound on the whole
//! call): it never hangs. The producer queue is
//! bounded (`queue.buffering.max.messages`); when it is full, `append` waits
//! for room within the same bound (backpressure, no unbounded buffer).
//!
//! A batch that fails may have been written in part: the caller retries it
//! with the same event ids. Kafka cannot refuse a re-published `event_id` at
//! append time, so [`Log::deduplicates`] is false and a re-publish answers
//! `Appended` again; consumers deduplicate by `event_id` (the header lets
//! them do so without parsing the value).
//!
//! ## Reading: offsets belong to the consumer
//! A reader assigns *every* partition of the topic by hand (no group
//! membership, no rebalancing) at the offsets of the [`Checkpoint`] it is
//! started from, with `enable.auto.commit=false`. The consumer stores its
//! checkpoint beside the state it derives, in the same atomic write, so state
//! and position can never disagree; Kafka's committed offsets are not used
//! (this backend never commits). This is how Quickwit's Kafka source works:
//! the checkpoint travels with the index, Kafka's consumer groups are at most
//! advisory. A checkpoint beyond a partition's end, or before its start, is
//! an error, never a silent skip: [`Log::reader`] checks it against the
//! watermarks, and `auto.offset.reset=error` catches it while reading.
//!
//! See `docs/kafka.md` for operations, and for what differs when the tests
//! run against the Tansu broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crm_log::{Append, AppendOutcome, Checkpoint, Log, LogError, LogReader, LogRecord, Position};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

mod config;

pub use config::{KafkaConfig, DEFAULT_TOPIC};

/// Header carrying the event id.
pub const HEADER_EVENT_ID: &str = "event_id";
/// Header carrying the event type.
pub const HEADER_TYPE: &str = "type";
/// Header carrying the event's schema version, in decimal.
pub const HEADER_VERSION: &str = "version";
/// Header carrying the content hash, 64 lowercase hex digits.
pub const HEADER_CONTENT_HASH: &str = "content_hash";

/// How long `append` sleeps before retrying a full producer queue.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// The Kafka log. See the crate documentation.
pub struct KafkaLog {
    config: KafkaConfig,
    /// Replaced when it is stuck (see [`KafkaLog::renew_producer`]).
    producer: Arc<RwLock<Arc<FutureProducer>>>,
    /// Set while a replacement is being considered.
    renewing: Arc<AtomicBool>,
    /// Metadata, watermarks and topic administration.
    admin: Arc<AdminClient<DefaultClientContext>>,
}

/// Why an append failed, as far as the producer's health goes.
enum Failure {
    /// The producer itself may be stuck: delivery timed out, or the broker
    /// refused the messages for a reason that is not theirs (e.g. its
    /// producer id or epoch).
    Stuck,
    /// The messages' own fault (too large, invalid), or a shut-down producer.
    Other,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.config.brokers)
            .field("topic", &self.config.topic)
            .finish()
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().clamp(1, i32::MAX as u128).to_string()
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("{what}: {e}"))
}

/// The content hash as the header carries it: 64 lowercase hex digits,
/// written into `buf` (no allocation; `write!` of each byte was 4% of the
/// server's CPU in Kafka mode).
fn hash_hex<'a>(hash: &[u8; 32], buf: &'a mut [u8; 64]) -> &'a str {
    hex::encode_to_slice(hash, buf).expect("64 bytes for 32");
    std::str::from_utf8(buf).expect("hex digits are ASCII")
}

fn apply(c: &mut ClientConfig, props: &[(String, String)]) {
    for (k, v) in props {
        c.set(k, v);
    }
}

fn common_config(cfg: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", client_id)
        // Only this backend creates the topic, with the right settings; a
        // broker's auto-created topic would have finite retention.
        .set("allow.auto.create.topics", "false");
    apply(&mut c, &cfg.properties);
    c
}

fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = common_config(cfg, &cfg.client_id);
    let request_timeout = cfg.append_timeout.min(Duration::from_secs(30));
    // librdkafka never expires a message (`message.timeout.ms=0`, infinite)
    // and stops the producer on a failure that could leave a gap in the
    // sequence (`enable.gapless.guarantee`), instead of bumping its producer
    // epoch by itself in either case: Tansu 0.6 (the test broker) cannot take
    // a locally bumped epoch (docs/kafka.md). `append` is bounded by the
    // backend's own timer, and a stopped (fatal) producer is replaced.
    c.set("enable.idempotence", "true")
        .set("enable.gapless.guarantee", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", "0")
        .set("request.timeout.ms", millis(request_timeout))
        .set(
            "queue.buffering.max.messages",
            cfg.max_queued_messages.to_string(),
        )
        .set("partitioner", "murmur2_random");
    apply(&mut c, &cfg.producer_properties);
    c
}

fn consumer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = common_config(cfg, &format!("{}-reader", cfg.client_id));
    c.set("group.id", cfg.group_id())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error")
        // Each reader prefetches at most 16 MiB (librdkafka's default is 64
        // MiB per reader): measured with the three projections reading,
        // 100-190 MB less RSS and the same catch-up time; 4 MiB made the
        // catch-up slower (docs/performance.md, "Session 8").
        .set("queued.max.messages.kbytes", "16384");
    apply(&mut c, &cfg.consumer_properties);
    c
}

fn make_producer(cfg: &KafkaConfig) -> Result<FutureProducer, LogError> {
    producer_config(cfg)
        .create()
        .map_err(|e| unavailable("creating the Kafka producer", e))
}

/// Runs a blocking librdkafka call off the async threads, bounded by
/// `bound` in case librdkafka's own timeout does not fire.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    bound: Duration,
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    match tokio::time::timeout(bound, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(LogError::Unavailable(format!(
            "{what}: no answer within {bound:?}"
        ))),
    }
}

/// The partition count of `topic`, from a metadata request.
fn partition_count(
    client: &Client<DefaultClientContext>,
    topic: &str,
    timeout: Duration,
) -> Result<u32, LogError> {
    let md = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| unavailable("Kafka metadata", e))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| LogError::Unavailable(format!("topic {topic} is not in the metadata")))?;
    if let Some(e) = t.error() {
        return Err(LogError::Unavailable(format!(
            "topic {topic}: {}",
            RDKafkaErrorCode::from(e)
        )));
    }
    if t.partitions().is_empty() {
        return Err(LogError::Unavailable(format!(
            "topic {topic} has no partitions"
        )));
    }
    Ok(t.partitions().len() as u32)
}

impl KafkaLog {
    /// Builds the clients without contacting the brokers: the topic is
    /// neither checked nor created. For tests and tools; servers use
    /// [`KafkaLog::connect`].
    pub fn new(config: KafkaConfig) -> Result<KafkaLog, LogError> {
        config.validate().map_err(LogError::Unavailable)?;
        let producer = make_producer(&config)?;
        // The readers are made later, one per projection: a setting of
        // theirs that librdkafka refuses is reported now, by name.
        consumer_config(&config)
            .create_native_config()
            .map_err(|e| unavailable("the Kafka readers' settings", e))?;
        let admin: AdminClient<DefaultClientContext> =
            common_config(&config, &format!("{}-admin", config.client_id))
                .create()
                .map_err(|e| unavailable("creating the Kafka admin client", e))?;
        Ok(KafkaLog {
            config,
            producer: Arc::new(RwLock::new(Arc::new(producer))),
            renewing: Arc::new(AtomicBool::new(false)),
            admin: Arc::new(admin),
        })
    }

    /// Builds the clients and makes sure the topic exists (creating it with
    /// infinite retention when missing and [`KafkaConfig::create_topic`] is
    /// set). Fails with [`LogError::Unavailable`] within about
    /// [`KafkaConfig::request_timeout`] when the brokers cannot be reached.
    pub async fn connect(config: KafkaConfig) -> Result<KafkaLog, LogError> {
        let log = KafkaLog::new(config)?;
        log.ensure_topic().await?;
        Ok(log)
    }

    /// The settings.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    /// The topic's current partition count.
    pub async fn partitions(&self) -> Result<u32, LogError> {
        let admin = self.admin.clone();
        let topic = self.config.topic.clone();
        let timeout = self.config.request_timeout;
        blocking(
            "Kafka metadata",
            timeout + self.config.timeout_slack,
            move || partition_count(admin.inner(), &topic, timeout),
        )
        .await
    }

    /// Creates the topic when missing, then waits until its metadata shows.
    pub async fn ensure_topic(&self) -> Result<(), LogError> {
        let cfg = &self.config;
        let deadline = Instant::now() + cfg.request_timeout;
        // First look: an existing topic needs no admin rights.
        let first = self.partitions().await;
        match first {
            Ok(n) => {
                if n != cfg.partitions {
                    tracing::info!(
                        topic = %cfg.topic,
                        partitions = n,
                        configured = cfg.partitions,
                        "the Kafka topic exists with its own partition count; keeping it"
                    );
                }
                self.check_topic_config().await;
                return Ok(());
            }
            Err(e) if !cfg.create_topic => {
                return Err(LogError::Unavailable(format!(
                    "Kafka topic {} is not usable ({e}) and topic creation is off",
                    cfg.topic
                )))
            }
            Err(e) => {
                // Unreachable brokers: no point in an admin request.
                self.health_inner(None).await?;
                tracing::info!(topic = %cfg.topic, reason = %e, "creating the Kafka topic");
            }
        }
        self.create_topic().await?;
        loop {
            match self.partitions().await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(LogError::Unavailable(format!(
                        "Kafka topic {} was created but does not show in the metadata: {e}",
                        cfg.topic
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn create_topic(&self) -> Result<(), LogError> {
        let cfg = &self.config;
        let topic = NewTopic::new(
            &cfg.topic,
            cfg.partitions as i32,
            TopicReplication::Fixed(cfg.replication_factor as i32),
        )
        // cleanup.policy is left to the broker's default (`delete` in
        // Kafka) and checked at connect: Tansu 0.6 with its sqlite engine
        // deletes every record of a topic whose *explicit* delete policy has
        // retention.ms=-1 (it compares ages against -1): docs/kafka.md.
        .set("retention.ms", "-1")
        .set("retention.bytes", "-1");
        let opts = AdminOptions::new()
            .request_timeout(Some(cfg.request_timeout))
            .operation_timeout(Some(cfg.request_timeout));
        let bound = cfg.request_timeout * 2 + cfg.timeout_slack;
        let results = tokio::time::timeout(bound, self.admin.create_topics([&topic], &opts))
            .await
            .map_err(|_| {
                LogError::Unavailable(format!(
                    "creating Kafka topic {}: no answer within {bound:?}",
                    cfg.topic
                ))
            })?
            .map_err(|e| unavailable(&format!("creating Kafka topic {}", cfg.topic), e))?;
        for r in results {
            match r {
                Ok(_) => {
                    tracing::info!(topic = %cfg.topic, partitions = cfg.partitions, "created the Kafka topic")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(LogError::Unavailable(format!(
                        "creating Kafka topic {name}: {code}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Warns when an existing topic does not keep its records forever.
    /// Brokers that cannot describe configs are let be (logged at debug).
    async fn check_topic_config(&self) {
        let cfg = &self.config;
        let opts = AdminOptions::new().request_timeout(Some(cfg.request_timeout));
        let spec = ResourceSpecifier::Topic(&cfg.topic);
        let bound = cfg.request_timeout + cfg.timeout_slack;
        let described =
            tokio::time::timeout(bound, self.admin.describe_configs([&spec], &opts)).await;
        let resources = match described {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot describe the Kafka topic's configuration");
                return;
            }
            Err(_) => {
                tracing::debug!("describing the Kafka topic's configuration timed out");
                return;
            }
        };
        for r in resources.into_iter().flatten() {
            for (key, wanted) in [
                ("retention.ms", "-1"),
                ("retention.bytes", "-1"),
                ("cleanup.policy", "delete"),
            ] {
                if let Some(v) = r.get(key).and_then(|e| e.value.as_deref()) {
                    if v != wanted {
                        tracing::warn!(
                            topic = %cfg.topic,
                            setting = key,
                            value = v,
                            "the Kafka topic may lose events (the log is the source of truth): set {key}={wanted}"
                        );
                    }
                }
            }
        }
    }

    async fn health_inner(&self, topic: Option<String>) -> Result<(), LogError> {
        let admin = self.admin.clone();
        let timeout = self.config.health_timeout;
        blocking(
            "Kafka health",
            timeout + self.config.timeout_slack,
            move || match &topic {
                Some(t) => partition_count(admin.inner(), t, timeout).map(|_| ()),
                None => {
                    let md = admin
                        .inner()
                        .fetch_metadata(None, timeout)
                        .map_err(|e| unavailable("Kafka metadata", e))?;
                    if md.brokers().is_empty() {
                        return Err(LogError::Unavailable(
                            "Kafka metadata lists no broker".into(),
                        ));
                    }
                    Ok(())
                }
            },
        )
        .await
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.read().expect("producer lock").clone()
    }

    /// Per partition, the low and high watermarks (`ListOffsets`): the first
    /// offset held and the offset the next message will get.
    pub async fn watermarks(&self) -> Result<Vec<(u32, (u64, u64))>, LogError> {
        let admin = self.admin.clone();
        let topic = self.config.topic.clone();
        let timeout = self.config.request_timeout;
        let partitions = self.partitions().await?;
        let bound = timeout * 2 + self.config.timeout_slack;
        blocking("Kafka watermarks", bound, move || {
            let deadline = Instant::now() + timeout;
            let mut out = Vec::with_capacity(partitions as usize);
            for p in 0..partitions {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                let (low, high) = admin
                    .inner()
                    .fetch_watermarks(&topic, p as i32, left)
                    .map_err(|e| unavailable(&format!("Kafka watermarks of {topic}/{p}"), e))?;
                let low = u64::try_from(low).unwrap_or(0);
                let high = u64::try_from(high).unwrap_or(0);
                out.push((p, (low, high.max(low))));
            }
            Ok(out)
        })
        .await
    }

    /// After a failed append. A producer in a fatal state is replaced at
    /// once. A producer whose deliveries timed out, or whose producer id the
    /// broker refused, is replaced when the brokers answer metadata requests
    /// again: then the broker is up and the producer is what is stuck (e.g. a
    /// broker that lost its producer state refuses the locally bumped epoch
    /// forever). A fresh producer gets a fresh producer id. Nothing
    /// acknowledged is at stake: only appends that already failed used the
    /// old producer's queue, and it is purged when the last user drops it.
    fn renew_producer(&self, failed: &Arc<FutureProducer>, failure: Failure) {
        let fatal = failed.client().fatal_error();
        if fatal.is_none() && matches!(failure, Failure::Other) {
            return;
        }
        if self.renewing.swap(true, Ordering::SeqCst) {
            return;
        }
        let slot = self.producer.clone();
        let renewing = self.renewing.clone();
        let admin = self.admin.clone();
        let config = self.config.clone();
        let failed = failed.clone();
        tokio::task::spawn_blocking(move || {
            if let Some((code, reason)) = &fatal {
                tracing::error!(%code, %reason, "the Kafka producer hit a fatal error; starting a new one");
            } else {
                let reachable = admin
                    .inner()
                    .fetch_metadata(None, config.health_timeout)
                    .is_ok();
                if !reachable {
                    renewing.store(false, Ordering::SeqCst);
                    return;
                }
                tracing::warn!("Kafka is reachable but the producer failed to deliver; starting a new producer");
            }
            let old = match make_producer(&config) {
                Ok(p) => {
                    let mut current = slot.write().expect("producer lock");
                    if Arc::ptr_eq(&current, &failed) {
                        Some(std::mem::replace(&mut *current, Arc::new(p)))
                    } else {
                        None
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot create a new Kafka producer");
                    None
                }
            };
            renewing.store(false, Ordering::SeqCst);
            // Dropping a producer purges and flushes it (blocking, briefly):
            // done here, off the async threads, when this is the last user.
            drop(old);
            drop(failed);
        });
    }

    async fn append_inner(
        &self,
        producer: &FutureProducer,
        batch: &[Append],
        deadline: tokio::time::Instant,
    ) -> Result<Vec<AppendOutcome>, (LogError, Failure)> {
        let topic = self.config.topic.as_str();
        let mut pending = Vec::with_capacity(batch.len());
        for a in batch {
            let version = a.version.to_string();
            let mut hash_buf = [0u8; 64];
            let hash = hash_hex(&a.content_hash, &mut hash_buf);
            let headers = OwnedHeaders::new_with_capacity(4)
                .insert(Header {
                    key: HEADER_EVENT_ID,
                    value: Some(a.event_id.as_str()),
                })
                .insert(Header {
                    key: HEADER_TYPE,
                    value: Some(a.event_type.as_str()),
                })
                .insert(Header {
                    key: HEADER_VERSION,
                    value: Some(version.as_str()),
                })
                .insert(Header {
                    key: HEADER_CONTENT_HASH,
                    value: Some(hash),
                });
            let mut record = FutureRecord::to(topic)
                .key(a.stream_key.as_bytes())
                .payload(a.payload.as_slice())
                .headers(headers);
            // Enqueue in order; a full queue is waited out (backpressure)
            // before the next message, so the batch's order is kept.
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        if tokio::time::Instant::now() + QUEUE_FULL_PAUSE >= deadline {
                            let e = LogError::Unavailable(format!(
                                "the Kafka producer queue stayed full for {:?} (brokers slow or down)",
                                self.config.append_timeout
                            ));
                            return Err((e, Failure::Stuck));
                        }
                        record = r;
                        tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                    }
                    Err((e, _)) => {
                        return Err((
                            unavailable("queueing an event for Kafka", e),
                            Failure::Other,
                        ))
                    }
                }
            }
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for delivery in pending {
            let report = match tokio::time::timeout_at(deadline, delivery).await {
                Ok(Ok(report)) => report,
                Ok(Err(_)) => {
                    let e = LogError::Unavailable("the Kafka producer was shut down".into());
                    return Err((e, Failure::Other));
                }
                Err(_) => {
                    let e = LogError::Unavailable(format!(
                        "Kafka did not confirm delivery within {:?}",
                        self.config.append_timeout
                    ));
                    return Err((e, Failure::Stuck));
                }
            };
            match report {
                Ok(d) => {
                    let (Ok(partition), Ok(offset)) =
                        (u32::try_from(d.partition), u64::try_from(d.offset))
                    else {
                        let e = LogError::Unavailable(format!(
                            "Kafka confirmed delivery without a position ({}:{})",
                            d.partition, d.offset
                        ));
                        return Err((e, Failure::Other));
                    };
                    outcomes.push(AppendOutcome::Appended(Position { partition, offset }));
                }
                Err((e, _)) => {
                    // Anything but a fault of this message may be the
                    // producer's own state (a refused epoch or producer id
                    // shows as various broker errors): worth a new producer
                    // once the broker answers again.
                    let failure = match e.rdkafka_error_code() {
                        Some(
                            RDKafkaErrorCode::MessageSizeTooLarge
                            | RDKafkaErrorCode::InvalidMessage
                            | RDKafkaErrorCode::InvalidMessageSize
                            | RDKafkaErrorCode::InvalidRecord
                            | RDKafkaErrorCode::BadMessage
                            | RDKafkaErrorCode::InvalidArgument,
                        ) => Failure::Other,
                        _ => Failure::Stuck,
                    };
                    return Err((unavailable("Kafka did not take the event", e), failure));
                }
            }
        }
        Ok(outcomes)
    }
}

#[async_trait]
impl Log for KafkaLog {
    fn backend(&self) -> &'static str {
        "kafka"
    }

    async fn append(&self, batch: Vec<Append>) -> Result<Vec<AppendOutcome>, LogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + self.config.append_timeout;
        let producer = self.producer();
        match self.append_inner(&producer, &batch, deadline).await {
            Ok(outcomes) => Ok(outcomes),
            Err((e, failure)) => {
                tracing::warn!(error = %e, events = batch.len(), "Kafka append failed");
                self.renew_producer(&producer, failure);
                Err(e)
            }
        }
    }

    fn deduplicates(&self) -> bool {
        false
    }

    async fn reader(&self, from: &Checkpoint) -> Result<Box<dyn LogReader>, LogError> {
        let partitions = self.partitions().await?;
        if let Some((&p, _)) = from.0.range(partitions..).next() {
            return Err(LogError::Corrupt(format!(
                "the checkpoint names partition {p}, but Kafka topic {} has {partitions} partitions",
                self.config.topic
            )));
        }
        // Brokers do not all refuse a fetch beyond the end (Tansu answers
        // nothing), so the checkpoint is checked here: a position outside a
        // partition means records were deleted or the topic recreated.
        for (p, (low, high)) in self.watermarks().await? {
            let next = from.next(p);
            if next < low || next > high {
                return Err(LogError::Corrupt(format!(
                    "the checkpoint reads partition {p} of Kafka topic {} from offset {next}, \
                     outside what it holds ({low}..{high}): records deleted, or the topic recreated",
                    self.config.topic
                )));
            }
        }
        let consumer: BaseConsumer = consumer_config(&self.config)
            .create()
            .map_err(|e| unavailable("creating a Kafka consumer", e))?;
        let mut tpl = TopicPartitionList::with_capacity(partitions as usize);
        for p in 0..partitions {
            let next = from.next(p);
            let offset = i64::try_from(next)
                .map_err(|_| LogError::Corrupt(format!("offset {next} out of range")))?;
            tpl.add_partition_offset(&self.config.topic, p as i32, Offset::Offset(offset))
                .map_err(|e| unavailable("building the Kafka assignment", e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| unavailable("assigning the Kafka partitions", e))?;
        Ok(Box::new(KafkaReader {
            consumer: Some(Arc::new(consumer)),
            topic: self.config.topic.clone(),
        }))
    }

    async fn end(&self) -> Result<Checkpoint, LogError> {
        let mut end = Checkpoint::default();
        for (p, (_low, high)) in self.watermarks().await? {
            end.0.insert(p, high);
        }
        Ok(end)
    }

    async fn health(&self) -> Result<(), LogError> {
        self.health_inner(Some(self.config.topic.clone())).await
    }
}

/// A reader: a consumer with every partition assigned by hand.
struct KafkaReader {
    /// Always `Some` until dropped.
    consumer: Option<Arc<BaseConsumer>>,
    topic: String,
}

impl Drop for KafkaReader {
    fn drop(&mut self) {
        // Closing a consumer blocks while librdkafka shuts its threads down
        // (longer when the brokers are gone): not on an async thread.
        if let (Some(consumer), Ok(rt)) =
            (self.consumer.take(), tokio::runtime::Handle::try_current())
        {
            rt.spawn_blocking(move || drop(consumer));
        }
    }
}

fn header_str<'a>(m: &'a impl Message, name: &str) -> Option<&'a str> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// The event id of a message without the header: the `event_id` field of
/// the stored JSON, found without a JSON parser (ids are plain strings).
fn event_id_from_payload(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let at = text.find("\"event_id\"")?;
    let rest = text[at + "\"event_id\"".len()..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| rest[..end].to_string())
}

fn read_record(m: &impl Message) -> Result<LogRecord, LogError> {
    let position = match (u32::try_from(m.partition()), u64::try_from(m.offset())) {
        (Ok(partition), Ok(offset)) => Position { partition, offset },
        _ => {
            return Err(LogError::Corrupt(format!(
                "Kafka message without a position ({}:{})",
                m.partition(),
                m.offset()
            )))
        }
    };
    let payload = m.payload().unwrap_or_default().to_vec();
    let event_id = match header_str(m, HEADER_EVENT_ID) {
        Some(id) => id.to_string(),
        None => event_id_from_payload(&payload).ok_or_else(|| {
            LogError::Corrupt(format!("Kafka message at {position} has no event_id"))
        })?,
    };
    Ok(LogRecord {
        position,
        event_id,
        payload,
    })
}

/// What a consumer error means for the reader.
fn consumer_error(topic: &str, e: &KafkaError) -> Option<LogError> {
    let code = e.rdkafka_error_code();
    match code {
        // Connection trouble librdkafka recovers from by itself.
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::PartitionEOF,
        ) => None,
        Some(RDKafkaErrorCode::AllBrokersDown) => Some(unavailable("reading Kafka", e)),
        Some(
            RDKafkaErrorCode::AutoOffsetReset
            | RDKafkaErrorCode::OffsetOutOfRange
            | RDKafkaErrorCode::UnknownPartition,
        ) => Some(LogError::Corrupt(format!(
            "the checkpoint does not fit Kafka topic {topic} (offset out of range: records deleted, or the topic recreated): {e}"
        ))),
        _ => Some(unavailable(&format!("reading Kafka topic {topic}"), e)),
    }
}

impl KafkaReader {
    fn poll_batch(
        consumer: &BaseConsumer,
        topic: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<LogRecord>, LogError> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < max {
            // Wait only for the first record; then take what is already here.
            let timeout = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match consumer.poll(timeout) {
                None => {
                    if !out.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                }
                Some(Ok(m)) => out.push(read_record(&m)?),
                Some(Err(e)) => match consumer_error(topic, &e) {
                    None => tracing::debug!(error = %e, "transient Kafka consumer error"),
                    Some(err) if out.is_empty() => return Err(err),
                    // Hand over what was read; the error comes back next time.
                    Some(err) => {
                        tracing::warn!(error = %err, "Kafka consumer error after a partial batch");
                        break;
                    }
                },
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl LogReader for KafkaReader {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<LogRecord>, LogError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let consumer = self.consumer.clone().expect("a reader's consumer");
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || Self::poll_batch(&consumer, &topic, max, wait))
            .await
            .map_err(|e| unavailable("Kafka reader task", e))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_hex_is_lowercase_pairs() {
        let mut hash = [7u8; 32];
        hash[..4].copy_from_slice(&[0, 1, 0xab, 0xff]);
        let mut buf = [0u8; 64];
        let text = hash_hex(&hash, &mut buf);
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("0001abff0707"), "{text}");
    }

    #[test]
    fn event_id_falls_back_to_the_payload() {
        assert_eq!(
            event_id_from_payload(br#"{"event_id": "e-1","type":"x"}"#).as_deref(),
            Some("e-1")
        );
        assert_eq!(event_id_from_payload(br#"{"type":"x"}"#), None);
        assert_eq!(event_id_from_payload(br#"{"event_id":"a\"b"}"#), None);
    }

    #[test]
    fn config_is_checked() {
        assert!(KafkaConfig::new("").validate().is_err());
        assert!(KafkaConfig::new("h:1").partitions(0).validate().is_err());
        assert!(KafkaConfig::new("h:1").validate().is_ok());
        assert_eq!(KafkaConfig::new("h:1").group_id(), "crm-ledger.crm.events");
    }

    #[test]
    fn producer_settings_are_durable() {
        let c = producer_config(&KafkaConfig::new("h:1").append_timeout(Duration::from_secs(4)));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("enable.gapless.guarantee"), Some("true"));
        // Never expired by librdkafka (an expiry bumps the epoch); `append`
        // has its own bound.
        assert_eq!(c.get("message.timeout.ms"), Some("0"));
        assert_eq!(c.get("request.timeout.ms"), Some("4000"));
        assert_eq!(c.get("allow.auto.create.topics"), Some("false"));
        let c = consumer_config(&KafkaConfig::new("h:1"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("auto.offset.reset"), Some("error"));
    }
}
