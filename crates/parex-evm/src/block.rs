use crate::env::max_blob_gas_per_block;
use crate::prepare::PreparedBlock;
use crate::task::{
    AccountValue, CodeCache, CodeValue, EvmKey, EvmTask, EvmValue, SlotValue, STORAGE_STALE,
};
use crate::BlockError;
use parex_blockstm::mvmemory::MvMemory;
use parex_blockstm::{
    execute_parallel_in, execute_sequential_in, ideal_speedup, BlockOutput, ExecutionError,
    Options, Overlay,
};
use parex_primitives::{
    AccountChange, AccountInfo, Address, BlockEnv, Bytes, ExecStats, Fork, Receipt, StateChanges,
    TxIndex, B256, KECCAK_EMPTY, U256,
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
    };
    let mut fallback_reason = None;
    // C4: decided from the block alone, before execution; it only picks the executor.
    let rule = match config.executor {
        ExecutorKind::Parallel if config.sequential_rule => sequential_rule(prepared),
        _ => None,
    };
    let output = match config.executor {
        _ if rule.is_some() => run_sequential(&task, options),
        ExecutorKind::Sequential => run_sequential(&task, options),
        ExecutorKind::Parallel => {
            let threads = NonZeroUsize::new(config.threads).unwrap_or(NonZeroUsize::MIN);
            match run_parallel(&task, threads, options) {
                Err(ExecutionError::Invariant(message)) => {
                    fallback_reason = Some(message);
                    run_sequential(&task, options)
                }
                other => other,
            }
        }
    };
    let output = output.map_err(|e| match e {
        ExecutionError::Storage(message) => BlockError::State(message),
        ExecutionError::Invariant(message) => {
            BlockError::State(format!("sequential executor invariant violated: {message}"))
        }
    })?;
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

    let assembly_threads = match config.executor {
        _ if rule.is_some() => 1,
        ExecutorKind::Sequential => 1,
        ExecutorKind::Parallel => config.threads.max(1),
    };
    let mut changes =
        state_changes(state, final_state, assembly_threads).map_err(|e| BlockError::State(e.0))?;
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

/// What the block left at one address, before it becomes an [`AccountChange`].
#[derive(Default)]
struct Pending {
    account: Option<Option<AccountValue>>,
    code: Option<Option<CodeValue>>,
    storage: Vec<(U256, SlotValue)>,
}

/// A key's final value, as the executors return it.
type FinalEntry = (EvmKey, Option<EvmValue>);

/// Below this many final values the tail runs on the calling thread: spawning costs more
/// than it saves.
const PARALLEL_TAIL_MIN_ENTRIES: usize = 4_096;

/// Groups the final values by address and builds each [`AccountChange`].
///
/// With `threads > 1` (the parallel executor's tail) no step is serial but the last merge: the
/// values are shuffled so that every key of one address lands in one group (phase 1: each
/// thread buckets a contiguous chunk), then each group is collected, built and sorted on its
/// own thread (phase 2), and the sorted groups are merged into the tree.
fn state_changes<S: StateViewRef>(
    state: &S,
    final_state: Vec<FinalEntry>,
    threads: usize,
) -> Result<StateChanges, StateError> {
    let groups = if final_state.len() < PARALLEL_TAIL_MIN_ENTRIES {
        1
    } else {
        threads.max(1)
    };
    let built = if groups == 1 {
        vec![build_group(state, vec![final_state])?]
    } else {
        let chunk = final_state.len().div_ceil(groups);
        let mut chunks: Vec<Vec<FinalEntry>> = Vec::with_capacity(groups);
        let mut rest = final_state;
        while rest.len() > chunk {
            let tail = rest.split_off(chunk);
            chunks.push(rest);
            rest = tail;
        }
        chunks.push(rest);
        let bucketed = on_threads(chunks, |chunk| Ok(bucket_by_group(chunk, groups)))?;
        let mut per_group: Vec<Vec<Vec<FinalEntry>>> = (0..groups)
            .map(|_| Vec::with_capacity(bucketed.len()))
            .collect();
        for buckets in bucketed {
            for (group, bucket) in buckets.into_iter().enumerate() {
                per_group[group].push(bucket);
            }
        }
        on_threads(per_group, |parts| build_group(state, parts))?
    };
    Ok(merge_sorted(built))
}

/// Runs `work` on each input, one scoped thread per input; the results keep the input order.
fn on_threads<I: Send, O: Send>(
    inputs: Vec<I>,
    work: impl Fn(I) -> Result<O, StateError> + Sync,
) -> Result<Vec<O>, StateError> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|input| scope.spawn(move || work(input)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(StateError("state assembly panicked".into())))
            })
            .collect()
    })
}

/// The group of an address: every key of one address must land in the same group.
fn group_of(address: &Address, groups: usize) -> usize {
    let low = u64::from_le_bytes(address.0[12..20].try_into().unwrap_or_default());
    // Multiplicative mixing: chosen addresses (0x…01, 0x…02) still spread over the groups.
    ((low.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % groups as u64) as usize
}

fn bucket_by_group(chunk: Vec<FinalEntry>, groups: usize) -> Vec<Vec<FinalEntry>> {
    let mut buckets: Vec<Vec<FinalEntry>> = (0..groups)
        .map(|_| Vec::with_capacity(chunk.len() / groups + 16))
        .collect();
    for entry in chunk {
        if let Some(address) = key_address(&entry.0) {
            buckets[group_of(&address, groups)].push(entry);
        }
    }
    buckets
}

/// Collects one group's values by address and builds its changes, sorted by address.
fn build_group<S: StateViewRef>(
    state: &S,
    parts: Vec<Vec<FinalEntry>>,
) -> Result<Vec<(Address, AccountChange)>, StateError> {
    let entries: usize = parts.iter().map(Vec::len).sum();
    let mut by_address: ahash::AHashMap<Address, Pending> =
        ahash::AHashMap::with_capacity(entries / 2 + 1);
    for (key, value) in parts.into_iter().flatten() {
        match key {
            EvmKey::Account(address) => {
                by_address.entry(address).or_default().account = Some(match value {
                    Some(EvmValue::Account(account)) => Some(account),
                    _ => None,
                });
            }
            EvmKey::Code(address) => {
                by_address.entry(address).or_default().code = Some(match value {
                    Some(EvmValue::Code(code)) => Some(code),
                    _ => None,
                });
            }
            EvmKey::Storage(address, slot) => {
                let value = match value {
                    Some(EvmValue::Storage(value)) => value,
                    _ => SlotValue {
                        value: U256::ZERO,
                        written_by: None,
                    },
                };
                by_address
                    .entry(address)
                    .or_default()
                    .storage
                    .push((slot, value));
            }
            EvmKey::BlockHash(_) => {}
        }
    }
    let mut changes = Vec::with_capacity(by_address.len());
    for (address, pending) in by_address {
        changes.push(account_change(state, address, pending)?);
    }
    Ok(sorted_by_address(changes))
}

/// Sorts by address through a narrow index (integer keys, no byte loop) instead of moving the
/// wide changes around.
fn sorted_by_address(changes: Vec<(Address, AccountChange)>) -> Vec<(Address, AccountChange)> {
    let mut order: Vec<(u64, u64, u32, u32)> = changes
        .iter()
        .enumerate()
        .map(|(i, (address, _))| {
            let bytes = &address.0 .0;
            let word =
                |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
            let tail = u32::from_be_bytes(bytes[16..20].try_into().unwrap_or_default());
            (word(0), word(8), tail, i as u32)
        })
        .collect();
    order.sort_unstable();
    let mut slots: Vec<Option<(Address, AccountChange)>> = changes.into_iter().map(Some).collect();
    let mut sorted = Vec::with_capacity(slots.len());
    sorted.extend(
        order
            .into_iter()
            .filter_map(|(.., i)| slots[i as usize].take()),
    );
    sorted
}

/// Merges groups that are each sorted by address (and disjoint) into the change tree.
fn merge_sorted(groups: Vec<Vec<(Address, AccountChange)>>) -> StateChanges {
    if groups.len() == 1 {
        // Sorted: the tree is bulk-built.
        return groups.into_iter().flatten().collect();
    }
    let mut heads: Vec<std::iter::Peekable<std::vec::IntoIter<(Address, AccountChange)>>> = groups
        .into_iter()
        .map(|g| g.into_iter().peekable())
        .collect();
    let merged = std::iter::from_fn(move || {
        let next = heads
            .iter_mut()
            .enumerate()
            .filter_map(|(i, head)| head.peek().map(|(address, _)| (*address, i)))
            .min()?
            .1;
        heads[next].next()
    });
    merged.collect()
}

fn account_change<S: StateViewRef>(
    state: &S,
    address: Address,
    pending: Pending,
) -> Result<(Address, AccountChange), StateError> {
    // Pre-block state is needed for an account the block did not write, and for the code hash
    // of an account with code whose code the block did not change. An account without code
    // needs none: giving an account code, or taking it away, also writes its `has_code`.
    let needs_base = match (&pending.account, &pending.code) {
        (None, _) => true,
        (Some(Some(account)), None) => account.has_code,
        (Some(_), _) => false,
    };
    let base = if needs_base {
        state.account(&address)?
    } else {
        None
    };
    let account = match pending.account {
        Some(account) => account,
        None => base.map(|info| AccountValue {
            balance: info.balance,
            nonce: info.nonce,
            storage_reset: None,
            has_code: crate::task::has_code(info.code_hash),
        }),
    };
    let Some(account) = account else {
        // Deleted (or never came to exist): storage goes with it.
        return Ok((address, AccountChange::deleted()));
    };
    let (code_hash, code) = match &pending.code {
        Some(Some(code)) => (code.hash, Some(code.bytecode.original_bytes())),
        Some(None) => (KECCAK_EMPTY, Some(Bytes::new())),
        None if account.has_code => (base.map_or(KECCAK_EMPTY, |info| info.code_hash), None),
        None => (KECCAK_EMPTY, None),
    };
    let mut storage: Vec<(U256, U256)> = pending
        .storage
        .into_iter()
        .filter(|(_, slot)| match account.storage_reset {
            None => true,
            Some(STORAGE_STALE) => false,
            Some(reset) => slot.written_by.is_some_and(|w| w >= reset),
        })
        .map(|(slot, value)| (slot, value.value))
        .collect();
    // Sorted in place first, so the tree is bulk-built from a sorted run.
    storage.sort_unstable_by_key(|(slot, _)| *slot);
    Ok((
        address,
        AccountChange {
            info: Some(AccountInfo {
                balance: account.balance,
                nonce: account.nonce,
                code_hash,
            }),
            code,
            storage_cleared: account.storage_reset.is_some(),
            storage: storage.into_iter().collect(),
        },
    ))
}

fn key_address(key: &EvmKey) -> Option<Address> {
    match key {
        EvmKey::Account(a) | EvmKey::Code(a) | EvmKey::Storage(a, _) => Some(*a),
        EvmKey::BlockHash(_) => None,
    }
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
