//! One-line summaries and timeline items of events.

use crm_events::{Event, EventData, Identity};

use crate::query::TimelineItem;

const MAX_TEXT: usize = 120;

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn ident(i: &Identity) -> String {
    format!("{} {}", i.kind.as_str(), i.value)
}

/// The timeline item of an event. For interaction events `channel` is left
/// empty here: it is the interaction's channel, filled when the item is
/// written into a customer's timeline.
pub fn item(e: &Event) -> TimelineItem {
    let mut interaction_id = e.interaction_id.clone();
    let channel = match &e.data {
        EventData::ConsentGranted(d) => Some(d.channel.as_str().to_string()),
        EventData::ConsentRevoked(d) => Some(d.channel.as_str().to_string()),
        EventData::CaseResponded(d) => {
            if interaction_id.is_none() {
                interaction_id = d.interaction_id.clone();
            }
            d.channel.map(|c| c.as_str().to_string())
        }
        EventData::CampaignAttemptMade(d) => {
            if interaction_id.is_none() {
                interaction_id = d.interaction_id.clone();
            }
            Some(d.channel.as_str().to_string())
        }
        EventData::CaseOpened(d) => {
            if interaction_id.is_none() {
                interaction_id = d.origin_interaction_id.clone();
            }
            None
        }
        _ => None,
    };
    TimelineItem {
        event_id: e.event_id.clone(),
        event_type: e.event_type().as_str().to_string(),
        occurred_at: crm_events::format_time(&e.occurred_at),
        interaction_id,
        case_id: e.case_id.clone(),
        campaign_id: e.campaign_id.clone(),
        channel,
        agent_id: e.agent_id.clone(),
        summary: summary(e),
    }
}

/// A short human-readable line for the event.
pub fn summary(e: &Event) -> String {
    let agent = e.agent_id.as_deref();
    match &e.data {
        EventData::CustomerRegistered(d) => match &d.name {
            Some(n) => format!("registered as {}", clip(n)),
            None => "registered".into(),
        },
        EventData::CustomerProfileUpdated(d) => {
            let mut parts = vec![];
            if d.name.is_some() {
                parts.push("name".to_string());
            }
            parts.extend(d.attributes.keys().cloned());
            if parts.is_empty() {
                "profile updated".into()
            } else {
                clip(&format!("profile updated: {}", parts.join(", ")))
            }
        }
        EventData::CustomerIdentityAdded(d) => format!(
            "identity added: {}{}",
            ident(&d.identity),
            if d.verified { " (verified)" } else { "" }
        ),
        EventData::CustomerIdentityRemoved(d) => {
            format!("identity removed: {}", ident(&d.identity))
        }
        EventData::CustomerMerged(d) => format!(
            "customer {} merged into {}",
            d.merged_customer_id,
            e.customer_id.as_deref().unwrap_or("?")
        ),
        EventData::CustomerUnmerged(d) => format!(
            "customer {} unmerged from {}",
            d.merged_customer_id,
            e.customer_id.as_deref().unwrap_or("?")
        ),
        EventData::ConsentGranted(d) => match d.expires_at {
            Some(x) => format!(
                "consent granted: {} by {} until {}",
                d.purpose,
                d.channel,
                crm_events::format_time(&x)
            ),
            None => format!("consent granted: {} by {}", d.purpose, d.channel),
        },
        EventData::ConsentRevoked(d) => format!("consent revoked: {} by {}", d.purpose, d.channel),
        EventData::InteractionStarted(d) => {
            let mut s = format!("{} {} started", d.direction, d.channel);
            if let Some(q) = &d.queue {
                s.push_str(&format!(" (queue {q})"));
            }
            if let Some(sub) = &d.subject {
                s.push_str(&format!(": {}", clip(sub)));
            }
            s
        }
        EventData::InteractionMessage(d) => {
            let text = d.subject.as_deref().or(d.text.as_deref());
            match text {
                Some(t) => format!("message from {}: {}", d.author, clip(t)),
                None => format!("message from {}", d.author),
            }
        }
        EventData::InteractionAssigned(d) => {
            let mut s = match agent {
                Some(a) => format!("assigned to {a}"),
                None => "assigned".to_string(),
            };
            if let Some(q) = &d.queue {
                s.push_str(&format!(" (queue {q})"));
            }
            s
        }
        EventData::InteractionTransferred(d) => {
            let to: Vec<String> = [
                d.to_queue.as_ref().map(|q| format!("queue {q}")),
                d.to_agent_id.clone(),
                d.tier.map(|t| format!("tier {t}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if to.is_empty() {
                "transferred".into()
            } else {
                format!("transferred to {}", to.join(", "))
            }
        }
        EventData::InteractionEnded(d) => match d.durations.talk_seconds {
            Some(t) => format!("ended: {} (talk {t}s)", d.outcome),
            None => format!("ended: {}", d.outcome),
        },
        EventData::InteractionRecorded(d) => {
            let mut s = format!("{} {}", d.direction, d.channel);
            if let Some(o) = d.outcome {
                s.push_str(&format!(" ({o})"));
            }
            if let Some(sub) = &d.subject {
                s.push_str(&format!(": {}", clip(sub)));
            }
            s
        }
        EventData::InteractionIdentified(d) => {
            let who = e.customer_id.as_deref().unwrap_or("?");
            match d.method {
                Some(m) => format!("identified as {who} ({m})"),
                None => format!("identified as {who}"),
            }
        }
        EventData::CaseOpened(d) => {
            let mut s = format!("case opened: {}", d.category);
            if let Some(sc) = &d.subcategory {
                s.push_str(&format!("/{sc}"));
            }
            if let Some(sub) = &d.subject {
                s.push_str(&format!(": {}", clip(sub)));
            }
            s
        }
        EventData::CaseInteractionLinked(_) => format!(
            "interaction {} linked to the case",
            e.interaction_id.as_deref().unwrap_or("?")
        ),
        EventData::CaseCustomerIdentified(_) => format!(
            "case customer identified: {}",
            e.customer_id.as_deref().unwrap_or("?")
        ),
        EventData::CaseCategorized(d) => match &d.subcategory {
            Some(sc) => format!("case categorized: {}/{sc}", d.category),
            None => format!("case categorized: {}", d.category),
        },
        EventData::CaseAssigned(d) => match (agent, &d.queue) {
            (Some(a), Some(q)) => format!("case assigned to {a} (queue {q})"),
            (Some(a), None) => format!("case assigned to {a}"),
            (None, Some(q)) => format!("case assigned to queue {q}"),
            (None, None) => "case assigned".into(),
        },
        EventData::CaseEscalated(d) => match &d.reason {
            Some(r) => format!("case escalated to tier {}: {}", d.to_tier, clip(r)),
            None => format!("case escalated to tier {}", d.to_tier),
        },
        EventData::CaseNoteAdded(d) => match d.visibility {
            Some(v) => format!("case note added ({v})"),
            None => "case note added".into(),
        },
        EventData::CaseResponded(d) => match d.channel {
            Some(c) => format!("case responded by {c}"),
            None => "case responded".into(),
        },
        EventData::CaseResolved(d) => format!("case resolved: {}", clip(&d.resolution)),
        EventData::CaseReopened(d) => match &d.reason {
            Some(r) => format!("case reopened: {}", clip(r)),
            None => "case reopened".into(),
        },
        EventData::CaseClosed(_) => "case closed".into(),
        EventData::CaseVoided(d) => format!("case voided: {}", d.reason),
        EventData::CampaignCreated(d) => format!("campaign created: {}", clip(&d.name)),
        EventData::CampaignContactAdded(_) => format!(
            "added to campaign {}",
            e.campaign_id.as_deref().unwrap_or("?")
        ),
        EventData::CampaignContactAssigned(_) => match agent {
            Some(a) => format!("campaign contact assigned to {a}"),
            None => "campaign contact assigned".into(),
        },
        EventData::CampaignAttemptMade(d) => {
            format!("campaign attempt by {}: {}", d.channel, d.result)
        }
        EventData::CampaignContactOutcome(d) => match d.callback_at {
            Some(t) => format!(
                "campaign outcome: {} (callback at {})",
                d.outcome,
                crm_events::format_time(&t)
            ),
            None => format!("campaign outcome: {}", d.outcome),
        },
        EventData::CampaignPaused(_) => "campaign paused".into(),
        EventData::CampaignResumed(_) => "campaign resumed".into(),
        EventData::CampaignCompleted(_) => "campaign completed".into(),
    }
}
