//! One raw transaction decoded and its sender recovered, for a node's pool and its RPC
//! (`eth_sendRawTransaction`, `eth_getTransactionByHash`).

use crate::prepare::{recover_address, SECP256K1N_HALF};
use crate::BlockError;
use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use parex_primitives::{keccak256, Address, Bytes, B256, U256};

/// A decoded, signature-checked transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInfo {
    pub hash: B256,
    pub sender: Address,
    /// EIP-2718 type: 0 legacy .. 4 EIP-7702.
    pub tx_type: u8,
    /// `None` for a pre-EIP-155 legacy transaction.
    pub chain_id: Option<u64>,
    pub nonce: u64,
    pub gas_limit: u64,
    /// The gas price of legacy and EIP-2930 transactions, the fee cap of the others.
    pub max_fee_per_gas: u128,
    /// `None` for legacy and EIP-2930 transactions.
    pub max_priority_fee_per_gas: Option<u128>,
    pub max_fee_per_blob_gas: Option<u128>,
    pub blob_versioned_hashes: Vec<B256>,
    pub to: Option<Address>,
    pub value: U256,
    pub input: Bytes,
    /// `(address, storage keys)` pairs.
    pub access_list: Vec<(Address, Vec<B256>)>,
    /// EIP-7702 authorizations: `(chain id, address, nonce, y parity, r, s)`.
    pub authorization_list: Vec<(U256, Address, u64, u8, U256, U256)>,
    /// Signature: `v` as the envelope encodes it (legacy: 27/28 or EIP-155), y parity, r, s.
    pub v: u64,
    pub y_parity: bool,
    pub r: U256,
    pub s: U256,
}

impl TxInfo {
    /// What the transaction pays the block's beneficiary per gas at `base_fee`; `None` when
    /// its fee cap is below the base fee.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        let base_fee = base_fee as u128;
        let room = self.max_fee_per_gas.checked_sub(base_fee)?;
        Some(match self.max_priority_fee_per_gas {
            Some(tip) => tip.min(room),
            None => room,
        })
    }
}

/// Decodes one EIP-2718 envelope (types 0-4) and recovers its sender (EIP-2 low `s`).
pub fn decode_transaction(raw: &[u8]) -> Result<TxInfo, BlockError> {
    decode(raw, true)
}

/// Decodes one envelope without recovering its sender (`sender` is zero): for transactions
/// already in a block, whose senders are known, at a fraction of the cost.
pub fn decode_transaction_unrecovered(raw: &[u8]) -> Result<TxInfo, BlockError> {
    decode(raw, false)
}

fn decode(raw: &[u8], recover: bool) -> Result<TxInfo, BlockError> {
    let envelope = TxEnvelope::decode_2718_exact(raw).map_err(|e| BlockError::Decode {
        index: 0,
        reason: e.to_string(),
    })?;
    let signature = *envelope.signature();
    if signature.s() > SECP256K1N_HALF {
        return Err(BlockError::Signature {
            index: 0,
            reason: "s above secp256k1n/2 (EIP-2)".into(),
        });
    }
    let sender = if recover {
        recover_address(
            signature.r(),
            signature.s(),
            signature.v(),
            &envelope.signature_hash(),
        )
        .map_err(|reason| BlockError::Signature { index: 0, reason })?
    } else {
        Address::ZERO
    };
    let tx_type = envelope.tx_type() as u8;
    let v = match &envelope {
        TxEnvelope::Legacy(signed) => match signed.tx().chain_id {
            Some(id) => id * 2 + 35 + signature.v() as u64,
            None => 27 + signature.v() as u64,
        },
        _ => signature.v() as u64,
    };
    let access_list = envelope
        .access_list()
        .map(|list| {
            list.iter()
                .map(|item| (item.address, item.storage_keys.clone()))
                .collect()
        })
        .unwrap_or_default();
    let authorization_list = envelope
        .authorization_list()
        .map(|list| {
            list.iter()
                .map(|auth| {
                    (
                        auth.chain_id,
                        auth.address,
                        auth.nonce,
                        auth.y_parity(),
                        auth.r(),
                        auth.s(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let legacy_fee = matches!(tx_type, 0 | 1);
    Ok(TxInfo {
        hash: keccak256(raw),
        sender,
        tx_type,
        chain_id: envelope.chain_id(),
        nonce: envelope.nonce(),
        gas_limit: envelope.gas_limit(),
        max_fee_per_gas: envelope.max_fee_per_gas(),
        max_priority_fee_per_gas: if legacy_fee {
            None
        } else {
            envelope.max_priority_fee_per_gas()
        },
        max_fee_per_blob_gas: envelope.max_fee_per_blob_gas(),
        blob_versioned_hashes: envelope
            .blob_versioned_hashes()
            .map(|h| h.to_vec())
            .unwrap_or_default(),
        to: envelope.to(),
        value: envelope.value(),
        input: envelope.input().clone(),
        access_list,
        authorization_list,
        v,
        y_parity: signature.v(),
        r: signature.r(),
        s: signature.s(),
    })
}
