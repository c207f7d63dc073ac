use crate::SortedMap;
use alloy_primitives::{b256, Address, Bytes, B256, U256};

/// `keccak256("")`: the code hash of an account without code.
pub const KECCAK_EMPTY: B256 =
    b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");

/// The non-storage part of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountInfo {
    pub balance: U256,
    pub nonce: u64,
    pub code_hash: B256,
}

impl AccountInfo {
    pub fn with_balance(balance: U256) -> Self {
        AccountInfo {
            balance,
            nonce: 0,
            code_hash: KECCAK_EMPTY,
        }
    }

    /// EIP-161 emptiness: no balance, no nonce, no code.
    pub fn is_empty(&self) -> bool {
        self.balance.is_zero() && self.nonce == 0 && self.code_hash == KECCAK_EMPTY
    }
}

impl Default for AccountInfo {
    fn default() -> Self {
        AccountInfo::with_balance(U256::ZERO)
    }
}

/// What a block did to one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// The account after the block; `None` when the block deleted it.
    pub info: Option<AccountInfo>,
    /// New code, when the block deployed or delegated code at this address.
    pub code: Option<Bytes>,
    /// True when the pre-block storage no longer applies (self-destruct, or a re-creation).
    pub storage_cleared: bool,
    /// Slots written by the block, with their final values (zero means deleted).
    pub storage: SortedMap<U256, U256>,
}

impl AccountChange {
    /// The account is gone after the block, and its storage with it.
    pub fn deleted() -> Self {
        AccountChange {
            info: None,
            code: None,
            storage_cleared: true,
            storage: SortedMap::new(),
        }
    }
}

/// The block's effect on state, keyed and ordered by address so that two executions can be
/// compared bit for bit and applied deterministically.
pub type StateChanges = SortedMap<Address, AccountChange>;
