//! Why a block is rejected, in the vocabulary of the execution-spec tests.
//!
//! Every rejection carries an [`Exception`]: the name the EEST fixtures use in
//! `expectException` (`"BlockException.INCORRECT_BLOB_GAS_USED"`,
//! `"TransactionException.INSUFFICIENT_ACCOUNT_FUNDS"`), so a test runner compares names, and a
//! node can report a stable reason. The engine's transaction errors are revm's (plus a few of
//! parex's own block-order checks); [`transaction_exception`] maps their text to a name.

use parex_evm::BlockError;
use parex_primitives::TxIndex;
use std::fmt;

/// A named reason for rejecting a block (the EEST exception vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Exception(&'static str);

impl Exception {
    /// The full name, `"BlockException.X"` or `"TransactionException.Y"`.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

macro_rules! exceptions {
    ($group:literal: $($name:ident),* $(,)?) => {
        $(pub const $name: Exception = Exception(concat!($group, ".", stringify!($name)));)*
    };
}

/// Block-level exceptions.
pub mod block {
    use super::Exception;
    exceptions!("BlockException":
        RLP_STRUCTURES_ENCODING,
        INCORRECT_BLOCK_FORMAT,
        UNKNOWN_PARENT,
        INVALID_BLOCK_NUMBER,
        INVALID_BLOCK_TIMESTAMP_OLDER_THAN_PARENT,
        INVALID_GASLIMIT,
        INVALID_GAS_USED,
        GAS_USED_OVERFLOW,
        INVALID_BASEFEE_PER_GAS,
        EXTRA_DATA_TOO_BIG,
        INVALID_DIFFICULTY,
        INVALID_NONCE,
        INVALID_UNCLES_HASH,
        IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS,
        UNCLE_IS_ANCESTOR,
        UNCLE_PARENT_INCORRECT,
        TOO_MANY_UNCLES,
        INVALID_TRANSACTIONS_ROOT,
        INVALID_RECEIPTS_ROOT,
        INVALID_LOG_BLOOM,
        INVALID_STATE_ROOT,
        INVALID_WITHDRAWALS_ROOT,
        INCORRECT_BLOB_GAS_USED,
        BLOB_GAS_USED_ABOVE_LIMIT,
        INCORRECT_EXCESS_BLOB_GAS,
        INVALID_REQUESTS,
        INVALID_DEPOSIT_EVENT_LAYOUT,
        SYSTEM_CONTRACT_EMPTY,
        SYSTEM_CONTRACT_CALL_FAILED,
        INVALID_BLOCK_HASH,
    );
}

/// Transaction-level exceptions (the whole block is rejected for them).
pub mod tx {
    use super::Exception;
    exceptions!("TransactionException":
        INSUFFICIENT_ACCOUNT_FUNDS,
        INSUFFICIENT_MAX_FEE_PER_GAS,
        PRIORITY_GREATER_THAN_MAX_FEE_PER_GAS,
        NONCE_MISMATCH_TOO_LOW,
        NONCE_MISMATCH_TOO_HIGH,
        NONCE_IS_MAX,
        INTRINSIC_GAS_TOO_LOW,
        INTRINSIC_GAS_BELOW_FLOOR_GAS_COST,
        INITCODE_SIZE_EXCEEDED,
        SENDER_NOT_EOA,
        GAS_ALLOWANCE_EXCEEDED,
        GAS_LIMIT_EXCEEDS_MAXIMUM,
        GASLIMIT_PRICE_PRODUCT_OVERFLOW,
        INVALID_CHAINID,
        INVALID_SIGNATURE_VRS,
        TYPE_1_TX_PRE_FORK,
        TYPE_2_TX_PRE_FORK,
        TYPE_3_TX_PRE_FORK,
        TYPE_4_TX_PRE_FORK,
        INSUFFICIENT_MAX_FEE_PER_BLOB_GAS,
        TYPE_3_TX_ZERO_BLOBS,
        TYPE_3_TX_CONTRACT_CREATION,
        TYPE_3_TX_BLOB_COUNT_EXCEEDED,
        TYPE_3_TX_INVALID_BLOB_VERSIONED_HASH,
        TYPE_3_TX_MAX_BLOB_GAS_ALLOWANCE_EXCEEDED,
        TYPE_3_TX_WITH_FULL_BLOBS,
        TYPE_4_EMPTY_AUTHORIZATION_LIST,
        TYPE_4_TX_CONTRACT_CREATION,
        TYPE_4_INVALID_AUTHORIZATION_FORMAT,
    );
}

/// Why a block was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The block breaks a rule: it must not be imported.
    #[error("{exception}: {reason}")]
    Invalid {
        exception: Exception,
        reason: String,
        /// The transaction that made the block invalid, if one did.
        index: Option<TxIndex>,
    },
    /// The backing store failed: the block was not judged.
    #[error("state store error: {0}")]
    State(String),
}

impl ChainError {
    pub fn invalid(exception: Exception, reason: impl Into<String>) -> Self {
        ChainError::Invalid {
            exception,
            reason: reason.into(),
            index: None,
        }
    }

    /// The exception name, when the block was judged invalid.
    pub fn exception(&self) -> Option<Exception> {
        match self {
            ChainError::Invalid { exception, .. } => Some(*exception),
            ChainError::State(_) => None,
        }
    }
}

impl From<parex_state::StateError> for ChainError {
    fn from(e: parex_state::StateError) -> Self {
        ChainError::State(e.0)
    }
}

impl From<BlockError> for ChainError {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::Decode { index, reason } => ChainError::Invalid {
                exception: decode_exception(&reason),
                reason: format!("transaction {index}: {reason}"),
                index: Some(index),
            },
            BlockError::Signature { index, reason } => ChainError::Invalid {
                exception: tx::INVALID_SIGNATURE_VRS,
                reason: format!("transaction {index}: {reason}"),
                index: Some(index),
            },
            BlockError::InvalidTransaction { index, reason } => ChainError::Invalid {
                exception: transaction_exception(&reason),
                reason: format!("transaction {index}: {reason}"),
                index: Some(index),
            },
            BlockError::State(message) => ChainError::State(message),
        }
    }
}

fn decode_exception(reason: &str) -> Exception {
    if reason.contains("network form") {
        tx::TYPE_3_TX_WITH_FULL_BLOBS
    } else {
        block::RLP_STRUCTURES_ENCODING
    }
}

/// The exception for an engine transaction error (revm 43's `InvalidTransaction` text, or
/// one of parex's block-order checks). Text no entry matches maps to `GAS_ALLOWANCE_EXCEEDED`,
/// never to nothing: a rejection always has a name (the reason keeps the engine's text).
pub fn transaction_exception(reason: &str) -> Exception {
    const TABLE: &[(&str, Exception)] = &[
        ("lack of funds", tx::INSUFFICIENT_ACCOUNT_FUNDS),
        (
            "gas price is less than basefee",
            tx::INSUFFICIENT_MAX_FEE_PER_GAS,
        ),
        (
            "priority fee is greater than max fee",
            tx::PRIORITY_GREATER_THAN_MAX_FEE_PER_GAS,
        ),
        ("too low, expected", tx::NONCE_MISMATCH_TOO_LOW),
        ("too high, expected", tx::NONCE_MISMATCH_TOO_HIGH),
        ("nonce overflow", tx::NONCE_IS_MAX),
        ("floor", tx::INTRINSIC_GAS_BELOW_FLOOR_GAS_COST),
        ("initial gas", tx::INTRINSIC_GAS_TOO_LOW),
        ("call gas cost", tx::INTRINSIC_GAS_TOO_LOW),
        ("initcode size limit", tx::INITCODE_SIZE_EXCEEDED),
        ("senders with deployed code", tx::SENDER_NOT_EOA),
        ("greater than the cap", tx::GAS_LIMIT_EXCEEDS_MAXIMUM),
        ("exceeds the block gas limit", tx::GAS_ALLOWANCE_EXCEEDED),
        ("exceeds remaining block gas", tx::GAS_ALLOWANCE_EXCEEDED),
        (
            "exceeds remaining block blob gas",
            tx::TYPE_3_TX_MAX_BLOB_GAS_ALLOWANCE_EXCEEDED,
        ),
        ("overflow payment", tx::GASLIMIT_PRICE_PRODUCT_OVERFLOW),
        ("chain id", tx::INVALID_CHAINID),
        ("chain ID", tx::INVALID_CHAINID),
        ("blob gas price", tx::INSUFFICIENT_MAX_FEE_PER_BLOB_GAS),
        ("max fee per blob gas not supported", tx::TYPE_3_TX_PRE_FORK),
        ("empty blobs", tx::TYPE_3_TX_ZERO_BLOBS),
        ("blob create transaction", tx::TYPE_3_TX_CONTRACT_CREATION),
        ("too many blobs", tx::TYPE_3_TX_BLOB_COUNT_EXCEEDED),
        (
            "blob version not supported",
            tx::TYPE_3_TX_INVALID_BLOB_VERSIONED_HASH,
        ),
        (
            "empty authorization list",
            tx::TYPE_4_EMPTY_AUTHORIZATION_LIST,
        ),
        (
            "authorization list tx has invalid fields",
            tx::TYPE_4_INVALID_AUTHORIZATION_FORMAT,
        ),
        ("Eip2930 is not supported", tx::TYPE_1_TX_PRE_FORK),
        ("access list not supported", tx::TYPE_1_TX_PRE_FORK),
        ("Eip1559 is not supported", tx::TYPE_2_TX_PRE_FORK),
        ("Eip4844 is not supported", tx::TYPE_3_TX_PRE_FORK),
        (
            "blob versioned hashes not supported",
            tx::TYPE_3_TX_PRE_FORK,
        ),
        ("Eip7702 is not supported", tx::TYPE_4_TX_PRE_FORK),
        ("authorization list not supported", tx::TYPE_4_TX_PRE_FORK),
    ];
    TABLE
        .iter()
        .find(|(needle, _)| reason.contains(needle))
        .map_or(tx::GAS_ALLOWANCE_EXCEEDED, |(_, exception)| *exception)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_fixture_names() {
        assert_eq!(
            block::INCORRECT_BLOB_GAS_USED.name(),
            "BlockException.INCORRECT_BLOB_GAS_USED"
        );
        assert_eq!(
            tx::INSUFFICIENT_ACCOUNT_FUNDS.name(),
            "TransactionException.INSUFFICIENT_ACCOUNT_FUNDS"
        );
    }

    #[test]
    fn revm_texts_map_to_names() {
        assert_eq!(
            transaction_exception("lack of funds (1) for max fee (2)"),
            tx::INSUFFICIENT_ACCOUNT_FUNDS
        );
        assert_eq!(
            transaction_exception("nonce 1 too low, expected 2"),
            tx::NONCE_MISMATCH_TOO_LOW
        );
        assert_eq!(
            transaction_exception("blob gas 131072 exceeds remaining block blob gas 0"),
            tx::TYPE_3_TX_MAX_BLOB_GAS_ALLOWANCE_EXCEEDED
        );
        assert_eq!(
            transaction_exception("gas limit 5 exceeds remaining block gas 4"),
            tx::GAS_ALLOWANCE_EXCEEDED
        );
    }
}
