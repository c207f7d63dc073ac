//! Bindings for `parex node`: the persistent store, calls and gas estimates, transaction
//! decoding and block headers. Every call that touches the disk or runs the EVM releases the
//! GIL; panics are caught and raised as `ParexError`.

use crate::convert::{
    address_arg, b256_arg, bad, bytes_arg, bytes_to_py, u256_arg, u256_to_py, uint_arg,
};
use crate::errors::{caught, ParexError, StateError};
use crate::result::{BlockResult, Log};
use crate::state::State;
use parex_evm::call::{CallError, CallOutcome, CallRequest, CallStatus};
use parex_primitives::{AccountChange, Address, Bytes, StateChanges, B256};
use parex_state::{InMemoryState, StateViewRef};
use parex_store::{BlockCommit, StoreError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::sync::Arc;

fn store_error(err: StoreError) -> PyErr {
    match err {
        StoreError::Db(_) => StateError::new_err(err.to_string()),
        StoreError::Usage(_) => pyo3::exceptions::PyValueError::new_err(err.to_string()),
    }
}

/// Every account of `state` as changes over an empty state: how a genesis is committed.
fn genesis_changes(state: &InMemoryState) -> Result<StateChanges, parex_state::StateError> {
    // Gathered, then made a map once: inserting one by one moves the later entries each time
    // (the accounts come in address order, but the map does not rely on it).
    let mut changes = Vec::new();
    for (address, info, storage) in state.accounts() {
        let code = match state.code_by_hash(&info.code_hash)? {
            Some(code) if !code.is_empty() => Some(code),
            _ => None,
        };
        changes.push((
            address,
            AccountChange {
                info: Some(info),
                code,
                storage_cleared: false,
                storage: storage.into_iter().collect(),
            },
        ));
    }
    Ok(StateChanges::from_vec(changes))
}

/// The node's embedded database (redb): blocks, receipts, the transaction index and the
/// state, one durable write transaction per block.
#[pyclass(module = "parex._core", frozen)]
pub struct Store {
    inner: Arc<parex_store::Store>,
    path: String,
}

#[pymethods]
impl Store {
    /// Opens the store at `path` (a file), creating it when absent.
    #[new]
    fn new(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let display = path.display().to_string();
        let store = py
            .detach(|| caught("store open", || parex_store::Store::open(&path)))?
            .map_err(store_error)?;
        Ok(Store {
            inner: Arc::new(store),
            path: display,
        })
    }

    /// The number of the last committed block; `None` for an empty store.
    fn head(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        let store = Arc::clone(&self.inner);
        py.detach(|| caught("store head", || store.head()))?
            .map_err(store_error)
    }

    /// Commits block `number` in one durable write transaction: its `record`, hash and
    /// transaction hashes with the state changes of `result`, or for the genesis every account
    /// of `genesis`, or none (an empty block); `meta` entries are written with it. Blocks
    /// must follow the head.
    #[pyo3(signature = (number, hash, record, tx_hashes, *, result = None, genesis = None, meta = None))]
    #[allow(clippy::too_many_arguments)]
    fn commit_block(
        &self,
        py: Python<'_>,
        number: &Bound<'_, PyAny>,
        hash: &Bound<'_, PyAny>,
        record: &Bound<'_, PyAny>,
        tx_hashes: &Bound<'_, PyAny>,
        result: Option<&Bound<'_, BlockResult>>,
        genesis: Option<&Bound<'_, State>>,
        meta: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let number: u64 = uint_arg("number", number)?;
        let hash = b256_arg("hash", hash)?;
        let record = bytes_arg("record", record)?;
        let tx_hashes: Vec<B256> = tx_hashes
            .try_iter()
            .map_err(|_| bad("tx_hashes", "expected a list of 32-byte hashes"))?
            .enumerate()
            .map(|(i, h)| b256_arg(&format!("tx_hashes[{i}]"), &h?))
            .collect::<PyResult<_>>()?;
        let mut meta_entries: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(meta) = meta {
            for (key, value) in meta.iter() {
                let key: String = key.extract().map_err(|_| bad("meta", "keys must be str"))?;
                let value = bytes_arg(&format!("meta[{key:?}]"), &value)?;
                meta_entries.push((key, value));
            }
        }
        enum Source {
            Result(Arc<parex_evm::BlockResult>),
            Genesis(Arc<InMemoryState>),
            Empty,
        }
        let source = match (result, genesis) {
            (Some(r), None) => Source::Result(Arc::clone(&r.get().inner)),
            (None, Some(g)) => Source::Genesis(Arc::clone(&g.borrow().inner)),
            (None, None) => Source::Empty,
            (Some(_), Some(_)) => {
                return Err(bad(
                    "result",
                    "pass at most one of result= (a block) and genesis= (the genesis state)",
                ))
            }
        };
        let store = Arc::clone(&self.inner);
        py.detach(move || {
            caught("store commit", || {
                let genesis;
                let empty = StateChanges::new();
                let changes = match &source {
                    Source::Empty => &empty,
                    Source::Result(r) => &r.changes,
                    Source::Genesis(state) => {
                        genesis = genesis_changes(state).map_err(|e| StoreError::Db(e.0))?;
                        &genesis
                    }
                };
                let meta: Vec<(&str, &[u8])> = meta_entries
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                store.commit_block(&BlockCommit {
                    number,
                    hash,
                    record: &record,
                    tx_hashes: &tx_hashes,
                    changes,
                    meta: &meta,
                })
            })
        })?
        .map_err(store_error)
    }

    /// The record of block `number`, or `None`.
    fn block<'py>(
        &self,
        py: Python<'py>,
        number: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let number: u64 = uint_arg("number", number)?;
        let store = Arc::clone(&self.inner);
        let record = py
            .detach(|| caught("store read", || store.block(number)))?
            .map_err(store_error)?;
        Ok(record.map(|r| bytes_to_py(py, &r)))
    }

    /// The number of the block with hash `hash`, or `None`.
    fn block_number(&self, py: Python<'_>, hash: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        let hash = b256_arg("hash", hash)?;
        let store = Arc::clone(&self.inner);
        py.detach(|| caught("store read", || store.block_number(&hash)))?
            .map_err(store_error)
    }

    /// `(block number, index)` of the transaction with hash `hash`, or `None`.
    fn transaction(&self, py: Python<'_>, hash: &Bound<'_, PyAny>) -> PyResult<Option<(u64, u32)>> {
        let hash = b256_arg("hash", hash)?;
        let store = Arc::clone(&self.inner);
        py.detach(|| caught("store read", || store.transaction(&hash)))?
            .map_err(store_error)
    }

    /// A `meta` entry, or `None`.
    fn meta<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let store = Arc::clone(&self.inner);
        let name = name.to_string();
        let value = py
            .detach(|| caught("store read", || store.meta(&name)))?
            .map_err(store_error)?;
        Ok(value.map(|v| bytes_to_py(py, &v)))
    }

    /// The whole state after the head block, as an in-memory `State`.
    fn load_state(&self, py: Python<'_>) -> PyResult<State> {
        let store = Arc::clone(&self.inner);
        let state = py
            .detach(|| caught("store load", || store.load_state()))?
            .map_err(store_error)?;
        Ok(State {
            inner: Arc::new(state),
        })
    }

    /// Executes a block against the store's state (a consistent snapshot), as `execute` does
    /// against a `State`: the persistent store plugs into the engine like the in-memory one.
    #[pyo3(signature = (env, transactions, *, threads = None))]
    fn execute(
        &self,
        py: Python<'_>,
        env: &Bound<'_, PyAny>,
        transactions: &Bound<'_, PyAny>,
        threads: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<BlockResult> {
        let env = crate::block_env(Some(env), None)?;
        let threads = crate::threads_arg(threads)?;
        let transactions = crate::convert::transactions_arg(transactions)?;
        let store = Arc::clone(&self.inner);
        let config = parex_evm::ExecConfig {
            threads,
            ..parex_evm::ExecConfig::default()
        };
        let result = crate::detached(py, "block execution", move || {
            let view = store
                .view()
                .map_err(|e| parex_evm::BlockError::State(e.to_string()))?;
            parex_evm::execute_block(&env, &transactions, &view, &config)
        })?;
        Ok(result.into())
    }

    fn __repr__(&self) -> String {
        format!("Store({:?})", self.path)
    }
}

/// What `call` produced; nothing of it was committed.
#[pyclass(module = "parex._core", frozen)]
pub struct CallResult {
    inner: CallOutcome,
}

#[pymethods]
impl CallResult {
    /// True when the call returned normally.
    #[getter]
    fn success(&self) -> bool {
        self.inner.status == CallStatus::Success
    }
    /// True when the call ended in `REVERT` (`output` is the revert data).
    #[getter]
    fn reverted(&self) -> bool {
        self.inner.status == CallStatus::Revert
    }
    /// Why the call halted exceptionally ("out of gas", "invalid opcode", ...), else `None`.
    #[getter]
    fn halt_reason(&self) -> Option<String> {
        match &self.inner.status {
            CallStatus::Halt(reason) => Some(reason.clone()),
            _ => None,
        }
    }
    #[getter]
    fn gas_used(&self) -> u64 {
        self.inner.gas_used
    }
    #[getter]
    fn output<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, &self.inner.output)
    }
    #[getter]
    fn logs(&self) -> Vec<Log> {
        self.inner
            .logs
            .iter()
            .map(|l| Log { inner: l.clone() })
            .collect()
    }
    #[getter]
    fn contract_address<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner
            .contract_address
            .map(|a| bytes_to_py(py, a.as_slice()))
    }
    fn __repr__(&self) -> String {
        format!(
            "CallResult(status={:?}, gas_used={}, output={} bytes)",
            self.inner.status,
            self.inner.gas_used,
            self.inner.output.len()
        )
    }
}

pyo3::create_exception!(
    parex._core,
    CallInvalid,
    ParexError,
    "The message cannot run as a transaction here (insufficient funds, nonce, intrinsic gas)."
);

#[allow(clippy::too_many_arguments)]
fn call_request<'py>(
    sender: Option<&Bound<'py, PyAny>>,
    to: Option<&Bound<'py, PyAny>>,
    gas: Option<&Bound<'py, PyAny>>,
    max_fee_per_gas: Option<&Bound<'py, PyAny>>,
    max_priority_fee_per_gas: Option<&Bound<'py, PyAny>>,
    value: Option<&Bound<'py, PyAny>>,
    input: Option<&Bound<'py, PyAny>>,
    nonce: Option<&Bound<'py, PyAny>>,
    access_list: Option<&Bound<'py, PyAny>>,
) -> PyResult<CallRequest> {
    let some = |v: Option<&Bound<'py, PyAny>>| v.filter(|v| !v.is_none()).cloned();
    let mut request = CallRequest::default();
    if let Some(v) = some(sender) {
        request.from = address_arg("sender", &v)?;
    }
    if let Some(v) = some(to) {
        request.to = Some(address_arg("to", &v)?);
    }
    if let Some(v) = some(gas) {
        request.gas = Some(uint_arg("gas", &v)?);
    }
    if let Some(v) = some(max_fee_per_gas) {
        request.max_fee_per_gas = Some(uint_arg("max_fee_per_gas", &v)?);
    }
    if let Some(v) = some(max_priority_fee_per_gas) {
        request.max_priority_fee_per_gas = Some(uint_arg("max_priority_fee_per_gas", &v)?);
    }
    if let Some(v) = some(value) {
        request.value = u256_arg("value", &v)?;
    }
    if let Some(v) = some(input) {
        request.input = Bytes::from(bytes_arg("input", &v)?);
    }
    if let Some(v) = some(nonce) {
        request.nonce = Some(uint_arg("nonce", &v)?);
    }
    if let Some(v) = some(access_list) {
        let mut items = Vec::new();
        for (i, item) in v
            .try_iter()
            .map_err(|_| bad("access_list", "expected a list of (address, [slot, ...])"))?
            .enumerate()
        {
            let name = format!("access_list[{i}]");
            let (address, keys): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?
                .extract()
                .map_err(|_| bad(&name, "expected (address, [slot, ...])"))?;
            let address = address_arg(&name, &address)?;
            let keys = keys
                .try_iter()
                .map_err(|_| bad(&name, "expected a list of 32-byte storage keys"))?
                .map(|k| b256_arg(&name, &k?))
                .collect::<PyResult<Vec<_>>>()?;
            items.push(alloy_eips_item(address, keys));
        }
        request.access_list = items.into();
    }
    Ok(request)
}

fn alloy_eips_item(address: Address, storage_keys: Vec<B256>) -> parex_evm::call::AccessListItem {
    parex_evm::call::AccessListItem {
        address,
        storage_keys,
    }
}

fn call_error(err: CallError) -> PyErr {
    match err {
        CallError::Invalid(reason) => CallInvalid::new_err(reason),
        CallError::State(reason) => StateError::new_err(reason),
    }
}

/// Executes one message on top of `state` in the block `env`, committing nothing
/// (`eth_call`). Raises `CallInvalid` when the message cannot run as a transaction.
#[pyfunction]
#[pyo3(signature = (env, state, *, sender = None, to = None, gas = None, max_fee_per_gas = None, max_priority_fee_per_gas = None, value = None, input = None, nonce = None, access_list = None))]
#[allow(clippy::too_many_arguments)]
pub fn call(
    py: Python<'_>,
    env: &Bound<'_, PyAny>,
    state: &Bound<'_, State>,
    sender: Option<&Bound<'_, PyAny>>,
    to: Option<&Bound<'_, PyAny>>,
    gas: Option<&Bound<'_, PyAny>>,
    max_fee_per_gas: Option<&Bound<'_, PyAny>>,
    max_priority_fee_per_gas: Option<&Bound<'_, PyAny>>,
    value: Option<&Bound<'_, PyAny>>,
    input: Option<&Bound<'_, PyAny>>,
    nonce: Option<&Bound<'_, PyAny>>,
    access_list: Option<&Bound<'_, PyAny>>,
) -> PyResult<CallResult> {
    let env = crate::block_env(Some(env), None)?;
    let request = call_request(
        sender,
        to,
        gas,
        max_fee_per_gas,
        max_priority_fee_per_gas,
        value,
        input,
        nonce,
        access_list,
    )?;
    let state = Arc::clone(&state.borrow().inner);
    let outcome =
        py.detach(move || caught("call", || parex_evm::call::call(&env, &request, &*state)))?;
    outcome
        .map(|inner| CallResult { inner })
        .map_err(call_error)
}

/// The least gas limit at which the message succeeds (`eth_estimateGas`), or the failing
/// `CallResult` at the gas cap when no limit helps (a revert or halt).
#[pyfunction]
#[pyo3(signature = (env, state, *, sender = None, to = None, gas = None, max_fee_per_gas = None, max_priority_fee_per_gas = None, value = None, input = None, nonce = None, access_list = None))]
#[allow(clippy::too_many_arguments)]
pub fn estimate_gas(
    py: Python<'_>,
    env: &Bound<'_, PyAny>,
    state: &Bound<'_, State>,
    sender: Option<&Bound<'_, PyAny>>,
    to: Option<&Bound<'_, PyAny>>,
    gas: Option<&Bound<'_, PyAny>>,
    max_fee_per_gas: Option<&Bound<'_, PyAny>>,
    max_priority_fee_per_gas: Option<&Bound<'_, PyAny>>,
    value: Option<&Bound<'_, PyAny>>,
    input: Option<&Bound<'_, PyAny>>,
    nonce: Option<&Bound<'_, PyAny>>,
    access_list: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let env = crate::block_env(Some(env), None)?;
    let request = call_request(
        sender,
        to,
        gas,
        max_fee_per_gas,
        max_priority_fee_per_gas,
        value,
        input,
        nonce,
        access_list,
    )?;
    let state = Arc::clone(&state.borrow().inner);
    let outcome = py.detach(move || {
        caught("estimate_gas", || {
            parex_evm::call::estimate_gas(&env, &request, &*state)
        })
    })?;
    match outcome.map_err(call_error)? {
        Ok(gas) => Ok(gas.into_pyobject(py)?.into_any().unbind()),
        Err(inner) => Ok(Py::new(py, CallResult { inner })?.into_any()),
    }
}

/// Decodes one raw EIP-2718 transaction (types 0-4) and recovers its sender; raises
/// `DecodeError` or `SignatureError`. Returns a dict of its fields (see the stubs).
/// `recover=False` skips the (costly) sender recovery for transactions already in a block:
/// `sender` is then `None` and the signature is not checked.
#[pyfunction]
#[pyo3(signature = (raw, *, recover = true))]
pub fn decode_transaction<'py>(
    py: Python<'py>,
    raw: &Bound<'py, PyAny>,
    recover: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let raw = bytes_arg("raw", raw)?;
    let decode = move || {
        caught("decode_transaction", || {
            if recover {
                parex_evm::txinfo::decode_transaction(&raw)
            } else {
                parex_evm::txinfo::decode_transaction_unrecovered(&raw)
            }
        })
    };
    // Recovery (~40 us) runs with the GIL released, so RPC threads admit in parallel.
    let info = if recover { py.detach(decode) } else { decode() }?
        .map_err(|e| crate::errors::block_error(py, &e))?;
    tx_info_dict(py, &info, recover)
}

/// Decodes a transaction as `eth_sendRawTransaction` receives it and recovers its sender:
/// like `decode_transaction`, plus `raw` (the canonical encoding a block carries) and
/// `sidecar`: for a blob transaction in its EIP-4844 network form, its blobs, commitments
/// and proofs (not yet checked: see `validate_blob_sidecar`); otherwise `None`. The `hash`
/// is the canonical one. EIP-7594 (cell proof) sidecars raise `DecodeError`.
#[pyfunction]
pub fn decode_pooled_transaction<'py>(
    py: Python<'py>,
    raw: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    use alloy_eips::eip7594::BlobTransactionSidecarVariant;
    let raw = bytes_arg("raw", raw)?;
    let pooled = py
        .detach(|| {
            caught("decode_pooled_transaction", || {
                parex_evm::txinfo::decode_pooled_transaction(&raw)
            })
        })?
        .map_err(|e| crate::errors::block_error(py, &e))?;
    let out = tx_info_dict(py, &pooled.info, true)?;
    out.set_item("raw", bytes_to_py(py, &pooled.canonical))?;
    match &pooled.sidecar {
        None => out.set_item("sidecar", py.None())?,
        Some(BlobTransactionSidecarVariant::Eip4844(sidecar)) => {
            let sc = PyDict::new(py);
            let list =
                |items: Vec<&[u8]>| PyList::new(py, items.into_iter().map(|b| bytes_to_py(py, b)));
            sc.set_item(
                "blobs",
                list(sidecar.blobs.iter().map(|b| b.as_slice()).collect())?,
            )?;
            sc.set_item(
                "commitments",
                list(sidecar.commitments.iter().map(|c| c.as_slice()).collect())?,
            )?;
            sc.set_item(
                "proofs",
                list(sidecar.proofs.iter().map(|p| p.as_slice()).collect())?,
            )?;
            out.set_item("sidecar", sc)?;
        }
        Some(BlobTransactionSidecarVariant::Eip7594(_)) => {
            let reason = "EIP-7594 cell-proof sidecars are not accepted before Osaka";
            return Err(crate::errors::block_error(
                py,
                &parex_evm::BlockError::Decode {
                    index: 0,
                    reason: reason.into(),
                },
            ));
        }
    }
    Ok(out)
}

/// Checks an EIP-4844 blob sidecar against a transaction's `versioned_hashes` (c-kzg with the
/// Ethereum trusted setup; the GIL is released): 1 to `max_blobs` blobs, matching counts,
/// each hash the versioned hash of its commitment, every KZG proof valid. Raises
/// `ValueError` with geth's wording otherwise.
#[pyfunction]
#[pyo3(signature = (versioned_hashes, blobs, commitments, proofs, *, max_blobs))]
pub fn validate_blob_sidecar(
    py: Python<'_>,
    versioned_hashes: &Bound<'_, PyAny>,
    blobs: &Bound<'_, PyAny>,
    commitments: &Bound<'_, PyAny>,
    proofs: &Bound<'_, PyAny>,
    max_blobs: usize,
) -> PyResult<()> {
    use alloy_eips::eip4844::{Blob, BlobTransactionSidecar, Bytes48};
    fn items<T>(
        name: &str,
        list: &Bound<'_, PyAny>,
        each: impl Fn(&str, &Bound<'_, PyAny>) -> PyResult<T>,
    ) -> PyResult<Vec<T>> {
        list.try_iter()
            .map_err(|_| bad(name, "expected a list of bytes"))?
            .enumerate()
            .map(|(i, item)| each(&format!("{name}[{i}]"), &item?))
            .collect()
    }
    let hashes: Vec<B256> = items("versioned_hashes", versioned_hashes, b256_arg)?;
    let sized = |name: &str, item: &Bound<'_, PyAny>, len: usize| -> PyResult<Vec<u8>> {
        let bytes = bytes_arg(name, item)?;
        if bytes.len() != len {
            return Err(bad(
                name,
                format!("expected {len} bytes, got {}", bytes.len()),
            ));
        }
        Ok(bytes)
    };
    let sidecar = BlobTransactionSidecar {
        blobs: items("blobs", blobs, |n, b| {
            Ok(Blob::from_slice(&sized(n, b, 131072)?))
        })?,
        commitments: items("commitments", commitments, |n, c| {
            Ok(Bytes48::from_slice(&sized(n, c, 48)?))
        })?,
        proofs: items("proofs", proofs, |n, p| {
            Ok(Bytes48::from_slice(&sized(n, p, 48)?))
        })?,
    };
    py.detach(|| {
        caught("validate_blob_sidecar", || {
            parex_evm::blob::validate_eip4844_sidecar(&hashes, &sidecar, max_blobs)
        })
    })?
    .map_err(pyo3::exceptions::PyValueError::new_err)
}

fn tx_info_dict<'py>(
    py: Python<'py>,
    info: &parex_evm::txinfo::TxInfo,
    recover: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("hash", bytes_to_py(py, info.hash.as_slice()))?;
    if recover {
        out.set_item("sender", bytes_to_py(py, info.sender.as_slice()))?;
    } else {
        out.set_item("sender", py.None())?;
    }
    out.set_item("type", info.tx_type)?;
    out.set_item("chain_id", info.chain_id)?;
    out.set_item("nonce", info.nonce)?;
    out.set_item("gas", info.gas_limit)?;
    out.set_item("max_fee_per_gas", info.max_fee_per_gas)?;
    out.set_item("max_priority_fee_per_gas", info.max_priority_fee_per_gas)?;
    out.set_item("max_fee_per_blob_gas", info.max_fee_per_blob_gas)?;
    out.set_item(
        "blob_versioned_hashes",
        PyList::new(
            py,
            info.blob_versioned_hashes
                .iter()
                .map(|h| bytes_to_py(py, h.as_slice())),
        )?,
    )?;
    out.set_item("to", info.to.map(|a| bytes_to_py(py, a.as_slice())))?;
    out.set_item("value", u256_to_py(py, &info.value)?)?;
    out.set_item("input", bytes_to_py(py, &info.input))?;
    let access_list = PyList::empty(py);
    for (address, keys) in &info.access_list {
        let keys = PyList::new(py, keys.iter().map(|k| bytes_to_py(py, k.as_slice())))?;
        access_list.append(PyTuple::new(
            py,
            [
                bytes_to_py(py, address.as_slice()).into_any(),
                keys.into_any(),
            ],
        )?)?;
    }
    out.set_item("access_list", access_list)?;
    let authorizations = PyList::empty(py);
    for (chain_id, address, nonce, y_parity, r, s) in &info.authorization_list {
        let item = PyDict::new(py);
        item.set_item("chain_id", u256_to_py(py, chain_id)?)?;
        item.set_item("address", bytes_to_py(py, address.as_slice()))?;
        item.set_item("nonce", *nonce)?;
        item.set_item("y_parity", *y_parity)?;
        item.set_item("r", u256_to_py(py, r)?)?;
        item.set_item("s", u256_to_py(py, s)?)?;
        authorizations.append(item)?;
    }
    out.set_item("authorization_list", authorizations)?;
    out.set_item("v", info.v)?;
    out.set_item("y_parity", info.y_parity as u8)?;
    out.set_item("r", u256_to_py(py, &info.r)?)?;
    out.set_item("s", u256_to_py(py, &info.s)?)?;
    Ok(out)
}

/// The EIP-1186 proof of `address` and of `slots` in its storage against `state_root(state)`
/// (`eth_getProof`). Builds the whole trie: linear in the state's size.
#[pyfunction]
pub fn account_proof<'py>(
    py: Python<'py>,
    state: &Bound<'py, State>,
    address: &Bound<'py, PyAny>,
    slots: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let address = address_arg("address", address)?;
    let slots: Vec<parex_primitives::U256> = slots
        .try_iter()
        .map_err(|_| bad("slots", "expected a list of storage slots"))?
        .enumerate()
        .map(|(i, s)| u256_arg(&format!("slots[{i}]"), &s?))
        .collect::<PyResult<_>>()?;
    let state = Arc::clone(&state.borrow().inner);
    let proof = py.detach(move || {
        caught("account_proof", || {
            parex_commitment::account_proof(&state, address, &slots)
        })
    })?;
    let nodes = |list: &[Bytes]| PyList::new(py, list.iter().map(|n| bytes_to_py(py, n)));
    let out = PyDict::new(py);
    out.set_item("address", bytes_to_py(py, proof.address.as_slice()))?;
    let info = proof.info.unwrap_or_default();
    out.set_item("exists", proof.info.is_some())?;
    out.set_item("balance", u256_to_py(py, &info.balance)?)?;
    out.set_item("nonce", info.nonce)?;
    out.set_item("code_hash", bytes_to_py(py, info.code_hash.as_slice()))?;
    out.set_item(
        "storage_root",
        bytes_to_py(py, proof.storage_root.as_slice()),
    )?;
    out.set_item("account_proof", nodes(&proof.account_proof)?)?;
    let storage = PyList::empty(py);
    for sp in &proof.storage_proofs {
        let item = PyDict::new(py);
        item.set_item("slot", u256_to_py(py, &sp.slot)?)?;
        item.set_item("value", u256_to_py(py, &sp.value)?)?;
        item.set_item("proof", nodes(&sp.proof)?)?;
        storage.append(item)?;
    }
    out.set_item("storage_proofs", storage)?;
    Ok(out)
}

/// The state root of a state followed block by block: the tries stay in memory with their
/// node hashes, so each block re-hashes only what it changed (`state_root(state)` recomputes
/// everything). Build it from the state, then `apply` each block's result to both.
#[pyclass(module = "parex._core")]
pub struct StateRootTracker {
    pub(crate) inner: parex_commitment::StateRootTracker,
}

#[pymethods]
impl StateRootTracker {
    #[new]
    fn new(py: Python<'_>, state: &Bound<'_, State>) -> PyResult<Self> {
        let state = Arc::clone(&state.borrow().inner);
        let inner = py.detach(move || {
            caught("state root tracker", || {
                parex_commitment::StateRootTracker::new(&state)
            })
        })?;
        Ok(StateRootTracker { inner })
    }

    /// Follows one block: the same changes `State.apply(result)` makes.
    fn apply(&mut self, py: Python<'_>, result: &Bound<'_, BlockResult>) -> PyResult<()> {
        let result = Arc::clone(&result.get().inner);
        let inner = &mut self.inner;
        py.detach(move || caught("state root tracker", || inner.apply(&result.changes)))
    }

    /// The state root after the blocks applied so far.
    fn root<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let inner = &mut self.inner;
        let root = py.detach(move || caught("state root tracker", || inner.root()))?;
        Ok(bytes_to_py(py, root.as_slice()))
    }
}
