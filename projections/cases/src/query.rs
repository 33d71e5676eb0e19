//! The query side: `GET /v1/cases/{id}`, `GET /v1/cases?...`, and counts.
//!
//! Every function takes the projection's key space and, where SLA flags of
//! still-open cases are reported, `now`: the HTTP layer passes the server's
//! clock. Nothing else in an answer depends on the clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_events::{format_time, Event};
use crm_projection::query::{decode_cursor, encode_cursor, limit, Page, QueryError};
use crm_projection::{get_json, KvRead};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys;
use crate::model::{seconds_between, summary, CaseRecord, InteractionStart, Link, Status};

fn time(t: &DateTime<Utc>) -> String {
    format_time(t)
}

fn opt_time(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(format_time)
}

// ------------------------------------------------------------- responses

/// SLA of a case (api.md `sla`), plus whether it counts in SLA figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseSla {
    /// From `case.opened`; `null` when none was given.
    pub first_response_due: Option<String>,
    /// First `case.responded` after the due time; without a response: the
    /// case stopped (resolved/closed) after it, or is still open and `now` is
    /// past it. `null` without a due time or for a voided case.
    pub first_response_breached: Option<bool>,
    pub resolve_due: Option<String>,
    /// The resolution in effect (else the close) after the due time; while
    /// open (also after a reopen): `now` past it. `null` without a due time
    /// or for a voided case.
    pub resolve_breached: Option<bool>,
    /// False for a voided case: it is left out of every SLA figure.
    pub counted: bool,
    /// The `now` the flags of a still-open case were judged against.
    pub evaluated_at: String,
}

/// One step of the escalation path.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EscalationView {
    pub from_tier: u32,
    pub to_tier: u32,
    pub at: String,
    pub reason: Option<String>,
    /// Queue the escalation moved the case to, if any.
    pub queue: Option<String>,
    /// The agent who escalated.
    pub agent_id: Option<String>,
    pub event_id: String,
}

/// An interaction the case gathers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseInteraction {
    pub interaction_id: String,
    /// From the interaction's own `interaction.started`/`interaction.recorded`;
    /// `null` until that event has been seen.
    pub channel: Option<String>,
    pub started_at: Option<String>,
    pub direction: Option<String>,
    /// True for the case's `origin_interaction_id`.
    pub origin: bool,
    /// When the case first named it (`case.opened` or `case.interaction_linked`).
    pub linked_at: String,
}

/// One entry of a case's history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub agent_id: Option<String>,
    pub summary: String,
    /// Position in the case stream; `null` for the origin interaction's start.
    pub seq: Option<u64>,
    pub source: String,
    /// The interaction the entry is about, when it names one.
    pub interaction_id: Option<String>,
    /// The event's `data`; for the origin interaction's start, its
    /// `channel`, `direction`, `queue` and `subject`.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// `GET /v1/cases/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseView {
    pub case_id: String,
    /// The current survivor of the customer the case names (merges
    /// resolved); `null` for a non-personalised case.
    pub customer_id: Option<String>,
    /// The customer as the case's own events name it, before merges.
    pub attributed_customer_id: Option<String>,
    pub status: Status,
    pub category: String,
    pub subcategory: Option<String>,
    /// `low|normal|high|urgent`.
    pub priority: String,
    pub tier: u32,
    pub queue: Option<String>,
    pub assignee: Option<String>,
    #[schema(value_type = Object)]
    pub related: Value,
    pub subject: Option<String>,
    pub opened_at: String,
    /// `agent|rule`.
    pub opened_by: Option<String>,
    pub opened_agent_id: Option<String>,
    pub origin_interaction_id: Option<String>,
    pub first_response_at: Option<String>,
    /// The resolution in effect (`null` after a reopen).
    pub resolved_at: Option<String>,
    pub resolution: Option<String>,
    pub resolution_code: Option<String>,
    pub first_resolved_at: Option<String>,
    /// The close in effect (`null` after a reopen).
    pub closed_at: Option<String>,
    pub reopen_count: u64,
    pub last_reopened_at: Option<String>,
    /// `prank|wrong_number|duplicate|test|other`.
    pub void_reason: Option<String>,
    pub voided_at: Option<String>,
    pub duplicate_of: Option<String>,
    pub escalations: Vec<EscalationView>,
    /// The tiers the case went through: the opening tier, then each escalation's `to_tier`.
    pub escalation_path: Vec<u32>,
    pub interactions: Vec<CaseInteraction>,
    pub sla: CaseSla,
    /// First response − opening, in seconds (never negative).
    pub time_to_first_response_seconds: Option<f64>,
    /// Resolution in effect (else close) − opening, in seconds; `null` while open or voided.
    pub time_to_resolution_seconds: Option<f64>,
    pub responses_count: u64,
    pub notes_count: u64,
    pub customer_notes_count: u64,
    pub events_count: u64,
    pub last_event_at: String,
    /// Event-time order, ties in case-stream order; the origin interaction's start first.
    pub history: Vec<HistoryEntry>,
}

/// An item of `GET /v1/cases`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseSummary {
    pub case_id: String,
    pub customer_id: Option<String>,
    pub status: Status,
    pub category: String,
    pub subcategory: Option<String>,
    pub priority: String,
    pub tier: u32,
    pub queue: Option<String>,
    pub assignee: Option<String>,
    pub subject: Option<String>,
    pub opened_at: String,
    pub first_response_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
    pub reopen_count: u64,
    pub void_reason: Option<String>,
    pub sla: CaseSla,
}

/// Counts of the cases matching a filter. Voided cases are only in `voided`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CaseCounts {
    /// Every case but the voided ones.
    pub total: u64,
    pub open: u64,
    pub resolved: u64,
    pub closed: u64,
    pub voided: u64,
    /// Non-voided cases whose first-response SLA is breached (at `now`).
    pub first_response_breached: u64,
    /// Non-voided cases whose resolution SLA is breached (at `now`).
    pub resolve_breached: u64,
}

// ------------------------------------------------------------ parameters

/// Query parameters of `GET /v1/cases`. An empty string counts as absent.
/// Filters combine with AND. Items come in `case_id` order.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CaseListParams {
    /// Cases of this customer, merges resolved: the cases of every customer
    /// currently merged into it (transitively) are included. A merged id
    /// stands for its current survivor (the same list as the survivor's).
    pub customer_id: Option<String>,
    /// `open`, `resolved`, `closed` or `voided` (else 422).
    pub status: Option<String>,
    /// Current category, exact match.
    pub category: Option<String>,
    /// Current queue, exact match.
    pub queue: Option<String>,
    /// Current tier, a positive integer (else 422).
    pub tier: Option<String>,
    /// Page size: default 50, 1 to 1000 (else 422).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page of the same list (else 400).
    pub cursor: Option<String>,
}

/// Query parameters of [`count_cases`]: the filters of [`CaseListParams`]
/// other than `status` (what is counted). At least one is required.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CaseCountParams {
    /// As in [`CaseListParams::customer_id`].
    pub customer_id: Option<String>,
    /// Current category, exact match.
    pub category: Option<String>,
    /// Current queue, exact match.
    pub queue: Option<String>,
    /// Current tier, a positive integer (else 422).
    pub tier: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

// --------------------------------------------------------------- queries

/// `GET /v1/cases/{id}`: the case, its interactions and its history, or
/// `None` for a case that was never opened. `now` judges the SLA of a case
/// still waiting for its response or resolution.
pub fn get_case(
    kv: &dyn KvRead,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<CaseView>, QueryError> {
    let Some(rec) = get_json::<CaseRecord>(kv, &keys::key1(keys::CASE, case_id))? else {
        return Ok(None);
    };
    let customer_id = match &rec.customer_id {
        Some(c) => Some(crate::resolve_customer(kv, c)?),
        None => None,
    };

    let mut interactions = Vec::new();
    for (_, v) in kv.scan(&keys::key1(keys::LINK, case_id), None, usize::MAX)? {
        let link: Link = serde_json::from_slice(&v)?;
        let start =
            get_json::<InteractionStart>(kv, &keys::key1(keys::INTERACTION, &link.interaction_id))?;
        let sort_key = (
            start.is_none(),
            start.as_ref().map(|s| s.started_at),
            link.interaction_id.clone(),
        );
        interactions.push((
            sort_key,
            CaseInteraction {
                channel: start.as_ref().map(|s| s.channel.as_str().to_string()),
                started_at: start.as_ref().map(|s| time(&s.started_at)),
                direction: start.as_ref().map(|s| s.direction.as_str().to_string()),
                origin: link.origin,
                linked_at: time(&link.linked_at),
                interaction_id: link.interaction_id,
            },
        ));
    }
    // Known starts first, by start time, then by id.
    interactions.sort_by(|a, b| a.0.cmp(&b.0));
    let interactions: Vec<CaseInteraction> = interactions.into_iter().map(|(_, i)| i).collect();

    let mut history = Vec::new();
    if let Some(origin) = &rec.origin_interaction_id {
        if let Some(s) = get_json::<InteractionStart>(kv, &keys::key1(keys::INTERACTION, origin))? {
            let mut data = serde_json::json!({"channel": s.channel, "direction": s.direction});
            if let Some(q) = &s.queue {
                data["queue"] = Value::from(q.as_str());
            }
            if let Some(subject) = &s.subject {
                data["subject"] = Value::from(subject.as_str());
            }
            history.push(HistoryEntry {
                data,
                summary: s.summary(),
                event_id: s.event_id,
                event_type: s.event_type,
                occurred_at: time(&s.started_at),
                agent_id: s.agent_id,
                seq: None,
                source: s.source,
                interaction_id: Some(s.interaction_id),
            });
        }
    }
    for (k, v) in kv.scan(&keys::key1(keys::HISTORY, case_id), None, usize::MAX)? {
        let e: Event = serde_json::from_slice(&v)?;
        let interaction_id = match &e.data {
            crm_events::EventData::CaseOpened(d) => d.origin_interaction_id.clone(),
            crm_events::EventData::CaseResponded(d) => d.interaction_id.clone(),
            _ => e.interaction_id.clone(),
        };
        history.push(HistoryEntry {
            summary: summary(&e),
            event_type: e.event_type().as_str().to_string(),
            occurred_at: time(&e.occurred_at),
            agent_id: e.agent_id.clone(),
            seq: keys::history_seq(&k),
            source: e.source.clone(),
            interaction_id,
            data: serde_json::to_value(&e.data)?,
            event_id: e.event_id,
        });
    }

    let related = serde_json::to_value(&rec.related)?;
    let sla = sla(&rec, now);
    let mut escalation_path = vec![rec.initial_tier];
    escalation_path.extend(rec.escalations.iter().map(|e| e.to_tier));
    Ok(Some(CaseView {
        case_id: rec.case_id.clone(),
        customer_id,
        attributed_customer_id: rec.customer_id.clone(),
        status: rec.status,
        category: rec.category.clone(),
        subcategory: rec.subcategory.clone(),
        priority: rec.priority.as_str().to_string(),
        tier: rec.tier,
        queue: rec.queue.clone(),
        assignee: rec.assignee.clone(),
        related,
        subject: rec.subject.clone(),
        opened_at: time(&rec.opened_at),
        opened_by: rec.opened_by.map(|o| o.as_str().to_string()),
        opened_agent_id: rec.opened_agent_id.clone(),
        origin_interaction_id: rec.origin_interaction_id.clone(),
        first_response_at: opt_time(&rec.first_response_at),
        resolved_at: opt_time(&rec.resolved_at),
        resolution: rec.resolution.clone(),
        resolution_code: rec.resolution_code.clone(),
        first_resolved_at: opt_time(&rec.first_resolved_at),
        closed_at: opt_time(&rec.closed_at),
        reopen_count: rec.reopen_count,
        last_reopened_at: opt_time(&rec.last_reopened_at),
        void_reason: rec.void_reason.map(|r| r.as_str().to_string()),
        voided_at: opt_time(&rec.voided_at),
        duplicate_of: rec.duplicate_of.clone(),
        escalations: rec
            .escalations
            .iter()
            .map(|e| EscalationView {
                from_tier: e.from_tier,
                to_tier: e.to_tier,
                at: time(&e.at),
                reason: e.reason.clone(),
                queue: e.queue.clone(),
                agent_id: e.agent_id.clone(),
                event_id: e.event_id.clone(),
            })
            .collect(),
        escalation_path,
        interactions,
        sla,
        time_to_first_response_seconds: rec
            .first_response_at
            .map(|r| seconds_between(rec.opened_at, r)),
        time_to_resolution_seconds: rec
            .resolution_time()
            .map(|r| seconds_between(rec.opened_at, r)),
        responses_count: rec.responses_count,
        notes_count: rec.notes_count,
        customer_notes_count: rec.customer_notes_count,
        events_count: rec.events_count,
        last_event_at: time(&rec.last_event_at),
        history,
    }))
}

fn sla(rec: &CaseRecord, now: DateTime<Utc>) -> CaseSla {
    CaseSla {
        first_response_due: opt_time(&rec.first_response_due),
        first_response_breached: rec.first_response_breached(now),
        resolve_due: opt_time(&rec.resolve_due),
        resolve_breached: rec.resolve_breached(now),
        counted: rec.status != Status::Voided,
        evaluated_at: time(&now),
    }
}

fn case_summary(
    kv: &dyn KvRead,
    rec: CaseRecord,
    now: DateTime<Utc>,
) -> Result<CaseSummary, QueryError> {
    let customer_id = match &rec.customer_id {
        Some(c) => Some(crate::resolve_customer(kv, c)?),
        None => None,
    };
    Ok(CaseSummary {
        sla: sla(&rec, now),
        customer_id,
        status: rec.status,
        priority: rec.priority.as_str().to_string(),
        tier: rec.tier,
        opened_at: time(&rec.opened_at),
        first_response_at: opt_time(&rec.first_response_at),
        resolved_at: opt_time(&rec.resolved_at),
        closed_at: opt_time(&rec.closed_at),
        reopen_count: rec.reopen_count,
        void_reason: rec.void_reason.map(|r| r.as_str().to_string()),
        case_id: rec.case_id,
        category: rec.category,
        subcategory: rec.subcategory,
        queue: rec.queue,
        assignee: rec.assignee,
        subject: rec.subject,
    })
}

/// The filters of a list or a count, checked and normalised.
#[derive(Debug, Default)]
struct Filter {
    customer_id: Option<String>,
    status: Option<Status>,
    category: Option<String>,
    queue: Option<String>,
    tier: Option<u32>,
}

impl Filter {
    fn new(
        customer_id: &Option<String>,
        status: Option<&Option<String>>,
        category: &Option<String>,
        queue: &Option<String>,
        tier: &Option<String>,
    ) -> Result<Filter, QueryError> {
        let status = match status.and_then(given) {
            None => None,
            Some(s) => Some(Status::parse(s).ok_or_else(|| {
                QueryError::invalid(
                    "status",
                    format!("{s:?} is not one of open, resolved, closed, voided"),
                )
            })?),
        };
        let tier = match given(tier) {
            None => None,
            Some(t) => Some(t.parse::<u32>().ok().filter(|t| *t >= 1).ok_or_else(|| {
                QueryError::invalid("tier", format!("{t:?} is not a positive integer"))
            })?),
        };
        Ok(Filter {
            customer_id: given(customer_id).map(str::to_string),
            status,
            category: given(category).map(str::to_string),
            queue: given(queue).map(str::to_string),
            tier,
        })
    }

    /// The scope cursors are bound to: a cursor of another list is refused.
    fn scope(&self) -> String {
        serde_json::json!([
            "cases",
            self.customer_id,
            self.status.map(|s| s.as_str()),
            self.category,
            self.queue,
            self.tier
        ])
        .to_string()
    }

    /// One source of case ids per given filter (the customer filter is the
    /// union of the merge group's customer indexes).
    fn sources(&self, kv: &dyn KvRead) -> Result<Vec<Source>, QueryError> {
        let mut out = Vec::new();
        if let Some(c) = &self.customer_id {
            let survivor = crate::resolve_customer(kv, c)?;
            let group = crate::merge_group(kv, &survivor)?;
            out.push(Source {
                prefixes: group
                    .iter()
                    .map(|m| keys::key1(keys::IDX_CUSTOMER, m))
                    .collect(),
            });
        }
        if let Some(s) = self.status {
            out.push(Source::one(keys::key1(keys::IDX_STATUS, s.as_str())));
        }
        if let Some(c) = &self.category {
            out.push(Source::one(keys::key1(keys::IDX_CATEGORY, c)));
        }
        if let Some(q) = &self.queue {
            out.push(Source::one(keys::key1(keys::IDX_QUEUE, q)));
        }
        if let Some(t) = self.tier {
            out.push(Source::one(keys::key1(keys::IDX_TIER, &t.to_string())));
        }
        Ok(out)
    }
}

/// Where to resume a seek, as an encoded case id.
enum Bound<'a> {
    Start,
    /// Strictly after this encoded id.
    After(&'a [u8]),
    /// At or after this encoded id.
    AtOrAfter(&'a [u8]),
}

/// Case ids in order, from one index prefix or the union of several.
struct Source {
    prefixes: Vec<Vec<u8>>,
}

impl Source {
    fn one(prefix: Vec<u8>) -> Source {
        Source {
            prefixes: vec![prefix],
        }
    }

    /// The smallest encoded case id of the source within `bound`.
    fn seek(&self, kv: &dyn KvRead, bound: &Bound) -> Result<Option<Vec<u8>>, QueryError> {
        let mut best: Option<Vec<u8>> = None;
        for p in &self.prefixes {
            let after = match bound {
                Bound::Start => None,
                Bound::After(id) => Some([p.as_slice(), id].concat()),
                // Every key after `P + esc(id)` (the encoding without its
                // terminator) is at or after `P + enc(id)`: see keys.rs.
                Bound::AtOrAfter(id) => {
                    Some([p.as_slice(), &id[..id.len().saturating_sub(2)]].concat())
                }
            };
            if let Some((k, _)) = kv.scan(p, after.as_deref(), 1)?.into_iter().next() {
                let id = k[p.len()..].to_vec();
                if best.as_ref().is_none_or(|b| id < *b) {
                    best = Some(id);
                }
            }
        }
        Ok(best)
    }
}

/// The next case id within `bound` that every source holds (a leapfrog
/// join: each source seeks to the current candidate, every disagreement
/// moves the candidate forward).
fn next_match(
    kv: &dyn KvRead,
    sources: &[Source],
    bound: &Bound,
) -> Result<Option<Vec<u8>>, QueryError> {
    let Some(mut candidate) = sources[0].seek(kv, bound)? else {
        return Ok(None);
    };
    let n = sources.len();
    let mut agreeing = 1;
    let mut i = 1 % n;
    while agreeing < n {
        let Some(got) = sources[i].seek(kv, &Bound::AtOrAfter(&candidate))? else {
            return Ok(None);
        };
        if got == candidate {
            agreeing += 1;
        } else {
            candidate = got;
            agreeing = 1;
        }
        i = (i + 1) % n;
    }
    Ok(Some(candidate))
}

/// The record an index entry names. A query may see a batch's writes one
/// key at a time (crm-projector's `commit`), but never an index entry
/// without its record: the record `c/` sorts before every index `x/`, so it
/// is written first, and it is never removed. So a missing record is damage.
fn record_of(kv: &dyn KvRead, encoded_case: &[u8]) -> Result<CaseRecord, QueryError> {
    let key = [keys::CASE, encoded_case].concat();
    get_json::<CaseRecord>(kv, &key)?.ok_or_else(|| {
        QueryError::Store(crm_projection::StoreError(
            "index entry without its case".into(),
        ))
    })
}

/// `GET /v1/cases?customer_id=&status=&category=&queue=&tier=`: a page of
/// case summaries in `case_id` order. With filters it is served by
/// intersecting the filters' index keys; without, by walking the case keys.
pub fn list_cases(
    kv: &dyn KvRead,
    params: &CaseListParams,
    now: DateTime<Utc>,
) -> Result<Page<CaseSummary>, QueryError> {
    let limit = limit(params.limit)?;
    let filter = Filter::new(
        &params.customer_id,
        Some(&params.status),
        &params.category,
        &params.queue,
        &params.tier,
    )?;
    let scope = filter.scope();
    let after = match given(&params.cursor) {
        Some(c) => Some(decode_cursor(&scope, c)?),
        None => None,
    };
    let sources = filter.sources(kv)?;

    // Up to limit + 1 records or ids: the extra one says whether a next page exists.
    let mut found: Vec<(Vec<u8>, Option<CaseRecord>)> = Vec::new();
    if sources.is_empty() {
        let after_key = after.as_ref().map(|a| [keys::CASE, a.as_slice()].concat());
        for (k, v) in kv.scan(keys::CASE, after_key.as_deref(), limit + 1)? {
            found.push((
                k[keys::CASE.len()..].to_vec(),
                Some(serde_json::from_slice(&v)?),
            ));
        }
    } else {
        let mut last = after;
        while found.len() <= limit {
            let bound = match &last {
                Some(l) => Bound::After(l),
                None => Bound::Start,
            };
            let Some(id) = next_match(kv, &sources, &bound)? else {
                break;
            };
            let rec = if found.len() < limit {
                Some(record_of(kv, &id)?)
            } else {
                None
            };
            found.push((id.clone(), rec));
            last = Some(id);
        }
    }

    let next_cursor = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|(id, _)| encode_cursor(&scope, id))
    } else {
        None
    };
    let mut items = Vec::with_capacity(found.len());
    for (id, rec) in found {
        let rec = match rec {
            Some(r) => r,
            None => record_of(kv, &id)?,
        };
        items.push(case_summary(kv, rec, now)?);
    }
    Ok(Page { items, next_cursor })
}

/// Counts of the cases matching the filters, by status, with SLA breaches
/// judged at `now`. Voided cases are left out of `total` and of the SLA
/// counts. Reads every matching index entry and case record (the work grows
/// with the matching set, never with all cases); a filter is required.
pub fn count_cases(
    kv: &dyn KvRead,
    params: &CaseCountParams,
    now: DateTime<Utc>,
) -> Result<CaseCounts, QueryError> {
    let filter = Filter::new(
        &params.customer_id,
        None,
        &params.category,
        &params.queue,
        &params.tier,
    )?;
    let sources = filter.sources(kv)?;
    if sources.is_empty() {
        return Err(QueryError::invalid(
            "customer_id",
            "a count needs at least one of customer_id, category, queue, tier",
        ));
    }
    let mut counts = CaseCounts {
        total: 0,
        open: 0,
        resolved: 0,
        closed: 0,
        voided: 0,
        first_response_breached: 0,
        resolve_breached: 0,
    };
    let mut last: Option<Vec<u8>> = None;
    loop {
        let bound = match &last {
            Some(l) => Bound::After(l),
            None => Bound::Start,
        };
        let Some(id) = next_match(kv, &sources, &bound)? else {
            break;
        };
        let rec = record_of(kv, &id)?;
        match rec.status {
            Status::Voided => counts.voided += 1,
            s => {
                counts.total += 1;
                match s {
                    Status::Open => counts.open += 1,
                    Status::Resolved => counts.resolved += 1,
                    _ => counts.closed += 1,
                }
                if rec.first_response_breached(now) == Some(true) {
                    counts.first_response_breached += 1;
                }
                if rec.resolve_breached(now) == Some(true) {
                    counts.resolve_breached += 1;
                }
            }
        }
        last = Some(id);
    }
    Ok(counts)
}

/// Every case that has events but no `case.opened` yet, with the ids of
/// its waiting events in history order (for operators; the dead letters
/// show the same events as parked).
pub fn waiting_cases(kv: &dyn KvRead) -> Result<BTreeMap<String, Vec<String>>, QueryError> {
    let mut out = BTreeMap::new();
    for (k, _) in kv.scan(keys::PENDING, None, usize::MAX)? {
        if let Some((id, _)) = keys::decode_id(&k[keys::PENDING.len()..]) {
            let mut waiting = Vec::new();
            for (_, v) in kv.scan(&keys::key1(keys::HISTORY, &id), None, usize::MAX)? {
                waiting.push(serde_json::from_slice::<Event>(&v)?.event_id);
            }
            out.insert(id, waiting);
        }
    }
    Ok(out)
}
