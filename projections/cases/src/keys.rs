//! The key layout of the `cases` key space.
//!
//! Every id in a key is written with an order-preserving, self-delimiting
//! encoding: each `0x00` byte of the id becomes `0x00 0xFF` and the id ends
//! with `0x00 0x01`. Ids are arbitrary strings (the contract only bounds
//! their length), so no separator byte could be trusted; with this encoding
//! the encoded ids sort like the ids themselves, an id is never a prefix of
//! another id's encoding, and "every key after `P + esc(id)`" (without the
//! terminator) is exactly "every key at or after `P + enc(id)`", which the
//! index seeks of the list queries rely on.
//!
//! | key | value |
//! |---|---|
//! | `c/` enc(case) | [`crate::model::CaseRecord`]: the folded case |
//! | `p/` enc(case) | [`crate::model::Pending`]: a case with events but no `case.opened` yet |
//! | `h/` enc(case) time(12) seq(8) | the case event as stored (history, in event-time order) |
//! | `l/` enc(case) enc(interaction) | [`crate::model::Link`]: an interaction gathered by the case |
//! | `i/` enc(interaction) | [`crate::model::InteractionStart`]: channel and start of an interaction |
//! | `m/` enc(survivor) enc(merged) | [`crate::model::MergeEdge`]: a merge (active or undone), by survivor |
//! | `o/` enc(merged) enc(survivor) | the same edge, by merged customer |
//! | `x/s/` enc(status) enc(case) | index: status (empty value) |
//! | `x/g/` enc(category) enc(case) | index: category |
//! | `x/q/` enc(queue) enc(case) | index: queue |
//! | `x/t/` enc(tier) enc(case) | index: tier (decimal) |
//! | `x/u/` enc(customer) enc(case) | index: customer the case's events name (before merge resolution) |

use chrono::{DateTime, Utc};

pub const CASE: &[u8] = b"c/";
pub const PENDING: &[u8] = b"p/";
pub const HISTORY: &[u8] = b"h/";
pub const LINK: &[u8] = b"l/";
pub const INTERACTION: &[u8] = b"i/";
pub const MERGE_IN: &[u8] = b"m/";
pub const MERGE_OUT: &[u8] = b"o/";

/// Index tags: `x/<tag>/`.
pub const IDX_STATUS: &[u8] = b"x/s/";
pub const IDX_CATEGORY: &[u8] = b"x/g/";
pub const IDX_QUEUE: &[u8] = b"x/q/";
pub const IDX_TIER: &[u8] = b"x/t/";
pub const IDX_CUSTOMER: &[u8] = b"x/u/";

const TERMINATOR: [u8; 2] = [0x00, 0x01];

/// Appends the escaped id and its terminator.
pub fn push_id(out: &mut Vec<u8>, id: &str) {
    push_escaped(out, id);
    out.extend_from_slice(&TERMINATOR);
}

/// Appends the escaped id without its terminator (a seek bound).
pub fn push_escaped(out: &mut Vec<u8>, id: &str) {
    for &b in id.as_bytes() {
        if b == 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        } else {
            out.push(b);
        }
    }
}

/// `enc(id)`.
#[cfg(test)]
pub fn enc(id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(id.len() + 2);
    push_id(&mut out, id);
    out
}

/// `prefix + enc(a)`.
pub fn key1(prefix: &[u8], a: &str) -> Vec<u8> {
    let mut k = prefix.to_vec();
    push_id(&mut k, a);
    k
}

/// `prefix + enc(a) + enc(b)`.
pub fn key2(prefix: &[u8], a: &str, b: &str) -> Vec<u8> {
    let mut k = key1(prefix, a);
    push_id(&mut k, b);
    k
}

/// Decodes one encoded id at the start of `bytes`; returns it and the rest.
pub fn decode_id(bytes: &[u8]) -> Option<(String, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0 {
            match bytes.get(i + 1)? {
                0x01 => return Some((String::from_utf8(out).ok()?, &bytes[i + 2..])),
                0xFF => out.push(0),
                _ => return None,
            }
            i += 2;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    None
}

/// A time as 12 bytes that sort like the time: seconds since the epoch
/// (sign bit flipped, big endian) then nanoseconds (big endian).
pub fn push_time(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    let secs = (t.timestamp() as u64) ^ (1u64 << 63);
    out.extend_from_slice(&secs.to_be_bytes());
    out.extend_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
}

/// `h/` enc(case) time seq: a history entry, in event-time order, ties in
/// the case stream's order.
pub fn history(case_id: &str, t: &DateTime<Utc>, seq: u64) -> Vec<u8> {
    let mut k = key1(HISTORY, case_id);
    push_time(&mut k, t);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Reads `seq` back from a history key (its last 8 bytes).
pub fn history_seq(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_ids_sort_like_ids_and_never_prefix_each_other() {
        let mut ids = vec!["a", "a\0", "a\0b", "ab", "a/b", "", "b", "\u{1}", "a\u{1}"];
        ids.sort();
        let encoded: Vec<Vec<u8>> = ids.iter().map(|i| enc(i)).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        for (i, a) in encoded.iter().enumerate() {
            for (j, b) in encoded.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "{:?} prefixes {:?}", ids[i], ids[j]);
                }
            }
            assert_eq!(decode_id(a).unwrap().0, ids[i]);
        }
    }

    #[test]
    fn escaped_bound_sits_just_before_the_encoded_id() {
        for (lo, id) in [("a", "ab"), ("a", "a\0"), ("a\0", "a\0\0"), ("ab", "abc")] {
            let mut bound = Vec::new();
            push_escaped(&mut bound, id);
            assert!(enc(lo) < bound, "{lo:?} {id:?}");
            assert!(bound < enc(id));
        }
    }

    #[test]
    fn times_sort_like_times() {
        let ts = [
            "1960-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "1970-01-01T00:00:00Z",
            "2026-11-20T09:30:00Z",
            "2026-11-20T09:30:00.000001Z",
        ];
        let keys: Vec<Vec<u8>> = ts
            .iter()
            .map(|t| {
                let mut k = Vec::new();
                push_time(&mut k, &t.parse().unwrap());
                k
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}
