//! Block processing for Python: headers, `import_block` (validate, execute through Block-STM,
//! check every commitment) and the fork schedule parser that Python shares with Rust.

use crate::convert::{bad, bytes_arg, bytes_to_py, uint_arg};
use crate::errors::{panic_error, ParexError};
use crate::result::BlockResult;
use crate::state::State;
use alloy_rlp::{Decodable, Encodable};
use parex_chain::{execute_block, Block, ChainError, ChainSpec};
use parex_evm::{ExecConfig, ExecutorKind};
use parex_primitives::{Fork, ForkSchedule};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

pyo3::create_exception!(
    parex._core,
    InvalidBlock,
    ParexError,
    "The block breaks a rule. `.exception` names it as the execution-spec tests do \
     (\"BlockException.INVALID_STATE_ROOT\", \"TransactionException.NONCE_MISMATCH_TOO_LOW\"), \
     `.reason` says why, `.index` is the transaction at fault or None."
);

pub fn init_attributes(py: Python<'_>) -> PyResult<()> {
    let cls = py.get_type::<InvalidBlock>();
    cls.setattr("exception", "")?;
    cls.setattr("reason", "")?;
    cls.setattr("index", py.None())?;
    Ok(())
}

fn chain_error(py: Python<'_>, err: &ChainError) -> PyErr {
    match err {
        ChainError::Invalid {
            exception,
            reason,
            index,
        } => {
            let err = InvalidBlock::new_err(err.to_string());
            let value = err.value(py);
            // Attributes on a fresh instance: failing here leaves the right type and message.
            let _ = value.setattr("exception", exception.name());
            let _ = value.setattr("reason", reason.as_str());
            let _ = value.setattr("index", *index);
            err
        }
        ChainError::State(_) => crate::errors::StateError::new_err(err.to_string()),
    }
}

fn schedule_arg(name: &str) -> PyResult<ForkSchedule> {
    if name.eq_ignore_ascii_case("mainnet") {
        return Ok(ForkSchedule::mainnet());
    }
    name.parse::<ForkSchedule>().map_err(|e| bad("schedule", e))
}

/// The parex name of a fork (`"EIP158"` → `"SpuriousDragon"`, any case); `ValueError` for a
/// name parex does not know.
#[pyfunction]
pub fn parse_fork(name: &str) -> PyResult<&'static str> {
    name.parse::<Fork>()
        .map(Fork::name)
        .map_err(|e| bad("fork", e))
}

/// The fork whose rules apply to block `number` at `timestamp` under `schedule`: a fork name,
/// a transition (`"ShanghaiToCancunAtTime15k"`, `"BerlinToLondonAt5"`) or `"mainnet"`.
#[pyfunction]
pub fn fork_at(
    schedule: &str,
    number: &Bound<'_, PyAny>,
    timestamp: &Bound<'_, PyAny>,
) -> PyResult<&'static str> {
    let schedule = schedule_arg(schedule)?;
    let number: u64 = uint_arg("number", number)?;
    let timestamp: u64 = uint_arg("timestamp", timestamp)?;
    Ok(schedule.fork_at(number, timestamp).name())
}

/// The EIP-7840 blob parameters parex applies under `fork`: `(target, max, update_fraction)`
/// blobs per block and the base fee update fraction; `None` before Cancun.
#[pyfunction]
pub fn blob_params(fork: &str) -> PyResult<Option<(u64, u64, u128)>> {
    let fork = fork.parse::<Fork>().map_err(|e| bad("fork", e))?;
    Ok(ChainSpec::mainnet()
        .blob_params(fork)
        .map(|p| (p.target_blob_count, p.max_blob_count, p.update_fraction)))
}

/// A block header.
#[pyclass(module = "parex._core", frozen)]
pub struct Header {
    inner: alloy_consensus::Header,
    hash: parex_primitives::B256,
}

impl Header {
    fn new(inner: alloy_consensus::Header) -> Self {
        let hash = inner.hash_slow();
        Header { inner, hash }
    }
}

#[pymethods]
impl Header {
    /// The header of its RLP encoding.
    #[staticmethod]
    fn decode(py: Python<'_>, rlp: &Bound<'_, PyAny>) -> PyResult<Header> {
        let raw = bytes_arg("rlp", rlp)?;
        let mut buf = raw.as_slice();
        let header = alloy_consensus::Header::decode(&mut buf).map_err(|e| {
            chain_error(
                py,
                &ChainError::invalid(
                    parex_chain::block_exception::RLP_STRUCTURES_ENCODING,
                    format!("header: {e}"),
                ),
            )
        })?;
        if !buf.is_empty() {
            return Err(bad("rlp", format!("{} bytes after the header", buf.len())));
        }
        Ok(Header::new(header))
    }

    /// The header of a block's RLP; `InvalidBlock` when the block does not decode.
    #[staticmethod]
    fn of_block(py: Python<'_>, rlp: &Bound<'_, PyAny>) -> PyResult<Header> {
        let raw = bytes_arg("rlp", rlp)?;
        let block = Block::decode(&raw).map_err(|e| chain_error(py, &e))?;
        Ok(Header::new(block.header))
    }

    /// keccak256 of the RLP.
    #[getter]
    fn hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.hash.as_slice())
    }

    #[getter]
    fn rlp<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::new();
        self.inner.encode(&mut out);
        bytes_to_py(py, &out)
    }

    #[getter]
    fn number(&self) -> u64 {
        self.inner.number
    }

    #[getter]
    fn timestamp(&self) -> u64 {
        self.inner.timestamp
    }

    #[getter]
    fn parent_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.inner.parent_hash.as_slice())
    }

    #[getter]
    fn state_root<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.inner.state_root.as_slice())
    }

    #[getter]
    fn gas_used(&self) -> u64 {
        self.inner.gas_used
    }

    #[getter]
    fn gas_limit(&self) -> u64 {
        self.inner.gas_limit
    }

    #[getter]
    fn beneficiary<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.inner.beneficiary.as_slice())
    }

    #[getter]
    fn transactions_root<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.inner.transactions_root.as_slice())
    }

    #[getter]
    fn receipts_root<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.inner.receipts_root.as_slice())
    }

    #[getter]
    fn logs_bloom<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.inner.logs_bloom.as_slice())
    }

    #[getter]
    fn mix_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.inner.mix_hash.as_slice())
    }

    #[getter]
    fn extra_data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, &self.inner.extra_data)
    }

    #[getter]
    fn difficulty<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::u256_to_py(py, &self.inner.difficulty)
    }

    /// EIP-1559 base fee; None before London.
    #[getter]
    fn base_fee_per_gas(&self) -> Option<u64> {
        self.inner.base_fee_per_gas
    }

    /// EIP-4895 withdrawals root; None before Shanghai.
    #[getter]
    fn withdrawals_root<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner
            .withdrawals_root
            .map(|r| bytes_to_py(py, r.as_slice()))
    }

    /// EIP-4844 blob gas used; None before Cancun.
    #[getter]
    fn blob_gas_used(&self) -> Option<u64> {
        self.inner.blob_gas_used
    }

    /// EIP-4844 excess blob gas; None before Cancun.
    #[getter]
    fn excess_blob_gas(&self) -> Option<u64> {
        self.inner.excess_blob_gas
    }

    /// EIP-4788 parent beacon block root; None before Cancun.
    #[getter]
    fn parent_beacon_block_root<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner
            .parent_beacon_block_root
            .map(|r| bytes_to_py(py, r.as_slice()))
    }

    /// EIP-7685 requests hash; None before Prague.
    #[getter]
    fn requests_hash<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner
            .requests_hash
            .map(|r| bytes_to_py(py, r.as_slice()))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Header>()
            .is_ok_and(|o| o.get().hash == self.hash)
    }

    fn __hash__(&self) -> u64 {
        u64::from_be_bytes(self.hash.0[..8].try_into().unwrap_or_default())
    }

    fn __repr__(&self) -> String {
        format!("Header(number={}, hash={})", self.inner.number, self.hash)
    }
}

/// A block the rules accepted: its header, hash, fork, execution result (receipts and the
/// changes of the whole block) and EIP-7685 requests.
#[pyclass(module = "parex._core", frozen)]
pub struct ImportedBlock {
    #[pyo3(get)]
    header: Py<Header>,
    #[pyo3(get)]
    result: Py<BlockResult>,
    #[pyo3(get)]
    fork: &'static str,
    requests: Option<Vec<parex_primitives::Bytes>>,
}

#[pymethods]
impl ImportedBlock {
    /// The block hash (`header.hash`).
    #[getter]
    fn hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.header.get().hash.as_slice())
    }

    /// The EIP-7685 requests (type byte first), empty ones left out; `None` before Prague.
    #[getter]
    fn requests<'py>(&self, py: Python<'py>) -> Option<Vec<Bound<'py, PyBytes>>> {
        self.requests
            .as_ref()
            .map(|rs| rs.iter().map(|r| bytes_to_py(py, r)).collect())
    }

    fn __repr__(&self) -> String {
        let header = self.header.get();
        format!(
            "ImportedBlock(number={}, fork={}, hash={})",
            header.inner.number, self.fork, header.hash
        )
    }
}

/// Validates `block` (RLP) as the child of `parent` and executes it on `state` (the state
/// after `parent`; not modified): system calls, transactions through Block-STM on `threads`
/// workers (or one after another with `sequential=True`), withdrawals, rewards and requests;
/// then checks every commitment of the header. `schedule` is the chain's fork schedule (a
/// fork, a transition name or `"mainnet"`). `sequential_rule=True` lets a block too small to
/// gain run sequentially. Raises `InvalidBlock` for a block the rules reject. Runs with the
/// GIL released.
#[pyfunction]
#[pyo3(signature = (block, parent, state, *, schedule, chain_id = None, threads = None, sequential = false, sequential_rule = false))]
#[allow(clippy::too_many_arguments)]
pub fn import_block(
    py: Python<'_>,
    block: &Bound<'_, PyAny>,
    parent: &Bound<'_, Header>,
    state: &Bound<'_, State>,
    schedule: &str,
    chain_id: Option<&Bound<'_, PyAny>>,
    threads: Option<&Bound<'_, PyAny>>,
    sequential: bool,
    sequential_rule: bool,
) -> PyResult<ImportedBlock> {
    let raw = bytes_arg("block", block)?;
    let chain_id: u64 = match chain_id {
        Some(c) => uint_arg("chain_id", c)?,
        None => 1,
    };
    let spec = ChainSpec::new(chain_id, schedule_arg(schedule)?);
    let threads = match threads {
        Some(t) => crate::threads_arg(t)?,
        None => 1,
    };
    let config = ExecConfig {
        executor: if sequential {
            ExecutorKind::Sequential
        } else {
            ExecutorKind::Parallel
        },
        threads,
        trace: false,
        sequential_rule,
    };
    let parent_header = parent.get().inner.clone();
    let pre_state = Arc::clone(&state.borrow().inner);
    let outcome = py.detach(move || {
        catch_unwind(AssertUnwindSafe(|| {
            let block = Block::decode(&raw)?;
            execute_block(&spec, &parent_header, &block, &*pre_state, &config)
        }))
    });
    match outcome {
        Ok(Ok(executed)) => {
            let requests = executed.requests.map(|r| r.take());
            Ok(ImportedBlock {
                header: Py::new(
                    py,
                    Header {
                        inner: executed.header,
                        hash: executed.hash,
                    },
                )?,
                result: Py::new(
                    py,
                    BlockResult {
                        inner: Arc::new(executed.result),
                    },
                )?,
                fork: executed.fork.name(),
                requests,
            })
        }
        Ok(Err(err)) => Err(chain_error(py, &err)),
        Err(payload) => Err(panic_error("block import", &*payload)),
    }
}
