//! # crm-cases: the case history read model
//!
//! Projection `cases` serves `GET /v1/cases/{id}` ([`query::get_case`]) and
//! `GET /v1/cases?customer_id=&status=&category=&queue=&tier=`
//! ([`query::list_cases`]), plus counts per filter ([`query::count_cases`]).
//!
//! ## Model
//! A case is a business request, not a call. The projection folds three
//! families and keeps each as the facts its own stream carries:
//!
//! * **case.\*** (stream `case_id`): every event is stored as a history entry
//!   keyed `(case, occurred_at, seq)`, `seq` being its position in the case
//!   stream, so the history is in event-time order with ties in stream
//!   order. The case record is the fold of `case.opened` followed by every
//!   other event of the case in that same `(occurred_at, seq)` order. An event
//!   that sorts after everything folded so far is folded in place; one that
//!   sorts earlier (a late publish with an older `occurred_at`) makes the case
//!   refold from its own history (bounded by the case's size).
//!   Events that arrive before their `case.opened` are stored, parked in the
//!   dead letters (`waiting for case.opened`), and folded (and their dead
//!   letters cleared) when `case.opened` arrives. A second `case.opened` is an
//!   error (dead-lettered), never merged into the case.
//! * **interaction.started / interaction.recorded** (stream
//!   `interaction_id`): the start of every interaction (channel, direction,
//!   time), the earliest by `(occurred_at, event_id)`. A case joins its
//!   interactions at query time, so it does not matter which stream arrives
//!   first. An interaction may be gathered by many cases and a case gathers
//!   many interactions (`origin_interaction_id`, `case.interaction_linked`).
//! * **customer.merged / customer.unmerged** (stream of the survivor): the
//!   merge graph as edges `merged -> survivor`, active while the latest event
//!   of the pair (by `(occurred_at, event_id)`) is a merge. A case keeps the
//!   customer its own events name; queries resolve it to the current survivor
//!   (transitively).
//!
//! Because the state only holds facts of single streams, and everything that
//! combines streams is computed when a query is answered, the stored state
//! is byte for byte the same for every delivery order that keeps each
//! stream's order.
//!
//! ## Figures (all from event times; `now` only where stated)
//! * `time_to_first_response_seconds` = first `case.responded` − `opened_at`.
//! * `time_to_resolution_seconds` = the resolution in effect (the last
//!   `case.resolved` after the last reopen; a case closed without one: its
//!   `case.closed`) − `opened_at`; `null` while open or when voided.
//!   Durations are never negative (an event stamped before the opening
//!   counts as 0).
//! * `sla.first_response_breached`: responded after the due time; not
//!   responded: the case stopped (resolved, closed) after the due time, or,
//!   while still open, `now` is past it. `sla.resolve_breached`: the
//!   resolution in effect (else the close) came after the due time, or, while
//!   open (including reopened), `now` is past it. So a reopened case is judged
//!   on its final resolution. Both are `null` without a due time and for a
//!   voided case (voided cases are left out of every SLA figure and count).
//!
//! See `docs/cases.md` for the key layout and every choice made where the
//! contract is silent.

use crm_events::{Event, EventData};
use crm_projection::{ApplyError, KvRead, Projection, Tx};

mod keys;
pub mod model;
pub mod query;

pub use model::Status;
pub use query::{
    count_cases, get_case, list_cases, waiting_cases, CaseCountParams, CaseCounts, CaseInteraction,
    CaseListParams, CaseSla, CaseSummary, CaseView, EscalationView, HistoryEntry,
};

use model::{CaseRecord, InteractionStart, Link, MergeEdge, Pending};

/// The `cases` projection.
pub struct CasesProjection;

impl Projection for CasesProjection {
    fn name(&self) -> &'static str {
        "cases"
    }

    fn format_version(&self) -> u32 {
        1
    }

    fn apply(&self, tx: &mut Tx<'_>, event: &Event) -> Result<(), ApplyError> {
        match &event.data {
            EventData::InteractionStarted(_) | EventData::InteractionRecorded(_) => {
                apply_interaction_start(tx, event)
            }
            EventData::CustomerMerged(d) => apply_merge(tx, event, &d.merged_customer_id, true),
            EventData::CustomerUnmerged(d) => apply_merge(tx, event, &d.merged_customer_id, false),
            d if d.event_type().stream_kind() == crm_events::StreamKind::Case => {
                apply_case_event(tx, event)
            }
            _ => Ok(()),
        }
    }
}

fn required<'a>(v: Option<&'a str>, field: &str) -> Result<&'a str, ApplyError> {
    v.ok_or_else(|| ApplyError(format!("{field} is missing")))
}

/// Records the state of the merge `merged -> survivor`: the latest
/// `customer.merged`/`customer.unmerged` of the pair by
/// `(occurred_at, event_id)` decides it (an unmerge leaves an inactive edge
/// so that an older merge published later cannot revive it).
fn apply_merge(
    tx: &mut Tx<'_>,
    event: &Event,
    merged: &str,
    active: bool,
) -> Result<(), ApplyError> {
    let survivor = required(event.customer_id.as_deref(), "customer_id")?;
    let edge = MergeEdge {
        survivor: survivor.to_string(),
        merged: merged.to_string(),
        active,
        at: event.occurred_at,
        event_id: event.event_id.clone(),
    };
    let key_in = keys::key2(keys::MERGE_IN, survivor, merged);
    if let Some(old) = tx.get_json::<MergeEdge>(&key_in)? {
        if old.stamp() >= edge.stamp() {
            return Ok(());
        }
    }
    tx.put_json(key_in, &edge);
    tx.put_json(keys::key2(keys::MERGE_OUT, merged, survivor), &edge);
    Ok(())
}

fn apply_interaction_start(tx: &mut Tx<'_>, event: &Event) -> Result<(), ApplyError> {
    let Some(start) = InteractionStart::from_event(event) else {
        return Err(ApplyError("interaction_id is missing".into()));
    };
    let key = keys::key1(keys::INTERACTION, &start.interaction_id);
    let keep = match tx.get_json::<InteractionStart>(&key)? {
        Some(old) => start.before(&old),
        None => true,
    };
    if keep {
        tx.put_json(key, &start);
    }
    Ok(())
}

/// The event as kept in history: everything but the ledger's `recorded_at`.
fn stored(event: &Event) -> Vec<u8> {
    let mut e = event.clone();
    e.recorded_at = None;
    serde_json::to_vec(&e).expect("an event serialises")
}

fn put_link(tx: &mut Tx<'_>, case_id: &str, link: Link) -> Result<(), ApplyError> {
    let key = keys::key2(keys::LINK, case_id, &link.interaction_id);
    let link = match tx.get_json::<Link>(&key)? {
        Some(old) => old.merge(link),
        None => link,
    };
    tx.put_json(key, &link);
    Ok(())
}

/// The interaction an event of the case links, if any.
fn link_of(event: &Event) -> Option<Link> {
    let (id, origin) = match &event.data {
        EventData::CaseOpened(d) => (d.origin_interaction_id.clone()?, true),
        EventData::CaseInteractionLinked(_) => (event.interaction_id.clone()?, false),
        _ => return None,
    };
    Some(Link {
        interaction_id: id,
        origin,
        linked_at: event.occurred_at,
        event_id: event.event_id.clone(),
    })
}

fn apply_case_event(tx: &mut Tx<'_>, event: &Event) -> Result<(), ApplyError> {
    let case_id = required(event.case_id.as_deref(), "case_id")?.to_string();
    let case_key = keys::key1(keys::CASE, &case_id);
    let existing: Option<CaseRecord> = tx.get_json(&case_key)?;
    let opening = matches!(event.data, EventData::CaseOpened(_));

    match existing {
        Some(rec) if opening => Err(ApplyError(format!(
            "case {case_id} was already opened by event {}; a second case.opened is not applied",
            rec.opened_event_id
        ))),
        Some(mut rec) => {
            let seq = rec.next_seq;
            tx.put(
                keys::history(&case_id, &event.occurred_at, seq),
                stored(event),
            );
            if let Some(link) = link_of(event) {
                put_link(tx, &case_id, link)?;
            }
            let before = rec.index_keys();
            if rec.folds_in_place(event.occurred_at, seq) {
                rec.fold(event, seq);
                rec.next_seq = seq + 1;
            } else {
                rec = refold(tx, &case_id, seq + 1)?.0;
            }
            write_case(tx, &case_key, &rec, before);
            Ok(())
        }
        None if opening => {
            let pending_key = keys::key1(keys::PENDING, &case_id);
            let pending: Option<Pending> = tx.get_json(&pending_key)?;
            let seq = pending.as_ref().map_or(0, |p| p.next_seq);
            tx.put(
                keys::history(&case_id, &event.occurred_at, seq),
                stored(event),
            );
            if let Some(link) = link_of(event) {
                put_link(tx, &case_id, link)?;
            }
            let (rec, waited) = refold(tx, &case_id, seq + 1)?;
            if pending.is_some() {
                // Everything but this event was waiting: applied now.
                tx.delete(pending_key);
                for id in waited.iter().filter(|id| **id != event.event_id) {
                    tx.clear_dead_letter(id);
                }
            }
            write_case(tx, &case_key, &rec, Default::default());
            Ok(())
        }
        None => {
            let pending_key = keys::key1(keys::PENDING, &case_id);
            let mut pending: Pending = tx.get_json(&pending_key)?.unwrap_or_default();
            let seq = pending.next_seq;
            pending.next_seq += 1;
            tx.put_json(pending_key, &pending);
            tx.put(
                keys::history(&case_id, &event.occurred_at, seq),
                stored(event),
            );
            if let Some(link) = link_of(event) {
                put_link(tx, &case_id, link)?;
            }
            tx.dead_letter(
                event,
                format!(
                    "waiting for case.opened of case {case_id}: kept and applied when it arrives"
                ),
                true,
            );
            Ok(())
        }
    }
}

/// Rebuilds the record of an opened case from its history: `case.opened`
/// first, then the rest in `(occurred_at, seq)` order (the key order).
/// Also returns the ids of the events folded.
fn refold(
    tx: &Tx<'_>,
    case_id: &str,
    next_seq: u64,
) -> Result<(CaseRecord, Vec<String>), ApplyError> {
    let entries = tx.scan_all(&keys::key1(keys::HISTORY, case_id))?;
    let mut events = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let seq = keys::history_seq(&k).ok_or_else(|| ApplyError("bad history key".into()))?;
        let e: Event = serde_json::from_slice(&v)?;
        events.push((seq, e));
    }
    let (open_seq, opened) = events
        .iter()
        .find(|(_, e)| matches!(e.data, EventData::CaseOpened(_)))
        .ok_or_else(|| ApplyError(format!("case {case_id} has no case.opened in its history")))?;
    let mut rec =
        CaseRecord::open(opened, *open_seq).ok_or_else(|| ApplyError("bad case.opened".into()))?;
    for (seq, e) in &events {
        if !matches!(e.data, EventData::CaseOpened(_)) {
            rec.fold(e, *seq);
        }
    }
    rec.next_seq = next_seq;
    Ok((rec, events.into_iter().map(|(_, e)| e.event_id).collect()))
}

fn write_case(
    tx: &mut Tx<'_>,
    case_key: &[u8],
    rec: &CaseRecord,
    before: std::collections::BTreeSet<Vec<u8>>,
) {
    let after = rec.index_keys();
    for gone in before.difference(&after) {
        tx.delete(gone.clone());
    }
    for new in after.difference(&before) {
        tx.put(new.clone(), Vec::new());
    }
    tx.put_json(case_key.to_vec(), rec);
}

/// Resolves a customer id to its current survivor: follows the active merge
/// edges (when a customer is merged into several survivors at once, the
/// latest merge by `(occurred_at, event_id)` wins). A cycle of merges (bad
/// data upstream) is broken at its oldest edge: the merged customer of that
/// edge is the survivor of the whole cycle. The customers projection uses the
/// same rules, so both answer with the same survivor.
pub(crate) fn resolve_customer(
    kv: &dyn KvRead,
    id: &str,
) -> Result<String, crm_projection::StoreError> {
    let mut path: Vec<MergeEdge> = Vec::new();
    let mut current = id.to_string();
    loop {
        let Some(edge) = current_survivor(kv, &current)? else {
            return Ok(current);
        };
        if let Some(pos) = path.iter().position(|e| e.merged == edge.survivor) {
            let oldest = path[pos..]
                .iter()
                .chain(std::iter::once(&edge))
                .min_by(|a, b| a.stamp().cmp(&b.stamp()))
                .expect("a cycle has edges");
            return Ok(oldest.merged.clone());
        }
        current = edge.survivor.clone();
        path.push(edge);
    }
}

/// The active merge edge out of `id` that is in force, if any.
pub(crate) fn current_survivor(
    kv: &dyn KvRead,
    id: &str,
) -> Result<Option<MergeEdge>, crm_projection::StoreError> {
    let mut best: Option<MergeEdge> = None;
    for (_, v) in kv.scan(&keys::key1(keys::MERGE_OUT, id), None, usize::MAX)? {
        let edge: MergeEdge = serde_json::from_slice(&v)
            .map_err(|e| crm_projection::StoreError(format!("undecodable value: {e}")))?;
        if edge.active && best.as_ref().is_none_or(|b| edge.stamp() > b.stamp()) {
            best = Some(edge);
        }
    }
    Ok(best)
}

/// Every customer whose cases show under `survivor` (itself included):
/// those that resolve to it through active merges.
pub(crate) fn merge_group(
    kv: &dyn KvRead,
    survivor: &str,
) -> Result<Vec<String>, crm_projection::StoreError> {
    let mut group = std::collections::BTreeSet::new();
    group.insert(survivor.to_string());
    let mut todo = vec![survivor.to_string()];
    while let Some(s) = todo.pop() {
        for (_, v) in kv.scan(&keys::key1(keys::MERGE_IN, &s), None, usize::MAX)? {
            let edge: MergeEdge = serde_json::from_slice(&v)
                .map_err(|e| crm_projection::StoreError(format!("undecodable value: {e}")))?;
            let merged = edge.merged;
            if edge.active && !group.contains(&merged) && resolve_customer(kv, &merged)? == survivor
            {
                group.insert(merged.clone());
                todo.push(merged);
            }
        }
    }
    Ok(group.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_projection::testkit::{events, fold};
    use proptest::prelude::*;
    use serde_json::json;

    const TYPES: [&str; 11] = [
        "case.categorized",
        "case.assigned",
        "case.escalated",
        "case.note_added",
        "case.responded",
        "case.resolved",
        "case.reopened",
        "case.closed",
        "case.voided",
        "case.customer_identified",
        "case.interaction_linked",
    ];

    fn case_event(n: usize, kind: usize, minute: u32) -> serde_json::Value {
        let ty = TYPES[kind % TYPES.len()];
        let data = match ty {
            "case.categorized" => json!({"category": format!("cat-{}", minute % 3)}),
            "case.assigned" => json!({"queue": format!("q-{}", minute % 2)}),
            "case.escalated" => json!({"to_tier": minute % 3 + 1}),
            "case.note_added" => json!({"text": "n"}),
            "case.resolved" => json!({"resolution": "r"}),
            "case.voided" => json!({"reason": "test"}),
            _ => json!({}),
        };
        let mut e = json!({"event_id": format!("e{n}"), "type": ty, "source": "t", "case_id": "k",
            "occurred_at": format!("2026-11-20T09:{:02}:00Z", minute % 60), "agent_id": "ag", "data": data});
        if ty == "case.customer_identified" {
            e["customer_id"] = json!(format!("cu-{}", minute % 2));
        }
        if ty == "case.interaction_linked" {
            e["interaction_id"] = json!(format!("i-{}", minute % 2));
        }
        e
    }

    proptest! {
        /// Folding in place as events arrive and refolding from the history
        /// give the same record, wherever `case.opened` sits in the stream.
        #[test]
        fn in_place_fold_equals_refold(
            ops in proptest::collection::vec((0..TYPES.len(), 0u32..60), 0..25),
            open_at in 0usize..25,
            open_minute in 0u32..60,
        ) {
            let mut values: Vec<serde_json::Value> =
                ops.iter().enumerate().map(|(n, (k, m))| case_event(n, *k, *m)).collect();
            let open = json!({"event_id": "open", "type": "case.opened", "source": "t", "case_id": "k",
                "occurred_at": format!("2026-11-20T09:{open_minute:02}:00Z"), "data": {"category": "c"}});
            values.insert(open_at.min(values.len()), open);
            let store = fold(&CasesProjection, &events(values));
            let stored: CaseRecord = crm_projection::get_json(&store, &keys::key1(keys::CASE, "k")).unwrap().unwrap();
            let tx = Tx::new(&store);
            let (refolded, _) = refold(&tx, "k", stored.next_seq).unwrap();
            prop_assert_eq!(&stored, &refolded);
            let index: Vec<Vec<u8>> = store.map.keys().filter(|k| k.starts_with(b"x/")).cloned().collect();
            prop_assert_eq!(index, refolded.index_keys().into_iter().collect::<Vec<_>>());
            prop_assert!(store.map.keys().all(|k| !k.starts_with(keys::PENDING)));
            prop_assert!(store.map.keys().all(|k| !k.starts_with(crm_projection::DEAD_LETTER_PREFIX)));
        }
    }
}
