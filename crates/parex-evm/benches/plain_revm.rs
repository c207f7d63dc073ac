//! Plain revm (CacheDB + transact_commit over pre-recovered transactions) against the parex
//! sequential executor on the same block: ~2,000 ETH transfers and ~2,000 calls to a
//! storage-writing contract. Decoding and sender recovery are excluded from both timings
//! (`PreparedBlock`). Prints Mgas/s for each and the ratio.
//!
//! `cargo bench -p parex-evm --bench plain_revm` (add `-- <iterations>` to change the count).

use parex_evm::revm::context::Context;
use parex_evm::revm::database::CacheDB;
use parex_evm::revm::database_interface::DatabaseRef;
use parex_evm::revm::state::{AccountInfo as RevmAccountInfo, Bytecode};
use parex_evm::revm::{ExecuteCommitEvm, MainBuilder, MainContext};
use parex_evm::sign::{address_of, sign_eip1559, TxRequest};
use parex_evm::{execute_prepared, ExecConfig, ExecutorKind, PreparedBlock};
use parex_primitives::{Address, BlockEnv, Bytes, Fork, B256, U256};
use parex_state::{InMemoryState, StateViewRef};
use std::time::{Duration, Instant};

const TRANSFERS: u32 = 2_000;
const CALLS: u32 = 2_000;

fn secret(i: u32) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[0] = 0x22;
    s[28..].copy_from_slice(&(i + 1).to_be_bytes());
    s
}

struct Base<'a>(&'a InMemoryState);

impl DatabaseRef for Base<'_> {
    type Error = std::convert::Infallible;
    fn basic_ref(&self, address: Address) -> Result<Option<RevmAccountInfo>, Self::Error> {
        Ok(self.0.account(&address).ok().flatten().map(|info| {
            let code = self
                .0
                .code_by_hash(&info.code_hash)
                .ok()
                .flatten()
                .unwrap_or_default();
            RevmAccountInfo::new(
                info.balance,
                info.nonce,
                info.code_hash,
                Bytecode::new_raw(code),
            )
        }))
    }
    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(Bytecode::new_raw(
            self.0
                .code_by_hash(&code_hash)
                .ok()
                .flatten()
                .unwrap_or_default(),
        ))
    }
    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.0.storage(&address, &index).unwrap_or_default())
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.0.block_hash(number).unwrap_or_default())
    }
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
    // PUSH1 0x20 CALLDATALOAD PUSH1 0 CALLDATALOAD SSTORE STOP
    state.insert_account(
        store,
        U256::ZERO,
        1,
        Some(Bytes::from_static(&[
            0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x55, 0x00,
        ])),
    );
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
    };
    let parallel_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let parallel = ExecConfig {
        executor: ExecutorKind::Parallel,
        threads: parallel_threads,
        trace: false,
    };

    let mut revm_times = Vec::new();
    let mut seq_times = Vec::new();
    let mut par_times = Vec::new();
    let mut par1_times = Vec::new();
    let parallel1 = ExecConfig {
        executor: ExecutorKind::Parallel,
        threads: 1,
        trace: false,
    };
    let mut gas = 0u64;
    // PAREX_BENCH_ONLY=sequential|parallel runs only that executor (for profiling).
    let only_sequential = std::env::var("PAREX_BENCH_ONLY").is_ok_and(|v| v == "sequential");
    let only_parallel = std::env::var("PAREX_BENCH_ONLY").is_ok_and(|v| v == "parallel");
    for _ in 0..iterations {
        if only_parallel {
            let started = Instant::now();
            let ours = execute_prepared(&prepared, &state, &parallel).expect("valid");
            par_times.push(started.elapsed());
            seq_times.push(started.elapsed());
            revm_times.push(started.elapsed());
            gas = ours.gas_used;
            continue;
        }
        if only_sequential {
            let started = Instant::now();
            let ours = execute_prepared(&prepared, &state, &sequential).expect("valid");
            seq_times.push(started.elapsed());
            revm_times.push(started.elapsed());
            par_times.push(started.elapsed());
            gas = ours.gas_used;
            continue;
        }
        // Plain revm.
        let started = Instant::now();
        let mut evm = Context::mainnet()
            .with_db(CacheDB::new(Base(&state)))
            .with_block(prepared.revm_block_env().clone())
            .with_cfg(prepared.revm_cfg_env().clone())
            .build_mainnet();
        let mut revm_gas = 0u64;
        for tx in prepared.revm_txs() {
            let result = evm.transact_commit(tx.clone()).expect("valid");
            revm_gas += result.tx_gas_used();
        }
        revm_times.push(started.elapsed());
        drop(evm);

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
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mgas = |d: Duration| gas as f64 / d.as_secs_f64() / 1e6;
    let (r, s, p) = (
        median(&mut revm_times),
        median(&mut seq_times),
        median(&mut par_times),
    );
    println!(
        "block: {} txs, {gas} gas, {iterations} iterations (median)",
        prepared.len()
    );
    println!(
        "plain revm (CacheDB):     {:>8.1} Mgas/s  {:>8.2} ms",
        mgas(r),
        r.as_secs_f64() * 1e3
    );
    println!(
        "parex sequential:         {:>8.1} Mgas/s  {:>8.2} ms",
        mgas(s),
        s.as_secs_f64() * 1e3
    );
    if !par1_times.is_empty() {
        let p1 = median(&mut par1_times);
        println!(
            "parex parallel x1 :        {:>8.1} Mgas/s  {:>8.2} ms",
            mgas(p1),
            p1.as_secs_f64() * 1e3
        );
    }
    println!(
        "parex parallel x{parallel_threads:<2}:       {:>8.1} Mgas/s  {:>8.2} ms",
        mgas(p),
        p.as_secs_f64() * 1e3
    );
    println!(
        "sequential / plain revm time ratio: {:.3}",
        s.as_secs_f64() / r.as_secs_f64()
    );
}
