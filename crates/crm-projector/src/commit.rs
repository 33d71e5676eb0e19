//! How a batch reaches sled: written ahead, then key by key.
//!
//! sled 0.34 makes a multi-key write atomic (`Tree::apply_batch`,
//! transactions) by taking one lock of the whole process exclusively: every
//! query and every other projection waits while it lasts, which for a batch
//! of a large read model is tens of milliseconds. A single-key write takes
//! that lock only shared. So a batch is committed with single-key writes
//! only, in this order:
//!
//! 1. the batch's writes, encoded, under `\0redo/chunk/N` (at most
//!    [`CHUNK`] bytes each), then the head `\0redo/head`: how many chunks,
//!    their length and hash, and the checkpoint the batch reaches;
//! 2. each write of the batch, key by key, in key order;
//! 3. the checkpoint `\0meta/checkpoint`, last.
//!
//! After a crash sled recovers a prefix of its log (its recovery stops at
//! the first torn message), and one thread makes these writes in this
//! order. So a checkpoint that was recovered comes with every write of its
//! batch, and a head that was recovered comes with all its chunks. Opening a
//! tree ([`finish`], called before its metadata is read) completes a batch
//! whose head names a checkpoint other than the tree's: it applies the
//! batch's writes again, each of which sets a key to its final value (so
//! applying one twice changes nothing), then writes the checkpoint. The
//! checkpoint is therefore still atomic with the state it covers, as the
//! runtime promises; see `docs/reliability.md`.
//!
//! What readers see: a query running while a batch is written may see some
//! of its keys new and the later ones (in key order) still old, until the
//! batch is complete, a few milliseconds later. The read models' queries
//! answer from such a state with a slightly stale or mixed answer, never an
//! error: records are written before the indexes that name them (`c/`
//! before `x/` in cases), counters are clamped, and the one place where a
//! merge half-written could hide a campaign contact counts the asked id in
//! its survivor's group. A client that waits for its own writes
//! (`consistent_with`) waits for the runner's in-memory progress, which
//! moves only after step 3.
//!
//! **A tree built from nothing** (`crm-ledger rebuild`) skips step 1
//! ([`commit_in_place`]): it is marked unfinished ([`mark_unfinished`])
//! before its first batch and until the whole build is done
//! ([`mark_finished`]), and [`finish`] reports a tree still marked as
//! damaged, so a build cut short is started again from the log rather than
//! resumed from a batch half-written. That saves writing every batch twice
//! where nothing has to survive a crash halfway.

use std::collections::BTreeMap;

use crate::store::{Error, META_CHECKPOINT, META_UNFINISHED};

/// The runtime's keys of an unfinished batch (skipped by digests).
pub(crate) const REDO_PREFIX: &[u8] = b"\x00redo/";
const REDO_HEAD: &[u8] = b"\x00redo/head";
const REDO_CHUNK: &[u8] = b"\x00redo/chunk/";
/// Largest chunk: well under what sled writes inline in its log (a quarter
/// of a 512 KiB segment), so no chunk becomes a blob file of its own.
const CHUNK: usize = 32 * 1024;
const MAGIC: &[u8; 6] = b"redo/1";

/// A batch's writes: each key set to a value or removed.
pub type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// One write: a key set to a value, or removed.
type Write = (Vec<u8>, Option<Vec<u8>>);

fn chunk_key(i: u32) -> Vec<u8> {
    let mut k = REDO_CHUNK.to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// The head of a batch written ahead.
#[derive(Debug, PartialEq)]
struct Head {
    chunks: u32,
    len: u64,
    hash: [u8; 32],
    checkpoint: Vec<u8>,
}

impl Head {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 44 + self.checkpoint.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.chunks.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.checkpoint);
        out
    }

    fn decode(b: &[u8]) -> Result<Head, String> {
        let rest = b
            .strip_prefix(MAGIC.as_slice())
            .ok_or("the head of an unfinished batch is not one this binary writes")?;
        if rest.len() < 44 {
            return Err("the head of an unfinished batch is cut short".into());
        }
        Ok(Head {
            chunks: u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")),
            len: u64::from_le_bytes(rest[4..12].try_into().expect("8 bytes")),
            hash: rest[12..44].try_into().expect("32 bytes"),
            checkpoint: rest[44..].to_vec(),
        })
    }
}

/// `writes` as bytes: per write the key's length (u32 LE) and the key, then
/// 0 for a removal, or 1, the value's length (u32 LE) and the value.
fn encode(writes: &Writes) -> Vec<u8> {
    let size: usize = writes
        .iter()
        .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let mut out = Vec::with_capacity(size);
    for (k, v) in writes {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        match v {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

fn decode(mut b: &[u8]) -> Result<Vec<Write>, String> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err("the writes of an unfinished batch are cut short".into());
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn len(b: &mut &[u8]) -> Result<usize, String> {
        Ok(u32::from_le_bytes(take(b, 4)?.try_into().expect("4 bytes")) as usize)
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = len(&mut b)?;
        let key = take(&mut b, n)?.to_vec();
        let value = match take(&mut b, 1)?[0] {
            0 => None,
            1 => {
                let n = len(&mut b)?;
                Some(take(&mut b, n)?.to_vec())
            }
            t => return Err(format!("unknown write tag {t} in an unfinished batch")),
        };
        out.push((key, value));
    }
    Ok(out)
}

/// The three operations a commit uses (sled's tree; a recorder in tests).
trait Kv {
    fn read(&self, k: &[u8]) -> sled::Result<Option<sled::IVec>>;
    fn set(&self, k: Vec<u8>, v: Vec<u8>) -> sled::Result<()>;
    fn unset(&self, k: &[u8]) -> sled::Result<()>;
}

impl Kv for sled::Tree {
    fn read(&self, k: &[u8]) -> sled::Result<Option<sled::IVec>> {
        sled::Tree::get(self, k)
    }
    fn set(&self, k: Vec<u8>, v: Vec<u8>) -> sled::Result<()> {
        self.insert(k, v).map(drop)
    }
    fn unset(&self, k: &[u8]) -> sled::Result<()> {
        self.remove(k).map(drop)
    }
}

/// Commits `writes` and then `checkpoint` (the JSON of the checkpoint the
/// batch reaches) into `tree`, as the module's documentation says. Returns
/// the number of keys written, chunks included.
///
/// `writes` must not hold the checkpoint's key. An error may leave the batch
/// half-applied: call [`finish`] before reading the tree's metadata again.
pub fn commit(tree: &sled::Tree, writes: Writes, checkpoint: Vec<u8>) -> Result<usize, Error> {
    Ok(commit_to(tree, writes, checkpoint)?)
}

/// Commits as [`commit`] does but fails, as a failing disk would, once the
/// batch is written ahead and half its writes are made (tests of recovery).
pub(crate) fn commit_failing_midway(
    tree: &sled::Tree,
    writes: Writes,
    checkpoint: Vec<u8>,
) -> Result<usize, Error> {
    let chunks = encode(&writes).len().div_ceil(CHUNK);
    let left = std::cell::Cell::new(chunks + 1 + writes.len() / 2);
    let failing = Failing { tree, left };
    Ok(commit_to(&failing, writes, checkpoint)?)
}

/// A tree whose writes fail after a number of them.
struct Failing<'a> {
    tree: &'a sled::Tree,
    left: std::cell::Cell<usize>,
}

impl Failing<'_> {
    fn spend(&self) -> sled::Result<()> {
        match self.left.get() {
            0 => Err(sled::Error::Io(std::io::Error::other(
                "injected failure halfway through a commit (test)",
            ))),
            n => {
                self.left.set(n - 1);
                Ok(())
            }
        }
    }
}

impl Kv for Failing<'_> {
    fn read(&self, k: &[u8]) -> sled::Result<Option<sled::IVec>> {
        Kv::read(self.tree, k)
    }
    fn set(&self, k: Vec<u8>, v: Vec<u8>) -> sled::Result<()> {
        self.spend()?;
        Kv::set(self.tree, k, v)
    }
    fn unset(&self, k: &[u8]) -> sled::Result<()> {
        self.spend()?;
        Kv::unset(self.tree, k)
    }
}

fn commit_to(tree: &impl Kv, writes: Writes, checkpoint: Vec<u8>) -> sled::Result<usize> {
    debug_assert!(!writes.contains_key(META_CHECKPOINT));
    let earlier_chunks = match tree.read(REDO_HEAD)? {
        Some(h) => Head::decode(&h).map_or(0, |h| h.chunks),
        None => 0,
    };
    let encoded = encode(&writes);
    let mut chunks = 0u32;
    for piece in encoded.chunks(CHUNK) {
        tree.set(chunk_key(chunks), piece.to_vec())?;
        chunks += 1;
    }
    let head = Head {
        chunks,
        len: encoded.len() as u64,
        hash: *blake3::hash(&encoded).as_bytes(),
        checkpoint,
    };
    tree.set(REDO_HEAD.to_vec(), head.encode())?;
    drop(encoded);
    // Chunks a larger batch before this one left behind.
    for i in chunks..earlier_chunks {
        tree.unset(&chunk_key(i))?;
    }
    let mut keys = chunks as usize + 1;
    for (k, v) in writes {
        match v {
            Some(v) => tree.set(k, v)?,
            None => tree.unset(&k)?,
        };
        keys += 1;
    }
    tree.set(META_CHECKPOINT.to_vec(), head.checkpoint)?;
    Ok(keys + 1)
}

/// Commits `writes` and then `checkpoint` into a tree marked unfinished
/// ([`mark_unfinished`]), without writing them ahead: each write, in key
/// order, then the checkpoint. Returns the number of keys written. A tree
/// that is not marked is refused (its batches must be written ahead).
pub fn commit_in_place(
    tree: &sled::Tree,
    writes: Writes,
    checkpoint: Vec<u8>,
) -> Result<usize, Error> {
    if tree.get(META_UNFINISHED)?.is_none() {
        return Err(Error::Other(
            "a batch committed in place into a tree not marked unfinished".into(),
        ));
    }
    debug_assert!(!writes.contains_key(META_CHECKPOINT));
    let keys = writes.len();
    for (k, v) in writes {
        match v {
            Some(v) => tree.insert(k, v).map(drop)?,
            None => tree.remove(k).map(drop)?,
        };
    }
    tree.insert(META_CHECKPOINT, checkpoint)?;
    Ok(keys + 1)
}

/// Marks `tree` as being built from nothing: until [`mark_finished`],
/// [`finish`] (so every opening of the tree) reports it damaged.
pub fn mark_unfinished(tree: &sled::Tree) -> Result<(), Error> {
    tree.insert(META_UNFINISHED, b"being built from the log".as_slice())?;
    Ok(())
}

/// Ends what [`mark_unfinished`] began, once every batch of the build is
/// committed.
pub fn mark_finished(tree: &sled::Tree) -> Result<(), Error> {
    tree.remove(META_UNFINISHED)?;
    Ok(())
}

/// Completes the batch `tree` was committing when it stopped (a crash, or an
/// I/O error), if any: its writes, then its checkpoint. Returns whether
/// there was one. An error that is not sled's means the batch written ahead
/// is damaged; the caller treats the tree as damaged (it is rebuilt).
pub fn finish(tree: &sled::Tree) -> Result<bool, FinishError> {
    if tree.get(META_UNFINISHED)?.is_some() {
        return Err(FinishError::Damaged(
            "a build from the log that did not finish".into(),
        ));
    }
    let Some(head) = tree.get(REDO_HEAD)? else {
        return Ok(false);
    };
    let head = Head::decode(&head).map_err(FinishError::Damaged)?;
    if tree.get(META_CHECKPOINT)?.as_deref() == Some(head.checkpoint.as_slice()) {
        return Ok(false);
    }
    let mut encoded = Vec::with_capacity(head.len as usize);
    for i in 0..head.chunks {
        match tree.get(chunk_key(i))? {
            Some(c) => encoded.extend_from_slice(&c),
            None => {
                return Err(FinishError::Damaged(format!(
                    "chunk {i} of {} of an unfinished batch is missing",
                    head.chunks
                )))
            }
        }
    }
    if encoded.len() as u64 != head.len || *blake3::hash(&encoded).as_bytes() != head.hash {
        return Err(FinishError::Damaged(
            "the writes of an unfinished batch do not match their hash".into(),
        ));
    }
    let writes = decode(&encoded).map_err(FinishError::Damaged)?;
    let n = writes.len();
    for (k, v) in writes {
        match v {
            Some(v) => tree.insert(k, v)?,
            None => tree.remove(k)?,
        };
    }
    tree.insert(META_CHECKPOINT, head.checkpoint)?;
    tracing::info!(
        tree = %String::from_utf8_lossy(&tree.name()),
        writes = n,
        "completed a batch of the read model that was cut short"
    );
    Ok(true)
}

/// Why [`finish`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Sled(#[from] sled::Error),
    #[error("{0}")]
    Damaged(String),
}

impl From<FinishError> for Error {
    fn from(e: FinishError) -> Self {
        match e {
            FinishError::Sled(e) => Error::Sled(e),
            FinishError::Damaged(s) => Error::Other(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (sled::Db, sled::Tree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = db.open_tree("t").unwrap();
        (db, t)
    }

    fn writes(n: usize, value_len: usize) -> Writes {
        (0..n)
            .map(|i| {
                let k = format!("k/{i:06}").into_bytes();
                let v = (i % 7 != 3).then(|| vec![b'a' + (i % 26) as u8; value_len]);
                (k, v)
            })
            .collect()
    }

    fn content(t: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        t.iter()
            .map(|r| r.unwrap())
            .filter(|(k, _)| !k.starts_with(REDO_PREFIX))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn encoding_round_trips() {
        let w = writes(100, 50);
        let back: Writes = decode(&encode(&w)).unwrap().into_iter().collect();
        assert_eq!(back, w);
        let h = Head {
            chunks: 3,
            len: 70_000,
            hash: [7; 32],
            checkpoint: br#"{"0":12}"#.to_vec(),
        };
        assert_eq!(Head::decode(&h.encode()).unwrap(), h);
        assert!(decode(&encode(&w)[..100]).is_err());
        assert!(Head::decode(b"redo/1short").is_err());
    }

    #[test]
    fn a_commit_writes_everything_and_leaves_nothing_to_finish() {
        let (_db, t) = tree();
        t.insert(b"k/000003", &b"old"[..]).unwrap();
        commit(&t, writes(5_000, 40), b"cp1".to_vec()).unwrap();
        assert_eq!(t.get(META_CHECKPOINT).unwrap().unwrap(), &b"cp1"[..]);
        assert!(t.get(b"k/000003").unwrap().is_none(), "removals applied");
        assert_eq!(t.get(b"k/000004").unwrap().unwrap().len(), 40);
        assert!(!finish(&t).unwrap());
        // A smaller batch after a larger one removes the chunks it left.
        commit(&t, writes(10, 10), b"cp2".to_vec()).unwrap();
        let chunks = t.scan_prefix(REDO_CHUNK).count();
        assert_eq!(chunks, 1);
    }

    /// Records every write of a commit, in order, and makes them.
    struct Recorder<'a>(&'a sled::Tree, std::cell::RefCell<Vec<Write>>);

    impl Kv for Recorder<'_> {
        fn read(&self, k: &[u8]) -> sled::Result<Option<sled::IVec>> {
            Kv::read(self.0, k)
        }
        fn set(&self, k: Vec<u8>, v: Vec<u8>) -> sled::Result<()> {
            self.1.borrow_mut().push((k.clone(), Some(v.clone())));
            Kv::set(self.0, k, v)
        }
        fn unset(&self, k: &[u8]) -> sled::Result<()> {
            self.1.borrow_mut().push((k.to_vec(), None));
            Kv::unset(self.0, k)
        }
    }

    fn copy(all: &[(Vec<u8>, Vec<u8>)]) -> (sled::Db, sled::Tree) {
        let (db, t) = tree();
        for (k, v) in all {
            t.insert(k, v.clone()).unwrap();
        }
        (db, t)
    }

    /// Every state a crash can leave (sled recovers a prefix of the writes)
    /// is completed by `finish` into the state after the whole batch, or
    /// left as the state before it; never anything in between.
    #[test]
    fn finish_completes_every_prefix_of_a_commit() {
        let (_db, t) = tree();
        // A larger batch first, so that the second also removes chunks.
        commit(&t, writes(4_000, 60), b"cp-a".to_vec()).unwrap();
        let all_before: Vec<_> = t
            .iter()
            .map(|r| r.unwrap())
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let before = content(&t);
        let rec = Recorder(&t, Default::default());
        commit_to(&rec, writes(3_000, 30), b"cp-b".to_vec()).unwrap();
        let after = content(&t);
        let ops = rec.1.into_inner();
        assert!(ops.len() > 3_000, "{} writes recorded", ops.len());
        assert_ne!(before, after);
        let head_at = ops.iter().position(|(k, _)| k == REDO_HEAD).unwrap();

        let cuts =
            (0..=ops.len())
                .step_by(89)
                .chain([head_at, head_at + 1, ops.len() - 1, ops.len()]);
        for cut in cuts {
            let (_db, t) = copy(&all_before);
            for (k, v) in &ops[..cut] {
                match v {
                    Some(v) => t.insert(k.clone(), v.clone()).unwrap(),
                    None => t.remove(k).unwrap(),
                };
            }
            let finished = finish(&t).unwrap();
            let got = content(&t);
            if cut > head_at {
                assert!(
                    got == after,
                    "a crash after {cut} of {} writes was not completed",
                    ops.len()
                );
                assert_eq!(finished, cut < ops.len(), "cut {cut}");
            } else {
                assert!(
                    got == before,
                    "a crash after {cut} of {} writes (before the head) changed the state",
                    ops.len()
                );
                assert!(!finished);
            }
            // Finishing again changes nothing.
            assert!(!finish(&t).unwrap());
        }
    }

    #[test]
    fn a_damaged_batch_is_an_error_not_a_guess() {
        let (_db, t) = tree();
        commit(&t, writes(3_000, 30), b"cp1".to_vec()).unwrap();
        // As if the checkpoint had not been written, and a chunk were torn.
        t.insert(META_CHECKPOINT, &b"cp0"[..]).unwrap();
        let mut c = t.get(chunk_key(0)).unwrap().unwrap().to_vec();
        c[10] ^= 1;
        t.insert(chunk_key(0), c).unwrap();
        assert!(matches!(finish(&t), Err(FinishError::Damaged(_))));
        t.remove(chunk_key(1)).unwrap();
        assert!(matches!(finish(&t), Err(FinishError::Damaged(_))));
    }

    #[test]
    fn a_tree_built_in_place_is_damaged_until_marked_finished() {
        let (_db, t) = tree();
        // Only into a tree marked unfinished.
        assert!(commit_in_place(&t, writes(10, 5), b"cp1".to_vec()).is_err());
        assert!(t.is_empty());
        mark_unfinished(&t).unwrap();
        assert_eq!(
            commit_in_place(&t, writes(10, 5), b"cp1".to_vec()).unwrap(),
            11
        );
        assert!(!t.contains_key(REDO_HEAD).unwrap(), "nothing written ahead");
        assert_eq!(
            t.get(META_CHECKPOINT).unwrap().as_deref(),
            Some(&b"cp1"[..])
        );
        assert!(matches!(finish(&t), Err(FinishError::Damaged(_))));
        mark_finished(&t).unwrap();
        assert!(!finish(&t).unwrap());
    }
}
