//! Stored records and the fold of one case.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use crm_events::{
    Channel, Direction, Event, EventData, OpenedBy, Priority, Visibility, VoidReason,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys;

/// Lifecycle status of a case (api.md: `open|resolved|closed|voided`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Resolved,
    Closed,
    Voided,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::Resolved,
        Status::Closed,
        Status::Voided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Voided => "voided",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One step of the escalation path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub from_tier: u32,
    pub to_tier: u32,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
    pub queue: Option<String>,
    pub agent_id: Option<String>,
    pub event_id: String,
}

/// The folded state of an opened case (`c/` enc(case)).
///
/// It is a pure function of the case stream: `case.opened` first, then every
/// other event of the case in `(occurred_at, seq)` order, `seq` being the
/// event's position in the case stream. Nothing from other streams is in
/// it; interactions and merges are joined at query time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub case_id: String,
    pub opened_event_id: String,
    pub opened_at: DateTime<Utc>,
    pub opened_by: Option<OpenedBy>,
    pub opened_agent_id: Option<String>,
    pub subject: Option<String>,
    /// The customer the case's own events name (`case.opened` or the latest
    /// `case.customer_identified`), before merge resolution.
    pub customer_id: Option<String>,
    pub customer_identified_at: Option<DateTime<Utc>>,
    pub status: Status,
    pub category: String,
    pub subcategory: Option<String>,
    pub priority: Priority,
    pub initial_tier: u32,
    pub tier: u32,
    pub queue: Option<String>,
    pub assignee: Option<String>,
    pub related: BTreeMap<String, Value>,
    pub origin_interaction_id: Option<String>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolve_due: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub first_response_channel: Option<Channel>,
    pub responses_count: u64,
    /// The resolution in effect (cleared by a reopen).
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub resolution_code: Option<String>,
    pub first_resolved_at: Option<DateTime<Utc>>,
    pub resolutions_count: u64,
    /// The close in effect (cleared by a reopen).
    pub closed_at: Option<DateTime<Utc>>,
    pub reopen_count: u64,
    pub last_reopened_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<VoidReason>,
    pub duplicate_of: Option<String>,
    pub escalations: Vec<Escalation>,
    pub notes_count: u64,
    pub customer_notes_count: u64,
    pub links_count: u64,
    pub events_count: u64,
    pub last_event_at: DateTime<Utc>,
    /// Case-stream events applied so far, also the next event's `seq`.
    pub next_seq: u64,
    /// The greatest `(occurred_at, seq)` of the folded events other than
    /// `case.opened`: a new event sorting after it is folded in place,
    /// one sorting before it makes the case refold from its history.
    pub fold_last: Option<(DateTime<Utc>, u64)>,
}

/// A case whose events arrived before its `case.opened` (`p/` enc(case)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Events of the case so far, also the next event's `seq`. The waiting
    /// events themselves are the case's history entries.
    pub next_seq: u64,
}

/// An interaction gathered by a case (`l/` enc(case) enc(interaction)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub interaction_id: String,
    /// Named as `origin_interaction_id` by `case.opened`.
    pub origin: bool,
    /// The earliest linking event (`case.opened` or `case.interaction_linked`).
    pub linked_at: DateTime<Utc>,
    pub event_id: String,
}

impl Link {
    /// Combines two links of the same interaction (commutative).
    pub fn merge(self, other: Link) -> Link {
        let origin = self.origin || other.origin;
        let first = if (other.linked_at, &other.event_id) < (self.linked_at, &self.event_id) {
            other
        } else {
            self
        };
        Link { origin, ..first }
    }
}

/// The start of an interaction (`i/` enc(interaction)), from its earliest
/// `interaction.started` / `interaction.recorded` by `(occurred_at, event_id)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionStart {
    pub interaction_id: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub started_at: DateTime<Utc>,
    pub channel: Channel,
    pub direction: Direction,
    pub agent_id: Option<String>,
    pub queue: Option<String>,
    pub subject: Option<String>,
    pub source: String,
}

impl InteractionStart {
    pub fn from_event(e: &Event) -> Option<InteractionStart> {
        let (channel, direction, queue, subject) = match &e.data {
            EventData::InteractionStarted(d) => {
                (d.channel, d.direction, d.queue.clone(), d.subject.clone())
            }
            EventData::InteractionRecorded(d) => (d.channel, d.direction, None, d.subject.clone()),
            _ => return None,
        };
        Some(InteractionStart {
            interaction_id: e.interaction_id.clone()?,
            event_id: e.event_id.clone(),
            event_type: e.event_type().as_str().to_string(),
            started_at: e.occurred_at,
            channel,
            direction,
            agent_id: e.agent_id.clone(),
            queue,
            subject,
            source: e.source.clone(),
        })
    }

    /// Whether `self` is an earlier start than `other`.
    pub fn before(&self, other: &InteractionStart) -> bool {
        (self.started_at, &self.event_id) < (other.started_at, &other.event_id)
    }

    pub fn summary(&self) -> String {
        let verb = if self.event_type == "interaction.recorded" {
            "recorded"
        } else {
            "started"
        };
        let mut s = format!(
            "{} {} interaction {} {verb}",
            self.direction, self.channel, self.interaction_id
        );
        if let Some(q) = &self.queue {
            s.push_str(&format!(" in queue {q}"));
        }
        if let Some(subject) = &self.subject {
            s.push_str(&format!(": {}", clip(subject)));
        }
        s
    }
}

/// The merge `merged -> survivor` (`m/` and `o/`), as decided by the latest
/// `customer.merged`/`customer.unmerged` of the pair by `(occurred_at,
/// event_id)`: `active` for a merge, `false` after an unmerge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeEdge {
    pub survivor: String,
    pub merged: String,
    pub active: bool,
    /// The deciding event.
    pub at: DateTime<Utc>,
    pub event_id: String,
}

impl MergeEdge {
    /// The order of "latest wins": event time, then event id.
    pub fn stamp(&self) -> (DateTime<Utc>, &str) {
        (self.at, &self.event_id)
    }
}

impl CaseRecord {
    /// Starts a case from its `case.opened` (at stream position `seq`).
    pub fn open(e: &Event, seq: u64) -> Option<CaseRecord> {
        let EventData::CaseOpened(d) = &e.data else {
            return None;
        };
        Some(CaseRecord {
            case_id: e.case_id.clone()?,
            opened_event_id: e.event_id.clone(),
            opened_at: e.occurred_at,
            opened_by: d.opened_by,
            opened_agent_id: e.agent_id.clone(),
            subject: d.subject.clone(),
            customer_id: e.customer_id.clone(),
            customer_identified_at: e.customer_id.as_ref().map(|_| e.occurred_at),
            status: Status::Open,
            category: d.category.clone(),
            subcategory: d.subcategory.clone(),
            priority: d.priority(),
            initial_tier: d.tier(),
            tier: d.tier(),
            queue: d.queue.clone(),
            assignee: None,
            related: d.related.clone(),
            origin_interaction_id: d.origin_interaction_id.clone(),
            first_response_due: d.first_response_due,
            resolve_due: d.resolve_due,
            first_response_at: None,
            first_response_channel: None,
            responses_count: 0,
            resolved_at: None,
            resolution: None,
            resolution_code: None,
            first_resolved_at: None,
            resolutions_count: 0,
            closed_at: None,
            reopen_count: 0,
            last_reopened_at: None,
            voided_at: None,
            void_reason: None,
            duplicate_of: None,
            escalations: Vec::new(),
            notes_count: 0,
            customer_notes_count: 0,
            links_count: 0,
            events_count: 1,
            last_event_at: e.occurred_at,
            next_seq: seq + 1,
            fold_last: None,
        })
    }

    /// Folds one event other than `case.opened`, at stream position `seq`,
    /// that sorts after every event folded so far. Events that do not fit
    /// the lifecycle at their place in the fold (a reopen of an open case,
    /// a resolution of a closed or voided case, ...) are kept in history but
    /// change nothing of the lifecycle.
    pub fn fold(&mut self, e: &Event, seq: u64) {
        let t = e.occurred_at;
        match &e.data {
            EventData::CaseOpened(_) => {}
            EventData::CaseInteractionLinked(_) => self.links_count += 1,
            EventData::CaseCustomerIdentified(_) => {
                if let Some(c) = &e.customer_id {
                    self.customer_id = Some(c.clone());
                    self.customer_identified_at = Some(t);
                }
            }
            EventData::CaseCategorized(d) => {
                self.category = d.category.clone();
                self.subcategory = d.subcategory.clone();
            }
            EventData::CaseAssigned(d) => {
                if let Some(q) = &d.queue {
                    self.queue = Some(q.clone());
                }
                self.assignee = e.agent_id.clone();
            }
            EventData::CaseEscalated(d) => {
                self.escalations.push(Escalation {
                    from_tier: self.tier,
                    to_tier: d.to_tier,
                    at: t,
                    reason: d.reason.clone(),
                    queue: d.queue.clone(),
                    agent_id: e.agent_id.clone(),
                    event_id: e.event_id.clone(),
                });
                self.tier = d.to_tier;
                if let Some(q) = &d.queue {
                    self.queue = Some(q.clone());
                    self.assignee = None;
                }
            }
            EventData::CaseNoteAdded(d) => {
                self.notes_count += 1;
                if d.visibility == Some(Visibility::Customer) {
                    self.customer_notes_count += 1;
                }
            }
            EventData::CaseResponded(d) => {
                self.responses_count += 1;
                if self.first_response_at.is_none_or(|f| t < f) {
                    self.first_response_at = Some(t);
                    self.first_response_channel = d.channel;
                }
            }
            EventData::CaseResolved(d) => {
                if matches!(self.status, Status::Open | Status::Resolved) {
                    self.status = Status::Resolved;
                    self.resolved_at = Some(t);
                    self.resolution = Some(d.resolution.clone());
                    self.resolution_code = d.resolution_code.clone();
                    self.first_resolved_at.get_or_insert(t);
                    self.resolutions_count += 1;
                }
            }
            EventData::CaseReopened(_) => {
                if matches!(self.status, Status::Resolved | Status::Closed) {
                    self.status = Status::Open;
                    self.reopen_count += 1;
                    self.last_reopened_at = Some(t);
                    self.resolved_at = None;
                    self.resolution = None;
                    self.resolution_code = None;
                    self.closed_at = None;
                }
            }
            EventData::CaseClosed(_) => {
                if matches!(self.status, Status::Open | Status::Resolved) {
                    self.status = Status::Closed;
                    self.closed_at = Some(t);
                }
            }
            EventData::CaseVoided(d) => {
                if self.status != Status::Voided {
                    self.status = Status::Voided;
                    self.voided_at = Some(t);
                    self.void_reason = Some(d.reason);
                    self.duplicate_of = d.duplicate_of.clone();
                }
            }
            _ => return,
        }
        self.events_count += 1;
        self.last_event_at = self.last_event_at.max(t);
        self.fold_last = Some((t, seq));
    }

    /// Whether an event at `(t, seq)` can be folded in place.
    pub fn folds_in_place(&self, t: DateTime<Utc>, seq: u64) -> bool {
        self.fold_last.is_none_or(|last| (t, seq) > last)
    }

    /// The index keys this case should have.
    pub fn index_keys(&self) -> BTreeSet<Vec<u8>> {
        let c = &self.case_id;
        let mut out = BTreeSet::new();
        out.insert(keys::key2(keys::IDX_STATUS, self.status.as_str(), c));
        out.insert(keys::key2(keys::IDX_CATEGORY, &self.category, c));
        out.insert(keys::key2(keys::IDX_TIER, &self.tier.to_string(), c));
        if let Some(q) = &self.queue {
            out.insert(keys::key2(keys::IDX_QUEUE, q, c));
        }
        if let Some(u) = &self.customer_id {
            out.insert(keys::key2(keys::IDX_CUSTOMER, u, c));
        }
        out
    }

    /// When the case stopped being worked, for the SLA clocks: the
    /// resolution in effect, else the close, else the void; `None` while open.
    pub fn stopped_at(&self) -> Option<DateTime<Utc>> {
        match self.status {
            Status::Open => None,
            Status::Resolved => self.resolved_at,
            Status::Closed => self.resolved_at.or(self.closed_at),
            Status::Voided => self.voided_at,
        }
    }

    /// Opened to the resolution in effect (or the close, for a case closed
    /// without one); `None` while open or when voided.
    pub fn resolution_time(&self) -> Option<DateTime<Utc>> {
        match self.status {
            Status::Resolved | Status::Closed => self.stopped_at(),
            Status::Open | Status::Voided => None,
        }
    }

    /// SLA flags at `now` (see the crate docs): `None` without a due time,
    /// and for a voided case.
    pub fn first_response_breached(&self, now: DateTime<Utc>) -> Option<bool> {
        let due = self.first_response_due?;
        if self.status == Status::Voided {
            return None;
        }
        Some(match (self.first_response_at, self.stopped_at()) {
            (Some(r), _) => r > due,
            (None, Some(stop)) => stop > due,
            (None, None) => now > due,
        })
    }

    pub fn resolve_breached(&self, now: DateTime<Utc>) -> Option<bool> {
        let due = self.resolve_due?;
        if self.status == Status::Voided {
            return None;
        }
        Some(match self.stopped_at() {
            Some(stop) => stop > due,
            None => now > due,
        })
    }
}

/// Seconds from `a` to `b`, never negative (millisecond precision).
pub fn seconds_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    ((b - a).num_milliseconds().max(0) as f64) / 1000.0
}

/// Shortens free text for a summary.
pub fn clip(text: &str) -> String {
    const MAX: usize = 120;
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        let mut s: String = one_line.chars().take(MAX - 1).collect();
        s.push('…');
        s
    }
}

/// A one-line description of a case event for the history (the agent is
/// in the entry's own `agent_id`).
pub fn summary(e: &Event) -> String {
    match &e.data {
        EventData::CaseOpened(d) => {
            let mut s = format!("opened: {}", d.category);
            if let Some(sub) = &d.subcategory {
                s.push_str(&format!("/{sub}"));
            }
            s.push_str(&format!(", priority {}, tier {}", d.priority(), d.tier()));
            if let Some(q) = &d.queue {
                s.push_str(&format!(", queue {q}"));
            }
            if let Some(subject) = &d.subject {
                s.push_str(&format!(": {}", clip(subject)));
            }
            s
        }
        EventData::CaseInteractionLinked(_) => format!(
            "interaction {} linked",
            e.interaction_id.as_deref().unwrap_or("?")
        ),
        EventData::CaseCustomerIdentified(_) => format!(
            "customer identified: {}",
            e.customer_id.as_deref().unwrap_or("?")
        ),
        EventData::CaseCategorized(d) => match &d.subcategory {
            Some(sub) => format!("categorized: {}/{sub}", d.category),
            None => format!("categorized: {}", d.category),
        },
        EventData::CaseAssigned(d) => {
            let mut s = match &e.agent_id {
                Some(a) => format!("assigned to {a}"),
                None => "returned to queue".to_string(),
            };
            if let Some(q) = &d.queue {
                s.push_str(&format!(" in queue {q}"));
            }
            s
        }
        EventData::CaseEscalated(d) => {
            let mut s = format!("escalated to tier {}", d.to_tier);
            if let Some(q) = &d.queue {
                s.push_str(&format!(" (queue {q})"));
            }
            if let Some(r) = &d.reason {
                s.push_str(&format!(": {}", clip(r)));
            }
            s
        }
        EventData::CaseNoteAdded(d) => format!(
            "{} note: {}",
            d.visibility.map(|v| v.as_str()).unwrap_or("internal"),
            clip(&d.text)
        ),
        EventData::CaseResponded(d) => {
            let mut s = "responded".to_string();
            if let Some(c) = d.channel {
                s.push_str(&format!(" by {c}"));
            }
            if let Some(i) = &d.interaction_id {
                s.push_str(&format!(" (interaction {i})"));
            }
            s
        }
        EventData::CaseResolved(d) => match &d.resolution_code {
            Some(code) => format!("resolved [{code}]: {}", clip(&d.resolution)),
            None => format!("resolved: {}", clip(&d.resolution)),
        },
        EventData::CaseReopened(d) => match &d.reason {
            Some(r) => format!("reopened: {}", clip(r)),
            None => "reopened".to_string(),
        },
        EventData::CaseClosed(_) => "closed".to_string(),
        EventData::CaseVoided(d) => match &d.duplicate_of {
            Some(dup) => format!("voided ({}, duplicate of {dup})", d.reason),
            None => format!("voided ({})", d.reason),
        },
        other => other.event_type().as_str().to_string(),
    }
}
