//! Block processing end to end: blocks built by `build_block` are accepted by `execute_block`
//! on the parallel and the sequential executor alike; every tampered commitment is rejected
//! with its own exception; rewards, withdrawals and fork transitions follow the rules.

use alloy_consensus::Header;
use alloy_eips::eip4895::Withdrawal;
use parex_chain::{
    block_exception, build_block, execute_block, Block, ChainError, ChainSpec, Exception,
    ExecutedBlock,
};
use parex_evm::sign::{address_of, sign_eip1559, sign_legacy, TxRequest};
use parex_evm::{ExecConfig, ExecutorKind};
use parex_primitives::{Address, Bytes, ForkSchedule, B256, U256};
use parex_state::{InMemoryState, StateViewRef};
use proptest::prelude::*;

const ETHER: u128 = 1_000_000_000_000_000_000;

fn secret(i: u8) -> [u8; 32] {
    let mut s = [0x11u8; 32];
    s[31] = i + 1;
    s
}

fn sender(i: u8) -> Address {
    address_of(&secret(i)).unwrap()
}

fn funded(senders: u8) -> InMemoryState {
    let mut state = InMemoryState::new();
    for i in 0..senders {
        state.insert_account(sender(i), U256::from(100 * ETHER), 0, None);
    }
    state
}

fn spec(schedule: &str) -> ChainSpec {
    ChainSpec::new(1, schedule.parse::<ForkSchedule>().unwrap())
}

/// A genesis header for `state` under `spec`'s first fork.
fn genesis(spec: &ChainSpec, state: &InMemoryState, timestamp: u64) -> Header {
    use parex_primitives::Fork;
    let fork = spec.fork_at(0, timestamp);
    Header {
        number: 0,
        timestamp,
        gas_limit: 30_000_000,
        difficulty: if fork >= Fork::Paris {
            U256::ZERO
        } else {
            U256::from(131_072)
        },
        base_fee_per_gas: (fork >= Fork::London).then_some(1_000_000_000),
        withdrawals_root: (fork >= Fork::Shanghai).then_some(alloy_trie_empty()),
        blob_gas_used: (fork >= Fork::Cancun).then_some(0),
        excess_blob_gas: (fork >= Fork::Cancun).then_some(0),
        parent_beacon_block_root: (fork >= Fork::Cancun).then_some(B256::ZERO),
        requests_hash: (fork >= Fork::Prague).then_some(B256::ZERO),
        state_root: parex_commitment::state_root(state),
        ..Default::default()
    }
}

fn alloy_trie_empty() -> B256 {
    parex_commitment::withdrawals_root(&[])
}

fn config(executor: ExecutorKind, threads: usize) -> ExecConfig {
    ExecConfig {
        executor,
        threads,
        trace: false,
        trace_runs: 1,
        sequential_rule: false,
    }
}

fn parallel() -> ExecConfig {
    config(ExecutorKind::Parallel, 4)
}

fn template(beneficiary: Address, timestamp: u64, transactions: Vec<Bytes>) -> Block {
    Block {
        header: Header {
            beneficiary,
            timestamp,
            gas_limit: 30_000_000,
            ..Default::default()
        },
        transactions,
        ommers: Vec::new(),
        withdrawals: None,
    }
}

fn transfer(from: u8, nonce: u64, to: Address, value: u128) -> Bytes {
    let request = TxRequest {
        nonce,
        to: Some(to),
        value: U256::from(value),
        input: Bytes::new(),
        gas_limit: 21_000,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
    };
    sign_eip1559(1, &secret(from), &request).unwrap()
}

/// Builds `block` on `parent`, imports what was built, and checks the import equals the
/// build (and, sequentially, the same outcome).
fn build_and_import(
    spec: &ChainSpec,
    parent: &Header,
    block: &Block,
    state: &InMemoryState,
) -> (Block, ExecutedBlock) {
    let built = build_block(spec, parent, block, state, &parallel()).expect("build");
    let sealed = Block {
        header: built.header.clone(),
        ..block.clone()
    };
    let sealed = Block {
        withdrawals: sealed
            .withdrawals
            .or_else(|| (built.header.withdrawals_root.is_some()).then(Vec::new)),
        ..sealed
    };
    assert_eq!(
        Block::decode(&sealed.encode()).unwrap(),
        sealed,
        "RLP round trip"
    );
    let imported = execute_block(spec, parent, &sealed, state, &parallel()).expect("import");
    assert_eq!(imported.hash, built.hash);
    let sequential = execute_block(
        spec,
        parent,
        &sealed,
        state,
        &config(ExecutorKind::Sequential, 1),
    )
    .expect("sequential import");
    assert!(sequential.result.same_outcome(&imported.result));
    assert_eq!(sequential.hash, imported.hash);
    (sealed, imported)
}

/// A change that breaks one commitment of a sealed block.
type Tamper = Box<dyn Fn(&mut Block)>;

fn rejection(err: ChainError) -> Exception {
    err.exception()
        .unwrap_or_else(|| panic!("not a rejection: {err}"))
}

fn apply(state: &InMemoryState, executed: &ExecutedBlock) -> InMemoryState {
    let mut next = state.clone();
    next.apply(&executed.result.changes);
    next.insert_block_hash(executed.header.number, executed.hash);
    next
}

#[test]
fn frontier_rewards_pay_the_miner_and_the_ommers() {
    let spec = spec("Frontier");
    let state = funded(2);
    let genesis = genesis(&spec, &state, 0);
    let miner = Address::with_last_byte(0xaa);
    let uncle_miner = Address::with_last_byte(0xbb);

    let (_, first) = build_and_import(&spec, &genesis, &template(miner, 10, vec![]), &state);
    let state1 = apply(&state, &first);
    assert_eq!(
        state1.account(&miner).unwrap().unwrap().balance,
        U256::from(5 * ETHER)
    );

    // Block 2 names a sibling of block 1 as its ommer and carries a pre-EIP-155 transfer.
    let ommer = Header {
        number: 1,
        beneficiary: uncle_miner,
        parent_hash: genesis.hash_slow(),
        ..Default::default()
    };
    let request = TxRequest {
        nonce: 0,
        to: Some(Address::with_last_byte(0xcc)),
        value: U256::from(7),
        input: Bytes::new(),
        gas_limit: 21_000,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 1,
    };
    let tx = sign_legacy(None, &secret(0), &request).unwrap();
    let mut block = template(miner, 20, vec![tx]);
    block.ommers = vec![ommer];
    let (_, second) = build_and_import(&spec, &first.header, &block, &state1);
    let state2 = apply(&state1, &second);
    let reward = 5 * ETHER + 5 * ETHER / 32 + 21_000;
    assert_eq!(
        state2.account(&miner).unwrap().unwrap().balance,
        U256::from(5 * ETHER + reward)
    );
    // An ommer one block deep earns 7/8 of the reward.
    assert_eq!(
        state2.account(&uncle_miner).unwrap().unwrap().balance,
        U256::from(5 * ETHER * 7 / 8)
    );
    assert_eq!(
        state2
            .account(&Address::with_last_byte(0xcc))
            .unwrap()
            .unwrap()
            .balance,
        U256::from(7)
    );

    // Before Byzantium each receipt holds the state root after its transaction: recompute the
    // one root here from the transaction run alone, then the receipts root from it.
    let env = parex_chain::block_env(&spec, &second.header, parex_primitives::Fork::Frontier);
    let alone = parex_evm::execute_block(
        &env,
        &block.transactions,
        &state1,
        &config(ExecutorKind::Sequential, 1),
    )
    .unwrap();
    let mut after_tx = state1.clone();
    after_tx.apply(&alone.changes);
    let root = parex_commitment::state_root(&after_tx);
    assert_eq!(
        second.header.receipts_root,
        parex_commitment::receipts_root_with_post_states(&second.result.receipts, &[root])
    );
    assert_ne!(
        second.header.receipts_root,
        parex_commitment::receipts_root(&second.result.receipts)
    );
    let mut wrong = block.clone();
    wrong.header = second.header.clone();
    wrong.header.receipts_root = parex_commitment::receipts_root(&second.result.receipts);
    let err = execute_block(&spec, &first.header, &wrong, &state1, &parallel()).unwrap_err();
    assert_eq!(rejection(err), block_exception::INVALID_RECEIPTS_ROOT);

    // The difficulty is Ethash's: a wrong one is rejected.
    let mut wrong = block.clone();
    wrong.header = second.header.clone();
    wrong.header.difficulty += U256::from(1);
    let err = execute_block(&spec, &first.header, &wrong, &state1, &parallel()).unwrap_err();
    assert_eq!(rejection(err), block_exception::INVALID_DIFFICULTY);
}

#[test]
fn withdrawals_credit_create_and_delete() {
    let spec = spec("Shanghai");
    let empty = Address::with_last_byte(0x0e);
    let mut state = funded(3);
    state.insert_account(empty, U256::ZERO, 0, None);
    let genesis = genesis(&spec, &state, 0);
    let fresh = Address::with_last_byte(0xf0);
    let missing = Address::with_last_byte(0xf1);
    let withdrawal = |index: u64, address: Address, amount: u64| Withdrawal {
        index,
        validator_index: index,
        address,
        amount,
    };
    let mut block = template(
        Address::with_last_byte(0xaa),
        12,
        vec![
            transfer(0, 0, sender(1), 5),
            transfer(1, 0, sender(2), 6),
            transfer(2, 0, empty, 7),
        ],
    );
    block.withdrawals = Some(vec![
        withdrawal(0, fresh, 3),
        withdrawal(1, missing, 0),
        withdrawal(2, sender(0), 1),
    ]);
    let (sealed, executed) = build_and_import(&spec, &genesis, &block, &state);
    let after = apply(&state, &executed);
    assert_eq!(
        after.account(&fresh).unwrap().unwrap().balance,
        U256::from(3_000_000_000u64)
    );
    assert_eq!(after.account(&missing).unwrap(), None);
    assert_eq!(
        after.account(&empty).unwrap().unwrap().balance,
        U256::from(7)
    );

    // A zero withdrawal to an existing empty account deletes it (EIP-161).
    let mut state_with_empty = state.clone();
    let ghost = Address::with_last_byte(0x99);
    state_with_empty.insert_account(ghost, U256::ZERO, 0, None);
    let genesis2 = self::genesis(&spec, &state_with_empty, 0);
    let mut only = template(Address::with_last_byte(0xaa), 12, vec![]);
    only.withdrawals = Some(vec![withdrawal(0, ghost, 0)]);
    let (_, executed) = build_and_import(&spec, &genesis2, &only, &state_with_empty);
    assert_eq!(executed.result.changes[&ghost].info, None);

    // Tampered commitments, each with its own exception.
    let cases: Vec<(Tamper, Exception)> = vec![
        (
            Box::new(|b| b.header.state_root = B256::with_last_byte(1)),
            block_exception::INVALID_STATE_ROOT,
        ),
        (
            Box::new(|b| b.header.receipts_root = B256::with_last_byte(1)),
            block_exception::INVALID_RECEIPTS_ROOT,
        ),
        (
            Box::new(|b| b.header.gas_used += 1),
            block_exception::INVALID_GAS_USED,
        ),
        (
            Box::new(|b| b.header.base_fee_per_gas = Some(1)),
            block_exception::INVALID_BASEFEE_PER_GAS,
        ),
        (
            Box::new(|b| b.header.parent_hash = B256::with_last_byte(9)),
            block_exception::UNKNOWN_PARENT,
        ),
        (
            Box::new(|b| b.header.number = 5),
            block_exception::INVALID_BLOCK_NUMBER,
        ),
        (
            Box::new(|b| b.header.timestamp = 0),
            block_exception::INVALID_BLOCK_TIMESTAMP_OLDER_THAN_PARENT,
        ),
        (
            Box::new(|b| b.header.gas_limit = 60_000_000),
            block_exception::INVALID_GASLIMIT,
        ),
        (
            Box::new(|b| b.header.extra_data = Bytes::from(vec![0; 33])),
            block_exception::EXTRA_DATA_TOO_BIG,
        ),
        (
            Box::new(|b| b.transactions.pop().map(|_| ()).unwrap_or(())),
            block_exception::INVALID_TRANSACTIONS_ROOT,
        ),
        (
            Box::new(|b| b.withdrawals.as_mut().unwrap()[0].amount += 1),
            block_exception::INVALID_WITHDRAWALS_ROOT,
        ),
        (
            Box::new(|b| b.withdrawals = None),
            block_exception::INCORRECT_BLOCK_FORMAT,
        ),
        (
            Box::new(|b| b.header.blob_gas_used = Some(0)),
            block_exception::INCORRECT_BLOCK_FORMAT,
        ),
        (
            Box::new(|b| b.ommers.push(Header::default())),
            block_exception::IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS,
        ),
    ];
    for (tamper, expected) in cases {
        let mut bad = sealed.clone();
        tamper(&mut bad);
        let err = execute_block(&spec, &genesis, &bad, &state, &parallel()).unwrap_err();
        assert_eq!(rejection(err), expected);
    }
}

#[test]
fn a_transaction_error_rejects_the_block_with_its_name() {
    let spec = spec("Shanghai");
    let state = funded(1);
    let genesis = genesis(&spec, &state, 0);
    // Nonce 1 where 0 is due.
    let block = template(Address::ZERO, 12, vec![transfer(0, 1, sender(0), 1)]);
    let err = build_block(&spec, &genesis, &block, &state, &parallel()).unwrap_err();
    assert_eq!(
        err.exception().unwrap().name(),
        "TransactionException.NONCE_MISMATCH_TOO_HIGH"
    );
    let block = template(
        Address::ZERO,
        12,
        vec![transfer(0, 0, sender(0), 1000 * ETHER)],
    );
    let err = build_block(&spec, &genesis, &block, &state, &parallel()).unwrap_err();
    assert_eq!(
        err.exception().unwrap().name(),
        "TransactionException.INSUFFICIENT_ACCOUNT_FUNDS"
    );
}

#[test]
fn transition_forks_switch_rules_by_timestamp() {
    let spec = spec("ShanghaiToCancunAtTime15k");
    let state = funded(1);
    let genesis = genesis(&spec, &state, 0);
    let (_, before) = build_and_import(
        &spec,
        &genesis,
        &template(Address::ZERO, 14_999, vec![]),
        &state,
    );
    assert_eq!(before.fork.name(), "Shanghai");
    assert_eq!(before.header.blob_gas_used, None);
    let state1 = apply(&state, &before);
    let (_, after) = build_and_import(
        &spec,
        &before.header,
        &template(Address::ZERO, 15_000, vec![transfer(0, 0, sender(0), 1)]),
        &state1,
    );
    assert_eq!(after.fork.name(), "Cancun");
    assert_eq!(after.header.blob_gas_used, Some(0));
    assert_eq!(after.header.excess_blob_gas, Some(0));

    // The same Cancun-time block without the Cancun fields is malformed.
    let shanghai = self::spec("Shanghai");
    let built = build_block(
        &shanghai,
        &before.header,
        &template(Address::ZERO, 15_000, vec![]),
        &state1,
        &parallel(),
    )
    .unwrap();
    let block = Block {
        header: built.header,
        transactions: vec![],
        ommers: vec![],
        withdrawals: Some(vec![]),
    };
    let err = execute_block(&spec, &before.header, &block, &state1, &parallel()).unwrap_err();
    assert_eq!(rejection(err), block_exception::INCORRECT_BLOCK_FORMAT);
}

#[test]
fn prague_needs_its_request_contracts() {
    let spec = spec("Prague");
    let state = funded(1);
    let genesis = genesis(&spec, &state, 0);
    let err = build_block(
        &spec,
        &genesis,
        &template(Address::ZERO, 12, vec![]),
        &state,
        &parallel(),
    )
    .unwrap_err();
    assert_eq!(rejection(err), block_exception::SYSTEM_CONTRACT_EMPTY);
}

#[test]
fn bad_rlp_is_a_structure_error() {
    for bytes in [&[][..], &[0xc0], &[0x80], &[0xc1, 0xc0], &[0xf9, 0xff]] {
        let err = Block::decode(bytes).unwrap_err();
        assert_eq!(rejection(err), block_exception::RLP_STRUCTURES_ENCODING);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random transfers among a few senders (nonce chains, shared recipients) and random
    /// withdrawals: the built block is accepted at every thread count with the same outcome.
    #[test]
    fn built_blocks_import_identically(
        transfers in prop::collection::vec((0u8..6, 0u8..8, 1u64..1_000_000), 1..40),
        withdrawals in prop::collection::vec((0u8..8, 0u64..5), 0..6),
    ) {
        let spec = spec("Cancun");
        let state = funded(6);
        let genesis = genesis(&spec, &state, 0);
        let mut nonces = [0u64; 6];
        let txs = transfers
            .iter()
            .map(|(from, to, value)| {
                let nonce = nonces[*from as usize];
                nonces[*from as usize] += 1;
                transfer(*from, nonce, sender(*to % 6).with_last_byte_or(*to), *value as u128)
            })
            .collect();
        let mut block = template(Address::with_last_byte(0xaa), 12, txs);
        block.withdrawals = Some(
            withdrawals
                .iter()
                .enumerate()
                .map(|(i, (to, amount))| Withdrawal {
                    index: i as u64,
                    validator_index: 1,
                    address: Address::with_last_byte(*to),
                    amount: *amount,
                })
                .collect(),
        );
        let (sealed, reference) = build_and_import(&spec, &genesis, &block, &state);
        for threads in [1, 2, 3] {
            let run = execute_block(&spec, &genesis, &sealed, &state, &config(ExecutorKind::Parallel, threads)).unwrap();
            prop_assert!(run.result.same_outcome(&reference.result));
            prop_assert_eq!(run.hash, reference.hash);
        }
    }
}

/// Recipients: the senders themselves for small indices, fresh addresses otherwise.
trait Recipient {
    fn with_last_byte_or(self, i: u8) -> Address;
}

impl Recipient for Address {
    fn with_last_byte_or(self, i: u8) -> Address {
        if i < 6 {
            self
        } else {
            Address::with_last_byte(0x40 + i)
        }
    }
}

/// The Prague system contracts, as a genesis deploys them.
fn with_system_contracts(mut state: InMemoryState) -> InMemoryState {
    for (address, code) in &parex_chain::PRAGUE_SYSTEM_CONTRACTS {
        state.insert_account(*address, U256::ZERO, 1, Some((*code).clone()));
    }
    state
}

/// `TrackedState` (the incremental root through `StateRootTracker::root_after`) builds and
/// imports exactly the blocks `InMemoryState` (a full recompute) does, and a rejected block
/// leaves the tracker as it was.
#[test]
fn tracked_state_builds_and_imports_the_same_blocks() {
    use parex_chain::{genesis_header, TrackedState};
    use parex_commitment::StateRootTracker;
    let spec = spec("Prague");
    let mut state = with_system_contracts(funded(3));
    let template_genesis = Header {
        gas_limit: 30_000_000,
        ..Default::default()
    };
    let mut parent = genesis_header(
        &spec,
        &template_genesis,
        parex_commitment::state_root(&state),
    );
    assert_eq!(parent.base_fee_per_gas, Some(1_000_000_000));
    assert_eq!(
        parent.requests_hash,
        Some(alloy_eips::eip7685::Requests::default().requests_hash())
    );
    state.insert_block_hash(0, parent.hash_slow());
    let mut roots = StateRootTracker::new(&state);
    for number in 1..=4u64 {
        let mut block = template(
            Address::with_last_byte(0xfe),
            number * 12,
            (0..3)
                .map(|i| transfer(i, number - 1, Address::with_last_byte(0x40 + i), 7))
                .collect(),
        );
        block.header.parent_beacon_block_root = Some(B256::with_last_byte(number as u8));
        block.withdrawals = Some(vec![Withdrawal {
            index: number,
            validator_index: 9,
            address: Address::with_last_byte(0x77),
            amount: number,
        }]);
        let full = build_block(&spec, &parent, &block, &state, &parallel()).expect("build");
        let before = roots.root();
        let tracked = build_block(
            &spec,
            &parent,
            &block,
            &TrackedState::new(&state, &mut roots),
            &parallel(),
        )
        .expect("tracked build");
        assert_eq!(tracked.hash, full.hash, "block {number}");
        assert_eq!(roots.root(), before, "the build left the tracker unchanged");
        let sealed = Block {
            header: full.header.clone(),
            ..block.clone()
        };
        let mut tampered = sealed.clone();
        tampered.header.state_root = B256::with_last_byte(1);
        let err = execute_block(
            &spec,
            &parent,
            &tampered,
            &TrackedState::new(&state, &mut roots),
            &parallel(),
        )
        .unwrap_err();
        assert_eq!(rejection(err), block_exception::INVALID_STATE_ROOT);
        assert_eq!(
            roots.root(),
            before,
            "the rejection left the tracker unchanged"
        );
        let imported = execute_block(
            &spec,
            &parent,
            &sealed,
            &TrackedState::new(&state, &mut roots),
            &parallel(),
        )
        .expect("tracked import");
        assert_eq!(imported.hash, full.hash);
        roots.apply(&imported.result.changes);
        state = apply(&state, &imported);
        assert_eq!(roots.root(), parex_commitment::state_root(&state));
        assert_eq!(
            state
                .storage(
                    &alloy_eips::eip4788::BEACON_ROOTS_ADDRESS,
                    &U256::from(number * 12 % 8191 + 8191)
                )
                .unwrap(),
            U256::from(number),
            "EIP-4788 stored the beacon root"
        );
        parent = imported.header;
    }
}
