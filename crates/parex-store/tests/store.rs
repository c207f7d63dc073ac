//! The store against the in-memory state: same changes, same state; the engine reads both the
//! same way; blocks commit in order and survive reopening.

use parex_evm::sign::{address_of, sign_eip1559, TxRequest};
use parex_evm::{execute_block, ExecConfig};
use parex_primitives::{
    AccountChange, AccountInfo, Address, BlockEnv, Bytes, StateChanges, B256, U256,
};
use parex_state::{InMemoryState, StateViewRef};
use parex_store::{BlockCommit, Store};
use proptest::prelude::*;

fn commit(store: &Store, number: u64, changes: &StateChanges, tx_hashes: &[B256]) {
    store
        .commit_block(&BlockCommit {
            number,
            hash: B256::with_last_byte(number as u8 + 1),
            record: format!("block {number}").as_bytes(),
            tx_hashes,
            changes,
            meta: &[],
        })
        .expect("commit");
}

fn change_strategy() -> impl Strategy<Value = StateChanges> {
    parex_primitives::strategies::state_changes(parex_primitives::strategies::ChangesShape {
        addresses: 6,
        slots: 6,
        accounts: 5,
        slots_per_account: 3,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any sequence of blocks' changes leaves the store holding exactly the state that the
    /// in-memory store holds after the same changes, read through the view or loaded whole.
    #[test]
    fn store_follows_in_memory_state(blocks in prop::collection::vec(change_strategy(), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("chain.redb")).unwrap();
        let mut memory = InMemoryState::new();
        for (number, changes) in blocks.iter().enumerate() {
            memory.apply(changes);
            memory.insert_block_hash(number as u64, B256::with_last_byte(number as u8 + 1));
            commit(&store, number as u64, changes, &[]);
        }
        prop_assert_eq!(store.load_state().unwrap().accounts(), memory.accounts());
        let view = store.view().unwrap();
        for byte in 0u8..6 {
            let a = Address::with_last_byte(byte);
            prop_assert_eq!(view.account(&a).unwrap(), memory.account(&a).unwrap());
            prop_assert_eq!(view.has_storage(&a).unwrap(), memory.has_storage(&a).unwrap());
            for slot in 0u64..6 {
                let slot = U256::from(slot);
                prop_assert_eq!(view.storage(&a, &slot).unwrap(), memory.storage(&a, &slot).unwrap());
            }
            if let Some(info) = memory.account(&a).unwrap() {
                prop_assert_eq!(view.code_by_hash(&info.code_hash).unwrap(), memory.code_by_hash(&info.code_hash).unwrap());
            }
        }
        prop_assert_eq!(view.block_hash(0).unwrap(), B256::with_last_byte(1));
    }
}

fn secret(i: u8) -> [u8; 32] {
    [i + 1; 32]
}

/// The engine executes a block on the store's view exactly as on the in-memory state.
#[test]
fn engine_reads_the_store_like_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("chain.redb")).unwrap();
    let mut genesis = InMemoryState::new();
    let mut changes = StateChanges::new();
    for i in 0..8u8 {
        let address = address_of(&secret(i)).unwrap();
        genesis.insert_account(address, U256::from(10u128.pow(20)), 0, None);
        changes.insert(
            address,
            AccountChange {
                info: Some(AccountInfo::with_balance(U256::from(10u128.pow(20)))),
                ..Default::default()
            },
        );
    }
    commit(&store, 0, &changes, &[]);
    let env = BlockEnv {
        base_fee: 7,
        ..BlockEnv::default()
    };
    let txs: Vec<Bytes> = (0..8u8)
        .map(|i| {
            let request = TxRequest {
                nonce: 0,
                // Half the transactions create a contract that stores CALLVALUE at slot 0.
                to: (i % 2 == 0).then(|| Address::with_last_byte(0x77)),
                value: U256::from(1_000 + i as u64),
                input: if i % 2 == 0 {
                    Bytes::new()
                } else {
                    Bytes::from_static(&[0x34, 0x60, 0x00, 0x55, 0x00])
                },
                gas_limit: 100_000,
                max_fee_per_gas: 20,
                max_priority_fee_per_gas: 2,
            };
            sign_eip1559(env.chain_id, &secret(i), &request).unwrap()
        })
        .collect();
    let config = ExecConfig {
        threads: 2,
        ..ExecConfig::default()
    };
    let on_memory = execute_block(&env, &txs, &genesis, &config).unwrap();
    let view = store.view().unwrap();
    let on_store = execute_block(&env, &txs, &view, &config).unwrap();
    assert!(on_memory.same_outcome(&on_store));
    drop(view);
    commit(&store, 1, &on_store.changes, &on_store.tx_hashes);
    genesis.apply(&on_memory.changes);
    // Reopen: everything committed is still there.
    drop(store);
    let store = Store::open(dir.path().join("chain.redb")).unwrap();
    assert_eq!(store.head().unwrap(), Some(1));
    assert_eq!(store.load_state().unwrap().accounts(), genesis.accounts());
    assert_eq!(
        store.transaction(&on_store.tx_hashes[3]).unwrap(),
        Some((1, 3))
    );
    assert_eq!(
        store.block(1).unwrap().as_deref(),
        Some(b"block 1".as_slice())
    );
    assert_eq!(
        store.block_number(&B256::with_last_byte(2)).unwrap(),
        Some(1)
    );
}

/// Blocks commit in order; a failed commit writes nothing.
#[test]
fn blocks_commit_in_order_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("chain.redb")).unwrap();
    assert_eq!(store.head().unwrap(), None);
    let err = store
        .commit_block(&BlockCommit {
            number: 1,
            hash: B256::ZERO,
            record: b"",
            tx_hashes: &[],
            changes: &StateChanges::new(),
            meta: &[],
        })
        .unwrap_err();
    assert!(err.to_string().contains("expected block 0"), "{err}");
    commit(&store, 0, &StateChanges::new(), &[]);
    let err = store
        .commit_block(&BlockCommit {
            number: 1,
            hash: B256::ZERO,
            record: b"",
            tx_hashes: &[B256::repeat_byte(9)],
            changes: &StateChanges::new(),
            meta: &[("head", b"x")],
        })
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    assert_eq!(store.head().unwrap(), Some(0));
    assert_eq!(store.transaction(&B256::repeat_byte(9)).unwrap(), None);
    assert_eq!(store.block(1).unwrap(), None);
}
