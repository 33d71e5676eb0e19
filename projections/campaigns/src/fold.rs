//! The fold: facts in, affected effective contacts re-derived.

use std::collections::{BTreeMap, BTreeSet};

use crm_events::{ConsentChannel, ConsentPurpose, ContactOutcome, Event, EventData};
use crm_projection::{ApplyError, KvRead, Projection, StoreError, Tx};

use crate::derive::{derive, index_entries};
use crate::graph;
use crate::keys;
use crate::model::*;

/// The campaigns projection (`name() == "campaigns"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CampaignsProjection;

impl Projection for CampaignsProjection {
    fn name(&self) -> &'static str {
        "campaigns"
    }

    fn format_version(&self) -> u32 {
        1
    }

    fn apply(&self, tx: &mut Tx<'_>, e: &Event) -> Result<(), ApplyError> {
        match &e.data {
            EventData::ConsentGranted(d) => {
                consent(tx, e, true, d.channel, d.purpose, d.expires_at)
            }
            EventData::ConsentRevoked(d) => consent(tx, e, false, d.channel, d.purpose, None),
            EventData::CustomerMerged(d) => merge(tx, e, &d.merged_customer_id, true),
            EventData::CustomerUnmerged(d) => merge(tx, e, &d.merged_customer_id, false),
            EventData::CampaignCreated(d) => created(tx, e, d),
            EventData::CampaignContactAdded(d) => contact_event(tx, e, |f, _| {
                let changed = insert_sorted(
                    &mut f.added,
                    AddedFact {
                        at: e.occurred_at,
                        event_id: e.event_id.clone(),
                        identity: d.identity.clone(),
                    },
                );
                if let Some(agent) = d.agent_id.clone().or_else(|| e.agent_id.clone()) {
                    insert_sorted(
                        &mut f.assignments,
                        AssignFact {
                            at: e.occurred_at,
                            event_id: e.event_id.clone(),
                            agent: Some(agent),
                        },
                    );
                }
                changed
            }),
            EventData::CampaignContactAssigned(_) => contact_event(tx, e, |f, _| {
                insert_sorted(
                    &mut f.assignments,
                    AssignFact {
                        at: e.occurred_at,
                        event_id: e.event_id.clone(),
                        agent: e.agent_id.clone(),
                    },
                )
            }),
            EventData::CampaignAttemptMade(d) => contact_event(tx, e, |f, _| {
                insert_sorted(
                    &mut f.attempts,
                    AttemptFact {
                        at: e.occurred_at,
                        event_id: e.event_id.clone(),
                        channel: d.channel,
                        result: d.result,
                        agent: e.agent_id.clone(),
                        interaction_id: d.interaction_id.clone(),
                    },
                )
            }),
            EventData::CampaignContactOutcome(d) => contact_event(tx, e, |f, dnc| {
                if d.outcome == ContactOutcome::DoNotContact {
                    *dnc = true;
                }
                insert_sorted(
                    &mut f.outcomes,
                    OutcomeFact {
                        at: e.occurred_at,
                        event_id: e.event_id.clone(),
                        outcome: d.outcome,
                        callback_at: d.callback_at,
                        value_micros: d.value.map(to_micros),
                        agent: e.agent_id.clone(),
                    },
                )
            }),
            EventData::CampaignPaused(_) => status(tx, e, Some(true)),
            EventData::CampaignResumed(_) => status(tx, e, Some(false)),
            EventData::CampaignCompleted(_) => status(tx, e, None),
            _ => Ok(()),
        }
    }
}

fn need<'a>(v: Option<&'a str>, field: &str, e: &Event) -> Result<&'a str, ApplyError> {
    v.ok_or_else(|| ApplyError(format!("{} without {field}", e.event_type())))
}

fn campaign_record(kv: &dyn KvRead, k: &str) -> Result<CampaignRecord, StoreError> {
    Ok(crm_projection::get_json(kv, keys::campaign(k).as_bytes())?.unwrap_or_default())
}

/// Parks a campaign event that came before its `campaign.created`.
fn park_if_waiting(tx: &mut Tx<'_>, e: &Event, k: &str, rec: &mut CampaignRecord) {
    if rec.config.is_none() && !rec.waiting.contains(&e.event_id) {
        rec.waiting.push(e.event_id.clone());
        tx.dead_letter(e, "waiting for campaign.created", true);
        tx.put_json(keys::campaign(k), rec);
    }
}

fn consent(
    tx: &mut Tx<'_>,
    e: &Event,
    granted: bool,
    channel: ConsentChannel,
    purpose: ConsentPurpose,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), ApplyError> {
    let c = need(e.customer_id.as_deref(), "customer_id", e)?;
    let key = keys::customer(c);
    let mut facts: CustomerFacts = tx.get_json(key.as_bytes())?.unwrap_or_default();
    let fact = ConsentFact {
        at: e.occurred_at,
        event_id: e.event_id.clone(),
        granted,
        channel,
        purpose,
        expires_at,
    };
    if insert_sorted(&mut facts.consents, fact) {
        tx.put_json(key, &facts);
        refresh_customer(tx, c)?;
    }
    Ok(())
}

/// Re-derives every contact of `c`'s merge group, in every campaign.
fn refresh_customer(tx: &mut Tx<'_>, c: &str) -> Result<(), ApplyError> {
    let r = graph::root(tx, c)?;
    let group = graph::group(tx, &r)?;
    for k in graph::campaigns_of(tx, &group)? {
        let cfg = campaign_record(tx, &k)?.config;
        refresh(tx, &k, cfg.as_ref(), &r)?;
    }
    Ok(())
}

fn merge(tx: &mut Tx<'_>, e: &Event, m: &str, active: bool) -> Result<(), ApplyError> {
    let s = need(e.customer_id.as_deref(), "customer_id", e)?;
    if s == m {
        return Err(ApplyError("a customer cannot be merged into itself".into()));
    }
    // Everything whose root may change lies in the groups of s and m now.
    let mut members: BTreeSet<String> = BTreeSet::new();
    let mut roots: BTreeSet<String> = BTreeSet::new();
    for x in [s, m] {
        let r = graph::root(tx, x)?;
        members.extend(graph::group(tx, &r)?);
        roots.insert(r);
    }
    let key = keys::edge(m, s);
    let old: Option<Edge> = tx.get_json(key.as_bytes())?;
    let edge = if active {
        Edge {
            survivor: s.to_string(),
            active: true,
            at: e.occurred_at,
            event_id: e.event_id.clone(),
        }
    } else {
        match old.clone() {
            Some(mut edge) => {
                edge.active = false;
                edge
            }
            None => Edge {
                survivor: s.to_string(),
                active: false,
                at: e.occurred_at,
                event_id: e.event_id.clone(),
            },
        }
    };
    if old.as_ref() == Some(&edge) {
        return Ok(());
    }
    tx.put_json(key, &edge);
    tx.put(keys::in_edge(s, m), "1");
    for u in &members {
        roots.insert(graph::root(tx, u)?);
    }
    let members: Vec<String> = members.into_iter().collect();
    for k in graph::campaigns_of(tx, &members)? {
        let cfg = campaign_record(tx, &k)?.config;
        for r in &roots {
            refresh(tx, &k, cfg.as_ref(), r)?;
        }
    }
    Ok(())
}

fn created(tx: &mut Tx<'_>, e: &Event, d: &crm_events::CampaignCreated) -> Result<(), ApplyError> {
    let k = need(e.campaign_id.as_deref(), "campaign_id", e)?;
    let mut rec = campaign_record(tx, k)?;
    if rec.config.is_some() {
        return Err(ApplyError(format!("campaign {k:?} was already created")));
    }
    let cfg = Config {
        event_id: e.event_id.clone(),
        created_at: e.occurred_at,
        name: d.name.clone(),
        channel: d.channel,
        purpose: d.purpose,
        starts_at: d.starts_at,
        ends_at: d.ends_at,
        max_attempts: d.max_attempts(),
        requires_consent: d.requires_consent(),
    };
    rec.config = Some(cfg.clone());
    for id in std::mem::take(&mut rec.waiting) {
        tx.clear_dead_letter(&id);
    }
    tx.put_json(keys::campaign(k), &rec);
    // Contacts known before the campaign was created (only when events
    // came before it in the campaign's own stream) are derived now.
    let mut roots = BTreeSet::new();
    for (key, _) in tx.scan_all(keys::contact_prefix(k).as_bytes())? {
        roots.insert(graph::root(tx, &keys::last_component(&key))?);
    }
    for r in roots {
        refresh(tx, k, Some(&cfg), &r)?;
    }
    Ok(())
}

fn status(tx: &mut Tx<'_>, e: &Event, paused: Option<bool>) -> Result<(), ApplyError> {
    let k = need(e.campaign_id.as_deref(), "campaign_id", e)?;
    let mut rec = campaign_record(tx, k)?;
    let mark = StatusMark {
        at: e.occurred_at,
        event_id: e.event_id.clone(),
        paused: paused.unwrap_or(false),
    };
    let rank = |m: &StatusMark| (m.at, m.event_id.clone());
    match paused {
        Some(_) => {
            if rec.pause.as_ref().is_none_or(|p| rank(&mark) > rank(p)) {
                rec.pause = Some(mark);
            }
        }
        None => {
            if rec.completed.as_ref().is_none_or(|p| rank(&mark) < rank(p)) {
                rec.completed = Some(mark);
            }
        }
    }
    tx.put_json(keys::campaign(k), &rec);
    park_if_waiting(tx, e, k, &mut rec);
    Ok(())
}

/// Records a campaign contact fact, then re-derives what it affects.
fn contact_event(
    tx: &mut Tx<'_>,
    e: &Event,
    update: impl FnOnce(&mut ContactFacts, &mut bool) -> bool,
) -> Result<(), ApplyError> {
    let k = need(e.campaign_id.as_deref(), "campaign_id", e)?;
    let c = need(e.customer_id.as_deref(), "customer_id", e)?;
    let key = keys::contact(k, c);
    let mut facts: ContactFacts = tx.get_json(key.as_bytes())?.unwrap_or_default();
    let mut dnc = false;
    let changed = update(&mut facts, &mut dnc);
    let mut rec = campaign_record(tx, k)?;
    park_if_waiting(tx, e, k, &mut rec);
    if !changed {
        return Ok(());
    }
    tx.put_json(key, &facts);
    tx.put(keys::customer_campaign(c, k), "1");
    if dnc {
        // A do-not-contact holds for the customer in every campaign.
        let ckey = keys::customer(c);
        let mut cf: CustomerFacts = tx.get_json(ckey.as_bytes())?.unwrap_or_default();
        insert_sorted(
            &mut cf.dnc,
            DncFact {
                at: e.occurred_at,
                event_id: e.event_id.clone(),
                campaign_id: k.to_string(),
            },
        );
        tx.put_json(ckey, &cf);
        refresh_customer(tx, c)
    } else {
        let r = graph::root(tx, c)?;
        refresh(tx, k, rec.config.as_ref(), &r)
    }
}

/// Loads what [`derive`] needs for `(k, r)`; `None` when `r` is not a
/// current survivor or no id of its group is a contact of `k`.
pub(crate) fn load_and_derive(
    kv: &dyn KvRead,
    k: &str,
    cfg: &Config,
    r: &str,
) -> Result<Option<crate::derive::Derivation>, StoreError> {
    load_and_derive_with(kv, k, cfg, r, None)
}

/// [`load_and_derive`], with `member` counted in `r`'s group even when
/// the group does not list it yet. A query sees a batch's writes one key
/// at a time: a merge's `me/` (`member`'s root is `r`) is written before
/// its `mi/` (`r`'s group lists `member`), and the contact must not vanish
/// in between.
pub(crate) fn load_and_derive_with(
    kv: &dyn KvRead,
    k: &str,
    cfg: &Config,
    r: &str,
    member: Option<&str>,
) -> Result<Option<crate::derive::Derivation>, StoreError> {
    if graph::root(kv, r)? != r {
        return Ok(None);
    }
    let mut group = graph::group(kv, r)?;
    if let Some(m) = member {
        if let Err(at) = group.binary_search_by(|g| g.as_str().cmp(m)) {
            group.insert(at, m.to_string());
        }
    }
    let mut facts = Vec::new();
    for u in &group {
        if let Some(f) =
            crm_projection::get_json::<ContactFacts>(kv, keys::contact(k, u).as_bytes())?
        {
            facts.push((u.clone(), f));
        }
    }
    if facts.is_empty() {
        return Ok(None);
    }
    let mut consents = Vec::new();
    let mut dnc = Vec::new();
    for u in &group {
        if let Some(cf) =
            crm_projection::get_json::<CustomerFacts>(kv, keys::customer(u).as_bytes())?
        {
            consents.extend(cf.consents);
            dnc.extend(cf.dnc);
        }
    }
    Ok(Some(derive(cfg, r, &facts, consents, dnc)))
}

/// Re-derives the effective contact `(k, r)` and moves the aggregates and
/// index entries from its old derivation to the new one: subtract the old
/// contribution, add the new one (integer sums, so the result does not
/// depend on the order of refreshes).
fn refresh(tx: &mut Tx<'_>, k: &str, cfg: Option<&Config>, r: &str) -> Result<(), ApplyError> {
    let key = keys::derived(k, r);
    let old: Option<Derived> = tx.get_json(key.as_bytes())?;
    let new = match cfg {
        Some(cfg) => load_and_derive(tx, k, cfg, r)?.map(|d| d.derived),
        None => None,
    };
    if old == new {
        return Ok(());
    }
    let mut delta: BTreeMap<&str, Counts> = BTreeMap::new();
    for (d, sign) in [(&old, -1), (&new, 1)] {
        if let Some(d) = d {
            for (s, c) in &d.contrib {
                delta.entry(s.as_str()).or_default().add(c, sign);
            }
        }
    }
    for (slice, d) in delta {
        if d.is_zero() {
            continue;
        }
        let akey = keys::agg(k, slice);
        let mut cur: Counts = tx.get_json(akey.as_bytes())?.unwrap_or_default();
        cur.add(&d, 1);
        if cur.is_zero() {
            tx.delete(akey);
        } else {
            tx.put_json(akey, &cur);
        }
    }
    let old_idx = old
        .as_ref()
        .map(|d| index_entries(k, d))
        .unwrap_or_default();
    let new_idx = new
        .as_ref()
        .map(|d| index_entries(k, d))
        .unwrap_or_default();
    for ik in old_idx.keys() {
        if !new_idx.contains_key(ik) {
            tx.delete(ik.clone());
        }
    }
    for (ik, v) in new_idx {
        if old_idx.get(&ik) != Some(&v) {
            tx.put(ik, v);
        }
    }
    match new {
        Some(d) => tx.put_json(key, &d),
        None => tx.delete(key),
    }
    Ok(())
}

/// Checks a store against a rebuild from its facts: every stored effective
/// contact equals a fresh derivation, no survivor with contact facts lacks
/// one, every aggregate slice equals the sum of the contributions, and the
/// index entries are exactly those the contacts own. For tests; reads
/// everything of the campaign.
#[doc(hidden)]
pub fn audit(kv: &dyn KvRead, k: &str) -> Result<(), String> {
    let err = |e: StoreError| e.to_string();
    let cfg = campaign_record(kv, k).map_err(err)?.config;
    let mut expected: BTreeMap<String, Derived> = BTreeMap::new();
    if let Some(cfg) = &cfg {
        for (key, _) in kv
            .scan(keys::contact_prefix(k).as_bytes(), None, usize::MAX)
            .map_err(err)?
        {
            let r = graph::root(kv, &keys::last_component(&key)).map_err(err)?;
            if let Some(d) = load_and_derive(kv, k, cfg, &r).map_err(err)? {
                expected.insert(keys::derived(k, &r), d.derived);
            }
        }
    }
    let stored: BTreeMap<String, Derived> = kv
        .scan(keys::derived_prefix(k).as_bytes(), None, usize::MAX)
        .map_err(err)?
        .into_iter()
        .map(|(key, v)| {
            (
                String::from_utf8_lossy(&key).into_owned(),
                serde_json::from_slice(&v).expect("decodes"),
            )
        })
        .collect();
    if stored != expected {
        return Err(format!(
            "derived contacts differ from a rebuild:\nstored {stored:#?}\nexpected {expected:#?}"
        ));
    }
    let mut sums: BTreeMap<String, Counts> = BTreeMap::new();
    let mut index: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for d in expected.values() {
        for (s, c) in &d.contrib {
            sums.entry(keys::agg(k, s)).or_default().add(c, 1);
        }
        index.extend(index_entries(k, d));
    }
    sums.retain(|_, c| !c.is_zero());
    let aggs: BTreeMap<String, Counts> = kv
        .scan(keys::agg_prefix(k).as_bytes(), None, usize::MAX)
        .map_err(err)?
        .into_iter()
        .map(|(key, v)| {
            (
                String::from_utf8_lossy(&key).into_owned(),
                serde_json::from_slice(&v).expect("decodes"),
            )
        })
        .collect();
    if aggs != sums {
        return Err(format!(
            "aggregates differ from the sum of contributions:\nstored {aggs:#?}\nsums {sums:#?}"
        ));
    }
    let mut stored_index = BTreeMap::new();
    for p in [
        format!("st/{}/", keys::esc(k)),
        format!("sa/{}/", keys::esc(k)),
        keys::expiry_prefix(k),
        keys::violation_prefix(k),
    ] {
        for (key, v) in kv.scan(p.as_bytes(), None, usize::MAX).map_err(err)? {
            stored_index.insert(String::from_utf8_lossy(&key).into_owned(), v);
        }
    }
    if stored_index != index {
        let a: Vec<_> = stored_index.keys().collect();
        let b: Vec<_> = index.keys().collect();
        return Err(format!(
            "index entries differ:\nstored {a:#?}\nexpected {b:#?}"
        ));
    }
    Ok(())
}
