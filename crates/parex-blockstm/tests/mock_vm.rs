//! Differential tests of the parallel executor against the sequential one, on a mock VM over a
//! small key space.
//!
//! The mock's write *locations* and values are functions of what it read, so a re-executed
//! incarnation that reads different values writes different keys: this forces estimates,
//! dependency suspensions, validation aborts and the removal of stale writes. Lazy deltas, an
//! "invalid transaction" outcome and deletions are mixed in.

use parex_blockstm::{
    execute_parallel, execute_sequential, BlockTask, FinalState, Options, ReadError, ReadValue,
    ReadView, Stats, TaskOutcome, TxnIndex, WriteOp,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;

const KEYS: u8 = 6;

#[derive(Debug, Clone)]
enum Op {
    /// Read a key into the accumulator.
    Read(u8),
    /// Write the accumulator to a fixed key.
    Write(u8),
    /// Write to a key chosen by the accumulator: the location depends on what was read.
    WriteDynamic,
    /// Add to a key without reading it.
    Delta(u8, u64),
    /// Delete a key.
    Delete(u8),
    /// Declare the transaction invalid when the accumulator is divisible by the given number.
    FailIfDivisible(u64),
    /// Burn a little time, to vary interleavings.
    Spin(u16),
}

#[derive(Debug)]
struct MockBlock {
    txns: Vec<Vec<Op>>,
    /// Panic in the parallel executor when this transaction runs this incarnation-ish count.
    panic_at: Option<TxnIndex>,
    armed: std::sync::atomic::AtomicBool,
    /// Dependency hints, right or wrong: they may change timing, never results.
    hints: Vec<Option<TxnIndex>>,
    /// Successor hints, right or wrong: the same.
    successors: Vec<Option<TxnIndex>>,
}

impl MockBlock {
    fn new(txns: Vec<Vec<Op>>) -> Self {
        MockBlock {
            txns,
            panic_at: None,
            armed: false.into(),
            hints: Vec::new(),
            successors: Vec::new(),
        }
    }
}

fn base_value(key: u8) -> Option<u64> {
    // Some keys start absent, to cover deltas and reads on nothing.
    (!key.is_multiple_of(3)).then(|| key as u64 * 1000)
}

impl BlockTask for MockBlock {
    type Key = u8;
    type Value = u64;
    type Delta = u64;
    type Output = u64;
    type Error = String;

    fn len(&self) -> usize {
        self.txns.len()
    }

    fn read_base(&self, key: &u8) -> Result<Option<u64>, ReadError> {
        Ok(base_value(*key))
    }

    fn execute<R>(&self, txn_idx: TxnIndex, view: &mut R) -> TaskOutcome<u8, u64, u64, u64, String>
    where
        R: ReadView<Key = u8, Value = u64>,
    {
        if self.panic_at == Some(txn_idx)
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("injected fault in transaction {txn_idx}");
        }
        let mut acc: u64 = txn_idx as u64 + 1;
        let mut writes: BTreeMap<u8, WriteOp<u64, u64>> = BTreeMap::new();
        for op in &self.txns[txn_idx as usize] {
            match *op {
                Op::Read(key) => {
                    // Read-your-writes, as a VM's journal would.
                    let value = match writes.get(&key) {
                        Some(WriteOp::Write(value)) => *value,
                        Some(WriteOp::Delta(delta)) => match view.read(&key) {
                            Ok(read) => Some(read.value.unwrap_or(0).wrapping_add(*delta)),
                            Err(_) => return TaskOutcome::ReadFailed,
                        },
                        None => match view.read(&key) {
                            Ok(read) => read.value,
                            Err(_) => return TaskOutcome::ReadFailed,
                        },
                    };
                    acc = acc.wrapping_mul(31).wrapping_add(value.unwrap_or(7));
                }
                Op::Write(key) => {
                    writes.insert(key, WriteOp::Write(Some(acc)));
                }
                Op::WriteDynamic => {
                    writes.insert(
                        (acc % KEYS as u64) as u8,
                        WriteOp::Write(Some(acc ^ 0xabcd)),
                    );
                }
                Op::Delta(key, amount) => {
                    let merged = match writes.remove(&key) {
                        Some(WriteOp::Write(value)) => {
                            WriteOp::Write(Some(value.unwrap_or(0).wrapping_add(amount)))
                        }
                        Some(WriteOp::Delta(delta)) => WriteOp::Delta(delta.wrapping_add(amount)),
                        None => WriteOp::Delta(amount),
                    };
                    writes.insert(key, merged);
                }
                Op::Delete(key) => {
                    writes.insert(key, WriteOp::Write(None));
                }
                Op::FailIfDivisible(divisor) => {
                    if acc.is_multiple_of(divisor) {
                        return TaskOutcome::Invalid(format!("acc {acc} divisible by {divisor}"));
                    }
                }
                Op::Spin(n) => {
                    for i in 0..n {
                        std::hint::black_box(i);
                    }
                }
            }
        }
        TaskOutcome::Done {
            writes: writes.into_iter().collect(),
            output: acc,
        }
    }

    fn apply_delta(_key: &u8, base: Option<&u64>, delta: &u64) -> u64 {
        base.copied().unwrap_or(0).wrapping_add(*delta)
    }

    fn dependency_hint(&self, txn_idx: TxnIndex) -> Option<TxnIndex> {
        self.hints.get(txn_idx as usize).copied().flatten()
    }

    fn successor_hint(&self, txn_idx: TxnIndex) -> Option<TxnIndex> {
        self.successors.get(txn_idx as usize).copied().flatten()
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS).prop_map(Op::Read),
        3 => (0..KEYS).prop_map(Op::Write),
        2 => Just(Op::WriteDynamic),
        2 => (0..KEYS, 1..100u64).prop_map(|(k, d)| Op::Delta(k, d)),
        1 => (0..KEYS).prop_map(Op::Delete),
        1 => (5..40u64).prop_map(Op::FailIfDivisible),
        1 => (0..2000u16).prop_map(Op::Spin),
    ]
}

fn block() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..7), 0..48)
}

/// The sequential run stops at the first invalid transaction; the parallel run must agree on
/// everything up to and including it.
fn assert_same(txns: &[Vec<Op>], threads: usize) -> Stats {
    assert_same_hinted(txns, &Hints::default(), threads)
}

/// Hints for a mock block, and how readily it runs ahead on its successor hints.
#[derive(Default)]
struct Hints {
    dependencies: Vec<Option<TxnIndex>>,
    successors: Vec<Option<TxnIndex>>,
    hot_conflicts: Option<u32>,
}

/// A final state's keys and values in key order: the parts' split and order are the
/// executor's own.
fn sorted_entries(state: &FinalState<u8, u64>) -> Vec<(u8, Option<u64>)> {
    let mut entries = state.clone().into_entries();
    entries.sort();
    entries
}

/// Returns the parallel run's statistics.
fn assert_same_hinted(txns: &[Vec<Op>], hints: &Hints, threads: usize) -> Stats {
    let mut block = MockBlock::new(txns.to_vec());
    block.hints = hints.dependencies.clone();
    block.successors = hints.successors.clone();
    let options = Options {
        trace: true,
        hot_conflicts: hints.hot_conflicts,
    };
    let sequential = execute_sequential(&block, options).expect("sequential");
    let parallel =
        execute_parallel(&block, NonZeroUsize::new(threads).unwrap(), options).expect("parallel");
    let first_invalid = sequential.results.iter().position(|r| r.is_err());
    match first_invalid {
        Some(idx) => {
            assert_eq!(
                sequential.results[..=idx],
                parallel.results[..=idx],
                "threads={threads}"
            );
        }
        None => {
            assert_eq!(sequential.results, parallel.results, "threads={threads}");
            assert_eq!(
                sorted_entries(&sequential.state),
                sorted_entries(&parallel.state),
                "final state, threads={threads}"
            );
            // Traces hold the final read and write sets: they must agree too.
            let seq_traces = sequential.traces.unwrap();
            let par_traces = parallel.traces.unwrap();
            for (s, p) in seq_traces.iter().zip(&par_traces) {
                let mut sw = s.writes.clone();
                let mut pw = p.writes.clone();
                sw.sort();
                pw.sort();
                assert_eq!(sw, pw, "final write sets, threads={threads}");
            }
        }
    }
    assert_eq!(
        parallel.stats.executions,
        parallel.stats.reexecutions + txns.len() as u64
    );
    parallel.stats
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn parallel_equals_sequential(txns in block()) {
        for threads in 1..=8 {
            assert_same(&txns, threads);
        }
    }

    /// Random dependency hints (any lower transaction, or none; often wrong) change only
    /// scheduling.
    #[test]
    fn hints_never_change_results(txns in block(), seeds in prop::collection::vec(any::<u32>(), 48)) {
        let dependencies: Vec<Option<TxnIndex>> = (0..txns.len())
            .map(|i| (i > 0 && seeds[i] % 3 != 0).then(|| seeds[i] % i as u32))
            .collect();
        let hints = Hints { dependencies, ..Hints::default() };
        for threads in [2, 4, 8] {
            assert_same_hinted(&txns, &hints, threads);
        }
    }

    /// Random successor hints (any higher transaction, or none; often wrong), followed after
    /// any write (no key needs to be hot) where the density rule lets them, change only
    /// scheduling: transactions run ahead of the execution index, out of order, and are
    /// validated like any other (I21).
    #[test]
    fn successor_hints_never_change_results(
        txns in block(),
        seeds in prop::collection::vec(any::<u32>(), 48),
    ) {
        let n = txns.len() as u32;
        let successors: Vec<Option<TxnIndex>> = (0..n)
            .map(|i| (i + 1 < n && seeds[i as usize] % 4 != 0)
                .then(|| i + 1 + seeds[i as usize] % (n - i - 1)))
            .collect();
        let hints = Hints { successors, hot_conflicts: Some(0), ..Hints::default() };
        for threads in [2, 4, 8] {
            assert_same_hinted(&txns, &hints, threads);
        }
    }
}

/// A heavily contended block, repeated: every transaction reads and writes the same two keys.
#[test]
fn hot_keys_repeatedly() {
    let txns: Vec<Vec<Op>> = (0..200)
        .map(|i| {
            vec![
                Op::Read(1),
                Op::Spin((i % 7) as u16 * 100),
                Op::Write(1),
                Op::Delta(2, i + 1),
                Op::WriteDynamic,
            ]
        })
        .collect();
    for _ in 0..20 {
        for threads in [2, 4, 8] {
            assert_same(&txns, threads);
        }
    }
}

/// Every transaction reads one counter, works a while and writes it back: once the counter is
/// contended, later readers stop on the lower reader still running. Whether they do depends on
/// how the workers' threads interleave (on one core, none ever conflict); the results must
/// agree either way. `a_read_of_a_contended_key_waits_for_the_pending_lower_reader` forces the
/// stop itself.
#[test]
fn a_contended_counter_keeps_its_results() {
    let txns: Vec<Vec<Op>> = (0..300)
        .map(|i| {
            vec![
                Op::Spin(300),
                Op::Read(1),
                Op::Spin(1500 + (i % 5) * 100),
                Op::Write(1),
            ]
        })
        .collect();
    for _ in 0..10 {
        for threads in [2, 4] {
            assert_same(&txns, threads);
        }
    }
}

/// A mock block whose transactions wait for each other at set points, so that a test can force
/// one interleaving of two workers whatever the machine's cores do. Every wait is bounded
/// (10 s): on a starved machine a test still ends, and then fails on its assertions rather
/// than hanging.
struct Staged {
    inner: MockBlock,
    /// Per transaction: how many of its incarnations have returned from their first read.
    reads: Vec<std::sync::atomic::AtomicU32>,
    /// Per transaction: before it starts, wait until transaction `.0` has `.1` such reads.
    starts_after: Vec<Option<(usize, u32)>>,
    /// Per transaction: after its first read returns, wait until transaction `.0` has `.1`.
    holds_until: Vec<Option<(usize, u32)>>,
}

impl Staged {
    fn new(txns: Vec<Vec<Op>>) -> Self {
        let n = txns.len();
        Staged {
            inner: MockBlock::new(txns),
            reads: (0..n).map(|_| 0.into()).collect(),
            starts_after: vec![None; n],
            holds_until: vec![None; n],
        }
    }

    fn wait_for(&self, stage: Option<(usize, u32)>) {
        let Some((txn, reads)) = stage else { return };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.reads[txn].load(std::sync::atomic::Ordering::SeqCst) < reads
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
    }

    fn reads(&self, txn: usize) -> u32 {
        self.reads[txn].load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The view a [`Staged`] transaction reads through: counts its first read, then holds.
struct StagedView<'a, R> {
    view: &'a mut R,
    block: &'a Staged,
    txn: usize,
    first: bool,
}

impl<R: ReadView<Key = u8, Value = u64>> ReadView for StagedView<'_, R> {
    type Key = u8;
    type Value = u64;

    fn read(&mut self, key: &u8) -> Result<ReadValue<u64>, ReadError> {
        let read = self.view.read(key);
        if std::mem::take(&mut self.first) {
            self.block.reads[self.txn].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.block.wait_for(self.block.holds_until[self.txn]);
        }
        read
    }
}

impl BlockTask for Staged {
    type Key = u8;
    type Value = u64;
    type Delta = u64;
    type Output = u64;
    type Error = String;
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn read_base(&self, key: &u8) -> Result<Option<u64>, ReadError> {
        self.inner.read_base(key)
    }
    fn execute<R>(&self, txn_idx: TxnIndex, view: &mut R) -> TaskOutcome<u8, u64, u64, u64, String>
    where
        R: ReadView<Key = u8, Value = u64>,
    {
        let txn = txn_idx as usize;
        self.wait_for(self.starts_after[txn]);
        let mut staged = StagedView {
            view,
            block: self,
            txn,
            first: true,
        };
        self.inner.execute(txn_idx, &mut staged)
    }
    fn apply_delta(key: &u8, base: Option<&u64>, delta: &u64) -> u64 {
        MockBlock::apply_delta(key, base, delta)
    }
}

/// Runs a staged block on two workers and checks it against the sequential run.
fn run_staged(block: &Staged) -> Stats {
    let parallel =
        execute_parallel(block, NonZeroUsize::new(2).unwrap(), Options::default()).unwrap();
    let sequential = execute_sequential(&block.inner, Options::default()).unwrap();
    assert_eq!(parallel.results, sequential.results);
    assert_eq!(
        sorted_entries(&parallel.state),
        sorted_entries(&sequential.state)
    );
    parallel.stats
}

/// Forces the stop of a read on a contended key (I18), whatever the machine's cores do.
/// Four transactions read and write one counter, on two workers:
/// 1. transaction 0 starts only after transaction 1 has read the counter, so that 1 fails
///    validation on a key it read and wrote: the counter is contended;
/// 2. transaction 2 starts after 1's second incarnation has read the counter, and leaves its
///    marker on it: the pending reader;
/// 3. transaction 3 starts after 2 has read, while 2 holds its write back until 3's read
///    returns. 3 must stop on 2 (it would read past the write 2 is about to make), wait in
///    place, then suspend, and run again once 2 has written.
#[test]
fn a_read_of_a_contended_key_waits_for_the_pending_lower_reader() {
    let mut block = Staged::new(vec![vec![Op::Read(1), Op::Write(1)]; 4]);
    block.starts_after[0] = Some((1, 1));
    block.starts_after[2] = Some((1, 2));
    block.holds_until[2] = Some((3, 1));
    block.starts_after[3] = Some((2, 1));
    let stats = run_staged(&block);
    assert!(stats.validation_aborts >= 1, "{stats:?}");
    assert!(stats.contended_waits >= 1, "{stats:?}");
    assert!(
        block.reads(3) >= 2,
        "transaction 3 did not run again after its stop"
    );
}

/// Forces one conflict deterministically: transaction 0 holds back its write of key 1 until
/// transaction 1 (on another worker) has read key 1 from pre-block state. Validation must then
/// catch the stale read, re-execute transaction 1 and count it.
#[test]
fn a_forced_conflict_is_reexecuted_and_counted() {
    let mut block = Staged::new(vec![vec![Op::Write(1)], vec![Op::Read(1), Op::Write(2)]]);
    block.starts_after[0] = Some((1, 1));
    let stats = run_staged(&block);
    assert!(stats.validation_aborts >= 1, "{stats:?}");
    assert!(stats.reexecutions >= 1, "{stats:?}");
}

#[test]
fn a_worker_panic_becomes_an_invariant_error() {
    let txns: Vec<Vec<Op>> = (0..64)
        .map(|i| vec![Op::Read((i % 3) as u8), Op::Write(1)])
        .collect();
    let mut block = MockBlock::new(txns);
    block.panic_at = Some(17);
    block.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let error = execute_parallel(&block, NonZeroUsize::new(4).unwrap(), Options::default())
        .expect_err("the injected panic must surface as an error");
    assert!(
        matches!(error, parex_blockstm::ExecutionError::Invariant(ref m) if m.contains("injected fault")),
        "{error}"
    );
}

#[test]
fn delta_chains_resolve_over_absent_and_deleted_values() {
    // Key 0 starts absent; key 3 is deleted then credited.
    let txns = vec![
        vec![Op::Delta(0, 5)],
        vec![Op::Delete(3)],
        vec![Op::Delta(3, 9), Op::Delta(0, 1)],
        vec![Op::Read(0), Op::Read(3), Op::Write(4)],
    ];
    let block = MockBlock::new(txns.clone());
    let seq = execute_sequential(&block, Options::default()).unwrap();
    let state = sorted_entries(&seq.state);
    assert!(state.contains(&(0, Some(6))));
    assert!(state.contains(&(3, Some(9))));
    for threads in 1..=4 {
        assert_same(&txns, threads);
    }
}

/// One memory and one overlay reused across blocks of changing size, traced or not, on 1 to 3
/// workers: nothing of a block may leak into the next (stale entries would change reads, which
/// the comparison would catch).
#[test]
fn reused_memory_carries_nothing_between_blocks() {
    use parex_blockstm::{execute_parallel_in, execute_sequential_in, TaskMemory};
    let mut memory: TaskMemory<MockBlock> = Default::default();
    let mut overlay = Default::default();
    let blocks: Vec<Vec<Vec<Op>>> = vec![
        (0..120)
            .map(|i| vec![Op::Read((i % 5) as u8), Op::WriteDynamic, Op::Delta(2, 3)])
            .collect(),
        (0..7).map(|_| vec![Op::Read(1), Op::Read(4)]).collect(),
        vec![],
        (0..60)
            .map(|i| vec![Op::Read(0), Op::Write((i % 6) as u8), Op::Delete(3)])
            .collect(),
        (0..3)
            .map(|_| vec![Op::Read(2), Op::Read(3), Op::Read(4)])
            .collect(),
    ];
    for round in 0..3 {
        for (i, txns) in blocks.iter().enumerate() {
            let block = MockBlock::new(txns.clone());
            let fresh = execute_sequential(&block, Options::default()).unwrap();
            let pooled_seq =
                execute_sequential_in(&mut overlay, &block, Options::default()).unwrap();
            // A traced block keeps its records past the workers (the trace reads them), so
            // the next reset empties them on one thread; an untraced one empties them on its
            // workers. Rounds alternate, and thread counts vary, so both paths meet.
            let pooled_par = execute_parallel_in(
                &mut memory,
                &block,
                NonZeroUsize::new(1 + (round + i) % 3).unwrap(),
                Options {
                    trace: (round + i) % 2 == 1,
                    ..Options::default()
                },
            )
            .unwrap();
            assert_eq!(fresh.results, pooled_seq.results, "round {round} block {i}");
            assert_eq!(fresh.results, pooled_par.results, "round {round} block {i}");
            assert_eq!(
                sorted_entries(&fresh.state),
                sorted_entries(&pooled_seq.state),
                "round {round} block {i}"
            );
            assert_eq!(
                sorted_entries(&fresh.state),
                sorted_entries(&pooled_par.state),
                "round {round} block {i}"
            );
        }
    }
}

/// Two thirds of the block are a chain on one counter, the rest independent work in between,
/// and each chain transaction names the next one as its successor. The worker that writes
/// a hot key runs the next chain transaction ahead of the execution index (I21): the
/// run-aheads must happen, and change nothing. How many conflicts make the counter hot
/// depends on how the workers' threads interleave (on one core, none ever conflict), so
/// the run-aheads are counted with every written key hot from the start; the default
/// threshold runs too, for its results. (`MvMemory`'s unit tests pin the threshold itself.)
#[test]
fn a_hot_chain_runs_ahead_on_its_successor_hints() {
    let hot = |i: u32| !i.is_multiple_of(3);
    let txns: Vec<Vec<Op>> = (0..450)
        .map(|i| {
            if hot(i) {
                vec![Op::Read(1), Op::Spin(1500), Op::Write(1)]
            } else {
                vec![Op::Spin(1500), Op::Delta(2, 1)]
            }
        })
        .collect();
    let successors: Vec<Option<TxnIndex>> = (0..450)
        .map(|i| hot(i).then(|| (i + 1..450).find(|&j| hot(j))).flatten())
        .collect();
    let always_hot = Hints {
        successors: successors.clone(),
        hot_conflicts: Some(0),
        ..Hints::default()
    };
    let by_conflicts = Hints {
        successors,
        ..Hints::default()
    };
    let mut ahead_runs = 0;
    for _ in 0..10 {
        for threads in [2, 4] {
            ahead_runs += assert_same_hinted(&txns, &always_hot, threads).ahead_runs;
            assert_same_hinted(&txns, &by_conflicts, threads);
        }
    }
    assert!(
        ahead_runs > 0,
        "no transaction ran ahead on its successor hint"
    );
}
