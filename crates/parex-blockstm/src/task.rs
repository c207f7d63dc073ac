//! The contract between the engine and a VM.
//!
//! A VM adapter describes state as opaque keys and values and runs one transaction at a time
//! against a [`ReadView`]. The engine never looks inside a key or a value: it only orders reads
//! and writes. An adapter that knows an update is commutative (a balance credit) may return it
//! as a [`WriteOp::Delta`] instead of reading the old value; the engine then resolves it lazily.

use std::fmt::Debug;
use std::hash::Hash;

/// Position of a transaction in its block.
pub type TxnIndex = u32;
/// How many times a transaction has been (re-)executed; 0 for the first execution.
pub type Incarnation = u32;

/// One execution of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    pub txn_idx: TxnIndex,
    pub incarnation: Incarnation,
}

/// The value a read saw, and who wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadValue<V> {
    /// `None` when the key holds nothing (absent in pre-block state and never written).
    pub value: Option<V>,
    /// The last transaction below the reader that wrote or credited the key; `None` when the
    /// value came from pre-block state untouched by this block.
    pub writer: Option<TxnIndex>,
}

/// Why a read could not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The key carries an estimate of transaction `0`: the reader must wait for it.
    #[error("read blocked on an estimate of transaction {0}")]
    Blocked(TxnIndex),
    /// The pre-block store failed.
    #[error("{0}")]
    Storage(String),
}

/// The state a transaction sees: pre-block state plus the writes of every lower transaction.
pub trait ReadView {
    type Key;
    type Value;

    /// Reads `key` as transaction `txn_idx` sees it. The view records the read for validation.
    fn read(&mut self, key: &Self::Key) -> Result<ReadValue<Self::Value>, ReadError>;
}

/// What a transaction does to one key.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp<V, D> {
    /// A full new value; `None` deletes.
    Write(Option<V>),
    /// A commutative update, applied to whatever value lower transactions leave.
    Delta(D),
}

/// The keys and write operations of one incarnation. Each key appears at most once.
pub type WriteSet<K, V, D> = Vec<(K, WriteOp<V, D>)>;

/// The result of one incarnation.
#[derive(Debug)]
pub enum TaskOutcome<K, V, D, O, E> {
    /// The transaction ran (successfully or reverted: both are block-valid) and wrote these.
    Done {
        writes: WriteSet<K, V, D>,
        output: O,
    },
    /// The transaction cannot be included; it writes nothing. Whether this is final is decided
    /// by validation, like any other outcome: a stale read can make a valid transaction look
    /// invalid for one incarnation.
    Invalid(E),
    /// A read returned [`ReadError`]; the engine inspects its view to tell which.
    ReadFailed,
}

/// The outcome type of task `T`'s incarnations.
pub type OutcomeOf<T> = TaskOutcome<
    <T as BlockTask>::Key,
    <T as BlockTask>::Value,
    <T as BlockTask>::Delta,
    <T as BlockTask>::Output,
    <T as BlockTask>::Error,
>;

/// A VM's view of one block: how to read pre-block state, run a transaction, apply a delta.
///
/// One task value is shared by every worker, so it must be `Sync`; per-incarnation state lives
/// on the worker's stack.
pub trait BlockTask: Sync {
    type Key: Eq + Hash + Clone + Debug + Send + Sync;
    type Value: Clone + PartialEq + Debug + Send + Sync;
    type Delta: Clone + Debug + Send + Sync;
    type Output: Send;
    type Error: Debug + Send;

    /// Number of transactions in the block.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `key` from pre-block state.
    fn read_base(&self, key: &Self::Key) -> Result<Option<Self::Value>, ReadError>;

    /// Runs transaction `txn_idx` once against `view`.
    fn execute<R>(&self, txn_idx: TxnIndex, view: &mut R) -> OutcomeOf<Self>
    where
        R: ReadView<Key = Self::Key, Value = Self::Value>;

    /// A lower transaction this one most likely reads from (an EVM adapter names the previous
    /// transaction of the same sender, whose nonce it needs). Scheduling alone uses it: the
    /// first incarnation waits for the hinted transaction to finish executing instead of
    /// running on a value that is about to change. A wrong hint costs time, never correctness.
    fn dependency_hint(&self, _txn_idx: TxnIndex) -> Option<TxnIndex> {
        None
    }

    /// A higher transaction likely to read what this one writes (an EVM adapter names the next
    /// call to the same contract). After an incarnation writes a hot key, its worker runs
    /// the hinted transaction next, ahead of the execution index, so that a chain of
    /// transactions on one hot key runs back to back on one worker (I21). Scheduling alone
    /// uses it: a wrong hint costs time, never correctness.
    fn successor_hint(&self, _txn_idx: TxnIndex) -> Option<TxnIndex> {
        None
    }

    /// Applies `delta` to `base`, the value lower transactions left (`None`: absent).
    fn apply_delta(key: &Self::Key, base: Option<&Self::Value>, delta: &Self::Delta)
        -> Self::Value;
}
