//! Ingest validation, piece by piece, on demo events (`crm-demo`):
//!
//! * `floor/serde_value`: `serde_json::from_slice::<Value>` (parse only);
//! * `floor/serde_typed`: `serde_json` into the typed `Event` (the floor the
//!   performance figures are ratios of: parse and type-check with serde
//!   alone, no schema, no normalisation, no I/O);
//! * `validate`: the ingest `Validator` (JSON Schema, typed parse, identity
//!   normalisation, cross-field rules);
//! * `canonical_json`, `content_hash`, `encode` (both in one pass, what
//!   publish uses), `stream_key`: what publish computes for every accepted
//!   event;
//! * `ingest_cpu`: all of it, per event, as `POST /v1/events` does.
//!
//! `cargo bench -p crm-events --bench validate`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use crm_demo::{generate, DemoConfig};
use crm_events::{Event, Validator};

/// About 20,000 demo events as published (JSON text).
fn demo_events() -> Vec<String> {
    let mut out = Vec::new();
    generate(&DemoConfig::new(2000, 10, 42), |v| {
        if out.len() < 20_000 {
            out.push(serde_json::to_string(&v).expect("serialises"));
        }
    });
    out
}

fn benches(c: &mut Criterion) {
    let events = demo_events();
    let bytes: usize = events.iter().map(String::len).sum();
    eprintln!(
        "{} demo events, mean {} bytes",
        events.len(),
        bytes / events.len()
    );
    let validator = Validator::new();
    let typed: Vec<Event> = events
        .iter()
        .map(|e| {
            validator
                .validate_json(e.as_bytes())
                .expect("demo events are valid")
        })
        .collect();

    let mut g = c.benchmark_group("events");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(10);
    g.bench_function("floor/serde_value", |b| {
        b.iter(|| {
            for e in &events {
                black_box(serde_json::from_slice::<serde_json::Value>(e.as_bytes()).unwrap());
            }
        })
    });
    g.bench_function("floor/serde_typed", |b| {
        b.iter(|| {
            for e in &events {
                black_box(Event::from_stored_json(e).unwrap());
            }
        })
    });
    g.bench_function("validate", |b| {
        b.iter(|| {
            for e in &events {
                black_box(validator.validate_json(e.as_bytes()).unwrap());
            }
        })
    });
    g.bench_function("canonical_json", |b| {
        b.iter(|| {
            for e in &typed {
                black_box(e.to_json());
            }
        })
    });
    g.bench_function("content_hash", |b| {
        b.iter(|| {
            for e in &typed {
                black_box(e.content_hash());
            }
        })
    });
    g.bench_function("encode", |b| {
        b.iter(|| {
            for e in &typed {
                black_box(e.encode());
            }
        })
    });
    g.bench_function("stream_key", |b| {
        b.iter(|| {
            for e in &typed {
                black_box(e.stream_key());
            }
        })
    });
    g.bench_function("ingest_cpu", |b| {
        b.iter(|| {
            for e in &events {
                let ev = validator.validate_json(e.as_bytes()).unwrap();
                black_box((ev.stream_key(), ev.encode()));
            }
        })
    });
    g.finish();
}

criterion_group!(validate, benches);
criterion_main!(validate);
