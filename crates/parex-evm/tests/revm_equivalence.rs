//! The adapter's sequential execution equals plain revm (CacheDB + transact_commit, fees paid
//! by revm's own handler) on the same decoded transactions: this validates the lazy
//! beneficiary and lazy transfer tricks and the storage-reset rule.

mod common;

use common::*;
use parex_evm::ExecutorKind;
use parex_primitives::{Bytes, Fork, U256};

fn check(fork: Fork, txs: &[Bytes]) -> parex_evm::BlockResult {
    let env = env(fork);
    let state = genesis();
    let ours = run(&env, txs, &state, ExecutorKind::Sequential, 1);
    assert_same_as_revm(&env, txs, &state, &ours);
    ours
}

#[test]
fn random_blocks_match_plain_revm() {
    for (seed, fork) in [
        (1, Fork::Prague),
        (2, Fork::Cancun),
        (3, Fork::Shanghai),
        (4, Fork::London),
        (5, Fork::Berlin),
        (6, Fork::Osaka),
        (7, Fork::Prague),
    ] {
        let txs = random_block(seed, 150, fork);
        check(fork, &txs);
    }
}

#[test]
fn beneficiary_as_sender_recipient_and_read() {
    let b = BENEFICIARY_KEY;
    let txs = vec![
        sign(2, 5, &call(0, addr(b), U256::from(1_000), vec![], 21_000)),
        sign(2, b, &call(0, addr(6), U256::from(7), vec![], 21_000)),
        sign(
            2,
            7,
            &call(0, fixed(COINBASE_READER), U256::ZERO, vec![], 60_000),
        ),
        sign(
            0,
            b,
            &call(1, fixed(COINBASE_READER), U256::ZERO, vec![], 60_000),
        ),
        sign(1, 8, &call(0, addr(b), U256::from(3), vec![], 21_000)),
        sign(
            2,
            9,
            &call(0, fixed(COINBASE_READER), U256::ZERO, vec![], 60_000),
        ),
    ];
    let ours = check(Fork::Prague, &txs);
    assert!(ours.receipts.iter().all(|r| r.success));
}

#[test]
fn contract_creation_create_and_create2() {
    let mut create = call(0, fixed(0), U256::ZERO, init_code(&counter_code()), 150_000);
    create.to = None;
    let child = factory_child(fixed(FACTORY));
    let txs = vec![
        sign(2, 3, &create),
        sign(2, 4, &call(0, fixed(FACTORY), U256::ZERO, vec![], 200_000)),
        sign(2, 4, &call(1, child, U256::ZERO, vec![], 60_000)),
        // CREATE2 again at the same address: a collision, the call fails inside.
        sign(2, 5, &call(0, fixed(FACTORY), U256::ZERO, vec![], 200_000)),
    ];
    let ours = check(Fork::Prague, &txs);
    assert_eq!(ours.receipts[0].contract_address, Some(addr(3).create(0)));
    let change = &ours.changes[&child];
    assert_eq!(change.storage.get(&U256::from(1)), Some(&U256::from(1)));
    assert!(change.code.is_some());
}

#[test]
fn revert_keeps_only_nonce_and_fee() {
    let txs = vec![sign(
        2,
        3,
        &call(0, fixed(REVERTER), U256::from(5), vec![], 60_000),
    )];
    let ours = check(Fork::Prague, &txs);
    let receipt = &ours.receipts[0];
    assert!(!receipt.success);
    assert!(receipt.gas_used > 21_000 && receipt.gas_used < 60_000);
    assert!(
        !ours.changes.contains_key(&fixed(REVERTER)),
        "reverted call changed the contract"
    );
    let sender = ours.changes[&addr(3)].info.expect("sender exists");
    assert_eq!(sender.nonce, 1);
}

#[test]
fn out_of_gas_consumes_the_gas_limit() {
    let txs = vec![sign(
        2,
        3,
        &call(0, fixed(SPINNER), U256::ZERO, vec![], 50_000),
    )];
    let ours = check(Fork::Prague, &txs);
    assert!(!ours.receipts[0].success);
    assert_eq!(ours.receipts[0].gas_used, 50_000);
}

/// Creates, uses, self-destructs and re-creates a contract at one CREATE2 address, then uses
/// it again: before Cancun the re-created contract starts from empty storage; from Cancun the
/// self-destruct only moves the balance and the re-creation collides.
fn metamorphic_txs() -> Vec<Bytes> {
    let child = factory_child(fixed(FACTORY));
    vec![
        sign(2, 3, &call(0, fixed(FACTORY), U256::ZERO, vec![], 200_000)),
        sign(2, 4, &call(0, child, U256::ZERO, vec![], 60_000)),
        sign(2, 5, &call(0, child, U256::from(10), vec![], 60_000)),
        // A plain transfer to the destroyed address: a lazy credit on an absent account.
        sign(2, 6, &call(0, child, U256::from(3), vec![], 21_000)),
        sign(2, 3, &call(1, fixed(FACTORY), U256::ZERO, vec![], 200_000)),
        sign(2, 4, &call(1, child, U256::ZERO, vec![], 60_000)),
        // The pre-existing destructor with storage: destroyed before Cancun.
        sign(
            2,
            7,
            &call(0, fixed(DESTRUCTOR), U256::ZERO, vec![], 60_000),
        ),
        sign(
            2,
            8,
            &call(0, fixed(DESTRUCTOR), U256::from(1), vec![], 21_000),
        ),
    ]
}

fn metamorphic(fork: Fork) -> parex_evm::BlockResult {
    check(fork, &metamorphic_txs())
}

#[test]
fn selfdestruct_before_cancun() {
    let ours = metamorphic(Fork::Shanghai);
    let child = factory_child(fixed(FACTORY));
    // slot1: 1 (tx1) -> 2 (tx2, destroyed) -> re-created empty -> 1 (tx5).
    assert_eq!(
        ours.changes[&child].storage.get(&U256::from(1)),
        Some(&U256::from(1))
    );
    assert!(ours.changes[&child].storage_cleared);
    let destructor = &ours.changes[&fixed(DESTRUCTOR)];
    assert!(destructor.storage_cleared);
    assert!(destructor.storage.is_empty());
}

#[test]
fn selfdestruct_from_cancun() {
    let ours = metamorphic(Fork::Cancun);
    let child = factory_child(fixed(FACTORY));
    // No destruction: slot1 counts 1, 2, 3.
    assert_eq!(
        ours.changes[&child].storage.get(&U256::from(1)),
        Some(&U256::from(3))
    );
    assert!(ours
        .changes
        .get(&fixed(DESTRUCTOR))
        .is_none_or(|c| c.info.is_some()));
}

#[test]
fn selfdestruct_parallel_matches_sequential() {
    for fork in [Fork::Shanghai, Fork::Cancun] {
        let txs = metamorphic_txs();
        let env = env(fork);
        let state = genesis();
        let sequential = run(&env, &txs, &state, ExecutorKind::Sequential, 1);
        for threads in 1..=4 {
            for _ in 0..5 {
                let parallel = run(&env, &txs, &state, ExecutorKind::Parallel, threads);
                assert!(parallel.same_outcome(&sequential), "{fork} x{threads}");
            }
        }
    }
}

#[test]
fn zero_fee_block_touches_empty_beneficiary() {
    // Base fee zero and no tip: every fee is zero; an existing empty beneficiary is deleted.
    let mut env = env(Fork::Prague);
    env.base_fee = 0;
    env.beneficiary = fixed(0x77);
    let mut state = genesis();
    state.insert_account(fixed(0x77), U256::ZERO, 0, None);
    let mut request = call(0, fixed(HOT), U256::from(1), vec![], 21_000);
    request.max_fee_per_gas = 0;
    request.max_priority_fee_per_gas = 0;
    let txs = vec![sign(2, 3, &request)];
    let ours = run(&env, &txs, &state, ExecutorKind::Sequential, 1);
    assert_same_as_revm(&env, &txs, &state, &ours);
    assert_eq!(ours.changes[&fixed(0x77)].info, None);
}
