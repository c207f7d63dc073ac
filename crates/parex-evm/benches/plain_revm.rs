//! Plain revm against the parex sequential executor on the same block: ~2,000 ETH transfers and
//! ~2,000 calls to a storage-writing contract. Decoding and sender recovery are excluded from
//! every timing (`PreparedBlock`). Plain revm runs twice:
//! - over a `CacheDB`, `transact_commit` per transaction: execution alone, with no block output;
//! - over revm's `State` with bundle updates, keeping each transaction's receipt fields (status,
//!   gas, logs) and ending with `merge_transitions` and `take_bundle`: the block's post-state
//!   diff and receipts, the output a node needs and the parex executors return.
//!
//! Prints Mgas/s for each and the ratios, and the machine's own bound: the throughput of as
//! many sequential copies of the block at once as the parallel run has threads.
//!
//! `cargo bench -p parex-evm --bench plain_revm` (add `-- <iterations>` to change the count).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{secret, store_code, Base};
use parex_evm::machine::execute_copies;
use parex_evm::revm::context::Context;
use parex_evm::revm::database::states::bundle_state::BundleRetention;
use parex_evm::revm::database::{CacheDB, State};
use parex_evm::revm::{ExecuteCommitEvm, MainBuilder, MainContext};
use parex_evm::sign::{address_of, sign_eip1559, TxRequest};
use parex_evm::{execute_prepared, ExecConfig, ExecutorKind, PreparedBlock};
use parex_primitives::{Address, BlockEnv, Bytes, Fork, U256};
use parex_state::InMemoryState;
use std::num::NonZeroUsize;
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

/// Plain revm producing a block's output: revm's `State` with bundle updates (the post-state
/// diff) and each transaction's receipt fields; returns the gas and the number of changed
/// accounts.
#[inline(never)]
fn plain_revm_bundle_block(prepared: &PreparedBlock, state: &InMemoryState) -> (u64, usize) {
    let db = State::builder()
        .with_database_ref(Base(state))
        .with_bundle_update()
        .build();
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(prepared.revm_block_env().clone())
        .with_cfg(prepared.revm_cfg_env().clone())
        .build_mainnet();
    let mut gas = 0u64;
    let mut receipts = Vec::with_capacity(prepared.len());
    for tx in prepared.revm_txs() {
        let result = evm.transact_commit(tx.clone()).expect("valid");
        gas += result.tx_gas_used();
        receipts.push((result.is_success(), gas, result.into_logs()));
    }
    evm.ctx
        .journaled_state
        .database
        .merge_transitions(BundleRetention::PlainState);
    let bundle = evm.ctx.journaled_state.database.take_bundle();
    std::hint::black_box(&receipts);
    (gas, bundle.state.len())
}

/// Runs `run`, adding its wall time to `times`.
fn timed<R>(times: &mut Vec<Duration>, run: impl FnOnce() -> R) -> R {
    let started = Instant::now();
    let result = run();
    times.push(started.elapsed());
    result
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
        ..ExecConfig::default()
    };
    let parallel_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let parallel = ExecConfig {
        threads: parallel_threads,
        ..ExecConfig::default()
    };
    // The default: Block-STM on one thread, no sequential rule.
    let parallel1 = ExecConfig::default();

    let mut revm_times = Vec::new();
    let mut bundle_times = Vec::new();
    let mut seq_times = Vec::new();
    let mut par_times = Vec::new();
    let mut par1_times = Vec::new();
    let mut machine_speedups: Vec<f64> = Vec::new();
    let mut gas = 0u64;
    // PAREX_BENCH_ONLY=revm|bundle|sequential|parallel|parallel1|machine runs only that
    // executor (for profiling); `machine` is the sequential executor on as many copies of the
    // block at once as the parallel run has threads (`parex_evm::machine`).
    let only = std::env::var("PAREX_BENCH_ONLY").ok();
    let runs = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let ours = |config: &ExecConfig| execute_prepared(&prepared, &state, config).expect("valid");
    for _ in 0..iterations {
        let revm_gas =
            runs("revm").then(|| timed(&mut revm_times, || plain_revm_block(&prepared, &state)));
        let bundle = runs("bundle").then(|| {
            timed(&mut bundle_times, || {
                plain_revm_bundle_block(&prepared, &state)
            })
        });
        let seq = runs("sequential").then(|| timed(&mut seq_times, || ours(&sequential)));
        let par = runs("parallel").then(|| timed(&mut par_times, || ours(&parallel)));
        let par1 = runs("parallel1").then(|| timed(&mut par1_times, || ours(&parallel1)));
        if runs("machine") {
            let copies = NonZeroUsize::new(parallel_threads).unwrap_or(NonZeroUsize::MIN);
            let timing = execute_copies(&prepared, &state, copies).expect("valid");
            machine_speedups.push(timing.speedup());
        }

        let measured = [
            revm_gas,
            bundle.map(|(gas, _)| gas),
            seq.as_ref().map(|r| r.gas_used),
            par.as_ref().map(|r| r.gas_used),
            par1.as_ref().map(|r| r.gas_used),
        ];
        let mut gases = measured.into_iter().flatten();
        gas = gases.next().unwrap_or(gas);
        assert!(gases.all(|g| g == gas), "gas differs between executors");
        if let (Some((_, bundle_accounts)), Some(seq)) = (bundle, &seq) {
            // Both count the beneficiary: revm credits it per transaction, parex once.
            assert_eq!(
                seq.changes.len(),
                bundle_accounts,
                "changed accounts differ"
            );
        }
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
    let b = median(bundle_times);
    let series = [
        ("plain revm (CacheDB):".to_string(), r),
        ("plain revm (State+bundle):".to_string(), b),
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
    machine_speedups.sort_by(f64::total_cmp);
    if let Some(machine) = machine_speedups.get(machine_speedups.len() / 2) {
        println!(
            "machine: {parallel_threads} sequential copies at once against one alone: {machine:.2}x"
        );
    }
    if let (Some(r), Some(s)) = (r, s) {
        println!(
            "sequential / plain revm (CacheDB) time ratio: {:.3}",
            s.as_secs_f64() / r.as_secs_f64()
        );
    }
    if let (Some(b), Some(s)) = (b, s) {
        println!(
            "sequential / plain revm (State+bundle) time ratio: {:.3}",
            s.as_secs_f64() / b.as_secs_f64()
        );
    }
}
