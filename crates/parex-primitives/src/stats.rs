/// Counters that say how hard the scheduler had to work for a block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecStats {
    /// Incarnations run, first executions included.
    pub executions: u64,
    /// Incarnations beyond the first, summed over the block.
    pub reexecutions: u64,
    /// Validations that failed and aborted an incarnation.
    pub validation_aborts: u64,
    /// Reads that met an estimate: they waited for its writer to finish executing, in place
    /// or with their transaction suspended.
    pub blocked_reads: u64,
    /// First incarnations that waited for their dependency hint (the previous transaction of
    /// the same sender) instead of running on a nonce about to change.
    pub hinted_waits: u64,
    /// Reads of a contended key (one a transaction read, then wrote, and failed validation on)
    /// that stopped on a lower transaction which had read it and not finished executing: they
    /// waited for it in place, or suspended.
    pub contended_waits: u64,
    /// Transactions run ahead of the execution index, next after a write of a hot key by the
    /// transaction before them on the same contract (the successor hint).
    pub ahead_runs: u64,
    /// Run-ahead incarnations thrown away (aborted by validation or suspended on a read).
    pub ahead_failures: u64,
    /// Validation tasks run.
    pub validations: u64,
    /// Why the block was re-run sequentially, if it was.
    pub fallback_reason: Option<String>,
    /// Worker threads the block ran on (1 for the sequential executor).
    pub threads: u32,
    /// Why the sequential rule ran the block on the sequential executor, if it did.
    pub sequential_rule: Option<String>,
}
