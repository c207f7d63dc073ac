//! One raw transaction decoded and its sender recovered, for a node's pool and its RPC
//! (`eth_sendRawTransaction`, `eth_getTransactionByHash`).

use crate::prepare::{recover_address, SECP256K1N_HALF};
use crate::BlockError;
use alloy_consensus::{Signed, Transaction as _, TxEip4844Variant, TxEnvelope};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_eips::eip7594::BlobTransactionSidecarVariant;
use alloy_rlp::Header;
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

/// A transaction as a pool receives it. A blob transaction arrives in its EIP-4844 network
/// form, `0x03 || rlp([tx_payload_body, blobs, commitments, proofs])`; blocks carry only its
/// canonical form, `0x03 || tx_payload_body`, whose hash is the transaction hash.
#[derive(Debug, Clone)]
pub struct PooledTxInfo {
    /// Decoded from the canonical form (`info.hash` is the canonical hash).
    pub info: TxInfo,
    /// The canonical EIP-2718 encoding: what a block carries.
    pub canonical: Vec<u8>,
    /// The sidecar of a network-form blob transaction; not yet validated (see
    /// [`crate::blob::validate_sidecar`]). `None` for every other form.
    pub sidecar: Option<BlobTransactionSidecarVariant>,
}

/// Decodes a transaction as `eth_sendRawTransaction` receives it (types 0-4; type 3 in its
/// canonical or network form), recovers its sender and splits off a blob sidecar.
pub fn decode_pooled_transaction(raw: &[u8]) -> Result<PooledTxInfo, BlockError> {
    let envelope = decode_envelope(raw)?;
    match envelope {
        TxEnvelope::Eip4844(signed)
            if matches!(signed.tx(), TxEip4844Variant::TxEip4844WithSidecar(_)) =>
        {
            let (tx, signature, _) = signed.into_parts();
            let (tx, sidecar) = tx.strip_sidecar();
            let canonical_envelope = TxEnvelope::Eip4844(Signed::new_unhashed(tx, signature));
            let canonical = canonical_envelope.encoded_2718();
            let info = info_of(canonical_envelope, &canonical, true)?;
            Ok(PooledTxInfo {
                info,
                canonical,
                sidecar,
            })
        }
        envelope => Ok(PooledTxInfo {
            info: info_of(envelope, raw, true)?,
            canonical: raw.to_vec(),
            sidecar: None,
        }),
    }
}

fn decode_envelope(raw: &[u8]) -> Result<TxEnvelope, BlockError> {
    TxEnvelope::decode_2718_exact(raw).map_err(|e| BlockError::Decode {
        index: 0,
        // alloy's `to` of a blob transaction is an address, so a create fails to decode:
        // name the rule rather than the RLP detail (geth's ErrBlobTxCreate).
        reason: if blob_tx_is_create(raw) {
            "blob transaction of type create".into()
        } else {
            e.to_string()
        },
    })
}

/// Whether `raw` is a type-3 envelope (canonical or network form) whose `to` field, the
/// sixth of the payload body, is empty.
fn blob_tx_is_create(raw: &[u8]) -> bool {
    let Some((&3, mut buf)) = raw.split_first() else {
        return false;
    };
    let list = |buf: &mut &[u8]| matches!(Header::decode(buf), Ok(h) if h.list);
    if !list(&mut buf) {
        return false;
    }
    // The network form wraps the body in a further list.
    if buf.first().is_some_and(|&b| b >= 0xc0) && !list(&mut buf) {
        return false;
    }
    for _ in 0..5 {
        // A single byte below 0x80 is its own payload: `decode` leaves it in place.
        match Header::decode(&mut buf) {
            Ok(h) if !h.list && h.payload_length <= buf.len() => buf = &buf[h.payload_length..],
            _ => return false,
        }
    }
    buf.first() == Some(&0x80)
}

fn decode(raw: &[u8], recover: bool) -> Result<TxInfo, BlockError> {
    info_of(decode_envelope(raw)?, raw, recover)
}

/// The fields of `envelope`, whose EIP-2718 encoding is `encoded`.
fn info_of(envelope: TxEnvelope, encoded: &[u8], recover: bool) -> Result<TxInfo, BlockError> {
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
        hash: keccak256(encoded),
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{SignableTransaction, TxEip4844, TxEip4844WithSidecar};
    use alloy_eips::eip4844::env_settings::EnvKzgSettings;
    use alloy_eips::eip4844::{Blob, BlobTransactionSidecar};
    use alloy_primitives::Signature;
    use alloy_rlp::Encodable;
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    use secp256k1::{Message, SecretKey};

    const SECRET: [u8; 32] = [0x42; 32];

    fn sign(hash: B256) -> Signature {
        let key = SecretKey::from_secret_bytes(SECRET).unwrap();
        let sig = RecoverableSignature::sign_ecdsa_recoverable(Message::from_digest(hash.0), &key);
        let (recid, compact) = sig.serialize_compact();
        Signature::new(
            U256::from_be_slice(&compact[..32]),
            U256::from_be_slice(&compact[32..]),
            recid == RecoveryId::One,
        )
    }

    fn blob_tx() -> (TxEip4844, BlobTransactionSidecar) {
        let mut blob = Blob::default();
        blob[31] = 7;
        let sidecar = BlobTransactionSidecar::try_from_blobs_with_settings(
            vec![blob],
            EnvKzgSettings::Default.get(),
        )
        .unwrap();
        let tx = TxEip4844 {
            chain_id: 1,
            nonce: 3,
            gas_limit: 21_000,
            max_fee_per_gas: 10,
            max_priority_fee_per_gas: 1,
            to: Address::repeat_byte(0xee),
            value: U256::from(5),
            access_list: Default::default(),
            blob_versioned_hashes: sidecar.versioned_hashes().collect(),
            max_fee_per_blob_gas: 2,
            input: Bytes::new(),
        };
        (tx, sidecar)
    }

    #[test]
    fn network_form_splits_into_canonical_transaction_and_sidecar() {
        let (tx, sidecar) = blob_tx();
        let signature = sign(tx.signature_hash());
        let canonical = TxEnvelope::from(tx.clone().into_signed(signature)).encoded_2718();
        let with_sidecar = TxEip4844WithSidecar::from_tx_and_sidecar(tx, sidecar.clone());
        let network =
            alloy_consensus::EthereumTxEnvelope::Eip4844(with_sidecar.into_signed(signature))
                .encoded_2718();
        assert!(network.len() > canonical.len() + 131072);

        let pooled = decode_pooled_transaction(&network).unwrap();
        assert_eq!(pooled.canonical, canonical);
        assert_eq!(pooled.info.hash, keccak256(&canonical));
        assert_eq!(pooled.info.tx_type, 3);
        assert_eq!(
            pooled.info.sender,
            crate::sign::address_of(&SECRET).unwrap()
        );
        assert_eq!(pooled.info.max_fee_per_blob_gas, Some(2));
        let got = pooled.sidecar.expect("sidecar");
        assert_eq!(got, BlobTransactionSidecarVariant::Eip4844(sidecar));
        assert_eq!(
            crate::blob::validate_sidecar(&pooled.info.blob_versioned_hashes, &got, 9),
            Ok(())
        );

        // The canonical form decodes to the same transaction, without a sidecar.
        let plain = decode_pooled_transaction(&canonical).unwrap();
        assert_eq!(plain.info, pooled.info);
        assert!(plain.sidecar.is_none());
        assert_eq!(decode_transaction(&canonical).unwrap(), pooled.info);
    }

    #[test]
    fn a_blob_create_is_named() {
        let (tx, _) = blob_tx();
        // The canonical body with an empty `to`: alloy's type cannot hold it, so encode by hand.
        let mut fields = Vec::new();
        tx.chain_id.encode(&mut fields);
        tx.nonce.encode(&mut fields);
        tx.max_priority_fee_per_gas.encode(&mut fields);
        tx.max_fee_per_gas.encode(&mut fields);
        tx.gas_limit.encode(&mut fields);
        fields.push(0x80);
        tx.value.encode(&mut fields);
        tx.input.encode(&mut fields);
        tx.access_list.encode(&mut fields);
        tx.max_fee_per_blob_gas.encode(&mut fields);
        tx.blob_versioned_hashes.encode(&mut fields);
        0u8.encode(&mut fields);
        U256::from(1).encode(&mut fields);
        U256::from(1).encode(&mut fields);
        let mut raw = vec![3u8];
        Header {
            list: true,
            payload_length: fields.len(),
        }
        .encode(&mut raw);
        raw.extend_from_slice(&fields);
        match decode_pooled_transaction(&raw) {
            Err(BlockError::Decode { reason, .. }) => {
                assert_eq!(reason, "blob transaction of type create")
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
        // Anything else undecodable keeps alloy's reason.
        raw[1 + 2] ^= 0xff;
        let err = decode_pooled_transaction(&raw[..raw.len() - 1]).unwrap_err();
        assert!(!err.to_string().contains("type create"), "{err}");
    }
}
