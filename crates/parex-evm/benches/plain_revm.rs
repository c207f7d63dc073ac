//! Plain revm (CacheDB + transact_commit over pre-recovered transactions) against the parex
//! sequential executor on the same block: ~2,000 ETH transfers and ~2,000 calls to a
//! storage-writing contract. Decoding and sender recovery are excluded from both timings
//! (`PreparedBlock`). Prints Mgas/s for each and the ratio.
//!
//! `cargo bench -p parex-evm --bench plain_revm` (add `-- <iterations>` to change the count).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{secret, store_code, Base};
use parex_evm::revm::context::Context;
use parex_evm::revm::database::CacheDB;
use parex_evm::revm::{ExecuteCommitEvm, MainBuilder, MainContext};
use parex_evm::sign::{address_of, sign_eip1559, TxRequest};
use parex_evm::{execute_prepared, ExecConfig, ExecutorKind, PreparedBlock};
use parex_primitives::{Address, BlockEnv, Bytes, Fork, U256};
use parex_state::InMemoryState;
use std::time::{Duration, Instant};

const TRANSFERS: u32 = 2_000;
const CALLS: u32 = 2_000;

/// The reference: one revm over a CacheDB, `transact_commit` per transaction; returns the gas.
#[inline(never)]
fn plain_revm_block(prepared: &PreparedBlock, state: &InMemoryState) -> u64 {
    let mut evm = Context::mainnet()
        .with_db(CacheDB::new(Base(state)))
        .with_block(prepared.revm_block_env().clone())
        .with_cfg(prepared.revm_cfg_env().clone())
        .build_mainnet();
    let mut gas = 0u64;
    for tx in prepared.revm_txs() {
        let result = evm.transact_commit(tx.clone()).expect("valid");
        gas += result.tx_gas_used();
    }
    gas
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let env = BlockEnv {
        base_fee: 7,
        gas_limit: 1_000_000_000,
        fork: Fork::Prague,
        ..BlockEnv::default()
    };
    let store = Address::repeat_byte(0x50);
    let mut state = InMemoryState::new();
    // Keyed store: SSTORE(calldata[0..32], calldata[32..64]).
    state.insert_account(store, U256::ZERO, 1, Some(store_code()));
    let mut txs = Vec::new();
    for i in 0..TRANSFERS + CALLS {
        let key = secret(i);
        let sender = address_of(&key).expect("key");
        state.insert_account(sender, U256::from(10u128.pow(20)), 0, None);
        let mut request = TxRequest {
            nonce: 0,
            to: None,
            value: U256::ZERO,
            input: Bytes::new(),
            gas_limit: 100_000,
            max_fee_per_gas: 20,
            max_priority_fee_per_gas: 2,
        };
        if i < TRANSFERS {
            request.to = Some(Address::with_last_byte(0x01).create(i as u64 + 1_000_000));
            request.value = U256::from(1_000 + i);
        } else {
            let mut input = U256::from(i).to_be_bytes::<32>().to_vec();
            input.extend_from_slice(&U256::from(i + 1).to_be_bytes::<32>());
            request.to = Some(store);
            request.input = Bytes::from(input);
        }
        txs.push(sign_eip1559(env.chain_id, &key, &request).expect("sign"));
    }
    let prepared = PreparedBlock::new(&env, &txs, 2).expect("prepare");

    let sequential = ExecConfig {
        executor: ExecutorKind::Sequential,
        threads: 1,
        trace: false,
        sequential_rule: false,
    };
    let parallel_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let parallel = ExecConfig {
        executor: ExecutorKind::Parallel,
        threads: parallel_threads,
        trace: false,
        sequential_rule: false,
    };

    let mut revm_times = Vec::new();
    let mut seq_times = Vec::new();
    let mut par_times = Vec::new();
    let mut par1_times = Vec::new();
    let parallel1 = ExecConfig {
        executor: ExecutorKind::Parallel,
        threads: 1,
        trace: false,
        sequential_rule: false,
    };
    let mut gas = 0u64;
    // PAREX_BENCH_ONLY=revm|sequential|parallel|parallel1 runs only that executor (for profiling).
    let only = std::env::var("PAREX_BENCH_ONLY").ok();
    let only_revm = only.as_deref() == Some("revm");
    let only_sequential = only.as_deref() == Some("sequential");
    let only_parallel = only.as_deref() == Some("parallel");
    let only_parallel1 = only.as_deref() == Some("parallel1");
    for _ in 0..iterations {
        if only_parallel1 {
            let started = Instant::now();
            let ours = execute_prepared(&prepared, &state, &parallel1).expect("valid");
            par1_times.push(started.elapsed());
            gas = ours.gas_used;
            continue;
        }
        if only_parallel {
            let started = Instant::now();
            let ours = execute_prepared(&prepared, &state, &parallel).expect("valid");
            par_times.push(started.elapsed());
            gas = ours.gas_used;
            continue;
        }
        if only_sequential {
            let started = Instant::now();
            let ours = execute_prepared(&prepared, &state, &sequential).expect("valid");
            seq_times.push(started.elapsed());
            gas = ours.gas_used;
            continue;
        }
        // Plain revm.
        let started = Instant::now();
        let revm_gas = plain_revm_block(&prepared, &state);
        revm_times.push(started.elapsed());
        if only_revm {
            gas = revm_gas;
            continue;
        }

        let started = Instant::now();
        let ours = execute_prepared(&prepared, &state, &sequential).expect("valid");
        seq_times.push(started.elapsed());
        assert_eq!(ours.gas_used, revm_gas, "gas differs from plain revm");
        gas = ours.gas_used;

        let started = Instant::now();
        let ours = execute_prepared(&prepared, &state, &parallel).expect("valid");
        par_times.push(started.elapsed());
        assert_eq!(ours.gas_used, revm_gas);

        let started = Instant::now();
        let ours = execute_prepared(&prepared, &state, &parallel1).expect("valid");
        par1_times.push(started.elapsed());
        assert_eq!(ours.gas_used, revm_gas);
    }
    // Each series prints only when it was measured (the profiling modes run one executor).
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied()
    };
    let mgas = |d: Duration| gas as f64 / d.as_secs_f64() / 1e6;
    println!(
        "block: {} txs, {gas} gas, {iterations} iterations (median)",
        prepared.len()
    );
    let (r, s) = (median(revm_times), median(seq_times));
    let series = [
        ("plain revm (CacheDB):".to_string(), r),
        ("parex sequential:".to_string(), s),
        ("parex parallel x1:".to_string(), median(par1_times)),
        (
            format!("parex parallel x{parallel_threads}:"),
            median(par_times),
        ),
    ];
    for (label, time) in series {
        if let Some(time) = time {
            println!(
                "{label:<26}{:>8.1} Mgas/s  {:>8.2} ms",
                mgas(time),
                time.as_secs_f64() * 1e3
            );
        }
    }
    if let (Some(r), Some(s)) = (r, s) {
        println!(
            "sequential / plain revm time ratio: {:.3}",
            s.as_secs_f64() / r.as_secs_f64()
        );
    }
}
