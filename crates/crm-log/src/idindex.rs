//! The event-id index of the embedded log: a 64-bit hash of each event id ->
//! the record's log offset and its byte position in its segment.
//!
//! It is derived data: the segments are the truth, and any part of the index
//! that is missing, damaged or ahead of the log is rebuilt from them at open
//! (with a warning). A hash found here is never trusted alone: the writer
//! reads the record at that position (one `pread`) and compares the real
//! event id and content hash, so two ids with the same 64-bit hash are told
//! apart. Hits are rare (re-publishes and collisions); nearly every lookup is
//! of a new id and is answered from memory.
//!
//! ## Structure (LSM-lite)
//! - **The memtable**: the ids of the most recent records, in a hash map,
//!   at most `EmbeddedConfig::index_memtable_ids` of them (then it is
//!   frozen, still searchable, and written out by a background thread). It
//!   is frozen before a group commit that would take it past that count,
//!   so it never grows (a rehash of the whole table on the writer thread);
//!   the table written out is emptied and becomes the next one.
//! - **Runs**: immutable files `DIR/<start>-<end>.run` (20-digit offsets),
//!   each holding one entry per record with an offset in `[start, end)`;
//!   together they cover `[0, end of the last run)` without gaps. A run is
//!   a 56-byte header (`CRMIDX`, format, start, end, count, the hash of a
//!   probe id, the hash of the id of record `end - 1`, CRC-32C of the
//!   entries, CRC-32C of the header) and then 24-byte entries `(hash,
//!   offset, position)`, u64 LE, sorted by (hash, offset). It is written to
//!   a `.tmp` file, synced every 1.5 MiB and at its end, renamed, and the
//!   directory fsynced. The threads that write and merge runs run at a
//!   lower priority (nice 10) than the rest of the server. At open the
//!   log checks each run's last id against its record: runs that do not
//!   match the log (an index left beside segments restored from elsewhere)
//!   are dropped and their records indexed again.
//! - **In memory, per run**: a blocked Bloom filter (10 bits per id, one
//!   cache line per lookup, about 1% false positives) and a fence (every
//!   256th hash). A new id costs one cache line per run; a hit, or a false
//!   positive, one `pread` of 6 KiB. This (about 1.3 bytes per id) is the
//!   only part of the index whose memory grows with the log.
//! - **Merges**, size-tiered: when the 4 newest runs are of one size class
//!   (memtable x 4^k), a second background thread merges them into one
//!   (so a long merge never holds a memtable back), and a log of n ids has
//!   O(log n) runs. The merged run is in place before its inputs are
//!   deleted; inputs left by a crash are deleted at open; a merge in
//!   progress at shutdown is abandoned.
//!
//! A failed write of a run (a full disk) keeps the ids in memory and is
//! retried a few seconds later: nothing is lost, and nothing waits for it.
//!
//! ## What was acknowledged
//! `DIR/COMMITTED` holds (u64 LE, CRC-32C) the log's record count after the
//! last group commit, rewritten in place after every commit's `fdatasync`
//! (not itself synced: it only ever lags; at open the log first syncs its
//! last segment, so nothing the index claims can be lost by a power cut).
//! At open, what it and the runs cover was acknowledged: damage there is
//! never taken for a torn tail.
//! Nothing here is needed for durability: the segments and their
//! `fdatasync` are.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The hash of an event id, as stored in the index. Persisted: it must not
/// change between runs of the program (runs written with another function
/// are detected by their probe hash and rebuilt).
pub type IdHash = fn(&str) -> u64;

const HASH_KEY: &[u8; 32] = b"crm-ledger event id index, v1...";

/// Keyed BLAKE3 of the id, first 8 bytes.
pub fn default_id_hash(id: &str) -> u64 {
    let h = blake3::keyed_hash(HASH_KEY, id.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Hashed into every run's header: a run written with another hash
/// function is not used.
const PROBE_ID: &str = "\u{0}crm-ledger id index probe";

/// Ids in the memtable before it is written out: a hash map of 2^19 buckets
/// filled to its load factor (about 13 MB with the positions).
pub const DEFAULT_MEMTABLE_IDS: usize = 458_752;

const RUN_MAGIC: &[u8; 6] = b"CRMIDX";
const RUN_FORMAT: u8 = 1;
const RUN_HEADER: u64 = 56;
const ENTRY: usize = 24;
/// One fence (the hash of an entry) every this many entries.
const FENCE: usize = 256;
const BLOOM_BITS_PER_ID: u64 = 10;
const BLOOM_PROBES: usize = 7;
/// Size-tiered merging: this many runs of one size class are merged.
const TIER: usize = 4;
/// Beyond this many runs the two newest are merged whatever their size.
const MAX_RUNS: usize = 12;
const RETRY_FLUSH: Duration = Duration::from_secs(5);
const RETRY_MERGE: Duration = Duration::from_secs(30);
const MARKER: &str = "COMMITTED";

#[cfg(unix)]
pub(crate) fn read_exact_at(f: &File, buf: &mut [u8], pos: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, pos)
}

#[cfg(unix)]
fn write_all_at(f: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, pos)
}

#[cfg(windows)]
pub(crate) fn read_exact_at(f: &File, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, pos) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_all_at(f: &File, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_write(buf, pos) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The keys are hashes already: spread them (for the test hook's poor
/// hashes) with one multiplication instead of hashing them again.
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<Spread>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    hash: u64,
    offset: u64,
    pos: u64,
}

impl Entry {
    fn encode(&self) -> [u8; ENTRY] {
        let mut b = [0u8; ENTRY];
        b[..8].copy_from_slice(&self.hash.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..].copy_from_slice(&self.pos.to_le_bytes());
        b
    }
    fn decode(b: &[u8]) -> Entry {
        let u = |r: Range<usize>| u64::from_le_bytes(b[r].try_into().expect("8 bytes"));
        Entry {
            hash: u(0..8),
            offset: u(8..16),
            pos: u(16..24),
        }
    }
}

/// The ids of the records `[start, start + pos.len())`.
struct MemTable {
    start: u64,
    /// hash -> offset - start, of the first record with that hash.
    first: Map<u32>,
    /// Further records with a hash already in `first` (collisions: rare).
    more: Map<Vec<u32>>,
    /// Byte position of each record in its segment, by offset - start.
    pos: Vec<u64>,
}

impl MemTable {
    fn new(start: u64, capacity: usize) -> MemTable {
        MemTable {
            start,
            first: Map::with_capacity_and_hasher(capacity, Default::default()),
            more: Map::default(),
            pos: Vec::with_capacity(capacity),
        }
    }

    /// Empties the table for the records from `start`, keeping its memory
    /// (see [`IdIndex::spare`]).
    fn reset(&mut self, start: u64) {
        self.start = start;
        self.first.clear();
        self.more.clear();
        self.pos.clear();
    }

    fn len(&self) -> usize {
        self.pos.len()
    }

    fn end(&self) -> u64 {
        self.start + self.pos.len() as u64
    }

    fn insert(&mut self, hash: u64, offset: u64, pos: u64) {
        assert_eq!(offset, self.end(), "the id index takes records in order");
        let d = u32::try_from(self.pos.len()).expect("a memtable holds < 2^32 ids");
        self.pos.push(pos);
        match self.first.entry(hash) {
            MapEntry::Vacant(v) => {
                v.insert(d);
            }
            MapEntry::Occupied(_) => self.more.entry(hash).or_default().push(d),
        }
    }

    fn find(&self, hash: u64, out: &mut Vec<(u64, u64)>) {
        if let Some(&d) = self.first.get(&hash) {
            out.push((self.start + u64::from(d), self.pos[d as usize]));
            if let Some(more) = self.more.get(&hash) {
                out.extend(
                    more.iter()
                        .map(|&d| (self.start + u64::from(d), self.pos[d as usize])),
                );
            }
        }
    }

    /// Its entries, sorted, into `v` (emptied first; its memory is reused).
    fn sorted_entries(&self, v: &mut Vec<Entry>) {
        v.clear();
        v.reserve(self.len());
        let entry = |hash: u64, d: u32| Entry {
            hash,
            offset: self.start + u64::from(d),
            pos: self.pos[d as usize],
        };
        v.extend(self.first.iter().map(|(&h, &d)| entry(h, d)));
        for (&h, ds) in &self.more {
            v.extend(ds.iter().map(|&d| entry(h, d)));
        }
        v.sort_unstable();
    }
}

/// One cache line of a blocked Bloom filter.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Line([u64; 8]);

/// A blocked Bloom filter: every key sets `BLOOM_PROBES` bits in one
/// 512-bit line, so a lookup touches one cache line.
struct Bloom {
    lines: Vec<Line>,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Bloom {
    fn new(ids: u64) -> Bloom {
        let lines = (ids.max(1) * BLOOM_BITS_PER_ID).div_ceil(512);
        Bloom {
            lines: vec![Line::default(); lines as usize],
        }
    }

    fn line(&self, hash: u64) -> usize {
        (((hash >> 32) * self.lines.len() as u64) >> 32) as usize
    }

    fn insert(&mut self, hash: u64) {
        let i = self.line(hash);
        let mut m = mix(hash);
        for _ in 0..BLOOM_PROBES {
            let bit = (m & 511) as usize;
            self.lines[i].0[bit >> 6] |= 1 << (bit & 63);
            m >>= 9;
        }
    }

    fn may_contain(&self, hash: u64) -> bool {
        let line = &self.lines[self.line(hash)].0;
        let mut m = mix(hash);
        for _ in 0..BLOOM_PROBES {
            let bit = (m & 511) as usize;
            if line[bit >> 6] & (1 << (bit & 63)) == 0 {
                return false;
            }
            m >>= 9;
        }
        true
    }

    fn bytes(&self) -> usize {
        self.lines.len() * 64
    }
}

/// An immutable run file, with its Bloom filter and fences in memory.
struct Run {
    path: PathBuf,
    file: File,
    start: u64,
    end: u64,
    /// The hash of the id of record `end - 1`.
    last_hash: u64,
    bloom: Bloom,
    fences: Vec<u64>,
}

impl Run {
    fn count(&self) -> u64 {
        self.end - self.start
    }

    fn find(&self, hash: u64, out: &mut Vec<(u64, u64)>) -> io::Result<()> {
        if !self.bloom.may_contain(hash) {
            return Ok(());
        }
        // Entries with this hash lie after the last fence below it and
        // before the first fence above it.
        let upto = self.fences.partition_point(|&f| f <= hash);
        if upto == 0 {
            return Ok(());
        }
        let below = self.fences.partition_point(|&f| f < hash);
        let from = below.saturating_sub(1) * FENCE;
        let to = (upto * FENCE).min(self.count() as usize);
        let mut buf = vec![0u8; (to - from) * ENTRY];
        read_exact_at(&self.file, &mut buf, RUN_HEADER + (from * ENTRY) as u64)?;
        for chunk in buf.chunks_exact(ENTRY) {
            let e = Entry::decode(chunk);
            if e.hash == hash {
                out.push((e.offset, e.pos));
            } else if e.hash > hash {
                break;
            }
        }
        Ok(())
    }
}

fn run_name(start: u64, end: u64) -> String {
    format!("{start:020}-{end:020}.run")
}

fn parse_run_name(name: &str) -> Option<(u64, u64)> {
    let (s, e) = name.strip_suffix(".run")?.split_once('-')?;
    Some((s.parse().ok()?, e.parse().ok()?))
}

struct Header {
    start: u64,
    end: u64,
    probe: u64,
    last_hash: u64,
    entries_crc: u32,
}

fn encode_header(h: &Header) -> [u8; RUN_HEADER as usize] {
    let mut b = [0u8; RUN_HEADER as usize];
    b[..6].copy_from_slice(RUN_MAGIC);
    b[6] = RUN_FORMAT;
    b[8..16].copy_from_slice(&h.start.to_le_bytes());
    b[16..24].copy_from_slice(&h.end.to_le_bytes());
    b[24..32].copy_from_slice(&(h.end - h.start).to_le_bytes());
    b[32..40].copy_from_slice(&h.probe.to_le_bytes());
    b[40..48].copy_from_slice(&h.last_hash.to_le_bytes());
    b[48..52].copy_from_slice(&h.entries_crc.to_le_bytes());
    let crc = crc32c::crc32c(&b[..52]);
    b[52..].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode_header(b: &[u8; RUN_HEADER as usize]) -> Result<Header, String> {
    if &b[..6] != RUN_MAGIC || b[6] != RUN_FORMAT {
        return Err("not an id index run (bad magic or format)".into());
    }
    let crc = u32::from_le_bytes(b[52..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&b[..52]) != crc {
        return Err("header CRC mismatch".into());
    }
    let u = |r: Range<usize>| u64::from_le_bytes(b[r].try_into().expect("8 bytes"));
    let (start, end, count) = (u(8..16), u(16..24), u(24..32));
    if end <= start || count != end - start {
        return Err(format!(
            "impossible range {start}..{end} of {count} entries"
        ));
    }
    Ok(Header {
        start,
        end,
        probe: u(32..40),
        last_hash: u(40..48),
        entries_crc: u32::from_le_bytes(b[48..52].try_into().expect("4 bytes")),
    })
}

/// Checks the entries of a run as they are written or read, and builds
/// what is kept in memory.
struct RunBuilder {
    start: u64,
    end: u64,
    n: u64,
    crc: u32,
    bloom: Bloom,
    fences: Vec<u64>,
    last: Option<Entry>,
    last_hash: Option<u64>,
}

impl RunBuilder {
    fn new(start: u64, end: u64) -> RunBuilder {
        RunBuilder {
            start,
            end,
            n: 0,
            crc: 0,
            bloom: Bloom::new(end - start),
            fences: Vec::with_capacity(((end - start) as usize).div_ceil(FENCE)),
            last: None,
            last_hash: None,
        }
    }

    fn add(&mut self, e: Entry, bytes: &[u8]) -> Result<(), String> {
        if e.offset < self.start || e.offset >= self.end {
            return Err(format!(
                "entry for offset {} outside {}..{}",
                e.offset, self.start, self.end
            ));
        }
        if self.last.is_some_and(|l| e <= l) {
            return Err(format!("entries out of order at entry {}", self.n));
        }
        if self.n.is_multiple_of(FENCE as u64) {
            self.fences.push(e.hash);
        }
        if e.offset == self.end - 1 {
            self.last_hash = Some(e.hash);
        }
        self.bloom.insert(e.hash);
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.n += 1;
        self.last = Some(e);
        Ok(())
    }

    /// (entries CRC, hash of the last record's id, filter, fences).
    fn finish(self) -> Result<(u32, u64, Bloom, Vec<u64>), String> {
        if self.n != self.end - self.start {
            return Err(format!(
                "{} entries for the {} records {}..{}",
                self.n,
                self.end - self.start,
                self.start,
                self.end
            ));
        }
        let last_hash = self.last_hash.ok_or("no entry for the last record")?;
        Ok((self.crc, last_hash, self.bloom, self.fences))
    }
}

fn invalid(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

/// A run being written is synced every this many entries (1.5 MiB), not
/// only at its end. On ext4 (`data=ordered`) the log's `fdatasync` after
/// each group waits for the journal, and the journal for the data of every
/// file with newly allocated blocks: one sync of a whole run (11 MB for a
/// memtable, up to hundreds of MB for a merge) made the publishes of that
/// moment wait for all of it. In pieces, each wait is short.
const SYNC_EVERY_ENTRIES: usize = 65_536;

/// Writes a run covering `[start, end)` from entries in order: a `.tmp`
/// file, synced as it is written and at its end, renamed, the directory
/// fsynced.
fn write_run(
    dir: &Path,
    start: u64,
    end: u64,
    probe: u64,
    entries: impl Iterator<Item = io::Result<Entry>>,
    cancel: &AtomicBool,
    faults: &AtomicU32,
) -> io::Result<Run> {
    let path = dir.join(run_name(start, end));
    let tmp = dir.join(format!("{}.tmp", run_name(start, end)));
    let written = (|| {
        if faults
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(io::Error::other("injected failure (test)"));
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        w.write_all(&[0u8; RUN_HEADER as usize])?;
        let mut b = RunBuilder::new(start, end);
        for (i, e) in entries.enumerate() {
            if i % SYNC_EVERY_ENTRIES == 0 {
                if cancel.load(Ordering::Relaxed) {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
                }
                if i > 0 {
                    w.flush()?;
                    file.sync_data()?;
                }
            }
            let e = e?;
            let bytes = e.encode();
            b.add(e, &bytes).map_err(invalid)?;
            w.write_all(&bytes)?;
        }
        w.flush()?;
        drop(w);
        let (entries_crc, last_hash, bloom, fences) = b.finish().map_err(invalid)?;
        let header = Header {
            start,
            end,
            probe,
            last_hash,
            entries_crc,
        };
        write_all_at(&file, &encode_header(&header), 0)?;
        file.sync_all()?;
        Ok((file, last_hash, bloom, fences))
    })();
    let (file, last_hash, bloom, fences) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = fs::rename(&tmp, &path).and_then(|()| sync_dir(dir)) {
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(Run {
        path,
        file,
        start,
        end,
        last_hash,
        bloom,
        fences,
    })
}

/// Reads a run file in full, checking it; builds its filter and fences.
fn load_run(path: &Path, start: u64, end: u64, probe: u64) -> Result<Run, String> {
    let io = |e: io::Error| e.to_string();
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut h = [0u8; RUN_HEADER as usize];
    if len < RUN_HEADER {
        return Err(format!("{len} bytes, shorter than a header"));
    }
    read_exact_at(&file, &mut h, 0).map_err(io)?;
    let header = decode_header(&h)?;
    let (s, e) = (header.start, header.end);
    if (s, e) != (start, end) {
        return Err(format!("the header says {s}..{e}, the name {start}..{end}"));
    }
    if header.probe != probe {
        return Err("written with another id hash function".into());
    }
    let count = end - start;
    if len != RUN_HEADER + count * ENTRY as u64 {
        return Err(format!(
            "{len} bytes, expected {} for {count} entries",
            RUN_HEADER + count * ENTRY as u64
        ));
    }
    let mut b = RunBuilder::new(start, end);
    let mut buf = vec![0u8; ENTRY * 43_690];
    let mut at = RUN_HEADER;
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        read_exact_at(&file, &mut buf[..n], at).map_err(io)?;
        for chunk in buf[..n].chunks_exact(ENTRY) {
            b.add(Entry::decode(chunk), chunk)?;
        }
        at += n as u64;
    }
    let (actual, last_hash, bloom, fences) = b.finish()?;
    let crc = header.entries_crc;
    if actual != crc {
        return Err(format!(
            "entries CRC mismatch (stored {crc:08x}, computed {actual:08x})"
        ));
    }
    if last_hash != header.last_hash {
        return Err("the header's last id does not match the entries".into());
    }
    Ok(Run {
        path: path.to_path_buf(),
        file,
        start,
        end,
        last_hash,
        bloom,
        fences,
    })
}

/// Reads the entries of a run in order (for a merge).
struct RunCursor {
    run: Arc<Run>,
    next: u64,
    buf: Vec<u8>,
    at: usize,
}

impl RunCursor {
    fn new(run: Arc<Run>) -> RunCursor {
        RunCursor {
            run,
            next: 0,
            buf: Vec::new(),
            at: 0,
        }
    }

    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        if self.at == self.buf.len() {
            let left = self.run.count() - self.next;
            if left == 0 {
                return Ok(None);
            }
            let n = left.min(43_690) as usize;
            self.buf.resize(n * ENTRY, 0);
            read_exact_at(
                &self.run.file,
                &mut self.buf,
                RUN_HEADER + self.next * ENTRY as u64,
            )?;
            self.next += n as u64;
            self.at = 0;
        }
        let e = Entry::decode(&self.buf[self.at..self.at + ENTRY]);
        self.at += ENTRY;
        Ok(Some(e))
    }
}

/// Merges contiguous runs into one; deletes the inputs once it is in place.
fn merge_runs(
    dir: &Path,
    probe: u64,
    runs: &[Arc<Run>],
    cancel: &AtomicBool,
    faults: &AtomicU32,
) -> io::Result<Run> {
    let mut cursors: Vec<RunCursor> = runs.iter().cloned().map(RunCursor::new).collect();
    let mut heads = Vec::with_capacity(cursors.len());
    for c in &mut cursors {
        heads.push(c.next_entry()?);
    }
    let entries = std::iter::from_fn(|| {
        let i = (0..heads.len())
            .filter(|&i| heads[i].is_some())
            .min_by_key(|&i| heads[i])?;
        let e = heads[i].expect("some");
        match cursors[i].next_entry() {
            Ok(next) => heads[i] = next,
            Err(err) => {
                heads.iter_mut().for_each(|h| *h = None);
                return Some(Err(err));
            }
        }
        Some(Ok(e))
    });
    let start = runs[0].start;
    let end = runs.last().expect("runs").end;
    let merged = write_run(dir, start, end, probe, entries, cancel, faults)?;
    for r in runs {
        // Still open (and readable) by the writer until it swaps in the
        // merged run; a crash before this is cleaned up at open.
        let _ = fs::remove_file(&r.path);
    }
    Ok(merged)
}

/// Writes a memtable as a run (never cancelled: it is bounded), sorting
/// its entries in `scratch`.
fn flush_mem(
    dir: &Path,
    probe: u64,
    mem: &MemTable,
    faults: &AtomicU32,
    scratch: &mut Vec<Entry>,
) -> io::Result<Run> {
    mem.sorted_entries(scratch);
    write_run(
        dir,
        mem.start,
        mem.end(),
        probe,
        scratch.iter().copied().map(Ok),
        &AtomicBool::new(false),
        faults,
    )
}

/// The nice value of the index's background threads.
const BACKGROUND_NICE: i32 = 10;

/// Makes the calling thread yield the CPU to the server's other threads.
/// Writing a run out sorts and encodes hundreds of thousands of entries,
/// tens of milliseconds of CPU that has seconds to finish; at the default
/// priority it took a core from the publishes' validation at each memtable
/// swap.
fn lower_this_threads_priority() {
    if let Err(error) = crate::lower_this_threads_priority(BACKGROUND_NICE) {
        tracing::debug!(%error, "could not lower the priority of an id index thread");
    }
}

enum Job {
    Flush(Arc<MemTable>),
    Merge(Vec<Arc<Run>>),
}

enum Done {
    Flushed(io::Result<Run>),
    Merged(io::Result<Run>),
}

/// A background thread; one writes memtables out, another merges runs,
/// so that a long merge never holds a memtable back.
struct Worker {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Done>,
    thread: JoinHandle<()>,
    /// A job is out.
    busy: bool,
}

const FLUSH: usize = 0;
const MERGE: usize = 1;

/// The index; owned by the log's writer thread. See the module docs.
pub(crate) struct IdIndex {
    dir: PathBuf,
    hash: IdHash,
    probe: u64,
    cap: usize,
    /// Contiguous from offset 0, in offset order.
    runs: Vec<Arc<Run>>,
    /// A full memtable being written out (or waiting to be, after a failure).
    frozen: Option<Arc<MemTable>>,
    mem: MemTable,
    /// The last memtable written out, emptied, to become the next one.
    /// The two tables take turns: a fresh table of `cap` ids (about 12 MB)
    /// per swap would be memory the allocator gives back to the kernel and
    /// faults in again, page by page, on the writer thread that every
    /// publish waits for (seen as 0.1-0.2 s stalls in profiles).
    spare: Option<MemTable>,
    marker: File,
    marker_failed: bool,
    /// `[FLUSH]` and `[MERGE]`, started when first needed.
    workers: [Option<Worker>; 2],
    /// After a failure, when to try again, per worker.
    retry_at: [Option<Instant>; 2],
    grew_warned: bool,
    cancel: Arc<AtomicBool>,
    /// Test hook: this many run writes fail.
    faults: Arc<AtomicU32>,
}

fn read_marker(path: &Path) -> Option<u64> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the id index's commit marker; ignoring it");
            return None;
        }
    };
    if bytes.len() >= 12 {
        let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[..8]) == crc {
            return Some(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
        }
    }
    if !bytes.is_empty() {
        tracing::warn!(file = %path.display(), "the id index's commit marker is damaged; ignoring it");
    }
    None
}

impl IdIndex {
    /// Opens the index in `dir`: loads and checks its runs (a damaged run,
    /// and every run after it, is deleted: those records are indexed again
    /// from the log). Returns the index, which covers `[0, indexed_end())`,
    /// and the offset below which every record was acknowledged.
    pub(crate) fn open(dir: &Path, cap: usize, hash: IdHash) -> io::Result<(IdIndex, u64)> {
        fs::create_dir_all(dir)?;
        let probe = hash(PROBE_ID);
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // An unfinished flush or merge.
                fs::remove_file(entry.path())?;
            } else if let Some((s, e)) = parse_run_name(&name) {
                found.push((s, e, entry.path()));
            }
        }
        // Longest first among runs of one start: a merged run before the
        // inputs a crash left behind.
        found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut runs = Vec::new();
        let mut next = 0u64;
        for (s, e, path) in found {
            if s < next {
                tracing::info!(run = %path.display(), "deleting an id index run already merged into another");
                fs::remove_file(&path)?;
                continue;
            }
            let loaded = if s > next {
                Err(format!("it starts at {s}, after a gap from {next}"))
            } else if e <= s {
                Err("empty range".to_string())
            } else {
                load_run(&path, s, e, probe)
            };
            match loaded {
                Ok(run) => {
                    runs.push(Arc::new(run));
                    next = e;
                }
                Err(why) => {
                    tracing::warn!(run = %path.display(), reason = %why, "id index run unusable: deleted; its records are indexed again from the log");
                    fs::remove_file(&path)?;
                }
            }
        }
        let marker_path = dir.join(MARKER);
        let committed = read_marker(&marker_path);
        let marker = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&marker_path)?;
        let acknowledged = committed.unwrap_or(0).max(next);
        let index = IdIndex {
            dir: dir.to_path_buf(),
            hash,
            probe,
            cap: cap.max(1),
            runs,
            frozen: None,
            mem: MemTable::new(next, cap.max(1)),
            spare: None,
            marker,
            marker_failed: false,
            workers: [None, None],
            retry_at: [None, None],
            grew_warned: false,
            cancel: Arc::new(AtomicBool::new(false)),
            faults: Arc::new(AtomicU32::new(0)),
        };
        tracing::debug!(
            runs = index.runs.len(),
            covers = next,
            acknowledged,
            "id index runs loaded"
        );
        Ok((index, acknowledged))
    }

    /// The hash of an event id.
    pub(crate) fn hash(&self, id: &str) -> u64 {
        (self.hash)(id)
    }

    /// Every record in `[0, indexed_end())` is in the index.
    pub(crate) fn indexed_end(&self) -> u64 {
        self.mem.end()
    }

    /// (offset, byte position) of every indexed record whose id has this
    /// hash (usually none; the caller reads each to compare the id).
    pub(crate) fn candidates(&self, hash: u64, out: &mut Vec<(u64, u64)>) -> io::Result<()> {
        out.clear();
        self.mem.find(hash, out);
        if let Some(f) = &self.frozen {
            f.find(hash, out);
        }
        for r in self.runs.iter().rev() {
            r.find(hash, out)?;
        }
        Ok(())
    }

    /// Called before `n` ids are inserted in one go (a group commit):
    /// freezes the memtable now if they would take it past `cap`. A table
    /// taken past the capacity it was made with rehashes every entry into
    /// one twice the size, on the writer thread, just before it is frozen
    /// anyway: that was 15 ms of CPU and a 30 ms publish at every swap.
    pub(crate) fn reserve(&mut self, n: usize) {
        if self.mem.len() > 0 && self.mem.len() + n > self.cap && self.frozen.is_none() {
            self.freeze();
        }
    }

    /// The memtable becomes the frozen one (to be written out by
    /// [`maintain`](Self::maintain)); the spare, emptied, or a new table
    /// takes its place.
    fn freeze(&mut self) {
        debug_assert!(self.frozen.is_none());
        let next = match self.spare.take() {
            Some(mut m) => {
                m.reset(self.mem.end());
                m
            }
            None => MemTable::new(self.mem.end(), self.cap),
        };
        self.frozen = Some(Arc::new(std::mem::replace(&mut self.mem, next)));
    }

    /// Adds the record at `offset` (the next one: records come in order).
    pub(crate) fn insert(&mut self, hash: u64, offset: u64, pos: u64) {
        self.mem.insert(hash, offset, pos);
    }

    /// [`insert`](Self::insert) while the log opens: a full memtable is
    /// written out on this thread (no writer is running yet).
    pub(crate) fn insert_at_open(&mut self, hash: u64, offset: u64, pos: u64) {
        self.mem.insert(hash, offset, pos);
        if self.mem.len() >= self.cap && self.retry_at[FLUSH].is_none() {
            self.write_mem_now();
        }
    }

    /// Writes the memtable out on this thread; on failure it stays in
    /// memory (and the write is retried later).
    fn write_mem_now(&mut self) {
        match flush_mem(
            &self.dir,
            self.probe,
            &self.mem,
            &self.faults,
            &mut Vec::new(),
        ) {
            Ok(run) => {
                self.runs.push(Arc::new(run));
                let end = self.mem.end();
                self.mem.reset(end);
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing an id index run failed; its ids stay in memory and the write is retried");
                self.retry_at[FLUSH] = Some(Instant::now() + RETRY_FLUSH);
            }
        }
    }

    /// For each run: (its first offset, its last offset, the hash of the id
    /// the record at its last offset must have).
    pub(crate) fn run_checks(&self) -> Vec<(u64, u64, u64)> {
        self.runs
            .iter()
            .map(|r| (r.start, r.end - 1, r.last_hash))
            .collect()
    }

    /// At open: drops what the index holds at or beyond offset `limit`
    /// (the log ends there, or the runs from there on do not match it).
    /// Returns where indexing from the log must start again, if anything
    /// was dropped.
    pub(crate) fn keep_below(&mut self, limit: u64) -> io::Result<Option<u64>> {
        if self.mem.end() <= limit {
            return Ok(None);
        }
        assert!(
            self.frozen.is_none() && self.workers.iter().all(Option::is_none),
            "only at open"
        );
        while self.runs.last().is_some_and(|r| r.end > limit) {
            let r = self.runs.pop().expect("a run");
            fs::remove_file(&r.path)?;
        }
        let from = self.runs.last().map_or(0, |r| r.end);
        self.mem = MemTable::new(from, self.cap);
        Ok(Some(from))
    }

    /// Records that the log holds `next_offset` records, all synced.
    pub(crate) fn set_committed(&mut self, next_offset: u64) {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&next_offset.to_le_bytes());
        let crc = crc32c::crc32c(&b[..8]);
        b[8..12].copy_from_slice(&crc.to_le_bytes());
        match write_all_at(&self.marker, &b, 0) {
            Ok(()) => self.marker_failed = false,
            Err(e) => {
                if !self.marker_failed {
                    tracing::warn!(error = %e, "cannot update the id index's commit marker (only the check of a damaged log tail uses it)");
                }
                self.marker_failed = true;
            }
        }
    }

    /// Takes finished background work in and starts more: a full memtable
    /// is frozen and written out, runs merged. Called by the writer after
    /// each group commit; never waits.
    pub(crate) fn maintain(&mut self) {
        for lane in [FLUSH, MERGE] {
            while let Some(w) = &mut self.workers[lane] {
                match w.done.try_recv() {
                    Ok(done) => {
                        w.busy = false;
                        self.finished(done);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        // It panicked (a bug): another redoes its job.
                        tracing::error!("an id index thread stopped; starting another");
                        self.workers[lane] = None;
                        self.retry_at[lane] = Some(Instant::now() + RETRY_FLUSH);
                    }
                }
            }
        }
        if self.mem.len() >= self.cap {
            if self.frozen.is_none() {
                self.freeze();
            } else if self.mem.len() >= 2 * self.cap
                && self.retry_at[FLUSH].is_some()
                && !self.grew_warned
            {
                self.grew_warned = true;
                tracing::warn!(
                    ids = self.mem.len(),
                    "the id index cannot write its runs; its memory grows until it can"
                );
            }
        }
        let now = Instant::now();
        let free = |lane: usize, this: &Self| {
            !this.workers[lane].as_ref().is_some_and(|w| w.busy)
                && this.retry_at[lane].is_none_or(|t| now >= t)
        };
        if free(FLUSH, self) {
            if let Some(f) = &self.frozen {
                let job = Job::Flush(f.clone());
                self.start(FLUSH, job);
            }
        }
        if free(MERGE, self) {
            if let Some(r) = self.merge_plan() {
                let job = Job::Merge(self.runs[r].to_vec());
                self.start(MERGE, job);
            }
        }
    }

    fn finished(&mut self, done: Done) {
        match done {
            Done::Flushed(Ok(run)) => {
                let f = self
                    .frozen
                    .take()
                    .expect("a frozen memtable was being written");
                debug_assert_eq!((f.start, f.end()), (run.start, run.end));
                tracing::debug!(start = run.start, end = run.end, "id index run written");
                self.runs.push(Arc::new(run));
                // The flush thread has let go of it; a table that grew far
                // past `cap` (while writes failed) is not kept.
                if let Ok(m) = Arc::try_unwrap(f) {
                    if m.len() <= 2 * self.cap {
                        self.spare = Some(m);
                    }
                }
                self.retry_at[FLUSH] = None;
                self.grew_warned = false;
            }
            Done::Merged(Ok(run)) => {
                let i = self.runs.iter().position(|r| r.start == run.start);
                let j = self.runs.iter().position(|r| r.end == run.end);
                let (Some(i), Some(j)) = (i, j) else {
                    unreachable!("merged runs are still in the index");
                };
                tracing::debug!(
                    start = run.start,
                    end = run.end,
                    inputs = j + 1 - i,
                    "id index runs merged"
                );
                self.runs.splice(i..=j, [Arc::new(run)]);
                self.retry_at[MERGE] = None;
            }
            Done::Flushed(Err(e)) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(error = %e, "writing an id index run failed; its ids stay in memory and the write is retried");
                    self.retry_at[FLUSH] = Some(Instant::now() + RETRY_FLUSH);
                }
            }
            Done::Merged(Err(e)) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(error = %e, "merging id index runs failed; retried later");
                    self.retry_at[MERGE] = Some(Instant::now() + RETRY_MERGE);
                }
            }
        }
    }

    /// The newest runs to merge, if any. Size classes (`cap` x 4^k) do
    /// not increase from the oldest run to the newest: a newer run of a
    /// larger class (a memtable that grew while a merge ran) is merged with
    /// the smaller ones before it, and 4 runs of the newest class into one.
    /// So a log of n ids has at most 3 runs per class, O(log n) in all, and
    /// each id is rewritten about once per class.
    fn merge_plan(&self) -> Option<Range<usize>> {
        let n = self.runs.len();
        if n < 2 {
            return None;
        }
        let class = |r: &Run| {
            let mut c = 0;
            let mut size = (self.cap as u64) * TIER as u64;
            while r.count() >= size {
                c += 1;
                size = size.saturating_mul(TIER as u64);
            }
            c
        };
        let newest = class(&self.runs[n - 1]);
        let mut i = n - 1;
        while i > 0 && class(&self.runs[i - 1]) < newest {
            i -= 1;
        }
        if i < n - 1 {
            return Some(i..n);
        }
        if n >= TIER && self.runs[n - TIER..].iter().all(|r| class(r) == newest) {
            return Some(n - TIER..n);
        }
        (n > MAX_RUNS).then(|| n - 2..n)
    }

    fn start(&mut self, lane: usize, job: Job) {
        if self.workers[lane].is_none() {
            let (jobs, job_rx) = mpsc::channel::<Job>();
            let (done_tx, done) = mpsc::channel();
            let (dir, probe) = (self.dir.clone(), self.probe);
            let (cancel, faults) = (self.cancel.clone(), self.faults.clone());
            let name = if lane == FLUSH {
                "crm-log-ids-flush"
            } else {
                "crm-log-ids-merge"
            };
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    lower_this_threads_priority();
                    // Kept from one run write to the next, like the memtables.
                    let mut scratch = Vec::new();
                    while let Ok(job) = job_rx.recv() {
                        let done = match job {
                            Job::Flush(mem) => {
                                let r = flush_mem(&dir, probe, &mem, &faults, &mut scratch);
                                // Before answering, so that the writer gets
                                // the table back.
                                drop(mem);
                                Done::Flushed(r)
                            }
                            Job::Merge(runs) => {
                                Done::Merged(merge_runs(&dir, probe, &runs, &cancel, &faults))
                            }
                        };
                        if done_tx.send(done).is_err() {
                            break;
                        }
                    }
                });
            match thread {
                Ok(thread) => {
                    self.workers[lane] = Some(Worker {
                        jobs,
                        done,
                        thread,
                        busy: false,
                    })
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start an id index thread; retried later");
                    self.retry_at[lane] = Some(Instant::now() + RETRY_FLUSH);
                    return;
                }
            }
        }
        let w = self.workers[lane].as_mut().expect("a worker");
        if w.jobs.send(job).is_ok() {
            w.busy = true;
        } else {
            // The thread died (a panic): start another next time.
            tracing::error!("an id index thread stopped; starting another");
            self.workers[lane] = None;
            self.retry_at[lane] = Some(Instant::now() + RETRY_FLUSH);
        }
    }

    /// Stops background work: a merge in progress is abandoned, a full
    /// memtable written out (the rest is indexed from the log at open).
    pub(crate) fn close(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        for lane in [FLUSH, MERGE] {
            if let Some(w) = self.workers[lane].take() {
                drop(w.jobs);
                while let Ok(done) = w.done.recv() {
                    self.finished(done);
                }
                let _ = w.thread.join();
            }
        }
        if let Some(f) = self.frozen.take() {
            match flush_mem(&self.dir, self.probe, &f, &self.faults, &mut Vec::new()) {
                Ok(run) => self.runs.push(Arc::new(run)),
                Err(e) => {
                    tracing::warn!(error = %e, "writing an id index run at shutdown failed; its ids are indexed from the log at the next start");
                    return;
                }
            }
        }
        if self.mem.len() >= self.cap {
            self.write_mem_now();
        }
    }

    /// Bytes of memory that grow with the log: Bloom filters and fences.
    pub(crate) fn resident_bytes(&self) -> usize {
        self.runs
            .iter()
            .map(|r| r.bloom.bytes() + r.fences.len() * 8)
            .sum()
    }

    pub(crate) fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Ids held in memory only (not yet in a run).
    pub(crate) fn memtable_len(&self) -> usize {
        self.mem.len() + self.frozen.as_ref().map_or(0, |f| f.len())
    }

    /// Test hook: the next `n` run writes fail.
    #[cfg(test)]
    fn fail_writes(&self, n: u32) {
        self.faults.store(n, Ordering::SeqCst);
    }

    /// Test hook: waits for every job out to come back.
    #[cfg(test)]
    fn wait_busy(&mut self) {
        for lane in [FLUSH, MERGE] {
            if let Some(w) = &mut self.workers[lane] {
                if w.busy {
                    let done = w.done.recv().expect("the worker answers");
                    w.busy = false;
                    self.finished(done);
                }
            }
        }
    }

    /// Test hook: waits until no background work is left to do.
    #[cfg(test)]
    fn settle(&mut self) {
        loop {
            self.retry_at = [None, None];
            self.maintain();
            if self.workers.iter().flatten().all(|w| !w.busy) {
                return;
            }
            self.wait_busy();
        }
    }
}

impl Drop for IdIndex {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> u64 {
        mix(i ^ 0x5555)
    }

    fn found(ix: &IdIndex, hash: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        ix.candidates(hash, &mut out).unwrap();
        out.sort_unstable();
        out
    }

    #[test]
    fn bloom_has_no_false_negatives_and_about_one_percent_false_positives() {
        let n = 200_000u64;
        let mut b = Bloom::new(n);
        for i in 0..n {
            b.insert(h(i));
        }
        assert!((0..n).all(|i| b.may_contain(h(i))));
        let fp = (n..n + 1_000_000).filter(|&i| b.may_contain(h(i))).count();
        let rate = fp as f64 / 1e6;
        assert!(rate < 0.02, "false positive rate {rate}");
        assert!(b.bytes() as u64 <= n * BLOOM_BITS_PER_ID / 8 + 64);
    }

    #[test]
    fn a_run_finds_every_entry_even_with_equal_hashes_across_fences() {
        let d = tempfile::tempdir().unwrap();
        // Runs of 300 equal hashes straddle the fences (every 256 entries).
        let n = 3_000u64;
        let mut entries: Vec<Entry> = (0..n)
            .map(|o| Entry {
                hash: (o % 10) * 1_000,
                offset: o,
                pos: o * 7,
            })
            .collect();
        entries.sort_unstable();
        let no = AtomicBool::new(false);
        let run = write_run(
            d.path(),
            0,
            n,
            1,
            entries.into_iter().map(Ok),
            &no,
            &AtomicU32::new(0),
        )
        .unwrap();
        for k in 0..10 {
            let mut out = Vec::new();
            run.find(k * 1_000, &mut out).unwrap();
            out.sort_unstable();
            let want: Vec<_> = (0..n).filter(|o| o % 10 == k).map(|o| (o, o * 7)).collect();
            assert_eq!(out, want, "hash {k}");
            let mut none = Vec::new();
            run.find(k * 1_000 + 1, &mut none).unwrap();
            assert!(none.is_empty());
        }
        // Loaded back: the same.
        let loaded = load_run(&run.path, 0, n, 1).unwrap();
        assert_eq!(loaded.fences, run.fences);
        assert!(
            load_run(&run.path, 0, n, 2).is_err(),
            "another hash function"
        );
    }

    #[test]
    fn flushes_merges_and_reopen_keep_every_entry() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ids");
        let n = 5_000u64;
        let covered;
        {
            let (mut ix, ack) = IdIndex::open(&dir, 100, default_id_hash).unwrap();
            assert_eq!((ack, ix.indexed_end()), (0, 0));
            for o in 0..n {
                ix.insert(h(o), o, o * 3);
                if o % 37 == 0 {
                    ix.maintain();
                }
            }
            ix.settle();
            ix.set_committed(n);
            covered = ix.runs.last().unwrap().end;
            // 50 memtables of 100, merged by fours.
            assert!(ix.runs() <= 3 * 3 + 1, "{} runs", ix.runs());
            for o in (0..n).step_by(7) {
                assert_eq!(found(&ix, h(o)), vec![(o, o * 3)], "offset {o}");
            }
            assert!(found(&ix, h(n + 1)).is_empty());
            let files = fs::read_dir(&dir).unwrap().count();
            assert_eq!(files, ix.runs() + 1, "only the live runs and the marker");
        }
        let (ix, ack) = IdIndex::open(&dir, 100, default_id_hash).unwrap();
        assert_eq!(ack, n);
        assert!(covered > n - 300, "the full memtables were written out");
        assert_eq!(ix.indexed_end(), covered, "the rest comes from the log");
        for o in 0..covered {
            assert_eq!(found(&ix, h(o)), vec![(o, o * 3)], "offset {o}");
        }
        assert!(found(&ix, h(n - 1)).is_empty() || covered == n);
        assert!(ix.resident_bytes() > 0);
    }

    #[test]
    fn the_written_memtable_is_emptied_and_becomes_the_next_one() {
        let d = tempfile::tempdir().unwrap();
        let (mut ix, _) = IdIndex::open(d.path(), 100, default_id_hash).unwrap();
        let fill = |ix: &mut IdIndex, from: u64| {
            for o in from..from + 100 {
                ix.insert(h(o), o, o * 3);
            }
            ix.maintain();
        };
        fill(&mut ix, 0);
        let first_table = ix.frozen.as_ref().expect("frozen").pos.as_ptr();
        ix.settle();
        let spare = ix.spare.as_ref().expect("the written table is kept");
        assert_eq!(spare.pos.as_ptr(), first_table);
        assert_eq!(ix.runs(), 1);
        // The next swap takes it, emptied, for the records from 200 on.
        fill(&mut ix, 100);
        assert!(ix.spare.is_none());
        assert_eq!(ix.mem.pos.as_ptr(), first_table);
        assert_eq!((ix.mem.start, ix.mem.len()), (200, 0));
        for o in 200..250 {
            ix.insert(h(o), o, o * 3);
        }
        ix.settle();
        // Nothing of its first records is left in it: each id is found
        // once, where it is.
        for o in 0..250 {
            assert_eq!(found(&ix, h(o)), vec![(o, o * 3)], "offset {o}");
        }
        assert!(found(&ix, h(250)).is_empty());
    }

    #[test]
    fn groups_never_take_the_memtable_past_its_capacity() {
        let d = tempfile::tempdir().unwrap();
        let (mut ix, _) = IdIndex::open(d.path(), 100, default_id_hash).unwrap();
        let buckets = ix.mem.first.capacity();
        let mut o = 0;
        for _ in 0..20 {
            // As the log's writer does: a group of 30 new ids, then the
            // background work.
            ix.reserve(30);
            for _ in 0..30 {
                ix.insert(h(o), o, o);
                o += 1;
            }
            assert!(ix.mem.len() <= 100, "{} ids in the memtable", ix.mem.len());
            assert_eq!(ix.mem.first.capacity(), buckets, "the memtable grew");
            ix.maintain();
            ix.settle();
        }
        // Frozen at 90 ids each (a fourth group would not fit), then
        // merged by fours.
        assert!(ix.runs() > 1);
        for r in &ix.runs {
            assert_eq!(r.count() % 90, 0, "a run of {} ids", r.count());
        }
        for o in 0..o {
            assert_eq!(found(&ix, h(o)), vec![(o, o)], "offset {o}");
        }
    }

    /// The nice values of this process's threads named `name` (as the
    /// kernel keeps it: its first 15 bytes).
    #[cfg(target_os = "linux")]
    fn nice_of_threads(name: &str) -> Vec<i32> {
        let mut nice = Vec::new();
        for task in fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            let comm = fs::read_to_string(task.join("comm")).unwrap_or_default();
            if comm.trim_end() != &name[..name.len().min(15)] {
                continue;
            }
            let stat = fs::read_to_string(task.join("stat")).unwrap_or_default();
            // Field 19 (nice), counted after the parenthesised name.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            if let Some(n) = rest.split_whitespace().nth(16) {
                nice.push(n.parse().unwrap());
            }
        }
        nice
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn run_writes_run_at_a_lower_priority_than_the_writer() {
        let d = tempfile::tempdir().unwrap();
        let (mut ix, _) = IdIndex::open(d.path(), 10, default_id_hash).unwrap();
        for o in 0..10 {
            ix.insert(h(o), o, o);
        }
        ix.maintain();
        ix.settle();
        assert_eq!(ix.runs(), 1);
        // Other tests' flush threads may be starting; this one is running.
        let nice = nice_of_threads("crm-log-ids-flush");
        assert!(
            nice.contains(&BACKGROUND_NICE),
            "flush threads' nice values: {nice:?}"
        );
    }

    #[test]
    fn a_failed_flush_keeps_the_ids_in_memory_and_is_retried() {
        let d = tempfile::tempdir().unwrap();
        let (mut ix, _) = IdIndex::open(d.path(), 10, default_id_hash).unwrap();
        ix.fail_writes(3);
        for o in 0..45 {
            ix.insert(h(o), o, o);
            ix.maintain();
        }
        // Wait for the failed attempt to come back.
        ix.wait_busy();
        assert!(
            ix.retry_at[FLUSH].is_some(),
            "the write failed and waits to be retried"
        );
        for o in 0..45 {
            assert_eq!(found(&ix, h(o)), vec![(o, o)], "offset {o}");
        }
        ix.settle();
        assert_eq!(ix.faults.load(Ordering::SeqCst), 0);
        assert!(ix.frozen.is_none());
        assert_eq!(
            ix.runs(),
            2,
            "the frozen memtable, then the one that grew meanwhile"
        );
        assert_eq!(ix.runs.last().unwrap().end, 45);
        for o in 0..45 {
            assert_eq!(found(&ix, h(o)), vec![(o, o)], "offset {o}");
        }
    }

    #[test]
    fn damaged_and_leftover_runs_are_dropped_at_open() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ids");
        let (mut ix, _) = IdIndex::open(&dir, 10, default_id_hash).unwrap();
        for o in 0..30 {
            ix.insert(h(o), o, o);
            ix.maintain();
            if o % 10 == 9 {
                ix.settle();
            }
        }
        // Three runs of 10: keep copies, as a crash mid-merge would.
        let saved: Vec<_> = ix
            .runs
            .iter()
            .map(|r| (r.path.clone(), fs::read(&r.path).unwrap()))
            .collect();
        for o in 30..40 {
            ix.insert(h(o), o, o);
        }
        ix.settle();
        assert_eq!(ix.runs(), 1, "four runs of one class merged");
        drop(ix);
        for (p, bytes) in &saved {
            fs::write(p, bytes).unwrap();
        }
        fs::write(dir.join(format!("{}.tmp", run_name(40, 50))), b"half").unwrap();
        let (ix, ack) = IdIndex::open(&dir, 10, default_id_hash).unwrap();
        assert_eq!((ix.indexed_end(), ack), (40, 40));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2, "leftovers deleted");
        drop(ix);

        // A damaged run: it and what follows are dropped.
        let dir2 = d.path().join("ids2");
        let (mut ix, _) = IdIndex::open(&dir2, 10, default_id_hash).unwrap();
        for o in 0..30 {
            ix.insert(h(o), o, o);
            ix.maintain();
            if o % 10 == 9 {
                ix.settle();
            }
        }
        let middle = ix.runs[1].path.clone();
        drop(ix);
        let mut bytes = fs::read(&middle).unwrap();
        bytes[100] ^= 1;
        fs::write(&middle, bytes).unwrap();
        let (ix, ack) = IdIndex::open(&dir2, 10, default_id_hash).unwrap();
        assert_eq!((ix.indexed_end(), ack), (10, 10));
        assert_eq!(found(&ix, h(5)), vec![(5, 5)]);
        assert!(found(&ix, h(15)).is_empty());
    }
}
