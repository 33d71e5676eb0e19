//! # crm-log
//!
//! The log is the source of truth of crm-ledger: every accepted event is
//! appended to it, durably, before publish answers; every read model is a fold
//! of it. This crate defines the one trait every backend implements ([`Log`],
//! with [`LogReader`] for consumers) and the embedded backend
//! ([`embedded::EmbeddedLog`]), a single-node segmented file log. The Kafka
//! backend lives in `crm-log-kafka`. The contract suite in [`testkit`] (feature
//! `testkit`) is run against every backend.
//!
//! ## Positions
//! A log has one or more partitions (the embedded log has one; Kafka has the
//! topic's). A [`Position`] is a partition and an offset in it. A
//! [`Checkpoint`] says, per partition, the next offset a consumer will read,
//! i.e. everything before it has been applied. A [`Token`] (the API's
//! `consistency_token`) is a set of positions; a checkpoint *covers* a token
//! when every position in it has been applied.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod embedded;
mod idindex;
mod record;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use record::{decode_record_body, encode_record_body};

/// Sets the calling thread's nice value, so that it yields the CPU to the
/// process's other threads (Linux: `setpriority` on its thread id;
/// elsewhere nothing). Used for background work: the id index's run
/// writers here, the read models' folds in `crm-projector`.
pub fn lower_this_threads_priority(nice: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take and return plain integers;
        // the `who` of PRIO_PROCESS is a thread id on Linux, so only this
        // thread changes.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
    Ok(())
}

/// Puts the calling thread in the idle scheduling class (Linux
/// `SCHED_IDLE`; elsewhere nothing): it runs on CPU time that no other
/// thread of the machine wants, and any other thread that wakes up takes its
/// CPU at once. A nice value only shares the CPU out by weight: under Linux's
/// EEVDF scheduler a thread at nice 10 that is running may keep a core for
/// its time slice (milliseconds) while a query that just woke up waits.
/// Lowering a priority needs no privilege; going back to the normal class
/// may, so this is for threads that stay in the background.
pub fn idle_this_thread() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` outlives the call; pid 0 names the calling
        // thread only.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Where an event sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.partition, self.offset)
    }
}

/// Per partition, the next offset to read: everything before it is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint(pub BTreeMap<u32, u64>);

impl Checkpoint {
    /// The next offset to read in `partition` (0 when never read).
    pub fn next(&self, partition: u32) -> u64 {
        self.0.get(&partition).copied().unwrap_or(0)
    }
    /// Records that `position` was applied.
    pub fn advance(&mut self, position: Position) {
        let next = self.0.entry(position.partition).or_insert(0);
        *next = (*next).max(position.offset + 1);
    }
    /// Whether every position of `token` has been applied.
    pub fn covers(&self, token: &Token) -> bool {
        token.0.iter().all(|(p, o)| self.next(*p) > *o)
    }
    /// How many records `end` has that this checkpoint has not applied.
    pub fn lag_behind(&self, end: &Checkpoint) -> u64 {
        end.0
            .iter()
            .map(|(p, e)| e.saturating_sub(self.next(*p)))
            .sum()
    }
    /// Total records applied over all partitions.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// A consistency token: per partition, the highest offset that must be
/// applied. Text form `partition:offset[,partition:offset...]`; a single
/// event's position is a valid token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Token(pub BTreeMap<u32, u64>);

impl Token {
    /// Adds a position to the token.
    pub fn include(&mut self, p: Position) {
        let o = self.0.entry(p.partition).or_insert(p.offset);
        *o = (*o).max(p.offset);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(p, o)| format!("{p}:{o}")).collect();
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for Token {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut t = Token::default();
        for part in s.split(',') {
            let (p, o) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?} is not partition:offset"))?;
            let p: u32 = p.parse().map_err(|_| format!("{p:?} is not a partition"))?;
            let o: u64 = o.parse().map_err(|_| format!("{o:?} is not an offset"))?;
            t.include(Position {
                partition: p,
                offset: o,
            });
        }
        Ok(t)
    }
}

/// One event to append, already validated and serialised by the caller.
#[derive(Debug, Clone)]
pub struct Append {
    /// The idempotency key.
    pub event_id: String,
    /// The stream (`family/id`): order is kept within it; Kafka's key.
    pub stream_key: String,
    /// Digest of the content as published (without `recorded_at`): equal for
    /// a harmless duplicate.
    pub content_hash: [u8; 32],
    /// `type` and `version`, for backends that carry them as headers.
    pub event_type: String,
    pub version: u32,
    /// The stored event as JSON.
    pub payload: Vec<u8>,
}

/// What happened to one [`Append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Appended, durably, at this position.
    Appended(Position),
    /// The same `event_id` with the same content is already at this position.
    Duplicate(Position),
    /// The `event_id` is already at this position with other content: not appended.
    Conflict(Position),
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub position: Position,
    pub event_id: String,
    /// The stored event as JSON.
    pub payload: Vec<u8>,
}

/// Why the log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log cannot take writes now (broker down, shutting down, I/O
    /// failure); retry later. HTTP 503 with `Retry-After`.
    #[error("log unavailable: {0}")]
    Unavailable(String),
    /// No space left on the log's device. HTTP 507.
    #[error("no space left for the log: {0}")]
    Full(String),
    /// Stored data is damaged at a named place.
    #[error("log corrupt: {0}")]
    Corrupt(String),
    /// The data directory is already used by another process.
    #[error("{0}")]
    Locked(String),
    #[error("log I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// An append-only, partitioned log of events.
#[async_trait]
pub trait Log: Send + Sync + 'static {
    /// `embedded` or `kafka`.
    fn backend(&self) -> &'static str;

    /// Appends a batch, keeping the order of each stream, and answers only
    /// once every appended event is durable. Outcomes are in input order.
    /// Backends that deduplicate by `event_id` at append time say so with
    /// [`Log::deduplicates`]; others answer `Appended` for a re-published id.
    async fn append(&self, batch: Vec<Append>) -> Result<Vec<AppendOutcome>, LogError>;

    /// Whether `append` refuses re-published `event_id`s (embedded: yes,
    /// forever; Kafka: no, consumers deduplicate).
    fn deduplicates(&self) -> bool;

    /// A reader from `from` (per partition, the next offset to read).
    async fn reader(&self, from: &Checkpoint) -> Result<Box<dyn LogReader>, LogError>;

    /// Per partition, the offset the next append will get.
    async fn end(&self) -> Result<Checkpoint, LogError>;

    /// Whether the log can be reached now.
    async fn health(&self) -> Result<(), LogError>;
}

/// A consumer of the log, reading forward from a checkpoint.
#[async_trait]
pub trait LogReader: Send {
    /// Up to `max` next records, in log order per partition. Waits up to
    /// `wait` for the first one; an empty batch means nothing new yet.
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<LogRecord>, LogError>;
}
