//! Incremental state roots: Merkle-Patricia tries kept in memory with each node's reference
//! cached, so a block re-hashes only the paths its changes touched.
//!
//! [`StateRootTracker`] holds the account trie and one storage trie per account. Built once
//! from a state ([`StateRootTracker::new`]), it follows blocks through their
//! [`StateChanges`] ([`StateRootTracker::apply`]) and gives the state root in time
//! proportional to the changes, where [`crate::state_root`] is linear in the whole state.
//! Node encodings are alloy-trie's (`LeafNodeRef`, `ExtensionNodeRef`, `BranchNodeRef`,
//! `RlpNode`), so roots are the same bytes as the full recompute; the property test below
//! checks that on random change sequences.
//!
//! Keys are fixed-length hashes (32 bytes, 64 nibbles), so no branch ever holds a value.
//! Invariants:
//! - T1: a node's cached reference is cleared whenever anything below it changes (every
//!   insert and remove clears the cache on its whole path).
//! - T2: the trie is canonical after every operation: a branch has at least two children,
//!   an extension's child is a branch, and no extension or leaf key is split needlessly.
//! - T3: [`StateRootTracker::root_after`] leaves the tracker observably unchanged: its
//!   changes stay applied with a log of every leaf and storage trie they replaced, and the
//!   next call either keeps them (`apply` of the same changes) or first puts back, newest
//!   first, exactly the keys and values held before (by T2 then the same tries).

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_trie::nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode};
use alloy_trie::{Nibbles, TrieAccount, TrieMask, EMPTY_ROOT_HASH};
use parex_primitives::StateChanges;
use parex_state::InMemoryState;
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum Node {
    Leaf {
        key: Nibbles,
        value: Vec<u8>,
        cached: Option<RlpNode>,
    },
    Extension {
        key: Nibbles,
        child: Box<Node>,
        cached: Option<RlpNode>,
    },
    Branch {
        children: Box<[Option<Node>; 16]>,
        cached: Option<RlpNode>,
    },
}

fn leaf(key: Nibbles, value: Vec<u8>) -> Node {
    Node::Leaf {
        key,
        value,
        cached: None,
    }
}

/// `key` (possibly empty) in front of `node`: an extension, or nothing when `key` is empty.
fn prefixed(key: Nibbles, node: Node) -> Node {
    if key.is_empty() {
        node
    } else {
        Node::Extension {
            key,
            child: Box::new(node),
            cached: None,
        }
    }
}

/// `prefix` joined in front of `node`'s own key (T2: merge rather than nest).
fn join_front(prefix: &Nibbles, node: Node) -> Node {
    match node {
        Node::Leaf { key, value, .. } => leaf(prefix.join(&key), value),
        Node::Extension { key, child, .. } => Node::Extension {
            key: prefix.join(&key),
            child,
            cached: None,
        },
        branch @ Node::Branch { .. } => prefixed(*prefix, branch),
    }
}

fn new_branch() -> Box<[Option<Node>; 16]> {
    Box::new(std::array::from_fn(|_| None))
}

impl Node {
    fn clear_cache(&mut self) {
        match self {
            Node::Leaf { cached, .. }
            | Node::Extension { cached, .. }
            | Node::Branch { cached, .. } => *cached = None,
        }
    }

    /// Inserts `value` at `path` (relative to this node) and returns the new node.
    fn insert(self, path: Nibbles, value: Vec<u8>) -> Node {
        match self {
            Node::Leaf {
                key, value: old, ..
            } => {
                if key == path {
                    return leaf(key, value);
                }
                let common = key.common_prefix_length(&path);
                let mut children = new_branch();
                children[key.get_unchecked(common) as usize] =
                    Some(leaf(key.slice(common + 1..), old));
                children[path.get_unchecked(common) as usize] =
                    Some(leaf(path.slice(common + 1..), value));
                prefixed(
                    key.slice(..common),
                    Node::Branch {
                        children,
                        cached: None,
                    },
                )
            }
            Node::Extension { key, child, .. } => {
                let common = key.common_prefix_length(&path);
                if common == key.len() {
                    let child = child.insert(path.slice(common..), value);
                    return Node::Extension {
                        key,
                        child: Box::new(child),
                        cached: None,
                    };
                }
                // Split the extension at `common`: a branch with the rest of the extension
                // on one side and the new leaf on the other.
                let mut children = new_branch();
                let rest = key.slice(common + 1..);
                children[key.get_unchecked(common) as usize] = Some(prefixed(rest, *child));
                children[path.get_unchecked(common) as usize] =
                    Some(leaf(path.slice(common + 1..), value));
                prefixed(
                    key.slice(..common),
                    Node::Branch {
                        children,
                        cached: None,
                    },
                )
            }
            Node::Branch { mut children, .. } => {
                let index = path.get_unchecked(0) as usize;
                let rest = path.slice(1..);
                children[index] = Some(match children[index].take() {
                    Some(child) => child.insert(rest, value),
                    None => leaf(rest, value),
                });
                Node::Branch {
                    children,
                    cached: None,
                }
            }
        }
    }

    /// The value at `path` (relative to this node).
    fn get(&self, path: &Nibbles) -> Option<&Vec<u8>> {
        match self {
            Node::Leaf { key, value, .. } => (key == path).then_some(value),
            Node::Extension { key, child, .. } => {
                if !path.starts_with(key) {
                    return None;
                }
                child.get(&path.slice(key.len()..))
            }
            Node::Branch { children, .. } => {
                if path.is_empty() {
                    return None;
                }
                let index = path.get_unchecked(0) as usize;
                children[index].as_ref()?.get(&path.slice(1..))
            }
        }
    }

    /// Removes `path` (relative to this node); `None` when the node becomes empty.
    fn remove(self, path: &Nibbles) -> Option<Node> {
        match self {
            Node::Leaf { ref key, .. } => {
                if key == path {
                    None
                } else {
                    Some(self)
                }
            }
            Node::Extension { key, child, cached } => {
                if !path.starts_with(&key) {
                    return Some(Node::Extension { key, child, cached });
                }
                child
                    .remove(&path.slice(key.len()..))
                    .map(|child| join_front(&key, child))
            }
            Node::Branch {
                mut children,
                cached,
            } => {
                let index = path.get_unchecked(0) as usize;
                let Some(child) = children[index].take() else {
                    return Some(Node::Branch { children, cached });
                };
                children[index] = child.remove(&path.slice(1..));
                let count = children.iter().filter(|c| c.is_some()).count();
                if count >= 2 {
                    return Some(Node::Branch {
                        children,
                        cached: None,
                    });
                }
                // One child left (or none): fold the branch into it (T2).
                let first = children.iter().position(Option::is_some)?;
                let only = children[first].take()?;
                let mut nibble = Nibbles::new();
                nibble.push(first as u8);
                Some(join_front(&nibble, only))
            }
        }
    }

    /// The reference to this node its parent embeds: the RLP itself under 32 bytes, else its
    /// hash. Cached (T1).
    fn reference(&mut self, buf: &mut Vec<u8>) -> RlpNode {
        match self {
            Node::Leaf { key, value, cached } => {
                if let Some(r) = cached {
                    return r.clone();
                }
                buf.clear();
                let r = LeafNodeRef::new(key, value).rlp(buf);
                *cached = Some(r.clone());
                r
            }
            Node::Extension { key, child, cached } => {
                if let Some(r) = cached {
                    return r.clone();
                }
                let child_ref = child.reference(buf);
                buf.clear();
                let r = ExtensionNodeRef::new(key, &child_ref).rlp(buf);
                *cached = Some(r.clone());
                r
            }
            Node::Branch { children, cached } => {
                if let Some(r) = cached {
                    return r.clone();
                }
                let (stack, mask) = child_references(children, buf);
                buf.clear();
                let r = BranchNodeRef::new(&stack, mask).rlp(buf);
                *cached = Some(r.clone());
                r
            }
        }
    }

    /// The full RLP of this node (for the root hash, which is hashed whatever its size).
    fn encode(&mut self, buf: &mut Vec<u8>) -> Vec<u8> {
        match self {
            Node::Leaf { key, value, .. } => {
                buf.clear();
                LeafNodeRef::new(key, value).rlp(buf);
                buf.clone()
            }
            Node::Extension { key, child, .. } => {
                let child_ref = child.reference(buf);
                buf.clear();
                ExtensionNodeRef::new(key, &child_ref).rlp(buf);
                buf.clone()
            }
            Node::Branch { children, .. } => {
                let (stack, mask) = child_references(children, buf);
                buf.clear();
                BranchNodeRef::new(&stack, mask).rlp(buf);
                buf.clone()
            }
        }
    }
}

/// A Merkle-Patricia trie over 32-byte hashed keys with cached node references.
#[derive(Debug, Clone, Default)]
pub struct Trie {
    root: Option<Node>,
    root_hash: Option<B256>,
}

impl Trie {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `hashed_key` to `value` (an RLP-encoded leaf value).
    pub fn insert(&mut self, hashed_key: B256, value: Vec<u8>) {
        let path = Nibbles::unpack(hashed_key);
        self.root = Some(match self.root.take() {
            None => leaf(path, value),
            Some(mut node) => {
                node.clear_cache();
                node.insert(path, value)
            }
        });
        self.root_hash = None;
    }

    /// Removes `hashed_key`; nothing happens when it is absent.
    pub fn remove(&mut self, hashed_key: B256) {
        if let Some(node) = self.root.take() {
            self.root = node.remove(&Nibbles::unpack(hashed_key));
            self.root_hash = None;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// The value at `hashed_key`, if any.
    pub fn get(&self, hashed_key: B256) -> Option<&Vec<u8>> {
        let path = Nibbles::unpack(hashed_key);
        self.root.as_ref()?.get(&path)
    }

    /// The root hash; re-hashes only what changed since the last call.
    pub fn root(&mut self) -> B256 {
        if let Some(hash) = self.root_hash {
            return hash;
        }
        let hash = match &mut self.root {
            None => EMPTY_ROOT_HASH,
            Some(node) => keccak256(node.encode(&mut Vec::with_capacity(544))),
        };
        self.root_hash = Some(hash);
        hash
    }
}

/// The account trie and every account's storage trie, following a state block by block.
#[derive(Debug, Clone, Default)]
pub struct StateRootTracker {
    accounts: Trie,
    storage: HashMap<Address, Trie>,
    /// T3: what the last `root_after` applied, kept until the next call.
    speculative: Option<Speculative>,
}

/// Changes applied by [`StateRootTracker::root_after`] and the log that takes them back.
#[derive(Debug, Clone)]
struct Speculative {
    changes: StateChanges,
    undo: Vec<Undo>,
}

fn storage_value(value: &U256) -> Vec<u8> {
    alloy_rlp::encode_fixed_size(value).to_vec()
}

impl StateRootTracker {
    /// Builds the tries of a complete state.
    pub fn new(state: &InMemoryState) -> Self {
        let mut tracker = StateRootTracker::default();
        for (address, info, storage) in state.accounts() {
            let mut trie = Trie::new();
            for (slot, value) in &storage {
                trie.insert(keccak256(B256::from(*slot)), storage_value(value));
            }
            let storage_root = trie.root();
            if !trie.is_empty() {
                tracker.storage.insert(address, trie);
            }
            let account = TrieAccount::new(info.nonce, info.balance, storage_root, info.code_hash);
            tracker
                .accounts
                .insert(keccak256(address), alloy_rlp::encode(account));
        }
        tracker
    }

    /// Follows one block's changes (as `InMemoryState::apply` applies them).
    pub fn apply(&mut self, changes: &StateChanges) {
        // T3: the block whose root was just taken is being kept: its changes are in place,
        // their paths already hashed.
        if self
            .speculative
            .as_ref()
            .is_some_and(|s| s.changes == *changes)
        {
            self.speculative = None;
            return;
        }
        self.settle();
        self.apply_changes(changes);
    }

    fn apply_changes(&mut self, changes: &StateChanges) {
        for (address, change) in changes {
            let Some(info) = change.info else {
                self.storage.remove(address);
                self.accounts.remove(keccak256(address));
                continue;
            };
            if change.storage_cleared {
                self.storage.remove(address);
            }
            if !change.storage.is_empty() {
                let trie = self.storage.entry(*address).or_default();
                for (slot, value) in &change.storage {
                    let key = keccak256(B256::from(*slot));
                    if value.is_zero() {
                        trie.remove(key);
                    } else {
                        trie.insert(key, storage_value(value));
                    }
                }
                if trie.is_empty() {
                    self.storage.remove(address);
                }
            }
            let storage_root = self
                .storage
                .get_mut(address)
                .map_or(EMPTY_ROOT_HASH, Trie::root);
            let account = TrieAccount::new(info.nonce, info.balance, storage_root, info.code_hash);
            self.accounts
                .insert(keccak256(address), alloy_rlp::encode(account));
        }
    }

    /// The state root.
    pub fn root(&mut self) -> B256 {
        self.settle();
        self.accounts.root()
    }

    /// The state root after `changes`, the tracker left observably as it was (T3): a block
    /// being built or imported commits to this root before anyone knows whether it will be
    /// kept. The changes stay applied, with a log of what they replaced, until the next
    /// call: `apply` of the same changes (the block was kept) just drops the log, so keeping
    /// a block costs one apply and one re-hash of what it touched; any other call first puts
    /// the tries back.
    pub fn root_after(&mut self, changes: &StateChanges) -> B256 {
        self.settle();
        let mut undo = Vec::new();
        self.apply_logged(changes, &mut undo);
        let root = self.accounts.root();
        self.speculative = Some(Speculative {
            changes: changes.clone(),
            undo,
        });
        root
    }

    /// Takes back the changes of the last `root_after`, if still applied.
    fn settle(&mut self) {
        let Some(Speculative { mut undo, .. }) = self.speculative.take() else {
            return;
        };
        // T3: undone newest first, so each entry sees the trie as it was when it was logged.
        while let Some(entry) = undo.pop() {
            match entry {
                Undo::Account(key, Some(value)) => self.accounts.insert(key, value),
                Undo::Account(key, None) => self.accounts.remove(key),
                Undo::Storage(address, Some(trie)) => {
                    self.storage.insert(address, trie);
                }
                Undo::Storage(address, None) => {
                    self.storage.remove(&address);
                }
                Undo::Slot(address, key, value) => {
                    let trie = self.storage.entry(address).or_default();
                    match value {
                        Some(value) => trie.insert(key, value),
                        None => trie.remove(key),
                    }
                }
            }
        }
    }

    /// `apply`, logging what each step replaced.
    fn apply_logged(&mut self, changes: &StateChanges, undo: &mut Vec<Undo>) {
        for (address, change) in changes {
            let account_key = keccak256(address);
            undo.push(Undo::Account(
                account_key,
                self.accounts.get(account_key).cloned(),
            ));
            let Some(info) = change.info else {
                // The whole storage trie is moved into the log, not copied.
                undo.push(Undo::Storage(*address, self.storage.remove(address)));
                self.accounts.remove(account_key);
                continue;
            };
            let replaced_whole = change.storage_cleared || !self.storage.contains_key(address);
            if replaced_whole {
                // A fresh trie: restoring the old one (or none) undoes every slot write too.
                undo.push(Undo::Storage(*address, self.storage.remove(address)));
            }
            if !change.storage.is_empty() {
                let trie = self.storage.entry(*address).or_default();
                for (slot, value) in &change.storage {
                    let key = keccak256(B256::from(*slot));
                    if !replaced_whole {
                        undo.push(Undo::Slot(*address, key, trie.get(key).cloned()));
                    }
                    if value.is_zero() {
                        trie.remove(key);
                    } else {
                        trie.insert(key, storage_value(value));
                    }
                }
                if trie.is_empty() {
                    let emptied = self.storage.remove(address);
                    if !replaced_whole {
                        undo.push(Undo::Storage(*address, emptied));
                    }
                }
            }
            let storage_root = self
                .storage
                .get_mut(address)
                .map_or(EMPTY_ROOT_HASH, Trie::root);
            let account = TrieAccount::new(info.nonce, info.balance, storage_root, info.code_hash);
            self.accounts
                .insert(account_key, alloy_rlp::encode(account));
        }
    }
}

/// What one step of [`StateRootTracker::root_after`] replaced.
#[derive(Debug, Clone)]
enum Undo {
    /// An account leaf and its value before (`None`: absent).
    Account(B256, Option<Vec<u8>>),
    /// A whole storage trie and the trie before (`None`: absent).
    Storage(Address, Option<Trie>),
    /// A storage leaf and its value before.
    Slot(Address, B256, Option<Vec<u8>>),
}

/// The references of a branch's children, in nibble order, and which nibbles have one.
fn child_references(
    children: &mut [Option<Node>; 16],
    buf: &mut Vec<u8>,
) -> (Vec<RlpNode>, TrieMask) {
    let mut stack = Vec::with_capacity(16);
    let mut mask = TrieMask::default();
    for (i, child) in children.iter_mut().enumerate() {
        if let Some(child) = child {
            stack.push(child.reference(buf));
            mask.set_bit(i as u8);
        }
    }
    (stack, mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trie_matches_the_hash_builder() {
        let mut trie = Trie::new();
        let mut reference = std::collections::BTreeMap::new();
        assert_eq!(trie.root(), EMPTY_ROOT_HASH);
        for i in 0u64..300 {
            let key = keccak256(i.to_be_bytes());
            let value = storage_value(&U256::from(i + 1));
            trie.insert(key, value.clone());
            reference.insert(key, value);
            if i % 7 == 3 {
                let gone = keccak256((i / 2).to_be_bytes());
                trie.remove(gone);
                reference.remove(&gone);
            }
            if i % 37 == 0 {
                let mut hb = alloy_trie::HashBuilder::default();
                for (k, v) in &reference {
                    hb.add_leaf(Nibbles::unpack(k), v);
                }
                assert_eq!(trie.root(), hb.root(), "after {i}");
            }
        }
        for k in reference.keys().copied().collect::<Vec<_>>() {
            trie.remove(k);
        }
        assert_eq!(trie.root(), EMPTY_ROOT_HASH);
    }

    fn changes_strategy() -> impl Strategy<Value = StateChanges> {
        parex_primitives::strategies::state_changes(parex_primitives::strategies::ChangesShape {
            addresses: 40,
            slots: 24,
            accounts: 11,
            slots_per_account: 5,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// After every block of random changes, the incremental root equals the full
        /// recompute over the same state.
        #[test]
        fn incremental_root_equals_full_recompute(blocks in prop::collection::vec(changes_strategy(), 1..8)) {
            let mut state = InMemoryState::new();
            for i in 0u8..20 {
                state.insert_account(Address::with_last_byte(i), U256::from(i as u64 * 3 + 1), 0, None);
                state.insert_storage(Address::with_last_byte(i), U256::from(1), U256::from(i as u64 + 1));
            }
            let mut tracker = StateRootTracker::new(&state);
            prop_assert_eq!(tracker.root(), crate::state_root(&state));
            for changes in &blocks {
                state.apply(changes);
                tracker.apply(changes);
                prop_assert_eq!(tracker.root(), crate::state_root(&state));
            }
        }

        /// T3: `root_after` gives the root `apply` would, and leaves the tracker as it was:
        /// its root and every later block's root are the full recompute's.
        #[test]
        fn root_after_leaves_the_tracker_unchanged(
            blocks in prop::collection::vec((changes_strategy(), changes_strategy()), 1..6),
        ) {
            let mut state = InMemoryState::new();
            for i in 0u8..20 {
                state.insert_account(Address::with_last_byte(i), U256::from(i as u64 * 3 + 1), 0, None);
                for slot in 0..(i as u64 % 4) {
                    state.insert_storage(Address::with_last_byte(i), U256::from(slot), U256::from(slot + 1));
                }
            }
            let mut tracker = StateRootTracker::new(&state);
            for (i, (tried, kept)) in blocks.iter().enumerate() {
                let before = tracker.root();
                let mut after = state.clone();
                after.apply(tried);
                prop_assert_eq!(tracker.root_after(tried), crate::state_root(&after));
                if i % 2 == 0 {
                    // Asked again: the tries were put back.
                    prop_assert_eq!(tracker.root(), before);
                }
                // Sometimes the tried block is kept (the fast path), else another one.
                let kept = if i % 3 == 1 { tried } else { kept };
                state.apply(kept);
                tracker.apply(kept);
                prop_assert_eq!(tracker.root(), crate::state_root(&state));
                // Two tries in a row: the second starts from the tries as they were.
                let mut twice = state.clone();
                twice.apply(kept);
                tracker.root_after(tried);
                prop_assert_eq!(tracker.root_after(kept), crate::state_root(&twice));
            }
            prop_assert_eq!(tracker.root(), crate::state_root(&state));
        }
    }
}
