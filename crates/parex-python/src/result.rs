//! The result of a block, as frozen Python objects over the Rust values.
//!
//! `BlockResult` keeps the Rust result and converts on access: comparing and hashing two
//! results (`same_outcome`, `digest`) never leaves Rust.

use crate::convert::{bytes_list, bytes_to_py, u256_to_py};
use alloy_primitives::Keccak256;
use parex_primitives::{
    AccountChange as RustChange, Address, Log as RustLog, Receipt as RustReceipt,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::Arc;

/// One log entry.
#[pyclass(module = "parex._core", frozen, eq)]
#[derive(PartialEq)]
pub struct Log {
    pub(crate) inner: RustLog,
}

#[pymethods]
impl Log {
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        bytes_to_py(py, self.inner.address.as_slice()).into_any()
    }

    #[getter]
    fn topics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.inner
                .data
                .topics()
                .iter()
                .map(|t| bytes_to_py(py, t.as_slice())),
        )
    }

    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        bytes_to_py(py, &self.inner.data.data).into_any()
    }

    fn __repr__(&self) -> String {
        format!(
            "Log(address={}, topics={}, data={} bytes)",
            self.inner.address,
            self.inner.data.topics().len(),
            self.inner.data.data.len()
        )
    }
}

/// The outcome of one transaction.
#[pyclass(module = "parex._core", frozen, eq)]
#[derive(PartialEq)]
pub struct Receipt {
    inner: RustReceipt,
}

#[pymethods]
impl Receipt {
    /// EIP-2718 type: 0 legacy, 1 EIP-2930, 2 EIP-1559, 3 EIP-4844, 4 EIP-7702.
    #[getter]
    fn tx_type(&self) -> u8 {
        self.inner.tx_type
    }

    #[getter]
    fn success(&self) -> bool {
        self.inner.success
    }

    #[getter]
    fn gas_used(&self) -> u64 {
        self.inner.gas_used
    }

    #[getter]
    fn cumulative_gas_used(&self) -> u64 {
        self.inner.cumulative_gas_used
    }

    #[getter]
    fn logs(&self) -> Vec<Log> {
        self.inner
            .logs
            .iter()
            .map(|l| Log { inner: l.clone() })
            .collect()
    }

    /// The address a creation transaction deployed, else `None`.
    #[getter]
    fn contract_address<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.inner
            .contract_address
            .map(|a| bytes_to_py(py, a.as_slice()).into_any())
    }

    fn __repr__(&self) -> String {
        format!(
            "Receipt(tx_type={}, success={}, gas_used={}, cumulative_gas_used={}, logs={}, contract_address={})",
            self.inner.tx_type,
            if self.inner.success { "True" } else { "False" },
            self.inner.gas_used,
            self.inner.cumulative_gas_used,
            self.inner.logs.len(),
            self.inner.contract_address.map_or("None".to_string(), |a| a.to_string()),
        )
    }
}

/// What a block did to one account.
#[pyclass(module = "parex._core", frozen, eq)]
#[derive(PartialEq)]
pub struct AccountChange {
    address: Address,
    inner: RustChange,
}

#[pymethods]
impl AccountChange {
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        bytes_to_py(py, self.address.as_slice()).into_any()
    }

    /// True when the block deleted the account (balance, nonce and code hash then read as empty).
    #[getter]
    fn deleted(&self) -> bool {
        self.inner.info.is_none()
    }

    #[getter]
    fn balance<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        u256_to_py(py, &self.inner.info.unwrap_or_default().balance)
    }

    #[getter]
    fn nonce(&self) -> u64 {
        self.inner.info.unwrap_or_default().nonce
    }

    #[getter]
    fn code_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        bytes_to_py(py, self.inner.info.unwrap_or_default().code_hash.as_slice()).into_any()
    }

    /// New code, when the block deployed or delegated code here; else `None`.
    #[getter]
    fn code<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.inner
            .code
            .as_ref()
            .map(|c| bytes_to_py(py, c).into_any())
    }

    /// True when the pre-block storage no longer applies.
    #[getter]
    fn storage_cleared(&self) -> bool {
        self.inner.storage_cleared
    }

    /// Slots written by the block with their final values (0: deleted).
    #[getter]
    fn storage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (slot, value) in &self.inner.storage {
            dict.set_item(u256_to_py(py, slot)?, u256_to_py(py, value)?)?;
        }
        Ok(dict)
    }

    fn __repr__(&self) -> String {
        format!(
            "AccountChange(address={}, deleted={}, nonce={}, storage={} slots)",
            self.address,
            if self.inner.info.is_none() {
                "True"
            } else {
                "False"
            },
            self.inner.info.unwrap_or_default().nonce,
            self.inner.storage.len()
        )
    }
}

/// The result of executing one block.
#[pyclass(module = "parex._core", frozen)]
pub struct BlockResult {
    pub(crate) inner: Arc<parex_evm::BlockResult>,
}

impl From<parex_evm::BlockResult> for BlockResult {
    fn from(result: parex_evm::BlockResult) -> Self {
        BlockResult {
            inner: Arc::new(result),
        }
    }
}

#[pymethods]
impl BlockResult {
    #[getter]
    fn receipts(&self) -> Vec<Receipt> {
        self.inner
            .receipts
            .iter()
            .map(|r| Receipt { inner: r.clone() })
            .collect()
    }

    /// Gas used by the whole block.
    #[getter]
    fn gas_used(&self) -> u64 {
        self.inner.gas_used
    }

    #[getter]
    fn tx_hashes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        bytes_list(py, &self.inner.tx_hashes)
    }

    #[getter]
    fn senders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        bytes_list(py, &self.inner.senders)
    }

    /// The block's effect on state, one entry per touched account, ordered by address.
    #[getter]
    fn changes(&self) -> Vec<AccountChange> {
        self.inner
            .changes
            .iter()
            .map(|(address, change)| AccountChange {
                address: *address,
                inner: change.clone(),
            })
            .collect()
    }

    /// Scheduler counters: executions, reexecutions, validations, validation_aborts,
    /// blocked_reads, hinted_waits, contended_waits, ahead_runs, ahead_failures,
    /// fallback_reason, threads, sequential_rule
    /// (why the rule ran the block sequentially, or None).
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.inner.stats;
        let dict = PyDict::new(py);
        dict.set_item("executions", s.executions)?;
        dict.set_item("reexecutions", s.reexecutions)?;
        dict.set_item("validations", s.validations)?;
        dict.set_item("validation_aborts", s.validation_aborts)?;
        dict.set_item("blocked_reads", s.blocked_reads)?;
        dict.set_item("hinted_waits", s.hinted_waits)?;
        dict.set_item("contended_waits", s.contended_waits)?;
        dict.set_item("ahead_runs", s.ahead_runs)?;
        dict.set_item("ahead_failures", s.ahead_failures)?;
        dict.set_item("fallback_reason", s.fallback_reason.as_deref())?;
        dict.set_item("threads", s.threads)?;
        dict.set_item("sequential_rule", s.sequential_rule.as_deref())?;
        Ok(dict)
    }

    /// Wall time of the block inside the engine, in nanoseconds.
    #[getter]
    fn elapsed_ns(&self) -> u64 {
        self.inner.elapsed_nanos
    }

    /// The part of `elapsed_ns` spent decoding envelopes and recovering senders.
    #[getter]
    fn recovery_ns(&self) -> u64 {
        self.inner.recovery_nanos
    }

    /// The part of `elapsed_ns` spent executing: `elapsed_ns - recovery_ns`.
    #[getter]
    fn execution_ns(&self) -> u64 {
        self.inner
            .elapsed_nanos
            .saturating_sub(self.inner.recovery_nanos)
    }

    /// Per-transaction execution times in ns; `None` unless executed with `trace=True`.
    #[getter]
    fn tx_nanos(&self) -> Option<Vec<u64>> {
        self.inner.trace.as_ref().map(|t| t.tx_nanos.clone())
    }

    /// Total work over the critical path of the block's dependency graph; `None` unless traced.
    #[getter]
    fn ideal_speedup(&self) -> Option<f64> {
        self.inner.trace.as_ref().map(|t| t.ideal_speedup)
    }

    /// True when both results carry the same receipts, state changes and gas, bit for bit.
    fn same_outcome(&self, other: &Bound<'_, BlockResult>) -> bool {
        self.inner.same_outcome(&other.get().inner)
    }

    /// keccak256 of a canonical encoding of the receipts, gas used and state changes.
    fn digest<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        bytes_to_py(py, digest(&self.inner).as_slice()).into_any()
    }

    fn __len__(&self) -> usize {
        self.inner.receipts.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "BlockResult(transactions={}, gas_used={}, changes={}, elapsed_ns={}, threads={})",
            self.inner.receipts.len(),
            self.inner.gas_used,
            self.inner.changes.len(),
            self.inner.elapsed_nanos,
            self.inner.stats.threads
        )
    }
}

/// keccak256 over a self-delimiting encoding of everything `same_outcome` compares:
/// every variable-length field is length-prefixed and every optional one tagged, so two
/// different outcomes cannot encode to the same bytes.
pub fn digest(result: &parex_evm::BlockResult) -> alloy_primitives::B256 {
    let mut h = Keccak256::new();
    h.update(b"parex/outcome/v1");
    h.update((result.receipts.len() as u64).to_be_bytes());
    for r in &result.receipts {
        h.update([r.tx_type, r.success as u8]);
        h.update(r.gas_used.to_be_bytes());
        h.update(r.cumulative_gas_used.to_be_bytes());
        match r.contract_address {
            Some(a) => {
                h.update([1]);
                h.update(a);
            }
            None => h.update([0]),
        }
        h.update((r.logs.len() as u64).to_be_bytes());
        for log in &r.logs {
            h.update(log.address);
            h.update((log.data.topics().len() as u64).to_be_bytes());
            for t in log.data.topics() {
                h.update(t);
            }
            h.update((log.data.data.len() as u64).to_be_bytes());
            h.update(&log.data.data);
        }
    }
    h.update(result.gas_used.to_be_bytes());
    h.update((result.changes.len() as u64).to_be_bytes());
    for (address, change) in &result.changes {
        h.update(address);
        match &change.info {
            Some(info) => {
                h.update([1]);
                h.update(info.balance.to_be_bytes::<32>());
                h.update(info.nonce.to_be_bytes());
                h.update(info.code_hash);
            }
            None => h.update([0]),
        }
        match &change.code {
            Some(code) => {
                h.update([1]);
                h.update((code.len() as u64).to_be_bytes());
                h.update(code);
            }
            None => h.update([0]),
        }
        h.update([change.storage_cleared as u8]);
        h.update((change.storage.len() as u64).to_be_bytes());
        for (slot, value) in &change.storage {
            h.update(slot.to_be_bytes::<32>());
            h.update(value.to_be_bytes::<32>());
        }
    }
    h.finalize()
}
