//! The parallel executor: workers that run the scheduler's tasks against the multi-version
//! memory until the block is done.
//!
//! # Lifecycle
//! [`execute_parallel`] creates one `Scheduler` and one `MvMemory` for the block, runs
//! `threads - 1` workers on the helper threads the calling thread keeps between blocks
//! ([`crate::workers`], I22) and works on the calling thread too. Each worker loops:
//! take a task, run it, and take the follow-up task the scheduler hands back. When the scheduler
//! is done, each worker resolves the final value of the keys whose last writer lies in its
//! share of the block, waits at a barrier (a spinning [`Meeting`]) until every share is
//! resolved, empties its share of the map's shards for the next block (a traced block keeps
//! them until the next reset: its written keys are read from the map after the join), and
//! takes the outcomes of its contiguous share of the transactions: the tail of a block runs on
//! every worker, not one.
//! The executor then checks the post-block invariants and returns.
//!
//! # Worker states
//! ```text
//!                                 wait_for_execution (a read met an estimate, or a pending
//!                                 ┌──┐   reader of a contended key, of a lower transaction
//!                                 │  │   that is executing: I19)
//!                                 │  ▼
//!            next_task                     try_execute ── add_dependency ──► Idle
//!                                            (a first incarnation may wait on its
//!                                             dependency hint the same way)
//!   Idle ─────────────────► Executing ─────────┤
//!    ▲  ▲                                      └── finish_execution ──► Validating / Idle
//!    │  │                                          (after a write of a hot key, the next
//!    │  │                                           execution may be the run-ahead: I21)
//!    │  │        finish_validation (no abort)
//!    │  └──────────────────────────── Validating ── finish_validation (abort) ──► Executing
//!    └── done / halt ──► Snapshot share ── barrier ──► Clear shards ──► Take outcomes ──► Exit
//! ```
//!
//! # Invariants
//! - **I13** A worker that panics, or finds the task interface or the memory inconsistent,
//!   records an `Invariant` error and halts every worker: a broken invariant ends as an error
//!   value (and a sequential re-run by the caller), never as a hang or a wrong block.
//! - **I14** The block is returned only when the scheduler is done and every transaction is
//!   `Executed` with a recorded outcome; no estimate may remain in the final snapshot.
//! - **I15** A read that failed voids its incarnation, whatever the task returned with it.
//! - **I19** A read waits in place only for a lower transaction that is executing (the writer
//!   of an estimate it met, or a pending reader of a contended key), for at most
//!   [`READ_WAIT`] in all; then it suspends its incarnation through `add_dependency` (I5).
//!   Waits only ever point down, so they form no cycle: the lowest unfinished transaction
//!   never waits, and no worker waits forever. Waiting in place keeps the work done so far,
//!   where a suspension throws it away and runs the transaction again from the start (the
//!   Block-STM paper suspends; Aptos's executor waits in place, as here).
//!
//! # Memory ordering
//! The statistics are no atomics: each worker counts in plain integers of its own (a shared
//! counter bumped per task would bounce its cache line between cores) and adds them once,
//! under a mutex, when it leaves the work loop. The trace's per-transaction times are written
//! under the same happens-before as the outputs (a mutex) and read after the join.

use crate::mvmemory::{MvMemory, MvReadError, ReadSet, HOT_CONFLICTS};
use crate::scheduler::{RunAhead, Scheduler, Status, Task};
use crate::task::{BlockTask, ReadError, ReadValue, ReadView, TaskOutcome, TxnIndex, Version};
use crate::workers::{on_workers, Meeting};
use crate::{BlockOutput, CacheLine, ExecutionError, FinalState, Options, Stats, TxnTrace};
use parking_lot::Mutex;
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The memory of the tasks `T` works with.
pub type TaskMemory<T> =
    MvMemory<<T as BlockTask>::Key, <T as BlockTask>::Value, <T as BlockTask>::Delta>;

/// How long, in all, one read waits in place for lower transactions that are executing
/// (I19): several executions of a token transfer or a swap. A transaction that runs longer is
/// a heavy one; suspending, and running something else meanwhile, is then the better use of
/// the worker.
pub const READ_WAIT: Duration = Duration::from_micros(200);

/// The view of one incarnation: reads go to the multi-version memory and are recorded.
struct MvView<'a, T: BlockTask> {
    memory: &'a TaskMemory<T>,
    scheduler: &'a Scheduler,
    task: &'a T,
    txn_idx: TxnIndex,
    reads: ReadSet<T::Key>,
    error: Option<ReadError>,
    /// Reads that met an estimate.
    blocked_reads: u64,
    /// Reads that stopped on a pending reader of a contended key.
    contended_waits: u64,
}

/// Waits while `txn_idx` is executing, until `deadline`. True once it has finished executing;
/// false as soon as it is not running (suspended, or waiting to run again) or time is up.
fn wait_for_execution(scheduler: &Scheduler, txn_idx: TxnIndex, deadline: Instant) -> bool {
    let mut polls = 0u32;
    loop {
        match scheduler.status(txn_idx).1 {
            Status::Executed => return true,
            Status::Executing if Instant::now() < deadline => {
                polls += 1;
                if polls.is_multiple_of(16) {
                    // More workers than cores: let the one we wait for run.
                    std::thread::yield_now();
                } else {
                    for _ in 0..32 {
                        std::hint::spin_loop();
                    }
                }
            }
            _ => return false,
        }
    }
}

impl<T: BlockTask> ReadView for MvView<'_, T> {
    type Key = T::Key;
    type Value = T::Value;

    fn read(&mut self, key: &T::Key) -> Result<ReadValue<T::Value>, ReadError> {
        let scheduler = self.scheduler;
        let pending = |reader: TxnIndex| scheduler.status(reader).1 != Status::Executed;
        let mut deadline = None;
        let read = loop {
            // The lower transaction this read must wait for: the writer of an estimate, or
            // a pending reader of a contended key (I18).
            let waited_for = match self.memory.read(self.task, key, self.txn_idx, pending) {
                Ok(read) => break Ok(read),
                Err(MvReadError::Read(ReadError::Blocked(writer))) if writer < self.txn_idx => {
                    self.blocked_reads += 1;
                    writer
                }
                Err(MvReadError::Read(error)) => break Err(error),
                Err(MvReadError::PendingReader(reader)) => {
                    self.contended_waits += 1;
                    reader
                }
            };
            // I19: in place while it runs; once it has finished, its writes are in the
            // memory, so read again. Otherwise the incarnation suspends on it.
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + READ_WAIT);
            if !wait_for_execution(scheduler, waited_for, deadline) {
                break Err(ReadError::Blocked(waited_for));
            }
        };
        match read {
            Ok((value, origin)) => {
                self.reads.push(key.clone(), origin);
                Ok(value)
            }
            Err(error) => {
                self.error.get_or_insert(error.clone());
                Err(error)
            }
        }
    }
}

/// Statistics of one worker, and of the block once every worker has added its own.
#[derive(Default)]
struct Counts {
    executions: u64,
    validations: u64,
    validation_aborts: u64,
    blocked_reads: u64,
    hinted_waits: u64,
    contended_waits: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.executions += other.executions;
        self.validations += other.validations;
        self.validation_aborts += other.validation_aborts;
        self.blocked_reads += other.blocked_reads;
        self.hinted_waits += other.hinted_waits;
        self.contended_waits += other.contended_waits;
    }
}

/// The final value of each written key (`None`: deleted or absent).
type FinalValues<T> = Vec<(<T as BlockTask>::Key, Option<<T as BlockTask>::Value>)>;

type TxnOutcome<T> = Result<<T as BlockTask>::Output, <T as BlockTask>::Error>;

/// What one worker hands back: its part of the final state, and the outcomes of its contiguous
/// share of the block (`None` once the block failed).
struct WorkerShare<T: BlockTask> {
    part: Option<FinalValues<T>>,
    outcomes: Option<Vec<TxnOutcome<T>>>,
}

struct Block<'a, T: BlockTask> {
    task: &'a T,
    scheduler: Scheduler,
    memory: &'a TaskMemory<T>,
    outputs: Vec<CacheLine<Mutex<Option<TxnOutcome<T>>>>>,
    nanos: Vec<AtomicU64>,
    trace: bool,
    counts: Mutex<Counts>,
    fatal: Mutex<Option<ExecutionError>>,
}

impl<T: BlockTask> Block<'_, T> {
    /// I13: the first fatal error wins and stops everyone.
    fn fail(&self, error: ExecutionError) {
        self.fatal.lock().get_or_insert(error);
        self.scheduler.halt();
    }

    fn work(&self) {
        let result = catch_unwind(AssertUnwindSafe(|| self.work_loop()));
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            // I13
            self.fail(ExecutionError::Invariant(format!(
                "worker panicked: {message}"
            )));
        }
    }

    /// A worker's whole life: run tasks until the block is done, resolve its share of the
    /// final state, then (once every share is resolved) empty its share of the map for the
    /// next block and take its share of the outcomes. Every worker reaches the barrier,
    /// whatever happened before it (I13).
    fn work_and_finish(&self, worker: usize, workers: usize, barrier: &Meeting) -> WorkerShare<T> {
        self.work();
        let part = if self.fatal.lock().is_none() {
            let end = self.outputs.len() as TxnIndex;
            match catch_unwind(AssertUnwindSafe(|| {
                self.memory.snapshot_shards(self.task, worker, workers, end)
            })) {
                Ok(Ok(part)) => Some(part),
                Ok(Err(ReadError::Blocked(txn_idx))) => {
                    // I14
                    self.fail(ExecutionError::Invariant(format!(
                        "estimate of transaction {txn_idx} left in the final memory"
                    )));
                    None
                }
                Ok(Err(ReadError::Storage(message))) => {
                    self.fail(ExecutionError::Storage(message));
                    None
                }
                Err(_) => {
                    self.fail(ExecutionError::Invariant("snapshot panicked".into()));
                    None
                }
            }
        } else {
            None
        };
        barrier.wait();
        // A traced block's written keys are read from the map after the workers are done;
        // the next block's reset empties it then.
        if !self.trace {
            self.memory.clear_share(worker, workers);
        }
        let outcomes = part
            .as_ref()
            .and_then(|_| self.take_outcomes(worker, workers));
        WorkerShare { part, outcomes }
    }

    /// The committed outcomes of the worker's contiguous share of the block, in block order,
    /// once every worker is past the barrier (so no transaction runs any more). I14: each
    /// transaction must be `Executed` with an outcome; the first that is not fails the block.
    fn take_outcomes(&self, worker: usize, workers: usize) -> Option<Vec<TxnOutcome<T>>> {
        let share = crate::contiguous_share(self.outputs.len(), worker, workers);
        let mut outcomes = Vec::with_capacity(share.len());
        for txn_idx in share {
            let (_, status) = self.scheduler.status(txn_idx as TxnIndex);
            let outcome = self.outputs[txn_idx].lock().take();
            match (status, outcome) {
                (Status::Executed, Some(outcome)) => outcomes.push(outcome),
                (Status::Executed, None) => {
                    self.fail(ExecutionError::Invariant(format!(
                        "block finished without an outcome for transaction {txn_idx}"
                    )));
                    return None;
                }
                (status, _) => {
                    self.fail(ExecutionError::Invariant(format!(
                        "block finished with transaction {txn_idx} in status {status:?}"
                    )));
                    return None;
                }
            }
        }
        Some(outcomes)
    }

    fn work_loop(&self) {
        let mut task: Option<Task> = None;
        // One read-set buffer per worker, lent to each incarnation and handed back emptied by
        // `record`: no allocation per incarnation.
        let mut scratch: ReadSet<T::Key> = ReadSet::with_capacity(32);
        let mut idle_spins = 0u32;
        // A run-ahead (I21) the worker holds while it runs the validations that come first.
        let mut ahead: Option<RunAhead> = None;
        // Lost if a task panics: the block then fails, and the sequential re-run's stats stand.
        let mut counts = Counts::default();
        while !self.scheduler.done() {
            task = match task {
                Some(Task::Execution(version)) => {
                    self.try_execute(version, &mut scratch, &mut counts, &mut ahead)
                }
                Some(Task::Validation(version)) => self.validate(version, &mut counts, ahead),
                None => {
                    let next = self.scheduler.next_task();
                    if next.is_none() {
                        // Nothing ready: other workers hold the tasks that unblock us.
                        idle_spins += 1;
                        if idle_spins.is_multiple_of(64) {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    } else {
                        idle_spins = 0;
                    }
                    next
                }
            };
            if !matches!(task, Some(Task::Validation(_))) {
                // Taken, tried, or given up for another execution.
                ahead = None;
            }
        }
        self.counts.lock().add(&counts);
    }

    fn try_execute(
        &self,
        version: Version,
        scratch: &mut ReadSet<T::Key>,
        counts: &mut Counts,
        ahead: &mut Option<RunAhead>,
    ) -> Option<Task> {
        let Version {
            txn_idx,
            incarnation,
        } = version;
        if incarnation == 0 {
            // I16: scheduling only.
            if let Some(hinted) = self.task.dependency_hint(txn_idx).filter(|h| *h < txn_idx) {
                // Wait for the likely writer rather than read what it is about to replace.
                // add_dependency refuses when the writer already finished: then run now.
                if self.scheduler.add_dependency(txn_idx, hinted) {
                    counts.hinted_waits += 1;
                    return None;
                }
            }
        }
        // The lines this incarnation's end writes, which lie cold in slots a block apart:
        // fetched while it runs rather than waited for under their locks.
        crate::prefetch(&self.outputs[txn_idx as usize]);
        self.memory.prefetch_record(txn_idx);
        loop {
            scratch.clear();
            let mut view = MvView {
                memory: self.memory,
                scheduler: &self.scheduler,
                task: self.task,
                txn_idx,
                reads: std::mem::take(scratch),
                error: None,
                blocked_reads: 0,
                contended_waits: 0,
            };
            counts.executions += 1;
            let started = self.trace.then(Instant::now);
            let outcome = self.task.execute(txn_idx, &mut view);
            let MvView {
                reads,
                error,
                blocked_reads,
                contended_waits,
                ..
            } = view;
            *scratch = reads;
            counts.blocked_reads += blocked_reads;
            counts.contended_waits += contended_waits;
            // I15: a failed read voids the incarnation.
            if let Some(error) = error {
                match error {
                    ReadError::Blocked(blocking) if blocking < txn_idx => {
                        // The view waited for it in place as long as I19 allows.
                        if self.scheduler.add_dependency(txn_idx, blocking) {
                            return None;
                        }
                        // The blocker finished meanwhile: run again with its writes.
                        continue;
                    }
                    ReadError::Blocked(blocking) => {
                        // I13: I10 guarantees a reader only meets lower transactions.
                        self.fail(ExecutionError::Invariant(format!(
                            "transaction {txn_idx} blocked on estimate of higher transaction {blocking}"
                        )));
                        return None;
                    }
                    ReadError::Storage(message) => {
                        self.fail(ExecutionError::Storage(message));
                        return None;
                    }
                }
            }
            let (writes, outcome) = match outcome {
                TaskOutcome::Done { writes, output } => (writes, Ok(output)),
                TaskOutcome::Invalid(error) => (Vec::new(), Err(error)),
                TaskOutcome::ReadFailed => {
                    // I13
                    self.fail(ExecutionError::Invariant(format!(
                        "transaction {txn_idx} reported a failed read its view never saw"
                    )));
                    return None;
                }
            };
            if let Some(started) = started {
                self.nanos[txn_idx as usize].store(started.elapsed().as_nanos() as u64, Relaxed);
            }
            *self.outputs[txn_idx as usize].lock() = Some(outcome);
            let recorded = self.memory.record(version, scratch, writes);
            // I21: after a write of a hot key, the likely next reader of it.
            *ahead = if recorded.wrote_hot {
                self.task
                    .successor_hint(txn_idx)
                    .filter(|successor| *successor > txn_idx)
                    .map(|successor| RunAhead {
                        source: version,
                        successor,
                    })
                    .filter(|ahead| self.scheduler.chain_is_dense(ahead))
            } else {
                None
            };
            return self.scheduler.finish_execution_then(
                txn_idx,
                incarnation,
                recorded.wrote_new_location,
                *ahead,
            );
        }
    }

    fn validate(
        &self,
        version: Version,
        counts: &mut Counts,
        ahead: Option<RunAhead>,
    ) -> Option<Task> {
        let Version {
            txn_idx,
            incarnation,
        } = version;
        counts.validations += 1;
        let valid = self.memory.validate_read_set(txn_idx);
        let aborted = !valid && self.scheduler.try_validation_abort(txn_idx, incarnation);
        if aborted {
            counts.validation_aborts += 1;
            self.memory.convert_writes_to_estimates(txn_idx);
        }
        self.scheduler
            .finish_validation_then(txn_idx, aborted, ahead)
    }
}

/// Executes the block on `threads` workers with Block-STM. The result equals
/// [`crate::execute_sequential`]'s for every task whose `execute` is a deterministic function
/// of the values it reads.
pub fn execute_parallel<T: BlockTask>(
    task: &T,
    threads: NonZeroUsize,
    options: Options,
) -> Result<BlockOutput<T>, ExecutionError> {
    execute_parallel_in(&mut MvMemory::default(), task, threads, options)
}

/// [`execute_parallel`] over a caller-held memory, reset first and left populated: a caller
/// that runs block after block keeps one and stops paying for fresh memory each block.
pub fn execute_parallel_in<T: BlockTask>(
    memory: &mut TaskMemory<T>,
    task: &T,
    threads: NonZeroUsize,
    options: Options,
) -> Result<BlockOutput<T>, ExecutionError> {
    let num_txns = task.len();
    memory.reset(num_txns, options.hot_conflicts.unwrap_or(HOT_CONFLICTS));
    let memory = &*memory;
    let workers = threads.get().min(num_txns.max(1));
    let block = Block {
        task,
        scheduler: Scheduler::for_workers(num_txns, workers),
        memory,
        outputs: (0..num_txns).map(|_| CacheLine(Mutex::new(None))).collect(),
        nanos: (0..if options.trace { num_txns } else { 0 })
            .map(|_| AtomicU64::new(0))
            .collect(),
        trace: options.trace,
        counts: Mutex::new(Counts::default()),
        fatal: Mutex::new(None),
    };
    let barrier = Meeting::new(workers);
    // I22: every worker on a thread of its own, kept by the calling thread between blocks.
    let shares: Vec<WorkerShare<T>> = on_workers(workers, |worker| {
        block.work_and_finish(worker, workers, &barrier)
    })
    .into_iter()
    // Panics are caught inside the worker; an error here would be a panic in the
    // barrier, the clearing or the outcome share, which cannot return a share anyway.
    .map(|share| {
        share.unwrap_or(WorkerShare {
            part: None,
            outcomes: None,
        })
    })
    .collect();
    if let Some(error) = block.fatal.lock().take() {
        return Err(error);
    }

    // I14: the post-block invariants, checked rather than assumed (the outcomes by each
    // worker for its share, in `take_outcomes`).
    let mut results: Vec<TxnOutcome<T>> = Vec::new();
    let mut state = FinalState {
        parts: Vec::with_capacity(shares.len()),
    };
    for (at, share) in shares.into_iter().enumerate() {
        match share {
            WorkerShare {
                part: Some(part),
                outcomes: Some(outcomes),
            } => {
                state.parts.push(part);
                // The first share's vector becomes the results: only the others are copied.
                if at == 0 {
                    results = outcomes;
                    results.reserve(num_txns.saturating_sub(results.len()));
                } else {
                    results.extend(outcomes);
                }
            }
            _ => {
                return Err(ExecutionError::Invariant(
                    "a worker finished without its share of the final state".into(),
                ))
            }
        }
    }
    if results.len() != num_txns {
        return Err(ExecutionError::Invariant(format!(
            "the workers returned {} outcomes for {num_txns} transactions",
            results.len()
        )));
    }

    let traces = options.trace.then(|| {
        (0..num_txns as TxnIndex)
            .map(|txn_idx| {
                let mut trace = TxnTrace {
                    reads: block.memory.read_keys(txn_idx),
                    writes: Vec::new(),
                    deltas: Vec::new(),
                    nanos: block.nanos[txn_idx as usize].load(Relaxed),
                };
                for (key, full) in block.memory.written_keys(txn_idx).iter() {
                    if *full {
                        trace.writes.push(key.clone());
                    } else {
                        trace.deltas.push(key.clone());
                    }
                }
                trace
            })
            .collect()
    });

    let counts = block.counts.into_inner();
    let executions = counts.executions;
    Ok(BlockOutput {
        results,
        state,
        stats: Stats {
            executions,
            reexecutions: executions.saturating_sub(num_txns as u64),
            validations: counts.validations,
            validation_aborts: counts.validation_aborts,
            blocked_reads: counts.blocked_reads,
            hinted_waits: counts.hinted_waits,
            contended_waits: counts.contended_waits,
            ahead_runs: block.scheduler.ahead_runs() as u64,
            ahead_failures: block.scheduler.ahead_failures() as u64,
            threads: workers as u32,
        },
        traces,
    })
}
