//! Property test: whatever the batches, re-publishes, hash collisions,
//! memtable size and reopenings, the embedded log answers appended /
//! duplicate / conflict exactly like a map of every id it ever took.

use std::collections::HashMap;

use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::testkit::append;
use crm_log::{AppendOutcome, Log, Position};
use proptest::collection::vec;
use proptest::prelude::*;

/// Two hash values for all ids: most lookups meet a collision.
fn two_hashes(id: &str) -> u64 {
    id.len() as u64 % 2
}

fn run(batches: Vec<(Vec<(u16, u8)>, bool)>, collide: bool, cap: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = EmbeddedConfig::new(d.path());
        cfg.index_memtable_ids = cap;
        cfg.segment_bytes = 4_000;
        cfg.id_hash = collide.then_some(two_hashes as fn(&str) -> u64);
        let mut log = EmbeddedLog::open(cfg.clone()).unwrap();
        let mut model: HashMap<String, (u8, u64)> = HashMap::new();
        let mut next = 0u64;
        for (batch, reopen) in batches {
            let mut want = Vec::new();
            let appends = batch
                .iter()
                .map(|&(id, content)| {
                    let id = format!("p{id}");
                    let p = |o| Position {
                        partition: 0,
                        offset: o,
                    };
                    want.push(match model.get(&id) {
                        Some(&(c, o)) if c == content => AppendOutcome::Duplicate(p(o)),
                        Some(&(_, o)) => AppendOutcome::Conflict(p(o)),
                        None => {
                            model.insert(id.clone(), (content, next));
                            next += 1;
                            AppendOutcome::Appended(p(next - 1))
                        }
                    });
                    append(&id, "s", &format!("c{content}"))
                })
                .collect();
            let got = log.append(appends).await.unwrap();
            assert_eq!(got, want);
            if reopen {
                drop(log);
                log = EmbeddedLog::open(cfg.clone()).unwrap();
                assert_eq!(log.len(), next);
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_log_deduplicates_like_a_map_of_every_id(
        batches in vec((vec((0u16..400, 0u8..3), 1..60), prop::bool::weighted(0.15)), 1..30),
        collide in any::<bool>(),
        cap in 2usize..50,
    ) {
        run(batches, collide, cap);
    }
}
