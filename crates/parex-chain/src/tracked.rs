//! A state whose root follows it incrementally: the node's hot state with its
//! [`StateRootTracker`], as one [`StateViewRef`] + [`StateCommitment`].

use crate::execute::StateCommitment;
use parex_commitment::StateRootTracker;
use parex_primitives::{AccountInfo, Address, Bytes, StateChanges, B256, U256};
use parex_state::{InMemoryState, StateError, StateViewRef};
use std::sync::Mutex;

/// `state` (the state after the parent) read as is, committed to through `roots` (tracking
/// that same state): [`StateCommitment::state_root_after`] re-hashes only what a block
/// changed, where `InMemoryState`'s copies and hashes the whole state. The tracker is left
/// as it was (T3 of `parex_commitment::incremental`), so a rejected block costs nothing.
pub struct TrackedState<'a> {
    state: &'a InMemoryState,
    // Only `state_root_after` takes it, once per block (more before Byzantium); workers
    // never do, so the lock is uncontended.
    roots: Mutex<&'a mut StateRootTracker>,
}

impl<'a> TrackedState<'a> {
    /// `roots` must track `state` (built from it, or from its ancestor and every block since).
    pub fn new(state: &'a InMemoryState, roots: &'a mut StateRootTracker) -> Self {
        TrackedState {
            state,
            roots: Mutex::new(roots),
        }
    }
}

impl StateViewRef for TrackedState<'_> {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        self.state.account(address)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        self.state.storage(address, slot)
    }
    fn code_by_hash(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        self.state.code_by_hash(code_hash)
    }
    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.state.block_hash(number)
    }
    fn has_storage(&self, address: &Address) -> Result<bool, StateError> {
        self.state.has_storage(address)
    }
}

impl StateCommitment for TrackedState<'_> {
    fn state_root_after(&self, changes: &StateChanges) -> Result<B256, StateError> {
        let mut roots = self
            .roots
            .lock()
            .map_err(|_| StateError("state root tracker poisoned by a panic".into()))?;
        Ok(roots.root_after(changes))
    }
}
