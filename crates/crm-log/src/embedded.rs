//! The embedded log: single node, append-only, segmented files.
//!
//! ## On disk
//! `DIR/LOCK` (held while open), `DIR/segments/<base offset, 20 digits>.seg`,
//! and `DIR/ids/` (a sled index of event ids, derived from the segments).
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
//! `event_id` -> (content hash, offset), kept forever in a sled tree with the
//! offset it covers stored in the same batch. sled is not the source of truth:
//! at open the index is brought up to date from the segments (and rebuilt from
//! scratch if it is ahead of the log or unreadable).
//!
//! ## Recovery at open
//! Every segment is read and every record's CRC checked. A torn tail of the
//! last segment (a crash mid-write: a short header, a body running past the
//! end of the file, a bad CRC on the very last record, or zeros to the end)
//! is cut off and never served. Any other damage stops the open with an
//! error naming the file and byte offset.

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

use crate::record::{decode_record_body, encode_record_body};
use crate::{Append, AppendOutcome, Checkpoint, Log, LogError, LogReader, LogRecord, Position};

const MAGIC: &[u8; 6] = b"CRMLOG";
const SEGMENT_FORMAT: u8 = 1;
const HEADER_LEN: u64 = 16;
const RECORD_HEADER: usize = 8;
/// No record body is larger (an event is at most 256 KiB at ingest).
const MAX_BODY: u32 = 16 * 1024 * 1024;
const INDEX_NEXT_KEY: &[u8] = b"\x00next";

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The log's directory (`DATA_DIR/log`).
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Most events one group commit takes.
    pub max_group_events: usize,
    /// Cache of the id index, in bytes.
    pub index_cache_bytes: u64,
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
            index_cache_bytes: 64 * 1024 * 1024,
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
fn verify_segment(
    seg_path: &Path,
    expected_base: u64,
    is_last: bool,
    acknowledged: u64,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<(), LogError>,
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
                on_record(base + count, &body)?;
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
                        format!("{why}; record {offset} had been acknowledged (the id index covers it), so this is damage, not a write torn by a crash"),
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

fn index_value(hash: &[u8; 32], offset: u64) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..32].copy_from_slice(hash);
    v[32..].copy_from_slice(&offset.to_le_bytes());
    v
}

fn parse_index_value(v: &[u8]) -> Option<([u8; 32], u64)> {
    if v.len() != 40 {
        return None;
    }
    let mut h = [0u8; 32];
    h.copy_from_slice(&v[..32]);
    Some((h, u64::from_le_bytes(v[32..].try_into().ok()?)))
}

/// Opens the id index and reads all of it (sled checks each page's CRC as
/// it reads it, so damage shows here and not as failing appends later);
/// returns it with the offset it covers.
fn open_index(path: &Path, cache_bytes: u64) -> Result<(sled::Db, sled::Tree, u64), sled::Error> {
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .open()?;
    let index = db.open_tree("ids")?;
    for item in index.iter() {
        item?;
    }
    let covered = index
        .get(INDEX_NEXT_KEY)?
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_le_bytes))
        .unwrap_or(0);
    Ok((db, index, covered))
}

/// Brings the id index up to `next_offset` from the segments (or rebuilds
/// it when it is ahead of them).
fn catch_up_index(
    index: &sled::Tree,
    segments: &[Segment],
    next_offset: u64,
    mut covered: u64,
) -> Result<(), LogError> {
    if covered > next_offset {
        tracing::warn!(
            covered,
            next_offset,
            "id index is ahead of the log: rebuilding it"
        );
        index.clear().map_err(sled_err)?;
        covered = 0;
    }
    if covered < next_offset {
        let mut batch = sled::Batch::default();
        let mut n = 0u64;
        for seg in segments {
            let seg_end = segments
                .iter()
                .find(|s| s.base > seg.base)
                .map_or(next_offset, |s| s.base);
            if seg_end <= covered {
                continue;
            }
            verify_segment(&seg.path, seg.base, false, 0, |offset, body| {
                if offset >= covered {
                    let b = decode_record_body(body).map_err(|e| corrupt(&seg.path, 0, e))?;
                    batch.insert(
                        b.event_id.as_bytes(),
                        &index_value(&b.content_hash, offset)[..],
                    );
                    n += 1;
                    if n.is_multiple_of(100_000) {
                        let full = std::mem::take(&mut batch);
                        index.apply_batch(full).map_err(sled_err)?;
                    }
                }
                Ok(())
            })?;
        }
        batch.insert(INDEX_NEXT_KEY, &next_offset.to_le_bytes());
        index.apply_batch(batch).map_err(sled_err)?;
        tracing::info!(events = n, "id index caught up from the log");
    }
    Ok(())
}

fn sled_err(e: sled::Error) -> LogError {
    LogError::Unavailable(format!("id index: {e}"))
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

        // The id index (derived; brought up to date from the segments
        // below). Read first: what it covers was acknowledged, so damage
        // there is never taken for a torn tail.
        let (index_db, index, covered) =
            match open_index(&dir.join("ids"), config.index_cache_bytes) {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::warn!(error = %e, "id index unreadable: rebuilding it from the log");
                    let _ = fs::remove_dir_all(dir.join("ids"));
                    open_index(&dir.join("ids"), config.index_cache_bytes).map_err(sled_err)?
                }
            };
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
                let (len, count) =
                    verify_segment(&path, base, i + 1 == bases.len(), covered, |_, _| Ok(()))?;
                next_offset = base + count;
                segments.push(Segment { base, path, len });
            }
        }

        catch_up_index(&index, &segments, next_offset, covered)?;

        let last = segments.last().expect("at least one segment").clone();
        let mut file = OpenOptions::new().read(true).write(true).open(&last.path)?;
        file.seek(SeekFrom::Start(last.len))?;
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
            index: Some((index_db, index)),
            index_dir: dir.join("ids"),
            index_cache_bytes: config.index_cache_bytes,
            min_free_bytes: config.min_free_bytes,
            head: head_tx,
            segment_bytes: config.segment_bytes,
            max_group_events: config.max_group_events,
            broken: None,
            unindexed: None,
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
    /// The id index; `None` after it failed (sled refuses every operation
    /// after an I/O error, e.g. a full disk): reopened and caught up from the
    /// segments before the next write.
    index: Option<(sled::Db, sled::Tree)>,
    index_dir: PathBuf,
    index_cache_bytes: u64,
    min_free_bytes: u64,
    head: watch::Sender<Head>,
    segment_bytes: u64,
    max_group_events: usize,
    /// Set when the log can no longer be trusted to write (a failed cut-back).
    broken: Option<String>,
    /// The index entries of the last group, written after its answers.
    unindexed: Option<sled::Batch>,
}

impl Writer {
    /// Writes the last group's ids into the index.
    fn index_written(&mut self) {
        let Some(batch) = self.unindexed.take() else {
            return;
        };
        if let Some((_, tree)) = &self.index {
            if let Err(e) = tree.apply_batch(batch) {
                // The records are durable (and acknowledged); the index is
                // reopened and caught up from the segments before the next
                // write, so duplicates are still recognised.
                self.index_failed(&e);
            }
        }
    }

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
            // Answered: now the index (before the next group's dedup).
            self.index_written();
        }
        if let Some((db, _)) = &self.index {
            if let Err(e) = db.flush() {
                tracing::warn!(error = %e, "flushing the id index at shutdown failed (it is rebuilt from the log)");
            }
        }
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

    /// The id index, reopened and caught up from the segments if it failed.
    fn index(&mut self) -> Result<sled::Tree, LogError> {
        if let Some((_, tree)) = &self.index {
            return Ok(tree.clone());
        }
        let reopened = open_index(&self.index_dir, self.index_cache_bytes).or_else(|e| {
            if matches!(&e, sled::Error::Io(io) if is_disk_full(io)) {
                return Err(e);
            }
            tracing::warn!(error = %e, "id index unreadable: rebuilding it from the log");
            let _ = fs::remove_dir_all(&self.index_dir);
            open_index(&self.index_dir, self.index_cache_bytes)
        });
        let (db, tree, covered) = match reopened {
            Ok(opened) => opened,
            Err(sled::Error::Io(e)) if is_disk_full(&e) => {
                return Err(LogError::Full(format!(
                    "the id index cannot be reopened: {e}"
                )))
            }
            Err(e) => return Err(sled_err(e)),
        };
        catch_up_index(&tree, &self.segments, self.next_offset, covered)?;
        tracing::info!("id index reopened and caught up with the log");
        self.index = Some((db, tree.clone()));
        Ok(tree)
    }

    /// Drops the id index after a failure; the next write reopens it.
    fn index_failed(&mut self, e: &sled::Error) {
        tracing::error!(error = %e, "id index failed: it is reopened and caught up from the log before the next write");
        self.index = None;
    }

    /// Writes one group: dedup, one write, one fdatasync, index, publish.
    fn commit(&mut self, group: &[WriteReq]) -> Result<Vec<Vec<AppendOutcome>>, LogError> {
        if let Some(why) = &self.broken {
            return Err(LogError::Unavailable(why.clone()));
        }
        self.check_free_space()?;
        let index = self.index()?;
        let start_offset = self.next_offset;
        let mut offset = start_offset;
        let mut pending: HashMap<&str, ([u8; 32], u64)> = HashMap::new();
        let mut buf = Vec::new();
        let mut body = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        for req in group {
            let mut out = Vec::with_capacity(req.batch.len());
            for a in &req.batch {
                let existing = match pending.get(a.event_id.as_str()) {
                    Some(v) => Some(*v),
                    None => match index.get(a.event_id.as_bytes()) {
                        Ok(v) => v.and_then(|v| parse_index_value(&v)),
                        Err(e) => {
                            self.index_failed(&e);
                            return Err(sled_err(e));
                        }
                    },
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
                        frame(&body, &mut buf);
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

        let committed_len = self.segments.last().expect("segment").len;
        if let Err(e) = self
            .file
            .write_all(&buf)
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

        // Durable: let readers see the records. The new ids go into the
        // sled index right after the publishers are answered (see `run`),
        // before the next group is deduplicated: the answer does not wait
        // for sled, whose batches queue behind the read models' (sled has
        // one lock for every tree of the process).
        let mut batch = sled::Batch::default();
        for (id, (hash, at)) in &pending {
            batch.insert(id.as_bytes(), &index_value(hash, *at)[..]);
        }
        batch.insert(INDEX_NEXT_KEY, &offset.to_le_bytes());
        self.unindexed = Some(batch);
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
