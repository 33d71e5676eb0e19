//! The sled tree answers `scan` and `scan_rev` exactly as the in-memory
//! store does (the pure folds are tested on the latter, queries run on the
//! former).

use crm_projection::{KvRead, MemStore};
use crm_projector::TreeKv;
use proptest::prelude::*;

/// Short keys over a small alphabet, with 0xFF bytes, so that prefixes,
/// bounds and keys collide often.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'/', 0xFF]), 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn sled_scans_equal_the_in_memory_scans(
        keys in prop::collection::btree_set(key(), 0..40),
        prefix in key(),
        bound in prop::option::of(key()),
        limit in 0usize..12,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let mut mem = MemStore::default();
        for (i, k) in keys.iter().enumerate() {
            let v = i.to_le_bytes().to_vec();
            tree.insert(k, v.clone()).unwrap();
            mem.map.insert(k.clone(), v);
        }
        let sled = TreeKv(tree);
        prop_assert_eq!(
            sled.scan(&prefix, bound.as_deref(), limit).unwrap(),
            mem.scan(&prefix, bound.as_deref(), limit).unwrap()
        );
        let down = sled.scan_rev(&prefix, bound.as_deref(), limit).unwrap();
        prop_assert_eq!(&down, &mem.scan_rev(&prefix, bound.as_deref(), limit).unwrap());
        // And what that is: the keys under the prefix, before the bound,
        // highest first.
        let want: Vec<Vec<u8>> = keys
            .iter()
            .rev()
            .filter(|k| k.starts_with(&prefix) && bound.as_ref().is_none_or(|b| *k < b))
            .take(limit)
            .cloned()
            .collect();
        prop_assert_eq!(down.into_iter().map(|(k, _)| k).collect::<Vec<_>>(), want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Pending changes over a sled tree read as the changed store would:
    /// what the folds see in the middle of a batch.
    #[test]
    fn pending_changes_over_sled_scan_like_the_changed_store(
        keys in prop::collection::btree_set(key(), 0..40),
        changes in prop::collection::vec((key(), prop::option::of(0u8..4)), 0..20),
        prefix in key(),
        bound in prop::option::of(key()),
        limit in 0usize..40,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let mut changed = MemStore::default();
        // Every key, prefix and bound under `k`: projection keys never
        // start with 0x00 (reserved), and base and changes interleave.
        let k = |b: &[u8]| [b"k".as_slice(), b].concat();
        let (prefix, bound) = (k(&prefix), bound.map(|b| k(&b)));
        for key in &keys {
            tree.insert(k(key), b"base".to_vec()).unwrap();
            changed.map.insert(k(key), b"base".to_vec());
        }
        let sled = TreeKv(tree);
        let mut tx = crm_projection::Tx::new(&sled);
        for (key, v) in &changes {
            let k = k(key);
            match v {
                Some(v) => {
                    tx.put(k.clone(), vec![*v]);
                    changed.map.insert(k, vec![*v]);
                }
                None => {
                    tx.delete(k.clone());
                    changed.map.remove(&k);
                }
            }
        }
        prop_assert_eq!(
            tx.scan(&prefix, bound.as_deref(), limit).unwrap(),
            changed.scan(&prefix, bound.as_deref(), limit).unwrap()
        );
        prop_assert_eq!(
            tx.scan_rev(&prefix, bound.as_deref(), limit).unwrap(),
            changed.scan_rev(&prefix, bound.as_deref(), limit).unwrap()
        );
    }
}
