//! Stored records. Every field is either a fact kept with its event stamp
//! (so that the latest by `occurred_at`, then `event_id`, wins whatever the
//! delivery order) or a derived value that is a pure function of such facts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_events::{Channel, Direction, Event, Identity, InteractionOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// When an event happened, with its id as the tie-breaker: the order of
/// every "latest wins" rule of this projection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub at: DateTime<Utc>,
    pub id: String,
}

impl Stamp {
    pub fn of(e: &Event) -> Stamp {
        Stamp {
            at: e.occurred_at,
            id: e.event_id.clone(),
        }
    }
}

/// A value with the stamp of the event that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lww<T> {
    pub stamp: Stamp,
    pub value: T,
}

/// Sets `slot` to `value` if `stamp` is later than what it holds.
pub fn set_latest<T>(slot: &mut Option<Lww<T>>, stamp: &Stamp, value: T) {
    if slot.as_ref().is_none_or(|cur| *stamp > cur.stamp) {
        *slot = Some(Lww {
            stamp: stamp.clone(),
            value,
        });
    }
}

// ------------------------------------------------------------------ customer

/// One identity of a customer: present or removed, by the latest event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityFact {
    pub identity: Identity,
    pub present: bool,
    pub verified: bool,
    pub stamp: Stamp,
}

/// `c/{customer}`: what the customer's own stream says about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub registered: Option<Stamp>,
    pub name: Option<Lww<Option<String>>>,
    /// A `null` value is a removed attribute (kept for its stamp).
    pub attributes: BTreeMap<String, Lww<Value>>,
    /// By `kind:value`.
    pub identities: BTreeMap<String, IdentityFact>,
}

/// One consent event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentFact {
    pub stamp: Stamp,
    pub granted: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

/// `n/{customer}`: consent history by `channel/purpose`, sorted by stamp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consents {
    pub by: BTreeMap<String, Vec<ConsentFact>>,
}

/// A merge edge seen from one end: the other customer, and whether the
/// merge is in force (decided by the latest merged/unmerged event of the pair).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub other: String,
    pub active: bool,
    pub stamp: Stamp,
}

/// Sets the edge to `other` in a list sorted by `other`, latest stamp wins.
pub fn set_edge(edges: &mut Vec<Edge>, other: &str, active: bool, stamp: &Stamp) {
    match edges.binary_search_by(|e| e.other.as_str().cmp(other)) {
        Ok(i) => {
            if *stamp > edges[i].stamp {
                edges[i].active = active;
                edges[i].stamp = stamp.clone();
            }
        }
        Err(i) => edges.insert(
            i,
            Edge {
                other: other.to_string(),
                active,
                stamp: stamp.clone(),
            },
        ),
    }
}

/// `s/{customer}`: counts of what is attributed to exactly this id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub interactions_total: i64,
    pub interactions_by_channel: BTreeMap<String, i64>,
    pub cases_total: i64,
    pub cases_open: i64,
}

impl Counters {
    pub fn is_zero(&self) -> bool {
        self.interactions_total == 0
            && self.interactions_by_channel.is_empty()
            && self.cases_total == 0
            && self.cases_open == 0
    }
    pub fn add_interaction(&mut self, channel: Option<Channel>, n: i64) {
        self.interactions_total += n;
        if let Some(ch) = channel {
            let c = self
                .interactions_by_channel
                .entry(ch.as_str().to_string())
                .or_default();
            *c += n;
            if *c == 0 {
                self.interactions_by_channel.remove(ch.as_str());
            }
        }
    }
}

/// `p/{customer}{campaign}`: a campaign contact, as its customer sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub campaign_id: String,
    pub attempts: u64,
    pub last_outcome: Option<Lww<String>>,
    pub last_result: Option<Lww<String>>,
}

/// `pn/{campaign}`: the campaign's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignName {
    pub name: Lww<String>,
}

// --------------------------------------------------------------- interaction

/// How the interaction started (from the earliest `interaction.started` or
/// `interaction.recorded`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Start {
    pub stamp: Stamp,
    pub channel: Channel,
    pub direction: Direction,
    pub from: Option<Identity>,
    pub to: Option<Identity>,
    pub subject: Option<String>,
    pub ivr: Option<Value>,
    pub hints: Vec<Hint>,
}

/// An identity the interaction suggests (never attributes): the caller's
/// address, or something typed into the IVR.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct Hint {
    /// Identity kind (`phone`, `card`, `account`, ...).
    pub kind: String,
    /// Normalised value.
    pub value: String,
    /// `from` (inbound caller / sender), `to` (outbound callee) or `ivr`.
    pub source: String,
}

/// How the interaction ended (the latest `interaction.ended`, or `interaction.recorded`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct End {
    pub stamp: Stamp,
    pub ended_at: DateTime<Utc>,
    pub outcome: Option<InteractionOutcome>,
    pub talk_seconds: Option<f64>,
    pub handle_seconds: Option<f64>,
    pub wrapup_code: Option<String>,
}

/// One transfer of an interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub stamp: Stamp,
    pub agent_id: Option<String>,
    pub to_queue: Option<String>,
    pub to_agent_id: Option<String>,
    pub tier: Option<u32>,
    pub reason: Option<String>,
}

/// When an agent was first and last involved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub first: Stamp,
    pub last: Stamp,
}

/// Who the interaction is about, as one event said it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub customer_id: String,
    /// `interaction.identified`'s `method`, or `customer_id` for an
    /// envelope `customer_id` on another event.
    pub method: String,
}

/// The derived entries an interaction has written: where its index entries
/// and counter contributions are. Rewritten on every change, so it is a
/// function of the facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncedInteraction {
    pub customer: Option<String>,
    pub time: DateTime<Utc>,
    pub channel: Option<Channel>,
}

/// `i/{interaction}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InteractionRec {
    pub interaction_id: String,
    pub start: Option<Start>,
    pub first_event_at: Option<DateTime<Utc>>,
    pub end: Option<End>,
    pub queue: Option<Lww<String>>,
    pub agents: BTreeMap<String, Seen>,
    pub transfers: Vec<Transfer>,
    pub messages_count: u64,
    /// The latest `interaction.identified` (takes precedence).
    pub identified: Option<Lww<Attribution>>,
    /// The latest envelope `customer_id` of any other interaction event.
    pub tagged: Option<Lww<Attribution>>,
    pub synced: Option<SyncedInteraction>,
}

impl InteractionRec {
    /// The customer the interaction is attributed to (its own id, not
    /// resolved through merges).
    pub fn attribution(&self) -> Option<&Attribution> {
        self.identified
            .as_ref()
            .or(self.tagged.as_ref())
            .map(|l| &l.value)
    }
    pub fn customer(&self) -> Option<String> {
        self.attribution().map(|a| a.customer_id.clone())
    }
    pub fn channel(&self) -> Option<Channel> {
        self.start.as_ref().map(|s| s.channel)
    }
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.start.as_ref().map(|s| s.stamp.at)
    }
    /// The time the interaction sorts by: its start, or while no start is
    /// known, its earliest event.
    pub fn sort_time(&self) -> DateTime<Utc> {
        self.started_at()
            .or(self.first_event_at)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
    /// Agents in order of first involvement.
    pub fn agent_ids(&self) -> Vec<String> {
        let mut v: Vec<(&Stamp, &String)> =
            self.agents.iter().map(|(a, s)| (&s.first, a)).collect();
        v.sort();
        v.into_iter().map(|(_, a)| a.clone()).collect()
    }
    /// The agent involved last.
    pub fn last_agent(&self) -> Option<String> {
        self.agents
            .iter()
            .max_by(|a, b| (&a.1.last, a.0).cmp(&(&b.1.last, b.0)))
            .map(|(a, _)| a.clone())
    }
    pub fn see_agent(&mut self, agent: &str, stamp: &Stamp) {
        let seen = self
            .agents
            .entry(agent.to_string())
            .or_insert_with(|| Seen {
                first: stamp.clone(),
                last: stamp.clone(),
            });
        if *stamp < seen.first {
            seen.first = stamp.clone();
        }
        if *stamp > seen.last {
            seen.last = stamp.clone();
        }
    }
    pub fn hints(&self) -> Vec<Hint> {
        self.start
            .as_ref()
            .map(|s| s.hints.clone())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------- case

/// Status of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Open,
    Resolved,
    Closed,
    Voided,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Resolved => "resolved",
            CaseStatus::Closed => "closed",
            CaseStatus::Voided => "voided",
        }
    }
}

/// What `case.opened` said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened {
    pub stamp: Stamp,
    pub priority: String,
}

/// The derived entries a case has written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncedCase {
    pub customer: Option<String>,
    pub counted: bool,
    pub open: bool,
    pub opened_at: Option<DateTime<Utc>>,
}

/// `k/{case}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseRec {
    pub case_id: String,
    pub opened: Option<Opened>,
    pub category: Option<Lww<String>>,
    pub tier: Option<Lww<u32>>,
    /// The latest of resolved / reopened / closed.
    pub status: Option<Lww<CaseStatus>>,
    /// The earliest `case.voided`: voiding is final.
    pub voided: Option<Stamp>,
    pub identified: Option<Lww<String>>,
    pub tagged: Option<Lww<String>>,
    pub synced: Option<SyncedCase>,
}

impl CaseRec {
    pub fn customer(&self) -> Option<String> {
        self.identified
            .as_ref()
            .or(self.tagged.as_ref())
            .map(|l| l.value.clone())
    }
    pub fn status(&self) -> CaseStatus {
        if self.voided.is_some() {
            CaseStatus::Voided
        } else {
            self.status
                .as_ref()
                .map(|s| s.value)
                .unwrap_or(CaseStatus::Open)
        }
    }
}
