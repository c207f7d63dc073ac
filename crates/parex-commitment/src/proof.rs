//! Merkle proofs of accounts and storage slots (`eth_getProof`, EIP-1186) over a complete
//! in-memory state, with alloy-trie's proof retainer.
//!
//! The whole trie is rebuilt for each proof (as [`crate::state_root`] builds it): right for a
//! dev chain, linear in the state's size.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_trie::proof::ProofRetainer;
use alloy_trie::{HashBuilder, Nibbles, TrieAccount, EMPTY_ROOT_HASH};
use parex_primitives::AccountInfo;
use parex_state::InMemoryState;
use rayon::prelude::*;

/// One storage slot's value and proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageProof {
    pub slot: U256,
    pub value: U256,
    /// RLP trie nodes from the storage root to the slot (or to where it would be).
    pub proof: Vec<Bytes>,
}

/// An account's proof against the state root, with proofs of some of its slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    pub address: Address,
    /// `None` when the account does not exist (the proof shows its absence).
    pub info: Option<AccountInfo>,
    pub storage_root: B256,
    /// RLP trie nodes from the state root to the account (or to where it would be).
    pub account_proof: Vec<Bytes>,
    pub storage_proofs: Vec<StorageProof>,
}

fn storage_root_of(storage: &[(U256, U256)]) -> B256 {
    if storage.is_empty() {
        return EMPTY_ROOT_HASH;
    }
    alloy_trie::root::storage_root_unhashed(storage.iter().map(|(k, v)| (B256::from(*k), *v)))
}

fn proof_for(nodes: &alloy_trie::proof::ProofNodes, key: &Nibbles) -> Vec<Bytes> {
    nodes
        .matching_nodes_sorted(key)
        .into_iter()
        .map(|(_, node)| node)
        .collect()
}

/// The proof of `address` and of `slots` in its storage, against [`crate::state_root`].
pub fn account_proof(state: &InMemoryState, address: Address, slots: &[U256]) -> AccountProof {
    let accounts = state.accounts();
    let target = Nibbles::unpack(keccak256(address));
    let mut leaves: Vec<(B256, TrieAccount)> = accounts
        .par_iter()
        .map(|(a, info, storage)| {
            (
                keccak256(a),
                TrieAccount::new(
                    info.nonce,
                    info.balance,
                    storage_root_of(storage),
                    info.code_hash,
                ),
            )
        })
        .collect();
    leaves.par_sort_unstable_by_key(|(hashed, _)| *hashed);
    let mut builder = HashBuilder::default().with_proof_retainer(ProofRetainer::new(vec![target]));
    let mut encoded = Vec::new();
    for (hashed, account) in &leaves {
        encoded.clear();
        alloy_rlp::Encodable::encode(account, &mut encoded);
        builder.add_leaf(Nibbles::unpack(hashed), &encoded);
    }
    builder.root();
    let account_proof = proof_for(&builder.take_proof_nodes(), &target);

    let found = accounts.iter().find(|(a, _, _)| *a == address);
    let storage: &[(U256, U256)] = found.map_or(&[], |(_, _, s)| s.as_slice());
    let storage_root = storage_root_of(storage);
    let slot_targets: Vec<Nibbles> = slots
        .iter()
        .map(|s| Nibbles::unpack(keccak256(B256::from(*s))))
        .collect();
    let mut hashed_storage: Vec<(B256, U256)> = storage
        .iter()
        .map(|(k, v)| (keccak256(B256::from(*k)), *v))
        .collect();
    hashed_storage.sort_unstable_by_key(|(k, _)| *k);
    let mut builder =
        HashBuilder::default().with_proof_retainer(ProofRetainer::new(slot_targets.clone()));
    for (hashed, value) in &hashed_storage {
        builder.add_leaf(
            Nibbles::unpack(hashed),
            alloy_rlp::encode_fixed_size(value).as_ref(),
        );
    }
    builder.root();
    let nodes = builder.take_proof_nodes();
    let storage_proofs = slots
        .iter()
        .zip(&slot_targets)
        .map(|(slot, key)| StorageProof {
            slot: *slot,
            value: storage
                .iter()
                .find(|(k, _)| k == slot)
                .map_or(U256::ZERO, |(_, v)| *v),
            proof: proof_for(&nodes, key),
        })
        .collect();
    AccountProof {
        address,
        info: found.map(|(_, info, _)| *info),
        storage_root,
        account_proof,
        storage_proofs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::proof::verify_proof;

    #[test]
    fn proofs_verify_against_the_state_root() {
        let mut state = InMemoryState::new();
        for i in 0..200u64 {
            let a = Address::with_last_byte((i % 250) as u8).create(i);
            state.insert_account(a, U256::from(i * 7 + 1), i, None);
            for s in 0..(i % 5) {
                state.insert_storage(a, U256::from(s), U256::from(s * 31 + i + 1));
            }
        }
        let root = crate::state_root(&state);
        let present = Address::with_last_byte(3).create(3);
        let absent = Address::repeat_byte(0x99);
        for address in [present, absent] {
            let slots = [U256::from(0), U256::from(2), U256::from(77)];
            let proof = account_proof(&state, address, &slots);
            let expected = proof.info.map(|info| {
                alloy_rlp::encode(TrieAccount::new(
                    info.nonce,
                    info.balance,
                    proof.storage_root,
                    info.code_hash,
                ))
            });
            verify_proof(
                root,
                Nibbles::unpack(keccak256(address)),
                expected,
                &proof.account_proof,
            )
            .expect("account proof");
            for sp in &proof.storage_proofs {
                let expected =
                    (!sp.value.is_zero()).then(|| alloy_rlp::encode_fixed_size(&sp.value).to_vec());
                verify_proof(
                    proof.storage_root,
                    Nibbles::unpack(keccak256(B256::from(sp.slot))),
                    expected,
                    &sp.proof,
                )
                .expect("storage proof");
            }
        }
        let proof = account_proof(&state, present, &[U256::from(0)]);
        assert_eq!(proof.storage_proofs[0].value, U256::from(4));
        // A proof of the wrong value fails.
        assert!(verify_proof(
            root,
            Nibbles::unpack(keccak256(present)),
            Some(vec![1, 2, 3]),
            &proof.account_proof
        )
        .is_err());
    }
}
