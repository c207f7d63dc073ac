//! revm's read-only database over any parex [`StateViewRef`], for the one-off runs outside
//! Block-STM: `eth_call` and gas estimates, and the system calls around a block.

use crate::task::bytecode_from_bytes;
use parex_primitives::{Address, B256, U256};
use parex_state::{StateError, StateViewRef};
use revm::context_interface::DBErrorMarker;
use revm::database_interface::DatabaseRef;
use revm::state::{AccountInfo as RevmAccountInfo, Bytecode};

/// A store error, as revm carries it back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StateDbError(pub String);

impl DBErrorMarker for StateDbError {}

impl From<StateError> for StateDbError {
    fn from(e: StateError) -> Self {
        StateDbError(e.0)
    }
}

/// Wrap in revm's `WrapDatabaseRef` to run an EVM over a view without copying it.
pub struct StateDb<'a, S: ?Sized>(pub &'a S);

impl<S: StateViewRef + ?Sized> DatabaseRef for StateDb<'_, S> {
    type Error = StateDbError;

    fn basic_ref(&self, address: Address) -> Result<Option<RevmAccountInfo>, StateDbError> {
        let Some(info) = self.0.account(&address)? else {
            return Ok(None);
        };
        let code = self.code_by_hash_ref(info.code_hash)?;
        Ok(Some(RevmAccountInfo::new(
            info.balance,
            info.nonce,
            info.code_hash,
            code,
        )))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateDbError> {
        let code = self
            .0
            .code_by_hash(&code_hash)?
            .ok_or_else(|| StateDbError(format!("code {code_hash} missing from the store")))?;
        Ok(bytecode_from_bytes(code))
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateDbError> {
        Ok(self.0.storage(&address, &index)?)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateDbError> {
        Ok(self.0.block_hash(number)?)
    }
}
