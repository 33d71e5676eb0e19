//! `store-compare FILE STORE [CACHE_MB]`: replays a writes file of `crm-ledger
//! bench rebuild --stages --writes-file FILE` (one batch per projection and
//! rebuild batch, exactly the keys the read models write) into a fresh store
//! and prints the commit time, the rate in log events/s and the RSS as the
//! store grows. STORE is `sled`, `fjall` or `redb`.
//!
//! Each batch is one atomic commit, as in the projector (state and
//! checkpoint together); none waits for the disk, and the store is made
//! durable every 20 batches of the first projection (about 100,000 events),
//! like sled's background flush: the log is the source of truth.
//! Only commits are timed: not the folds' reads, which in the ledger wait
//! on sled's lock.
//!
//! Then it reads, on one thread with nothing else running: random gets of
//! keys it wrote and newest-first timeline pages (the last 20 entries of a
//! customer's timeline, `u/{customer}t` since customers format 4). Last, reads during writes: one thread commits the
//! file's batches again for 15 s while another reads a page and a key
//! 2,000 times a second, each latency counted from when the read was due.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

/// The ledger's allocator, so that sled is measured as the ledger runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TREES: [&str; 3] = ["customers", "cases", "campaigns"];

type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

trait Store: Sync {
    fn commit(&self, tree: usize, batch: Batch);
    fn persist(&self);
    /// A point read.
    fn get(&self, tree: usize, key: &[u8]) -> Option<Vec<u8>>;
    /// The last `limit` entries under `prefix` (newest first, as the
    /// timeline reads).
    fn scan_rev(&self, tree: usize, prefix: &[u8], limit: usize) -> usize;
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xFF; prefix.len() + 1]
}

struct Sled {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

impl Store for Sled {
    fn commit(&self, tree: usize, batch: Batch) {
        let mut b = sled::Batch::default();
        for (k, v) in batch {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.trees[tree].apply_batch(b).unwrap();
    }
    fn persist(&self) {
        self.db.flush().unwrap();
    }
    fn get(&self, tree: usize, key: &[u8]) -> Option<Vec<u8>> {
        self.trees[tree].get(key).unwrap().map(|v| v.to_vec())
    }
    fn scan_rev(&self, tree: usize, prefix: &[u8], limit: usize) -> usize {
        self.trees[tree]
            .scan_prefix(prefix)
            .rev()
            .take(limit)
            .map(|kv| kv.unwrap().1.len())
            .sum()
    }
}

struct Fjall {
    db: fjall::Database,
    keyspaces: Vec<fjall::Keyspace>,
}

impl Store for Fjall {
    fn commit(&self, tree: usize, batch: Batch) {
        let mut b = self.db.batch();
        let ks = &self.keyspaces[tree];
        for (k, v) in batch {
            match v {
                Some(v) => b.insert(ks, k, v),
                None => b.remove(ks, k),
            }
        }
        b.commit().unwrap();
    }
    fn persist(&self) {
        self.db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    fn get(&self, tree: usize, key: &[u8]) -> Option<Vec<u8>> {
        self.keyspaces[tree].get(key).unwrap().map(|v| v.to_vec())
    }
    fn scan_rev(&self, tree: usize, prefix: &[u8], limit: usize) -> usize {
        self.keyspaces[tree]
            .prefix(prefix)
            .rev()
            .take(limit)
            .map(|kv| kv.into_inner().unwrap().1.len())
            .sum()
    }
}

const TABLES: [redb::TableDefinition<&[u8], &[u8]>; 3] = [
    redb::TableDefinition::new("customers"),
    redb::TableDefinition::new("cases"),
    redb::TableDefinition::new("campaigns"),
];

struct Redb {
    db: redb::Database,
    durable_next: std::sync::atomic::AtomicBool,
}

impl Store for Redb {
    fn commit(&self, tree: usize, batch: Batch) {
        let mut tx = self.db.begin_write().unwrap();
        if !self
            .durable_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            tx.set_durability(redb::Durability::None).unwrap();
        }
        {
            let mut t = tx.open_table(TABLES[tree]).unwrap();
            for (k, v) in batch {
                match v {
                    Some(v) => {
                        t.insert(k.as_slice(), v.as_slice()).unwrap();
                    }
                    None => {
                        t.remove(k.as_slice()).unwrap();
                    }
                }
            }
        }
        tx.commit().unwrap();
    }
    fn persist(&self) {
        // The next commit is durable (and makes every earlier one durable).
        self.durable_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    fn get(&self, tree: usize, key: &[u8]) -> Option<Vec<u8>> {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().unwrap();
        let t = tx.open_table(TABLES[tree]).unwrap();
        t.get(key).unwrap().map(|v| v.value().to_vec())
    }
    fn scan_rev(&self, tree: usize, prefix: &[u8], limit: usize) -> usize {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().unwrap();
        let t = tx.open_table(TABLES[tree]).unwrap();
        let end = prefix_end(prefix);
        t.range(prefix..end.as_slice())
            .unwrap()
            .rev()
            .take(limit)
            .map(|kv| kv.unwrap().1.value().len())
            .sum()
    }
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn u32_of(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn bytes_of(r: &mut impl Read, n: u32) -> Vec<u8> {
    let mut v = vec![0u8; n as usize];
    r.read_exact(&mut v).unwrap();
    v
}

/// The next batch of the writes file: (tree, log events covered, writes).
fn next_batch(input: &mut impl Read) -> Option<(usize, u64, Batch)> {
    let mut tag = [0u8; 1];
    input.read_exact(&mut tag).ok()?;
    let covered = u32_of(input).unwrap() as u64;
    let n = u32_of(input).unwrap();
    let mut batch = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let kl = u32_of(input).unwrap();
        let k = bytes_of(input, kl);
        let v = match u32_of(input).unwrap() {
            u32::MAX => None,
            vl => Some(bytes_of(input, vl)),
        };
        batch.push((k, v));
    }
    Some((tag[0] as usize, covered, batch))
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: store-compare WRITES_FILE sled|fjall|redb [CACHE_MB]");
        std::process::exit(2);
    }
    let cache: u64 = args.get(3).map_or(256, |c| c.parse().unwrap()) << 20;
    let dir = std::env::temp_dir().join(format!("store-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store: Box<dyn Store> = match args[2].as_str() {
        "sled" => {
            let db = sled::Config::new()
                .path(dir.join("sled"))
                .cache_capacity(cache)
                .open()
                .unwrap();
            let trees = TREES.iter().map(|t| db.open_tree(t).unwrap()).collect();
            Box::new(Sled { db, trees })
        }
        "fjall" => {
            let db = fjall::Database::builder(dir.join("fjall"))
                .cache_size(cache)
                .open()
                .unwrap();
            let keyspaces = TREES
                .iter()
                .map(|t| {
                    db.keyspace(t, fjall::KeyspaceCreateOptions::default)
                        .unwrap()
                })
                .collect();
            Box::new(Fjall { db, keyspaces })
        }
        "redb" => {
            let db = redb::Database::builder()
                .set_cache_size(cache as usize)
                .create(dir.join("redb"))
                .unwrap();
            Box::new(Redb {
                db,
                durable_next: false.into(),
            })
        }
        other => panic!("unknown store {other}"),
    };
    let mut input = BufReader::with_capacity(1 << 20, File::open(&args[1]).unwrap());
    let (mut commit, mut events, mut batches0) = (Duration::ZERO, 0u64, 0u64);
    let (mut last_commit, mut last_events) = (Duration::ZERO, 0u64);
    // Every 97th key written, and the customers' timeline prefixes
    // (`u/{customer}t`: up to the end of the encoded id, `00 01`, and the
    // timeline's byte).
    let (mut sample, mut timelines, mut seen) = (Vec::new(), Vec::new(), 0u64);
    while let Some((tree, covered, batch)) = next_batch(&mut input) {
        for (k, v) in &batch {
            seen += 1;
            if seen % 97 == 0 && v.is_some() {
                sample.push((tree, k.clone()));
                // Customers format 4 groups a customer's keys: a timeline
                // entry is `u/{customer}t{position}`.
                if tree == 0 && k.starts_with(b"u/") {
                    if let Some(i) = k.windows(2).position(|w| w == [0, 1]) {
                        if k.get(i + 2) == Some(&b't') {
                            timelines.push(k[..i + 3].to_vec());
                        }
                    }
                }
            }
        }
        let started = Instant::now();
        if tree == 0 {
            batches0 += 1;
            if batches0 % 20 == 0 {
                store.persist();
            }
        }
        store.commit(tree, batch);
        commit += started.elapsed();
        if tree == 0 {
            events += covered;
            if events % 250_000 == 0 {
                println!(
                    "{:>5} {events:>8} events: {:>6.0} events/s since the last line, RSS {} MB",
                    args[2],
                    (events - last_events) as f64 / (commit - last_commit).as_secs_f64(),
                    rss() / 1_000_000
                );
                (last_commit, last_events) = (commit, events);
            }
        }
    }
    let started = Instant::now();
    store.persist();
    if args[2] == "redb" {
        // The durable commit persist() asked for.
        store.commit(0, Vec::new());
    }
    commit += started.elapsed();
    println!(
        "{:>5} total: {events} log events committed in {:.2} s = {:.0} log events/s = {:.0} applications/s; RSS {} MB; on disk {} MB (cache {} MiB)",
        args[2],
        commit.as_secs_f64(),
        events as f64 / commit.as_secs_f64(),
        3.0 * events as f64 / commit.as_secs_f64(),
        rss() / 1_000_000,
        dir_size(&dir) / 1_000_000,
        cache >> 20
    );

    // Reads, one thread, in a fixed pseudo-random order.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let gets = 200_000;
    let started = Instant::now();
    let mut found = 0;
    for _ in 0..gets {
        let (t, k) = &sample[next(sample.len())];
        found += store.get(*t, k).is_some() as usize;
    }
    let get_rate = gets as f64 / started.elapsed().as_secs_f64();
    let scans = 50_000;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..scans {
        bytes += store.scan_rev(0, &timelines[next(timelines.len())], 20);
    }
    let scan_rate = scans as f64 / started.elapsed().as_secs_f64();
    println!(
        "{:>5} reads: {get_rate:.0} random gets/s ({found} of {gets} found, {} keys sampled); {scan_rate:.0} newest-20 timeline scans/s ({} prefixes, {} KB read); RSS {} MB",
        args[2],
        sample.len(),
        timelines.len(),
        bytes / 1000,
        rss() / 1_000_000
    );

    // Reads while writes go on: the first batches of the file committed
    // again (overwrites) for 15 s, while another thread reads a random
    // newest-20 timeline page and a random key 2,000 times a second; each
    // read's latency counts from when it was due (no coordinated omission).
    let stop = std::sync::atomic::AtomicBool::new(false);
    let store_ref: &dyn Store = &*store;
    let (mut lat, written) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            let mut next = |n: usize| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % n as u64) as usize
            };
            let mut lat = Vec::new();
            let interval = Duration::from_micros(500);
            let start = Instant::now();
            let mut k = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let due = start + interval * k;
                k += 1;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                store_ref.scan_rev(0, &timelines[next(timelines.len())], 20);
                let (t, key) = &sample[next(sample.len())];
                store_ref.get(*t, key);
                lat.push(due.elapsed());
            }
            lat
        });
        let mut input = BufReader::with_capacity(1 << 20, File::open(&args[1]).unwrap());
        let started = Instant::now();
        let mut written = 0u64;
        while started.elapsed() < Duration::from_secs(15) {
            let Some((tree, covered, batch)) = next_batch(&mut input) else {
                break;
            };
            store_ref.commit(tree, batch);
            if tree == 0 {
                written += covered;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (reader.join().unwrap(), written as f64 / secs)
    });
    lat.sort_unstable();
    println!(
        "{:>5} reads during writes ({written:.0} log events/s written): {} reads (page + get), p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        args[2],
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        percentile(&lat, 0.999).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
