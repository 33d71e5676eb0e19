//! # crm-projection
//!
//! A read model of crm-ledger is a [`Projection`]: a pure fold that, for each
//! event, reads what it needs of its current state and records changes in a
//! [`Tx`]. It does no I/O. The runtime (`crm-projector`) drives it over the
//! log and commits the changes to sled together with the checkpoint; tests
//! drive it over an in-memory [`MemStore`] with [`testkit`].
//!
//! ## Key space
//! A projection owns one ordered key-value space. Keys that start with the
//! byte `0x00` are reserved for the runtime (checkpoint, format version, dead
//! letters); a projection's own keys must start with any other byte.
//!
//! ## Order independence
//! Events of one stream arrive in publish order, but streams are not ordered
//! against each other (events.md). A projection must reach the same state for
//! every delivery order that keeps each stream's own order, and must use
//! `occurred_at`, never arrival order, wherever time matters.
//! [`testkit::assert_order_independent`] checks exactly that.

use std::collections::BTreeMap;
use std::ops::Bound;

use crm_events::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod query;
pub mod testkit;

/// Prefix of every runtime-reserved key.
pub const RESERVED: u8 = 0x00;
/// Prefix of dead-letter keys (followed by the event id).
pub const DEAD_LETTER_PREFIX: &[u8] = b"\x00dl/";

/// Key-value entries, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A failure to read the underlying store.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// How [`StoreError::unavailable`] marks its message.
const UNAVAILABLE: &str = "read model temporarily unavailable: ";

impl StoreError {
    /// The store is closed for a moment (the runtime is reopening it after
    /// an I/O error): worth retrying, unlike damage.
    pub fn unavailable(why: impl std::fmt::Display) -> StoreError {
        StoreError(format!("{UNAVAILABLE}{why}"))
    }

    /// Whether this is [`StoreError::unavailable`].
    pub fn is_unavailable(&self) -> bool {
        self.0.starts_with(UNAVAILABLE)
    }
}

/// Why a projection could not apply an event. The event goes to the
/// dead-letter list with this message and the projection goes on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        ApplyError(e.to_string())
    }
}

impl From<serde_json::Error> for ApplyError {
    fn from(e: serde_json::Error) -> Self {
        ApplyError(format!("stored state cannot be decoded: {e}"))
    }
}

/// Read access to an ordered key-value space.
pub trait KvRead {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` entries whose key starts with `prefix`, in key order,
    /// starting strictly after `after` when given.
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError>;
    /// Up to `limit` entries whose key starts with `prefix`, in descending
    /// key order, starting strictly before `before` when given.
    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError>;

    /// The value at `key`, decoded from JSON.
    fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError>
    where
        Self: Sized,
    {
        decode(self.get(key)?)
    }
}

fn decode<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Result<Option<T>, StoreError> {
    match bytes {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StoreError(format!("undecodable value: {e}"))),
    }
}

/// Reads a JSON value through a `dyn KvRead`.
pub fn get_json<T: DeserializeOwned>(kv: &dyn KvRead, key: &[u8]) -> Result<Option<T>, StoreError> {
    decode(kv.get(key)?)
}

/// An in-memory key-value space: the store of tests and of the pure fold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStore {
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemStore {
    /// Applies a set of changes.
    pub fn apply(&mut self, changes: Changes) {
        for (k, v) in changes.0 {
            match v {
                Some(v) => {
                    self.map.insert(k, v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
        }
    }
}

fn range_after<'a>(
    prefix: &'a [u8],
    after: Option<&'a [u8]>,
) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    match after {
        Some(a) if a >= prefix => (Bound::Excluded(a), Bound::Unbounded),
        _ => (Bound::Included(prefix), Bound::Unbounded),
    }
}

/// The first key after every key that starts with `prefix` (`None`: no
/// such key, the prefix is all `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A range of keys: lower and upper bound.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The range of keys under `prefix` strictly before `before` (`None`: the
/// range is empty).
pub fn range_before(prefix: &[u8], before: Option<&[u8]>) -> Option<KeyRange> {
    let end = prefix_end(prefix);
    let upper = match (before, end) {
        (Some(b), _) if b <= prefix => return None,
        (Some(b), Some(end)) if b < end.as_slice() => Bound::Excluded(b.to_vec()),
        (Some(b), None) => Bound::Excluded(b.to_vec()),
        (_, Some(end)) => Bound::Excluded(end),
        (None, None) => Bound::Unbounded,
    };
    Some((Bound::Included(prefix.to_vec()), upper))
}

impl KvRead for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.get(key).cloned())
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        Ok(self
            .map
            .range::<[u8], _>(range_after(prefix, after))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let Some(range) = range_before(prefix, before) else {
            return Ok(Vec::new());
        };
        Ok(self
            .map
            .range::<Vec<u8>, _>(range)
            .rev()
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// Pending changes: a key set to a value, or removed (`None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes(pub BTreeMap<Vec<u8>, Option<Vec<u8>>>);

impl Changes {
    /// Adds `other` on top of these changes.
    pub fn extend(&mut self, other: Changes) {
        self.0.extend(other.0);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// A dead letter: an event that a projection could not apply, or one it
/// parked until another event arrives (e.g. a `case.*` event before its
/// `case.opened`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub error: String,
    /// True while the projection still expects to apply it later.
    pub parked: bool,
}

/// Changes being made on top of a store: reads see the store as changed so
/// far.
pub struct Tx<'a> {
    base: &'a dyn KvRead,
    changes: Changes,
}

impl<'a> Tx<'a> {
    /// Starts changes on top of `base`.
    pub fn new(base: &'a dyn KvRead) -> Self {
        Tx {
            base,
            changes: Changes::default(),
        }
    }

    /// The changes made.
    pub fn into_changes(self) -> Changes {
        self.changes
    }

    /// Sets `key` (a projection key: must not start with `0x00`).
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let key = key.into();
        assert!(
            key.first() != Some(&RESERVED),
            "keys starting with 0x00 are reserved for the runtime"
        );
        self.changes.0.insert(key, Some(value.into()));
    }

    /// Sets `key` to `value` encoded as JSON.
    pub fn put_json<T: Serialize + ?Sized>(&mut self, key: impl Into<Vec<u8>>, value: &T) {
        self.put(key, serde_json::to_vec(value).expect("state serialises"));
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.changes.0.insert(key.into(), None);
    }

    /// The value at `key`, decoded from JSON.
    pub fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        decode(self.get(key)?)
    }

    /// Every entry under `prefix`, in key order (use for bounded sets only).
    pub fn scan_all(&self, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.scan(prefix, None, usize::MAX)
    }

    /// Records (or replaces) a dead letter for `event`.
    pub fn dead_letter(&mut self, event: &Event, error: impl Into<String>, parked: bool) {
        let dl = DeadLetter {
            event_id: event.event_id.clone(),
            event_type: event.event_type().as_str().to_string(),
            occurred_at: crm_events::format_time(&event.occurred_at),
            error: error.into(),
            parked,
        };
        self.changes.0.insert(
            dead_letter_key(&event.event_id),
            Some(serde_json::to_vec(&dl).expect("serialises")),
        );
    }

    /// Removes the dead letter of `event_id` (it was applied after all).
    pub fn clear_dead_letter(&mut self, event_id: &str) {
        self.changes.0.insert(dead_letter_key(event_id), None);
    }

    /// Runtime use: sets a reserved key.
    pub fn put_reserved(&mut self, key: Vec<u8>, value: Vec<u8>) {
        assert!(key.first() == Some(&RESERVED));
        self.changes.0.insert(key, Some(value));
    }

    /// Runtime use: merges a child's changes into this one.
    pub fn absorb(&mut self, changes: Changes) {
        self.changes.extend(changes);
    }
}

/// The key of a dead letter.
pub fn dead_letter_key(event_id: &str) -> Vec<u8> {
    let mut k = DEAD_LETTER_PREFIX.to_vec();
    k.extend_from_slice(event_id.as_bytes());
    k
}

impl Tx<'_> {
    /// The base's entries merged with the pending changes, in key order
    /// (descending when `rev`), past `bound`. The base is read in pages so
    /// that a small `limit` reads little.
    fn merged(
        &self,
        prefix: &[u8],
        bound: Option<&[u8]>,
        limit: usize,
        rev: bool,
    ) -> Result<Entries, StoreError> {
        type Pending<'p> = Box<dyn Iterator<Item = (&'p Vec<u8>, &'p Option<Vec<u8>>)> + 'p>;
        let pending: Pending<'_> = if rev {
            match range_before(prefix, bound) {
                Some(range) => Box::new(self.changes.0.range::<Vec<u8>, _>(range).rev()),
                None => return Ok(Vec::new()),
            }
        } else {
            Box::new(
                self.changes
                    .0
                    .range::<[u8], _>(range_after(prefix, bound))
                    .take_while(|(k, _)| k.starts_with(prefix)),
            )
        };
        let mut pending = pending.peekable();
        let mut out = Vec::new();
        let mut page: std::collections::VecDeque<(Vec<u8>, Vec<u8>)> = Default::default();
        let mut cursor: Option<Vec<u8>> = bound.map(<[u8]>::to_vec);
        let mut base_done = false;
        while out.len() < limit {
            if page.is_empty() && !base_done {
                let want = (limit - out.len()).clamp(16, 512);
                let got = if rev {
                    self.base.scan_rev(prefix, cursor.as_deref(), want)?
                } else {
                    self.base.scan(prefix, cursor.as_deref(), want)?
                };
                base_done = got.len() < want;
                if let Some((k, _)) = got.last() {
                    cursor = Some(k.clone());
                }
                page.extend(got);
            }
            // Less: the base's entry comes first in the scan's order.
            let order = match (page.front(), pending.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((b, _)), Some((p, _))) if rev => p.as_slice().cmp(b.as_slice()),
                (Some((b, _)), Some((p, _))) => b.as_slice().cmp(p.as_slice()),
            };
            if order.is_le() {
                let base_entry = page.pop_front().expect("front exists");
                if order.is_lt() {
                    out.push(base_entry);
                    continue;
                }
            }
            // The pending change comes first, or shadows the base entry.
            let (k, v) = pending.next().expect("peeked");
            if let Some(v) = v {
                out.push((k.clone(), v.clone()));
            }
        }
        Ok(out)
    }
}

impl KvRead for Tx<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.changes.0.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        self.merged(prefix, after, limit, false)
    }

    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        self.merged(prefix, before, limit, true)
    }
}

/// A read model: a pure fold over events.
pub trait Projection: Send + Sync + 'static {
    /// Stable name, used in routes, metrics and store trees (`customers`).
    fn name(&self) -> &'static str;
    /// Version of the stored format. Raise it whenever keys or values change
    /// shape: a store of another version is rebuilt from the log.
    fn format_version(&self) -> u32;
    /// Applies one event. An `Err` sends the event to the dead-letter list,
    /// with every change of this event discarded.
    fn apply(&self, tx: &mut Tx<'_>, event: &Event) -> Result<(), ApplyError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(pairs: &[(&str, &str)]) -> MemStore {
        MemStore {
            map: pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn keys(v: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<String> {
        v.into_iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8(k).unwrap(),
                    String::from_utf8(v).unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn tx_scan_merges_changes_over_the_base_in_key_order() {
        let base = store(&[("a/1", "x"), ("a/3", "x"), ("a/5", "x"), ("b/1", "x")]);
        let mut tx = Tx::new(&base);
        tx.put("a/2", "new");
        tx.put("a/3", "changed");
        tx.delete("a/5");
        tx.put("a/6", "new");
        assert_eq!(
            keys(tx.scan(b"a/", None, 100).unwrap()),
            ["a/1=x", "a/2=new", "a/3=changed", "a/6=new"]
        );
        assert_eq!(
            keys(tx.scan(b"a/", Some(b"a/2"), 2).unwrap()),
            ["a/3=changed", "a/6=new"]
        );
        assert_eq!(keys(tx.scan(b"a/", None, 1).unwrap()), ["a/1=x"]);
        assert_eq!(tx.get(b"a/5").unwrap(), None);
        assert_eq!(tx.get(b"b/1").unwrap(), Some(b"x".to_vec()));
    }

    #[test]
    fn tx_scan_rev_merges_changes_over_the_base_in_descending_order() {
        let base = store(&[("a/1", "x"), ("a/3", "x"), ("a/5", "x"), ("b/1", "x")]);
        let mut tx = Tx::new(&base);
        tx.put("a/2", "new");
        tx.put("a/3", "changed");
        tx.delete("a/5");
        tx.put("a/6", "new");
        assert_eq!(
            keys(tx.scan_rev(b"a/", None, 100).unwrap()),
            ["a/6=new", "a/3=changed", "a/2=new", "a/1=x"]
        );
        assert_eq!(
            keys(tx.scan_rev(b"a/", Some(b"a/6"), 2).unwrap()),
            ["a/3=changed", "a/2=new"]
        );
        assert_eq!(keys(tx.scan_rev(b"a/", None, 1).unwrap()), ["a/6=new"]);
        assert!(tx.scan_rev(b"a/", Some(b"a/"), 10).unwrap().is_empty());
        assert!(tx.scan_rev(b"a/", Some(b"0"), 10).unwrap().is_empty());
        assert_eq!(
            keys(tx.scan_rev(b"a/", Some(b"z"), 1).unwrap()),
            ["a/6=new"]
        );
    }

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn tx_scan_pages_through_a_large_base() {
        let pairs: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("k/{i:04}"), "v".into()))
            .collect();
        let base = MemStore {
            map: pairs
                .iter()
                .map(|(k, v)| (k.clone().into_bytes(), v.clone().into_bytes()))
                .collect(),
        };
        let mut tx = Tx::new(&base);
        tx.delete("k/0500");
        tx.put("k/0500a", "n");
        let all = tx.scan_all(b"k/").unwrap();
        assert_eq!(all.len(), 1000);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        let down = tx.scan_rev(b"k/", None, usize::MAX).unwrap();
        assert_eq!(down, all.into_iter().rev().collect::<Vec<_>>());
    }

    #[test]
    #[should_panic(expected = "reserved")]
    fn projections_cannot_write_reserved_keys() {
        let base = MemStore::default();
        Tx::new(&base).put(vec![0u8, 1], "x");
    }
}
