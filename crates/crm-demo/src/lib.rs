//! # crm-demo
//!
//! A realistic, reproducible contact-center history for trials and
//! benchmarks: the data behind `crm-ledger demo`.
//!
//! [`generate`] simulates a fictional telecom, "Acme Connect", for
//! `customers` customers over `days` days from `start`, and streams every
//! event of the contract (`shared/spec/events.md`) to a callback, one JSON
//! value per event, in publish order:
//!
//! * customers registered (a migration burst on day one, sign-ups later),
//!   profile changes, identities added and removed, consents granted (some
//!   expiring), revoked; duplicates merged by a dedupe job or an agent,
//!   merge chains, and wrong merges undone;
//! * calls (IVR, queues, transfers between tiers, abandoned calls,
//!   voicemail), emails, chats, SMS, social posts, video sessions,
//!   notifications and imported one-shot records; some identified at once,
//!   some later (late-published identifications among them), some never;
//!   callers using somebody else's phone;
//! * cases opened from interactions, with SLA due times (some breached),
//!   escalations, notes, responses, resolutions, reopenings, closures and
//!   voids (prank, wrong number, duplicate, test);
//! * campaigns of several purposes and channels with contacts, agent
//!   (re)assignments, attempts and retries, outcomes, pauses, and consent
//!   violations (including a revocation published after the attempts it
//!   affects).
//!
//! Identity values come in the messy spellings real systems send (`0044 20
//! 7946 0958`, `(+1) 212.555.0142`, ` Jose.Garcia@GMAIL.example`); all of
//! them normalise with `crm_events::identity::normalize`, and the spellings
//! of one identity normalise to the same value.
//!
//! **Reproducible**: the same [`DemoConfig`] gives byte-identical output
//! (one ChaCha8 generator seeded from `seed`, a deterministic event queue,
//! no clocks, no hash-map iteration).
//!
//! **Bounded memory**: the simulation is a discrete-event loop. It keeps
//! about 200 bytes per customer (identity values are derived from the
//! customer's index, not stored), one small state per *open* case and per
//! campaign contact, and a queue of events that are not yet due (calls and
//! chats are planned whole, so this holds the next hour or so; e-mail
//! threads and late arrivals up to a day). Nothing grows with the length of
//! the history: 100,000 customers over 30 days (about 2 million events) run
//! in under 50 MB, and 20,000 customers take the same 11 MB for 30 or 120
//! days.
//!
//! **Order**: events come out sorted by the time they are published. That is
//! their `occurred_at`, except for late arrivals (about 2% of events:
//! identifications synced hours later by the CRM, nightly BPO imports,
//! revocations synced from the web portal, the legacy import on day one),
//! which are published hours after events that happened later. Within every
//! stream (`customer_id` for `customer.*`/`consent.*`, `interaction_id`,
//! `case_id`, `campaign_id`) the publish order is the stream's logical order
//! and `occurred_at` never decreases.

mod people;
mod sim;
mod text;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

pub(crate) type Rng8 = rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConfig {
    /// Number of customer records (including the duplicates that get merged).
    pub customers: usize,
    /// Length of the simulated period.
    pub days: u32,
    /// Seed of the random generator: same seed, same history.
    pub seed: u64,
    /// Start of the simulated period (the history's first day, 00:00).
    pub start: DateTime<Utc>,
}

impl DemoConfig {
    /// Default number of customers.
    pub const DEFAULT_CUSTOMERS: usize = 1000;
    /// Default number of days.
    pub const DEFAULT_DAYS: u32 = 30;
    /// Default seed.
    pub const DEFAULT_SEED: u64 = 42;

    /// The default start, 2026-10-01T00:00:00Z (fixed, so that output is
    /// reproducible).
    pub fn default_start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
            .single()
            .expect("valid date")
    }

    /// A configuration with the default start.
    pub fn new(customers: usize, days: u32, seed: u64) -> Self {
        DemoConfig {
            customers,
            days,
            seed,
            start: Self::default_start(),
        }
    }
}

impl Default for DemoConfig {
    /// 1000 customers, 30 days, seed 42, from 2026-10-01T00:00:00Z.
    fn default() -> Self {
        DemoConfig::new(
            Self::DEFAULT_CUSTOMERS,
            Self::DEFAULT_DAYS,
            Self::DEFAULT_SEED,
        )
    }
}

/// Totals of a generated history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Events emitted.
    pub events: u64,
    /// Customer records (`DemoConfig::customers`).
    pub customers: usize,
    /// Customers registered within the history (the others would have
    /// signed up after its end).
    pub registered: u64,
    /// `customer.*` events.
    pub customer_events: u64,
    /// `consent.*` events.
    pub consent_events: u64,
    /// `interaction.*` events.
    pub interaction_events: u64,
    /// `case.*` events.
    pub case_events: u64,
    /// `campaign.*` events.
    pub campaign_events: u64,
    /// Events per type, by wire name.
    pub by_type: BTreeMap<String, u64>,
    /// Distinct interactions (`interaction.started` + `interaction.recorded`).
    pub interactions: u64,
    /// Distinct cases (`case.opened`).
    pub cases: u64,
    /// Distinct campaigns (`campaign.created`).
    pub campaigns: u64,
    /// Events published after an event that occurred later than them.
    pub late_events: u64,
    /// Campaign attempts made without a valid consent when the campaign
    /// requires one (judged by `occurred_at`, as a compliance report should).
    pub consent_violations: u64,
    /// Earliest `occurred_at` (legacy imports reach back before `start`).
    pub first_occurred_at: Option<DateTime<Utc>>,
    /// Latest `occurred_at`.
    pub last_occurred_at: Option<DateTime<Utc>>,
}

/// Streams the history, in publish order, as JSON values (one event each),
/// and returns its totals.
///
/// Memory stays bounded whatever the size (see the crate documentation):
/// write each value out as it comes.
pub fn generate(config: &DemoConfig, mut emit: impl FnMut(Value)) -> Summary {
    sim::run(config, &mut |v| {
        emit(v);
        true
    })
}

/// Like [`generate`], for a consumer that can fail (a file, a pipe): stops
/// at the first error and returns it. The history up to there is the same as
/// [`generate`]'s.
pub fn try_generate<E>(
    config: &DemoConfig,
    mut emit: impl FnMut(Value) -> Result<(), E>,
) -> Result<Summary, E> {
    let mut error = None;
    let summary = sim::run(config, &mut |v| match emit(v) {
        Ok(()) => true,
        Err(e) => {
            error = Some(e);
            false
        }
    });
    match error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}
