//! State behind traits.
//!
//! Executors read pre-block state through [`StateViewRef`], a read-only view that many worker
//! threads share. A store only has to answer three questions (account, storage slot, code by
//! hash) plus the `BLOCKHASH` lookup and whether an account has any storage (EIP-7610); the
//! in-memory [`InMemoryState`] here and the persistent store of the node plug in the same way.
//! [`StateView`] is the `&mut` twin, blanket-implemented for every `StateViewRef`, for callers
//! that hold a view exclusively.

mod memory;

pub use memory::{AccountDump, InMemoryState};

use parex_primitives::{AccountInfo, Address, Bytes, B256, U256};

/// A failure of the backing store. It is never a property of the block: the block is
/// retried or reported, not judged invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store error: {0}")]
pub struct StateError(pub String);

/// Read-only access to the state before a block. Shared by all workers, hence `Sync`.
pub trait StateViewRef: Sync {
    /// The account at `address`, or `None` when it does not exist.
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError>;
    /// The value of `slot` in `address`'s storage; zero when unset.
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError>;
    /// The code whose keccak is `code_hash`; `None` when unknown.
    fn code_by_hash(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError>;
    /// The hash of block `number`, for `BLOCKHASH`; zero when unknown.
    fn block_hash(&self, number: u64) -> Result<B256, StateError>;
    /// True when `address` has at least one non-zero storage slot (a storage root other than
    /// the empty trie's): EIP-7610 makes a creation at such an address collide.
    fn has_storage(&self, address: &Address) -> Result<bool, StateError>;
}

/// The exclusive twin of [`StateViewRef`].
pub trait StateView {
    fn account(&mut self, address: &Address) -> Result<Option<AccountInfo>, StateError>;
    fn storage(&mut self, address: &Address, slot: &U256) -> Result<U256, StateError>;
    fn code_by_hash(&mut self, code_hash: &B256) -> Result<Option<Bytes>, StateError>;
    fn block_hash(&mut self, number: u64) -> Result<B256, StateError>;
    fn has_storage(&mut self, address: &Address) -> Result<bool, StateError>;
}

impl<T: StateViewRef> StateView for T {
    fn account(&mut self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        StateViewRef::account(self, address)
    }
    fn storage(&mut self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        StateViewRef::storage(self, address, slot)
    }
    fn code_by_hash(&mut self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        StateViewRef::code_by_hash(self, code_hash)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        StateViewRef::block_hash(self, number)
    }
    fn has_storage(&mut self, address: &Address) -> Result<bool, StateError> {
        StateViewRef::has_storage(self, address)
    }
}

impl<T: StateViewRef + ?Sized> StateViewRef for &T {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        (**self).account(address)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        (**self).storage(address, slot)
    }
    fn code_by_hash(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        (**self).code_by_hash(code_hash)
    }
    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        (**self).block_hash(number)
    }
    fn has_storage(&self, address: &Address) -> Result<bool, StateError> {
        (**self).has_storage(address)
    }
}
