//! Queries of the `customers` read model: the unified customer view, its
//! timeline, the screen-pop lookup and interactions.
//!
//! Every query reads only what it answers: point gets and prefix scans
//! bounded by the size of one customer's merge group (a handful of ids).
//! Merges are resolved here, at query time: facts stay under the id their
//! event carried, and a customer's view is the union over every id that
//! currently resolves to it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use crm_events::{AttemptChannel, Channel, ConsentChannel, IdentityKind};
use crm_projection::query::{decode_cursor, encode_cursor, limit, Page, QueryError};
use crm_projection::{get_json, KvRead, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::apply::{case_ids, decode_str};
use crate::keys::*;
use crate::state::*;

/// At most this many interactions in `recent_interactions`.
pub const RECENT_LIMIT: usize = 20;
/// At most this many events in an interaction's `events`.
pub const INTERACTION_EVENTS_LIMIT: usize = 1000;
/// At most this many customers holding one identity are read by a lookup.
pub const LOOKUP_SCAN_LIMIT: usize = 200;
/// A timeline page reads at most this many entries (filters may skip
/// entries); a page cut short by it still has a `next_cursor`.
pub const TIMELINE_SCAN_BUDGET: usize = 5000;
/// Merge chains are followed at most this far.
const MAX_HOPS: usize = 64;
/// A merge group holds at most this many ids.
const MAX_GROUP: usize = 256;

// ------------------------------------------------------------------ responses

/// `GET /v1/customers/{id}`: the unified customer view.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CustomerView {
    /// The customer (the survivor, when the requested id was merged).
    pub customer_id: String,
    pub name: Option<String>,
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, Value>,
    pub identities: Vec<IdentityView>,
    /// The survivor when the requested id is merged into another customer.
    pub merged_into: Option<String>,
    /// Every id folded into this customer (transitively), sorted.
    pub merged_from: Vec<String>,
    pub consents: Vec<ConsentView>,
    pub stats: Stats,
    /// Newest first, at most 20.
    pub recent_interactions: Vec<RecentInteraction>,
    /// Cases with status `open`, newest first.
    pub open_cases: Vec<OpenCase>,
    pub campaigns: Vec<CampaignView>,
}

/// An identity of a customer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
pub struct IdentityView {
    pub kind: String,
    pub value: String,
    pub verified: bool,
}

/// The state of one consent (channel and purpose).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConsentView {
    pub channel: String,
    pub purpose: String,
    /// `granted`, `revoked` or `expired` (at the `now` of the query).
    pub status: String,
    /// When the status began: the grant's or revocation's `occurred_at`, or
    /// the `expires_at` of an expired grant.
    pub since: String,
    /// `expires_at` of the grant in force, if any.
    pub expires_at: Option<String>,
    /// Every grant and revocation, oldest first.
    pub history: Vec<ConsentChange>,
}

/// One consent event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConsentChange {
    pub event_id: String,
    /// `granted` or `revoked`.
    pub action: String,
    pub occurred_at: String,
    pub expires_at: Option<String>,
}

/// Interaction and case figures of a customer (merge group included).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Stats {
    pub interactions_total: u64,
    /// Only channels with at least one interaction.
    pub interactions_by_channel: BTreeMap<String, u64>,
    pub first_interaction_at: Option<String>,
    pub last_interaction_at: Option<String>,
    pub last_channel: Option<String>,
    /// Cases opened, voided ones left out.
    pub cases_total: u64,
    /// Cases with status `open`.
    pub cases_open: u64,
}

/// An interaction in `recent_interactions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecentInteraction {
    pub interaction_id: String,
    pub channel: Option<String>,
    pub direction: Option<String>,
    pub started_at: Option<String>,
    pub outcome: Option<String>,
    /// The agent involved last.
    pub agent_id: Option<String>,
    pub case_ids: Vec<String>,
}

/// A case in `open_cases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpenCase {
    pub case_id: String,
    pub category: Option<String>,
    pub status: String,
    pub priority: String,
    pub tier: u32,
    pub opened_at: String,
}

/// A campaign the customer is a contact of.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CampaignView {
    pub campaign_id: String,
    pub name: Option<String>,
    /// The latest `campaign.contact_outcome` by `occurred_at`.
    pub last_outcome: Option<String>,
    /// Number of `campaign.attempt_made`.
    pub attempts: u64,
    /// `result` of the latest attempt.
    pub last_result: Option<String>,
}

/// One entry of a timeline (and of an interaction's `events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineItem {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub interaction_id: Option<String>,
    pub case_id: Option<String>,
    pub campaign_id: Option<String>,
    /// The interaction's channel for interaction events; the consent's,
    /// response's or attempt's channel for those events; else null.
    pub channel: Option<String>,
    pub agent_id: Option<String>,
    pub summary: String,
}

/// `GET /v1/lookup`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LookupResponse {
    pub matches: Vec<LookupMatch>,
}

/// A customer holding the identity looked up.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LookupMatch {
    /// The survivor, for a merged customer.
    pub customer_id: String,
    pub name: Option<String>,
    /// Number of cases with status `open`.
    pub open_cases: u64,
    pub last_interaction_at: Option<String>,
    /// Whether some id of this customer holds the identity verified.
    pub verified: bool,
}

/// `GET /v1/interactions/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InteractionView {
    pub interaction_id: String,
    pub channel: Option<String>,
    pub direction: Option<String>,
    /// The customer (resolved through merges); null if unidentified.
    pub customer_id: Option<String>,
    /// The id the interaction's events attribute it to (before merges).
    pub attributed_customer_id: Option<String>,
    /// How it was attributed: the `interaction.identified` method
    /// (`identified` when none was given), or `customer_id`.
    pub identified_by: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
    pub queue: Option<String>,
    /// In order of first involvement.
    pub agent_ids: Vec<String>,
    pub transfers: Vec<TransferView>,
    pub messages_count: u64,
    pub case_ids: Vec<String>,
    /// Every event of the interaction, oldest first (at most 1000).
    pub events: Vec<TimelineItem>,
    pub from: Option<IdentityRef>,
    pub to: Option<IdentityRef>,
    pub subject: Option<String>,
    #[schema(value_type = Object)]
    pub ivr: Option<Value>,
    pub talk_seconds: Option<f64>,
    pub handle_seconds: Option<f64>,
    pub wrapup_code: Option<String>,
    /// Identities the interaction suggests (counterpart address, IVR inputs).
    pub identity_hints: Vec<Hint>,
    /// The customers holding each hint (a lookup per hint). Suggestions
    /// never attribute the interaction.
    pub suggestions: Vec<Suggestion>,
}

/// An identity `{kind, value}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IdentityRef {
    pub kind: String,
    pub value: String,
}

/// One transfer of an interaction.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TransferView {
    pub at: String,
    /// Who transferred.
    pub agent_id: Option<String>,
    pub to_queue: Option<String>,
    pub to_agent_id: Option<String>,
    pub tier: Option<u32>,
    pub reason: Option<String>,
}

/// The lookup matches of one identity hint.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Suggestion {
    pub kind: String,
    pub value: String,
    pub source: String,
    pub matches: Vec<LookupMatch>,
}

/// An item of `GET /v1/interactions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InteractionListItem {
    pub interaction_id: String,
    pub channel: Option<String>,
    pub direction: Option<String>,
    /// Null for an unidentified interaction (resolved through merges).
    pub customer_id: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
    pub queue: Option<String>,
    pub agent_ids: Vec<String>,
    pub messages_count: u64,
    /// What the desktop can pass to `/v1/lookup` (`kind`, `value`).
    pub identity_hints: Vec<Hint>,
}

// ----------------------------------------------------------------- parameters

/// Parameters of `GET /v1/customers/{id}/timeline`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimelineParams {
    /// `order`: `desc` (default, newest first) or `asc`.
    pub order: Option<String>,
    /// `channel`: only items of this channel (`phone`, `email`, `chat`,
    /// `sms`, `social`, `video`, `any`).
    pub channel: Option<String>,
    /// `type`: only items whose type starts with this (e.g. `case.`).
    pub event_type: Option<String>,
    /// `from`: RFC 3339; only items with `occurred_at >= from`.
    pub from: Option<String>,
    /// `to`: RFC 3339; only items with `occurred_at < to`.
    pub to: Option<String>,
    /// `limit`: page size, default 50, 1 to 1000.
    pub limit: Option<usize>,
    /// `cursor`: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Parameters of `GET /v1/interactions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InteractionListParams {
    /// `unidentified`: `true` lists interactions with no customer, `false`
    /// those with one; absent lists all. Newest first (by start, or by the
    /// first event while the start is unknown).
    pub unidentified: Option<bool>,
    /// `limit`: page size, default 50, 1 to 1000.
    pub limit: Option<usize>,
    /// `cursor`: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

// --------------------------------------------------------------------- merges

fn chosen_out(kv: &dyn KvRead, id: &str) -> Result<Option<Edge>, StoreError> {
    let edges: Vec<Edge> = get_json(kv, &MERGE_OUT.key(id))?.unwrap_or_default();
    Ok(edges
        .into_iter()
        .filter(|e| e.active)
        .max_by(|a, b| a.stamp.cmp(&b.stamp)))
}

/// The survivor `id` currently resolves to: follow active merge edges
/// (when a customer is merged into several, the latest merge wins); a
/// cycle is broken at its oldest edge, whose merged customer survives.
pub fn resolve(kv: &dyn KvRead, id: &str) -> Result<String, StoreError> {
    let mut path: Vec<(String, Edge)> = Vec::new();
    let mut cur = id.to_string();
    for _ in 0..MAX_HOPS {
        let Some(edge) = chosen_out(kv, &cur)? else {
            return Ok(cur);
        };
        if let Some(i) = path.iter().position(|(n, _)| *n == edge.other) {
            let mut cycle: Vec<(&String, &Edge)> = path[i..].iter().map(|(n, e)| (n, e)).collect();
            cycle.push((&cur, &edge));
            let (breaker, _) = cycle
                .into_iter()
                .min_by(|a, b| a.1.stamp.cmp(&b.1.stamp))
                .expect("a cycle has edges");
            return Ok(breaker.clone());
        }
        let next = edge.other.clone();
        path.push((cur, edge));
        cur = next;
    }
    Ok(cur)
}

/// Every id that resolves to `survivor` (itself first, then sorted).
fn group(kv: &dyn KvRead, survivor: &str) -> Result<Vec<String>, StoreError> {
    let mut seen = BTreeSet::from([survivor.to_string()]);
    let mut queue = VecDeque::from([survivor.to_string()]);
    while let Some(x) = queue.pop_front() {
        let inc: Vec<Edge> = get_json(kv, &MERGE_IN.key(&x))?.unwrap_or_default();
        for e in inc.into_iter().filter(|e| e.active) {
            if seen.contains(&e.other) || seen.len() >= MAX_GROUP {
                continue;
            }
            if chosen_out(kv, &e.other)?.is_some_and(|o| o.other == x) {
                seen.insert(e.other.clone());
                queue.push_back(e.other);
            }
        }
    }
    seen.remove(survivor);
    let mut out = vec![survivor.to_string()];
    out.extend(seen);
    Ok(out)
}

fn has_prefix(kv: &dyn KvRead, prefix: &[u8]) -> Result<bool, StoreError> {
    Ok(!kv.scan(prefix, None, 1)?.is_empty())
}

/// Whether anything at all is known about this customer id.
fn known(kv: &dyn KvRead, id: &str) -> Result<bool, StoreError> {
    Ok(kv.get(&PROFILE.key(id))?.is_some()
        || has_prefix(kv, &TIMELINE.key(id))?
        || kv.get(&MERGE_OUT.key(id))?.is_some()
        || kv.get(&MERGE_IN.key(id))?.is_some())
}

// -------------------------------------------------------------- merged scans

/// A key's suffix (after its prefix) and its value.
type Entry = (Vec<u8>, Vec<u8>);

struct Source {
    prefix: Vec<u8>,
    after: Option<Vec<u8>>,
    buf: VecDeque<Entry>,
    done: bool,
}

/// A scan over several prefixes at once, in the order of the keys' suffix
/// after each prefix. Equal suffixes (the same event in two timelines of
/// one merge group) come out once.
struct MergeScan<'a> {
    kv: &'a dyn KvRead,
    sources: Vec<Source>,
    chunk: usize,
    /// Descending key order (each source read backwards).
    rev: bool,
}

impl<'a> MergeScan<'a> {
    /// Ascending, after `start` (a suffix) when given.
    fn new(kv: &'a dyn KvRead, prefixes: Vec<Vec<u8>>, start: Option<&[u8]>, chunk: usize) -> Self {
        MergeScan::with_order(kv, prefixes, start, chunk, false)
    }

    /// Descending, before `start` (a suffix) when given.
    fn rev(kv: &'a dyn KvRead, prefixes: Vec<Vec<u8>>, start: Option<&[u8]>, chunk: usize) -> Self {
        MergeScan::with_order(kv, prefixes, start, chunk, true)
    }

    fn with_order(
        kv: &'a dyn KvRead,
        prefixes: Vec<Vec<u8>>,
        start: Option<&[u8]>,
        chunk: usize,
        rev: bool,
    ) -> Self {
        let sources = prefixes
            .into_iter()
            .map(|prefix| Source {
                after: start.map(|s| join(&prefix, s)),
                prefix,
                buf: VecDeque::new(),
                done: false,
            })
            .collect();
        MergeScan {
            kv,
            sources,
            chunk: chunk.max(1),
            rev,
        }
    }

    fn next(&mut self) -> Result<Option<Entry>, StoreError> {
        for s in &mut self.sources {
            if s.buf.is_empty() && !s.done {
                let got = if self.rev {
                    self.kv
                        .scan_rev(&s.prefix, s.after.as_deref(), self.chunk)?
                } else {
                    self.kv.scan(&s.prefix, s.after.as_deref(), self.chunk)?
                };
                s.done = got.len() < self.chunk;
                if let Some((k, _)) = got.last() {
                    s.after = Some(k.clone());
                }
                let n = s.prefix.len();
                s.buf
                    .extend(got.into_iter().map(|(k, v)| (k[n..].to_vec(), v)));
            }
        }
        let heads = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.buf.front().map(|(k, _)| (k, i)));
        let best = if self.rev {
            heads.max_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)))
        } else {
            heads.min()
        }
        .map(|(_, i)| i);
        let Some(best) = best else { return Ok(None) };
        let entry = self.sources[best].buf.pop_front().expect("has a head");
        for s in &mut self.sources {
            if s.buf.front().is_some_and(|(k, _)| *k == entry.0) {
                s.buf.pop_front();
            }
        }
        Ok(Some(entry))
    }
}

// ------------------------------------------------------------ customer view

fn profile(kv: &dyn KvRead, id: &str) -> Result<Option<Profile>, StoreError> {
    get_json(kv, &PROFILE.key(id))
}

fn name_of(profiles: &[(String, Option<Profile>)]) -> Option<String> {
    profiles
        .iter()
        .find_map(|(_, p)| p.as_ref()?.name.as_ref()?.value.clone())
}

fn counters(kv: &dyn KvRead, members: &[String]) -> Result<Counters, StoreError> {
    let mut sum = Counters::default();
    for m in members {
        if let Some(c) = get_json::<Counters>(kv, &COUNTERS.key(m))? {
            sum.interactions_total += c.interactions_total;
            for (ch, n) in c.interactions_by_channel {
                *sum.interactions_by_channel.entry(ch).or_default() += n;
            }
            sum.cases_total += c.cases_total;
            sum.cases_open += c.cases_open;
        }
    }
    Ok(sum)
}

fn time_of_inverted(suffix: &[u8]) -> Option<DateTime<Utc>> {
    dec_time(&invert(suffix.get(..12)?))
}

/// The newest interactions of a group: (sort time, item), newest first.
fn recent(
    kv: &dyn KvRead,
    members: &[String],
    n: usize,
) -> Result<Vec<(DateTime<Utc>, RecentInteraction)>, QueryError> {
    let prefixes = members.iter().map(|m| RECENT.key(m)).collect();
    let mut scan = MergeScan::new(kv, prefixes, None, n);
    let mut out = Vec::new();
    while out.len() < n {
        let Some((suffix, v)) = scan.next()? else {
            break;
        };
        let t = time_of_inverted(&suffix).unwrap_or(DateTime::<Utc>::MIN_UTC);
        out.push((t, serde_json::from_slice(&v)?));
    }
    Ok(out)
}

fn first_interaction(
    kv: &dyn KvRead,
    members: &[String],
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let mut first: Option<DateTime<Utc>> = None;
    for m in members {
        // `ri/` is newest first: its last entry is the oldest interaction.
        let prefix = RECENT.key(m);
        if let Some((k, _)) = kv.scan_rev(&prefix, None, 1)?.into_iter().next() {
            if let Some(t) = time_of_inverted(&k[prefix.len()..]) {
                first = Some(first.map_or(t, |f| f.min(t)));
            }
        }
    }
    Ok(first)
}

fn non_negative(n: i64) -> u64 {
    n.max(0) as u64
}

fn consent_views(
    kv: &dyn KvRead,
    members: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<ConsentView>, StoreError> {
    let mut all: BTreeMap<String, Vec<ConsentFact>> = BTreeMap::new();
    for m in members {
        if let Some(rec) = get_json::<Consents>(kv, &CONSENTS.key(m))? {
            for (cp, facts) in rec.by {
                all.entry(cp).or_default().extend(facts);
            }
        }
    }
    let mut out = Vec::new();
    for (cp, mut facts) in all {
        facts.sort_by(|a, b| a.stamp.cmp(&b.stamp));
        facts.dedup_by(|a, b| a.stamp == b.stamp);
        let Some(last) = facts.last() else { continue };
        let (channel, purpose) = cp.split_once('/').unwrap_or((cp.as_str(), ""));
        let (status, since, expires_at) = match (last.granted, last.expires_at) {
            (true, Some(x)) if x <= now => ("expired", x, Some(x)),
            (true, x) => ("granted", last.stamp.at, x),
            (false, _) => ("revoked", last.stamp.at, None),
        };
        out.push(ConsentView {
            channel: channel.to_string(),
            purpose: purpose.to_string(),
            status: status.to_string(),
            since: crm_events::format_time(&since),
            expires_at: expires_at.map(|x| crm_events::format_time(&x)),
            history: facts
                .iter()
                .map(|f| ConsentChange {
                    event_id: f.stamp.id.clone(),
                    action: if f.granted { "granted" } else { "revoked" }.to_string(),
                    occurred_at: crm_events::format_time(&f.stamp.at),
                    expires_at: f.expires_at.map(|x| crm_events::format_time(&x)),
                })
                .collect(),
        });
    }
    Ok(out)
}

fn campaign_views(kv: &dyn KvRead, members: &[String]) -> Result<Vec<CampaignView>, QueryError> {
    let mut by: BTreeMap<String, Contact> = BTreeMap::new();
    for m in members {
        for (_, v) in kv.scan(&CONTACT.key(m), None, usize::MAX)? {
            let c: Contact = serde_json::from_slice(&v)?;
            match by.get_mut(&c.campaign_id) {
                None => {
                    by.insert(c.campaign_id.clone(), c);
                }
                Some(acc) => {
                    acc.attempts += c.attempts;
                    if let Some(o) = c.last_outcome {
                        set_latest(&mut acc.last_outcome, &o.stamp, o.value);
                    }
                    if let Some(r) = c.last_result {
                        set_latest(&mut acc.last_result, &r.stamp, r.value);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (id, c) in by {
        let name: Option<CampaignName> = get_json(kv, &key(CAMPAIGN, &[&id]))?;
        out.push(CampaignView {
            campaign_id: id,
            name: name.map(|n| n.name.value),
            last_outcome: c.last_outcome.map(|o| o.value),
            attempts: c.attempts,
            last_result: c.last_result.map(|r| r.value),
        });
    }
    Ok(out)
}

/// `GET /v1/customers/{id}`: the unified view of the customer `id`, or of
/// its survivor when `id` was merged (`merged_into` then names it).
/// `now` (the server's clock) only decides which consents have expired.
/// `Ok(None)` when nothing is known about `id`.
pub fn customer(
    kv: &dyn KvRead,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<CustomerView>, QueryError> {
    if !known(kv, id)? {
        return Ok(None);
    }
    let survivor = resolve(kv, id)?;
    let members = group(kv, &survivor)?;
    let profiles: Vec<(String, Option<Profile>)> = members
        .iter()
        .map(|m| Ok((m.clone(), profile(kv, m)?)))
        .collect::<Result<_, StoreError>>()?;

    // Attributes: the merged ids' first, the survivor's on top.
    let mut attributes = BTreeMap::new();
    for (_, p) in profiles.iter().rev() {
        for (k, v) in p.iter().flat_map(|p| &p.attributes) {
            if v.value.is_null() {
                attributes.remove(k);
            } else {
                attributes.insert(k.clone(), v.value.clone());
            }
        }
    }
    let mut identities: BTreeMap<(String, String), bool> = BTreeMap::new();
    for (_, p) in &profiles {
        for f in p
            .iter()
            .flat_map(|p| p.identities.values())
            .filter(|f| f.present)
        {
            *identities
                .entry((
                    f.identity.kind.as_str().to_string(),
                    f.identity.value.clone(),
                ))
                .or_default() |= f.verified;
        }
    }

    let c = counters(kv, &members)?;
    let recent = recent(kv, &members, RECENT_LIMIT)?;
    let stats = Stats {
        interactions_total: non_negative(c.interactions_total),
        interactions_by_channel: c
            .interactions_by_channel
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(ch, n)| (ch, n as u64))
            .collect(),
        first_interaction_at: first_interaction(kv, &members)?.map(|t| crm_events::format_time(&t)),
        last_interaction_at: recent.first().map(|(t, _)| crm_events::format_time(t)),
        last_channel: recent.first().and_then(|(_, r)| r.channel.clone()),
        cases_total: non_negative(c.cases_total),
        cases_open: non_negative(c.cases_open),
    };

    let mut open_cases = Vec::new();
    {
        let prefixes = members.iter().map(|m| OPEN_CASE.key(m)).collect();
        let mut scan = MergeScan::new(kv, prefixes, None, 64);
        while let Some((_, v)) = scan.next()? {
            open_cases.push(serde_json::from_slice::<OpenCase>(&v)?);
        }
    }

    Ok(Some(CustomerView {
        merged_into: (survivor != id).then(|| survivor.clone()),
        customer_id: survivor,
        name: name_of(&profiles),
        attributes,
        identities: identities
            .into_iter()
            .map(|((kind, value), verified)| IdentityView {
                kind,
                value,
                verified,
            })
            .collect(),
        merged_from: members[1..].to_vec(),
        consents: consent_views(kv, &members, now)?,
        stats,
        recent_interactions: recent.into_iter().map(|(_, r)| r).collect(),
        open_cases,
        campaigns: campaign_views(kv, &members)?,
    }))
}

// ------------------------------------------------------------------- lookup

fn lookup_matches(
    kv: &dyn KvRead,
    kind: IdentityKind,
    value: &str,
) -> Result<Vec<LookupMatch>, QueryError> {
    let prefix = key(LOOKUP, &[kind.as_str(), value]);
    let holders: Vec<String> = kv
        .scan(&prefix, None, LOOKUP_SCAN_LIMIT)?
        .into_iter()
        .map(|(k, _)| decode_str(&k[prefix.len()..]))
        .collect();
    let ik = format!("{}:{}", kind.as_str(), value);
    let mut by_survivor: BTreeMap<String, bool> = BTreeMap::new();
    for h in holders {
        let verified = profile(kv, &h)?
            .and_then(|p| p.identities.get(&ik).map(|f| f.present && f.verified))
            .unwrap_or(false);
        *by_survivor.entry(resolve(kv, &h)?).or_default() |= verified;
    }
    let mut out = Vec::new();
    for (survivor, verified) in by_survivor {
        let members = group(kv, &survivor)?;
        let profiles: Vec<(String, Option<Profile>)> = members
            .iter()
            .map(|m| Ok((m.clone(), profile(kv, m)?)))
            .collect::<Result<_, StoreError>>()?;
        let c = counters(kv, &members)?;
        let last = recent(kv, &members, 1)?;
        out.push(LookupMatch {
            customer_id: survivor,
            name: name_of(&profiles),
            open_cases: non_negative(c.cases_open),
            last_interaction_at: last.first().map(|(t, _)| crm_events::format_time(t)),
            verified,
        });
    }
    // Most recently active first (RFC 3339 UTC strings sort like times).
    out.sort_by(|a, b| {
        b.last_interaction_at
            .cmp(&a.last_interaction_at)
            .then_with(|| a.customer_id.cmp(&b.customer_id))
    });
    Ok(out)
}

/// `GET /v1/lookup?kind=&value=` (screen pop): every customer holding the
/// identity, once each as its survivor, most recently active first. The
/// value is normalised like at ingest. A bad `kind` or a `value` that does
/// not normalise is [`QueryError::Invalid`] naming that parameter.
pub fn lookup(kv: &dyn KvRead, kind: &str, value: &str) -> Result<LookupResponse, QueryError> {
    let kind: IdentityKind = kind
        .parse()
        .map_err(|e: String| QueryError::invalid("kind", e))?;
    let value = crm_events::identity::normalize(kind, value)
        .map_err(|e| QueryError::invalid("value", e))?;
    Ok(LookupResponse {
        matches: lookup_matches(kv, kind, &value)?,
    })
}

// -------------------------------------------------------------- interactions

/// `GET /v1/interactions/{id}`; `Ok(None)` when no event of it was seen.
pub fn interaction(kv: &dyn KvRead, id: &str) -> Result<Option<InteractionView>, QueryError> {
    let Some(rec) = get_json::<InteractionRec>(kv, &INTERACTION.key(id))? else {
        return Ok(None);
    };
    let channel = rec.channel().map(|c| c.as_str().to_string());
    let prefix = INTERACTION_EVENTS.key(id);
    let mut events = Vec::new();
    for (_, v) in kv.scan(&prefix, None, INTERACTION_EVENTS_LIMIT)? {
        let mut item: TimelineItem = serde_json::from_slice(&v)?;
        if item.event_type.starts_with("interaction.") {
            item.channel = channel.clone();
        }
        events.push(item);
    }
    let attribution = rec.attribution().cloned();
    let customer_id = match &attribution {
        Some(a) => Some(resolve(kv, &a.customer_id)?),
        None => None,
    };
    let hints = rec.hints();
    let mut suggestions = Vec::new();
    for h in &hints {
        if let Ok(kind) = h.kind.parse::<IdentityKind>() {
            suggestions.push(Suggestion {
                kind: h.kind.clone(),
                value: h.value.clone(),
                source: h.source.clone(),
                matches: lookup_matches(kv, kind, &h.value)?,
            });
        }
    }
    let idref = |i: &crm_events::Identity| IdentityRef {
        kind: i.kind.as_str().to_string(),
        value: i.value.clone(),
    };
    let start = rec.start.as_ref();
    let end = rec.end.as_ref();
    Ok(Some(InteractionView {
        interaction_id: rec.interaction_id.clone(),
        channel,
        direction: start.map(|s| s.direction.as_str().to_string()),
        customer_id,
        attributed_customer_id: attribution.as_ref().map(|a| a.customer_id.clone()),
        identified_by: attribution.map(|a| a.method),
        started_at: rec.started_at().map(|t| crm_events::format_time(&t)),
        ended_at: end.map(|e| crm_events::format_time(&e.ended_at)),
        outcome: end.and_then(|e| e.outcome).map(|o| o.as_str().to_string()),
        queue: rec.queue.as_ref().map(|q| q.value.clone()),
        agent_ids: rec.agent_ids(),
        transfers: rec
            .transfers
            .iter()
            .map(|t| TransferView {
                at: crm_events::format_time(&t.stamp.at),
                agent_id: t.agent_id.clone(),
                to_queue: t.to_queue.clone(),
                to_agent_id: t.to_agent_id.clone(),
                tier: t.tier,
                reason: t.reason.clone(),
            })
            .collect(),
        messages_count: rec.messages_count,
        case_ids: case_ids(kv, id)?,
        events,
        from: start.and_then(|s| s.from.as_ref()).map(idref),
        to: start.and_then(|s| s.to.as_ref()).map(idref),
        subject: start.and_then(|s| s.subject.clone()),
        ivr: start.and_then(|s| s.ivr.clone()),
        talk_seconds: end.and_then(|e| e.talk_seconds),
        handle_seconds: end.and_then(|e| e.handle_seconds),
        wrapup_code: end.and_then(|e| e.wrapup_code.clone()),
        identity_hints: hints,
        suggestions,
    }))
}

/// `GET /v1/interactions?unidentified=true`: a page of interactions,
/// newest first. A tampered cursor is [`QueryError::BadRequest`].
pub fn interactions(
    kv: &dyn KvRead,
    params: &InteractionListParams,
) -> Result<Page<InteractionListItem>, QueryError> {
    let n = limit(params.limit)?;
    let (scope, prefixes) = match params.unidentified {
        Some(true) => ("customers/interactions/unidentified", vec![UNIDENTIFIED]),
        Some(false) => ("customers/interactions/identified", vec![IDENTIFIED]),
        None => ("customers/interactions/all", vec![UNIDENTIFIED, IDENTIFIED]),
    };
    let start = match &params.cursor {
        Some(c) => Some(decode_cursor(scope, c)?),
        None => None,
    };
    let prefixes = prefixes
        .into_iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    let mut scan = MergeScan::new(kv, prefixes, start.as_deref(), n + 1);
    let mut items = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    let mut next_cursor = None;
    while let Some((suffix, v)) = scan.next()? {
        if items.len() == n {
            next_cursor = last.as_deref().map(|p| encode_cursor(scope, p));
            break;
        }
        let mut item: InteractionListItem = serde_json::from_slice(&v)?;
        if let Some(c) = &item.customer_id {
            item.customer_id = Some(resolve(kv, c)?);
        }
        items.push(item);
        last = Some(suffix);
    }
    Ok(Page { items, next_cursor })
}

// ------------------------------------------------------------------ timeline

fn timeline_channels() -> BTreeSet<&'static str> {
    Channel::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(ConsentChannel::ALL.iter().map(|c| c.as_str()))
        .chain(AttemptChannel::ALL.iter().map(|c| c.as_str()))
        .collect()
}

fn parse_time(param: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, QueryError> {
    match v {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                QueryError::invalid(
                    param,
                    format!("{s:?} is not an RFC 3339 timestamp, e.g. 2026-11-20T09:30:00Z"),
                )
            }),
    }
}

/// `GET /v1/customers/{id}/timeline`: every event that concerns the
/// customer (its merge group included), ordered by `occurred_at` then
/// `event_id`. The cursor is a position in that order, so events arriving
/// meanwhile never shift later pages. `Ok(None)` for an unknown id.
pub fn timeline(
    kv: &dyn KvRead,
    id: &str,
    params: &TimelineParams,
) -> Result<Option<Page<TimelineItem>>, QueryError> {
    let n = limit(params.limit)?;
    let desc = match params.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(o) => {
            return Err(QueryError::invalid(
                "order",
                format!("{o:?}: expected asc or desc"),
            ))
        }
    };
    if let Some(ch) = &params.channel {
        if !timeline_channels().contains(ch.as_str()) {
            return Err(QueryError::invalid(
                "channel",
                format!("{ch:?}: expected one of phone, email, chat, sms, social, video, any"),
            ));
        }
    }
    let from = parse_time("from", &params.from)?;
    let to = parse_time("to", &params.to)?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(QueryError::invalid("to", "must not be before from"));
        }
    }
    let scope = format!(
        "customers/timeline/{id}/{}",
        // "newest": the cursors of format 1 (an inverted timeline) are
        // refused rather than misread.
        if desc { "newest" } else { "asc" }
    );
    let cursor = match &params.cursor {
        Some(c) => Some(decode_cursor(&scope, c)?),
        None => None,
    };
    if !known(kv, id)? {
        return Ok(None);
    }
    let survivor = resolve(kv, id)?;
    let members = group(kv, &survivor)?;

    // Where to start: past the cursor, and within the time bound (newest
    // first reads the one timeline backwards, before `to`).
    let bound = if desc { to } else { from }.map(|t| {
        let mut b = vec![];
        enc_time(&mut b, &t);
        b
    });
    let start = match (cursor, bound) {
        (Some(c), Some(b)) if desc => Some(c.min(b)),
        (Some(c), Some(b)) => Some(c.max(b)),
        (c, b) => c.or(b),
    };
    let prefixes = members.iter().map(|m| TIMELINE.key(m)).collect();
    let chunk = (n + 1).clamp(16, 512);
    let mut scan = if desc {
        MergeScan::rev(kv, prefixes, start.as_deref(), chunk)
    } else {
        MergeScan::new(kv, prefixes, start.as_deref(), chunk)
    };

    let mut items = Vec::new();
    // The last entry read and dealt with (emitted or skipped by a filter):
    // the next page resumes after it.
    let mut last_read: Option<Vec<u8>> = None;
    let mut scanned = 0usize;
    let next_cursor = loop {
        if scanned >= TIMELINE_SCAN_BUDGET {
            break last_read;
        }
        let Some((suffix, v)) = scan.next()? else {
            break None;
        };
        scanned += 1;
        let t = suffix.get(..12).and_then(dec_time);
        let Some(t) = t else { continue };
        if desc && from.is_some_and(|f| t < f) || !desc && to.is_some_and(|e| t >= e) {
            break None;
        }
        let in_range = from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e);
        let item: TimelineItem = serde_json::from_slice(&v)?;
        let wanted = in_range
            && params
                .channel
                .as_ref()
                .is_none_or(|c| item.channel.as_deref() == Some(c.as_str()))
            && params
                .event_type
                .as_ref()
                .is_none_or(|p| item.event_type.starts_with(p.as_str()));
        if wanted {
            if items.len() == n {
                break last_read;
            }
            items.push(item);
        }
        last_read = Some(suffix);
    };
    Ok(Some(Page {
        items,
        next_cursor: next_cursor.map(|p| encode_cursor(&scope, &p)),
    }))
}
