use crate::BlockError;
use parex_primitives::{Address, BlockEnv, Bytes, ExecStats, Receipt, StateChanges, B256};
use parex_state::StateViewRef;

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
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig { executor: ExecutorKind::Parallel, threads: 1, trace: false }
    }
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
    let _ = (env, raw_transactions, state, config);
    todo!("parex-evm adapter")
}
