//! Settings of the Kafka backend.

use std::time::Duration;

/// The default topic.
pub const DEFAULT_TOPIC: &str = "crm.events";

/// Settings of [`crate::KafkaLog`]. [`KafkaConfig::new`] gives the defaults;
/// every field is public and can be changed before connecting.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: `host:port[,host:port...]`.
    pub brokers: String,
    /// The one topic of the log (default `crm.events`).
    pub topic: String,
    /// Partitions of the topic when this backend creates it (default 3). An
    /// existing topic keeps its own count. Never add partitions to a topic in
    /// use: the key → partition mapping changes and with it the order of the
    /// streams that move.
    pub partitions: u32,
    /// Replication factor when this backend creates the topic (default 1;
    /// use 3 in production with `min.insync.replicas=2`).
    pub replication_factor: u32,
    /// Create the topic when it is missing (default true). When false a
    /// missing topic is an error at [`crate::KafkaLog::connect`].
    pub create_topic: bool,
    /// `client.id` of the producer (readers use `<client_id>-reader`).
    pub client_id: String,
    /// Readers use `group.id = <group_prefix>.<topic>`. The group is never
    /// joined and never committed to: positions come only from the
    /// checkpoint a reader is started from.
    pub group_prefix: String,
    /// How long one `append` may take before it answers
    /// [`crm_log::LogError::Unavailable`]: the backend's own bound on the
    /// whole call (librdkafka's `message.timeout.ms` is 0, infinite: an
    /// expired message would make it bump its producer epoch, see
    /// docs/kafka.md). Also the producer's `request.timeout.ms` (at most
    /// 30 s). Default 10 s.
    pub append_timeout: Duration,
    /// Added to the request and health timeouts for the hard bound of those
    /// calls (in case librdkafka's own timeout does not fire). Default 2 s.
    pub timeout_slack: Duration,
    /// Timeout of metadata, admin and watermark requests (connect, `end`,
    /// `reader`). Default 10 s.
    pub request_timeout: Duration,
    /// Timeout of the metadata request of `health`. Default 2 s.
    pub health_timeout: Duration,
    /// `queue.buffering.max.messages`: messages the producer holds before
    /// `append` waits (backpressure). Default 100 000.
    pub max_queued_messages: u32,
    /// Extra librdkafka properties for every client (producer, readers,
    /// admin), applied after ours: they win. E.g. `security.protocol`,
    /// `sasl.*`, `compression.type` (the bundled build has zlib only).
    pub properties: Vec<(String, String)>,
    /// Extra librdkafka properties for the producer only, applied last.
    pub producer_properties: Vec<(String, String)>,
    /// Extra librdkafka properties for readers only, applied last.
    pub consumer_properties: Vec<(String, String)>,
}

impl KafkaConfig {
    /// The defaults, for these brokers.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            topic: DEFAULT_TOPIC.to_string(),
            partitions: 3,
            replication_factor: 1,
            create_topic: true,
            client_id: "crm-ledger".to_string(),
            group_prefix: "crm-ledger".to_string(),
            append_timeout: Duration::from_secs(10),
            timeout_slack: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            health_timeout: Duration::from_secs(2),
            max_queued_messages: 100_000,
            properties: Vec::new(),
            producer_properties: Vec::new(),
            consumer_properties: Vec::new(),
        }
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Sets the partition count used when creating the topic.
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Sets the append timeout (see [`Self::append_timeout`]).
    pub fn append_timeout(mut self, timeout: Duration) -> Self {
        self.append_timeout = timeout;
        self
    }

    /// Adds a librdkafka property for every client.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// The group id readers carry.
    pub fn group_id(&self) -> String {
        format!("{}.{}", self.group_prefix, self.topic)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("no Kafka brokers given".into());
        }
        if self.topic.is_empty() {
            return Err("the Kafka topic name is empty".into());
        }
        if self.partitions == 0 || self.partitions > i32::MAX as u32 {
            return Err(format!("{} is not a partition count", self.partitions));
        }
        if self.replication_factor == 0 || self.replication_factor > i16::MAX as u32 {
            return Err(format!(
                "{} is not a replication factor",
                self.replication_factor
            ));
        }
        if self.append_timeout < Duration::from_millis(100) {
            return Err("the append timeout must be at least 100 ms".into());
        }
        Ok(())
    }
}
