//! The key layout. Every id in a key is escaped (`%` -> `%25`, `/` -> `%2F`)
//! so that `/` only ever separates components and a prefix scan of one
//! campaign never sees another's keys. Times in keys are fixed-width
//! (`2026-11-20T09:30:00.000000000Z`) so that they sort chronologically.

use chrono::{DateTime, Utc};

/// Escapes an id for use as one key component.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`esc`].
pub(crate) fn unesc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("%2F") {
            out.push('/');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("%25") {
            out.push('%');
            rest = t;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A time as a fixed-width, sortable key component.
pub(crate) fn tkey(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// The UTC day of a time, `2026-11-20`.
pub(crate) fn day(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The last component of a key, unescaped.
pub(crate) fn last_component(key: &[u8]) -> String {
    let s = String::from_utf8_lossy(key);
    unesc(s.rsplit('/').next().unwrap_or(""))
}

/// `cp/{campaign}`: the campaign record (config, status, parked events).
pub(crate) fn campaign(k: &str) -> String {
    format!("cp/{}", esc(k))
}

/// `ct/{campaign}/{customer}`: the facts of one contact, under the id its
/// events carried.
pub(crate) fn contact(k: &str, c: &str) -> String {
    format!("ct/{}/{}", esc(k), esc(c))
}

pub(crate) fn contact_prefix(k: &str) -> String {
    format!("ct/{}/", esc(k))
}

/// `cc/{customer}/{campaign}`: the campaigns a customer id is a contact of.
pub(crate) fn customer_campaign(c: &str, k: &str) -> String {
    format!("cc/{}/{}", esc(c), esc(k))
}

pub(crate) fn customer_campaigns_prefix(c: &str) -> String {
    format!("cc/{}/", esc(c))
}

/// `cu/{customer}`: consent and do-not-contact facts of one customer id.
pub(crate) fn customer(c: &str) -> String {
    format!("cu/{}", esc(c))
}

/// `me/{merged}/{survivor}`: a merge edge.
pub(crate) fn edge(m: &str, s: &str) -> String {
    format!("me/{}/{}", esc(m), esc(s))
}

pub(crate) fn edge_prefix(m: &str) -> String {
    format!("me/{}/", esc(m))
}

/// `mi/{survivor}/{merged}`: the reverse of every merge edge ever seen.
pub(crate) fn in_edge(s: &str, m: &str) -> String {
    format!("mi/{}/{}", esc(s), esc(m))
}

pub(crate) fn in_edge_prefix(s: &str) -> String {
    format!("mi/{}/", esc(s))
}

/// `ec/{campaign}/{survivor}`: the derived effective contact.
pub(crate) fn derived(k: &str, r: &str) -> String {
    format!("ec/{}/{}", esc(k), esc(r))
}

pub(crate) fn derived_prefix(k: &str) -> String {
    format!("ec/{}/", esc(k))
}

/// `ag/{campaign}/{slice}`: the aggregate of one slice (`t`, `a/{agent}`,
/// `c/{channel}`, `d/{day}`).
pub(crate) fn agg(k: &str, slice: &str) -> String {
    format!("ag/{}/{}", esc(k), slice)
}

pub(crate) fn agg_prefix(k: &str) -> String {
    format!("ag/{}/", esc(k))
}

pub(crate) fn state_prefix(k: &str, state: &str) -> String {
    format!("st/{}/{}/", esc(k), state)
}

pub(crate) fn agent_state_prefix(k: &str, agent: &str, state: &str) -> String {
    format!("sa/{}/{}/{}/", esc(k), esc(agent), state)
}

pub(crate) fn expiry_prefix(k: &str) -> String {
    format!("ex/{}/", esc(k))
}

pub(crate) fn violation_prefix(k: &str) -> String {
    format!("vi/{}/", esc(k))
}

/// Slice names inside `ag/{campaign}/`.
pub(crate) const TOTAL: &str = "t";

pub(crate) fn agent_slice(agent: &str) -> String {
    format!("a/{}", esc(agent))
}

pub(crate) fn channel_slice(channel: &str) -> String {
    format!("c/{channel}")
}

pub(crate) fn day_slice(day: &str) -> String {
    format!("d/{day}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_components_apart() {
        for s in ["a", "a/b", "%2F", "%", "a%25/b%", "x%2"] {
            assert_eq!(unesc(&esc(s)), s);
            assert!(!esc(s).contains('/'));
        }
        assert!(!contact("a/b", "c").starts_with(&contact_prefix("a")));
    }

    #[test]
    fn time_keys_sort_chronologically() {
        let a: DateTime<Utc> = "2026-11-20T09:30:00Z".parse().unwrap();
        let b: DateTime<Utc> = "2026-11-20T09:30:00.5Z".parse().unwrap();
        let c: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        assert!(tkey(&a) < tkey(&b) && tkey(&b) < tkey(&c));
        assert_eq!(day(&a), "2026-11-20");
    }
}
