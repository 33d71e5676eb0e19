//! The merge graph, resolved on demand.
//!
//! Every `customer.merged`/`unmerged` is kept as an edge `merged -> survivor`
//! (active or not). A customer's *parent* is the survivor of its active edge
//! with the latest merge `(occurred_at, event_id)`; its *root* (current
//! survivor) follows parents transitively. A cycle (A into B and B into A,
//! both active: bad data, but possible across streams) resolves to the
//! smallest id on the cycle, so the answer depends only on the set of
//! edges, never on the order they arrived in.

use std::collections::BTreeSet;

use crm_projection::{KvRead, StoreError};

use crate::keys;
use crate::model::Edge;

fn decode<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError(format!("undecodable value: {e}")))
}

/// The survivor `x` is currently merged into, if any.
pub(crate) fn parent(kv: &dyn KvRead, x: &str) -> Result<Option<String>, StoreError> {
    let mut best: Option<Edge> = None;
    for (_, v) in kv.scan(keys::edge_prefix(x).as_bytes(), None, usize::MAX)? {
        let e: Edge = decode(&v)?;
        let better = match &best {
            None => true,
            Some(b) => (e.at, &e.event_id) > (b.at, &b.event_id),
        };
        if e.active && better {
            best = Some(e);
        }
    }
    Ok(best.map(|e| e.survivor))
}

/// The current survivor of `x` (`x` itself when not merged).
pub(crate) fn root(kv: &dyn KvRead, x: &str) -> Result<String, StoreError> {
    let mut path = vec![x.to_string()];
    loop {
        let cur = path.last().expect("non-empty");
        match parent(kv, cur)? {
            None => return Ok(cur.clone()),
            Some(p) => {
                if let Some(i) = path.iter().position(|y| *y == p) {
                    return Ok(path[i..].iter().min().expect("non-empty").clone());
                }
                path.push(p);
            }
        }
    }
}

/// Every customer id whose root is `r` (`r` must be a root), sorted.
pub(crate) fn group(kv: &dyn KvRead, r: &str) -> Result<Vec<String>, StoreError> {
    let mut seen: BTreeSet<String> = BTreeSet::from([r.to_string()]);
    let mut queue = vec![r.to_string()];
    while let Some(y) = queue.pop() {
        for (k, _) in kv.scan(keys::in_edge_prefix(&y).as_bytes(), None, usize::MAX)? {
            let m = keys::last_component(&k);
            if seen.contains(&m) {
                continue;
            }
            if parent(kv, &m)?.as_deref() == Some(y.as_str()) {
                seen.insert(m.clone());
                queue.push(m);
            }
        }
    }
    Ok(seen.into_iter().collect())
}

/// The campaigns any of `ids` is a contact of, sorted.
pub(crate) fn campaigns_of(
    kv: &dyn KvRead,
    ids: &[String],
) -> Result<BTreeSet<String>, StoreError> {
    let mut out = BTreeSet::new();
    for u in ids {
        for (k, _) in kv.scan(
            keys::customer_campaigns_prefix(u).as_bytes(),
            None,
            usize::MAX,
        )? {
            out.insert(keys::last_component(&k));
        }
    }
    Ok(out)
}
