//! The embedded log: single node, append-only, segmented files.
//!
//! ## On disk
//! `DIR/LOCK` (held while open), `DIR/segments/<base offset, 20 digits>.seg`,
//! and `DIR/id-index/` (the index of event ids, derived from the segments;
//! see `idindex.rs`).
//!
//! A segment starts with a 16-byte header (`CRMLOG` magic, format byte, a
//! reserved byte, the base offset as u64 LE), then records:
//!
//! ```text
//! [u32 LE body length][u32 LE CRC-32C of (length bytes ++ body)][body]
//! ```
//!
//! The body is described in `record.rs` (content hash, event id, JSON).
//!
//! ## Writing
//! One writer thread owns the files. Publishers queue batches; the writer
//! takes every batch waiting, deduplicates by `event_id` (against the index
//! and within the group), writes all records with one `write`, calls
//! `fdatasync` once, and only then answers every publisher of the group
//! (group commit) and makes the records visible to readers. If the write or
//! the sync fails, the segment is cut back to its last committed length and
//! the whole group is answered with an error: nothing is acknowledged that is
//! not on disk.
//!
//! ## Deduplication
//! Forever, by `event_id`. The id index maps a 64-bit hash of each id to the
//! record's offset and byte position; a hit is checked by reading the record
//! (its real id and content hash decide `duplicate`, `conflict`, or a hash
//! collision). Ids of the group are added to the index's memtable after the
//! `fdatasync`; full memtables become sorted run files, written and merged
//! by background threads, with a Bloom filter per run in memory (see
//! `idindex.rs`). The index is not the source of truth: at open whatever it
//! lacks (the memtable, a damaged run) is indexed again from the segments,
//! in the same pass that checks their CRCs, and whatever it holds beyond the
//! log is dropped. It is never needed for durability.
//!
//! Earlier builds kept the index in a sled tree in `DIR/ids/`; such a
//! directory is deleted at open, once the new index is built.
//!
//! ## Recovery at open
//! Every segment is read and every record's CRC checked. A torn tail of the
//! last segment (a crash mid-write: a short header, a body running past the
//! end of the file, a bad CRC on the very last record, or zeros to the end)
//! is cut off and never served. Any other damage stops the open with an
//! error naming the file and byte offset. A bad last record below what the
//! id index says was acknowledged (its runs, and the `COMMITTED` marker
//! written after every commit) is damage too, not a torn write.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use fs4::fs_std::FileExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::idindex::{self, read_exact_at, IdIndex};
use crate::record::{decode_record_body, encode_record_body};
use crate::{Append, AppendOutcome, Checkpoint, Log, LogError, LogReader, LogRecord, Position};

const MAGIC: &[u8; 6] = b"CRMLOG";
const SEGMENT_FORMAT: u8 = 1;
const HEADER_LEN: u64 = 16;
const RECORD_HEADER: usize = 8;
/// No record body is larger (an event is at most 256 KiB at ingest).
const MAX_BODY: u32 = 16 * 1024 * 1024;
const INDEX_DIR: &str = "id-index";
/// Where the id index lived before (a sled database); deleted at open.
const OLD_INDEX_DIR: &str = "ids";

/// Default of [`EmbeddedConfig::index_memtable_ids`].
pub const DEFAULT_INDEX_MEMTABLE_IDS: usize = idindex::DEFAULT_MEMTABLE_IDS;

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The log's directory (`DATA_DIR/log`).
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Most events one group commit takes.
    pub max_group_events: usize,
    /// Event ids the id index holds in its in-memory table before writing
    /// them to a sorted run file (about 27 bytes each; twice that while one
    /// table is written out). The runs cost about 1.3 bytes of memory per id.
    pub index_memtable_ids: usize,
    /// Test hook: the 64-bit hash of event ids used by the index (`None`:
    /// keyed BLAKE3). Runs written with another function are rebuilt.
    #[doc(hidden)]
    pub id_hash: Option<idindex::IdHash>,
    /// Appends are refused (`LogError::Full`, 507) while the log's file
    /// system has less free space than this, so that the read models and
    /// the id index, on the same disk, never run out of space for what was
    /// already accepted. 0: write until the disk itself is full.
    pub min_free_bytes: u64,
}

impl EmbeddedConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            dir: dir.into(),
            segment_bytes: 256 * 1024 * 1024,
            max_group_events: 100_000,
            index_memtable_ids: DEFAULT_INDEX_MEMTABLE_IDS,
            id_hash: None,
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
struct Segment {
    base: u64,
    path: PathBuf,
    /// Committed length in bytes.
    len: u64,
}

/// What readers may see: committed records only.
#[derive(Debug, Clone)]
struct Head {
    next_offset: u64,
    segments: Arc<Vec<Segment>>,
}

struct WriteReq {
    batch: Vec<Append>,
    reply: oneshot::Sender<Result<Vec<AppendOutcome>, LogError>>,
}

/// The embedded log. See the module documentation.
pub struct EmbeddedLog {
    tx: Mutex<Option<mpsc::Sender<WriteReq>>>,
    head: watch::Receiver<Head>,
    writer: Mutex<Option<JoinHandle<()>>>,
    dir: PathBuf,
    _lock: File,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("dir", &self.dir)
            .finish()
    }
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join("segments").join(format!("{base:020}.seg"))
}

fn corrupt(path: &Path, at: u64, what: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!("{} at byte {at}: {what}", path.display()))
}

fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

fn write_error(e: io::Error) -> LogError {
    if is_disk_full(&e) {
        LogError::Full(e.to_string())
    } else {
        LogError::Unavailable(format!("write failed: {e}"))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn create_segment(dir: &Path, base: u64) -> io::Result<(File, Segment)> {
    let path = segment_path(dir, base);
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let mut header = [0u8; HEADER_LEN as usize];
    header[..6].copy_from_slice(MAGIC);
    header[6] = SEGMENT_FORMAT;
    header[8..].copy_from_slice(&base.to_le_bytes());
    file.write_all(&header)?;
    file.sync_all()?;
    sync_dir(&dir.join("segments"))?;
    Ok((
        file,
        Segment {
            base,
            path,
            len: HEADER_LEN,
        },
    ))
}

/// Frames a record: length, CRC of (length ++ body), body.
fn frame(body: &[u8], out: &mut Vec<u8>) {
    let len = (body.len() as u32).to_le_bytes();
    let mut crc = crc32c::crc32c(&len);
    crc = crc32c::crc32c_append(crc, body);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
}

/// Reads the record at the reader's position. `Ok(None)` at a clean end.
enum ReadOutcome {
    Record(Vec<u8>),
    End,
    /// Not a whole valid record here; `String` says why.
    Bad(String),
}

fn read_record(r: &mut impl Read, remaining: u64) -> io::Result<ReadOutcome> {
    if remaining == 0 {
        return Ok(ReadOutcome::End);
    }
    if remaining < RECORD_HEADER as u64 {
        return Ok(ReadOutcome::Bad(format!(
            "{remaining} bytes, shorter than a record header"
        )));
    }
    let mut header = [0u8; RECORD_HEADER];
    r.read_exact(&mut header)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_BODY {
        return Ok(ReadOutcome::Bad(format!("impossible record length {len}")));
    }
    if u64::from(len) > remaining - RECORD_HEADER as u64 {
        return Ok(ReadOutcome::Bad(format!(
            "record of {len} bytes runs past the end of the file"
        )));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    let actual = crc32c::crc32c_append(crc32c::crc32c(&header[..4]), &body);
    if actual != crc {
        return Ok(ReadOutcome::Bad(format!(
            "CRC mismatch (stored {crc:08x}, computed {actual:08x})"
        )));
    }
    Ok(ReadOutcome::Record(body))
}

/// Whether the file holds only zero bytes from `from` to its end.
fn zeros_from(path: &Path, from: u64) -> io::Result<bool> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// Whether the record at `pos` claims to run to (or past) `file_len`, or
/// only zeros follow it: what a write in progress, or torn by a crash, looks
/// like.
fn runs_to_the_end(path: &Path, pos: u64, file_len: u64) -> io::Result<bool> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(pos))?;
    let mut len = [0u8; 4];
    let claimed_end = match f.read_exact(&mut len) {
        Ok(()) => pos + RECORD_HEADER as u64 + u64::from(u32::from_le_bytes(len)),
        Err(_) => file_len,
    };
    Ok(claimed_end >= file_len || zeros_from(path, pos)?)
}

/// Scans one segment; returns its committed length and record count. For
/// the last segment a torn tail is cut off; elsewhere damage is an error.
/// Records below `acknowledged` (what the id index says was committed) are
/// never a torn tail: damage there is an error even at the end of the log.
/// `on_record` gets each good record's offset, byte position and body.
fn verify_segment(
    seg_path: &Path,
    expected_base: u64,
    is_last: bool,
    acknowledged: u64,
    mut on_record: impl FnMut(u64, u64, &[u8]) -> Result<(), LogError>,
) -> Result<(u64, u64), LogError> {
    let file = File::open(seg_path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER_LEN as usize];
    if file_len < HEADER_LEN {
        if is_last {
            // Crashed while creating it: rewrite the header.
            drop(r);
            let mut f = OpenOptions::new().write(true).open(seg_path)?;
            f.set_len(0)?;
            let mut h = [0u8; HEADER_LEN as usize];
            h[..6].copy_from_slice(MAGIC);
            h[6] = SEGMENT_FORMAT;
            h[8..].copy_from_slice(&expected_base.to_le_bytes());
            f.write_all(&h)?;
            f.sync_all()?;
            return Ok((HEADER_LEN, 0));
        }
        return Err(corrupt(seg_path, 0, "shorter than a segment header"));
    }
    r.read_exact(&mut header)?;
    if &header[..6] != MAGIC || header[6] != SEGMENT_FORMAT {
        return Err(corrupt(
            seg_path,
            0,
            "not a crm-ledger log segment (bad magic or format)",
        ));
    }
    let base = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
    if base != expected_base {
        return Err(corrupt(
            seg_path,
            8,
            format!("segment says base offset {base}, expected {expected_base}"),
        ));
    }
    let mut pos = HEADER_LEN;
    let mut count = 0u64;
    loop {
        match read_record(&mut r, file_len - pos)? {
            ReadOutcome::End => break,
            ReadOutcome::Record(body) => {
                on_record(base + count, pos, &body)?;
                pos += RECORD_HEADER as u64 + body.len() as u64;
                count += 1;
            }
            ReadOutcome::Bad(why) => {
                // A torn tail: the bad record is the last thing in the file
                // (or only zeros follow), and was never acknowledged.
                // Anything else is corruption.
                let offset = base + count;
                if is_last && offset < acknowledged {
                    return Err(corrupt(
                        seg_path,
                        pos,
                        format!("{why}; record {offset} had been acknowledged (the id index covers it), so this is damage, not a write torn by a crash (if these segments were restored from a backup, delete {} and start again)", seg_path.parent().and_then(Path::parent).map_or_else(|| "the id index".into(), |d| d.join(INDEX_DIR).display().to_string())),
                    ));
                }
                let torn = is_last && runs_to_the_end(seg_path, pos, file_len)?;
                if !torn {
                    return Err(corrupt(seg_path, pos, why));
                }
                tracing::warn!(
                    segment = %seg_path.display(),
                    at = pos,
                    cut = file_len - pos,
                    reason = %why,
                    "cutting off a torn tail left by a crash mid-write (never acknowledged)"
                );
                let f = OpenOptions::new().write(true).open(seg_path)?;
                f.set_len(pos)?;
                f.sync_all()?;
                break;
            }
        }
    }
    Ok((pos, count))
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `config.dir`, verifying it.
    pub fn open(config: EmbeddedConfig) -> Result<EmbeddedLog, LogError> {
        let dir = config.dir.clone();
        fs::create_dir_all(dir.join("segments"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        if !lock.try_lock_exclusive().unwrap_or(false) {
            return Err(LogError::Locked(format!(
                "the data directory {} is in use by another crm-ledger process",
                dir.display()
            )));
        }

        // Segments, in base order.
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir.join("segments"))? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".seg") {
                match stem.parse::<u64>() {
                    Ok(b) => bases.push(b),
                    Err(_) => tracing::warn!(file = %name, "ignoring a file that is not a segment"),
                }
            }
        }
        bases.sort_unstable();

        // Whatever the last segment holds may be served from now on (a record
        // written before a crash may not have been synced): make it durable
        // before the id index counts any of it as acknowledged.
        if let Some(&last) = bases.last() {
            OpenOptions::new()
                .write(true)
                .open(segment_path(&dir, last))?
                .sync_data()?;
        }

        // The id index (derived: what it lacks is indexed from the segments
        // below, in the pass that verifies them). Opened first: what it
        // says was acknowledged is never taken for a torn tail.
        let index_dir = dir.join(INDEX_DIR);
        let (mut index, acknowledged) = IdIndex::open(
            &index_dir,
            config.index_memtable_ids,
            config.id_hash.unwrap_or(idindex::default_id_hash),
        )?;
        let indexed = index.indexed_end();
        // Each run's last id is checked against its record in the same pass:
        // the first run that does not match the log, and every run after it,
        // is dropped below (an index left beside segments from elsewhere).
        let checks = index.run_checks();
        let mut next_check = 0;
        let mut mismatch: Option<u64> = None;
        let mut segments = Vec::new();
        let mut next_offset = 0u64;
        if bases.is_empty() {
            let (_, seg) = create_segment(&dir, 0)?;
            segments.push(seg);
        } else {
            if bases[0] != 0 {
                return Err(corrupt(
                    &segment_path(&dir, bases[0]),
                    0,
                    "the first segment does not start at offset 0 (segments are missing)",
                ));
            }
            for (i, &base) in bases.iter().enumerate() {
                let path = segment_path(&dir, base);
                if base != next_offset {
                    return Err(corrupt(
                        &path,
                        0,
                        format!("segment starts at offset {base} but the previous one ends at {next_offset}"),
                    ));
                }
                let (len, count) = verify_segment(
                    &path,
                    base,
                    i + 1 == bases.len(),
                    acknowledged,
                    |offset, pos, body| {
                        if offset >= indexed {
                            let b = decode_record_body(body).map_err(|e| corrupt(&path, pos, e))?;
                            index.insert_at_open(index.hash(b.event_id), offset, pos);
                        } else if checks.get(next_check).is_some_and(|c| c.1 == offset) {
                            let (start, _, want) = checks[next_check];
                            next_check += 1;
                            let b = decode_record_body(body).map_err(|e| corrupt(&path, pos, e))?;
                            if mismatch.is_none() && index.hash(b.event_id) != want {
                                mismatch = Some(start);
                            }
                        }
                        Ok(())
                    },
                )?;
                next_offset = base + count;
                segments.push(Segment { base, path, len });
            }
        }
        if acknowledged > next_offset {
            tracing::warn!(
                acknowledged,
                records = next_offset,
                "the log holds fewer records than the id index says were acknowledged (segments cut back or restored from an older copy): the index is cut back to the log"
            );
        }
        let mut limit = next_offset;
        if let Some(start) = mismatch {
            tracing::warn!(
                from = start,
                "the id index does not match the log from this record on (segments restored from another copy?): those runs are dropped and the records indexed again"
            );
            limit = limit.min(start);
        }
        if let Some(from) = index.keep_below(limit)? {
            for seg in &segments {
                let seg_end = segments
                    .iter()
                    .find(|s| s.base > seg.base)
                    .map_or(next_offset, |s| s.base);
                if seg_end <= from {
                    continue;
                }
                verify_segment(&seg.path, seg.base, false, 0, |offset, pos, body| {
                    if offset >= from {
                        let b = decode_record_body(body).map_err(|e| corrupt(&seg.path, pos, e))?;
                        index.insert_at_open(index.hash(b.event_id), offset, pos);
                    }
                    Ok(())
                })?;
            }
        }

        let last = segments.last().expect("at least one segment").clone();
        let mut file = OpenOptions::new().read(true).write(true).open(&last.path)?;
        file.seek(SeekFrom::Start(last.len))?;
        index.set_committed(next_offset);
        tracing::info!(
            records = next_offset,
            runs = index.runs(),
            filter_bytes = index.resident_bytes(),
            in_memtable = index.memtable_len(),
            "id index ready"
        );
        let old_index = dir.join(OLD_INDEX_DIR);
        if old_index.is_dir() {
            match fs::remove_dir_all(&old_index) {
                Ok(()) => tracing::info!(
                    old = %old_index.display(),
                    new = %index_dir.display(),
                    "deleted the id index of the old format (sled); the new one was built from the log"
                ),
                Err(e) => {
                    tracing::warn!(old = %old_index.display(), error = %e, "cannot delete the id index of the old format (sled); it is no longer used")
                }
            }
        }
        let (head_tx, head_rx) = watch::channel(Head {
            next_offset,
            segments: Arc::new(segments.clone()),
        });
        let (tx, rx) = mpsc::channel(4096);
        let mut writer = Writer {
            dir: dir.clone(),
            segments,
            file,
            next_offset,
            index,
            reader: None,
            min_free_bytes: config.min_free_bytes,
            head: head_tx,
            segment_bytes: config.segment_bytes,
            max_group_events: config.max_group_events,
            broken: None,
            group_buf: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("crm-log-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(EmbeddedLog {
            tx: Mutex::new(Some(tx)),
            head: head_rx,
            writer: Mutex::new(Some(handle)),
            dir,
            _lock: lock,
        })
    }

    /// Stops taking appends, finishes those queued, and waits for the writer.
    pub fn close(&self) {
        self.tx.lock().expect("lock").take();
        if let Some(h) = self.writer.lock().expect("lock").take() {
            let _ = h.join();
        }
    }

    /// The number of records in the log.
    pub fn len(&self) -> u64 {
        self.head.borrow().next_offset
    }

    /// Whether the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer {
    dir: PathBuf,
    segments: Vec<Segment>,
    file: File,
    next_offset: u64,
    /// The id index (see `idindex.rs`).
    index: IdIndex,
    /// A segment opened for reading records the index points to.
    reader: Option<(u64, File)>,
    min_free_bytes: u64,
    head: watch::Sender<Head>,
    segment_bytes: u64,
    max_group_events: usize,
    /// Set when the log can no longer be trusted to write (a failed cut-back).
    broken: Option<String>,
    /// A group's framed records, kept from one group to the next (see
    /// [`KEEP_GROUP_BUFFER`]).
    group_buf: Vec<u8>,
}

/// The group buffer's capacity is kept between groups up to this size:
/// a fresh multi-megabyte buffer per group is memory that the allocator
/// returns to the kernel and faults in again, page by page, on the
/// writer's thread (which every publish waits for).
const KEEP_GROUP_BUFFER: usize = 16 << 20;

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<WriteReq>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            let mut events = group[0].batch.len();
            while events < self.max_group_events {
                match rx.try_recv() {
                    Ok(req) => {
                        events += req.batch.len();
                        group.push(req);
                    }
                    Err(_) => break,
                }
            }
            let result = self.commit(&group);
            match result {
                Ok(outcomes) => {
                    for (req, out) in group.into_iter().zip(outcomes) {
                        let _ = req.reply.send(Ok(out));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    let full = matches!(e, LogError::Full(_));
                    for req in group {
                        let err = if full {
                            LogError::Full(msg.clone())
                        } else {
                            LogError::Unavailable(msg.clone())
                        };
                        let _ = req.reply.send(Err(err));
                    }
                }
            }
            // Answered: now the index's background work, if any is due.
            self.index.maintain();
        }
        self.index.close();
    }

    /// Refuses to write while the disk has less free space than configured.
    fn check_free_space(&self) -> Result<(), LogError> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        match fs4::available_space(&self.dir) {
            Ok(free) if free < self.min_free_bytes => Err(LogError::Full(format!(
                "{free} bytes free on the log's disk, less than the {} kept free for the read models and the id index; publishing resumes by itself once space is freed",
                self.min_free_bytes
            ))),
            _ => Ok(()),
        }
    }

    /// Where the id `id` (hash `hash`) is in the log, with its content hash:
    /// every record the index has under that hash is read and compared.
    fn find_id(
        &mut self,
        hash: u64,
        id: &str,
        candidates: &mut Vec<(u64, u64)>,
    ) -> Result<Option<([u8; 32], u64)>, LogError> {
        self.index
            .candidates(hash, candidates)
            .map_err(|e| LogError::Unavailable(format!("id index: {e}")))?;
        for &(offset, pos) in candidates.iter() {
            if let Some(content) = self.record_with_id(offset, pos, id)? {
                return Ok(Some((content, offset)));
            }
        }
        Ok(None)
    }

    /// Reads the record at `offset` (byte `pos` of its segment); its content
    /// hash if its event id is `id`.
    fn record_with_id(
        &mut self,
        offset: u64,
        pos: u64,
        id: &str,
    ) -> Result<Option<[u8; 32]>, LogError> {
        let i = self.segments.partition_point(|s| s.base <= offset);
        let seg = &self.segments[i.checked_sub(1).expect("segment 0 starts at offset 0")];
        let (base, seg_len) = (seg.base, seg.len);
        if self.reader.as_ref().is_none_or(|(b, _)| *b != base) {
            self.reader = Some((base, File::open(&seg.path)?));
        }
        let seg = &self.segments[i - 1];
        let file = &self.reader.as_ref().expect("opened").1;
        let bad = |why: String| {
            LogError::Corrupt(format!(
                "{} at byte {pos}: {why} (record {offset}, as the id index says)",
                seg.path.display()
            ))
        };
        if pos + RECORD_HEADER as u64 > seg_len {
            return Err(bad("the id index points past the end of the segment".into()));
        }
        let mut header = [0u8; RECORD_HEADER];
        read_exact_at(file, &mut header, pos)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len == 0 || len > MAX_BODY || pos + RECORD_HEADER as u64 + u64::from(len) > seg_len {
            return Err(bad(format!("impossible record length {len}")));
        }
        let mut body = vec![0u8; len as usize];
        read_exact_at(file, &mut body, pos + RECORD_HEADER as u64)?;
        let actual = crc32c::crc32c_append(crc32c::crc32c(&header[..4]), &body);
        if actual != crc {
            return Err(bad(format!(
                "CRC mismatch (stored {crc:08x}, computed {actual:08x})"
            )));
        }
        let b = decode_record_body(&body).map_err(bad)?;
        Ok((b.event_id == id).then_some(b.content_hash))
    }

    /// Writes one group: dedup, one write, one fdatasync, index, publish.
    fn commit(&mut self, group: &[WriteReq]) -> Result<Vec<Vec<AppendOutcome>>, LogError> {
        if let Some(why) = &self.broken {
            return Err(LogError::Unavailable(why.clone()));
        }
        self.check_free_space()?;
        let start_offset = self.next_offset;
        let committed_len = self.segments.last().expect("segment").len;
        let mut buf = std::mem::take(&mut self.group_buf);
        buf.clear();
        let result = self.frame_and_write(group, start_offset, committed_len, &mut buf);
        if buf.capacity() <= KEEP_GROUP_BUFFER {
            self.group_buf = buf;
        }
        result
    }

    /// The body of [`commit`](Self::commit), framing the group into `buf`.
    fn frame_and_write(
        &mut self,
        group: &[WriteReq],
        start_offset: u64,
        committed_len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<Vec<AppendOutcome>>, LogError> {
        let mut offset = start_offset;
        let mut pending: HashMap<&str, ([u8; 32], u64)> = HashMap::new();
        // (id hash, byte position) of each record of the group, in order.
        let mut fresh: Vec<(u64, u64)> = Vec::new();
        let mut candidates = Vec::new();
        let mut body = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        for req in group {
            let mut out = Vec::with_capacity(req.batch.len());
            for a in &req.batch {
                let hash = self.index.hash(&a.event_id);
                let existing = match pending.get(a.event_id.as_str()) {
                    Some(v) => Some(*v),
                    None => self.find_id(hash, &a.event_id, &mut candidates)?,
                };
                let outcome = match existing {
                    Some((hash, at)) => {
                        let p = Position {
                            partition: 0,
                            offset: at,
                        };
                        if hash == a.content_hash {
                            AppendOutcome::Duplicate(p)
                        } else {
                            AppendOutcome::Conflict(p)
                        }
                    }
                    None => {
                        body.clear();
                        encode_record_body(&a.content_hash, &a.event_id, &a.payload, &mut body);
                        fresh.push((hash, committed_len + buf.len() as u64));
                        frame(&body, buf);
                        pending.insert(&a.event_id, (a.content_hash, offset));
                        offset += 1;
                        AppendOutcome::Appended(Position {
                            partition: 0,
                            offset: offset - 1,
                        })
                    }
                };
                out.push(outcome);
            }
            outcomes.push(out);
        }
        if buf.is_empty() {
            return Ok(outcomes);
        }

        if let Err(e) = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data())
        {
            // Cut back to what was committed, so nothing unacknowledged stays.
            let cut = self
                .file
                .set_len(committed_len)
                .and_then(|()| self.file.seek(SeekFrom::Start(committed_len)).map(|_| ()))
                .and_then(|()| self.file.sync_data());
            if let Err(cut_err) = cut {
                self.broken = Some(format!(
                    "the log could not be cut back after a failed write ({cut_err}); restart to recover"
                ));
            }
            return Err(write_error(e));
        }

        // Durable: index the new ids (in memory), say so in the commit
        // marker, and let readers see the records.
        self.index.reserve(fresh.len());
        for (i, &(hash, pos)) in fresh.iter().enumerate() {
            self.index.insert(hash, start_offset + i as u64, pos);
        }
        self.index.set_committed(offset);
        self.next_offset = offset;
        self.segments.last_mut().expect("segment").len = committed_len + buf.len() as u64;
        if self.segments.last().expect("segment").len >= self.segment_bytes {
            self.roll()?;
        }
        self.head.send_replace(Head {
            next_offset: self.next_offset,
            segments: Arc::new(self.segments.clone()),
        });
        Ok(outcomes)
    }

    fn roll(&mut self) -> Result<(), LogError> {
        match create_segment(&self.dir, self.next_offset) {
            Ok((file, seg)) => {
                self.file = file;
                self.segments.push(seg);
                Ok(())
            }
            Err(e) => {
                // The records are committed; keep appending to this segment
                // and try rolling again after the next group.
                tracing::warn!(error = %e, "could not start a new segment");
                let _ = std::fs::remove_file(segment_path(&self.dir, self.next_offset));
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Log for EmbeddedLog {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn append(&self, batch: Vec<Append>) -> Result<Vec<AppendOutcome>, LogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self
            .tx
            .lock()
            .expect("lock")
            .clone()
            .ok_or_else(|| LogError::Unavailable("the log is shutting down".into()))?;
        let (reply, rx) = oneshot::channel();
        tx.send(WriteReq { batch, reply })
            .await
            .map_err(|_| LogError::Unavailable("the log is shutting down".into()))?;
        rx.await
            .map_err(|_| LogError::Unavailable("the log writer stopped".into()))?
    }

    fn deduplicates(&self) -> bool {
        true
    }

    async fn reader(&self, from: &Checkpoint) -> Result<Box<dyn LogReader>, LogError> {
        Ok(Box::new(EmbeddedReader {
            head: self.head.clone(),
            next_offset: from.next(0),
            cursor: None,
        }))
    }

    async fn end(&self) -> Result<Checkpoint, LogError> {
        let mut c = Checkpoint::default();
        c.0.insert(0, self.head.borrow().next_offset);
        Ok(c)
    }

    async fn health(&self) -> Result<(), LogError> {
        if self.tx.lock().expect("lock").is_none() {
            return Err(LogError::Unavailable("the log is shut down".into()));
        }
        Ok(())
    }
}

struct Cursor {
    segment: usize,
    reader: BufReader<File>,
    byte_pos: u64,
}

struct EmbeddedReader {
    head: watch::Receiver<Head>,
    next_offset: u64,
    cursor: Option<Cursor>,
}

impl EmbeddedReader {
    fn read_sync(
        head: &Head,
        next_offset: &mut u64,
        cursor: &mut Option<Cursor>,
        max: usize,
    ) -> Result<Vec<LogRecord>, LogError> {
        let mut out = Vec::new();
        while out.len() < max && *next_offset < head.next_offset {
            // Invariant: the cursor, when there is one, sits at `next_offset`.
            if cursor.is_none() {
                *cursor = Some(Self::seek(head, *next_offset)?);
            }
            let c = cursor.as_mut().expect("positioned");
            let seg_len = head.segments[c.segment].len;
            if c.byte_pos >= seg_len {
                // End of a sealed segment: open the next one.
                let next = c.segment + 1;
                let seg = &head.segments[next];
                let mut f = BufReader::with_capacity(1 << 20, File::open(&seg.path)?);
                f.seek(SeekFrom::Start(HEADER_LEN))?;
                *c = Cursor {
                    segment: next,
                    reader: f,
                    byte_pos: HEADER_LEN,
                };
                continue;
            }
            let seg = &head.segments[c.segment];
            match read_record(&mut c.reader, seg_len - c.byte_pos)? {
                ReadOutcome::Record(body) => {
                    let b =
                        decode_record_body(&body).map_err(|e| corrupt(&seg.path, c.byte_pos, e))?;
                    out.push(LogRecord {
                        position: Position {
                            partition: 0,
                            offset: *next_offset,
                        },
                        event_id: b.event_id.to_string(),
                        payload: b.payload.to_vec(),
                    });
                    c.byte_pos += (RECORD_HEADER + body.len()) as u64;
                    *next_offset += 1;
                }
                ReadOutcome::End => break,
                ReadOutcome::Bad(why) => return Err(corrupt(&seg.path, c.byte_pos, why)),
            }
        }
        Ok(out)
    }

    /// Positions a cursor at `offset`: the segment holding it, records before
    /// it skipped by their headers.
    fn seek(head: &Head, offset: u64) -> Result<Cursor, LogError> {
        let segment = head
            .segments
            .iter()
            .rposition(|s| s.base <= offset)
            .expect("segment 0 starts at offset 0");
        let seg = &head.segments[segment];
        let mut reader = BufReader::with_capacity(1 << 20, File::open(&seg.path)?);
        reader.seek(SeekFrom::Start(HEADER_LEN))?;
        let mut byte_pos = HEADER_LEN;
        for _ in seg.base..offset {
            let mut header = [0u8; RECORD_HEADER];
            reader.read_exact(&mut header)?;
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
            reader.seek_relative(i64::from(len))?;
            byte_pos += RECORD_HEADER as u64 + u64::from(len);
        }
        Ok(Cursor {
            segment,
            reader,
            byte_pos,
        })
    }
}

#[async_trait]
impl LogReader for EmbeddedReader {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<LogRecord>, LogError> {
        if self.head.borrow().next_offset <= self.next_offset {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(deadline, self.head.changed()).await {
                    Ok(Ok(())) => {
                        if self.head.borrow().next_offset > self.next_offset {
                            break;
                        }
                    }
                    // Timed out, or the log was closed: nothing new.
                    Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
                }
            }
        }
        let head = self.head.borrow().clone();
        let mut next_offset = self.next_offset;
        let mut cursor = self.cursor.take();
        let (result, next_offset, cursor) = tokio::task::spawn_blocking(move || {
            let r = Self::read_sync(&head, &mut next_offset, &mut cursor, max);
            (r, next_offset, cursor)
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("reader task failed: {e}")))?;
        self.next_offset = next_offset;
        self.cursor = cursor;
        result
    }
}

/// Reads the records of an embedded log directory in order, without opening
/// it for writing and without its lock, so it works while a server runs
/// (`crm-ledger replay`). Only whole records with a good CRC are read: a
/// record being written at the tail ends the scan. `f` returns `false` to
/// stop early.
pub fn scan_dir(
    dir: &Path,
    mut f: impl FnMut(LogRecord) -> Result<bool, LogError>,
) -> Result<u64, LogError> {
    let seg_dir = dir.join("segments");
    if !seg_dir.is_dir() {
        return Err(LogError::Unavailable(format!(
            "{} holds no embedded log (no segments folder)",
            dir.display()
        )));
    }
    let mut bases = Vec::new();
    for entry in fs::read_dir(&seg_dir)? {
        let name = entry?.file_name();
        if let Some(b) = name
            .to_string_lossy()
            .strip_suffix(".seg")
            .and_then(|s| s.parse::<u64>().ok())
        {
            bases.push(b);
        }
    }
    bases.sort_unstable();
    let mut read = 0u64;
    for (i, &base) in bases.iter().enumerate() {
        let path = segment_path(dir, base);
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        if len < HEADER_LEN {
            break;
        }
        let mut r = BufReader::with_capacity(1 << 20, file);
        r.seek(SeekFrom::Start(HEADER_LEN))?;
        let mut pos = HEADER_LEN;
        let mut offset = base;
        loop {
            match read_record(&mut r, len - pos)? {
                ReadOutcome::End => break,
                ReadOutcome::Bad(why) => {
                    // The tail may be mid-write by a running server: a
                    // record running to the end of the file, or zeros.
                    // A bad record with whole records after it is damage.
                    if i + 1 == bases.len() && runs_to_the_end(&path, pos, len)? {
                        return Ok(read);
                    }
                    return Err(corrupt(&path, pos, why));
                }
                ReadOutcome::Record(body) => {
                    let b = decode_record_body(&body).map_err(|e| corrupt(&path, pos, e))?;
                    let rec = LogRecord {
                        position: Position {
                            partition: 0,
                            offset,
                        },
                        event_id: b.event_id.to_string(),
                        payload: b.payload.to_vec(),
                    };
                    pos += (RECORD_HEADER + body.len()) as u64;
                    offset += 1;
                    read += 1;
                    if !f(rec)? {
                        return Ok(read);
                    }
                }
            }
        }
    }
    Ok(read)
}
