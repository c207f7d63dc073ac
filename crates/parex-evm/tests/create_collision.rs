//! EIP-7610: a creation at an address that has storage (but no nonce and no code) collides, like
//! one at an address with a nonce or code. revm checks nonce and code only; the adapter adds the
//! storage rule (see `storage_collision` in task.rs). Every block runs on both executors.

mod common;

use common::*;
use parex_evm::{BlockResult, ExecutorKind};
use parex_primitives::{Bytes, Fork, KECCAK_EMPTY, U256};
use parex_state::InMemoryState;

const GAS: u64 = 200_000;

/// Sequentially and in parallel at 1..=4 threads; all must agree. Returns the sequential one.
fn both(fork: Fork, txs: &[Bytes], state: &InMemoryState) -> BlockResult {
    let env = env(fork);
    let sequential = run(&env, txs, state, ExecutorKind::Sequential, 1);
    for threads in 1..=4 {
        let parallel = run(&env, txs, state, ExecutorKind::Parallel, threads);
        assert!(
            parallel.same_outcome(&sequential),
            "{fork} x{threads}: parallel differs"
        );
    }
    sequential
}

fn create_tx(key: u32, nonce: u64) -> Bytes {
    let mut create = call(nonce, fixed(0), U256::ZERO, init_code(&counter_code()), GAS);
    create.to = None;
    sign(2, key, &create)
}

#[test]
fn create_transaction_collides_with_storage() {
    for fork in [Fork::London, Fork::Cancun, Fork::Prague] {
        let target = addr(3).create(0);
        let mut state = genesis();
        state.insert_storage(target, U256::from(1), U256::from(0x42));
        let result = both(fork, &[create_tx(3, 0)], &state);
        let receipt = &result.receipts[0];
        assert!(!receipt.success, "{fork}: the creation must fail");
        assert_eq!(
            receipt.gas_used, GAS,
            "{fork}: a collision consumes all the gas"
        );
        assert_eq!(result.changes[&addr(3)].info.map(|i| i.nonce), Some(1));
        // The target is untouched: no code, storage kept.
        assert!(
            !result.changes.contains_key(&target),
            "{fork}: {:?}",
            result.changes.get(&target)
        );
    }
}

#[test]
fn create_transaction_without_storage_deploys() {
    // Control: the same creation without the slot deploys the counter.
    let target = addr(3).create(0);
    let result = both(Fork::Prague, &[create_tx(3, 0)], &genesis());
    assert!(result.receipts[0].success);
    let info = result.changes[&target].info.expect("created");
    assert_eq!(info.nonce, 1);
    assert_ne!(info.code_hash, KECCAK_EMPTY);
}

#[test]
fn create2_opcode_collides_with_storage() {
    let child = factory_child(fixed(FACTORY));
    let mut state = genesis();
    state.insert_storage(child, U256::from(9), U256::from(1));
    let txs = [sign(
        2,
        4,
        &call(0, fixed(FACTORY), U256::ZERO, vec![], GAS),
    )];
    let result = both(Fork::Prague, &txs, &state);
    // The outer call succeeds; CREATE2 pushes 0 and bumps the factory's nonce.
    assert!(result.receipts[0].success);
    assert_eq!(
        result.changes[&fixed(FACTORY)].info.map(|i| i.nonce),
        Some(2)
    );
    assert!(!result.changes.contains_key(&child));
}

#[test]
fn storage_deleted_earlier_in_the_block_does_not_collide() {
    // Transaction 0 touches the storage-only account (a zero-value call): EIP-161 deletes it,
    // storage and all. Transaction 1 then creates there and succeeds.
    let target = addr(3).create(1);
    let mut state = genesis();
    state.insert_storage(target, U256::from(1), U256::from(0x42));
    let txs = [
        sign(2, 3, &call(0, target, U256::ZERO, vec![], 30_000)),
        create_tx(3, 1),
    ];
    let result = both(Fork::Prague, &txs, &state);
    assert!(result.receipts[1].success, "the creation must succeed");
    let change = &result.changes[&target];
    assert!(change.storage_cleared);
    assert_eq!(change.storage.get(&U256::from(1)), None);
    assert_ne!(change.info.expect("created").code_hash, KECCAK_EMPTY);
}
