//! Signing, for workload generators and tests. Not used on the execution path.

use crate::prepare::address_of_public;
use crate::BlockError;
use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxEip2930, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip2930::AccessList;
use alloy_primitives::Signature;
use parex_primitives::{Address, Bytes, B256, U256};
use revm::primitives::TxKind;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SecretKey};

/// An unsigned EIP-1559 transaction request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRequest {
    pub nonce: u64,
    /// `None` creates a contract.
    pub to: Option<Address>,
    pub value: U256,
    pub input: Bytes,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

fn secret_key(secret: &[u8; 32]) -> Result<SecretKey, BlockError> {
    SecretKey::from_secret_bytes(*secret).map_err(|e| BlockError::Signature {
        index: 0,
        reason: format!("invalid secret key: {e}"),
    })
}

fn sign_hash(secret: &[u8; 32], hash: B256) -> Result<Signature, BlockError> {
    let key = secret_key(secret)?;
    let signature =
        RecoverableSignature::sign_ecdsa_recoverable(Message::from_digest(hash.0), &key);
    let (recid, compact) = signature.serialize_compact();
    let r = U256::from_be_slice(&compact[..32]);
    let s = U256::from_be_slice(&compact[32..]);
    Ok(Signature::new(r, s, recid == RecoveryId::One))
}

/// Signs `tx` and returns its EIP-2718 envelope.
fn signed_envelope<T>(secret: &[u8; 32], tx: T) -> Result<Bytes, BlockError>
where
    T: SignableTransaction<Signature>,
    TxEnvelope: From<Signed<T>>,
{
    let signature = sign_hash(secret, tx.signature_hash())?;
    Ok(TxEnvelope::from(tx.into_signed(signature))
        .encoded_2718()
        .into())
}

fn kind(to: Option<Address>) -> TxKind {
    to.map_or(TxKind::Create, TxKind::Call)
}

/// The address of a secp256k1 secret key.
pub fn address_of(secret: &[u8; 32]) -> Result<Address, BlockError> {
    Ok(address_of_public(&PublicKey::from_secret_key(&secret_key(
        secret,
    )?)))
}

/// Signs `request` as an EIP-1559 transaction for `chain_id`; returns the EIP-2718 envelope.
pub fn sign_eip1559(
    chain_id: u64,
    secret: &[u8; 32],
    request: &TxRequest,
) -> Result<Bytes, BlockError> {
    let tx = TxEip1559 {
        chain_id,
        nonce: request.nonce,
        gas_limit: request.gas_limit,
        max_fee_per_gas: request.max_fee_per_gas,
        max_priority_fee_per_gas: request.max_priority_fee_per_gas,
        to: kind(request.to),
        value: request.value,
        access_list: AccessList::default(),
        input: request.input.clone(),
    };
    signed_envelope(secret, tx)
}

/// Signs `request` as a legacy transaction (gas price `max_fee_per_gas`); `chain_id: None`
/// signs the pre-EIP-155 way.
pub fn sign_legacy(
    chain_id: Option<u64>,
    secret: &[u8; 32],
    request: &TxRequest,
) -> Result<Bytes, BlockError> {
    let tx = TxLegacy {
        chain_id,
        nonce: request.nonce,
        gas_price: request.max_fee_per_gas,
        gas_limit: request.gas_limit,
        to: kind(request.to),
        value: request.value,
        input: request.input.clone(),
    };
    signed_envelope(secret, tx)
}

/// Signs `request` as an EIP-2930 transaction (gas price `max_fee_per_gas`) with `access_list`.
pub fn sign_eip2930(
    chain_id: u64,
    secret: &[u8; 32],
    request: &TxRequest,
    access_list: AccessList,
) -> Result<Bytes, BlockError> {
    let tx = TxEip2930 {
        chain_id,
        nonce: request.nonce,
        gas_price: request.max_fee_per_gas,
        gas_limit: request.gas_limit,
        to: kind(request.to),
        value: request.value,
        access_list,
        input: request.input.clone(),
    };
    signed_envelope(secret, tx)
}
