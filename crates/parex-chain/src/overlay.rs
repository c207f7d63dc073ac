//! Pre-block state plus the changes of the steps already run in this block.
//!
//! A block runs in steps: pre-block system calls, the transactions (Block-STM), withdrawals
//! and rewards, post-block system calls. Each step reads the state its predecessors left,
//! through an [`Overlay`] of the pre-block store and the changes so far, and returns its own
//! [`StateChanges`], which [`merge_changes`] folds into the block's.

use ahash::AHashMap;
use parex_primitives::{
    keccak256, AccountChange, AccountInfo, Address, Bytes, StateChanges, B256, U256,
};
use parex_state::{StateError, StateViewRef};

/// `base` as the changes left it. Read-only and `Sync`, like any view.
pub struct Overlay<'a, S: ?Sized> {
    base: &'a S,
    changes: &'a StateChanges,
    codes: AHashMap<B256, Bytes>,
}

impl<'a, S: StateViewRef + ?Sized> Overlay<'a, S> {
    pub fn new(base: &'a S, changes: &'a StateChanges) -> Self {
        let codes = changes
            .values()
            .filter_map(|c| c.code.as_ref())
            .filter(|code| !code.is_empty())
            .map(|code| (keccak256(code), code.clone()))
            .collect();
        Overlay {
            base,
            changes,
            codes,
        }
    }
}

impl<S: StateViewRef + ?Sized> StateViewRef for Overlay<'_, S> {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        match self.changes.get(address) {
            Some(change) => Ok(change.info),
            None => self.base.account(address),
        }
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        match self.changes.get(address) {
            Some(change) if change.info.is_none() => Ok(U256::ZERO),
            Some(change) => match change.storage.get(slot) {
                Some(value) => Ok(*value),
                None if change.storage_cleared => Ok(U256::ZERO),
                None => self.base.storage(address, slot),
            },
            None => self.base.storage(address, slot),
        }
    }

    fn code_by_hash(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        match self.codes.get(code_hash) {
            Some(code) => Ok(Some(code.clone())),
            None => self.base.code_by_hash(code_hash),
        }
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.base.block_hash(number)
    }

    /// Slots the changes zeroed are not subtracted from the base's: a step that empties a
    /// pre-block storage completely still answers `true` (only EIP-7610 asks, and no system
    /// step creates contracts).
    fn has_storage(&self, address: &Address) -> Result<bool, StateError> {
        match self.changes.get(address) {
            Some(change) if change.info.is_none() => Ok(false),
            Some(change) => {
                if change.storage.values().any(|v| !v.is_zero()) {
                    return Ok(true);
                }
                if change.storage_cleared {
                    return Ok(false);
                }
                self.base.has_storage(address)
            }
            None => self.base.has_storage(address),
        }
    }
}

/// Folds `later` (changes made on top of `earlier`) into `earlier`.
// C2: applying the merge once equals applying `earlier` then `later`.
pub fn merge_changes(earlier: &mut StateChanges, later: StateChanges) {
    // One pass over both maps (they are sorted by address), not a search and a move per key.
    earlier.merge(later, |first, change| {
        if change.info.is_none() || change.storage_cleared {
            *first = change;
            return;
        }
        // A deletion earlier in the block cleared the pre-block storage for good.
        let cleared = first.storage_cleared || first.info.is_none();
        first.info = change.info;
        if change.code.is_some() {
            first.code = change.code;
        }
        first.storage_cleared = cleared;
        first
            .storage
            .merge(change.storage, |slot, later| *slot = later);
    });
}

/// A balance increase on top of `view`, as EIP-4895 withdrawals and pre-Merge rewards apply
/// it: a missing account is created; one left empty (a zero amount to an empty account) is
/// deleted (EIP-161), and a zero amount to a missing account changes nothing.
pub fn credit<S: StateViewRef + ?Sized>(
    view: &S,
    pending: &mut StateChanges,
    address: Address,
    amount: U256,
) -> Result<(), StateError> {
    let current = match pending.get(&address) {
        Some(change) => change.info,
        None => view.account(&address)?,
    };
    let existed = current.is_some();
    let mut info = current.unwrap_or_default();
    info.balance = info.balance.saturating_add(amount);
    if info.is_empty() {
        if existed {
            pending.insert(address, AccountChange::deleted());
        }
        return Ok(());
    }
    let entry = pending.get_or_insert_default(address);
    entry.info = Some(info);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parex_state::InMemoryState;

    fn change(balance: u64, storage: &[(u64, u64)], cleared: bool) -> AccountChange {
        AccountChange {
            info: Some(AccountInfo::with_balance(U256::from(balance))),
            code: None,
            storage_cleared: cleared,
            storage: storage
                .iter()
                .map(|(k, v)| (U256::from(*k), U256::from(*v)))
                .collect(),
        }
    }

    #[test]
    fn merged_changes_read_like_sequential_application() {
        let a = Address::with_last_byte(1);
        let mut base = InMemoryState::new();
        base.insert_account(a, U256::from(5), 0, None);
        base.insert_storage(a, U256::from(1), U256::from(11));
        base.insert_storage(a, U256::from(2), U256::from(22));

        let first: StateChanges = [(a, change(6, &[(1, 0)], false))].into_iter().collect();
        let second: StateChanges = [(a, change(7, &[(3, 33)], false))].into_iter().collect();
        let mut step = base.clone();
        step.apply(&first);
        let overlay = Overlay::new(&base, &first);
        assert_eq!(overlay.storage(&a, &U256::from(1)).unwrap(), U256::ZERO);
        assert_eq!(overlay.storage(&a, &U256::from(2)).unwrap(), U256::from(22));
        step.apply(&second);

        let mut merged = first.clone();
        merge_changes(&mut merged, second);
        let mut once = base.clone();
        once.apply(&merged);
        assert_eq!(once, step);

        // A deletion then a re-creation: the pre-block storage stays gone.
        let deleted: StateChanges = [(a, AccountChange::deleted())].into_iter().collect();
        let revived: StateChanges = [(a, change(1, &[], false))].into_iter().collect();
        let mut merged = deleted;
        merge_changes(&mut merged, revived);
        let mut once = base.clone();
        once.apply(&merged);
        assert_eq!(once.storage(&a, &U256::from(2)).unwrap(), U256::ZERO);
        assert_eq!(once.account(&a).unwrap().unwrap().balance, U256::from(1));
    }

    #[test]
    fn credits_create_and_delete_like_the_spec() {
        let empty = Address::with_last_byte(2);
        let missing = Address::with_last_byte(3);
        let mut base = InMemoryState::new();
        base.insert_account(empty, U256::ZERO, 0, None);
        let mut pending = StateChanges::new();
        credit(&base, &mut pending, missing, U256::ZERO).unwrap();
        assert!(pending.is_empty());
        credit(&base, &mut pending, empty, U256::ZERO).unwrap();
        assert_eq!(pending[&empty].info, None);
        credit(&base, &mut pending, missing, U256::from(9)).unwrap();
        credit(&base, &mut pending, missing, U256::from(1)).unwrap();
        assert_eq!(pending[&missing].info.unwrap().balance, U256::from(10));
    }
}
