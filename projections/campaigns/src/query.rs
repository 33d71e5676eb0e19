//! Query functions behind `GET /v1/campaigns/{id}` and
//! `GET /v1/campaigns/{id}/contacts`, plus the compliance violation list and
//! one contact's detail. Each reads only what it answers: point gets and
//! prefix scans of one campaign's keys.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_events::ContactOutcome;
use crm_projection::query::{decode_cursor, encode_cursor, limit, Page, QueryError};
use crm_projection::{get_json, KvRead};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::keys;
use crate::model::{from_micros, CampaignRecord, Counts, Derived};

/// Where a contact stands in the campaign's work lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactState {
    /// Not attempted yet.
    Pending,
    /// Last attempt busy / no answer / voicemail, fewer than `max_attempts`.
    Retry,
    /// A callback was requested and no attempt came after the request.
    Callback,
    /// Nothing more to do: a final outcome, attempts used up, or a result
    /// that is not retried (connected, delivered, invalid number, bounced, failed).
    Done,
    /// May not be contacted: `do_not_contact`, or no valid consent where
    /// the campaign needs one.
    Suppressed,
}

impl ContactState {
    pub const ALL: [ContactState; 5] = [
        ContactState::Pending,
        ContactState::Retry,
        ContactState::Callback,
        ContactState::Done,
        ContactState::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContactState::Pending => "pending",
            ContactState::Retry => "retry",
            ContactState::Callback => "callback",
            ContactState::Done => "done",
            ContactState::Suppressed => "suppressed",
        }
    }

    pub fn parse(s: &str) -> Option<ContactState> {
        ContactState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The identity a contact is to be reached on (from `campaign.contact_added`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IdentityView {
    pub kind: String,
    pub value: String,
}

/// One contact of a campaign (all ids of a merge group count once, under
/// the survivor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContactItem {
    /// The survivor's id.
    pub customer_id: String,
    pub state: ContactState,
    /// Attempts made (all ids of the group).
    pub attempts: u64,
    pub last_result: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The latest outcome by `occurred_at`.
    pub last_outcome: Option<String>,
    /// When the pending callback is due (state `callback` only).
    pub callback_at: Option<DateTime<Utc>>,
    /// State `callback` and `now` given: whether `callback_at` is before `now`.
    pub overdue: Option<bool>,
    /// The agent the contact is currently assigned to.
    pub agent_id: Option<String>,
    /// Compliance violations among its attempts.
    pub violations: u64,
    /// Why a suppressed contact may not be contacted: `do_not_contact`,
    /// `no_consent`, `consent_revoked`, `consent_expired`.
    pub suppressed_reason: Option<String>,
    /// When the consent that allows contacting it expires (null: no expiry,
    /// or consent not required).
    pub consent_expires_at: Option<DateTime<Utc>>,
    pub identity: Option<IdentityView>,
    /// Merged customer ids whose contact facts count under this survivor.
    pub merged_ids: Vec<String>,
}

/// A compliance violation: an attempt made while the customer had no valid
/// consent for its channel and the campaign's purpose, or after a
/// `do_not_contact` outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Violation {
    /// The survivor's id.
    pub customer_id: String,
    /// The id the attempt carried (differs when merged).
    pub attempt_customer_id: String,
    pub attempt_event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub channel: String,
    pub agent_id: Option<String>,
    /// The first of `reasons`.
    pub reason: String,
    /// `do_not_contact`, `no_consent`, `consent_revoked`, `consent_expired`.
    pub reasons: Vec<String>,
}

/// Funnel figures of one slice (the campaign, an agent, a channel, a day).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SliceView {
    /// Agent: contacts currently assigned; channel / day: contacts attempted there.
    pub contacts: u64,
    pub attempted: u64,
    pub reached: u64,
    pub attempts: u64,
    /// Contacts whose latest outcome is attributed to this slice, by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Contacts reached in this slice whose latest outcome is `converted`
    /// and attributed to this slice (the numerator of `conversion_rate`).
    pub converted_reached: u64,
    pub value: f64,
    /// reached / attempted (0 when nothing was attempted).
    pub contact_rate: f64,
    /// converted_reached / reached (0 when nothing was reached).
    pub conversion_rate: f64,
    /// attempts / attempted (0 when nothing was attempted).
    pub attempts_per_contact: f64,
    pub compliance_violations: u64,
    /// Agents only: their contacts waiting for a callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callbacks_pending: Option<u64>,
    /// Agents only: their contacts by state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub states: Option<BTreeMap<String, u64>>,
}

/// `GET /v1/campaigns/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CampaignView {
    pub campaign_id: String,
    pub name: String,
    pub channel: String,
    pub purpose: String,
    /// `active`, `paused` or `completed`.
    pub status: String,
    pub contacts_total: u64,
    pub contacts_attempted: u64,
    pub contacts_reached: u64,
    pub attempts_total: u64,
    /// Contacts by their latest outcome (every outcome named, 0 included).
    pub outcomes: BTreeMap<String, u64>,
    /// contacts_reached / contacts_attempted (0 when none attempted).
    pub contact_rate: f64,
    /// contacts_converted / contacts_reached (0 when none reached).
    pub conversion_rate: f64,
    /// attempts_total / contacts_attempted (0 when none attempted).
    pub attempts_per_contact: f64,
    /// Sum of `value` over every outcome event.
    pub value_total: f64,
    pub callbacks_pending: u64,
    pub compliance_violations: u64,
    pub by_agent: BTreeMap<String, SliceView>,
    pub by_channel: BTreeMap<String, SliceView>,
    pub by_day: BTreeMap<String, SliceView>,
    /// Reached contacts whose latest outcome is `converted`.
    pub contacts_converted: u64,
    /// Contacts by state (consent expiry not applied: see the contacts list).
    pub states: BTreeMap<String, u64>,
    pub max_attempts: u32,
    pub requires_consent: bool,
    /// The consent purpose attempts are judged against (null: only
    /// do-not-contact is judged).
    pub consent_purpose: Option<String>,
    pub created_at: DateTime<Utc>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub status_changed_at: Option<DateTime<Utc>>,
}

fn ratio(n: i64, d: i64) -> f64 {
    if d <= 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn count_map(m: &BTreeMap<String, i64>) -> BTreeMap<String, u64> {
    m.iter().map(|(k, v)| (k.clone(), count(*v))).collect()
}

fn slice_view(c: &Counts, agent: bool) -> SliceView {
    SliceView {
        contacts: count(c.contacts),
        attempted: count(c.attempted),
        reached: count(c.reached),
        attempts: count(c.attempts),
        outcomes: count_map(&c.outcomes),
        converted_reached: count(c.converted_reached),
        value: from_micros(c.value_micros),
        contact_rate: ratio(c.reached, c.attempted),
        conversion_rate: ratio(c.converted_reached, c.reached),
        attempts_per_contact: ratio(c.attempts, c.attempted),
        compliance_violations: count(c.violations),
        callbacks_pending: agent.then(|| count(c.callbacks_pending)),
        states: agent.then(|| count_map(&c.states)),
    }
}

/// `GET /v1/campaigns/{id}`: `Ok(None)` for a campaign without `campaign.created`.
pub fn campaign(kv: &dyn KvRead, campaign_id: &str) -> Result<Option<CampaignView>, QueryError> {
    let Some(rec) = get_json::<CampaignRecord>(kv, keys::campaign(campaign_id).as_bytes())? else {
        return Ok(None);
    };
    let Some(cfg) = rec.config else {
        return Ok(None);
    };
    let prefix = keys::agg_prefix(campaign_id);
    let mut total = Counts::default();
    let (mut by_agent, mut by_channel, mut by_day) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (k, v) in kv.scan(prefix.as_bytes(), None, usize::MAX)? {
        let c: Counts = serde_json::from_slice(&v)?;
        let slice = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        if slice == keys::TOTAL {
            total = c;
        } else if let Some(a) = slice.strip_prefix("a/") {
            by_agent.insert(keys::unesc(a), slice_view(&c, true));
        } else if let Some(ch) = slice.strip_prefix("c/") {
            by_channel.insert(ch.to_string(), slice_view(&c, false));
        } else if let Some(d) = slice.strip_prefix("d/") {
            by_day.insert(d.to_string(), slice_view(&c, false));
        }
    }
    let mut outcomes: BTreeMap<String, u64> = ContactOutcome::ALL
        .iter()
        .map(|o| (o.as_str().to_string(), 0))
        .collect();
    outcomes.extend(count_map(&total.outcomes));
    let mut states: BTreeMap<String, u64> = ContactState::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    states.extend(count_map(&total.states));
    let (status, status_changed_at) = match (&rec.completed, &rec.pause) {
        (Some(c), _) => ("completed", Some(c.at)),
        (None, Some(p)) if p.paused => ("paused", Some(p.at)),
        (None, Some(p)) => ("active", Some(p.at)),
        (None, None) => ("active", None),
    };
    Ok(Some(CampaignView {
        campaign_id: campaign_id.to_string(),
        name: cfg.name.clone(),
        channel: cfg.channel.as_str().to_string(),
        purpose: cfg.purpose.as_str().to_string(),
        status: status.to_string(),
        contacts_total: count(total.contacts),
        contacts_attempted: count(total.attempted),
        contacts_reached: count(total.reached),
        attempts_total: count(total.attempts),
        outcomes,
        contact_rate: ratio(total.reached, total.attempted),
        conversion_rate: ratio(total.converted_reached, total.reached),
        attempts_per_contact: ratio(total.attempts, total.attempted),
        value_total: from_micros(total.value_micros),
        callbacks_pending: count(total.callbacks_pending),
        compliance_violations: count(total.violations),
        by_agent,
        by_channel,
        by_day,
        contacts_converted: count(total.converted_reached),
        states,
        max_attempts: cfg.max_attempts,
        requires_consent: cfg.requires_consent,
        consent_purpose: cfg.consent_required().map(|p| p.as_str().to_string()),
        created_at: cfg.created_at,
        starts_at: cfg.starts_at,
        ends_at: cfg.ends_at,
        status_changed_at,
    }))
}

/// Parameters of `GET /v1/campaigns/{id}/contacts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactsParams {
    /// `pending`, `retry`, `callback`, `done` or `suppressed`; absent: every
    /// contact, by customer id. Order: `callback` by `callback_at` (due and
    /// overdue first), `retry` by last attempt (longest waiting first), the
    /// others by customer id (`suppressed` then lists, with `now`, contacts
    /// whose consent expired, by expiry).
    pub state: Option<String>,
    /// Only contacts currently assigned to this agent (an agent's work list).
    pub agent_id: Option<String>,
    /// The current time (RFC 3339). With it, a contact whose consent has
    /// expired by `now` is reported as `suppressed` (reason
    /// `consent_expired`), and callbacks carry `overdue`. Without it, consent
    /// expiry is not applied. The HTTP layer passes the server clock.
    pub now: Option<String>,
    /// With `state=callback` and `now`: only callbacks due by `now`.
    pub due_only: Option<bool>,
    /// Page size, 1 to 1000, default 50.
    pub limit: Option<usize>,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

/// Parameters of the violation list (`GET /v1/campaigns/{id}/violations`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViolationsParams {
    /// Page size, 1 to 1000, default 50.
    pub limit: Option<usize>,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

fn parse_now(now: &Option<String>) -> Result<Option<DateTime<Utc>>, QueryError> {
    now.as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    QueryError::invalid(
                        "now",
                        "must be an RFC 3339 timestamp, e.g. 2026-11-20T09:30:00Z",
                    )
                })
        })
        .transpose()
}

/// What a scan does with an entry.
enum Step<T> {
    Take(T),
    Skip,
    Stop,
}

/// Collects up to `want` entries under `prefix` after `after`, reading the
/// store in batches.
fn collect<T>(
    kv: &dyn KvRead,
    prefix: &str,
    after: Option<Vec<u8>>,
    want: usize,
    out: &mut Vec<(Vec<u8>, T)>,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<Step<T>, QueryError>,
) -> Result<(), QueryError> {
    let mut cursor = after;
    while out.len() < want {
        let batch = kv.scan(prefix.as_bytes(), cursor.as_deref(), 256)?;
        let done = batch.len() < 256;
        for (k, v) in batch {
            match f(&k, &v)? {
                Step::Take(t) => {
                    out.push((k.clone(), t));
                    if out.len() >= want {
                        return Ok(());
                    }
                }
                Step::Skip => {}
                Step::Stop => return Ok(()),
            }
            cursor = Some(k);
        }
        if done {
            break;
        }
    }
    Ok(())
}

fn page<T>(mut got: Vec<(Vec<u8>, T)>, limit: usize, scope: &str) -> Page<T> {
    let next_cursor = if got.len() > limit {
        got.truncate(limit);
        got.last().map(|(k, _)| encode_cursor(scope, k))
    } else {
        None
    };
    Page {
        items: got.into_iter().map(|(_, t)| t).collect(),
        next_cursor,
    }
}

/// Applies `now` to a stored item: consent expiry and callback overdue.
fn at_now(mut item: ContactItem, now: Option<DateTime<Utc>>) -> ContactItem {
    if let Some(now) = now {
        if item.state != ContactState::Suppressed
            && item.consent_expires_at.is_some_and(|u| u <= now)
        {
            item.state = ContactState::Suppressed;
            item.suppressed_reason = Some("consent_expired".into());
        } else if item.state == ContactState::Callback {
            item.overdue = item.callback_at.map(|c| c < now);
        }
    }
    item
}

fn campaign_exists(kv: &dyn KvRead, campaign_id: &str) -> Result<bool, QueryError> {
    Ok(
        get_json::<CampaignRecord>(kv, keys::campaign(campaign_id).as_bytes())?
            .is_some_and(|r| r.config.is_some()),
    )
}

/// `GET /v1/campaigns/{id}/contacts`: a page of contacts, optionally of one
/// state and one agent. `Ok(None)` for an unknown campaign.
pub fn contacts(
    kv: &dyn KvRead,
    campaign_id: &str,
    params: &ContactsParams,
) -> Result<Option<Page<ContactItem>>, QueryError> {
    let state = params
        .state
        .as_deref()
        .map(|s| {
            ContactState::parse(s).ok_or_else(|| {
                QueryError::invalid(
                    "state",
                    format!("{s:?} is not one of pending, retry, callback, done, suppressed"),
                )
            })
        })
        .transpose()?;
    let now = parse_now(&params.now)?;
    let due_only = params.due_only.unwrap_or(false);
    if due_only && now.is_none() {
        return Err(QueryError::invalid("now", "is required with due_only"));
    }
    if due_only && state != Some(ContactState::Callback) {
        return Err(QueryError::invalid(
            "due_only",
            "applies to state=callback only",
        ));
    }
    let limit = limit(params.limit)?;
    if !campaign_exists(kv, campaign_id)? {
        return Ok(None);
    }
    let agent = params.agent_id.as_deref();
    let scope = format!(
        "campaigns/contacts/{}/{}/{}",
        keys::esc(campaign_id),
        state.map_or("all", ContactState::as_str),
        agent.map(keys::esc).unwrap_or_default()
    );
    let after = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor(&scope, c))
        .transpose()?;
    let want = limit + 1;
    let mut got: Vec<(Vec<u8>, ContactItem)> = Vec::new();
    let decode_item =
        |v: &[u8]| -> Result<ContactItem, QueryError> { Ok(serde_json::from_slice(v)?) };
    let agent_ok = |item: &ContactItem| agent.is_none_or(|a| item.agent_id.as_deref() == Some(a));

    let Some(state) = state else {
        collect(
            kv,
            &keys::derived_prefix(campaign_id),
            after,
            want,
            &mut got,
            |_, v| {
                let d: Derived = serde_json::from_slice(v)?;
                Ok(if agent_ok(&d.item) {
                    Step::Take(at_now(d.item, now))
                } else {
                    Step::Skip
                })
            },
        )?;
        return Ok(Some(page(got, limit, &scope)));
    };

    let prefix = match agent {
        Some(a) => keys::agent_state_prefix(campaign_id, a, state.as_str()),
        None => keys::state_prefix(campaign_id, state.as_str()),
    };
    let expiry = keys::expiry_prefix(campaign_id);
    let in_expiry_phase = after
        .as_ref()
        .is_some_and(|a| a.starts_with(expiry.as_bytes()));
    if !in_expiry_phase {
        collect(kv, &prefix, after.clone(), want, &mut got, |_, v| {
            let item = at_now(decode_item(v)?, now);
            if state == ContactState::Callback
                && due_only
                && item.callback_at.is_some_and(|c| Some(c) > now)
            {
                return Ok(Step::Stop);
            }
            // With `now`, a contact whose consent expired is suppressed.
            Ok(if item.state == state {
                Step::Take(item)
            } else {
                Step::Skip
            })
        })?;
    }
    if state == ContactState::Suppressed {
        if let Some(now) = now {
            let after = if in_expiry_phase { after } else { None };
            collect(kv, &expiry, after, want, &mut got, |_, v| {
                let item = decode_item(v)?;
                if item.consent_expires_at.is_some_and(|u| u > now) {
                    return Ok(Step::Stop);
                }
                Ok(if agent_ok(&item) {
                    Step::Take(at_now(item, Some(now)))
                } else {
                    Step::Skip
                })
            })?;
        }
    }
    Ok(Some(page(got, limit, &scope)))
}

/// The compliance violations of a campaign, by attempt `occurred_at`.
/// `Ok(None)` for an unknown campaign.
pub fn violations(
    kv: &dyn KvRead,
    campaign_id: &str,
    params: &ViolationsParams,
) -> Result<Option<Page<Violation>>, QueryError> {
    let limit = limit(params.limit)?;
    if !campaign_exists(kv, campaign_id)? {
        return Ok(None);
    }
    let scope = format!("campaigns/violations/{}", keys::esc(campaign_id));
    let after = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor(&scope, c))
        .transpose()?;
    let mut got = Vec::new();
    collect(
        kv,
        &keys::violation_prefix(campaign_id),
        after,
        limit + 1,
        &mut got,
        |_, v| Ok(Step::Take(serde_json::from_slice::<Violation>(v)?)),
    )?;
    Ok(Some(page(got, limit, &scope)))
}

/// An assignment of the contact to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AssignmentView {
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    /// Null: unassigned.
    pub agent_id: Option<String>,
}

/// One attempt, with the agent it is attributed to and its compliance.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttemptView {
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    /// The id the attempt carried.
    pub customer_id: String,
    pub channel: String,
    pub result: String,
    pub reached: bool,
    /// The attempt's agent, else the agent assigned at that time.
    pub agent_id: Option<String>,
    pub interaction_id: Option<String>,
    /// Empty when compliant.
    pub violation_reasons: Vec<String>,
}

/// One outcome, with the agent it is attributed to.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OutcomeView {
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub customer_id: String,
    pub outcome: String,
    pub callback_at: Option<DateTime<Utc>>,
    pub value: Option<f64>,
    pub agent_id: Option<String>,
}

/// One contact of a campaign in detail.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ContactDetail {
    pub contact: ContactItem,
    pub assignments: Vec<AssignmentView>,
    pub attempts: Vec<AttemptView>,
    pub outcomes: Vec<OutcomeView>,
}

/// One contact of a campaign (a merged id answers with its survivor's
/// contact). `Ok(None)` when the campaign or the contact is unknown.
pub fn contact(
    kv: &dyn KvRead,
    campaign_id: &str,
    customer_id: &str,
) -> Result<Option<ContactDetail>, QueryError> {
    let Some(cfg) = get_json::<CampaignRecord>(kv, keys::campaign(campaign_id).as_bytes())?
        .and_then(|r| r.config)
    else {
        return Ok(None);
    };
    let r = crate::graph::root(kv, customer_id)?;
    let Some(d) = crate::fold::load_and_derive_with(kv, campaign_id, &cfg, &r, Some(customer_id))?
    else {
        return Ok(None);
    };
    Ok(Some(ContactDetail {
        contact: d.derived.item,
        assignments: d.assignments,
        attempts: d.attempts,
        outcomes: d.outcomes,
    }))
}
