//! The embedded log: durable appends (group commit, one `fdatasync` per
//! group) and reads, with payloads of demo-event size (~700 bytes).
//!
//! `cargo bench -p crm-log --bench append`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crm_log::embedded::{EmbeddedConfig, EmbeddedLog};
use crm_log::{Append, Checkpoint, Log};

const PAYLOAD: usize = 700;
const BATCH: usize = 1000;

fn batch(next_id: &AtomicU64) -> Vec<Append> {
    let payload = vec![b'x'; PAYLOAD];
    (0..BATCH)
        .map(|i| {
            let n = next_id.fetch_add(1, Ordering::Relaxed);
            Append {
                event_id: format!("evt-{n:012}-bench"),
                stream_key: format!("customer/cust-{}", i % 97),
                content_hash: *blake3::hash(&n.to_le_bytes()).as_bytes(),
                event_type: "interaction.message".into(),
                version: 1,
                payload: payload.clone(),
            }
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).unwrap());
    let ids = Arc::new(AtomicU64::new(0));

    let mut g = c.benchmark_group("log");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for clients in [1usize, 4] {
        let per_iter = 10 * BATCH;
        g.throughput(Throughput::Elements(per_iter as u64));
        g.bench_function(format!("append/{clients}x{BATCH}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Batches are built before the clock starts.
                    let batches: Vec<Vec<Append>> =
                        (0..per_iter / BATCH).map(|_| batch(&ids)).collect();
                    let log = log.clone();
                    let started = Instant::now();
                    rt.block_on(async move {
                        let queue = Arc::new(std::sync::Mutex::new(batches));
                        let mut tasks = Vec::new();
                        for _ in 0..clients {
                            let log = log.clone();
                            let queue = queue.clone();
                            tasks.push(tokio::spawn(async move {
                                loop {
                                    let Some(b) = queue.lock().unwrap().pop() else {
                                        break;
                                    };
                                    log.append(b).await.unwrap();
                                }
                            }));
                        }
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    total += started.elapsed();
                }
                total
            })
        });
    }
    let written = log.len();
    g.throughput(Throughput::Elements(written));
    g.bench_function("read/all", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut r = log.reader(&Checkpoint::default()).await.unwrap();
                let mut n = 0u64;
                while n < written {
                    n += r
                        .next_batch(5000, Duration::from_millis(10))
                        .await
                        .unwrap()
                        .len() as u64;
                }
            })
        })
    });
    g.finish();
}

criterion_group!(append, benches);
criterion_main!(append);
