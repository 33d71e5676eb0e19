//! The derivation of one effective contact from its facts: state, work-list
//! fields, compliance judgement and its contribution to every aggregate
//! slice. A pure function: the same facts give the same bytes, whatever
//! order they were learnt in.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use crm_events::{AttemptChannel, AttemptResult, ConsentPurpose, ContactOutcome};

use crate::keys::{self, esc, tkey};
use crate::model::*;
use crate::query::{
    AssignmentView, AttemptView, ContactItem, ContactState, IdentityView, OutcomeView, Violation,
};

/// Consent for one channel and purpose at one time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Judgement {
    /// Valid; until when (`None`: no expiry).
    Valid(Option<DateTime<Utc>>),
    /// Granted since the last revocation, but every such grant expired.
    Expired,
    /// The last word was a revocation.
    Revoked,
    /// Never granted.
    Missing,
}

/// Judges consent for contact on `ch` for `purpose` at time `at` (`None`:
/// after every known event, expiry not applied). `consents` must be sorted.
///
/// Only events of that purpose whose channel covers `ch` (the same channel
/// or `any`) and that occurred at or before `at` count. The latest such
/// revocation cancels every grant before it; a grant made after it is valid
/// until its `expires_at` (exclusive).
pub(crate) fn judge(
    consents: &[ConsentFact],
    purpose: ConsentPurpose,
    ch: AttemptChannel,
    at: Option<DateTime<Utc>>,
) -> Judgement {
    let mut revoked = false;
    let mut grants: Vec<Option<DateTime<Utc>>> = Vec::new();
    for f in consents
        .iter()
        .filter(|f| f.purpose == purpose && f.channel.covers(ch) && at.is_none_or(|t| f.at <= t))
    {
        if f.granted {
            grants.push(f.expires_at);
        } else {
            revoked = true;
            grants.clear();
        }
    }
    if grants.is_empty() {
        return if revoked {
            Judgement::Revoked
        } else {
            Judgement::Missing
        };
    }
    let live: Vec<Option<DateTime<Utc>>> = grants
        .into_iter()
        .filter(|e| match (at, e) {
            (Some(t), Some(e)) => *e > t,
            _ => true,
        })
        .collect();
    if live.is_empty() {
        return Judgement::Expired;
    }
    if live.iter().any(Option::is_none) {
        Judgement::Valid(None)
    } else {
        Judgement::Valid(live.into_iter().flatten().max())
    }
}

fn reason_of(j: &Judgement) -> Option<&'static str> {
    match j {
        Judgement::Valid(_) => None,
        Judgement::Expired => Some("consent_expired"),
        Judgement::Revoked => Some("consent_revoked"),
        Judgement::Missing => Some("no_consent"),
    }
}

/// A derived contact with the detail behind it (for the contact query).
pub(crate) struct Derivation {
    pub derived: Derived,
    pub assignments: Vec<AssignmentView>,
    pub attempts: Vec<AttemptView>,
    pub outcomes: Vec<OutcomeView>,
}

fn by_time<T: Timed>(a: &T, b: &T) -> std::cmp::Ordering {
    (a.at(), a.event_id()).cmp(&(b.at(), b.event_id()))
}

/// Derives the effective contact `r` of campaign `k` from the facts of the
/// group's customer ids that are contacts (`facts`, at least one) and the
/// consent and do-not-contact facts of every id of the group.
pub(crate) fn derive(
    cfg: &Config,
    r: &str,
    facts: &[(String, ContactFacts)],
    mut consents: Vec<ConsentFact>,
    mut dnc: Vec<DncFact>,
) -> Derivation {
    sort_timed(&mut consents);
    sort_timed(&mut dnc);
    let mut added: Vec<&AddedFact> = facts.iter().flat_map(|(_, f)| &f.added).collect();
    added.sort_by(|a, b| by_time(*a, *b));
    let mut assignments: Vec<&AssignFact> =
        facts.iter().flat_map(|(_, f)| &f.assignments).collect();
    assignments.sort_by(|a, b| by_time(*a, *b));
    let mut attempts: Vec<(&str, &AttemptFact)> = facts
        .iter()
        .flat_map(|(c, f)| f.attempts.iter().map(move |a| (c.as_str(), a)))
        .collect();
    attempts.sort_by(|a, b| by_time(a.1, b.1));
    let mut outcomes: Vec<(&str, &OutcomeFact)> = facts
        .iter()
        .flat_map(|(c, f)| f.outcomes.iter().map(move |o| (c.as_str(), o)))
        .collect();
    outcomes.sort_by(|a, b| by_time(a.1, b.1));

    let purpose = cfg.consent_required();
    let agent_at = |t: DateTime<Utc>| -> Option<String> {
        assignments
            .iter()
            .rev()
            .find(|s| s.at <= t)
            .and_then(|s| s.agent.clone())
    };
    let current_agent = assignments.last().and_then(|s| s.agent.clone());
    let attempt_agent = |a: &AttemptFact| a.agent.clone().or_else(|| agent_at(a.at));
    // The attempt an outcome follows: the latest at or before it.
    let anchor = |o: &OutcomeFact| {
        attempts
            .iter()
            .rev()
            .find(|(_, a)| a.at <= o.at)
            .map(|(_, a)| *a)
    };
    let outcome_agent = |o: &OutcomeFact| {
        o.agent
            .clone()
            .or_else(|| anchor(o).and_then(attempt_agent))
            .or_else(|| agent_at(o.at))
    };

    // ---- compliance, judged at each attempt's occurred_at
    let attempt_reasons: Vec<Vec<String>> = attempts
        .iter()
        .map(|(_, a)| {
            let mut reasons = Vec::new();
            if dnc.iter().any(|d| d.at < a.at) {
                reasons.push("do_not_contact".to_string());
            }
            if let Some(p) = purpose {
                if let Some(r) = reason_of(&judge(&consents, p, a.channel, Some(a.at))) {
                    reasons.push(r.to_string());
                }
            }
            reasons
        })
        .collect();

    // ---- may the contact be contacted (as of every known event)?
    let (consent_reason, consent_until) = match purpose {
        None => (None, None),
        Some(p) => {
            let js: Vec<Judgement> = cfg
                .channels()
                .iter()
                .map(|ch| judge(&consents, p, *ch, None))
                .collect();
            let valid: Vec<Option<DateTime<Utc>>> = js
                .iter()
                .filter_map(|j| match j {
                    Judgement::Valid(u) => Some(*u),
                    _ => None,
                })
                .collect();
            if valid.is_empty() {
                let reason = if js.contains(&Judgement::Revoked) {
                    "consent_revoked"
                } else {
                    "no_consent"
                };
                (Some(reason), None)
            } else if valid.iter().any(Option::is_none) {
                (None, None)
            } else {
                (None, valid.into_iter().flatten().max())
            }
        }
    };
    let suppressed_reason = if dnc.is_empty() {
        consent_reason
    } else {
        Some("do_not_contact")
    };

    // ---- state
    let n = attempts.len();
    let reached = attempts.iter().any(|(_, a)| a.reached());
    let last = attempts.last().map(|(_, a)| *a);
    let latest = outcomes.last().map(|(_, o)| *o);
    let callback = latest.filter(|o| {
        o.outcome == ContactOutcome::CallbackRequested && !attempts.iter().any(|(_, a)| a.at > o.at)
    });
    let state = if suppressed_reason.is_some() {
        ContactState::Suppressed
    } else if callback.is_some() {
        ContactState::Callback
    } else if latest.is_some_and(|o| o.outcome != ContactOutcome::CallbackRequested) {
        ContactState::Done
    } else if n == 0 {
        ContactState::Pending
    } else if last.is_some_and(|a| {
        matches!(
            a.result,
            AttemptResult::Busy | AttemptResult::NoAnswer | AttemptResult::Voicemail
        )
    }) && (n as u64) < u64::from(cfg.max_attempts)
    {
        ContactState::Retry
    } else {
        ContactState::Done
    };

    // ---- violations
    let mut violations = Vec::new();
    for ((c, a), reasons) in attempts.iter().zip(&attempt_reasons) {
        if !reasons.is_empty() {
            violations.push(Violation {
                customer_id: r.to_string(),
                attempt_customer_id: c.to_string(),
                attempt_event_id: a.event_id.clone(),
                occurred_at: a.at,
                channel: a.channel.as_str().to_string(),
                agent_id: attempt_agent(a),
                reason: reasons[0].clone(),
                reasons: reasons.clone(),
            });
        }
    }

    let item = ContactItem {
        customer_id: r.to_string(),
        state,
        attempts: n as u64,
        last_result: last.map(|a| a.result.as_str().to_string()),
        last_attempt_at: last.map(|a| a.at),
        last_outcome: latest.map(|o| o.outcome.as_str().to_string()),
        callback_at: callback.and_then(|o| o.callback_at),
        overdue: None,
        agent_id: current_agent.clone(),
        violations: violations.len() as u64,
        suppressed_reason: suppressed_reason.map(str::to_string),
        consent_expires_at: if suppressed_reason.is_none() {
            consent_until
        } else {
            None
        },
        identity: added
            .iter()
            .rev()
            .find_map(|a| a.identity.as_ref())
            .map(|i| IdentityView {
                kind: i.kind.as_str().to_string(),
                value: i.value.clone(),
            }),
        merged_ids: facts
            .iter()
            .map(|(c, _)| c.clone())
            .filter(|c| c != r)
            .collect(),
    };

    // ---- contributions to the aggregate slices
    let mut contrib: BTreeMap<String, Counts> = BTreeMap::new();
    {
        let t = contrib.entry(keys::TOTAL.to_string()).or_default();
        t.contacts = 1;
        t.attempted = i64::from(n > 0);
        t.reached = i64::from(reached);
        t.attempts = n as i64;
        t.violations = violations.len() as i64;
        t.states.insert(state.as_str().to_string(), 1);
        t.callbacks_pending = i64::from(state == ContactState::Callback);
        if let Some(l) = latest {
            t.outcomes.insert(l.outcome.as_str().to_string(), 1);
            t.converted_reached = i64::from(l.outcome == ContactOutcome::Converted && reached);
        }
        t.value_micros = outcomes
            .iter()
            .filter_map(|(_, o)| o.value_micros)
            .fold(0i64, i64::saturating_add);
    }
    let mut attempted_in: BTreeSet<String> = BTreeSet::new();
    let mut reached_in: BTreeSet<String> = BTreeSet::new();
    for ((_, a), reasons) in attempts.iter().zip(&attempt_reasons) {
        let mut slices = vec![
            keys::channel_slice(a.channel.as_str()),
            keys::day_slice(&keys::day(&a.at)),
        ];
        if let Some(ag) = attempt_agent(a) {
            slices.push(keys::agent_slice(&ag));
        }
        for s in slices {
            let e = contrib.entry(s.clone()).or_default();
            e.attempts += 1;
            e.violations += i64::from(!reasons.is_empty());
            if a.reached() {
                reached_in.insert(s.clone());
            }
            attempted_in.insert(s);
        }
    }
    for s in &attempted_in {
        let e = contrib.get_mut(s).expect("entry exists");
        e.attempted = 1;
        e.reached = i64::from(reached_in.contains(s));
        if !s.starts_with("a/") {
            e.contacts = 1;
        }
    }
    if let Some(ag) = &current_agent {
        let e = contrib.entry(keys::agent_slice(ag)).or_default();
        e.contacts = 1;
        e.states.insert(state.as_str().to_string(), 1);
        e.callbacks_pending = i64::from(state == ContactState::Callback);
    }
    let outcome_slices = |o: &OutcomeFact| -> Vec<String> {
        let a = anchor(o);
        let mut v = vec![keys::day_slice(&keys::day(&a.map_or(o.at, |a| a.at)))];
        if let Some(a) = a {
            v.push(keys::channel_slice(a.channel.as_str()));
        }
        if let Some(ag) = outcome_agent(o) {
            v.push(keys::agent_slice(&ag));
        }
        v
    };
    for (_, o) in &outcomes {
        if let Some(m) = o.value_micros.filter(|m| *m != 0) {
            for s in outcome_slices(o) {
                let e = contrib.entry(s).or_default();
                e.value_micros = e.value_micros.saturating_add(m);
            }
        }
    }
    if let Some(l) = latest {
        for s in outcome_slices(l) {
            let is_reached = reached_in.contains(&s);
            let e = contrib.entry(s).or_default();
            e.outcomes.insert(l.outcome.as_str().to_string(), 1);
            e.converted_reached = i64::from(l.outcome == ContactOutcome::Converted && is_reached);
        }
    }
    contrib.retain(|_, c| !c.is_zero());

    // ---- detail
    let assignments_view = assignments
        .iter()
        .map(|s| AssignmentView {
            event_id: s.event_id.clone(),
            occurred_at: s.at,
            agent_id: s.agent.clone(),
        })
        .collect();
    let attempts_view = attempts
        .iter()
        .zip(&attempt_reasons)
        .map(|((c, a), reasons)| AttemptView {
            event_id: a.event_id.clone(),
            occurred_at: a.at,
            customer_id: c.to_string(),
            channel: a.channel.as_str().to_string(),
            result: a.result.as_str().to_string(),
            reached: a.reached(),
            agent_id: attempt_agent(a),
            interaction_id: a.interaction_id.clone(),
            violation_reasons: reasons.clone(),
        })
        .collect();
    let outcomes_view = outcomes
        .iter()
        .map(|(c, o)| OutcomeView {
            event_id: o.event_id.clone(),
            occurred_at: o.at,
            customer_id: c.to_string(),
            outcome: o.outcome.as_str().to_string(),
            callback_at: o.callback_at,
            value: o.value_micros.map(from_micros),
            agent_id: outcome_agent(o),
        })
        .collect();

    Derivation {
        derived: Derived {
            item,
            contrib,
            violations,
        },
        assignments: assignments_view,
        attempts: attempts_view,
        outcomes: outcomes_view,
    }
}

/// The sort component of a contact's state-index key: callbacks by
/// `callback_at` (due first), retries by last attempt (longest waiting
/// first), the rest by customer id alone.
fn sort_component(item: &ContactItem) -> String {
    match item.state {
        ContactState::Callback => item.callback_at.map(|t| tkey(&t)).unwrap_or_default(),
        ContactState::Retry => item.last_attempt_at.map(|t| tkey(&t)).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The index entries a derived contact owns: `st/` (by state), `sa/` (by
/// agent and state), `ex/` (consent expiry) and `vi/` (violations).
pub(crate) fn index_entries(k: &str, d: &Derived) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    let item = serde_json::to_vec(&d.item).expect("serialises");
    let state = d.item.state.as_str();
    let sort = sort_component(&d.item);
    let r = esc(&d.item.customer_id);
    m.insert(
        format!("{}{}/{}", keys::state_prefix(k, state), sort, r),
        item.clone(),
    );
    if let Some(a) = &d.item.agent_id {
        m.insert(
            format!("{}{}/{}", keys::agent_state_prefix(k, a, state), sort, r),
            item.clone(),
        );
    }
    if d.item.state != ContactState::Suppressed {
        if let Some(u) = &d.item.consent_expires_at {
            m.insert(
                format!("{}{}/{}", keys::expiry_prefix(k), tkey(u), r),
                item.clone(),
            );
        }
    }
    for v in &d.violations {
        m.insert(
            // The survivor's id keeps the key owned by this contact alone
            // while a merge moves the attempt from one contact to another.
            format!(
                "{}{}/{}/{}",
                keys::violation_prefix(k),
                tkey(&v.occurred_at),
                esc(&v.attempt_event_id),
                r
            ),
            serde_json::to_vec(v).expect("serialises"),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_events::ConsentChannel;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn fact(
        id: &str,
        t: &str,
        granted: bool,
        channel: ConsentChannel,
        expires: Option<&str>,
    ) -> ConsentFact {
        ConsentFact {
            at: at(t),
            event_id: id.into(),
            granted,
            channel,
            purpose: ConsentPurpose::Marketing,
            expires_at: expires.map(at),
        }
    }

    #[test]
    fn the_latest_revocation_cancels_earlier_grants_and_later_grants_count_until_expiry() {
        use AttemptChannel::*;
        use ConsentChannel as C;
        let mut fs = vec![
            fact("1", "2026-11-01T00:00:00Z", true, C::Any, None),
            fact("2", "2026-11-02T00:00:00Z", false, C::Phone, None),
            fact(
                "3",
                "2026-11-03T00:00:00Z",
                true,
                C::Phone,
                Some("2026-11-05T00:00:00Z"),
            ),
        ];
        sort_timed(&mut fs);
        let p = ConsentPurpose::Marketing;
        let j = |ch, t: &str| judge(&fs, p, ch, Some(at(t)));
        assert_eq!(j(Phone, "2026-10-31T00:00:00Z"), Judgement::Missing);
        assert_eq!(j(Phone, "2026-11-01T12:00:00Z"), Judgement::Valid(None));
        assert_eq!(j(Phone, "2026-11-02T12:00:00Z"), Judgement::Revoked);
        assert_eq!(
            j(Email, "2026-11-02T12:00:00Z"),
            Judgement::Valid(None),
            "a phone revocation leaves email"
        );
        assert_eq!(
            j(Phone, "2026-11-04T00:00:00Z"),
            Judgement::Valid(Some(at("2026-11-05T00:00:00Z")))
        );
        assert_eq!(
            j(Phone, "2026-11-05T00:00:00Z"),
            Judgement::Expired,
            "expires_at is exclusive"
        );
        assert_eq!(
            judge(&fs, p, Phone, None),
            Judgement::Valid(Some(at("2026-11-05T00:00:00Z")))
        );
        assert_eq!(
            judge(&fs, ConsentPurpose::Survey, Phone, None),
            Judgement::Missing
        );
    }

    #[test]
    fn ties_in_time_are_broken_by_event_id() {
        use ConsentChannel as C;
        let mut fs = vec![
            fact("b", "2026-11-01T00:00:00Z", false, C::Any, None),
            fact("a", "2026-11-01T00:00:00Z", true, C::Any, None),
        ];
        sort_timed(&mut fs);
        assert_eq!(
            judge(&fs, ConsentPurpose::Marketing, AttemptChannel::Sms, None),
            Judgement::Revoked
        );
    }
}
