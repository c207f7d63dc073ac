//! Multi-version memory: every key's writes, one entry per transaction, with estimates.
//!
//! # Lifecycle
//! An `MvMemory` serves one block at a time and may be reused for the next: [`MvMemory::reset`]
//! empties it but keeps its allocations, so a steady stream of blocks stops paying for fresh
//! memory (inserts into a fresh 30k-key table measured 130-180 ns each, into warm memory 46-73 ns).
//! An incarnation reads through [`MvMemory::read`] and,
//! when it finishes, publishes its writes and read set with [`MvMemory::record`]. A failed
//! validation turns the incarnation's writes into estimates with
//! [`MvMemory::convert_writes_to_estimates`]; the next incarnation's `record` replaces them.
//! After the scheduler is done, each worker's [`MvMemory::snapshot_shards`] resolves the final
//! value of the keys in its share of the map's shards; once every share is resolved,
//! [`MvMemory::clear_share`] empties the worker's shards and its share of the
//! per-transaction records, so that the next reset has almost nothing left to do.
//!
//! # Contention markers
//! A key that transactions read and then write (a hot balance, a pair's reserves) serialises
//! them: while one of them runs, a higher one that reads the key gets the value about to be
//! replaced, runs to the end, fails validation and runs again. Once that has happened on a
//! key, the key is *contended*, and each read of it leaves a marker: the last reader. (The
//! highest reader so far was tried first: after an abort, workers run lower transactions
//! again under a marker already past them, and it stopped almost nothing.)
//! A later read of a contended key by `j` that finds the marker of a lower transaction `r`
//! that has not finished executing, and whose write it would read past (no entry of `r` or
//! above below `j`), stops with [`MvReadError::PendingReader`]: the executor then waits for
//! `r`, in place or suspended, instead of running on a value `r` is about to replace.
//! Each such stop, and each validation failure of the kind above, counts as a conflict on
//! the key; at [`HOT_CONFLICTS`] the key is *hot*, and `record` reports a write of it, so that
//! the writer's worker may run the writer's successor hint next (I21, in the scheduler).
//! ```text
//!            validate_read_set fails on a key the
//!            same transaction also wrote (read, then write)
//!   quiet ───────────────────────────────────────────────► contended
//!                                                          │  ▲
//!                                              read: marker│  │ read: PendingReader
//!                                                     := j └──┘ (lower r not yet executed)
//! ```
//!
//! # Entry states of (key, transaction)
//! ```text
//!            record                 convert_writes_to_estimates
//!   (none) ─────────► Write/Delta ───────────────────────────────► Estimate
//!     ▲                 ▲   │                                          │
//!     │  record (key    │   └──────────── record ──────────────────────┘
//!     └── not written ──┘                 (next incarnation)
//!         any more)
//! ```
//!
//! # Invariants
//! - **I8** An entry of transaction `t` carries the incarnation that wrote it; an `Estimate`
//!   stands for the writes of an aborted incarnation until the next one records.
//! - **I9** `record` publishes the new entries before it removes the keys the new incarnation
//!   no longer writes, so a concurrent reader never sees fewer writes than either incarnation
//!   made; any read it makes of a half-updated transaction is caught by validation.
//! - **I10** A read by transaction `j` sees only entries of transactions below `j`.
//! - **I11** Validation recomputes each read's origin (the versions it was assembled from) and
//!   fails on any difference or on an estimate.
//! - **I12** A lazy delta never reads the value below it; a read resolves a chain of deltas down
//!   to the nearest full write or to pre-block state, and records every version in the chain.
//! - **I17** A key's bit in the written filter is set before its first entry is inserted and is
//!   never cleared within a block. A read (or validation) that finds the bit clear answers
//!   "pre-block state" without touching the map: exactly what a map lookup ordered before
//!   every insert of the key returns. Most reads in a block are of keys no transaction writes
//!   (contract code, untouched accounts and slots), and these then take no shard lock, whose
//!   lock word every core reading a hot key would otherwise write.
//! - **I18** A contention marker only delays a read: the read stops on a *lower* transaction
//!   (as an estimate does, I10), and the value it finally returns is resolved, recorded and
//!   validated exactly as any other (I11). Validation and the snapshot never look at markers,
//!   so a wrong or stale marker costs time, never a result.
//!
//! # Memory ordering
//! The map shards and the per-transaction slots are behind locks. The written filter's words
//! are atomics, set (`fetch_or`) and read with `SeqCst`, for the same reason the scheduler's
//! counters are: a validation that reads a bit clear must either see a writer's bit or be
//! seen by that writer's later `SeqCst` look at `validation_idx` (which then schedules the
//! validation again), the store-load pattern that only one total order of both rules out.
//! `records_cleared` is `Relaxed`: only `reset`, holding `&mut self` after the workers'
//! join, reads it. A key's conflict count and reader marker are `Relaxed` atomics, written
//! under the shard's read lock: they are hints (I18), no other memory is published through
//! them, and a reader that sees a stale one only waits when it need not, or does not when it
//! could have.

use crate::task::{BlockTask, ReadError, ReadValue, TxnIndex, Version, WriteOp, WriteSet};
use crate::CacheLine;
use hashbrown::hash_table::{Entry as TableEntry, HashTable};
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

/// Conflicts on one key that make it hot: a chain of transactions long enough that running
/// them back to back on one worker pays (I21). A few conflicts on a key (two swaps on one pool
/// in a mainnet block) are left to the index order.
pub const HOT_CONFLICTS: u32 = 16;

/// What [`MvMemory::record`] found while publishing an incarnation's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// A key the previous incarnation of the same transaction did not write (I6).
    pub wrote_new_location: bool,
    /// A hot key: one with at least [`HOT_CONFLICTS`] conflicts in this block (I21's
    /// trigger).
    pub wrote_hot: bool,
}

/// One transaction's entry for one key.
#[derive(Debug, Clone)]
enum Entry<V, D> {
    Write { incarnation: u32, value: Option<V> },
    Delta { incarnation: u32, delta: D },
    Estimate,
}

/// Where a read's value came from: what validation compares (I11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOrigin {
    /// Pre-block state; no lower transaction wrote the key.
    Base,
    /// The full write of one version.
    Version(Version),
    /// Deltas on top of a full write or pre-block state: rare (reads of lazily credited
    /// accounts). A read set keeps its chains apart from its entries (see [`ReadSet`]).
    Chain(Chain),
}

/// A read's origin as a read set holds it: plain data, so that a read set of plain keys
/// empties in constant time. (A boxed chain in each entry made every emptying walk every
/// entry for the rare box to free: 63% of the end-of-block clearing on the ERC-20 block.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoredOrigin {
    Base,
    Version(Version),
    /// The chain at this index of the read set's chains.
    Chain(u32),
}

/// The versions a read through deltas was assembled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The deltas, highest first.
    deltas: SmallVec<[Version; 2]>,
    /// The full write at the bottom; `None`: pre-block state.
    base: Option<Version>,
}

/// What resolving a key below some transaction found.
enum Resolved<V, D> {
    Estimate(TxnIndex),
    Found {
        origin: ReadOrigin,
        /// The full write at the bottom of the chain; `None` with `Base`/`Chain{base: None}`,
        /// and always `None` from an origin-only walk.
        value: Option<Option<V>>,
        deltas: SmallVec<[D; 2]>,
        writer: Option<TxnIndex>,
    },
}

/// The reads of one incarnation, in read order, with where each value came from (I11).
pub struct ReadSet<K> {
    reads: Vec<(K, StoredOrigin)>,
    /// The chains of the reads through deltas, which their entries index.
    chains: Vec<Chain>,
}

impl<K> Default for ReadSet<K> {
    fn default() -> Self {
        ReadSet {
            reads: Vec::new(),
            chains: Vec::new(),
        }
    }
}

impl<K> ReadSet<K> {
    /// An empty read set with room for `reads` reads.
    pub fn with_capacity(reads: usize) -> Self {
        ReadSet {
            reads: Vec::with_capacity(reads),
            chains: Vec::new(),
        }
    }

    /// Records a read of `key` whose value came from `origin`.
    pub fn push(&mut self, key: K, origin: ReadOrigin) {
        let stored = match origin {
            ReadOrigin::Base => StoredOrigin::Base,
            ReadOrigin::Version(version) => StoredOrigin::Version(version),
            ReadOrigin::Chain(chain) => {
                self.chains.push(chain);
                StoredOrigin::Chain(self.chains.len() as u32 - 1)
            }
        };
        self.reads.push((key, stored));
    }

    /// Forgets every read, keeping the room.
    pub fn clear(&mut self) {
        self.reads.clear();
        self.chains.clear();
    }

    /// The keys read, in read order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.reads.iter().map(|(key, _)| key)
    }

    /// Becomes `other`'s reads, leaving `other` empty with its room.
    fn take_from(&mut self, other: &mut ReadSet<K>) {
        self.clear();
        // Indexes into `chains` stay valid: both vectors start empty.
        self.reads.append(&mut other.reads);
        self.chains.append(&mut other.chains);
    }

    /// Whether a stored origin is the same as a recomputed one (I11).
    fn same_origin(&self, stored: StoredOrigin, origin: &ReadOrigin) -> bool {
        match (stored, origin) {
            (StoredOrigin::Base, ReadOrigin::Base) => true,
            (StoredOrigin::Version(stored), ReadOrigin::Version(version)) => stored == *version,
            (StoredOrigin::Chain(at), ReadOrigin::Chain(chain)) => {
                self.chains.get(at as usize) == Some(chain)
            }
            _ => false,
        }
    }
}

/// Why [`MvMemory::read`] returned no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MvReadError {
    /// The read failed: an estimate of a lower transaction, or the pre-block store.
    Read(ReadError),
    /// The key is contended and this lower transaction, which read it and has not finished
    /// executing, is likely to write it (I18).
    PendingReader(TxnIndex),
}

/// One key's entries, sorted by transaction index. Most keys have a single writer, which fits
/// inline: no allocation per key, and nothing to free when the block ends.
#[derive(Debug)]
struct Versions<V, D>(SmallVec<[(TxnIndex, Entry<V, D>); 1]>);

impl<V, D> Default for Versions<V, D> {
    fn default() -> Self {
        Versions(SmallVec::new())
    }
}

impl<V, D> Versions<V, D> {
    fn insert(&mut self, txn_idx: TxnIndex, entry: Entry<V, D>) {
        // Transactions mostly finish in index order: check the end before searching.
        match self.0.last() {
            Some((last, _)) if *last < txn_idx => self.0.push((txn_idx, entry)),
            None => self.0.push((txn_idx, entry)),
            _ => match self.0.binary_search_by_key(&txn_idx, |(t, _)| *t) {
                Ok(i) => self.0[i].1 = entry,
                Err(i) => self.0.insert(i, (txn_idx, entry)),
            },
        }
    }

    fn get_mut(&mut self, txn_idx: TxnIndex) -> Option<&mut Entry<V, D>> {
        match self.0.binary_search_by_key(&txn_idx, |(t, _)| *t) {
            Ok(i) => Some(&mut self.0[i].1),
            Err(_) => None,
        }
    }

    fn remove(&mut self, txn_idx: TxnIndex) {
        if let Ok(i) = self.0.binary_search_by_key(&txn_idx, |(t, _)| *t) {
            self.0.remove(i);
        }
    }

    /// Entries strictly below `txn_idx`, highest first.
    fn below(&self, txn_idx: TxnIndex) -> impl Iterator<Item = &(TxnIndex, Entry<V, D>)> {
        let end = self.0.partition_point(|(t, _)| *t < txn_idx);
        self.0[..end].iter().rev()
    }
}

/// Where a written key lives in the map: its shard, and its position in the shard's entries
/// (stable until the block ends: keys are only ever appended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Location {
    shard: u32,
    position: u32,
}

/// Where the keys one incarnation wrote live, and whether each was a full write (`true`) or
/// a delta: eight bytes a key, where the key itself took 56 for the EVM, and estimates and
/// removals go straight to the entry with no hashing and no probe.
type WrittenKeys = Vec<(Location, bool)>;

pub struct MvMemory<K, V, D> {
    /// The map from key to versions, in [`SHARDS`] shards chosen by the key's hash.
    shards: Box<[LockedShard<K, V, D>]>,
    hasher: ahash::RandomState,
    /// One cache line per transaction (see [`CacheLine`]).
    txns: Vec<CacheLine<TxnRecord<K>>>,
    /// One bit per hash bucket: set once any incarnation of the block wrote a key of the
    /// bucket (I17). A clear bit answers a read without the map.
    written: Vec<AtomicU64>,
    /// The filter's bit count minus one (a power of two minus one).
    written_mask: u64,
    /// How many per-transaction records the workers' [`MvMemory::clear_share`] emptied since
    /// the last reset: when it is every record, the reset skips them.
    records_cleared: AtomicUsize,
    /// Conflicts that make a key hot (I21), for this block.
    hot_conflicts: u32,
}

/// One shard behind its lock, on cache lines of its own.
type LockedShard<K, V, D> = CacheLine<RwLock<Shard<K, V, D>>>;

/// Shards of the map: enough that two workers rarely want one lock at once.
const SHARDS: usize = 128;

/// The shard of a hash: bits 20..27, apart from the low bits that place a key in its shard's
/// index, the top seven that the index keeps as tags, and the bits the written filter uses.
fn shard_of(hash: u64) -> usize {
    (hash >> 20) as usize & (SHARDS - 1)
}

/// One shard of the map: the keys of the block whose hash picks this shard, in first-write
/// order, and an index from hash to position. A key is appended the first time it is
/// written and stays until the block ends (a transaction that stops writing it only leaves
/// its versions), so positions are stable and the entries dense: inserting a key writes the
/// line the shard's previous insert wrote, the index (four bytes a key) stays small enough to
/// stay in cache, and the snapshot walks the entries in memory order. A table holding the
/// keys and versions themselves (136 bytes a key for the EVM) made every first write of a key
/// two cache misses, serialised by the shard lock around them.
struct Shard<K, V, D> {
    index: HashTable<u32>,
    entries: Vec<KeyEntry<K, V, D>>,
}

struct KeyEntry<K, V, D> {
    hash: u64,
    key: K,
    versions: Versions<V, D>,
    contention: Contention,
}

/// A key's contention marker (see the module docs): atomics, because readers hold only the
/// shard's read lock.
#[derive(Default)]
struct Contention {
    /// Conflicts seen on the key: validations that failed on it after the same incarnation
    /// wrote it, and reads that stopped on a pending reader. Nonzero once contended.
    conflicts: AtomicU32,
    /// The last transaction that read the key while it was contended, plus one (0: none).
    reader: AtomicU32,
}

impl Contention {
    /// The lower transaction, not yet executed (`pending`), whose write a read of the key by
    /// `txn_idx` would read past; then leaves `txn_idx`'s own marker. `writer`: the highest
    /// transaction below `txn_idx` with an entry for the key.
    fn pending_reader(
        &self,
        txn_idx: TxnIndex,
        writer: Option<TxnIndex>,
        pending: impl Fn(TxnIndex) -> bool,
    ) -> Option<TxnIndex> {
        if self.conflicts.load(Relaxed) == 0 {
            return None;
        }
        let marked = self.reader.load(Relaxed);
        if let Some(reader) = marked.checked_sub(1) {
            let read_past = writer.is_none_or(|writer| writer < reader);
            if reader < txn_idx && read_past && pending(reader) {
                self.conflicts.fetch_add(1, Relaxed);
                return Some(reader);
            }
        }
        if marked != txn_idx + 1 {
            self.reader.store(txn_idx + 1, Relaxed);
        }
        None
    }
}

impl<K, V, D> Default for Shard<K, V, D> {
    fn default() -> Self {
        Shard {
            index: HashTable::new(),
            entries: Vec::new(),
        }
    }
}

impl<K: Eq, V, D> Shard<K, V, D> {
    /// Where `key` sits in `entries`.
    fn position(&self, hash: u64, key: &K) -> Option<usize> {
        let entries = &self.entries;
        let at = self.index.find(hash, |&at| {
            let entry = &entries[at as usize];
            entry.hash == hash && entry.key == *key
        })?;
        Some(*at as usize)
    }

    /// Puts `entry` in the versions of `key` as the entry of `txn_idx`; a key the block has
    /// not written before is appended with it (built whole: no read-back of a line just
    /// copied). Returns the key's position in `entries`.
    fn insert(&mut self, hash: u64, key: K, txn_idx: TxnIndex, entry: Entry<V, D>) -> u32 {
        let Shard { index, entries } = self;
        let found = index.entry(
            hash,
            |&at| {
                let entry = &entries[at as usize];
                entry.hash == hash && entry.key == key
            },
            |&at| entries[at as usize].hash,
        );
        match found {
            TableEntry::Occupied(found) => {
                let at = *found.get();
                entries[at as usize].versions.insert(txn_idx, entry);
                at
            }
            TableEntry::Vacant(vacant) => {
                let at = entries.len() as u32;
                vacant.insert(at);
                let mut versions = SmallVec::new();
                versions.push((txn_idx, entry));
                entries.push(KeyEntry {
                    hash,
                    key,
                    versions: Versions(versions),
                    contention: Contention::default(),
                });
                // The shard's next new key goes right after this one, in lines this block has
                // not touched yet: fetched now, they are warm when that insert comes (about a
                // shard count of inserts later), where waiting for them then stalled the
                // insert under the lock.
                let next = entries.as_ptr().wrapping_add(entries.len()) as usize;
                crate::prefetch_range(next, size_of::<KeyEntry<K, V, D>>());
                at
            }
        }
    }

    /// Empties the shard, keeping its allocations.
    fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
    }

    /// Room for `keys` keys without growing.
    fn reserve(&mut self, keys: usize) {
        let Shard { index, entries } = self;
        index.reserve(keys.saturating_sub(index.len()), |&at| {
            entries[at as usize].hash
        });
        entries.reserve(keys.saturating_sub(entries.len()));
    }
}

/// Filter bits per transaction: at a few written keys per transaction this keeps about one
/// bit in ten set, so a read of an unwritten key rarely falls through to the map.
const FILTER_BITS_PER_TXN: usize = 32;

/// What the last recorded incarnation of one transaction wrote and read: plain vectors under
/// one per-transaction lock. Validation and estimate conversion hold it while they walk them,
/// and only the same transaction's next `record` contends. The lock is taken before any shard
/// lock, never after one.
type TxnRecord<K> = Mutex<LastIncarnation<K>>;

struct LastIncarnation<K> {
    written: WrittenKeys,
    read_set: ReadSet<K>,
}

impl<K> Default for LastIncarnation<K> {
    fn default() -> Self {
        LastIncarnation {
            written: Vec::new(),
            read_set: ReadSet::default(),
        }
    }
}

impl<K, V, D> Default for MvMemory<K, V, D> {
    fn default() -> Self {
        MvMemory {
            shards: (0..SHARDS).map(|_| CacheLine::default()).collect(),
            hasher: ahash::RandomState::new(),
            txns: Vec::new(),
            written: Vec::new(),
            written_mask: 0,
            records_cleared: AtomicUsize::new(0),
            hot_conflicts: HOT_CONFLICTS,
        }
    }
}

impl<K, V, D> MvMemory<K, V, D>
where
    K: Eq + std::hash::Hash + Clone,
    V: Clone,
    D: Clone,
{
    /// Empties the memory for a block of `num_txns`, keeping every allocation it can; a key
    /// of the block is hot from `hot_conflicts` conflicts (I21).
    pub fn reset(&mut self, num_txns: usize, hot_conflicts: u32) {
        self.hot_conflicts = hot_conflicts;
        // Sized for a few keys per transaction: a shard that grows moves its entries under
        // its lock.
        let per_shard = (num_txns * 4).div_ceil(SHARDS);
        for shard in self.shards.iter_mut() {
            let shard = shard.get_mut();
            shard.clear();
            shard.reserve(per_shard);
        }
        // Emptied already, in parallel, unless the last block was traced or failed (a walk
        // over one cold cache line a transaction, and keys that need dropping, on one thread).
        let cleared = std::mem::take(self.records_cleared.get_mut()) == self.txns.len();
        self.txns.truncate(num_txns);
        if !cleared {
            for slot in self.txns.iter_mut() {
                let last = slot.get_mut();
                last.written.clear();
                last.read_set.clear();
            }
        }
        self.txns.resize_with(num_txns, CacheLine::default);
        // I17: every bit clear before the block's first record.
        let bits = (num_txns * FILTER_BITS_PER_TXN)
            .next_power_of_two()
            .max(4096);
        let words = bits / 64;
        self.written.truncate(words);
        for word in self.written.iter_mut() {
            *word.get_mut() = 0;
        }
        self.written.resize_with(words, || AtomicU64::new(0));
        self.written_mask = bits as u64 - 1;
    }

    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The filter word and bit of a key's hash (I17).
    fn filter_bit(&self, hash: u64) -> (&AtomicU64, u64) {
        // The high half of the hash: the shards' indexes place keys by the low bits.
        let bit = hash.rotate_left(32) & self.written_mask;
        (&self.written[(bit / 64) as usize], 1 << (bit % 64))
    }

    /// I17: marks a key (by its hash) as written in this block, before its entry is inserted.
    fn mark_written(&self, hash: u64) {
        let (word, bit) = self.filter_bit(hash);
        if word.load(SeqCst) & bit == 0 {
            word.fetch_or(bit, SeqCst);
        }
    }

    /// I17: false only if no incarnation of this block has written the key yet.
    fn maybe_written(&self, hash: u64) -> bool {
        let (word, bit) = self.filter_bit(hash);
        word.load(SeqCst) & bit != 0
    }

    /// Runs `f` on `key`'s entry and where it lives, under its shard's read lock; `None` when
    /// no incarnation of the block has written the key (I17: then without the map).
    fn with_entry<R>(
        &self,
        key: &K,
        f: impl FnOnce(Option<(Location, &KeyEntry<K, V, D>)>) -> R,
    ) -> R {
        let hash = self.hash(key);
        if !self.maybe_written(hash) {
            return f(None);
        }
        let shard = shard_of(hash);
        let entries = self.shards[shard].read();
        let found = entries.position(hash, key).map(|position| {
            let location = Location {
                shard: shard as u32,
                position: position as u32,
            };
            (location, &entries.entries[position])
        });
        f(found)
    }

    /// Resolves `key` below `txn_idx`; `VALUES` as in [`resolve_entries`].
    fn resolve<const VALUES: bool>(&self, key: &K, txn_idx: TxnIndex) -> Resolved<V, D> {
        self.with_entry(key, |found| {
            resolve_entries::<V, D, VALUES>(found.map(|(_, entry)| &entry.versions), txn_idx)
        })
    }

    /// Reads `key` as transaction `txn_idx` sees it, falling back to pre-block state.
    /// `pending(r)`: transaction `r` has not finished executing; asked only about the reader
    /// marked on a contended key (I18).
    pub fn read<T>(
        &self,
        task: &T,
        key: &K,
        txn_idx: TxnIndex,
        pending: impl Fn(TxnIndex) -> bool,
    ) -> Result<(ReadValue<V>, ReadOrigin), MvReadError>
    where
        T: BlockTask<Key = K, Value = V, Delta = D>,
    {
        let resolved = self.with_entry(key, |found| {
            let resolved =
                resolve_entries::<V, D, true>(found.map(|(_, entry)| &entry.versions), txn_idx);
            if let (Some((_, entry)), Resolved::Found { writer, .. }) = (found, &resolved) {
                // I18: a lower transaction only, like an estimate (I10).
                if let Some(reader) = entry.contention.pending_reader(txn_idx, *writer, pending) {
                    return Err(MvReadError::PendingReader(reader));
                }
            }
            Ok(resolved)
        })?;
        materialize(task, key, resolved).map_err(MvReadError::Read)
    }

    /// Asks the cache for the record of `txn_idx`, which [`MvMemory::record`] will write.
    pub fn prefetch_record(&self, txn_idx: TxnIndex) {
        if let Some(slot) = self.txns.get(txn_idx as usize) {
            crate::prefetch(slot);
        }
    }

    /// Publishes an incarnation's writes and read set, and says whether it wrote a key that
    /// the previous incarnation of the same transaction did not, and whether a hot one. The
    /// read set is moved out of `reads`, which keeps its capacity for the worker's next
    /// incarnation (a swap of the buffers instead was measured slower: the worker then writes
    /// its next read set into the record's cold buffer rather than its own hot one).
    pub fn record(
        &self,
        version: Version,
        reads: &mut ReadSet<K>,
        write_set: WriteSet<K, V, D>,
    ) -> Recorded {
        let Version {
            txn_idx,
            incarnation,
        } = version;
        let mut last = self.txns[txn_idx as usize].lock();
        let first = last.written.is_empty();
        let previous = if first {
            Vec::new()
        } else {
            std::mem::take(&mut last.written)
        };
        let mut wrote_hot = false;
        // I8, I9: new entries first.
        for (key, op) in write_set {
            let (entry, full) = match op {
                WriteOp::Write(value) => (Entry::Write { incarnation, value }, true),
                WriteOp::Delta(delta) => (Entry::Delta { incarnation, delta }, false),
            };
            let hash = self.hash(&key);
            self.mark_written(hash); // I17: the bit before the entry.
            let shard = shard_of(hash);
            let mut guard = self.shards[shard].write();
            let position = guard.insert(hash, key, txn_idx, entry);
            // I21: a hint only; the entry's line is the one just written.
            wrote_hot |= guard.entries[position as usize]
                .contention
                .conflicts
                .load(Relaxed)
                >= self.hot_conflicts;
            drop(guard);
            let location = Location {
                shard: shard as u32,
                position,
            };
            last.written.push((location, full));
        }
        // I9: then drop what this incarnation no longer writes.
        let wrote_new_location = if first {
            !last.written.is_empty()
        } else {
            let current: ahash::AHashSet<Location> =
                last.written.iter().map(|(at, _)| *at).collect();
            let previous: ahash::AHashSet<Location> = previous.iter().map(|(at, _)| *at).collect();
            for at in previous.difference(&current) {
                self.shards[at.shard as usize].write().entries[at.position as usize]
                    .versions
                    .remove(txn_idx);
            }
            current.iter().any(|at| !previous.contains(at))
        };
        last.read_set.take_from(reads);
        Recorded {
            wrote_new_location,
            wrote_hot,
        }
    }

    /// Replaces the writes of `txn_idx`'s last incarnation with estimates (I8).
    pub fn convert_writes_to_estimates(&self, txn_idx: TxnIndex) {
        let last = self.txns[txn_idx as usize].lock();
        for (at, _) in last.written.iter() {
            let mut shard = self.shards[at.shard as usize].write();
            if let Some(entry) = shard.entries[at.position as usize]
                .versions
                .get_mut(txn_idx)
            {
                *entry = Entry::Estimate;
            }
        }
    }

    /// Re-checks the last recorded read set of `txn_idx` (I11). A failure on a key the same
    /// incarnation also wrote marks the key contended.
    pub fn validate_read_set(&self, txn_idx: TxnIndex) -> bool {
        let last = self.txns[txn_idx as usize].lock();
        let read_set = &last.read_set;
        let stale = read_set.reads.iter().find(|(key, recorded)| {
            // Origins only: validation never needs the values, so none is cloned.
            match self.resolve::<false>(key, txn_idx) {
                Resolved::Estimate(_) => true,
                Resolved::Found { origin, .. } => !read_set.same_origin(*recorded, &origin),
            }
        });
        let Some((key, _)) = stale else {
            return true;
        };
        self.with_entry(key, |found| {
            // Read, then written: the pattern a marker can order (a key only read, an
            // oracle, never is: its readers would wait on each other for nothing).
            if let Some((location, entry)) = found {
                if last.written.iter().any(|(at, _)| *at == location) {
                    entry.contention.conflicts.fetch_add(1, Relaxed);
                }
            }
        });
        false
    }

    /// The keys written (full or delta) by the last incarnation of `txn_idx`. Only while the
    /// block's entries are in the map: before [`MvMemory::clear_share`].
    pub fn written_keys(&self, txn_idx: TxnIndex) -> Vec<(K, bool)> {
        let last = self.txns[txn_idx as usize].lock();
        last.written
            .iter()
            .map(|(at, full)| {
                let shard = self.shards[at.shard as usize].read();
                (shard.entries[at.position as usize].key.clone(), *full)
            })
            .collect()
    }

    /// The keys of the last recorded read set of `txn_idx`.
    pub fn read_keys(&self, txn_idx: TxnIndex) -> Vec<K> {
        self.txns[txn_idx as usize]
            .lock()
            .read_set
            .keys()
            .cloned()
            .collect()
    }

    /// The indexes of the shards `worker`, `worker + workers`, ... of the map: one worker's
    /// share in the block's tail (snapshot, then clearing), disjoint from every other worker's.
    fn shard_share(
        &self,
        worker: usize,
        workers: usize,
    ) -> std::iter::StepBy<std::ops::Range<usize>> {
        (worker..self.shards.len()).step_by(workers.max(1))
    }

    /// The final value of every written key in the shards `worker`, `worker + workers`, ...
    /// of the map, deltas resolved: the share of one worker in a parallel snapshot. The shares
    /// are disjoint and together cover every key with an entry, which (I9: `record` keeps
    /// entries and last-written keys in step) is every key some last incarnation wrote. Each
    /// worker scans its shards' tables in memory order instead of looking every written key
    /// up again at random.
    pub fn snapshot_shards<T>(
        &self,
        task: &T,
        worker: usize,
        workers: usize,
        end: TxnIndex,
    ) -> Result<Vec<(K, Option<V>)>, ReadError>
    where
        T: BlockTask<Key = K, Value = V, Delta = D>,
    {
        // Sized up front: a vector of wide entries growing by doubling copies itself and
        // faults in fresh pages at every step.
        let keys = self
            .shard_share(worker, workers)
            .map(|index| self.shards[index].read().entries.len())
            .sum();
        let mut out = Vec::with_capacity(keys);
        for index in self.shard_share(worker, workers) {
            let shard = self.shards[index].read();
            for entry in &shard.entries {
                if entry.versions.0.is_empty() {
                    continue;
                }
                let resolved = resolve_entries::<V, D, true>(Some(&entry.versions), end);
                let (value, _) = materialize(task, &entry.key, resolved)?;
                out.push((entry.key.clone(), value.value));
            }
        }
        Ok(out)
    }

    /// Empties the shards `worker`, `worker + workers`, ... of the map and the worker's
    /// contiguous share of the per-transaction records, keeping their allocations: the
    /// parallel share of the next block's [`MvMemory::reset`]. Only once no worker reads the
    /// memory any more (after the block's last snapshot).
    pub fn clear_share(&self, worker: usize, workers: usize) {
        for index in self.shard_share(worker, workers) {
            self.shards[index].write().clear();
        }
        // A contiguous share, walked in memory order.
        let share = crate::contiguous_share(self.txns.len(), worker, workers);
        for slot in &self.txns[share.clone()] {
            let mut last = slot.lock();
            last.written.clear();
            last.read_set.clear();
        }
        // Relaxed: read by `reset`, which holds `&mut self`, so after the workers' join.
        self.records_cleared.fetch_add(share.len(), Relaxed);
    }
}

/// Walks `entries` below `txn_idx` down to a full write (I10, I12). Without `VALUES` only the
/// origin is computed (the same walk, I11), and the value and deltas are left empty.
fn resolve_entries<V: Clone, D: Clone, const VALUES: bool>(
    entries: Option<&Versions<V, D>>,
    txn_idx: TxnIndex,
) -> Resolved<V, D> {
    let mut deltas: SmallVec<[D; 2]> = SmallVec::new();
    let mut delta_versions: SmallVec<[Version; 2]> = SmallVec::new();
    let mut writer = None;
    if let Some(entries) = entries {
        // I10: strictly below the reader.
        for &(idx, ref entry) in entries.below(txn_idx) {
            writer.get_or_insert(idx);
            match entry {
                Entry::Estimate => return Resolved::Estimate(idx),
                Entry::Delta { incarnation, delta } => {
                    if VALUES {
                        deltas.push(delta.clone());
                    }
                    delta_versions.push(Version {
                        txn_idx: idx,
                        incarnation: *incarnation,
                    });
                }
                Entry::Write { incarnation, value } => {
                    let version = Version {
                        txn_idx: idx,
                        incarnation: *incarnation,
                    };
                    let origin = if delta_versions.is_empty() {
                        ReadOrigin::Version(version)
                    } else {
                        ReadOrigin::Chain(Chain {
                            deltas: delta_versions,
                            base: Some(version),
                        })
                    };
                    return Resolved::Found {
                        origin,
                        value: VALUES.then(|| value.clone()),
                        deltas,
                        writer,
                    };
                }
            }
        }
    }
    let origin = if delta_versions.is_empty() {
        ReadOrigin::Base
    } else {
        ReadOrigin::Chain(Chain {
            deltas: delta_versions,
            base: None,
        })
    };
    Resolved::Found {
        origin,
        value: None,
        deltas,
        writer,
    }
}

/// Turns a resolution into a value: pre-block state at the bottom, deltas applied upwards.
fn materialize<T: BlockTask>(
    task: &T,
    key: &T::Key,
    resolved: Resolved<T::Value, T::Delta>,
) -> Result<(ReadValue<T::Value>, ReadOrigin), ReadError> {
    match resolved {
        Resolved::Estimate(blocking) => Err(ReadError::Blocked(blocking)),
        Resolved::Found {
            origin,
            value,
            deltas,
            writer,
        } => {
            let mut value = match value {
                Some(written) => written,
                None => task.read_base(key)?,
            };
            // I12: deltas were collected highest first; apply them lowest first.
            for delta in deltas.iter().rev() {
                value = Some(T::apply_delta(key, value.as_ref(), delta));
            }
            Ok((ReadValue { value, writer }, origin))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Memory = MvMemory<u8, u64, u64>;

    /// Records `version` of a transaction that read `read` from pre-block state and then wrote
    /// `written` (the same key: the read-then-write pattern a contention marker orders).
    fn record_read_then_write(
        memory: &Memory,
        version: Version,
        read: u8,
        written: u8,
    ) -> Recorded {
        let mut reads = ReadSet::default();
        reads.push(read, ReadOrigin::Base);
        memory.record(
            version,
            &mut reads,
            vec![(written, WriteOp::Write(Some(7)))],
        )
    }

    /// Records `version` of a transaction that read nothing and wrote `key`.
    fn record_write(memory: &Memory, version: Version, key: u8) -> Recorded {
        memory.record(
            version,
            &mut ReadSet::default(),
            vec![(key, WriteOp::Write(Some(1)))],
        )
    }

    fn version(txn_idx: TxnIndex, incarnation: u32) -> Version {
        Version {
            txn_idx,
            incarnation,
        }
    }

    /// I21's trigger: a key is hot from its `HOT_CONFLICTS`th conflict on, and only a write of
    /// a key that the same transaction read (stale) counts one.
    #[test]
    fn a_key_turns_hot_at_its_hot_conflicts_th_failed_read_then_write() {
        let mut memory = Memory::default();
        memory.reset(2, HOT_CONFLICTS);
        // Transaction 0 writes key 1, so transaction 1's read of it from pre-block state is
        // stale every time it is validated.
        record_write(&memory, version(0, 0), 1);
        for incarnation in 0..HOT_CONFLICTS {
            let recorded = record_read_then_write(&memory, version(1, incarnation), 1, 1);
            assert!(!recorded.wrote_hot, "hot after {incarnation} conflicts");
            assert!(!memory.validate_read_set(1));
            memory.convert_writes_to_estimates(1);
        }
        let recorded = record_read_then_write(&memory, version(1, HOT_CONFLICTS), 1, 1);
        assert!(
            recorded.wrote_hot,
            "not hot after {HOT_CONFLICTS} conflicts"
        );

        // A stale read of a key the transaction did not write is no conflict of any key.
        memory.reset(2, HOT_CONFLICTS);
        record_write(&memory, version(0, 0), 1);
        for incarnation in 0..=HOT_CONFLICTS {
            let recorded = record_read_then_write(&memory, version(1, incarnation), 1, 2);
            assert!(!recorded.wrote_hot);
            assert!(!memory.validate_read_set(1));
            memory.convert_writes_to_estimates(1);
        }
        // Nor of the key read: after more than the threshold of such failures, a new write
        // of key 1 is still of a quiet key.
        assert!(!record_write(&memory, version(0, 1), 1).wrote_hot);
    }

    /// The threshold is the block's option: at 0 every written key is hot from its first write.
    #[test]
    fn at_a_threshold_of_zero_every_write_is_hot() {
        let mut memory = Memory::default();
        memory.reset(1, 0);
        let recorded = memory.record(
            version(0, 0),
            &mut ReadSet::default(),
            vec![(3, WriteOp::Delta(1))],
        );
        assert!(recorded.wrote_hot);
        assert!(recorded.wrote_new_location);
    }
}
