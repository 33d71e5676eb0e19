//! The projector's fold of a batch (`runner::apply_batch`): parse each stored
//! event, apply it, commit state and checkpoint in one sled batch, for each
//! projection on its own and for the three of them, on demo events.
//!
//! `cargo bench -p crm-projector --bench apply`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use crm_demo::{generate, DemoConfig};
use crm_events::{Event, Validator};
use crm_log::{Checkpoint, LogRecord, Position};
use crm_projection::Projection;
use crm_projector::runner::apply_batch;
use crm_projector::RunnerConfig;

const EVENTS: usize = 50_000;
const BATCH: usize = 2000;

fn batch_size() -> usize {
    std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(BATCH)
}

/// Demo events as the log stores them (validated, canonical, recorded_at set).
fn records() -> Vec<LogRecord> {
    let validator = Validator::new();
    let mut out = Vec::new();
    generate(&DemoConfig::new(3000, 20, 42), |v| {
        if out.len() < EVENTS {
            let mut e = validator.validate(v).expect("demo events are valid");
            e.recorded_at = Some(e.occurred_at);
            out.push(LogRecord {
                position: Position {
                    partition: 0,
                    offset: out.len() as u64,
                },
                event_id: e.event_id.clone(),
                payload: e.to_json().into_bytes(),
            });
        }
    });
    out
}

fn projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(crm_customers::CustomersProjection),
        Arc::new(crm_cases::CasesProjection),
        Arc::new(crm_campaigns::CampaignsProjection),
    ]
}

/// Applies every record to each projection in its own fresh tree.
fn fold_all(records: &[LogRecord], projections: &[Arc<dyn Projection>]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sled::Config::new()
        .path(dir.path())
        .cache_capacity(256 << 20);
    if std::env::var("SLED_HT").is_ok() {
        cfg = cfg.mode(sled::Mode::HighThroughput);
    }
    let db = cfg.open().unwrap();
    let config = RunnerConfig::default();
    let started = Instant::now();
    for p in projections {
        let tree = db.open_tree(p.name()).unwrap();
        let mut cp = Checkpoint::default();
        let (mut applied, mut last) = (0, None);
        for chunk in records.chunks(batch_size()) {
            apply_batch(
                &**p,
                &tree,
                &config,
                chunk,
                &mut cp,
                &mut applied,
                &mut last,
                false,
            )
            .unwrap();
        }
    }
    started.elapsed()
}

fn benches(c: &mut Criterion) {
    let records = records();
    if std::env::var("WRITE_STATS").is_ok() {
        write_stats(&records);
    }
    let mut g = c.benchmark_group("projector");
    g.sample_size(10);
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("parse_stored", |b| {
        b.iter(|| {
            for r in &records {
                black_box(
                    Event::from_stored_json(std::str::from_utf8(&r.payload).unwrap()).unwrap(),
                );
            }
        })
    });
    for p in projections() {
        g.bench_function(format!("apply/{}", p.name()), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| fold_all(&records, std::slice::from_ref(&p)))
                    .sum()
            })
        });
    }
    g.bench_function("apply/all_three", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| fold_all(&records, &projections())).sum())
    });
    g.finish();
}

criterion_group!(apply, benches);
criterion_main!(apply);

#[allow(dead_code)]
fn write_stats(records: &[LogRecord]) {
    use crm_projection::{KvRead, Tx};
    for p in projections() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let base = crm_projector::TreeKv(tree.clone());
        let (mut keys, mut bytes, mut per_event_keys, mut per_event_bytes) =
            (0usize, 0usize, 0usize, 0usize);
        let mut by_tag = std::collections::BTreeMap::<String, (usize, usize)>::new();
        for chunk in records.chunks(batch_size()) {
            let mut tx = Tx::new(&base);
            for r in chunk {
                let e = Event::from_stored_json(std::str::from_utf8(&r.payload).unwrap()).unwrap();
                let mut child = Tx::new(&tx);
                let _ = p.apply(&mut child, &e);
                let ch = child.into_changes();
                per_event_keys += ch.len();
                per_event_bytes +=
                    ch.0.iter()
                        .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
                        .sum::<usize>();
                tx.absorb(ch);
            }
            let ch = tx.into_changes();
            for (k, v) in &ch.0 {
                let tag = k
                    .iter()
                    .position(|&b| b == b'/')
                    .map_or(&k[..], |i| &k[..=i]);
                let e = by_tag
                    .entry(String::from_utf8_lossy(tag).into_owned())
                    .or_insert((0usize, 0usize));
                e.0 += 1;
                e.1 += k.len() + v.as_ref().map_or(0, |v| v.len());
            }
            keys += ch.len();
            bytes +=
                ch.0.iter()
                    .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
                    .sum::<usize>();
            let mut b = sled::Batch::default();
            for (k, v) in ch.0 {
                match v {
                    Some(v) => b.insert(k, v),
                    None => b.remove(k),
                }
            }
            tree.apply_batch(b).unwrap();
        }
        let _ = base.get(b"x");
        eprintln!("{}: per event {:.1} key writes ({:.0} bytes) before coalescing, {:.1} ({:.0} bytes) written to sled per event in batches of {}; tree {} keys",
            p.name(), per_event_keys as f64 / records.len() as f64, per_event_bytes as f64 / records.len() as f64,
            keys as f64 / records.len() as f64, bytes as f64 / records.len() as f64, batch_size(), tree.len());
        for (tag, (k, b)) in by_tag {
            eprintln!(
                "    {tag:<12} {:.2} writes, {:.0} bytes per event",
                k as f64 / records.len() as f64,
                b as f64 / records.len() as f64
            );
        }
    }
}
