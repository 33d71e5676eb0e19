//! Pure test kit for projections: fold events over a [`MemStore`], digest
//! the result, and check order independence over interleavings that keep
//! each stream's own order.

use std::cell::Cell;
use std::collections::BTreeMap;

use crm_events::Event;

use crate::{Entries, KvRead, MemStore, Projection, StoreError, Tx};

/// A [`KvRead`] that counts what is read through it: one per `get`, one per
/// `scan` call plus one per entry it returns. For tests that bound the cost
/// of an apply or a query, whatever the size of the data.
pub struct CountingKv<'a> {
    inner: &'a dyn KvRead,
    reads: Cell<usize>,
}

impl<'a> CountingKv<'a> {
    pub fn new(inner: &'a dyn KvRead) -> Self {
        CountingKv {
            inner,
            reads: Cell::new(0),
        }
    }

    /// Reads so far.
    pub fn reads(&self) -> usize {
        self.reads.get()
    }

    /// Starts counting again from zero.
    pub fn reset(&self) {
        self.reads.set(0);
    }
}

impl KvRead for CountingKv<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.get(key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let out = self.inner.scan(prefix, after, limit)?;
        self.reads.set(self.reads.get() + out.len() + 1);
        Ok(out)
    }

    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let out = self.inner.scan_rev(prefix, before, limit)?;
        self.reads.set(self.reads.get() + out.len() + 1);
        Ok(out)
    }
}

/// Applies one event to `store` the way the runtime does: an `Err` discards
/// the event's changes and records a dead letter instead.
pub fn apply_one(projection: &dyn Projection, store: &mut MemStore, event: &Event) {
    let changes = {
        let mut tx = Tx::new(store);
        match projection.apply(&mut tx, event) {
            Ok(()) => tx.into_changes(),
            Err(e) => {
                let mut tx = Tx::new(store);
                tx.dead_letter(event, e.to_string(), false);
                tx.into_changes()
            }
        }
    };
    store.apply(changes);
}

/// Folds `events`, in the given order, over an empty store.
pub fn fold<'a>(
    projection: &dyn Projection,
    events: impl IntoIterator<Item = &'a Event>,
) -> MemStore {
    let mut store = MemStore::default();
    for e in events {
        apply_one(projection, &mut store, e);
    }
    store
}

/// A digest of a store's content: equal stores, equal digests.
pub fn digest(store: &dyn KvRead) -> String {
    let mut h = blake3::Hasher::new();
    for (k, v) in store.scan(b"", None, usize::MAX).expect("memory store") {
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(&k);
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(&v);
    }
    h.finalize().to_hex().to_string()
}

/// A delivery order of `events` that keeps each stream's own order, chosen
/// by `seed` (the same seed, the same order).
pub fn interleave(events: &[Event], seed: u64) -> Vec<Event> {
    let mut streams: BTreeMap<String, std::collections::VecDeque<&Event>> = BTreeMap::new();
    for e in events {
        streams.entry(e.stream_key()).or_default().push_back(e);
    }
    let mut queues: Vec<_> = streams.into_values().collect();
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(events.len());
    while !queues.is_empty() {
        let i = (rng.next() % queues.len() as u64) as usize;
        out.push(queues[i].pop_front().expect("non-empty").clone());
        if queues[i].is_empty() {
            queues.swap_remove(i);
        }
    }
    out
}

/// Asserts that `projection` reaches the same state for every order in
/// `seeds` as for the order given, and returns that state.
pub fn assert_order_independent(
    projection: &dyn Projection,
    events: &[Event],
    seeds: impl IntoIterator<Item = u64>,
) -> MemStore {
    let reference = fold(projection, events);
    let expected = digest(&reference);
    for seed in seeds {
        let order = interleave(events, seed);
        let got = fold(projection, &order);
        if digest(&got) != expected {
            let diff = first_difference(&reference, &got);
            panic!(
                "{}: state differs for delivery order seed {seed}:\n{diff}\norder: {:?}",
                projection.name(),
                order.iter().map(|e| &e.event_id).collect::<Vec<_>>()
            );
        }
    }
    reference
}

fn first_difference(a: &MemStore, b: &MemStore) -> String {
    let show = |v: Option<&Vec<u8>>| v.map(|v| String::from_utf8_lossy(v).into_owned());
    for k in a.map.keys().chain(b.map.keys()) {
        if a.map.get(k) != b.map.get(k) {
            return format!(
                "key {:?}:\n  in given order: {:?}\n  in this order:  {:?}",
                String::from_utf8_lossy(k),
                show(a.map.get(k)),
                show(b.map.get(k))
            );
        }
    }
    "no key differs".into()
}

/// A tiny deterministic generator (SplitMix64): tests need no `rand`.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Builds events for tests from JSON, validating them like ingest does.
pub fn events(values: impl IntoIterator<Item = serde_json::Value>) -> Vec<Event> {
    static VALIDATOR: std::sync::OnceLock<crm_events::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(crm_events::Validator::new);
    values
        .into_iter()
        .map(|v| {
            validator
                .validate(v.clone())
                .unwrap_or_else(|e| panic!("test event {v} is invalid: {e:?}"))
        })
        .collect()
}
