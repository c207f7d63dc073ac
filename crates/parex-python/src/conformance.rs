//! What `parex conformance` needs from Rust: the state root of a `State` and the logs hash of a
//! result, the two commitments an execution-spec state test is checked against.

use crate::convert::bytes_to_py;
use crate::result::BlockResult;
use crate::state::State;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The root of the state trie of `state` (accounts, storage and code hashes; block hashes are
/// not part of it). Computed with the GIL released.
#[pyfunction]
pub fn state_root<'py>(py: Python<'py>, state: &Bound<'py, State>) -> Bound<'py, PyBytes> {
    let inner = std::sync::Arc::clone(&state.borrow().inner);
    let root = py.detach(move || parex_commitment::state_root(&inner));
    bytes_to_py(py, root.as_slice())
}

/// keccak256 of the RLP list of every log of a result, in order (each log `[address, topics,
/// data]`): the `logs` field of an execution-spec state test.
#[pyfunction]
pub fn logs_hash<'py>(py: Python<'py>, result: &Bound<'py, BlockResult>) -> Bound<'py, PyBytes> {
    let receipts = &result.get().inner.receipts;
    let hash = parex_commitment::logs_hash(receipts.iter().flat_map(|r| r.logs.iter()));
    bytes_to_py(py, hash.as_slice())
}
