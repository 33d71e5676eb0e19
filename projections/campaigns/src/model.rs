//! Stored records. Every list is kept sorted by `(occurred_at, event_id)`
//! and deduplicated by `event_id`, so inserting facts commutes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_events::{
    AttemptChannel, AttemptResult, CampaignChannel, CampaignPurpose, ConsentChannel,
    ConsentPurpose, ContactOutcome, Identity,
};
use serde::{Deserialize, Serialize};

use crate::query::{ContactItem, Violation};

/// Something with an event time and an event id: sorts by both.
pub(crate) trait Timed {
    fn at(&self) -> DateTime<Utc>;
    fn event_id(&self) -> &str;
}

macro_rules! timed {
    ($($t:ty),+) => {$(
        impl Timed for $t {
            fn at(&self) -> DateTime<Utc> { self.at }
            fn event_id(&self) -> &str { &self.event_id }
        }
    )+};
}

/// Inserts `item` in `(at, event_id)` order; a second copy of an event id is
/// ignored. Returns whether the list changed.
pub(crate) fn insert_sorted<T: Timed>(list: &mut Vec<T>, item: T) -> bool {
    if list.iter().any(|x| x.event_id() == item.event_id()) {
        return false;
    }
    let pos = list.partition_point(|x| (x.at(), x.event_id()) < (item.at(), item.event_id()));
    list.insert(pos, item);
    true
}

/// Sorts a list by `(at, event_id)`.
pub(crate) fn sort_timed<T: Timed>(list: &mut [T]) {
    list.sort_by(|a, b| (a.at(), a.event_id()).cmp(&(b.at(), b.event_id())));
}

/// `campaign.created`, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Config {
    pub event_id: String,
    pub created_at: DateTime<Utc>,
    pub name: String,
    pub channel: CampaignChannel,
    pub purpose: CampaignPurpose,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub max_attempts: u32,
    pub requires_consent: bool,
}

impl Config {
    /// The consent purpose that contact for this campaign needs: the
    /// campaign purpose of the same name; `collections` has none.
    pub fn consent_purpose(&self) -> Option<ConsentPurpose> {
        match self.purpose {
            CampaignPurpose::Marketing => Some(ConsentPurpose::Marketing),
            CampaignPurpose::Service => Some(ConsentPurpose::Service),
            CampaignPurpose::Survey => Some(ConsentPurpose::Survey),
            CampaignPurpose::Collections => None,
        }
    }

    /// Whether attempts are judged against consent at all.
    pub fn consent_required(&self) -> Option<ConsentPurpose> {
        if self.requires_consent {
            self.consent_purpose()
        } else {
            None
        }
    }

    /// The attempt channels the campaign contacts on (`mixed`: all).
    pub fn channels(&self) -> &'static [AttemptChannel] {
        match self.channel {
            CampaignChannel::Phone => &[AttemptChannel::Phone],
            CampaignChannel::Email => &[AttemptChannel::Email],
            CampaignChannel::Sms => &[AttemptChannel::Sms],
            CampaignChannel::Social => &[AttemptChannel::Social],
            CampaignChannel::Mixed => AttemptChannel::ALL,
        }
    }
}

/// A status event (`campaign.paused`, `resumed`, `completed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusMark {
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub paused: bool,
}

/// `cp/{campaign}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CampaignRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Config>,
    /// The latest `paused`/`resumed` by `(occurred_at, event_id)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<StatusMark>,
    /// The earliest `completed` by `(occurred_at, event_id)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<StatusMark>,
    /// Events of this campaign applied before its `campaign.created`
    /// (parked dead letters, cleared when it arrives).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AddedFact {
    pub at: DateTime<Utc>,
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
}

/// An assignment: `contact_added` with an agent, or `contact_assigned`
/// (no agent = unassigned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AssignFact {
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AttemptFact {
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub channel: AttemptChannel,
    pub result: AttemptResult,
    /// The envelope's `agent_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<String>,
}

impl AttemptFact {
    /// Connected or delivered.
    pub fn reached(&self) -> bool {
        matches!(
            self.result,
            AttemptResult::Connected | AttemptResult::Delivered
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutcomeFact {
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub outcome: ContactOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_at: Option<DateTime<Utc>>,
    /// `value` in millionths (integer sums are exact and order-free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_micros: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

timed!(
    AddedFact,
    AssignFact,
    AttemptFact,
    OutcomeFact,
    ConsentFact,
    DncFact
);

/// `ct/{campaign}/{customer}`: everything the campaign stream said about
/// one customer id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ContactFacts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<AddedFact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<AssignFact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptFact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<OutcomeFact>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConsentFact {
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub granted: bool,
    pub channel: ConsentChannel,
    pub purpose: ConsentPurpose,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A `do_not_contact` outcome, kept on the customer (it holds for every
/// campaign).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DncFact {
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub campaign_id: String,
}

/// `cu/{customer}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CustomerFacts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<ConsentFact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dnc: Vec<DncFact>,
}

/// `me/{merged}/{survivor}`: set by the last merged/unmerged event for the
/// pair (all in the survivor's stream, so arrival order is stream order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Edge {
    pub survivor: String,
    pub active: bool,
    /// The `customer.merged` event that made it active (ranks competing
    /// survivors of one merged id: the latest merge wins).
    pub at: DateTime<Utc>,
    pub event_id: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Additive counters of one slice: a contact's contribution, or a sum of
/// contributions (the aggregate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Counts {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub contacts: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempted: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reached: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub converted_reached: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_micros: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub callbacks_pending: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub violations: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outcomes: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub states: BTreeMap<String, i64>,
}

impl Counts {
    /// Adds `other` times `sign`, dropping map entries that reach zero.
    pub fn add(&mut self, other: &Counts, sign: i64) {
        self.contacts += sign * other.contacts;
        self.attempted += sign * other.attempted;
        self.reached += sign * other.reached;
        self.attempts += sign * other.attempts;
        self.converted_reached += sign * other.converted_reached;
        self.value_micros = self
            .value_micros
            .saturating_add(other.value_micros.saturating_mul(sign));
        self.callbacks_pending += sign * other.callbacks_pending;
        self.violations += sign * other.violations;
        for (map, from) in [
            (&mut self.outcomes, &other.outcomes),
            (&mut self.states, &other.states),
        ] {
            for (k, v) in from {
                *map.entry(k.clone()).or_default() += sign * v;
            }
            map.retain(|_, v| *v != 0);
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// `ec/{campaign}/{survivor}`: one effective contact (every customer id of
/// a merge group that is a contact of the campaign, counted once), derived
/// from the facts. Its index entries (`st/`, `sa/`, `ex/`, `vi/`) are a
/// function of it, see [`crate::derive::index_entries`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Derived {
    pub item: ContactItem,
    /// This contact's share of each aggregate slice.
    pub contrib: BTreeMap<String, Counts>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// A value as integer millionths (rounded half away from zero).
pub(crate) fn to_micros(v: f64) -> i64 {
    // `as` saturates on overflow; NaN cannot come from JSON.
    (v * 1_000_000.0).round() as i64
}

pub(crate) fn from_micros(m: i64) -> f64 {
    m as f64 / 1_000_000.0
}
