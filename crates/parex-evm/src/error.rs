use parex_primitives::TxIndex;

/// Why a block could not be executed. Every variant that concerns one transaction names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The bytes are not a valid EIP-2718 envelope of a supported type.
    #[error("transaction {index}: malformed envelope: {reason}")]
    Decode { index: TxIndex, reason: String },
    /// The signature does not recover to a sender.
    #[error("transaction {index}: bad signature: {reason}")]
    Signature { index: TxIndex, reason: String },
    /// The transaction cannot be included in this block (nonce, balance, gas, chain id, ...).
    #[error("transaction {index}: invalid: {reason}")]
    InvalidTransaction { index: TxIndex, reason: String },
    /// The pre-block store failed; the block is not judged.
    #[error("state store error: {0}")]
    State(String),
}

impl BlockError {
    /// The transaction the error concerns, if any.
    pub fn index(&self) -> Option<TxIndex> {
        match self {
            BlockError::Decode { index, .. }
            | BlockError::Signature { index, .. }
            | BlockError::InvalidTransaction { index, .. } => Some(*index),
            BlockError::State(_) => None,
        }
    }
}
