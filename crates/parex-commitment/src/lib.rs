//! Ethereum commitments over parex data, on alloy's hash builder.
//!
//! Storage roots are independent of each other, so [`state_root`] computes them in parallel
//! (rayon) before folding the account trie, which must be built in key order.

use alloy_consensus::{
    Eip658Value, Receipt as AlloyReceipt, ReceiptEnvelope, ReceiptWithBloom, TxType,
};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Bloom, B256};
use alloy_trie::root::{ordered_trie_root_encoded, storage_root_unhashed};
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH};
use parex_primitives::{keccak256, Bytes, Log, Receipt};
use parex_state::InMemoryState;
use rayon::prelude::*;

/// The root of the state trie of a complete in-memory state.
pub fn state_root(state: &InMemoryState) -> B256 {
    let accounts = state.accounts();
    let mut leaves: Vec<(B256, TrieAccount)> = accounts
        .into_par_iter()
        .map(|(address, info, storage)| {
            let storage_root = if storage.is_empty() {
                EMPTY_ROOT_HASH
            } else {
                storage_root_unhashed(
                    storage
                        .into_iter()
                        .map(|(slot, value)| (B256::from(slot), value)),
                )
            };
            let account = TrieAccount::new(info.nonce, info.balance, storage_root, info.code_hash);
            (keccak256(address), account)
        })
        .collect();
    leaves.par_sort_unstable_by_key(|(hashed, _)| *hashed);
    alloy_trie::root::state_root(leaves)
}

/// keccak256 of the RLP list of `logs` (each `[address, topics, data]`): the `logs` hash of
/// the execution-spec state tests. No logs hash to keccak256 of the empty list, `0xc0`.
pub fn logs_hash<'a>(logs: impl IntoIterator<Item = &'a Log>) -> B256 {
    let logs: Vec<&Log> = logs.into_iter().collect();
    let mut out = Vec::new();
    alloy_rlp::encode_list::<&Log, Log>(&logs, &mut out);
    keccak256(&out)
}

pub use alloy_primitives::logs_bloom;

/// The bloom filter of a block: the union of its receipts' blooms.
pub fn block_logs_bloom(receipts: &[Receipt]) -> Bloom {
    logs_bloom(receipts.iter().flat_map(|r| r.logs.iter()))
}

/// The EIP-2718 encoding of a receipt (Byzantium and later: status, not a post-state root).
fn encode_receipt(receipt: &Receipt) -> Vec<u8> {
    let inner = AlloyReceipt {
        status: Eip658Value::Eip658(receipt.success),
        cumulative_gas_used: receipt.cumulative_gas_used,
        // alloy encodes only receipts that own their logs.
        logs: receipt.logs.clone(),
    };
    let with_bloom = ReceiptWithBloom {
        logs_bloom: logs_bloom(&receipt.logs),
        receipt: inner,
    };
    let tx_type = TxType::try_from(receipt.tx_type).unwrap_or(TxType::Legacy);
    ReceiptEnvelope::from_typed(tx_type, with_bloom).encoded_2718()
}

/// The receipts root of a block from Byzantium on.
pub fn receipts_root(receipts: &[Receipt]) -> B256 {
    let encoded: Vec<Vec<u8>> = receipts.par_iter().map(encode_receipt).collect();
    ordered_trie_root_encoded(&encoded)
}

/// The transactions root of a block, from the raw EIP-2718 envelopes it carries.
pub fn transactions_root(raw_transactions: &[Bytes]) -> B256 {
    ordered_trie_root_encoded(raw_transactions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, U256};

    #[test]
    fn empty_state_has_the_empty_root() {
        assert_eq!(state_root(&InMemoryState::new()), EMPTY_ROOT_HASH);
        assert_eq!(receipts_root(&[]), EMPTY_ROOT_HASH);
    }

    #[test]
    fn logs_hash_is_the_keccak_of_the_rlp_list() {
        // keccak256(rlp([])) = keccak256(0xc0), the value of every state test without logs.
        assert_eq!(
            logs_hash([]),
            "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
                .parse::<B256>()
                .unwrap()
        );
        let log = Log::new_unchecked(
            Address::with_last_byte(0xaa),
            vec![B256::with_last_byte(1)],
            Bytes::from_static(&[0xde, 0xad]),
        );
        // rlp([[address, [topic], data]]) built by hand.
        let mut item = vec![0x94];
        item.extend_from_slice(log.address.as_slice());
        item.extend_from_slice(&[0xe1, 0xa0]);
        item.extend_from_slice(B256::with_last_byte(1).as_slice());
        item.extend_from_slice(&[0x82, 0xde, 0xad]);
        assert_eq!(item.len(), 58); // over 55: long list headers
        let mut encoded = vec![0xf8, 60, 0xf8, 58];
        encoded.extend_from_slice(&item);
        assert_eq!(logs_hash([&log]), keccak256(&encoded));
    }

    #[test]
    fn parallel_state_root_equals_the_reference() {
        let mut state = InMemoryState::new();
        for i in 0..200u64 {
            let address = Address::with_last_byte(i as u8).create(i);
            state.insert_account(address, U256::from(i * 7 + 1), i, None);
            for slot in 0..(i % 5) {
                state.insert_storage(address, U256::from(slot), U256::from(slot + i + 1));
            }
        }
        let reference = alloy_trie::root::state_root_unhashed(state.accounts().into_iter().map(
            |(address, info, storage)| {
                let storage_root =
                    storage_root_unhashed(storage.into_iter().map(|(s, v)| (B256::from(s), v)));
                (
                    address,
                    TrieAccount::new(info.nonce, info.balance, storage_root, info.code_hash),
                )
            },
        ));
        assert_eq!(state_root(&state), reference);
    }
}
