//! proptest strategies for parex's plain data, shared by the tests of the crates that store
//! or commit to it (feature `proptest`).

use crate::{keccak256, AccountChange, AccountInfo, Address, Bytes, StateChanges, KECCAK_EMPTY};
use alloy_primitives::U256;
use proptest::prelude::*;

/// The shape of random [`StateChanges`]: the spaces that addresses and slots are drawn from
/// (small spaces make consecutive blocks touch the same accounts and slots again) and the
/// most accounts, and slots per account, one block changes.
#[derive(Debug, Clone, Copy)]
pub struct ChangesShape {
    pub addresses: u8,
    pub slots: u64,
    pub accounts: usize,
    pub slots_per_account: usize,
}

/// One block's changes: accounts created, updated or deleted (15%), with or without new code,
/// storage cleared or not, slots set to small values (zero deletes).
pub fn state_changes(shape: ChangesShape) -> impl Strategy<Value = StateChanges> {
    let change = (
        prop::option::weighted(
            0.85,
            (
                0u64..1_000,
                0u64..5,
                prop::option::of(prop::collection::vec(any::<u8>(), 1..8)),
            ),
        ),
        any::<bool>(),
        prop::collection::btree_map(0..shape.slots, 0u64..3, 0..=shape.slots_per_account),
    )
        .prop_map(|(info, storage_cleared, storage)| {
            let code = info
                .as_ref()
                .and_then(|(_, _, code)| code.clone())
                .map(Bytes::from);
            AccountChange {
                info: info.map(|(balance, nonce, _)| AccountInfo {
                    balance: U256::from(balance),
                    nonce,
                    code_hash: code.as_ref().map(keccak256).unwrap_or(KECCAK_EMPTY),
                }),
                code,
                storage_cleared,
                storage: storage
                    .into_iter()
                    .map(|(slot, value)| (U256::from(slot), U256::from(value)))
                    .collect(),
            }
        });
    prop::collection::btree_map(
        (0..shape.addresses).prop_map(Address::with_last_byte),
        change,
        0..=shape.accounts,
    )
    .prop_map(|accounts| accounts.into_iter().collect())
}
