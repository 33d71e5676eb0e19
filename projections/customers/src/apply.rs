//! The fold: one function per event family.

use chrono::{DateTime, Utc};
use crm_events::{Channel, Direction, Event, EventData, Identity, IdentityKind, Ivr};
use crm_projection::{ApplyError, KvRead, Tx};
use serde_json::Value;

use crate::keys::*;
use crate::query::{InteractionListItem, OpenCase, RecentInteraction, TimelineItem};
use crate::state::*;
use crate::summary;

fn req<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str, ApplyError> {
    v.as_deref()
        .ok_or_else(|| ApplyError(format!("{field} is required for this event type")))
}

pub fn apply(tx: &mut Tx<'_>, e: &Event) -> Result<(), ApplyError> {
    use EventData as D;
    match &e.data {
        D::CustomerRegistered(_)
        | D::CustomerProfileUpdated(_)
        | D::CustomerIdentityAdded(_)
        | D::CustomerIdentityRemoved(_) => profile(tx, e),
        D::CustomerMerged(d) => merge(tx, e, &d.merged_customer_id, true),
        D::CustomerUnmerged(d) => merge(tx, e, &d.merged_customer_id, false),
        D::ConsentGranted(_) | D::ConsentRevoked(_) => consent(tx, e),
        D::InteractionStarted(_)
        | D::InteractionMessage(_)
        | D::InteractionAssigned(_)
        | D::InteractionTransferred(_)
        | D::InteractionEnded(_)
        | D::InteractionRecorded(_)
        | D::InteractionIdentified(_) => interaction(tx, e),
        D::CaseOpened(_)
        | D::CaseInteractionLinked(_)
        | D::CaseCustomerIdentified(_)
        | D::CaseCategorized(_)
        | D::CaseAssigned(_)
        | D::CaseEscalated(_)
        | D::CaseNoteAdded(_)
        | D::CaseResponded(_)
        | D::CaseResolved(_)
        | D::CaseReopened(_)
        | D::CaseClosed(_)
        | D::CaseVoided(_) => case(tx, e),
        D::CampaignCreated(_)
        | D::CampaignContactAdded(_)
        | D::CampaignContactAssigned(_)
        | D::CampaignAttemptMade(_)
        | D::CampaignContactOutcome(_)
        | D::CampaignPaused(_)
        | D::CampaignResumed(_)
        | D::CampaignCompleted(_) => campaign(tx, e),
    }
}

// ------------------------------------------------------------------ timeline

fn put_timeline(tx: &mut Tx<'_>, customer: &str, pos: &[u8], item: &TimelineItem) {
    tx.put_json(join(&TIMELINE.key(customer), pos), item);
}

fn delete_timeline(tx: &mut Tx<'_>, customer: &str, pos: &[u8]) {
    tx.delete(join(&TIMELINE.key(customer), pos));
}

/// Moves the events kept under `source` (an interaction's or a case's event
/// list) from `old`'s timeline to `new`'s, with `channel` when given.
fn move_timeline(
    tx: &mut Tx<'_>,
    source: &[u8],
    old: Option<&str>,
    new: Option<&str>,
    channel: Option<Option<&str>>,
) -> Result<(), ApplyError> {
    for (k, v) in tx.scan_all(source)? {
        let pos = &k[source.len()..];
        if let Some(c) = old {
            delete_timeline(tx, c, pos);
        }
        if let Some(c) = new {
            let mut item: TimelineItem = serde_json::from_slice(&v)?;
            if let Some(ch) = channel {
                item.channel = ch.map(str::to_string);
            }
            put_timeline(tx, c, pos, &item);
        }
    }
    Ok(())
}

fn bump(tx: &mut Tx<'_>, customer: &str, f: impl FnOnce(&mut Counters)) -> Result<(), ApplyError> {
    let k = COUNTERS.key(customer);
    let mut c: Counters = tx.get_json(&k)?.unwrap_or_default();
    f(&mut c);
    if c.is_zero() {
        tx.delete(k);
    } else {
        tx.put_json(k, &c);
    }
    Ok(())
}

// ------------------------------------------------------------------ customer

fn profile(tx: &mut Tx<'_>, e: &Event) -> Result<(), ApplyError> {
    let cust = req(&e.customer_id, "customer_id")?;
    let k = PROFILE.key(cust);
    let mut p: Profile = tx.get_json(&k)?.unwrap_or_default();
    let st = Stamp::of(e);
    match &e.data {
        EventData::CustomerRegistered(d) => {
            if p.registered.as_ref().is_none_or(|r| st < *r) {
                p.registered = Some(st.clone());
            }
            if let Some(n) = &d.name {
                set_latest(&mut p.name, &st, Some(n.clone()));
            }
            for (a, v) in &d.attributes {
                set_attribute(&mut p, a, v, &st);
            }
            for id in &d.identities {
                set_identity(tx, &mut p, cust, id, true, false, &st);
            }
        }
        EventData::CustomerProfileUpdated(d) => {
            if let Some(n) = &d.name {
                set_latest(&mut p.name, &st, Some(n.clone()));
            }
            for (a, v) in &d.attributes {
                set_attribute(&mut p, a, v, &st);
            }
        }
        EventData::CustomerIdentityAdded(d) => {
            set_identity(tx, &mut p, cust, &d.identity, true, d.verified, &st)
        }
        EventData::CustomerIdentityRemoved(d) => {
            set_identity(tx, &mut p, cust, &d.identity, false, false, &st)
        }
        _ => unreachable!("profile events only"),
    }
    tx.put_json(k, &p);
    put_timeline(
        tx,
        cust,
        &position(&e.occurred_at, &e.event_id),
        &summary::item(e),
    );
    Ok(())
}

fn set_attribute(p: &mut Profile, name: &str, value: &Value, st: &Stamp) {
    if p.attributes.get(name).is_none_or(|cur| *st > cur.stamp) {
        p.attributes.insert(
            name.to_string(),
            Lww {
                stamp: st.clone(),
                value: value.clone(),
            },
        );
    }
}

fn set_identity(
    tx: &mut Tx<'_>,
    p: &mut Profile,
    cust: &str,
    id: &Identity,
    present: bool,
    verified: bool,
    st: &Stamp,
) {
    let ik = id.key();
    if p.identities.get(&ik).is_some_and(|f| *st <= f.stamp) {
        return;
    }
    p.identities.insert(
        ik,
        IdentityFact {
            identity: id.clone(),
            present,
            verified,
            stamp: st.clone(),
        },
    );
    let lk = key(LOOKUP, &[id.kind.as_str(), &id.value, cust]);
    if present {
        tx.put(lk, b"{}".to_vec());
    } else {
        tx.delete(lk);
    }
}

fn merge(tx: &mut Tx<'_>, e: &Event, merged: &str, active: bool) -> Result<(), ApplyError> {
    let survivor = req(&e.customer_id, "customer_id")?;
    let st = Stamp::of(e);
    let ko = MERGE_OUT.key(merged);
    let mut out: Vec<Edge> = tx.get_json(&ko)?.unwrap_or_default();
    set_edge(&mut out, survivor, active, &st);
    tx.put_json(ko, &out);
    let ki = MERGE_IN.key(survivor);
    let mut inc: Vec<Edge> = tx.get_json(&ki)?.unwrap_or_default();
    set_edge(&mut inc, merged, active, &st);
    tx.put_json(ki, &inc);
    // The event concerns both customers: it shows in both timelines (a
    // timeline over both, while merged, shows it once).
    let pos = position(&e.occurred_at, &e.event_id);
    let item = summary::item(e);
    put_timeline(tx, survivor, &pos, &item);
    put_timeline(tx, merged, &pos, &item);
    Ok(())
}

fn consent(tx: &mut Tx<'_>, e: &Event) -> Result<(), ApplyError> {
    let cust = req(&e.customer_id, "customer_id")?;
    let (cp, fact) = match &e.data {
        EventData::ConsentGranted(d) => (
            format!("{}/{}", d.channel, d.purpose),
            ConsentFact {
                stamp: Stamp::of(e),
                granted: true,
                expires_at: d.expires_at,
            },
        ),
        EventData::ConsentRevoked(d) => (
            format!("{}/{}", d.channel, d.purpose),
            ConsentFact {
                stamp: Stamp::of(e),
                granted: false,
                expires_at: None,
            },
        ),
        _ => unreachable!("consent events only"),
    };
    let k = CONSENTS.key(cust);
    let mut rec: Consents = tx.get_json(&k)?.unwrap_or_default();
    let hist = rec.by.entry(cp).or_default();
    if let Err(i) = hist.binary_search_by(|f| f.stamp.cmp(&fact.stamp)) {
        hist.insert(i, fact);
    }
    tx.put_json(k, &rec);
    put_timeline(
        tx,
        cust,
        &position(&e.occurred_at, &e.event_id),
        &summary::item(e),
    );
    Ok(())
}

// ------------------------------------------------------------------ campaign

fn campaign(tx: &mut Tx<'_>, e: &Event) -> Result<(), ApplyError> {
    let camp = req(&e.campaign_id, "campaign_id")?;
    let st = Stamp::of(e);
    match &e.data {
        EventData::CampaignCreated(d) => {
            let k = key(CAMPAIGN, &[camp]);
            let cur: Option<CampaignName> = tx.get_json(&k)?;
            if cur.is_none_or(|c| st > c.name.stamp) {
                let name = CampaignName {
                    name: Lww {
                        stamp: st,
                        value: d.name.clone(),
                    },
                };
                tx.put_json(k, &name);
            }
            return Ok(());
        }
        EventData::CampaignPaused(_)
        | EventData::CampaignResumed(_)
        | EventData::CampaignCompleted(_) => {
            return Ok(());
        }
        _ => {}
    }
    let cust = req(&e.customer_id, "customer_id")?;
    let k = CONTACT.key_with(cust, &[camp]);
    let mut c: Contact = tx.get_json(&k)?.unwrap_or_default();
    c.campaign_id = camp.to_string();
    match &e.data {
        EventData::CampaignAttemptMade(d) => {
            c.attempts += 1;
            set_latest(&mut c.last_result, &st, d.result.as_str().to_string());
        }
        EventData::CampaignContactOutcome(d) => {
            set_latest(&mut c.last_outcome, &st, d.outcome.as_str().to_string());
        }
        _ => {}
    }
    tx.put_json(k, &c);
    put_timeline(
        tx,
        cust,
        &position(&e.occurred_at, &e.event_id),
        &summary::item(e),
    );
    Ok(())
}

// --------------------------------------------------------------- interaction

/// The identity kind an IVR input names: its key is a kind (`card`,
/// `account`, ...), optionally with `_number`, `_no`, `_num` or `_id`, or
/// one of a few common aliases.
fn ivr_kind(key: &str) -> Option<IdentityKind> {
    let k = key.trim().to_ascii_lowercase();
    let base = ["_number", "_no", "_num", "_id"]
        .iter()
        .find_map(|s| k.strip_suffix(s))
        .unwrap_or(&k);
    for cand in [k.as_str(), base] {
        if let Ok(kind) = cand.parse::<IdentityKind>() {
            return Some(kind);
        }
    }
    match base {
        "acct" | "account_nr" => Some(IdentityKind::Account),
        "pan" | "credit_card" | "debit_card" => Some(IdentityKind::Card),
        "msisdn" | "callback" | "mobile" => Some(IdentityKind::Phone),
        _ => None,
    }
}

/// The identities an interaction suggests: its counterpart's address (the
/// sender of an inbound interaction, the callee of an outbound one) and the
/// IVR inputs that name an identity kind and normalise.
fn hints(
    direction: Direction,
    from: Option<&Identity>,
    to: Option<&Identity>,
    ivr: Option<&Ivr>,
) -> Vec<Hint> {
    let mut out = Vec::new();
    let (counterpart, source) = match direction {
        Direction::Inbound => (from, "from"),
        Direction::Outbound => (to, "to"),
    };
    if let Some(id) = counterpart {
        out.push(Hint {
            kind: id.kind.as_str().to_string(),
            value: id.value.clone(),
            source: source.to_string(),
        });
    }
    if let Some(ivr) = ivr {
        for (k, v) in &ivr.inputs {
            let Some(kind) = ivr_kind(k) else { continue };
            let raw = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if let Ok(value) = crm_events::identity::normalize(kind, &raw) {
                out.push(Hint {
                    kind: kind.as_str().to_string(),
                    value,
                    source: "ivr".to_string(),
                });
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.kind == b.kind && a.value == b.value);
    out
}

#[allow(clippy::too_many_arguments)]
fn set_start(
    rec: &mut InteractionRec,
    st: &Stamp,
    channel: Channel,
    direction: Direction,
    from: &Option<Identity>,
    to: &Option<Identity>,
    subject: &Option<String>,
    ivr: Option<&Ivr>,
) {
    if rec.start.as_ref().is_some_and(|s| s.stamp <= *st) {
        return;
    }
    rec.start = Some(Start {
        stamp: st.clone(),
        channel,
        direction,
        from: from.clone(),
        to: to.clone(),
        subject: subject.clone(),
        ivr: ivr.map(|i| serde_json::to_value(i).expect("ivr serialises")),
        hints: hints(direction, from.as_ref(), to.as_ref(), ivr),
    });
}

fn set_end(rec: &mut InteractionRec, end: End) {
    if rec.end.as_ref().is_none_or(|cur| end.stamp > cur.stamp) {
        rec.end = Some(end);
    }
}

fn interaction(tx: &mut Tx<'_>, e: &Event) -> Result<(), ApplyError> {
    let iid = req(&e.interaction_id, "interaction_id")?;
    let k = INTERACTION.key(iid);
    let mut rec: InteractionRec = tx.get_json(&k)?.unwrap_or_default();
    rec.interaction_id = iid.to_string();
    let st = Stamp::of(e);
    if rec.first_event_at.is_none_or(|t| e.occurred_at < t) {
        rec.first_event_at = Some(e.occurred_at);
    }
    if let Some(a) = &e.agent_id {
        rec.see_agent(a, &st);
    }
    match &e.data {
        EventData::InteractionStarted(d) => {
            set_start(
                &mut rec,
                &st,
                d.channel,
                d.direction,
                &d.from,
                &d.to,
                &d.subject,
                d.ivr.as_ref(),
            );
            if let Some(q) = &d.queue {
                set_latest(&mut rec.queue, &st, q.clone());
            }
        }
        EventData::InteractionMessage(_) => rec.messages_count += 1,
        EventData::InteractionAssigned(d) => {
            if let Some(q) = &d.queue {
                set_latest(&mut rec.queue, &st, q.clone());
            }
        }
        EventData::InteractionTransferred(d) => {
            if let Some(q) = &d.to_queue {
                set_latest(&mut rec.queue, &st, q.clone());
            }
            if let Some(a) = &d.to_agent_id {
                rec.see_agent(a, &st);
            }
            let t = Transfer {
                stamp: st.clone(),
                agent_id: e.agent_id.clone(),
                to_queue: d.to_queue.clone(),
                to_agent_id: d.to_agent_id.clone(),
                tier: d.tier,
                reason: d.reason.clone(),
            };
            if let Err(i) = rec.transfers.binary_search_by(|x| x.stamp.cmp(&st)) {
                rec.transfers.insert(i, t);
            }
        }
        EventData::InteractionEnded(d) => set_end(
            &mut rec,
            End {
                stamp: st.clone(),
                ended_at: e.occurred_at,
                outcome: Some(d.outcome),
                talk_seconds: d.durations.talk_seconds,
                handle_seconds: d.durations.handle_seconds,
                wrapup_code: d.wrapup_code.clone(),
            },
        ),
        EventData::InteractionRecorded(d) => {
            set_start(
                &mut rec,
                &st,
                d.channel,
                d.direction,
                &d.from,
                &d.to,
                &d.subject,
                None,
            );
            set_end(
                &mut rec,
                End {
                    stamp: st.clone(),
                    ended_at: d.ended_at.unwrap_or(e.occurred_at),
                    outcome: d.outcome,
                    talk_seconds: d.talk_seconds,
                    handle_seconds: None,
                    wrapup_code: None,
                },
            );
        }
        EventData::InteractionIdentified(d) => {
            let cust = req(&e.customer_id, "customer_id")?;
            set_latest(
                &mut rec.identified,
                &st,
                Attribution {
                    customer_id: cust.to_string(),
                    method: d
                        .method
                        .map(|m| m.as_str())
                        .unwrap_or("identified")
                        .to_string(),
                },
            );
        }
        _ => unreachable!("interaction events only"),
    }
    if !matches!(e.data, EventData::InteractionIdentified(_)) {
        if let Some(c) = &e.customer_id {
            set_latest(
                &mut rec.tagged,
                &st,
                Attribution {
                    customer_id: c.clone(),
                    method: "customer_id".to_string(),
                },
            );
        }
    }
    let pos = position(&e.occurred_at, &e.event_id);
    let item = summary::item(e);
    tx.put_json(join(&INTERACTION_EVENTS.key(iid), &pos), &item);
    refresh_interaction(tx, rec, Some((pos, item)))
}

fn recent_key(customer: &str, time: &DateTime<Utc>, iid: &str) -> Vec<u8> {
    join(&RECENT.key(customer), &invert(&position(time, iid)))
}

fn list_key(identified: bool, time: &DateTime<Utc>, iid: &str) -> Vec<u8> {
    let tag = if identified { IDENTIFIED } else { UNIDENTIFIED };
    join(tag.as_bytes(), &invert(&position(time, iid)))
}

/// The case ids linked to an interaction.
pub fn case_ids(kv: &dyn KvRead, iid: &str) -> Result<Vec<String>, crm_projection::StoreError> {
    let prefix = LINK.key(iid);
    let mut out = Vec::new();
    for (k, _) in kv.scan(&prefix, None, usize::MAX)? {
        out.push(decode_str(&k[prefix.len()..]));
    }
    Ok(out)
}

/// Reads back one string written by [`enc_str`].
pub fn decode_str(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0 {
            if b.get(i + 1) == Some(&0xFF) {
                out.push(0);
                i += 2;
                continue;
            }
            break;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Brings every derived entry of an interaction in line with its facts:
/// its index entries (recent/first per customer, identified/unidentified
/// list), its customer's counters, and its events in the customer's
/// timeline (moved when the attribution or the channel changed).
fn refresh_interaction(
    tx: &mut Tx<'_>,
    mut rec: InteractionRec,
    new_event: Option<(Vec<u8>, TimelineItem)>,
) -> Result<(), ApplyError> {
    let iid = rec.interaction_id.clone();
    let new = SyncedInteraction {
        customer: rec.customer(),
        time: rec.sort_time(),
        channel: rec.channel(),
    };
    let old = rec.synced.take();

    // Index entries.
    if let Some(o) = &old {
        if o.customer != new.customer || o.time != new.time {
            if let Some(c) = &o.customer {
                tx.delete(recent_key(c, &o.time, &iid));
            }
            tx.delete(list_key(o.customer.is_some(), &o.time, &iid));
        }
    }
    let channel = new.channel.map(|c| c.as_str().to_string());
    let direction = rec.start.as_ref().map(|s| s.direction.as_str().to_string());
    let started_at = rec.started_at().map(|t| crm_events::format_time(&t));
    let outcome = rec
        .end
        .as_ref()
        .and_then(|e| e.outcome)
        .map(|o| o.as_str().to_string());
    if let Some(c) = &new.customer {
        let recent = RecentInteraction {
            interaction_id: iid.clone(),
            channel: channel.clone(),
            direction: direction.clone(),
            started_at: started_at.clone(),
            outcome: outcome.clone(),
            agent_id: rec.last_agent(),
            case_ids: case_ids(tx, &iid)?,
        };
        tx.put_json(recent_key(c, &new.time, &iid), &recent);
    }
    let list_item = InteractionListItem {
        interaction_id: iid.clone(),
        channel: channel.clone(),
        direction,
        customer_id: new.customer.clone(),
        started_at,
        ended_at: rec
            .end
            .as_ref()
            .map(|e| crm_events::format_time(&e.ended_at)),
        outcome,
        queue: rec.queue.as_ref().map(|q| q.value.clone()),
        agent_ids: rec.agent_ids(),
        messages_count: rec.messages_count,
        identity_hints: rec.hints(),
    };
    tx.put_json(
        list_key(new.customer.is_some(), &new.time, &iid),
        &list_item,
    );

    // Counters.
    let contribution = |s: &SyncedInteraction| s.customer.clone().map(|c| (c, s.channel));
    let old_c = old.as_ref().and_then(contribution);
    let new_c = contribution(&new);
    if old_c != new_c {
        if let Some((c, ch)) = old_c {
            bump(tx, &c, |k| k.add_interaction(ch, -1))?;
        }
        if let Some((c, ch)) = new_c {
            bump(tx, &c, |k| k.add_interaction(ch, 1))?;
        }
    }

    // Timeline.
    let (old_customer, old_channel) = match &old {
        Some(o) => (o.customer.clone(), o.channel),
        None => (None, None),
    };
    if old_customer != new.customer || old_channel != new.channel {
        move_timeline(
            tx,
            &INTERACTION_EVENTS.key(&iid),
            old_customer.as_deref(),
            new.customer.as_deref(),
            Some(channel.as_deref()),
        )?;
    } else if let (Some(c), Some((pos, mut item))) = (&new.customer, new_event) {
        item.channel = channel;
        put_timeline(tx, c, &pos, &item);
    }

    rec.synced = Some(new);
    tx.put_json(INTERACTION.key(&iid), &rec);
    Ok(())
}

/// Records that `case` is linked to `iid` and refreshes the interaction's
/// entries that show its case ids.
fn link(tx: &mut Tx<'_>, iid: &str, case: &str) -> Result<(), ApplyError> {
    tx.put(LINK.key_with(iid, &[case]), b"{}".to_vec());
    if let Some(rec) = tx.get_json::<InteractionRec>(&INTERACTION.key(iid))? {
        refresh_interaction(tx, rec, None)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------- case

fn case(tx: &mut Tx<'_>, e: &Event) -> Result<(), ApplyError> {
    let cid = req(&e.case_id, "case_id")?;
    let k = CASE.key(cid);
    let mut rec: CaseRec = tx.get_json(&k)?.unwrap_or_default();
    rec.case_id = cid.to_string();
    let st = Stamp::of(e);
    match &e.data {
        EventData::CaseOpened(d) => {
            if rec.opened.as_ref().is_none_or(|o| st < o.stamp) {
                rec.opened = Some(Opened {
                    stamp: st.clone(),
                    priority: d.priority().as_str().to_string(),
                });
            }
            set_latest(&mut rec.category, &st, d.category.clone());
            set_latest(&mut rec.tier, &st, d.tier());
            if let Some(origin) = &d.origin_interaction_id {
                link(tx, origin, cid)?;
            }
        }
        EventData::CaseInteractionLinked(_) => {
            link(tx, req(&e.interaction_id, "interaction_id")?, cid)?;
        }
        EventData::CaseCustomerIdentified(_) => {
            set_latest(
                &mut rec.identified,
                &st,
                req(&e.customer_id, "customer_id")?.to_string(),
            );
        }
        EventData::CaseCategorized(d) => set_latest(&mut rec.category, &st, d.category.clone()),
        EventData::CaseEscalated(d) => set_latest(&mut rec.tier, &st, d.to_tier),
        EventData::CaseResolved(_) => set_latest(&mut rec.status, &st, CaseStatus::Resolved),
        EventData::CaseReopened(_) => set_latest(&mut rec.status, &st, CaseStatus::Open),
        EventData::CaseClosed(_) => set_latest(&mut rec.status, &st, CaseStatus::Closed),
        EventData::CaseVoided(_) => {
            if rec.voided.as_ref().is_none_or(|v| st < *v) {
                rec.voided = Some(st.clone());
            }
        }
        EventData::CaseAssigned(_) | EventData::CaseNoteAdded(_) | EventData::CaseResponded(_) => {}
        _ => unreachable!("case events only"),
    }
    if !matches!(e.data, EventData::CaseCustomerIdentified(_)) {
        if let Some(c) = &e.customer_id {
            set_latest(&mut rec.tagged, &st, c.clone());
        }
    }
    let pos = position(&e.occurred_at, &e.event_id);
    let item = summary::item(e);
    tx.put_json(join(&CASE_EVENTS.key(cid), &pos), &item);
    refresh_case(tx, rec, Some((pos, item)))
}

fn open_case_key(customer: &str, opened_at: &DateTime<Utc>, case: &str) -> Vec<u8> {
    join(
        &OPEN_CASE.key(customer),
        &invert(&position(opened_at, case)),
    )
}

/// Brings a case's derived entries (open-case index, counters, timeline)
/// in line with its facts.
fn refresh_case(
    tx: &mut Tx<'_>,
    mut rec: CaseRec,
    new_event: Option<(Vec<u8>, TimelineItem)>,
) -> Result<(), ApplyError> {
    let cid = rec.case_id.clone();
    let status = rec.status();
    let opened_at = rec.opened.as_ref().map(|o| o.stamp.at);
    let new = SyncedCase {
        customer: rec.customer(),
        counted: opened_at.is_some() && status != CaseStatus::Voided,
        open: opened_at.is_some() && status == CaseStatus::Open,
        opened_at,
    };
    let old = rec.synced.take();

    if let Some(SyncedCase {
        customer: Some(c),
        open: true,
        opened_at: Some(t),
        ..
    }) = &old
    {
        tx.delete(open_case_key(c, t, &cid));
    }
    if let (true, Some(c), Some(o)) = (new.open, &new.customer, &rec.opened) {
        let summary = OpenCase {
            case_id: cid.clone(),
            category: rec.category.as_ref().map(|c| c.value.clone()),
            status: status.as_str().to_string(),
            priority: o.priority.clone(),
            tier: rec.tier.as_ref().map(|t| t.value).unwrap_or(1),
            opened_at: crm_events::format_time(&o.stamp.at),
        };
        tx.put_json(open_case_key(c, &o.stamp.at, &cid), &summary);
    }

    let contribution = |s: &SyncedCase| s.customer.clone().map(|c| (c, s.counted, s.open));
    let old_c = old.as_ref().and_then(contribution);
    let new_c = contribution(&new);
    if old_c != new_c {
        if let Some((c, counted, open)) = old_c {
            bump(tx, &c, |k| {
                k.cases_total -= counted as i64;
                k.cases_open -= open as i64;
            })?;
        }
        if let Some((c, counted, open)) = new_c {
            bump(tx, &c, |k| {
                k.cases_total += counted as i64;
                k.cases_open += open as i64;
            })?;
        }
    }

    let old_customer = old.and_then(|o| o.customer);
    if old_customer != new.customer {
        move_timeline(
            tx,
            &CASE_EVENTS.key(&cid),
            old_customer.as_deref(),
            new.customer.as_deref(),
            None,
        )?;
    } else if let (Some(c), Some((pos, item))) = (&new.customer, new_event) {
        put_timeline(tx, c, &pos, &item);
    }

    rec.synced = Some(new);
    tx.put_json(CASE.key(&cid), &rec);
    Ok(())
}
