//! The collaborative scheduler of Block-STM.
//!
//! # Lifecycle
//! One `Scheduler` lives for one block. Workers call [`Scheduler::next_task`] in a loop and
//! report back with [`Scheduler::finish_execution`], [`Scheduler::add_dependency`],
//! [`Scheduler::try_validation_abort`] and [`Scheduler::finish_validation`]. Execution tasks are
//! handed out in index order from `execution_idx`, validation tasks from `validation_idx`; a
//! worker that finishes a task gets the next one back from the `finish_*` call, keeping its
//! active-task count, instead of returning the count and asking `next_task` again.
//! `validation_idx` waits at a transaction that has not executed yet (I20) while workers take
//! executions, and whoever finishes that transaction validates it and moves on. A worker that
//! wrote a hot key may take its successor hint ahead of `execution_idx` (I21); the index then
//! passes over it. Both indexes
//! only move back (to re-execute or re-validate) through `decrease_*`. When both
//! indexes have passed the block, no task is in flight and no decrease raced the check,
//! [`Scheduler::done`] turns true and every worker leaves. [`Scheduler::halt`] ends the block
//! early on a fatal error.
//!
//! # Transaction status
//! ```text
//!                      incarnate (from the execution index,
//!                      or run ahead: I21)
//!   ReadyToExecute(i) ───────────────► Executing(i)
//!          ▲                              │      │
//!          │ set_ready_status             │      │ finish_execution
//!          │ (incarnation i+1)            │      ▼
//!          │                add_dependency│   Executed(i)
//!          │                              ▼      │
//!          └───────────────────────── Aborting(i) ◄┘ try_validation_abort
//! ```
//!
//! # Invariants
//! - **I1** A status changes only along the edges above, under that transaction's status lock.
//! - **I2** Only `incarnate` enters `Executing`, and only from `ReadyToExecute`: at most one
//!   worker runs a given transaction at any time.
//! - **I3** Incarnation numbers only grow (`set_ready_status`), so a stale validation task for
//!   incarnation `i` can never abort incarnation `i+1`.
//! - **I4** `execution_idx` and `validation_idx` only move back through `decrease_*`, which bump
//!   `decrease_cnt`; `check_done` declares the block done only if `decrease_cnt` did not change
//!   across its check, both indexes are past the block and no task is active.
//! - **I5** A transaction waits on a blocker only if the blocker is not `Executed`, checked under
//!   the blocker's dependency lock, which `finish_execution` also takes to drain the waiters: no
//!   wake-up is lost.
//! - **I6** When an incarnation writes a location its previous incarnation did not, every higher
//!   transaction is validated again (`validation_idx` moves back to it).
//! - **I7** After a validation abort every higher transaction is validated again
//!   (`validation_idx` moves back to the next index).
//! - **I20** `validation_idx` moves forward only past a transaction seen `Executed`, by a
//!   compare-exchange from the index the status was read at, and the version validated is
//!   read after the claim. (The Block-STM paper's `fetch_add` also passes transactions that
//!   are still running; each of those, finishing with a first write of a key as every first
//!   incarnation does, then moved the index back below itself (I6), and every transaction
//!   validated meanwhile was validated again: 2-7% of validations at two workers, and up to
//!   five more writes of shared counters for each transaction passed.) Validations only come
//!   later than the paper's, each against the memory of its time, so nothing it catches is
//!   missed.
//! - **I21** A run-ahead claims its transaction through `incarnate` (I2) like any other
//!   execution, and changes only the order of executions: `validation_idx` still passes a
//!   transaction only once it is `Executed` (I20), so a run-ahead is validated after every
//!   lower transaction has executed, against the memory of that time, and a wrong one is
//!   aborted and run again like any other. It is taken only after a write of a hot key,
//!   only when no validation is ready, and only while the block's hinted successors lie at
//!   most 1.5 workers apart on average (a chain dense enough to be the critical path); a
//!   block stops running ahead once a quarter of its run-aheads (after the first four) were
//!   thrown away while the transaction they followed stood.
//!
//! # Memory ordering
//! The counters `execution_idx`, `validation_idx`, `decrease_cnt` and `num_active_tasks` and
//! the flag `done_marker` use `SeqCst`: the termination argument of I4 reasons about one total
//! order of these operations, as the Block-STM paper does, and they are touched a few times per
//! task, not per read (I20's compare-exchange on `validation_idx` too). Status and dependency
//! lists are under mutexes, which order everything else. The run-ahead counters
//! (`ahead_runs`, `ahead_failures`, `hint_distances`) and each transaction's `ahead_source`
//! are `Relaxed`: they only decide whether to run ahead (I21), nothing is published through
//! them, and a stale one only makes a worker run ahead when it need not, or not when it could.

use crate::task::{Incarnation, TxnIndex, Version};
use crate::CacheLine;
use parking_lot::Mutex;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};

/// Where a transaction is in its lifecycle; see the diagram in the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    ReadyToExecute,
    Executing,
    Executed,
    Aborting,
}

/// Failed run-aheads a block tolerates before their share decides (I21).
const AHEAD_FREE_FAILURES: u32 = 4;

/// A run-ahead's source version in one word (0: none), for [`TxnSlot::ahead_source`].
fn pack_source(source: Version) -> u64 {
    (u64::from(source.txn_idx) + 1) << 32 | u64::from(source.incarnation)
}

fn unpack_source(packed: u64) -> Option<Version> {
    let txn_idx = (packed >> 32).checked_sub(1)? as TxnIndex;
    Some(Version {
        txn_idx,
        incarnation: packed as u32,
    })
}

/// A run-ahead a worker holds (I21): `successor`, hinted by `source`, which wrote a hot key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAhead {
    pub source: Version,
    pub successor: TxnIndex,
}

/// A unit of work for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Execution(Version),
    Validation(Version),
}

/// Keeps a hot atomic on its own cache line (128 bytes covers adjacent-line prefetching), so
/// that workers bumping one counter do not invalidate another.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

pub struct Scheduler {
    num_txns: usize,
    execution_idx: Padded<AtomicUsize>,
    validation_idx: Padded<AtomicUsize>,
    decrease_cnt: Padded<AtomicUsize>,
    num_active_tasks: Padded<AtomicUsize>,
    done_marker: Padded<AtomicBool>,
    /// Run-aheads (I21) so far, and how many of them were thrown away; touched only when a
    /// worker runs ahead or a run-ahead fails.
    ahead_runs: Padded<AtomicU32>,
    ahead_failures: Padded<AtomicU32>,
    /// The hinted successors' distances from their sources, summed (high half), and their
    /// count (low half): how dense the block's hot chains are (I21).
    hint_distances: Padded<AtomicU64>,
    workers: usize,
    /// One cache line per transaction (see [`CacheLine`]).
    txns: Vec<CacheLine<TxnSlot>>,
}

/// What the scheduler keeps per transaction.
#[derive(Default)]
struct TxnSlot {
    status: Mutex<(Incarnation, Status)>,
    /// Transactions suspended until this one finishes executing.
    dependents: Mutex<Vec<TxnIndex>>,
    /// When the running or last incarnation was claimed ahead of `execution_idx` (I21) and
    /// has not been found wrong yet: the transaction whose write it followed and that
    /// transaction's incarnation then, packed by [`pack_source`]; 0 otherwise.
    ahead_source: AtomicU64,
}

impl Scheduler {
    pub fn new(num_txns: usize) -> Self {
        Self::for_workers(num_txns, 1)
    }

    /// A scheduler for a block that `workers` workers run: their number decides when a hot
    /// chain is dense enough to run ahead (I21).
    pub fn for_workers(num_txns: usize, workers: usize) -> Self {
        Scheduler {
            num_txns,
            execution_idx: Padded(AtomicUsize::new(0)),
            validation_idx: Padded(AtomicUsize::new(0)),
            decrease_cnt: Padded(AtomicUsize::new(0)),
            num_active_tasks: Padded(AtomicUsize::new(0)),
            done_marker: Padded(AtomicBool::new(num_txns == 0)),
            ahead_runs: Padded(AtomicU32::new(0)),
            ahead_failures: Padded(AtomicU32::new(0)),
            hint_distances: Padded(AtomicU64::new(0)),
            workers: workers.max(1),
            txns: (0..num_txns).map(|_| CacheLine::default()).collect(),
        }
    }

    pub fn done(&self) -> bool {
        self.done_marker.load(SeqCst)
    }

    /// Stops every worker at its next `done` check, whatever state the block is in.
    pub fn halt(&self) {
        self.done_marker.store(true, SeqCst);
    }

    /// The status of `txn_idx` now: for the post-block invariant check.
    pub fn status(&self, txn_idx: TxnIndex) -> (Incarnation, Status) {
        *self.txns[txn_idx as usize].status.lock()
    }

    fn decrease_execution_idx(&self, target: usize) {
        self.execution_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn decrease_validation_idx(&self, target: usize) {
        self.validation_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn check_done(&self) {
        // I4: read the counter first; any decrease after this point changes it.
        let observed_cnt = self.decrease_cnt.load(SeqCst);
        let execution_idx = self.execution_idx.load(SeqCst);
        let validation_idx = self.validation_idx.load(SeqCst);
        if execution_idx.min(validation_idx) >= self.num_txns
            && self.num_active_tasks.load(SeqCst) == 0
            && observed_cnt == self.decrease_cnt.load(SeqCst)
        {
            self.done_marker.store(true, SeqCst);
        }
    }

    /// Claims `txn_idx` for execution if it is ready. The caller owns the active-task count.
    fn try_incarnate(&self, txn_idx: usize) -> Option<Version> {
        if txn_idx >= self.num_txns {
            return None;
        }
        self.incarnate(txn_idx).ok()
    }

    /// Claims `txn_idx` (in the block) for execution if it is ready, else returns the status
    /// that kept it from being claimed.
    fn incarnate(&self, txn_idx: usize) -> Result<Version, Status> {
        let mut status = self.txns[txn_idx].status.lock();
        // I1, I2: the only way into Executing.
        if status.1 == Status::ReadyToExecute {
            status.1 = Status::Executing;
            Ok(Version {
                txn_idx: txn_idx as TxnIndex,
                incarnation: status.0,
            })
        } else {
            Err(status.1)
        }
    }

    /// Takes the next index from `execution_idx` and claims it if it is ready. A transaction
    /// already running or executed (run ahead, I21, or passed again after the index moved
    /// back) is passed over for the next index in the same call. The caller holds an
    /// active-task count.
    fn claim_execution(&self) -> Option<Version> {
        loop {
            let idx = self.execution_idx.fetch_add(1, SeqCst);
            if idx >= self.num_txns {
                return None;
            }
            match self.incarnate(idx) {
                Ok(version) => return Some(version),
                Err(Status::Executing | Status::Executed) => continue,
                // Suspended: its blocker's finish brings the index back to it.
                Err(_) => return None,
            }
        }
    }

    /// Claims the validation at `validation_idx` if that transaction is executed. The caller
    /// holds an active-task count. I20: the index moves only past an executed transaction;
    /// at one still running it stays, and the caller executes something else meanwhile.
    fn claim_validation(&self) -> Option<Version> {
        let mut idx = self.validation_idx.load(SeqCst);
        loop {
            // I20: only past an executed transaction, and only from where it was seen.
            if idx >= self.num_txns || self.txns[idx].status.lock().1 != Status::Executed {
                return None;
            }
            match self
                .validation_idx
                .compare_exchange(idx, idx + 1, SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(current) => idx = current,
            }
        }
        // Read again after the claim: the index may have moved back to `idx` and past it
        // since the check, and the validation must be of the incarnation there now.
        let (incarnation, status) = *self.txns[idx].status.lock();
        (status == Status::Executed).then_some(Version {
            txn_idx: idx as TxnIndex,
            incarnation,
        })
    }

    /// Whether the validation at `validation_idx` could be claimed now (I20), looked at
    /// without taking an active-task count.
    fn validation_ready(&self, validation_idx: usize, execution_idx: usize) -> bool {
        validation_idx < execution_idx.min(self.num_txns)
            && self.txns[validation_idx].status.lock().1 == Status::Executed
    }

    /// The next task for an idle worker: validation first when one is ready, else execution.
    pub fn next_task(&self) -> Option<Task> {
        let validation_idx = self.validation_idx.load(SeqCst);
        let execution_idx = self.execution_idx.load(SeqCst);
        if execution_idx >= self.num_txns && !self.validation_ready(validation_idx, execution_idx) {
            if validation_idx >= self.num_txns {
                self.check_done();
            }
            return None;
        }
        self.num_active_tasks.fetch_add(1, SeqCst);
        self.next_task_held()
    }

    /// Suspends `txn_idx`, which read an estimate of `blocking_txn_idx`. Returns false when the
    /// blocker has meanwhile finished, in which case the caller re-executes at once.
    pub fn add_dependency(&self, txn_idx: TxnIndex, blocking_txn_idx: TxnIndex) -> bool {
        {
            let mut dependents = self.txns[blocking_txn_idx as usize].dependents.lock();
            // I5: checked under the blocker's dependency lock, which finish_execution takes too.
            if self.txns[blocking_txn_idx as usize].status.lock().1 == Status::Executed {
                return false;
            }
            // I1: Executing -> Aborting.
            self.txns[txn_idx as usize].status.lock().1 = Status::Aborting;
            dependents.push(txn_idx);
        }
        self.note_ahead_failure(txn_idx);
        self.num_active_tasks.fetch_sub(1, SeqCst);
        true
    }

    fn set_ready_status(&self, txn_idx: TxnIndex) {
        let mut status = self.txns[txn_idx as usize].status.lock();
        // I1, I3: Aborting -> ReadyToExecute with the next incarnation.
        debug_assert_eq!(status.1, Status::Aborting);
        *status = (status.0 + 1, Status::ReadyToExecute);
    }

    fn resume_dependencies(&self, dependents: Vec<TxnIndex>) {
        let Some(min_dependent) = dependents.iter().copied().min() else {
            return;
        };
        for dependent in dependents {
            self.set_ready_status(dependent);
        }
        self.decrease_execution_idx(min_dependent as usize);
    }

    /// Marks an incarnation executed, wakes its dependents and returns the validation task
    /// of the same version when the worker can run it straight away.
    pub fn finish_execution(
        &self,
        txn_idx: TxnIndex,
        incarnation: Incarnation,
        wrote_new_location: bool,
    ) -> Option<Task> {
        self.finish_execution_then(txn_idx, incarnation, wrote_new_location, None)
    }

    /// [`Scheduler::finish_execution`], where the worker's next execution, when no validation
    /// is ready, is the run-ahead `ahead` (I21).
    pub fn finish_execution_then(
        &self,
        txn_idx: TxnIndex,
        incarnation: Incarnation,
        wrote_new_location: bool,
        ahead: Option<RunAhead>,
    ) -> Option<Task> {
        {
            let mut status = self.txns[txn_idx as usize].status.lock();
            // I1: Executing -> Executed.
            debug_assert_eq!(*status, (incarnation, Status::Executing));
            status.1 = Status::Executed;
        }
        // I5: drained under the same lock add_dependency checks under.
        let dependents = std::mem::take(&mut *self.txns[txn_idx as usize].dependents.lock());
        self.resume_dependencies(dependents);

        if self.validation_idx.load(SeqCst) > txn_idx as usize {
            if wrote_new_location {
                // I6: higher transactions may have read past a location that now exists.
                self.decrease_validation_idx(txn_idx as usize);
            } else {
                return Some(Task::Validation(Version {
                    txn_idx,
                    incarnation,
                }));
            }
        }
        self.next_task_held_then(ahead)
    }

    /// I21: whether the hot chains of this block, by the mean distance of the successors
    /// hinted so far (this one included), hold at least two thirds of a worker's share of
    /// the transactions (mean distance at most 1.5 workers). A sparser chain is not the
    /// block's critical path, and running it ahead only costs: its transactions are then
    /// validated long after they ran, on cold lines (with a fifth of the block on the chain,
    /// swaps ran 5% and token transfers 12% slower). Called once per hinted successor, which
    /// counts towards the mean.
    pub fn chain_is_dense(&self, ahead: &RunAhead) -> bool {
        let distance = u64::from(ahead.successor.saturating_sub(ahead.source.txn_idx));
        let step = distance << 32 | 1;
        let packed = self.hint_distances.fetch_add(step, Relaxed) + step;
        let (sum, count) = (packed >> 32, packed & u64::from(u32::MAX));
        2 * sum <= 3 * count * self.workers as u64
    }

    /// I21: claims `successor` for execution ahead of `execution_idx`, if it is ready and
    /// fewer than a quarter of this block's run-aheads (after the first four) were wrong.
    fn try_run_ahead(&self, RunAhead { source, successor }: RunAhead) -> Option<Version> {
        let failures = self.ahead_failures.load(Relaxed);
        if failures >= AHEAD_FREE_FAILURES && failures * 4 > self.ahead_runs.load(Relaxed) {
            return None;
        }
        let version = self.try_incarnate(successor as usize)?;
        self.txns[successor as usize]
            .ahead_source
            .store(pack_source(source), Relaxed);
        self.ahead_runs.fetch_add(1, Relaxed);
        Some(version)
    }

    /// Counts a run-ahead incarnation of `txn_idx` that was thrown away (I21), unless the
    /// transaction it followed has run again since: then running in index order would have
    /// read the same discarded write, and the hint was not what failed.
    fn note_ahead_failure(&self, txn_idx: TxnIndex) {
        let slot = &self.txns[txn_idx as usize];
        if slot.ahead_source.load(Relaxed) == 0 {
            return;
        }
        let Some(source) = unpack_source(slot.ahead_source.swap(0, Relaxed)) else {
            return;
        };
        let (incarnation, status) = self.status(source.txn_idx);
        if incarnation == source.incarnation && status == Status::Executed {
            self.ahead_failures.fetch_add(1, Relaxed);
        }
    }

    /// Run-aheads claimed in this block so far (I21).
    pub fn ahead_runs(&self) -> u32 {
        self.ahead_runs.load(Relaxed)
    }

    /// Run-aheads thrown away in this block so far (I21).
    pub fn ahead_failures(&self) -> u32 {
        self.ahead_failures.load(Relaxed)
    }

    /// Aborts `incarnation` of `txn_idx` after a failed validation. Only the first of several
    /// concurrent validations of the same incarnation succeeds.
    pub fn try_validation_abort(&self, txn_idx: TxnIndex, incarnation: Incarnation) -> bool {
        let mut status = self.txns[txn_idx as usize].status.lock();
        // I1, I3: Executed -> Aborting, only for the incarnation that was validated.
        if *status == (incarnation, Status::Executed) {
            status.1 = Status::Aborting;
            drop(status);
            self.note_ahead_failure(txn_idx);
            true
        } else {
            false
        }
    }

    /// Ends a validation task; after an abort, returns the re-execution when it is due now.
    pub fn finish_validation(&self, txn_idx: TxnIndex, aborted: bool) -> Option<Task> {
        self.finish_validation_then(txn_idx, aborted, None)
    }

    /// [`Scheduler::finish_validation`], where the worker's next execution, when no validation
    /// is ready, is the run-ahead `ahead` it still holds (I21).
    pub fn finish_validation_then(
        &self,
        txn_idx: TxnIndex,
        aborted: bool,
        ahead: Option<RunAhead>,
    ) -> Option<Task> {
        if aborted {
            self.set_ready_status(txn_idx);
            // I7: everything above read from the aborted incarnation.
            self.decrease_validation_idx(txn_idx as usize + 1);
            if self.execution_idx.load(SeqCst) > txn_idx as usize {
                if let Some(version) = self.try_incarnate(txn_idx as usize) {
                    // The active-task count carries over to the re-execution.
                    return Some(Task::Execution(version));
                }
            }
        }
        self.next_task_held_then(ahead)
    }

    /// The next task for a worker that holds an active-task count: the count of the task it
    /// just finished carries over to the new task instead of being returned and taken again
    /// (two fewer writes of a counter every worker shares, per task). When nothing is ready
    /// the count is returned; the worker's next [`Scheduler::next_task`] then runs the done
    /// check. Holding the count a little longer only delays `check_done` (I4).
    fn next_task_held(&self) -> Option<Task> {
        self.next_task_held_then(None)
    }

    /// [`Scheduler::next_task_held`], with the run-ahead `ahead` (I21) before the execution
    /// index: a ready validation still comes first, so that the worker on a hot chain keeps
    /// its share of the validations (left all to the other workers, they made those the
    /// block's slowest on token transfers).
    fn next_task_held_then(&self, ahead: Option<RunAhead>) -> Option<Task> {
        let validation_idx = self.validation_idx.load(SeqCst);
        let execution_idx = self.execution_idx.load(SeqCst);
        let mut task = None;
        if validation_idx < execution_idx {
            task = self.claim_validation().map(Task::Validation);
        }
        if task.is_none() {
            // The active-task count carries over to the run-ahead.
            task = ahead
                .and_then(|ahead| self.try_run_ahead(ahead))
                .map(Task::Execution);
        }
        if task.is_none() && execution_idx < self.num_txns {
            task = self.claim_execution().map(Task::Execution);
        }
        if task.is_none() {
            self.num_active_tasks.fetch_sub(1, SeqCst);
        }
        task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_block_is_done_at_once() {
        assert!(Scheduler::new(0).done());
    }

    #[test]
    fn single_thread_walks_execute_then_validate() {
        let s = Scheduler::new(2);
        let version = |txn_idx| Version {
            txn_idx,
            incarnation: 0,
        };
        assert_eq!(s.next_task(), Some(Task::Execution(version(0))));
        // The finished task's active count carries over to the next ready task.
        assert_eq!(
            s.finish_execution(0, 0, true),
            Some(Task::Validation(version(0)))
        );
        assert_eq!(
            s.finish_validation(0, false),
            Some(Task::Execution(version(1)))
        );
        assert_eq!(
            s.finish_execution(1, 0, true),
            Some(Task::Validation(version(1)))
        );
        // Nothing left: the count is returned, and the next request finds the block done.
        assert_eq!(s.finish_validation(1, false), None);
        assert!(!s.done());
        assert_eq!(s.next_task(), None);
        assert!(s.done());
    }

    #[test]
    fn abort_bumps_incarnation_and_reexecutes() {
        let s = Scheduler::new(1);
        let Some(Task::Execution(v)) = s.next_task() else {
            panic!("expected execution")
        };
        let Some(Task::Validation(v)) = s.finish_execution(v.txn_idx, v.incarnation, false) else {
            panic!("expected validation")
        };
        assert!(s.try_validation_abort(v.txn_idx, v.incarnation));
        // A second validation of the same incarnation must not abort again (I3).
        assert!(!s.try_validation_abort(v.txn_idx, v.incarnation));
        assert_eq!(
            s.finish_validation(v.txn_idx, true),
            Some(Task::Execution(Version {
                txn_idx: 0,
                incarnation: 1
            }))
        );
    }

    /// The next task, which must be an execution.
    fn next_execution(s: &Scheduler) -> Version {
        match s.next_task() {
            Some(Task::Execution(v)) => v,
            other => panic!("expected an execution, got {other:?}"),
        }
    }

    #[test]
    fn validation_waits_at_a_running_transaction() {
        let s = Scheduler::new(3);
        let version = |txn_idx| Version {
            txn_idx,
            incarnation: 0,
        };
        assert_eq!(next_execution(&s), version(0));
        // I20: transaction 0 is running, so its validation cannot be claimed; the worker
        // executes the next transaction instead of moving the index past 0.
        assert_eq!(next_execution(&s), version(1));
        assert_eq!(
            s.finish_execution(1, 0, true),
            Some(Task::Execution(version(2)))
        );
        // 0 finishes with the index still at it: its executor validates it, then 1 (already
        // executed), once each; no validation is repeated.
        assert_eq!(
            s.finish_execution(0, 0, true),
            Some(Task::Validation(version(0)))
        );
        assert_eq!(
            s.finish_validation(0, false),
            Some(Task::Validation(version(1)))
        );
        assert_eq!(s.finish_validation(1, false), None);
        assert_eq!(
            s.finish_execution(2, 0, true),
            Some(Task::Validation(version(2)))
        );
        assert_eq!(s.finish_validation(2, false), None);
        assert_eq!(s.next_task(), None);
        assert!(s.done());
    }

    /// The run-ahead of `successor` that transaction 0's incarnation 0 hints.
    fn ahead_of_0(successor: TxnIndex) -> RunAhead {
        RunAhead {
            source: Version {
                txn_idx: 0,
                incarnation: 0,
            },
            successor,
        }
    }

    #[test]
    fn successor_runs_ahead_after_ready_validations_and_the_index_skips_it() {
        let s = Scheduler::for_workers(4, 2);
        let version = |txn_idx| Version {
            txn_idx,
            incarnation: 0,
        };
        assert_eq!(next_execution(&s), version(0));
        // A ready validation comes before the run-ahead, which the worker keeps.
        assert_eq!(
            s.finish_execution_then(0, 0, true, Some(ahead_of_0(2))),
            Some(Task::Validation(version(0)))
        );
        // I21: then transaction 2 runs, ahead of the execution index (at 1).
        assert_eq!(
            s.finish_validation_then(0, false, Some(ahead_of_0(2))),
            Some(Task::Execution(version(2)))
        );
        assert_eq!(s.ahead_runs(), 1);
        assert_eq!(
            s.finish_execution(2, 0, true),
            Some(Task::Execution(version(1)))
        );
        // Validation still goes in index order.
        assert_eq!(
            s.finish_execution(1, 0, true),
            Some(Task::Validation(version(1)))
        );
        // The execution index passes 2 without running it again (I2), in the same claim.
        assert_eq!(
            s.finish_validation(1, false),
            Some(Task::Execution(version(3)))
        );
        assert_eq!(
            s.finish_execution(3, 0, true),
            Some(Task::Validation(version(2)))
        );
        assert_eq!(
            s.finish_validation(2, false),
            Some(Task::Validation(version(3)))
        );
        assert_eq!(s.finish_validation(3, false), None);
        assert_eq!(s.next_task(), None);
        assert!(s.done());
        assert_eq!(s.ahead_failures(), 0);
    }

    /// Runs transaction 0, validates it and runs transaction 2 ahead on 0's hint.
    fn run_2_ahead() -> Scheduler {
        let s = Scheduler::for_workers(4, 2);
        assert_eq!(next_execution(&s).txn_idx, 0);
        s.finish_execution_then(0, 0, true, Some(ahead_of_0(2)));
        let Some(Task::Execution(ahead)) = s.finish_validation_then(0, false, Some(ahead_of_0(2)))
        else {
            panic!("expected the run-ahead")
        };
        assert_eq!(ahead.txn_idx, 2);
        s.finish_execution(ahead.txn_idx, ahead.incarnation, true);
        s
    }

    #[test]
    fn only_dense_chains_run_ahead() {
        // Two workers: a chain runs ahead while its successors are at most 3 apart on average.
        let s = Scheduler::for_workers(8, 2);
        assert!(s.chain_is_dense(&ahead_of_0(2)));
        assert!(!s.chain_is_dense(&ahead_of_0(6)), "mean 4");
        assert!(!s.chain_is_dense(&ahead_of_0(2)), "mean 3.3");
        assert!(s.chain_is_dense(&ahead_of_0(2)), "mean 3");
        assert!(!Scheduler::for_workers(8, 2).chain_is_dense(&ahead_of_0(4)));
        assert!(Scheduler::for_workers(8, 4).chain_is_dense(&ahead_of_0(4)));
    }

    #[test]
    fn a_run_ahead_counts_as_failed_only_when_its_source_stood() {
        let s = run_2_ahead();
        // 2 fails validation while 0 stands: the hint was wrong.
        assert!(s.try_validation_abort(2, 0));
        assert_eq!(s.ahead_failures(), 1);

        let s = run_2_ahead();
        // 0 itself is aborted first: 2 read a write that index order could have read too.
        assert!(s.try_validation_abort(0, 0));
        assert!(s.try_validation_abort(2, 0));
        assert_eq!(s.ahead_failures(), 0);
    }

    #[test]
    fn a_block_stops_running_ahead_once_a_quarter_of_its_run_aheads_failed() {
        let refuses = |runs: u32, failures: u32| {
            let s = Scheduler::for_workers(4, 2);
            s.ahead_runs.store(runs, Relaxed);
            s.ahead_failures.store(failures, Relaxed);
            s.try_run_ahead(ahead_of_0(2)).is_none()
        };
        // I21: the first AHEAD_FREE_FAILURES failures are free, however few the runs.
        assert!(!refuses(3, 3));
        assert!(refuses(4, 4));
        // Past them, a block runs ahead while at most a quarter of its run-aheads failed.
        assert!(!refuses(16, 4));
        assert!(refuses(15, 4));
        assert!(!refuses(40, 10));
        assert!(refuses(39, 10));

        // Driven through the scheduler: four failed run-aheads out of four stop the block.
        let s = Scheduler::for_workers(16, 2);
        // Transaction 0 executed and stands, so each failure is the hint's.
        assert_eq!(next_execution(&s).txn_idx, 0);
        s.finish_execution(0, 0, true);
        for attempt in 0..AHEAD_FREE_FAILURES {
            let successor = 2 + attempt;
            let version = s
                .try_run_ahead(ahead_of_0(successor))
                .expect("still within the allowance");
            s.finish_execution(version.txn_idx, version.incarnation, true);
            assert!(s.try_validation_abort(successor, version.incarnation));
        }
        assert_eq!((s.ahead_runs(), s.ahead_failures()), (4, 4));
        assert_eq!(s.try_run_ahead(ahead_of_0(6)), None);
        assert_eq!(
            s.status(6),
            (0, Status::ReadyToExecute),
            "left for the index"
        );
    }

    #[test]
    fn dependency_on_executed_blocker_is_refused() {
        let s = Scheduler::new(2);
        let v0 = next_execution(&s);
        let v1 = next_execution(&s);
        s.finish_execution(v0.txn_idx, v0.incarnation, false);
        // I5: the blocker already finished, so the reader must retry instead of waiting.
        assert!(!s.add_dependency(v1.txn_idx, v0.txn_idx));
    }

    #[test]
    fn dependency_wakes_on_finish() {
        let s = Scheduler::new(2);
        let v0 = next_execution(&s);
        let v1 = next_execution(&s);
        assert!(s.add_dependency(v1.txn_idx, v0.txn_idx));
        assert_eq!(s.status(1), (0, Status::Aborting));
        s.finish_execution(v0.txn_idx, v0.incarnation, true);
        assert_eq!(s.status(1), (1, Status::ReadyToExecute));
        assert_eq!(
            next_execution(&s),
            Version {
                txn_idx: 1,
                incarnation: 1
            }
        );
    }
}
