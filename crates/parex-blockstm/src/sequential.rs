//! The sequential reference executor: one transaction after another over an overlay of
//! pre-block state. It runs the same [`BlockTask`] as the parallel executor, so the two differ
//! only in scheduling, and it is what the parallel executor falls back to.

use crate::task::{BlockTask, ReadError, ReadValue, ReadView, TaskOutcome, TxnIndex, WriteOp};
use crate::{BlockOutput, ExecutionError, FinalState, Options, Stats, TxnTrace};
use ahash::AHashMap;
use std::collections::hash_map::Entry;
use std::time::Instant;

/// The block's writes so far: each key's current value and the last transaction that wrote it.
/// Reusable across blocks, like the parallel executor's memory: it is drained, not dropped.
pub type Overlay<K, V> = AHashMap<K, (Option<V>, TxnIndex)>;

struct SequentialView<'a, T: BlockTask> {
    overlay: &'a Overlay<T::Key, T::Value>,
    task: &'a T,
    reads: Option<Vec<T::Key>>,
    error: Option<ReadError>,
}

impl<T: BlockTask> ReadView for SequentialView<'_, T> {
    type Key = T::Key;
    type Value = T::Value;

    fn read(&mut self, key: &T::Key) -> Result<ReadValue<T::Value>, ReadError> {
        if let Some(reads) = &mut self.reads {
            reads.push(key.clone());
        }
        let result = match self.overlay.get(key) {
            Some((value, writer)) => Ok(ReadValue {
                value: value.clone(),
                writer: Some(*writer),
            }),
            None => self.task.read_base(key).map(|value| ReadValue {
                value,
                writer: None,
            }),
        };
        if let Err(error) = &result {
            self.error.get_or_insert(error.clone());
        }
        result
    }
}

/// Executes the block one transaction at a time. Stops after the first invalid transaction.
pub fn execute_sequential<T: BlockTask>(
    task: &T,
    options: Options,
) -> Result<BlockOutput<T>, ExecutionError> {
    execute_sequential_in(&mut AHashMap::new(), task, options)
}

/// [`execute_sequential`] over a caller-held overlay, which it leaves empty with its capacity.
pub fn execute_sequential_in<T: BlockTask>(
    overlay: &mut Overlay<T::Key, T::Value>,
    task: &T,
    options: Options,
) -> Result<BlockOutput<T>, ExecutionError> {
    let num_txns = task.len();
    overlay.clear();
    // Sized for a few writes per transaction: growing the map mid-block rehashes everything.
    overlay.reserve(num_txns * 4);
    let mut results = Vec::with_capacity(num_txns);
    let mut traces = options.trace.then(|| Vec::with_capacity(num_txns));

    for txn_idx in 0..num_txns as TxnIndex {
        let started = options.trace.then(Instant::now);
        let mut view = SequentialView {
            overlay: &*overlay,
            task,
            reads: options.trace.then(Vec::new),
            error: None,
        };
        let outcome = task.execute(txn_idx, &mut view);
        let nanos = started.map(|s| s.elapsed().as_nanos() as u64).unwrap_or(0);
        let SequentialView { reads, error, .. } = view;
        match error {
            None => {}
            Some(ReadError::Storage(message)) => return Err(ExecutionError::Storage(message)),
            Some(ReadError::Blocked(blocking)) => {
                return Err(ExecutionError::Invariant(format!(
                    "sequential read of transaction {txn_idx} blocked on {blocking}"
                )))
            }
        }
        let mut trace = TxnTrace {
            reads: reads.unwrap_or_default(),
            writes: vec![],
            deltas: vec![],
            nanos,
        };
        match outcome {
            TaskOutcome::Done { writes, output } => {
                for (key, op) in writes {
                    match op {
                        WriteOp::Write(value) => {
                            if traces.is_some() {
                                trace.writes.push(key.clone());
                            }
                            overlay.insert(key, (value, txn_idx));
                        }
                        WriteOp::Delta(delta) => {
                            if traces.is_some() {
                                trace.deltas.push(key.clone());
                            }
                            // One hash for read-modify-write.
                            match overlay.entry(key) {
                                Entry::Occupied(mut entry) => {
                                    let value =
                                        T::apply_delta(entry.key(), entry.get().0.as_ref(), &delta);
                                    *entry.get_mut() = (Some(value), txn_idx);
                                }
                                Entry::Vacant(entry) => {
                                    let base = task
                                        .read_base(entry.key())
                                        .map_err(|e| ExecutionError::Storage(e.to_string()))?;
                                    let value = T::apply_delta(entry.key(), base.as_ref(), &delta);
                                    entry.insert((Some(value), txn_idx));
                                }
                            }
                        }
                    }
                }
                results.push(Ok(output));
            }
            TaskOutcome::Invalid(error) => {
                results.push(Err(error));
                if let Some(traces) = &mut traces {
                    traces.push(trace);
                }
                break;
            }
            TaskOutcome::ReadFailed => {
                return Err(ExecutionError::Invariant(format!(
                    "transaction {txn_idx} reported a failed read its view never saw"
                )))
            }
        }
        if let Some(traces) = &mut traces {
            traces.push(trace);
        }
    }

    let executions = results.len() as u64;
    Ok(BlockOutput {
        results,
        state: FinalState {
            parts: vec![overlay
                .drain()
                .map(|(key, (value, _))| (key, value))
                .collect()],
        },
        stats: Stats {
            executions,
            threads: 1,
            ..Stats::default()
        },
        traces,
    })
}
