//! Block processing for Python: headers, `import_block` (validate, execute through Block-STM,
//! check every commitment) and the fork schedule parser that Python shares with Rust.

use crate::convert::{address_arg, b256_arg, bad, bytes_arg, bytes_to_py, fixed_arg, uint_arg};
use crate::errors::{panic_error, ParexError};
use crate::node::StateRootTracker;
use crate::result::BlockResult;
use crate::state::State;
use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{Bloom, B64};
use alloy_rlp::{Decodable, Encodable};
use parex_chain::{
    execute_block, Block, ChainError, ChainSpec, ExecutedBlock, StateCommitment, TrackedState,
};
use parex_primitives::{Bytes, Fork, ForkSchedule, B256};
use parex_state::StateViewRef;
use pyo3::marker::Ungil;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMapping};
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

    /// The proof-of-work nonce (zero from the Merge on).
    #[getter]
    fn nonce(&self) -> u64 {
        u64::from_be_bytes(self.inner.nonce.0)
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
    /// The block's RLP.
    rlp: Vec<u8>,
}

#[pymethods]
impl ImportedBlock {
    /// The block hash (`header.hash`).
    #[getter]
    fn hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, self.header.get().hash.as_slice())
    }

    /// The RLP of the whole block (header, transactions, ommers, withdrawals).
    #[getter]
    fn rlp<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes_to_py(py, &self.rlp)
    }

    /// The block's raw transactions (EIP-2718 envelopes).
    #[getter]
    fn transactions<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let block = Block::decode(&self.rlp).map_err(|e| chain_error(py, &e))?;
        Ok(block
            .transactions
            .iter()
            .map(|t| bytes_to_py(py, t))
            .collect())
    }

    /// The block's withdrawals as `(index, validator_index, address, amount_gwei)`; `None`
    /// before Shanghai.
    #[getter]
    #[allow(clippy::type_complexity)]
    fn withdrawals<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Vec<(u64, u64, Bound<'py, PyBytes>, u64)>>> {
        let block = Block::decode(&self.rlp).map_err(|e| chain_error(py, &e))?;
        Ok(block.withdrawals.map(|ws| {
            ws.iter()
                .map(|w| {
                    (
                        w.index,
                        w.validator_index,
                        bytes_to_py(py, w.address.as_slice()),
                        w.amount,
                    )
                })
                .collect()
        }))
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

fn chain_spec(schedule: &str, chain_id: Option<&Bound<'_, PyAny>>) -> PyResult<ChainSpec> {
    let chain_id: u64 = match chain_id {
        Some(c) => uint_arg("chain_id", c)?,
        None => 1,
    };
    Ok(ChainSpec::new(chain_id, schedule_arg(schedule)?))
}

/// Runs `process` on `state`, through `roots` (its incremental state root) when given, with
/// the GIL released and panics caught.
fn run_on_state(
    py: Python<'_>,
    what: &str,
    state: &Bound<'_, State>,
    roots: Option<&Bound<'_, StateRootTracker>>,
    process: impl Ungil + Send + FnOnce(&dyn ChainState) -> Result<(ExecutedBlock, Vec<u8>), ChainError>,
) -> PyResult<ImportedBlock> {
    let pre_state = Arc::clone(&state.borrow().inner);
    let mut roots = roots.map(|r| r.borrow_mut());
    let tracker = roots.as_mut().map(|r| &mut r.inner);
    let outcome = py.detach(move || {
        catch_unwind(AssertUnwindSafe(|| match tracker {
            Some(tracker) => process(&TrackedState::new(&pre_state, tracker)),
            None => process(&*pre_state),
        }))
    });
    match outcome {
        Ok(Ok((executed, rlp))) => {
            let requests = executed.requests.map(|r| r.take());
            Ok(ImportedBlock {
                header: Py::new(
                    py,
                    Header {
                        inner: executed.header,
                        hash: executed.hash,
                    },
                )?,
                result: Py::new(py, BlockResult::from(executed.result))?,
                fork: executed.fork.name(),
                requests,
                rlp,
            })
        }
        Ok(Err(err)) => Err(chain_error(py, &err)),
        Err(payload) => Err(panic_error(what, &*payload)),
    }
}

/// What `build_block` and `execute_block` need of a state, as one object-safe trait.
trait ChainState: StateViewRef + StateCommitment {}
impl<T: StateViewRef + StateCommitment> ChainState for T {}

impl StateCommitment for &dyn ChainState {
    fn state_root_after(
        &self,
        changes: &parex_primitives::StateChanges,
    ) -> Result<parex_primitives::B256, parex_state::StateError> {
        (**self).state_root_after(changes)
    }
}

/// Validates `block` (RLP) as the child of `parent` and executes it on `state` (the state
/// after `parent`; not modified): system calls, transactions through Block-STM on `threads`
/// workers (or one after another with `sequential=True`), withdrawals, rewards and requests;
/// then checks every commitment of the header. `schedule` is the chain's fork schedule (a
/// fork, a transition name or `"mainnet"`). `sequential_rule=True` lets a block too small to
/// gain run sequentially. `roots`, a `StateRootTracker` following `state`, computes the state
/// root incrementally (it is left unchanged). Raises `InvalidBlock` for a block the rules
/// reject. Runs with the GIL released.
#[pyfunction]
#[pyo3(signature = (block, parent, state, *, schedule, chain_id = None, threads = None, sequential = false, sequential_rule = false, roots = None))]
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
    roots: Option<&Bound<'_, StateRootTracker>>,
) -> PyResult<ImportedBlock> {
    let raw = bytes_arg("block", block)?;
    let spec = chain_spec(schedule, chain_id)?;
    let config = crate::exec_config(threads, sequential, false, 1, sequential_rule)?;
    let parent_header = parent.get().inner.clone();
    run_on_state(py, "block import", state, roots, move |state| {
        let block = Block::decode(&raw)?;
        let executed = execute_block(&spec, &parent_header, &block, &state, &config)?;
        Ok((executed, raw))
    })
}

/// Withdrawals as `[(index, validator_index, address, amount_gwei), ...]`.
fn withdrawals_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<Withdrawal>> {
    let what = "expected a list of (index, validator_index, address, amount_gwei)";
    value
        .try_iter()
        .map_err(|_| bad("withdrawals", what))?
        .enumerate()
        .map(|(i, item)| {
            let name = format!("withdrawals[{i}]");
            let (index, validator, address, amount): (
                Bound<'_, PyAny>,
                Bound<'_, PyAny>,
                Bound<'_, PyAny>,
                Bound<'_, PyAny>,
            ) = item?.extract().map_err(|_| bad(&name, what))?;
            Ok(Withdrawal {
                index: uint_arg(&format!("{name}.index"), &index)?,
                validator_index: uint_arg(&format!("{name}.validator_index"), &validator)?,
                address: address_arg(&format!("{name}.address"), &address)?,
                amount: uint_arg(&format!("{name}.amount"), &amount)?,
            })
        })
        .collect()
}

/// Builds the block after `parent` on `state` (the state after `parent`; not modified) from
/// `transactions` (raw EIP-2718) and the fields a proposer chooses; parex-chain derives the
/// rest (number, parent hash, base fee, excess blob gas), runs the system calls, the
/// transactions through Block-STM, the `withdrawals` and the requests, and fills in every
/// commitment. The returned block's header is sealed; `import_block` accepts it. A
/// transaction the rules reject raises `InvalidBlock` with its `index` (drop it and build
/// again). `roots` as for `import_block`. Runs with the GIL released.
#[pyfunction]
#[pyo3(signature = (parent, state, transactions, *, schedule, beneficiary, gas_limit, timestamp, prev_randao, chain_id = None, extra_data = None, parent_beacon_block_root = None, withdrawals = None, threads = None, sequential_rule = false, roots = None))]
#[allow(clippy::too_many_arguments)]
pub fn build_block(
    py: Python<'_>,
    parent: &Bound<'_, Header>,
    state: &Bound<'_, State>,
    transactions: &Bound<'_, PyAny>,
    schedule: &str,
    beneficiary: &Bound<'_, PyAny>,
    gas_limit: &Bound<'_, PyAny>,
    timestamp: &Bound<'_, PyAny>,
    prev_randao: &Bound<'_, PyAny>,
    chain_id: Option<&Bound<'_, PyAny>>,
    extra_data: Option<&Bound<'_, PyAny>>,
    parent_beacon_block_root: Option<&Bound<'_, PyAny>>,
    withdrawals: Option<&Bound<'_, PyAny>>,
    threads: Option<&Bound<'_, PyAny>>,
    sequential_rule: bool,
    roots: Option<&Bound<'_, StateRootTracker>>,
) -> PyResult<ImportedBlock> {
    let spec = chain_spec(schedule, chain_id)?;
    let config = crate::exec_config(threads, false, false, 1, sequential_rule)?;
    let header = alloy_consensus::Header {
        beneficiary: address_arg("beneficiary", beneficiary)?,
        gas_limit: uint_arg("gas_limit", gas_limit)?,
        timestamp: uint_arg("timestamp", timestamp)?,
        mix_hash: b256_arg("prev_randao", prev_randao)?,
        extra_data: match extra_data {
            Some(v) => Bytes::from(bytes_arg("extra_data", v)?),
            None => Bytes::new(),
        },
        parent_beacon_block_root: parent_beacon_block_root
            .map(|v| b256_arg("parent_beacon_block_root", v))
            .transpose()?,
        ..Default::default()
    };
    let block = Block {
        header,
        transactions: crate::convert::transactions_arg(transactions)?,
        ommers: Vec::new(),
        withdrawals: withdrawals.map(withdrawals_arg).transpose()?,
    };
    let parent_header = parent.get().inner.clone();
    run_on_state(py, "block building", state, roots, move |state| {
        let executed = parex_chain::build_block(&spec, &parent_header, &block, &state, &config)?;
        let sealed = Block {
            header: executed.header.clone(),
            withdrawals: executed
                .header
                .withdrawals_root
                .map(|_| block.withdrawals.clone().unwrap_or_default()),
            ..block
        };
        let rlp = sealed.encode();
        Ok((executed, rlp))
    })
}

/// The genesis header of `state` under `schedule` (the fork at block 0 decides which fork
/// fields it has; see parex-chain's `genesis_header`), with the fields a genesis file sets.
#[pyfunction]
#[pyo3(signature = (state, *, schedule, gas_limit, timestamp, extra_data = None, beneficiary = None, base_fee = None, mix_hash = None, difficulty = None, nonce = 0))]
#[allow(clippy::too_many_arguments)]
pub fn genesis_header(
    py: Python<'_>,
    state: &Bound<'_, State>,
    schedule: &str,
    gas_limit: &Bound<'_, PyAny>,
    timestamp: &Bound<'_, PyAny>,
    extra_data: Option<&Bound<'_, PyAny>>,
    beneficiary: Option<&Bound<'_, PyAny>>,
    base_fee: Option<&Bound<'_, PyAny>>,
    mix_hash: Option<&Bound<'_, PyAny>>,
    difficulty: Option<&Bound<'_, PyAny>>,
    nonce: u64,
) -> PyResult<Header> {
    let spec = ChainSpec::new(1, schedule_arg(schedule)?);
    let template = alloy_consensus::Header {
        gas_limit: uint_arg("gas_limit", gas_limit)?,
        timestamp: uint_arg("timestamp", timestamp)?,
        extra_data: match extra_data {
            Some(v) => Bytes::from(bytes_arg("extra_data", v)?),
            None => Bytes::new(),
        },
        beneficiary: beneficiary
            .map(|v| address_arg("beneficiary", v))
            .transpose()?
            .unwrap_or_default(),
        base_fee_per_gas: base_fee.map(|v| uint_arg("base_fee", v)).transpose()?,
        mix_hash: mix_hash
            .map(|v| b256_arg("mix_hash", v))
            .transpose()?
            .unwrap_or_default(),
        difficulty: difficulty
            .map(|v| crate::convert::u256_arg("difficulty", v))
            .transpose()?
            .unwrap_or_default(),
        nonce: B64::from(nonce),
        ..Default::default()
    };
    let state = Arc::clone(&state.borrow().inner);
    let root =
        py.detach(move || catch_unwind(AssertUnwindSafe(|| parex_commitment::state_root(&state))));
    let root = root.map_err(|p| panic_error("genesis header", &*p))?;
    Ok(Header::new(parex_chain::genesis_header(
        &spec, &template, root,
    )))
}

const PAYLOAD_FIELDS: &str = "parent_hash, beneficiary, state_root, receipts_root, logs_bloom, number, gas_limit, gas_used, timestamp, extra_data, mix_hash, base_fee_per_gas, blob_gas_used, excess_blob_gas (and for a pre-merge block difficulty, nonce)";

/// The RLP of the block an Engine API execution payload describes: `fields` maps the header
/// fields named in the stubs to values (hex decoding is the caller's); the transactions and
/// withdrawals roots are computed from `transactions` and `withdrawals` (`None`: before
/// Shanghai), the requests hash from `requests` (EIP-7685, type byte first; `None`: before
/// Prague); ommers are none, difficulty and nonce zero. Check the hash of the result
/// (`Header.of_block(rlp).hash`) against the payload's `blockHash`, then `import_block` it.
#[pyfunction]
#[pyo3(signature = (fields, transactions, *, withdrawals = None, parent_beacon_block_root = None, requests = None))]
pub fn payload_block<'py>(
    py: Python<'py>,
    fields: &Bound<'py, PyMapping>,
    transactions: &Bound<'py, PyAny>,
    withdrawals: Option<&Bound<'py, PyAny>>,
    parent_beacon_block_root: Option<&Bound<'py, PyAny>>,
    requests: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let get = |name: &str| -> PyResult<Option<Bound<'py, PyAny>>> {
        match fields.get_item(name) {
            Ok(v) if !v.is_none() => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let need = |name: &str| -> PyResult<Bound<'py, PyAny>> {
        get(name)?.ok_or_else(|| {
            bad(
                &format!("fields.{name}"),
                format!("required; payload fields are {PAYLOAD_FIELDS}"),
            )
        })
    };
    let b256 = |name: &str| -> PyResult<B256> { b256_arg(&format!("fields.{name}"), &need(name)?) };
    let num = |name: &str| -> PyResult<u64> { uint_arg(&format!("fields.{name}"), &need(name)?) };
    let opt_num = |name: &str| -> PyResult<Option<u64>> {
        get(name)?
            .map(|v| uint_arg(&format!("fields.{name}"), &v))
            .transpose()
    };
    let transactions = crate::convert::transactions_arg(transactions)?;
    let withdrawals = withdrawals.map(withdrawals_arg).transpose()?;
    let requests_hash = match requests {
        None => None,
        Some(list) => {
            let mut requests = alloy_eips::eip7685::Requests::default();
            for (i, item) in list
                .try_iter()
                .map_err(|_| bad("requests", "expected a list of bytes"))?
                .enumerate()
            {
                requests.push_request(Bytes::from(bytes_arg(&format!("requests[{i}]"), &item?)?));
            }
            Some(requests.requests_hash())
        }
    };
    let header = alloy_consensus::Header {
        parent_hash: b256("parent_hash")?,
        ommers_hash: alloy_consensus::EMPTY_OMMER_ROOT_HASH,
        beneficiary: address_arg("fields.beneficiary", &need("beneficiary")?)?,
        state_root: b256("state_root")?,
        transactions_root: parex_commitment::transactions_root(&transactions),
        receipts_root: b256("receipts_root")?,
        logs_bloom: Bloom::from(fixed_arg::<256>("fields.logs_bloom", &need("logs_bloom")?)?),
        difficulty: match get("difficulty")? {
            Some(v) => crate::convert::u256_arg("fields.difficulty", &v)?,
            None => Default::default(),
        },
        number: num("number")?,
        gas_limit: num("gas_limit")?,
        gas_used: num("gas_used")?,
        timestamp: num("timestamp")?,
        extra_data: match get("extra_data")? {
            Some(v) => Bytes::from(bytes_arg("fields.extra_data", &v)?),
            None => Bytes::new(),
        },
        mix_hash: b256("mix_hash")?,
        nonce: B64::from(opt_num("nonce")?.unwrap_or(0)),
        base_fee_per_gas: opt_num("base_fee_per_gas")?,
        withdrawals_root: withdrawals
            .as_deref()
            .map(parex_commitment::withdrawals_root),
        blob_gas_used: opt_num("blob_gas_used")?,
        excess_blob_gas: opt_num("excess_blob_gas")?,
        parent_beacon_block_root: parent_beacon_block_root
            .map(|v| b256_arg("parent_beacon_block_root", v))
            .transpose()?,
        requests_hash,
        ..Default::default()
    };
    let block = Block {
        header,
        transactions,
        ommers: Vec::new(),
        withdrawals,
    };
    Ok(bytes_to_py(py, &block.encode()))
}

/// The system contracts Prague calls around every block, as `(address, code)`: EIP-4788
/// beacon roots, EIP-2935 block hashes, EIP-7002 withdrawal requests and EIP-7251
/// consolidation requests (the last two must exist from Prague on). A genesis deploys them
/// with nonce 1, as their EIPs' deployment transactions leave them.
#[pyfunction]
pub fn system_contracts<'py>(py: Python<'py>) -> Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    parex_chain::PRAGUE_SYSTEM_CONTRACTS
        .iter()
        .map(|(address, code)| (bytes_to_py(py, address.as_slice()), bytes_to_py(py, code)))
        .collect()
}
