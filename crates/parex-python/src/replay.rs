//! What `parex replay` needs from Rust: RPC transaction objects → envelopes, and the header
//! commitments (receipts root, logs bloom, transactions root) of a result.

use crate::convert::{bad, bytes_arg, bytes_to_py, transactions_arg};
use crate::errors::{self, transaction_error, DecodeError};
use crate::result::BlockResult;
use parex_evm::rpc_json::{envelopes_from_rpc_json, RpcTxError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A `DecodeError` naming the transaction, like the engine's; a bad document is a `ValueError`.
fn rpc_error(py: Python<'_>, err: &RpcTxError) -> PyErr {
    match err.index() {
        Some(index) => {
            let reason = err.to_string();
            transaction_error(py, DecodeError::new_err(reason.clone()), index, &reason)
        }
        None => bad("block", err),
    }
}

/// The raw EIP-2718 envelopes of JSON-RPC transaction objects, in order. `block` is JSON text:
/// a block object with full transactions (`eth_getBlockByNumber(n, true)`) or an array of
/// transaction objects. Each envelope is checked against the object's `hash`; a mismatch or an
/// object that is not a transaction raises `DecodeError` naming its index. Converts in
/// parallel with the GIL released.
#[pyfunction]
pub fn rpc_transactions(py: Python<'_>, block: &Bound<'_, PyAny>) -> PyResult<Vec<Py<PyBytes>>> {
    let text: Vec<u8> = if let Ok(s) = block.cast::<PyString>() {
        s.to_str()?.as_bytes().to_vec()
    } else {
        bytes_arg("block", block).map_err(|_| bad("block", "expected JSON text as str or bytes"))?
    };
    let outcome =
        py.detach(move || catch_unwind(AssertUnwindSafe(|| envelopes_from_rpc_json(&text))));
    match outcome {
        Ok(Ok(envelopes)) => Ok(envelopes
            .iter()
            .map(|e| PyBytes::new(py, e).unbind())
            .collect()),
        Ok(Err(err)) => Err(rpc_error(py, &err)),
        Err(payload) => Err(errors::panic_error("rpc_transactions", &*payload)),
    }
}

/// The receipts root of a result (Byzantium and later: receipts carry a status, not a
/// post-state root).
#[pyfunction]
pub fn receipts_root<'py>(
    py: Python<'py>,
    result: &Bound<'py, BlockResult>,
) -> Bound<'py, PyBytes> {
    let root = parex_commitment::receipts_root(&result.get().inner.receipts);
    bytes_to_py(py, root.as_slice())
}

/// The 256-byte logs bloom of a result: the union of its receipts' blooms.
#[pyfunction]
pub fn logs_bloom<'py>(py: Python<'py>, result: &Bound<'py, BlockResult>) -> Bound<'py, PyBytes> {
    let bloom = parex_commitment::block_logs_bloom(&result.get().inner.receipts);
    bytes_to_py(py, bloom.as_slice())
}

/// The transactions root of a block from its raw EIP-2718 envelopes.
#[pyfunction]
pub fn transactions_root<'py>(
    py: Python<'py>,
    transactions: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let transactions = transactions_arg(transactions)?;
    let root = parex_commitment::transactions_root(&transactions);
    Ok(bytes_to_py(py, root.as_slice()))
}
