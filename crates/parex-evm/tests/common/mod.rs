//! Shared test fixtures: keys, hand-assembled contracts, a seeded workload generator, and plain
//! revm (CacheDB + transact_commit) as the reference.
#![allow(dead_code)]

use parex_evm::revm::context::Context;
use parex_evm::revm::context_interface::result::ExecutionResult;
use parex_evm::revm::database::{AccountState, CacheDB};
use parex_evm::revm::database_interface::DatabaseRef;
use parex_evm::revm::state::{AccountInfo as RevmAccountInfo, Bytecode};
use parex_evm::revm::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};
use parex_evm::sign::{address_of, sign_eip1559, sign_eip2930, sign_legacy, TxRequest};
use parex_evm::{execute_block, BlockResult, ExecConfig, ExecutorKind, PreparedBlock};
use parex_primitives::{
    keccak256, AccountChange, AccountInfo, Address, BlockEnv, Bytes, Fork, StateChanges, B256, U256,
};
use parex_state::{AccountDump, InMemoryState, StateViewRef};
use std::collections::BTreeMap;

pub const CHAIN_ID: u64 = 1;
pub const BASE_FEE: u64 = 7;

/// Deterministic secret key number `i` (never zero, always below the curve order).
pub fn secret(i: u32) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[0] = 0x11;
    s[28..].copy_from_slice(&(i + 1).to_be_bytes());
    s
}

pub fn addr(i: u32) -> Address {
    address_of(&secret(i)).expect("valid test key")
}

/// A fixed address with no key (contracts, recipients).
pub fn fixed(tag: u8) -> Address {
    let mut a = [0u8; 20];
    a[0] = 0xC0;
    a[19] = tag;
    Address::from(a)
}

pub fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(1_000_000_000_000_000_000u128)
}

// ---- Hand-assembled contracts -------------------------------------------------------------

/// Counter: slot0 += 1.
/// `PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE STOP`
pub fn counter_code() -> Bytes {
    Bytes::from_static(&[0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x00])
}

/// Keyed store: SSTORE(calldata[0..32], calldata[32..64]).
/// `PUSH1 0x20 CALLDATALOAD PUSH1 0 CALLDATALOAD SSTORE STOP`
pub fn store_code() -> Bytes {
    Bytes::from_static(&[0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x55, 0x00])
}

/// Coinbase-balance reader: slot0 = BALANCE(COINBASE).
/// `COINBASE BALANCE PUSH1 0 SSTORE STOP`
pub fn coinbase_reader_code() -> Bytes {
    Bytes::from_static(&[0x41, 0x31, 0x60, 0x00, 0x55, 0x00])
}

/// Logger: LOG0 of CALLVALUE as one 32-byte word.
/// `CALLVALUE PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 LOG0 STOP`
pub fn logger_code() -> Bytes {
    Bytes::from_static(&[0x34, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xa0, 0x00])
}

/// Reverter: SSTORE(0, 1) then REVERT(0, 0).
/// `PUSH1 1 PUSH1 0 SSTORE PUSH1 0 PUSH1 0 REVERT`
pub fn reverter_code() -> Bytes {
    Bytes::from_static(&[0x60, 0x01, 0x60, 0x00, 0x55, 0x60, 0x00, 0x60, 0x00, 0xfd])
}

/// Spinner: loops until out of gas.
/// `JUMPDEST PUSH1 0 JUMP`
pub fn spinner_code() -> Bytes {
    Bytes::from_static(&[0x5b, 0x60, 0x00, 0x56])
}

/// Destructor: SELFDESTRUCT to the caller.
/// `CALLER SELFDESTRUCT`
pub fn destructor_code() -> Bytes {
    Bytes::from_static(&[0x33, 0xff])
}

/// Metamorphic child runtime: slot1 += 1; with CALLVALUE > 0, SELFDESTRUCT to the caller.
/// `PUSH1 1 SLOAD PUSH1 1 ADD PUSH1 1 SSTORE CALLVALUE PUSH1 0x0e JUMPI STOP
///  JUMPDEST CALLER SELFDESTRUCT`
pub fn child_runtime() -> Vec<u8> {
    vec![
        0x60, 0x01, 0x54, 0x60, 0x01, 0x01, 0x60, 0x01, 0x55, 0x34, 0x60, 0x0e, 0x57, 0x00, 0x5b,
        0x33, 0xff,
    ]
}

/// Init code returning `runtime` (at most 255 bytes):
/// `PUSH1 len PUSH1 12 PUSH1 0 CODECOPY PUSH1 len PUSH1 0 RETURN` ++ runtime
pub fn init_code(runtime: &[u8]) -> Vec<u8> {
    let len = runtime.len() as u8;
    let mut code = vec![
        0x60, len, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, len, 0x60, 0x00, 0xf3,
    ];
    code.extend_from_slice(runtime);
    code
}

/// CREATE2 factory: on any call, CREATE2(value 0, salt 0) of the child init code it carries.
/// `PUSH1 n PUSH1 18 PUSH1 0 CODECOPY PUSH1 0 PUSH1 n PUSH1 0 PUSH1 0 CREATE2 POP STOP` ++ init
pub fn factory_code() -> Bytes {
    let init = init_code(&child_runtime());
    let n = init.len() as u8;
    let mut code = vec![
        0x60, n, 0x60, 0x12, 0x60, 0x00, 0x39, 0x60, 0x00, 0x60, n, 0x60, 0x00, 0x60, 0x00, 0xf5,
        0x50, 0x00,
    ];
    code.extend_from_slice(&init);
    Bytes::from(code)
}

/// The address the factory's CREATE2 deploys to.
pub fn factory_child(factory: Address) -> Address {
    let init = init_code(&child_runtime());
    factory.create2(B256::ZERO, keccak256(&init))
}

// ---- Fixtures ------------------------------------------------------------------------------

pub const COUNTER: u8 = 1;
pub const STORE: u8 = 2;
pub const COINBASE_READER: u8 = 3;
pub const LOGGER: u8 = 4;
pub const REVERTER: u8 = 5;
pub const SPINNER: u8 = 6;
pub const DESTRUCTOR: u8 = 7;
pub const FACTORY: u8 = 8;
pub const HOT: u8 = 9;

pub const SENDERS: u32 = 24;
/// Sender index used as the block beneficiary.
pub const BENEFICIARY_KEY: u32 = 0;

pub fn env(fork: Fork) -> BlockEnv {
    BlockEnv {
        number: 100,
        timestamp: 1_000,
        beneficiary: addr(BENEFICIARY_KEY),
        base_fee: BASE_FEE,
        gas_limit: 60_000_000,
        prevrandao: B256::repeat_byte(7),
        difficulty: U256::from(1_000),
        excess_blob_gas: (fork >= Fork::Cancun).then_some(0),
        chain_id: CHAIN_ID,
        fork,
    }
}

pub fn genesis() -> InMemoryState {
    let mut state = InMemoryState::new();
    for i in 0..SENDERS {
        state.insert_account(addr(i), ether(1_000), 0, None);
    }
    state.insert_account(fixed(COUNTER), U256::ZERO, 1, Some(counter_code()));
    state.insert_account(fixed(STORE), U256::ZERO, 1, Some(store_code()));
    state.insert_account(
        fixed(COINBASE_READER),
        U256::ZERO,
        1,
        Some(coinbase_reader_code()),
    );
    state.insert_account(fixed(LOGGER), U256::ZERO, 1, Some(logger_code()));
    state.insert_account(fixed(REVERTER), U256::ZERO, 1, Some(reverter_code()));
    state.insert_account(fixed(SPINNER), U256::ZERO, 1, Some(spinner_code()));
    state.insert_account(fixed(DESTRUCTOR), ether(3), 1, Some(destructor_code()));
    state.insert_storage(fixed(DESTRUCTOR), U256::from(1), U256::from(5));
    state.insert_account(fixed(FACTORY), U256::ZERO, 1, Some(factory_code()));
    state.insert_account(fixed(HOT), ether(1), 0, None);
    state.insert_storage(fixed(STORE), U256::from(3), U256::from(33));
    for n in 90..100 {
        state.insert_block_hash(n, B256::repeat_byte(n as u8));
    }
    state
}

/// Signs a request in one of the three envelope kinds, chosen by `kind % 3`.
pub fn sign(kind: u8, key: u32, request: &TxRequest) -> Bytes {
    let secret = secret(key);
    match kind % 3 {
        0 => sign_legacy(Some(CHAIN_ID), &secret, request),
        1 => sign_eip2930(CHAIN_ID, &secret, request, Default::default()),
        _ => sign_eip1559(CHAIN_ID, &secret, request),
    }
    .expect("signing")
}

pub fn call(nonce: u64, to: Address, value: U256, input: Vec<u8>, gas_limit: u64) -> TxRequest {
    TxRequest {
        nonce,
        to: Some(to),
        value,
        input: Bytes::from(input),
        gas_limit,
        max_fee_per_gas: BASE_FEE as u128 + 3,
        max_priority_fee_per_gas: 2,
    }
}

pub fn word(n: u64) -> [u8; 32] {
    U256::from(n).to_be_bytes::<32>()
}

/// A small xorshift generator: deterministic workloads without extra dependencies.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random valid block over [`genesis`]: transfers (to a hot account, to fresh addresses, to
/// and from the beneficiary), hot counter calls, keyed stores, coinbase reads, logs, reverts,
/// out-of-gas, creations; senders skewed towards a few hot ones with consecutive nonces.
pub fn random_block(seed: u64, len: usize, fork: Fork) -> Vec<Bytes> {
    let kinds = if fork >= Fork::London {
        3
    } else if fork >= Fork::Berlin {
        2
    } else {
        1
    };
    let mut rng = Rng::new(seed);
    let mut nonces = vec![0u64; SENDERS as usize];
    let mut txs = Vec::with_capacity(len);
    for _ in 0..len {
        let key = if rng.below(3) == 0 {
            rng.below(3) as u32
        } else {
            rng.below(SENDERS as u64) as u32
        };
        let nonce = nonces[key as usize];
        nonces[key as usize] += 1;
        let kind = rng.below(kinds) as u8;
        let small = U256::from(1 + rng.below(1_000_000));
        let request = match rng.below(13) {
            0 | 1 => call(nonce, fixed(HOT), small, vec![], 21_000),
            2 => call(
                nonce,
                fixed(0x40 + rng.below(8) as u8),
                small,
                vec![],
                21_000,
            ),
            3 => call(nonce, addr(BENEFICIARY_KEY), small, vec![], 21_000),
            4 | 5 => call(nonce, fixed(COUNTER), U256::ZERO, vec![], 60_000),
            6 => {
                let mut input = word(rng.below(6)).to_vec();
                input.extend_from_slice(&word(rng.below(3)));
                call(nonce, fixed(STORE), U256::ZERO, input, 60_000)
            }
            7 => call(nonce, fixed(COINBASE_READER), U256::ZERO, vec![], 60_000),
            8 => call(nonce, fixed(LOGGER), small, vec![], 60_000),
            9 => call(nonce, fixed(REVERTER), U256::ZERO, vec![], 60_000),
            10 => call(nonce, fixed(SPINNER), U256::ZERO, vec![], 30_000),
            11 => {
                let mut r = call(
                    nonce,
                    Address::ZERO,
                    U256::ZERO,
                    init_code(&counter_code()),
                    120_000,
                );
                r.to = None;
                r
            }
            _ => call(
                nonce,
                addr(rng.below(SENDERS as u64) as u32),
                small,
                vec![],
                21_000,
            ),
        };
        txs.push(sign(kind, key, &request));
    }
    txs
}

// ---- Execution and the plain-revm reference ------------------------------------------------

pub fn run(
    env: &BlockEnv,
    txs: &[Bytes],
    state: &InMemoryState,
    executor: ExecutorKind,
    threads: usize,
) -> BlockResult {
    let config = ExecConfig {
        executor,
        threads,
        trace: false,
        trace_runs: 1,
        sequential_rule: false,
    };
    execute_block(env, txs, state, &config)
        .unwrap_or_else(|e| panic!("{executor:?} x{threads}: {e}"))
}

/// pre-block state for revm.
pub struct Base<'a>(pub &'a InMemoryState);

impl DatabaseRef for Base<'_> {
    type Error = std::convert::Infallible;

    fn basic_ref(&self, address: Address) -> Result<Option<RevmAccountInfo>, Self::Error> {
        Ok(self.0.account(&address).expect("in-memory").map(|info| {
            let code = self
                .0
                .code_by_hash(&info.code_hash)
                .expect("in-memory")
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
                .expect("in-memory")
                .unwrap_or_default(),
        ))
    }
    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.0.storage(&address, &index).expect("in-memory"))
    }
    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.0.block_hash(number).expect("in-memory"))
    }
}

pub struct RevmOutcome {
    pub results: Vec<ExecutionResult>,
    pub changes: StateChanges,
}

/// Plain revm over the same decoded transactions: CacheDB, transact_commit one by one, fees
/// paid to the beneficiary by revm's own handler.
pub fn plain_revm(env: &BlockEnv, txs: &[Bytes], state: &InMemoryState) -> RevmOutcome {
    let prepared = PreparedBlock::new(env, txs, 1).expect("prepare");
    let ctx = Context::mainnet()
        .with_db(CacheDB::new(Base(state)))
        .with_block(prepared.revm_block_env().clone())
        .with_cfg(prepared.revm_cfg_env().clone());
    let mut evm = ctx.build_mainnet();
    let mut results = Vec::new();
    // transact + commit is transact_commit; the split lets us see which accounts lost their
    // storage (CacheDB forgets it when a destroyed account is touched again).
    let mut cleared = std::collections::HashSet::new();
    for tx in prepared.revm_txs() {
        let out = evm
            .transact(tx.clone())
            .expect("plain revm rejected a transaction");
        for (address, account) in &out.state {
            if account.is_touched() && (account.is_selfdestructed() || account.is_created()) {
                cleared.insert(*address);
            }
        }
        evm.commit(out.state);
        results.push(out.result);
    }
    let db = &evm.ctx.journaled_state.database;
    let mut changes = StateChanges::new();
    for (address, account) in &db.cache.accounts {
        let change = match account.account_state {
            AccountState::None => continue,
            AccountState::NotExisting => AccountChange {
                info: None,
                ..Default::default()
            },
            AccountState::Touched | AccountState::StorageCleared => {
                let code = db
                    .cache
                    .contracts
                    .get(&account.info.code_hash)
                    .map(|c| c.original_bytes());
                AccountChange {
                    info: Some(AccountInfo {
                        balance: account.info.balance,
                        nonce: account.info.nonce,
                        code_hash: account.info.code_hash,
                    }),
                    code,
                    storage_cleared: account.account_state == AccountState::StorageCleared
                        || cleared.contains(address),
                    storage: account.storage.iter().map(|(k, v)| (*k, *v)).collect(),
                }
            }
        };
        changes.insert(*address, change);
    }
    RevmOutcome { results, changes }
}

/// The post-block state as a comparable list: empty accounts (EIP-161: same as absent)
/// dropped.
pub fn post_state(base: &InMemoryState, changes: &StateChanges) -> Vec<AccountDump> {
    let mut post = base.clone();
    post.apply(changes);
    post.accounts()
        .into_iter()
        .filter(|(_, info, storage)| !(info.is_empty() && storage.is_empty()))
        .collect()
}

/// Asserts that `ours` equals plain revm's outcome: receipts and post-state.
pub fn assert_same_as_revm(
    env: &BlockEnv,
    txs: &[Bytes],
    state: &InMemoryState,
    ours: &BlockResult,
) {
    let reference = plain_revm(env, txs, state);
    assert_eq!(
        ours.receipts.len(),
        reference.results.len(),
        "receipt count"
    );
    for (i, (receipt, result)) in ours.receipts.iter().zip(&reference.results).enumerate() {
        assert_eq!(
            receipt.success,
            result.is_success(),
            "tx {i} status: {result:?}"
        );
        assert_eq!(receipt.gas_used, result.tx_gas_used(), "tx {i} gas used");
        assert_eq!(receipt.logs.as_slice(), result.logs(), "tx {i} logs");
        assert_eq!(
            receipt.contract_address,
            result.created_address(),
            "tx {i} contract address"
        );
    }
    let ours_post = post_state(state, &ours.changes);
    let revm_post = post_state(state, &reference.changes);
    if ours_post != revm_post {
        let a: BTreeMap<_, _> = ours_post.iter().map(|(a, i, s)| (*a, (i, s))).collect();
        let b: BTreeMap<_, _> = revm_post.iter().map(|(a, i, s)| (*a, (i, s))).collect();
        for address in a.keys().chain(b.keys()) {
            if a.get(address) != b.get(address) {
                eprintln!(
                    "{address}: ours {:?}\n          revm {:?}",
                    a.get(address),
                    b.get(address)
                );
            }
        }
        panic!("post-state differs from plain revm");
    }
}
