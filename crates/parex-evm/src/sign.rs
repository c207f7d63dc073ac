//! Signing, for workload generators and tests. Not used on the execution path.

use crate::BlockError;
use parex_primitives::{Address, Bytes, U256};

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

/// The address of a secp256k1 secret key.
pub fn address_of(secret: &[u8; 32]) -> Result<Address, BlockError> {
    let _ = secret;
    todo!("parex-evm adapter")
}

/// Signs `request` as an EIP-1559 transaction for `chain_id`; returns the EIP-2718 envelope.
pub fn sign_eip1559(chain_id: u64, secret: &[u8; 32], request: &TxRequest) -> Result<Bytes, BlockError> {
    let _ = (chain_id, secret, request);
    todo!("parex-evm adapter")
}
