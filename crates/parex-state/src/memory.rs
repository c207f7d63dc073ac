use crate::{StateError, StateViewRef};
use ahash::AHashMap;
use parex_primitives::{
    keccak256, AccountInfo, Address, Bytes, StateChanges, B256, KECCAK_EMPTY, U256,
};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StoredAccount {
    info: AccountInfo,
    storage: AHashMap<U256, U256>,
}

/// One account as [`InMemoryState::accounts`] lists it: address, info, sorted storage.
pub type AccountDump = (Address, AccountInfo, Vec<(U256, U256)>);

/// A complete state held in memory: the store for tests, benchmarks and dev chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InMemoryState {
    accounts: AHashMap<Address, StoredAccount>,
    codes: AHashMap<B256, Bytes>,
    block_hashes: AHashMap<u64, B256>,
}

impl InMemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates or replaces an account; `code` sets its code and code hash.
    pub fn insert_account(
        &mut self,
        address: Address,
        balance: U256,
        nonce: u64,
        code: Option<Bytes>,
    ) {
        let code_hash = match code {
            Some(code) if !code.is_empty() => {
                let hash = keccak256(&code);
                self.codes.insert(hash, code);
                hash
            }
            _ => KECCAK_EMPTY,
        };
        let entry = self.accounts.entry(address).or_default();
        entry.info = AccountInfo {
            balance,
            nonce,
            code_hash,
        };
    }

    /// Sets one storage slot, creating an empty account if needed. Zero deletes the slot.
    pub fn insert_storage(&mut self, address: Address, slot: U256, value: U256) {
        let storage = &mut self.accounts.entry(address).or_default().storage;
        if value.is_zero() {
            storage.remove(&slot);
        } else {
            storage.insert(slot, value);
        }
    }

    pub fn insert_code(&mut self, code: Bytes) -> B256 {
        let hash = keccak256(&code);
        self.codes.insert(hash, code);
        hash
    }

    pub fn insert_block_hash(&mut self, number: u64, hash: B256) {
        self.block_hashes.insert(number, hash);
    }

    /// Applies a block's changes, making this the post-block state.
    pub fn apply(&mut self, changes: &StateChanges) {
        for (address, change) in changes {
            if let Some(code) = &change.code {
                if !code.is_empty() {
                    self.codes.insert(keccak256(code), code.clone());
                }
            }
            match change.info {
                None => {
                    self.accounts.remove(address);
                }
                Some(info) => {
                    let account = self.accounts.entry(*address).or_default();
                    account.info = info;
                    if change.storage_cleared {
                        account.storage.clear();
                    }
                    for (slot, value) in &change.storage {
                        if value.is_zero() {
                            account.storage.remove(slot);
                        } else {
                            account.storage.insert(*slot, *value);
                        }
                    }
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Every account with its storage, sorted by address: for dumps and whole-state comparisons.
    pub fn accounts(&self) -> Vec<AccountDump> {
        let mut out: Vec<_> = self
            .accounts
            .iter()
            .map(|(address, account)| {
                let mut storage: Vec<_> = account.storage.iter().map(|(k, v)| (*k, *v)).collect();
                storage.sort_unstable();
                (*address, account.info, storage)
            })
            .collect();
        out.sort_unstable_by_key(|(address, _, _)| *address);
        out
    }
}

impl StateViewRef for InMemoryState {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        Ok(self.accounts.get(address).map(|a| a.info))
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        Ok(self
            .accounts
            .get(address)
            .and_then(|a| a.storage.get(slot).copied())
            .unwrap_or_default())
    }

    fn code_by_hash(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        if *code_hash == KECCAK_EMPTY {
            return Ok(Some(Bytes::new()));
        }
        Ok(self.codes.get(code_hash).cloned())
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }

    fn has_storage(&self, address: &Address) -> Result<bool, StateError> {
        // Zero values are never stored (insert_storage and apply remove them).
        Ok(self
            .accounts
            .get(address)
            .is_some_and(|a| !a.storage.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_storage_follows_non_zero_slots() {
        let a = Address::with_last_byte(1);
        let mut state = InMemoryState::new();
        assert!(!state.has_storage(&a).unwrap());
        state.insert_account(a, U256::ZERO, 0, None);
        assert!(!state.has_storage(&a).unwrap());
        state.insert_storage(a, U256::from(7), U256::from(1));
        assert!(state.has_storage(&a).unwrap());
        state.insert_storage(a, U256::from(7), U256::ZERO);
        assert!(!state.has_storage(&a).unwrap());
    }
}
