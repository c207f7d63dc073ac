use crate::changes::state_changes;
use crate::env::max_blob_gas_per_block;
use crate::prepare::PreparedBlock;
use crate::task::{CodeCache, EvmKey, EvmTask, EvmValue};
use crate::BlockError;
use parex_blockstm::mvmemory::MvMemory;
use parex_blockstm::{
    execute_parallel_in, execute_sequential_in, ideal_speedup, BlockOutput, ExecutionError,
    Options, Overlay,
};
use parex_primitives::{
    AccountChange, Address, BlockEnv, Bytes, ExecStats, Fork, Receipt, StateChanges, TxIndex, B256,
    U256,
};
use parex_state::{StateError, StateViewRef};
use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::time::Instant;

/// Which executor runs the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// One transaction after another: the reference.
    Sequential,
    /// Block-STM on `ExecConfig::threads` workers.
    Parallel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    pub executor: ExecutorKind,
    /// Worker threads for the parallel executor and for sender recovery.
    pub threads: usize,
    /// Record per-transaction times and read/write sets and compute the ideal speedup bound.
    pub trace: bool,
    /// How many times a traced block runs (at least once): each transaction's time is its
    /// least over the runs, so that one preemption of a few milliseconds does not become the
    /// critical path of the ideal bound. The result is the first run's.
    pub trace_runs: u32,
    /// Let [`sequential_rule`] run a block too small to gain from Block-STM on the sequential
    /// executor (with `ExecutorKind::Parallel` only). Off: every block takes the parallel
    /// path, as tests that compare the executors need.
    pub sequential_rule: bool,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            executor: ExecutorKind::Parallel,
            threads: 1,
            trace: false,
            trace_runs: 1,
            sequential_rule: false,
        }
    }
}

/// Fewer transactions with calldata than this: too little work to start workers for.
pub const RULE_MIN_CALLS: usize = 12;
/// Less gas than this in the limits of the transactions with calldata: likewise.
pub const RULE_MIN_CALL_GAS: u64 = 2_500_000;
/// Under one transaction with calldata in this many: a block of plain transfers (a few
/// microseconds each), where the multi-version bookkeeping costs more than it saves.
pub const RULE_TRANSFERS_PER_CALL: usize = 20;

/// Why `prepared` should run sequentially, or `None` to run it on Block-STM.
///
/// Decided before execution, from what the block says about itself:
/// 1. fewer than 2 transactions: nothing to run side by side;
/// 2. one sender sends at least half the transactions: their nonces chain them, the
///    dependency graph is nearly a line (mainnet pool payouts, ideal speedup about 1.0);
/// 3. fewer than [`RULE_MIN_CALLS`] transactions carry calldata (contract calls and
///    creations), or their gas limits sum to under [`RULE_MIN_CALL_GAS`];
/// 4. fewer than one transaction in [`RULE_TRANSFERS_PER_CALL`] carries calldata.
///
/// Thresholds from the 49-block mainnet replay at 2 threads (docs/benchmarks.md): of the 19
/// blocks it sends to the sequential executor, 18 ran slower than 0.95x on Block-STM and one
/// at 0.99x; no block it leaves to Block-STM ran slower than 1.0x there.
pub fn sequential_rule(prepared: &PreparedBlock) -> Option<String> {
    let n = prepared.len();
    if n < 2 {
        return Some(format!("{n} transaction(s): nothing to run side by side"));
    }
    // The cheap scan first; the sender count (a hash per transaction) only if it passes.
    let (calls, call_gas) = prepared
        .txs
        .iter()
        .filter(|tx| !tx.env.data.is_empty() || tx.env.kind.is_create())
        .fold((0usize, 0u64), |(calls, gas), tx| {
            (calls + 1, gas.saturating_add(tx.env.gas_limit))
        });
    if calls < RULE_MIN_CALLS {
        return Some(format!(
            "{calls} of {n} transactions carry calldata (under {RULE_MIN_CALLS})"
        ));
    }
    if call_gas < RULE_MIN_CALL_GAS {
        return Some(format!(
            "calls have {call_gas} gas in their limits (under {RULE_MIN_CALL_GAS})"
        ));
    }
    if calls * RULE_TRANSFERS_PER_CALL < n {
        return Some(format!(
            "{calls} of {n} transactions carry calldata (under 1 in {RULE_TRANSFERS_PER_CALL})"
        ));
    }
    let mut by_sender: ahash::AHashMap<Address, usize> = ahash::AHashMap::with_capacity(n);
    for sender in &prepared.senders {
        *by_sender.entry(*sender).or_default() += 1;
    }
    let top = by_sender.values().copied().max().unwrap_or(0);
    if top * 2 >= n {
        return Some(format!("one sender sends {top} of {n} transactions"));
    }
    None
}

/// Per-transaction timings and the dependency-graph bound, when `ExecConfig::trace` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockTrace {
    /// Wall time of each transaction's final execution, in nanoseconds.
    pub tx_nanos: Vec<u64>,
    /// Total work over the critical path of the dependency graph built from the final read and
    /// write sets and `tx_nanos`.
    pub ideal_speedup: f64,
}

/// What executing a block produced.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockResult {
    pub receipts: Vec<Receipt>,
    pub changes: StateChanges,
    pub gas_used: u64,
    pub tx_hashes: Vec<B256>,
    pub senders: Vec<Address>,
    pub stats: ExecStats,
    pub trace: Option<BlockTrace>,
    /// Wall time of the whole block inside the engine (decode, recovery, execution), in ns.
    pub elapsed_nanos: u64,
    /// The part of `elapsed_nanos` spent decoding envelopes and recovering senders, in ns.
    pub recovery_nanos: u64,
}

impl BlockResult {
    /// True when both results carry the same receipts and state changes, bit for bit.
    pub fn same_outcome(&self, other: &BlockResult) -> bool {
        self.receipts == other.receipts
            && self.changes == other.changes
            && self.gas_used == other.gas_used
    }
}

/// Executes one block of raw EIP-2718 transaction envelopes against `state`.
pub fn execute_block<S: StateViewRef>(
    env: &BlockEnv,
    raw_transactions: &[Bytes],
    state: &S,
    config: &ExecConfig,
) -> Result<BlockResult, BlockError> {
    let start = Instant::now();
    let prepared = PreparedBlock::new(env, raw_transactions, config.threads)?;
    let recovery_nanos = start.elapsed().as_nanos() as u64;
    let mut result = execute_prepared(&prepared, state, config)?;
    result.elapsed_nanos = start.elapsed().as_nanos() as u64;
    result.recovery_nanos = recovery_nanos;
    Ok(result)
}

/// Executes a block that is already decoded and recovered (see [`PreparedBlock`]).
/// `elapsed_nanos` covers the execution and the post-checks only.
pub fn execute_prepared<S: StateViewRef>(
    prepared: &PreparedBlock,
    state: &S,
    config: &ExecConfig,
) -> Result<BlockResult, BlockError> {
    let start = Instant::now();
    let env = &prepared.env;
    let codes = BLOCK_CODES.with(Rc::clone);
    codes.bound();
    let task = EvmTask::new(prepared, state, &codes);
    let options = Options {
        trace: config.trace,
        hot_conflicts: None,
    };
    let mut fallback_reason = None;
    // C4: decided from the block alone, before execution; it only picks the executor.
    let rule = match config.executor {
        ExecutorKind::Parallel if config.sequential_rule => sequential_rule(prepared),
        _ => None,
    };
    let run = |fallback_reason: &mut Option<String>| {
        let output = match config.executor {
            _ if rule.is_some() => run_sequential(&task, options),
            ExecutorKind::Sequential => run_sequential(&task, options),
            ExecutorKind::Parallel => {
                let threads = NonZeroUsize::new(config.threads).unwrap_or(NonZeroUsize::MIN);
                match run_parallel(&task, threads, options) {
                    Err(ExecutionError::Invariant(message)) => {
                        *fallback_reason = Some(message);
                        run_sequential(&task, options)
                    }
                    other => other,
                }
            }
        };
        output.map_err(|e| match e {
            ExecutionError::Storage(message) => BlockError::State(message),
            ExecutionError::Invariant(message) => {
                BlockError::State(format!("sequential executor invariant violated: {message}"))
            }
        })
    };
    let mut output = run(&mut fallback_reason)?;
    if config.trace {
        for _ in 1..config.trace_runs {
            // Same block, same final read and write sets: only the times differ.
            let again = run(&mut None)?;
            if let (Some(least), Some(again)) = (output.traces.as_mut(), again.traces) {
                for (least, again) in least.iter_mut().zip(again) {
                    least.nanos = least.nanos.min(again.nanos);
                }
            }
        }
    }
    let BlockOutput {
        mut results,
        state: final_state,
        stats,
        traces,
    } = output;

    // Block-order checks: the first failing transaction names the error.
    let max_blob_gas = max_blob_gas_per_block(env.fork);
    let mut cumulative_gas = 0u64;
    let mut blob_gas = 0u64;
    let mut receipts = Vec::with_capacity(prepared.txs.len());
    let mut zero_fee_tx = false;
    for (i, tx) in prepared.txs.iter().enumerate() {
        let index = i as TxIndex;
        let remaining = env.gas_limit.saturating_sub(cumulative_gas);
        if tx.env.gas_limit > remaining {
            return Err(BlockError::InvalidTransaction {
                index,
                reason: format!(
                    "gas limit {} exceeds remaining block gas {remaining}",
                    tx.env.gas_limit
                ),
            });
        }
        if tx.blob_gas > 0 && blob_gas.saturating_add(tx.blob_gas) > max_blob_gas {
            return Err(BlockError::InvalidTransaction {
                index,
                reason: format!(
                    "blob gas {} exceeds remaining block blob gas {}",
                    tx.blob_gas,
                    max_blob_gas.saturating_sub(blob_gas)
                ),
            });
        }
        let output = match results.get_mut(i) {
            Some(Ok(output)) => output,
            Some(Err(reason)) => {
                return Err(BlockError::InvalidTransaction {
                    index,
                    reason: reason.clone(),
                })
            }
            None => {
                return Err(BlockError::State(format!(
                    "executor returned {} results for {} transactions",
                    results.len(),
                    prepared.txs.len()
                )))
            }
        };
        cumulative_gas = cumulative_gas.saturating_add(output.gas_used);
        blob_gas = blob_gas.saturating_add(tx.blob_gas);
        zero_fee_tx |= output.fee.is_zero();
        receipts.push(Receipt {
            tx_type: output.tx_type,
            success: output.success,
            gas_used: output.gas_used,
            cumulative_gas_used: cumulative_gas,
            logs: std::mem::take(&mut output.logs),
            contract_address: output.contract_address,
        });
    }

    let mut changes = state_changes(state, final_state).map_err(|e| BlockError::State(e.0))?;
    // EIP-161 for the beneficiary: the spec touches it with every fee, so a zero fee deletes
    // it when it exists and is empty. Lazy fees never touch it; apply the rule once here.
    if zero_fee_tx && env.fork >= Fork::SpuriousDragon {
        apply_beneficiary_rule(state, env.beneficiary, &mut changes)
            .map_err(|e| BlockError::State(e.0))?;
    }

    let trace = match (config.trace, traces) {
        (true, Some(traces)) => Some(BlockTrace {
            tx_nanos: traces.iter().map(|t| t.nanos).collect(),
            ideal_speedup: ideal_speedup(&traces),
        }),
        _ => None,
    };
    let fallback = fallback_reason.is_some();
    let stats = ExecStats {
        executions: stats.executions,
        reexecutions: stats.reexecutions,
        validation_aborts: stats.validation_aborts,
        blocked_reads: stats.blocked_reads,
        hinted_waits: stats.hinted_waits,
        contended_waits: stats.contended_waits,
        ahead_runs: stats.ahead_runs,
        ahead_failures: stats.ahead_failures,
        validations: stats.validations,
        fallback_reason,
        threads: if fallback { 1 } else { stats.threads },
        sequential_rule: rule,
    };
    Ok(BlockResult {
        receipts,
        changes,
        gas_used: cumulative_gas,
        tx_hashes: prepared.tx_hashes(),
        senders: prepared.senders.clone(),
        stats,
        trace,
        elapsed_nanos: start.elapsed().as_nanos() as u64,
        recovery_nanos: 0,
    })
}

thread_local! {
    /// The parallel executor's multi-version memory and the sequential executor's overlay,
    /// kept per thread between blocks: a thread that executes block after block (a node's
    /// executor, a benchmark) reuses their allocations instead of faulting in fresh memory
    /// for every block. They hold no state between blocks, only capacity.
    static PARALLEL_MEMORY: RefCell<MvMemory<EvmKey, EvmValue, U256>> = RefCell::new(MvMemory::default());
    static SEQUENTIAL_OVERLAY: RefCell<Overlay<EvmKey, EvmValue>> = RefCell::new(Overlay::default());
    /// Analysed contract code by hash, kept by the calling thread across blocks: consecutive
    /// blocks call mostly the same contracts (code by hash never changes). Bounded.
    static BLOCK_CODES: Rc<CodeCache> = Rc::new(CodeCache::default());
}

fn run_parallel<'a, S: StateViewRef>(
    task: &EvmTask<'a, S>,
    threads: NonZeroUsize,
    options: Options,
) -> Result<BlockOutput<EvmTask<'a, S>>, ExecutionError> {
    PARALLEL_MEMORY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut memory) => execute_parallel_in(&mut memory, task, threads, options),
        // Re-entered on this thread: run on fresh memory rather than share.
        Err(_) => execute_parallel_in(&mut MvMemory::default(), task, threads, options),
    })
}

fn run_sequential<'a, S: StateViewRef>(
    task: &EvmTask<'a, S>,
    options: Options,
) -> Result<BlockOutput<EvmTask<'a, S>>, ExecutionError> {
    SEQUENTIAL_OVERLAY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut overlay) => execute_sequential_in(&mut overlay, task, options),
        Err(_) => execute_sequential_in(&mut Overlay::default(), task, options),
    })
}

/// Deletes the beneficiary if it ends the block existing and empty (see the caller).
fn apply_beneficiary_rule<S: StateViewRef>(
    state: &S,
    beneficiary: Address,
    changes: &mut StateChanges,
) -> Result<(), StateError> {
    let info = match changes.get(&beneficiary) {
        Some(change) => change.info,
        None => state.account(&beneficiary)?,
    };
    if info.is_some_and(|info| info.is_empty()) {
        changes.insert(beneficiary, AccountChange::deleted());
    }
    Ok(())
}
