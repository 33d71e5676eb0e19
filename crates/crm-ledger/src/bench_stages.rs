//! `bench rebuild --stages`: where a rebuild's time goes, stage by stage,
//! over the same stored events.
//!
//! 1. **read**: the records read from the log's segments (CRC checked);
//! 2. **parse**: each stored event parsed into the typed `Event`, once;
//! 3. **fold**: the three projections applied to the parsed events in
//!    batches, as the runner does (a `Tx` per batch, a child `Tx` per event),
//!    over an in-memory `BTreeMap` store instead of sled: the projections'
//!    cost with a store that costs next to nothing;
//! 4. **store**: the fold's writes, batch by batch, committed to a fresh
//!    sled store opened as `rebuild` opens it (256 MiB cache): sled's cost
//!    alone, the ceiling of any rebuild into sled. This stage runs in a
//!    child process (`bench store-writes`) so that its RSS is sled's own.
//!
//! Stage 3 writes its batches to a file (not timed) that stage 4 replays.
//! File format, repeated: tree index (u8), log events covered (u32 LE),
//! entries (u32 LE), then per entry key length (u32 LE), key, value length
//! (u32 LE, `u32::MAX` for a removal) and value.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use crm_events::Event;
use crm_projection::{Changes, MemStore, Projection, Tx};

/// The batch size of `crm-ledger rebuild`.
const BATCH: usize = 5000;

#[derive(Debug, Args)]
pub struct StoreWritesArgs {
    /// A file of batches written by `bench rebuild --stages`.
    #[arg(long)]
    pub file: PathBuf,
    /// The sled cache, MiB (rebuild uses 256).
    #[arg(long, default_value_t = 256)]
    pub cache_mb: u64,
    /// Print the RSS every this many log events.
    #[arg(long, default_value_t = 250_000)]
    pub every: u64,
    /// Flush the store (wait for sled's writes) after each this many MB of
    /// committed writes (0: only sled's own background flush).
    #[arg(long, default_value_t = 0)]
    pub flush_every_mb: u64,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Stages 1-3 here, stage 4 in a child process; prints one line per stage.
pub fn stages(
    data_dir: &Path,
    limit: Option<u64>,
    keep_writes: Option<&Path>,
    floor_typed: f64,
) -> Result<()> {
    let log_dir = data_dir.join("log");
    let limit = limit.unwrap_or(u64::MAX);

    let started = Instant::now();
    let mut payloads = Vec::new();
    crm_log::embedded::scan_dir(&log_dir, |r| {
        payloads.push(r.payload);
        Ok((payloads.len() as u64) < limit)
    })?;
    let read = started.elapsed();
    let n = payloads.len() as u64;
    if n == 0 {
        bail!("{} holds no events", log_dir.display());
    }
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "stages over {n} log events ({} MB stored):",
        bytes as u64 / 1_000_000
    );
    println!(
        "  1 read   {:>7.2} s  {:>9.0} events/s  (segments, CRC checked, one thread)",
        read.as_secs_f64(),
        rate(n, read)
    );

    let projections = crate::projections::all();
    let file_path = match keep_writes {
        Some(p) => p.to_path_buf(),
        None => {
            std::env::temp_dir().join(format!("crm-ledger-bench-writes-{}", std::process::id()))
        }
    };
    let mut out = BufWriter::new(File::create(&file_path)?);
    let mut stores: Vec<MemStore> = projections.iter().map(|_| MemStore::default()).collect();
    let mut parse = Duration::ZERO;
    let mut fold = vec![Duration::ZERO; projections.len()];
    let (mut keys, mut key_bytes) = (0u64, 0u64);
    // Writes per (projection, key tag up to its first '/', or the customers'
    // key family): (keys, bytes).
    let mut by_tag = std::collections::BTreeMap::<(usize, String), (u64, u64)>::new();
    // Batch by batch, as a rebuild goes: parse, then each projection's fold.
    for chunk in payloads.chunks(BATCH) {
        let started = Instant::now();
        let mut events = Vec::with_capacity(chunk.len());
        for p in chunk {
            let s = std::str::from_utf8(p).context("stored event is not UTF-8")?;
            events.push(Event::from_stored_json(s).context("stored event cannot be read")?);
        }
        parse += started.elapsed();
        for (i, p) in projections.iter().enumerate() {
            let started = Instant::now();
            let changes = fold_batch(&**p, &stores[i], &events);
            fold[i] += started.elapsed();
            keys += changes.len() as u64;
            key_bytes += write_batch(&mut out, i as u8, events.len() as u32, &changes)?;
            for (k, v) in &changes.0 {
                let tag = if p.name() == "customers" {
                    crm_customers::keys::family(k)
                } else {
                    let tag = k
                        .iter()
                        .position(|&b| b == b'/')
                        .map_or(&k[..], |i| &k[..=i]);
                    String::from_utf8_lossy(tag).into_owned()
                };
                let e = by_tag.entry((i, tag)).or_default();
                e.0 += 1;
                e.1 += (k.len() + v.as_ref().map_or(0, Vec::len)) as u64;
            }
            stores[i].apply(changes);
        }
    }
    out.flush()?;
    drop(out);
    drop(payloads);
    println!(
        "  2 parse  {:>7.2} s  {:>9.0} events/s  ({:.2}x floor; a rebuild parses each event once per read model)",
        parse.as_secs_f64(),
        rate(n, parse),
        rate(n, parse) / floor_typed
    );
    let fold_all: Duration = fold.iter().sum();
    let applications = n * projections.len() as u64;
    println!(
        "  3 fold   {:>7.2} s  {:>9.0} applications/s  ({:.2}x floor; over an in-memory store, batches of {BATCH}: {})",
        fold_all.as_secs_f64(),
        rate(applications, fold_all),
        rate(applications, fold_all) / floor_typed,
        projections
            .iter()
            .zip(&fold)
            .map(|(p, d)| format!("{} {:.0}/s", p.name(), rate(n, *d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "           writes to commit: {:.2} keys, {:.0} bytes per log event",
        keys as f64 / n as f64,
        key_bytes as f64 / n as f64
    );
    for (i, p) in projections.iter().enumerate() {
        let mut tags: Vec<_> = by_tag.iter().filter(|((j, _), _)| *j == i).collect();
        let (k, b) = tags
            .iter()
            .fold((0, 0), |(k, b), (_, (k2, b2))| (k + k2, b + b2));
        tags.sort_by_key(|(_, (k, _))| std::cmp::Reverse(*k));
        println!(
            "             {}: {:.2} keys, {:.0} bytes; {}",
            p.name(),
            k as f64 / n as f64,
            b as f64 / n as f64,
            tags.iter()
                .take(8)
                .map(|((_, t), (k, b))| format!(
                    "{t} {:.2} / {:.0} B",
                    *k as f64 / n as f64,
                    *b as f64 / n as f64
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    drop(stores);

    let exe = std::env::current_exe()?;
    let status = std::process::Command::new(exe)
        .args(["bench", "store-writes", "--file"])
        .arg(&file_path)
        .status();
    if keep_writes.is_none() {
        let _ = std::fs::remove_file(&file_path);
    }
    if !status?.success() {
        bail!("the store stage failed");
    }
    Ok(())
}

/// One batch of one projection, as `runner::apply_batch` folds it (without
/// the checkpoint and the dead-letter handling, which demo events never
/// reach).
fn fold_batch(p: &dyn Projection, base: &MemStore, events: &[Event]) -> Changes {
    let mut tx = Tx::new(base);
    for e in events {
        let mut child = Tx::new(&tx);
        let changes = match p.apply(&mut child, e) {
            Ok(()) => child.into_changes(),
            Err(err) => {
                let mut dl = Tx::new(&tx);
                dl.dead_letter(e, err.to_string(), false);
                dl.into_changes()
            }
        };
        tx.absorb(changes);
    }
    tx.into_changes()
}

fn write_batch(out: &mut impl Write, tree: u8, events: u32, changes: &Changes) -> Result<u64> {
    out.write_all(&[tree])?;
    out.write_all(&events.to_le_bytes())?;
    out.write_all(&(changes.len() as u32).to_le_bytes())?;
    let mut bytes = 0u64;
    for (k, v) in &changes.0 {
        out.write_all(&(k.len() as u32).to_le_bytes())?;
        out.write_all(k)?;
        bytes += k.len() as u64;
        match v {
            Some(v) => {
                out.write_all(&(v.len() as u32).to_le_bytes())?;
                out.write_all(v)?;
                bytes += v.len() as u64;
            }
            None => out.write_all(&u32::MAX.to_le_bytes())?,
        }
    }
    Ok(bytes)
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_bytes(r: &mut impl Read, len: u32) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0u8; len as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// Stage 4: commits the batches of `--file` to a fresh sled store, timing
/// only the commits, and prints the RSS as the store grows.
pub fn store_writes(a: StoreWritesArgs) -> Result<ExitCode> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(&a.file)?);
    let dir = std::env::temp_dir().join(format!("crm-ledger-bench-store-{}", std::process::id()));
    let store = crm_projector::Store::open(&dir.join("store"), a.cache_mb << 20)?;
    let names = crate::projections::all();
    let trees = names
        .iter()
        .map(|p| store.tree(p.name()))
        .collect::<Result<Vec<_>, _>>()?;
    let rss_start = rss();
    let (mut commit, mut events, mut next_report) = (Duration::ZERO, 0u64, a.every);
    let (mut last_commit, mut last_events) = (Duration::ZERO, 0u64);
    let mut per_tree = vec![Duration::ZERO; trees.len()];
    let mut unflushed = 0u64;
    loop {
        let mut tag = [0u8; 1];
        match input.read_exact(&mut tag) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let tree = tag[0] as usize;
        let covered = read_u32(&mut input)? as u64;
        let entries = read_u32(&mut input)?;
        let mut batch = crm_projector::commit::Writes::new();
        for _ in 0..entries {
            let klen = read_u32(&mut input)?;
            let k = read_bytes(&mut input, klen)?;
            unflushed += klen as u64;
            match read_u32(&mut input)? {
                u32::MAX => batch.insert(k, None),
                vlen => {
                    unflushed += vlen as u64;
                    batch.insert(k, Some(read_bytes(&mut input, vlen)?))
                }
            };
        }
        // A checkpoint of the size the runtime writes.
        let checkpoint = format!("{{\"0\":{}}}", events + covered).into_bytes();
        let started = Instant::now();
        // As the runtime commits (written ahead, then key by key).
        crm_projector::commit::commit(&trees[tree], batch, checkpoint)?;
        if a.flush_every_mb > 0 && unflushed >= a.flush_every_mb << 20 {
            store.flush()?;
            unflushed = 0;
        }
        let took = started.elapsed();
        commit += took;
        per_tree[tree] += took;
        if tree == 0 {
            events += covered;
            if events >= next_report {
                next_report += a.every;
                println!(
                    "           {events} events committed: {:.0} events/s since the last line, RSS {} MB",
                    rate(events - last_events, commit - last_commit),
                    rss() / 1_000_000
                );
                (last_commit, last_events) = (commit, events);
            }
        }
    }
    let started = Instant::now();
    store.flush()?;
    let flush = started.elapsed();
    let total = commit + flush;
    let rss_end = rss();
    let applications = events * trees.len() as u64;
    println!(
        "  4 store  {:>7.2} s  {:>9.0} applications/s  ({events} log events = {:.0} events/s; sled alone, cache {} MiB; commits {:.2} s: {}; final flush {:.2} s)",
        total.as_secs_f64(),
        rate(applications, total),
        rate(events, total),
        a.cache_mb,
        commit.as_secs_f64(),
        names
            .iter()
            .zip(&per_tree)
            .map(|(p, d)| format!("{} {:.1} s", p.name(), d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        flush.as_secs_f64()
    );
    println!(
        "           RSS {} MB at the start, {} MB at the end; store on disk {} MB",
        rss_start / 1_000_000,
        rss_end / 1_000_000,
        crate::bench::dir_size(&dir) / 1_000_000
    );
    // What was committed, as `rebuild --digest` prints it: the store stage
    // commits exactly the read models a rebuild builds (an e2e test checks).
    for (p, tree) in names.iter().zip(&trees) {
        let d = crm_projector::digest(&crm_projector::TreeKv(tree.clone()))?;
        println!("           digest {} {d}", p.name());
    }
    drop(trees);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

fn rss() -> u64 {
    crate::bench::rss_of(std::process::id()).map_or(0, |(rss, _)| rss)
}
