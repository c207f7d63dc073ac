//! The exception hierarchy of `parex._core`, and the mapping from [`BlockError`].
//!
//! ```text
//! ParexError(Exception)
//! ├── TransactionError        .index, .reason
//! │   ├── DecodeError
//! │   ├── SignatureError
//! │   └── InvalidTransaction
//! └── StateError
//! ```

use parex_evm::BlockError;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    parex._core,
    ParexError,
    PyException,
    "Base class of every error parex raises about a block."
);
pyo3::create_exception!(
    parex._core,
    TransactionError,
    ParexError,
    "A transaction made the block invalid; `.index` is its position, `.reason` says why."
);
pyo3::create_exception!(
    parex._core,
    DecodeError,
    TransactionError,
    "The bytes are not a valid EIP-2718 envelope of a supported type."
);
pyo3::create_exception!(
    parex._core,
    SignatureError,
    TransactionError,
    "The signature does not recover to a sender."
);
pyo3::create_exception!(
    parex._core,
    InvalidTransaction,
    TransactionError,
    "The transaction cannot be included in the block (nonce, balance, gas, chain id, ...)."
);
pyo3::create_exception!(
    parex._core,
    StateError,
    ParexError,
    "The pre-block state failed; the block was not judged."
);

/// Gives `TransactionError` class-level defaults so that `.index`/`.reason` exist on every
/// instance, including ones raised from Python.
pub fn init_attributes(py: Python<'_>) -> PyResult<()> {
    let cls = py.get_type::<TransactionError>();
    cls.setattr("index", py.None())?;
    cls.setattr("reason", "")?;
    Ok(())
}

pub(crate) fn transaction_error(py: Python<'_>, err: PyErr, index: u32, reason: &str) -> PyErr {
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail short of memory exhaustion;
    // if it does, the exception is still the right type with the right message.
    let _ = value.setattr("index", index);
    let _ = value.setattr("reason", reason);
    err
}

pub fn block_error(py: Python<'_>, err: &BlockError) -> PyErr {
    let message = err.to_string();
    match err {
        BlockError::Decode { index, reason } => {
            transaction_error(py, DecodeError::new_err(message), *index, reason)
        }
        BlockError::Signature { index, reason } => {
            transaction_error(py, SignatureError::new_err(message), *index, reason)
        }
        BlockError::InvalidTransaction { index, reason } => {
            transaction_error(py, InvalidTransaction::new_err(message), *index, reason)
        }
        BlockError::State(_) => StateError::new_err(message),
    }
}

pub fn state_error(err: parex_state::StateError) -> PyErr {
    StateError::new_err(err.to_string())
}

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs `f`, turning a panic into a `ParexError` naming `what`: nothing unwinds into the
/// interpreter.
pub fn caught<T>(what: &str, f: impl FnOnce() -> T) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| panic_error(what, &*p))
}

/// A Rust panic caught at the FFI boundary: a bug in parex, reported as `ParexError`.
pub fn panic_error(what: &str, payload: &(dyn std::any::Any + Send)) -> PyErr {
    ParexError::new_err(format!(
        "internal error: {what} panicked: {}",
        panic_message(payload)
    ))
}
