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
            }
        }
    }
}

/// The ideal bound comes from the final read and write sets: a chain of one sender's nonces
/// cannot beat 1.0, transactions of distinct senders can.
#[test]
fn trace_reports_ideal_speedup() {
    use parex_primitives::U256;
    let env = env(Fork::Prague);
    let state = genesis();
    let config = ExecConfig {
        executor: ExecutorKind::Parallel,
        threads: 4,
        trace: true,
        trace_runs: 1,
        sequential_rule: false,
    };
    let transfer = |nonce: u64, to: u32| call(nonce, addr(100 + to), U256::from(1), vec![], 21_000);
    let chain: Vec<_> = (0..20)
        .map(|n| sign(2, 1, &transfer(n, n as u32)))
        .collect();
    let spread: Vec<_> = (1..21).map(|k| sign(2, k, &transfer(0, k))).collect();

    let chained = execute_block(&env, &chain, &state, &config).expect("valid block");
    let trace = chained.trace.expect("trace requested");
    assert_eq!(trace.tx_nanos.len(), chain.len());
    assert_eq!(
        trace.ideal_speedup, 1.0,
        "every transaction reads the nonce the previous wrote"
    );

    let independent = execute_block(&env, &spread, &state, &config).expect("valid block");
    let ideal = independent.trace.expect("trace requested").ideal_speedup;
    assert!(ideal > 1.0, "independent senders: ideal speedup {ideal}");
}

/// Enough final values (over 4,096: accounts, recipients and slots) that the parallel executor
/// assembles its state changes on several threads (values shuffled into per-thread address
/// groups, built, merged); the result must still equal the sequential one and revm's.
#[test]
fn wide_blocks_assemble_state_changes_in_parallel() {
    use parex_primitives::{BlockEnv, U256};
    let env = BlockEnv {
        gas_limit: 200_000_000,
        ..env(Fork::Prague)
    };
    let mut state = genesis();
    let senders = 2_500u32;
    let first = 1_000u32;
    for i in first..first + senders {
        state.insert_account(addr(i), ether(10), 0, None);
    }
    let txs: Vec<_> = (0..senders)
        .map(|i| {
            let key = first + i;
            let request = if i % 3 == 0 {
                // STORE: SSTORE(slot = calldata[0..32], value = calldata[32..64]).
                let mut input = word(10_000 + i as u64).to_vec();
                input.extend_from_slice(&word(i as u64 + 1));
                // With value: the store's account and its slots change in one block, so a
                // tail that split one address's keys across groups would lose one of them.
                call(0, fixed(STORE), U256::from(1), input, 100_000)
            } else {
                // A fresh recipient per transfer: a lazy credit to a new account.
                call(
                    0,
                    addr(50_000 + i),
                    U256::from(1_000 + i as u64),
                    vec![],
                    21_000,
                )
            };
            sign(i as u8, key, &request)
        })
        .collect();
    let sequential = run(&env, &txs, &state, ExecutorKind::Sequential, 1);
    assert!(
        sequential.changes.len() > 4_096,
        "{} accounts changed",
        sequential.changes.len()
    );
    assert_same_as_revm(&env, &txs, &state, &sequential);
    for threads in [2, 3, 4] {
        let parallel = run(&env, &txs, &state, ExecutorKind::Parallel, threads);
        assert!(
            parallel.same_outcome(&sequential),
            "x{threads}: parallel differs"
        );
    }
}
