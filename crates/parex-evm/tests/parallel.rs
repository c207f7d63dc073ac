//! The parallel executor equals the sequential one at 1..=8 threads on random mixed
//! workloads with hot keys; each block runs several times to catch races.

mod common;

use common::*;
use parex_evm::{execute_block, ExecConfig, ExecutorKind};
use parex_primitives::Fork;

#[test]
fn parallel_equals_sequential_on_random_blocks() {
    for (seed, fork, len) in [
        (11, Fork::Prague, 200),
        (12, Fork::Cancun, 120),
        (13, Fork::Shanghai, 120),
        (14, Fork::London, 80),
        (15, Fork::Prague, 300),
    ] {
        let env = env(fork);
        let state = genesis();
        let txs = random_block(seed, len, fork);
        let sequential = run(&env, &txs, &state, ExecutorKind::Sequential, 1);
        assert_same_as_revm(&env, &txs, &state, &sequential);
        for threads in 1..=8 {
            for round in 0..3 {
                let parallel = run(&env, &txs, &state, ExecutorKind::Parallel, threads);
                assert!(
                    parallel.same_outcome(&sequential),
                    "seed {seed} {fork} x{threads} round {round}: parallel differs"
                );
                assert_eq!(parallel.tx_hashes, sequential.tx_hashes);
                assert_eq!(parallel.senders, sequential.senders);
            }
        }
    }
}

#[test]
fn trace_reports_ideal_speedup() {
    let env = env(Fork::Prague);
    let state = genesis();
    let txs = random_block(21, 100, Fork::Prague);
    let config = ExecConfig { executor: ExecutorKind::Parallel, threads: 4, trace: true };
    let result = execute_block(&env, &txs, &state, &config).expect("valid block");
    let trace = result.trace.expect("trace requested");
    assert_eq!(trace.tx_nanos.len(), txs.len());
    assert!(trace.ideal_speedup >= 1.0, "ideal speedup {}", trace.ideal_speedup);
    assert!(result.stats.executions >= txs.len() as u64);
}
