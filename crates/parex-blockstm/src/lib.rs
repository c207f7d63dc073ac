//! Block-STM, VM-agnostic.
//!
//! A block is an ordered list of transactions whose result must equal running them one by one.
//! [`execute_parallel`] runs them optimistically on many workers: each transaction reads
//! through a multi-version memory ([`mvmemory`]) that shows it the writes of lower
//! transactions, and a collaborative [`scheduler`] hands out execution and validation tasks so
//! that every read is re-checked after lower transactions settle. A failed validation turns the
//! transaction's writes into estimates and runs a new incarnation. [`execute_sequential`] is the
//! reference, and the fallback whenever the parallel executor reports a broken invariant.
//!
//! The engine knows nothing of any VM: a [`BlockTask`] supplies keys, values, lazy deltas and
//! the execution of one transaction.

mod executor;
pub mod ideal;
pub mod mvmemory;
pub mod scheduler;
mod sequential;
mod task;
pub mod workers;

pub use executor::{execute_parallel, execute_parallel_in, TaskMemory};
pub use ideal::ideal_speedup;
pub use sequential::{execute_sequential, execute_sequential_in, Overlay};
pub use task::{
    BlockTask, Incarnation, OutcomeOf, ReadError, ReadValue, ReadView, TaskOutcome, TxnIndex,
    Version, WriteOp, WriteSet,
};

/// What an executor returns for a block.
#[derive(Debug)]
pub struct BlockOutput<T: BlockTask> {
    /// One entry per transaction, in block order. The sequential executor stops after the
    /// first `Err`; the parallel executor returns every transaction's committed outcome.
    pub results: Vec<Result<T::Output, T::Error>>,
    /// The final value of every key the block wrote.
    pub state: FinalState<T::Key, T::Value>,
    pub stats: Stats,
    /// Per-transaction traces, when asked for.
    pub traces: Option<Vec<TxnTrace<T::Key>>>,
}

/// The final value of every key a block wrote (`None`: deleted or absent), deltas resolved, in
/// disjoint parts: one per worker of the parallel executor, each resolved by its worker from
/// its share of the multi-version memory, so that a caller can go on building from the parts
/// on as many threads without first gathering them; one part from the sequential executor.
/// Each key is in exactly one part. Unordered within and across parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalState<K, V> {
    pub parts: Vec<Vec<(K, Option<V>)>>,
}

impl<K, V> FinalState<K, V> {
    /// The number of keys, over all parts.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(Vec::is_empty)
    }

    /// Every key's final value in one vector.
    pub fn into_entries(self) -> Vec<(K, Option<V>)> {
        let mut parts = self.parts.into_iter();
        let mut entries = parts.next().unwrap_or_default();
        for part in parts {
            entries.extend(part);
        }
        entries
    }
}

/// Counters of one block's execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub executions: u64,
    pub reexecutions: u64,
    pub validations: u64,
    pub validation_aborts: u64,
    /// Reads that met an estimate: they waited for its writer in place, or suspended.
    pub blocked_reads: u64,
    /// First incarnations that waited on their dependency hint.
    pub hinted_waits: u64,
    /// Reads of a contended key that stopped on a lower reader not yet executed: they waited
    /// for it in place, or suspended.
    pub contended_waits: u64,
    /// Transactions claimed ahead of the execution index on a successor hint (I21).
    pub ahead_runs: u64,
    /// Run-ahead incarnations thrown away: aborted by validation or suspended (I21).
    pub ahead_failures: u64,
    pub threads: u32,
}

/// The final read and write sets of one transaction and how long its final execution took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnTrace<K> {
    pub reads: Vec<K>,
    /// Keys fully written.
    pub writes: Vec<K>,
    /// Keys updated by a lazy delta (no read of the old value).
    pub deltas: Vec<K>,
    pub nanos: u64,
}

/// A failure of the executor itself, never of the block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    /// An internal invariant broke (the message names it). The caller re-runs sequentially.
    #[error("block-stm invariant violated: {0}")]
    Invariant(String),
    /// The pre-block store failed.
    #[error("state store error: {0}")]
    Storage(String),
}

/// Options shared by both executors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Record [`TxnTrace`]s.
    pub trace: bool,
    /// Conflicts on a key that make it hot, so that a write of it sends its worker on to the
    /// writer's successor hint (I21); `None`: [`mvmemory::HOT_CONFLICTS`]. Scheduling only.
    pub hot_conflicts: Option<u32>,
}

/// One value per cache line: per-transaction slots that neighbouring workers write at the same
/// time (worker A on transaction `i`, worker B on `i + 1`) would otherwise share a line and
/// bounce it between cores on every access (false sharing).
#[repr(align(64))]
#[derive(Debug, Default)]
pub(crate) struct CacheLine<T>(pub(crate) T);

/// The contiguous share of `len` per-transaction slots that `worker` of `workers` handles in
/// the block's tail: the shares are disjoint, in worker order, and cover every slot.
pub(crate) fn contiguous_share(
    len: usize,
    worker: usize,
    workers: usize,
) -> std::ops::Range<usize> {
    let workers = workers.max(1);
    len * worker / workers..len * (worker + 1) / workers
}

/// Asks the cache for `value`'s first line ahead of its use; a hint, nothing more. Public for
/// the adapters' block tails, which walk the final values in an order random in memory.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    prefetch_range(value as *const T as usize, 1);
}

/// Asks the cache for the lines of `bytes` bytes from `address`, which need not be valid; a
/// hint, nothing more.
#[inline(always)]
pub(crate) fn prefetch_range(address: usize, bytes: usize) {
    for line in (address & !63..address.wrapping_add(bytes)).step_by(64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch never faults and never reads into the program, whatever the
        // address. SSE, which it needs, is part of every x86_64 target.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line as *const i8)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = line;
    }
}

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for CacheLine<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
