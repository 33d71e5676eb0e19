//! Key layout of the `customers` key space.
//!
//! Every key starts with a short ASCII tag and a `/`. Ids and other strings
//! inside keys are written with [`enc_str`]: order-preserving and prefix-free
//! (a `0x00` byte is escaped as `00 FF`, the string ends with `00 01`), so
//! the keys of customer `c-1` never share a prefix with those of `c-10`.
//! Times are written with [`enc_time`]: 12 bytes that sort like the time.
//! A *position* is `enc_time(occurred_at) ++ enc_str(event_id)`: the sort key
//! of the timeline (occurred_at, then event_id). Newest-first indexes store
//! the bitwise complement of a position ([`invert`]); since positions are
//! prefix-free, the complement sorts in exactly the reverse order.

use chrono::{DateTime, TimeZone, Utc};

/// Profile of a customer (name, attributes, identities), by its own id.
pub const PROFILE: &str = "c/";
/// Consent history of a customer, by its own id.
pub const CONSENTS: &str = "n/";
/// Merge edges leaving a merged customer: `mo/{merged}` -> edges to survivors.
pub const MERGE_OUT: &str = "mo/";
/// Merge edges entering a survivor: `mi/{survivor}` -> edges from merged ids.
pub const MERGE_IN: &str = "mi/";
/// Lookup index: `li/{kind}{value}{customer}` -> `{}` while the customer holds the identity.
pub const LOOKUP: &str = "li/";
/// Counters of a customer (interactions and cases attributed to that very id).
pub const COUNTERS: &str = "s/";
/// Interaction record: `i/{interaction}`.
pub const INTERACTION: &str = "i/";
/// Case links of an interaction: `x/{interaction}{case}` -> `{}`.
pub const LINK: &str = "x/";
/// Interactions of a customer, newest first: `ri/{customer}{!(time ++
/// interaction)}` (read backwards for the first interaction).
pub const RECENT: &str = "ri/";
/// Unidentified interactions, newest first: `iu/{!(time ++ interaction)}`.
pub const UNIDENTIFIED: &str = "iu/";
/// Identified interactions, newest first: `ii/{!(time ++ interaction)}`.
pub const IDENTIFIED: &str = "ii/";
/// Case record: `k/{case}`.
pub const CASE: &str = "k/";
/// Open cases of a customer, newest first: `oc/{customer}{!(opened_at ++ case)}`.
pub const OPEN_CASE: &str = "oc/";
/// Campaign contact of a customer: `p/{customer}{campaign}`.
pub const CONTACT: &str = "p/";
/// Campaign name: `pn/{campaign}`.
pub const CAMPAIGN: &str = "pn/";
/// Events of an interaction: `ei/{interaction}{position}` -> timeline item.
pub const INTERACTION_EVENTS: &str = "ei/";
/// Events of a case: `ek/{case}{position}` -> timeline item.
pub const CASE_EVENTS: &str = "ek/";
/// Timeline of a customer: `ta/{customer}{position}` -> item (read
/// backwards for newest first).
pub const TIMELINE: &str = "ta/";

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
}
