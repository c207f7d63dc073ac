//! The machine's own bound on a block's parallel speedup.
//!
//! The dependency-graph bound ([`parex_blockstm::ideal_speedup`]) assumes that `n` cores run
//! `n` times the work of one. Cores that share caches, memory bandwidth or a host with other
//! tenants do not: on the 2-vCPU VM of docs/benchmarks.md, two *independent* sequential
//! executions of the plain-revm bench's block at once took 1.1-1.3 times as long as one alone
//! (medians of paired rounds), and how much depends on the block.
//! [`execute_copies`] measures that ceiling on the block itself, so that a benchmark can say
//! how much of a parallel run's shortfall is the engine's and how much the machine's.

use crate::block::{execute_prepared, ExecConfig, ExecutorKind};
use crate::prepare::PreparedBlock;
use crate::BlockError;
use parex_blockstm::workers::on_workers;
use parex_primitives::Bytes;
use parex_state::StateViewRef;
use std::num::NonZeroUsize;
use std::sync::Barrier;
use std::time::Instant;

/// What [`execute_copies`] measured, back to back on the same warm threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopiesTiming {
    /// One copy alone, the other threads waiting, in nanoseconds.
    pub alone_nanos: u64,
    /// Every copy at once, from the first start to the last finish, in nanoseconds.
    pub together_nanos: u64,
    pub copies: usize,
}

impl CopiesTiming {
    /// The throughput the copies reached together against one alone: `copies` times the
    /// time alone over the time together.
    pub fn speedup(&self) -> f64 {
        self.copies as f64 * self.alone_nanos as f64 / self.together_nanos.max(1) as f64
    }
}

/// Executes `copies` copies of `prepared` with the sequential executor, one thread each: once
/// one copy alone, then every copy at once, and times both runs.
///
/// [`CopiesTiming::speedup`] is the throughput the machine gives independent blocks: the
/// speedup a parallel executor would reach if its transactions shared nothing. The two runs
/// are back to back on the same threads, so that a host whose speed drifts between runs
/// (a shared VM) gives both the same speed. The copies share no written memory: each thread
/// runs its own deep copy of the block (the transactions' calldata included, whose reference
/// counts each run increments) over its own overlay and code cache, and the pre-block state
/// is only read. Each thread runs its copy once before, untimed, so that its thread-local
/// memory is faulted in and warm. Decoding and sender recovery are not timed (the caller did
/// them once, before).
pub fn execute_copies<S: StateViewRef>(
    prepared: &PreparedBlock,
    state: &S,
    copies: NonZeroUsize,
) -> Result<CopiesTiming, BlockError> {
    let config = ExecConfig {
        executor: ExecutorKind::Sequential,
        threads: 1,
        ..ExecConfig::default()
    };
    let copies = copies.get();
    let barrier = Barrier::new(copies);
    type Run = Result<(Option<u64>, Instant, Instant), BlockError>;
    // The copies run on the helper threads Block-STM's workers run on (I22).
    let runs: Vec<Run> = on_workers(copies, |copy| {
        let own = deep_copy(prepared);
        // Every thread reaches both barriers, even after a failed run.
        let warm = execute_prepared(&own, state, &config);
        barrier.wait();
        let alone = (copy == 0 && warm.is_ok()).then(|| {
            let started = Instant::now();
            let run = execute_prepared(&own, state, &config);
            run.map(|_| started.elapsed().as_nanos() as u64)
        });
        barrier.wait();
        warm?;
        let alone = alone.transpose()?;
        let started = Instant::now();
        execute_prepared(&own, state, &config)?;
        Ok((alone, started, Instant::now()))
    })
    .into_iter()
    .map(|run| run.unwrap_or_else(|_| Err(BlockError::State("a copy's thread panicked".into()))))
    .collect();
    let mut alone_nanos = None;
    let mut first_start: Option<Instant> = None;
    let mut last_end: Option<Instant> = None;
    for run in runs {
        let (alone, started, ended) = run?;
        alone_nanos = alone_nanos.or(alone);
        first_start = Some(first_start.map_or(started, |s| s.min(started)));
        last_end = Some(last_end.map_or(ended, |e| e.max(ended)));
    }
    match (alone_nanos, first_start, last_end) {
        (Some(alone_nanos), Some(started), Some(ended)) => Ok(CopiesTiming {
            alone_nanos,
            together_nanos: ended.duration_since(started).as_nanos() as u64,
            copies,
        }),
        _ => Err(BlockError::State("no copy ran".into())),
    }
}

/// `prepared` with calldata of its own: a plain clone shares each transaction's bytes, and
/// every run's clone of a transaction's environment increments their shared count.
fn deep_copy(prepared: &PreparedBlock) -> PreparedBlock {
    let mut own = prepared.clone();
    for tx in &mut own.txs {
        tx.env.data = Bytes::copy_from_slice(&tx.env.data);
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{address_of, sign_eip1559, TxRequest};
    use parex_primitives::{Address, BlockEnv, Fork, U256};
    use parex_state::InMemoryState;

    fn transfers(n: u8) -> (BlockEnv, Vec<Bytes>, InMemoryState) {
        let env = BlockEnv {
            base_fee: 7,
            gas_limit: 30_000_000,
            fork: Fork::Prague,
            ..BlockEnv::default()
        };
        let mut state = InMemoryState::new();
        let mut txs = Vec::new();
        for i in 1..=n {
            let key = [i; 32];
            let sender = address_of(&key).expect("key");
            state.insert_account(sender, U256::from(10u64.pow(18)), 0, None);
            let request = TxRequest {
                nonce: 0,
                to: Some(Address::repeat_byte(0xaa)),
                value: U256::from(i),
                input: Bytes::new(),
                gas_limit: 21_000,
                max_fee_per_gas: 20,
                max_priority_fee_per_gas: 2,
            };
            txs.push(sign_eip1559(env.chain_id, &key, &request).expect("sign"));
        }
        (env, txs, state)
    }

    #[test]
    fn copies_run_and_are_timed() {
        let (env, txs, state) = transfers(8);
        let prepared = PreparedBlock::new(&env, &txs, 1).expect("prepare");
        let copies = NonZeroUsize::new(3).expect("3");
        let timing = execute_copies(&prepared, &state, copies).expect("copies");
        assert_eq!(timing.copies, 3);
        assert!(timing.alone_nanos > 0 && timing.together_nanos > 0);
        assert!(timing.speedup() > 0.0);
    }

    #[test]
    fn a_block_that_fails_fails_its_copies() {
        let (env, txs, _) = transfers(2);
        let prepared = PreparedBlock::new(&env, &txs, 1).expect("prepare");
        // No sender is funded: the first transaction is invalid.
        let error = execute_copies(&prepared, &InMemoryState::new(), NonZeroUsize::MIN)
            .expect_err("unfunded");
        assert!(
            matches!(error, BlockError::InvalidTransaction { index: 0, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_deep_copy_shares_no_calldata() {
        let (env, _, _) = transfers(0);
        let key = [9u8; 32];
        let request = TxRequest {
            nonce: 0,
            to: Some(Address::repeat_byte(0xaa)),
            value: U256::ZERO,
            input: Bytes::from(vec![1, 2, 3]),
            gas_limit: 30_000,
            max_fee_per_gas: 20,
            max_priority_fee_per_gas: 2,
        };
        let tx = sign_eip1559(env.chain_id, &key, &request).expect("sign");
        let prepared = PreparedBlock::new(&env, &[tx], 1).expect("prepare");
        let own = deep_copy(&prepared);
        assert_eq!(own.txs[0].env.data, prepared.txs[0].env.data);
        assert_ne!(
            own.txs[0].env.data.as_ptr(),
            prepared.txs[0].env.data.as_ptr()
        );
    }
}
