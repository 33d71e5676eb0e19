//! Key layout of the `customers` key space.
//!
//! Every key starts with a short ASCII tag and a `/`; the keys kept per
//! customer, per interaction and per case are grouped under their id (see
//! [`Own`]). Ids and other strings
//! inside keys are written with [`enc_str`]: order-preserving and prefix-free
//! (a `0x00` byte is escaped as `00 FF`, the string ends with `00 01`), so
//! the keys of customer `c-1` never share a prefix with those of `c-10`.
//! Times are written with [`enc_time`]: 12 bytes that sort like the time.
//! A *position* is `enc_time(occurred_at) ++ enc_str(event_id)`: the sort key
//! of the timeline (occurred_at, then event_id). Newest-first indexes store
//! the bitwise complement of a position ([`invert`]); since positions are
//! prefix-free, the complement sorts in exactly the reverse order.

use chrono::{DateTime, TimeZone, Utc};

/// Keys grouped under one id: `{group}{enc_str(id)}{sub}...`.
///
/// Everything kept per customer (profile, consents, merge edges, counters,
/// recent interactions, open cases, campaign contacts, timeline) lives
/// under `u/{customer}`, an interaction's record, events and case links
/// under `v/{interaction}`, and a case's under `w/{case}`, each told apart
/// by one byte after the id. The store keeps keys in order in small pages
/// (sled splits a leaf past 16 entries), so a customer view reads one or
/// two pages instead of one per key family, and an event's writes to one
/// customer dirty fewer pages. The timeline's sub-tag sorts last, so the
/// small records of a customer stay together ahead of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Own {
    /// The group's tag, shared by every key of the group.
    pub group: &'static str,
    /// The byte after the id that tells the key's family.
    pub sub: u8,
}

impl Own {
    /// `group ++ enc_str(id) ++ sub`: the key, or the prefix of the family
    /// under `id`.
    pub fn key(self, id: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.group.len() + id.len() + 3);
        k.extend_from_slice(self.group.as_bytes());
        enc_str(&mut k, id);
        k.push(self.sub);
        k
    }

    /// [`Own::key`] followed by more encoded strings.
    pub fn key_with(self, id: &str, parts: &[&str]) -> Vec<u8> {
        let mut k = self.key(id);
        for p in parts {
            enc_str(&mut k, p);
        }
        k
    }
}

/// The group of everything kept per customer.
pub const CUSTOMER_GROUP: &str = "u/";
/// The group of an interaction's keys.
pub const INTERACTION_GROUP: &str = "v/";
/// The group of a case's keys.
pub const CASE_GROUP: &str = "w/";

const fn own(group: &'static str, sub: u8) -> Own {
    Own { group, sub }
}

/// Profile of a customer (name, attributes, identities), by its own id:
/// `u/{customer}c`.
pub const PROFILE: Own = own(CUSTOMER_GROUP, b'c');
/// Merge edges entering a survivor: `u/{survivor}i` -> edges from merged ids.
pub const MERGE_IN: Own = own(CUSTOMER_GROUP, b'i');
/// Open cases of a customer, newest first: `u/{customer}k{!(opened_at ++ case)}`.
pub const OPEN_CASE: Own = own(CUSTOMER_GROUP, b'k');
/// Consent history of a customer, by its own id: `u/{customer}n`.
pub const CONSENTS: Own = own(CUSTOMER_GROUP, b'n');
/// Merge edges leaving a merged customer: `u/{merged}o` -> edges to survivors.
pub const MERGE_OUT: Own = own(CUSTOMER_GROUP, b'o');
/// Campaign contact of a customer: `u/{customer}p{campaign}`.
pub const CONTACT: Own = own(CUSTOMER_GROUP, b'p');
/// Interactions of a customer, newest first: `u/{customer}r{!(time ++
/// interaction)}` (read backwards for the first interaction).
pub const RECENT: Own = own(CUSTOMER_GROUP, b'r');
/// Counters of a customer (interactions and cases attributed to that very
/// id): `u/{customer}s`.
pub const COUNTERS: Own = own(CUSTOMER_GROUP, b's');
/// Timeline of a customer: `u/{customer}t{position}` -> item (read
/// backwards for newest first). Last in the group: it is the large family.
pub const TIMELINE: Own = own(CUSTOMER_GROUP, b't');

/// Interaction record: `v/{interaction}a`.
pub const INTERACTION: Own = own(INTERACTION_GROUP, b'a');
/// Events of an interaction: `v/{interaction}e{position}` -> timeline item.
pub const INTERACTION_EVENTS: Own = own(INTERACTION_GROUP, b'e');
/// Case links of an interaction: `v/{interaction}l{case}` -> `{}`.
pub const LINK: Own = own(INTERACTION_GROUP, b'l');

/// Case record: `w/{case}a`.
pub const CASE: Own = own(CASE_GROUP, b'a');
/// Events of a case: `w/{case}e{position}` -> timeline item.
pub const CASE_EVENTS: Own = own(CASE_GROUP, b'e');

/// Lookup index: `li/{kind}{value}{customer}` -> `{}` while the customer holds the identity.
pub const LOOKUP: &str = "li/";
/// Unidentified interactions, newest first: `iu/{!(time ++ interaction)}`.
pub const UNIDENTIFIED: &str = "iu/";
/// Identified interactions, newest first: `ii/{!(time ++ interaction)}`.
pub const IDENTIFIED: &str = "ii/";
/// Campaign name: `pn/{campaign}`.
pub const CAMPAIGN: &str = "pn/";

/// The family a key belongs to, for reports: its tag, and for a grouped
/// key the group's tag, `…` for the id and the family's byte (`u/…t` for a
/// timeline entry).
pub fn family(k: &[u8]) -> String {
    let tag = k.iter().position(|&b| b == b'/').map_or(k, |i| &k[..=i]);
    let grouped = [CUSTOMER_GROUP, INTERACTION_GROUP, CASE_GROUP]
        .iter()
        .any(|g| g.as_bytes() == tag);
    let sub = k[tag.len()..]
        .windows(2)
        .position(|w| w == [0, 1])
        .and_then(|i| k.get(tag.len() + i + 2));
    match (grouped, sub) {
        (true, Some(&sub)) => format!("{}…{}", String::from_utf8_lossy(tag), sub as char),
        _ => String::from_utf8_lossy(tag).into_owned(),
    }
}

/// Appends `s`, order-preserving and prefix-free.
pub fn enc_str(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == 0 {
            out.extend_from_slice(&[0, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

/// Appends `t` as 12 bytes that sort like the time.
pub fn enc_time(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    let secs = (t.timestamp() as u64) ^ (1 << 63);
    out.extend_from_slice(&secs.to_be_bytes());
    out.extend_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
}

/// Reads a time written by [`enc_time`].
pub fn dec_time(b: &[u8]) -> Option<DateTime<Utc>> {
    let secs = u64::from_be_bytes(b.get(0..8)?.try_into().ok()?) ^ (1 << 63);
    let nanos = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
    Utc.timestamp_opt(secs as i64, nanos).single()
}

/// The bitwise complement: reverses the order of prefix-free keys.
pub fn invert(b: &[u8]) -> Vec<u8> {
    b.iter().map(|x| !x).collect()
}

/// `tag` followed by the encoded strings.
pub fn key(tag: &str, parts: &[&str]) -> Vec<u8> {
    let mut k = tag.as_bytes().to_vec();
    for p in parts {
        enc_str(&mut k, p);
    }
    k
}

/// The sort position of an event: occurred_at, then event_id.
pub fn position(t: &DateTime<Utc>, id: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(14 + id.len());
    enc_time(&mut p, t);
    enc_str(&mut p, id);
    p
}

/// `prefix ++ suffix`.
pub fn join(prefix: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + suffix.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(suffix);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_prefix_free_and_ordered() {
        let enc = |s: &str| {
            let mut v = vec![];
            enc_str(&mut v, s);
            v
        };
        let mut words = vec!["", "a", "a\0", "a\0b", "ab", "b", "c-1", "c-10", "c-1/x"];
        words.sort();
        let encoded: Vec<_> = words.iter().map(|w| enc(w)).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
        let inverted: Vec<_> = encoded.iter().map(|e| invert(e)).collect();
        assert!(inverted.windows(2).all(|w| w[0] > w[1]));
        assert!(!enc("c-10").starts_with(&enc("c-1")));
    }

    #[test]
    fn times_round_trip_and_sort() {
        let ts = [
            "1969-12-31T23:59:59.5Z",
            "1970-01-01T00:00:00Z",
            "2026-11-20T09:30:00Z",
            "2026-11-20T09:30:00.000000001Z",
        ];
        let mut prev: Option<Vec<u8>> = None;
        for t in ts {
            let t: DateTime<Utc> = t.parse().unwrap();
            let mut b = vec![];
            enc_time(&mut b, &t);
            assert_eq!(dec_time(&b), Some(t));
            if let Some(p) = prev {
                assert!(p < b);
            }
            prev = Some(b);
        }
    }

    #[test]
    fn a_customers_keys_sit_together_with_the_timeline_last() {
        let small = [
            PROFILE, MERGE_IN, OPEN_CASE, CONSENTS, MERGE_OUT, CONTACT, RECENT, COUNTERS,
        ];
        let group = {
            let mut g = CUSTOMER_GROUP.as_bytes().to_vec();
            enc_str(&mut g, "c-1");
            g
        };
        let timeline = TIMELINE.key_with("c-1", &["x"]);
        for family in small {
            let k = family.key_with("c-1", &["x"]);
            assert!(k.starts_with(&group));
            assert!(k < timeline, "{family:?} sorts after the timeline");
            // Another id never shares the group, even one it is a prefix of.
            assert!(!family.key("c-10").starts_with(&group));
            assert!(!family.key("c-10").starts_with(&family.key("c-1")));
        }
        // Each family's prefix holds only that family.
        let mut subs: Vec<u8> = small.iter().map(|f| f.sub).collect();
        subs.push(TIMELINE.sub);
        subs.sort();
        subs.dedup();
        assert_eq!(subs.len(), small.len() + 1);
        for g in [INTERACTION, INTERACTION_EVENTS, LINK] {
            assert_eq!(g.group, INTERACTION_GROUP);
        }
        assert_ne!(INTERACTION.sub, INTERACTION_EVENTS.sub);
        assert_ne!(CASE.sub, CASE_EVENTS.sub);
        assert_eq!(family(&TIMELINE.key_with("c-1", &["x"])), "u/…t");
        assert_eq!(family(&LINK.key_with("i-1", &["k-1"])), "v/…l");
        assert_eq!(family(&key(LOOKUP, &["phone", "+1"])), "li/");
    }
}
