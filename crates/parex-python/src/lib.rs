//! `parex._core`: the Python face of parex.
//!
//! Thin, checked bindings. Every argument is converted (and range-checked) while the GIL is
//! held; the block itself then runs with the GIL released, and a panic inside the engine is
//! caught here and raised as `ParexError` instead of unwinding into the interpreter.

mod chain;
mod conformance;
mod convert;
mod errors;
mod node;
mod replay;
mod result;
mod state;

use convert::{address_arg, b256_arg, bad, bytes_arg, transactions_arg, u256_arg, uint_arg};
use parex_evm::machine::execute_copies as execute_copies_of;
use parex_evm::{execute_block, ExecConfig, ExecutorKind};
use parex_primitives::{Address, BlockEnv, Bytes, Fork, B256};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyMapping, PyString};
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// The engine's allocations (not the interpreter's) go to mimalloc, which keeps freed pages
/// for the next block instead of returning them to the kernel and faulting them in again.
/// Built without transparent huge pages (`no_thp`: mimalloc does not `madvise` its memory
/// huge): a fault on a huge page zeroes 2 MiB at once, and on the mainnet replay such faults
/// made whole runs of one 2-3 ms block take 6-19 ms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENV_FIELDS: [&str; 10] = [
    "number",
    "timestamp",
    "beneficiary",
    "base_fee",
    "gas_limit",
    "prevrandao",
    "difficulty",
    "excess_blob_gas",
    "chain_id",
    "fork",
];

/// Upper bound on worker threads: far above any machine, low enough to catch a unit mix-up.
const MAX_THREADS: usize = 4096;

fn set_env_field(env: &mut BlockEnv, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let name = format!("env.{key}");
    match key {
        "number" => env.number = uint_arg(&name, value)?,
        "timestamp" => env.timestamp = uint_arg(&name, value)?,
        "beneficiary" => env.beneficiary = address_arg(&name, value)?,
        "base_fee" => env.base_fee = uint_arg(&name, value)?,
        "gas_limit" => env.gas_limit = uint_arg(&name, value)?,
        "prevrandao" => {
            env.prevrandao = if value.is_instance_of::<pyo3::types::PyInt>() {
                B256::from(u256_arg(&name, value)?)
            } else {
                b256_arg(&name, value)?
            }
        }
        "difficulty" => env.difficulty = u256_arg(&name, value)?,
        "excess_blob_gas" => {
            env.excess_blob_gas = if value.is_none() {
                None
            } else {
                Some(uint_arg(&name, value)?)
            }
        }
        "chain_id" => env.chain_id = uint_arg(&name, value)?,
        "fork" => {
            let text = value
                .cast::<PyString>()
                .map_err(|_| bad(&name, "expected a fork name such as \"prague\""))?
                .to_str()?
                .to_string();
            env.fork = text.parse::<Fork>().map_err(|e| bad(&name, e))?;
        }
        other => {
            return Err(bad(
                "env",
                format!(
                    "unknown field {other:?}; expected one of {}",
                    ENV_FIELDS.join(", ")
                ),
            ))
        }
    }
    Ok(())
}

/// A `BlockEnv` from a mapping or an object with the fields as attributes (`None` for
/// defaults), then `overrides` on top.
fn block_env(
    env: Option<&Bound<'_, PyAny>>,
    overrides: Option<&Bound<'_, PyDict>>,
) -> PyResult<BlockEnv> {
    let mut out = BlockEnv::default();
    if let Some(env) = env.filter(|e| !e.is_none()) {
        if let Ok(mapping) = env.cast::<PyMapping>() {
            for item in mapping.items()?.iter() {
                let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
                let key = key
                    .cast::<PyString>()
                    .map_err(|_| bad("env", "keys must be str"))?
                    .to_str()?
                    .to_string();
                set_env_field(&mut out, &key, &value)?;
            }
        } else {
            for key in ENV_FIELDS {
                if let Some(value) = env.getattr_opt(key)? {
                    set_env_field(&mut out, key, &value)?;
                }
            }
        }
    }
    if let Some(overrides) = overrides {
        for (key, value) in overrides.iter() {
            let key: String = key.extract()?;
            set_env_field(&mut out, &key, &value)?;
        }
    }
    Ok(out)
}

/// A `threads` argument; 1 when not given.
pub(crate) fn threads_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
    value.map_or(Ok(1), |value| {
        count_arg("threads", value).map(NonZeroUsize::get)
    })
}

/// A count of threads (workers, copies): from 1 to [`MAX_THREADS`].
fn count_arg(name: &str, value: &Bound<'_, PyAny>) -> PyResult<NonZeroUsize> {
    let count: usize = uint_arg(name, value)?;
    if count > MAX_THREADS {
        return Err(bad(name, format!("must be at most {MAX_THREADS}")));
    }
    NonZeroUsize::new(count).ok_or_else(|| bad(name, "must be at least 1"))
}

/// The executor, threads and tracing of one call, checked.
pub(crate) fn exec_config(
    threads: Option<&Bound<'_, PyAny>>,
    sequential: bool,
    trace: bool,
    trace_runs: u32,
    sequential_rule: bool,
) -> PyResult<ExecConfig> {
    if trace_runs == 0 {
        return Err(bad("trace_runs", "must be at least 1"));
    }
    let threads = threads_arg(threads)?;
    Ok(ExecConfig {
        executor: if sequential {
            ExecutorKind::Sequential
        } else {
            ExecutorKind::Parallel
        },
        threads,
        trace,
        trace_runs,
        sequential_rule,
    })
}

/// Runs `work` with the GIL released; a block error becomes its Python exception, a panic
/// a `ParexError` naming `what`.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    what: &str,
    work: impl FnOnce() -> Result<T, parex_evm::BlockError> + Send,
) -> PyResult<T> {
    py.detach(move || errors::caught(what, work))?
        .map_err(|err| errors::block_error(py, &err))
}

/// Executes one block of raw EIP-2718 transactions against `state` (which is not modified;
/// apply the result with `state.apply(result)`). `sequential_rule=True` lets a block too
/// small to gain from Block-STM run sequentially (`stats["sequential_rule"]` says why).
#[pyfunction]
#[pyo3(signature = (env, transactions, state, *, threads = None, sequential = false, trace = false, trace_runs = 1, sequential_rule = false, **fields))]
#[allow(clippy::too_many_arguments)]
fn execute(
    py: Python<'_>,
    env: Option<&Bound<'_, PyAny>>,
    transactions: &Bound<'_, PyAny>,
    state: &Bound<'_, state::State>,
    threads: Option<&Bound<'_, PyAny>>,
    sequential: bool,
    trace: bool,
    trace_runs: u32,
    sequential_rule: bool,
    fields: Option<&Bound<'_, PyDict>>,
) -> PyResult<result::BlockResult> {
    let env = block_env(env, fields)?;
    let config = exec_config(threads, sequential, trace, trace_runs, sequential_rule)?;
    let transactions = transactions_arg(transactions)?;
    let pre_state = Arc::clone(&state.borrow().inner);
    let result = detached(py, "block execution", move || {
        execute_block(&env, &transactions, &*pre_state, &config)
    })?;
    Ok(result.into())
}

/// A block decoded and its senders recovered, ready to execute any number of times (see
/// `prepare`). Immutable.
#[pyclass(frozen, module = "parex")]
pub struct PreparedBlock {
    inner: Arc<parex_evm::PreparedBlock>,
    recovery_ns: u64,
}

#[pymethods]
impl PreparedBlock {
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// How long decoding and sender recovery took, in nanoseconds.
    #[getter]
    fn recovery_ns(&self) -> u64 {
        self.recovery_ns
    }

    /// Each transaction's sender, in block order.
    #[getter]
    fn senders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        convert::bytes_list(py, self.inner.senders())
    }

    /// Each transaction's hash, in block order.
    #[getter]
    fn tx_hashes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        convert::bytes_list(py, self.inner.tx_hashes())
    }

    fn __repr__(&self) -> String {
        format!(
            "PreparedBlock(number={}, transactions={}, fork={})",
            self.inner.env().number,
            self.inner.len(),
            self.inner.env().fork.name()
        )
    }
}

/// Decodes a block of raw EIP-2718 transactions and recovers their senders on up to
/// `threads` threads, once: `execute_prepared` and `execute_copies` then run it without
/// recovering again (what a benchmark that runs one block many times needs). Raises as
/// `execute` does for an envelope that does not decode or a signature that does not recover.
#[pyfunction]
#[pyo3(signature = (env, transactions, *, threads = None, **fields))]
fn prepare(
    py: Python<'_>,
    env: Option<&Bound<'_, PyAny>>,
    transactions: &Bound<'_, PyAny>,
    threads: Option<&Bound<'_, PyAny>>,
    fields: Option<&Bound<'_, PyDict>>,
) -> PyResult<PreparedBlock> {
    let env = block_env(env, fields)?;
    let threads = threads_arg(threads)?;
    let transactions = transactions_arg(transactions)?;
    let (prepared, recovery_ns) = detached(py, "block preparation", move || {
        let start = std::time::Instant::now();
        let prepared = parex_evm::PreparedBlock::new(&env, &transactions, threads)?;
        Ok((prepared, start.elapsed().as_nanos() as u64))
    })?;
    Ok(PreparedBlock {
        inner: Arc::new(prepared),
        recovery_ns,
    })
}

/// `execute` on a prepared block: the same result, with `recovery_ns` 0 (the block was
/// recovered by `prepare`).
#[pyfunction]
#[pyo3(signature = (block, state, *, threads = None, sequential = false, trace = false, trace_runs = 1, sequential_rule = false))]
#[allow(clippy::too_many_arguments)]
fn execute_prepared(
    py: Python<'_>,
    block: &Bound<'_, PreparedBlock>,
    state: &Bound<'_, state::State>,
    threads: Option<&Bound<'_, PyAny>>,
    sequential: bool,
    trace: bool,
    trace_runs: u32,
    sequential_rule: bool,
) -> PyResult<result::BlockResult> {
    let config = exec_config(threads, sequential, trace, trace_runs, sequential_rule)?;
    let prepared = Arc::clone(&block.get().inner);
    let pre_state = Arc::clone(&state.borrow().inner);
    let result = detached(py, "block execution", move || {
        parex_evm::execute_prepared(&prepared, &*pre_state, &config)
    })?;
    Ok(result.into())
}

/// Executes copies of a prepared block with the sequential executor, one thread each: one
/// copy alone, then `copies` at once. Returns both wall times in nanoseconds,
/// `(alone, together)` (a warm-up run per thread comes before and is not timed).
/// `copies * alone / together` is the throughput the machine gives independent blocks: the
/// bound that `parex bench` reports as `machine_speedup`.
#[pyfunction]
#[pyo3(signature = (block, state, *, copies))]
fn execute_copies(
    py: Python<'_>,
    block: &Bound<'_, PreparedBlock>,
    state: &Bound<'_, state::State>,
    copies: &Bound<'_, PyAny>,
) -> PyResult<(u64, u64)> {
    let copies = count_arg("copies", copies)?;
    let prepared = Arc::clone(&block.get().inner);
    let pre_state = Arc::clone(&state.borrow().inner);
    let timing = detached(py, "block execution", move || {
        execute_copies_of(&prepared, &*pre_state, copies)
    })?;
    Ok((timing.alone_nanos, timing.together_nanos))
}

fn secret_arg(name: &str, value: &Bound<'_, PyAny>) -> PyResult<[u8; 32]> {
    let raw = bytes_arg(name, value)?;
    raw.try_into().map_err(|raw: Vec<u8>| {
        bad(
            name,
            format!("expected a 32-byte secret key, got {} bytes", raw.len()),
        )
    })
}

/// The address of a secp256k1 secret key.
#[pyfunction]
fn address_of<'py>(py: Python<'py>, secret: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let secret = secret_arg("secret", secret)?;
    let address = catch_unwind(|| parex_evm::sign::address_of(&secret))
        .map_err(|p| errors::panic_error("address_of", &*p))?
        .map_err(|e| bad("secret", e))?;
    Ok(convert::bytes_to_py(py, address.as_slice()).into_any())
}

/// One signing request: the EIP-2718 type and the fields.
struct Request {
    tx_type: u8,
    fields: parex_evm::sign::TxRequest,
}

const REQUEST_SHAPE: &str =
    "(nonce, to, value, input, gas_limit, max_fee, max_priority_fee[, tx_type])";

fn request_arg(index: usize, value: &Bound<'_, PyAny>) -> PyResult<Request> {
    let name = format!("requests[{index}]");
    let items: Vec<Bound<'_, PyAny>> = value
        .extract()
        .map_err(|_| bad(&name, format!("expected a tuple {REQUEST_SHAPE}")))?;
    let (fields, tx_type) = match items.as_slice() {
        [a, b, c, d, e, f, g] => ([a, b, c, d, e, f, g], None),
        [a, b, c, d, e, f, g, t] => ([a, b, c, d, e, f, g], Some(t)),
        _ => {
            return Err(bad(
                &name,
                format!("expected 7 or 8 items {REQUEST_SHAPE}, got {}", items.len()),
            ))
        }
    };
    let [nonce, to, amount, input, gas_limit, max_fee, max_priority_fee] = fields;
    let tx_type: u8 = match tx_type {
        Some(t) => uint_arg(&format!("{name}.tx_type"), t)?,
        None => 2,
    };
    if tx_type > 2 {
        return Err(bad(
            &format!("{name}.tx_type"),
            format!("expected 0 (legacy), 1 (EIP-2930) or 2 (EIP-1559), got {tx_type}"),
        ));
    }
    let to: Option<Address> = if to.is_none() {
        None
    } else {
        Some(address_arg(&format!("{name}.to"), to)?)
    };
    Ok(Request {
        tx_type,
        fields: parex_evm::sign::TxRequest {
            nonce: uint_arg(&format!("{name}.nonce"), nonce)?,
            to,
            value: u256_arg(&format!("{name}.value"), amount)?,
            input: Bytes::from(bytes_arg(&format!("{name}.input"), input)?),
            gas_limit: uint_arg(&format!("{name}.gas_limit"), gas_limit)?,
            max_fee_per_gas: uint_arg(&format!("{name}.max_fee"), max_fee)?,
            max_priority_fee_per_gas: uint_arg(
                &format!("{name}.max_priority_fee"),
                max_priority_fee,
            )?,
        },
    })
}

fn sign_one(
    chain_id: u64,
    secret: &[u8; 32],
    request: &Request,
) -> Result<Bytes, parex_evm::BlockError> {
    use parex_evm::sign;
    match request.tx_type {
        0 => sign::sign_legacy(Some(chain_id), secret, &request.fields),
        1 => sign::sign_eip2930(chain_id, secret, &request.fields, Default::default()),
        _ => sign::sign_eip1559(chain_id, secret, &request.fields),
    }
}

/// Signs `requests[i]` with `secrets[i]` for `chain_id`; returns the EIP-2718 envelopes.
/// A request is `(nonce, to, value, input, gas_limit, max_fee, max_priority_fee)`, optionally
/// followed by the transaction type: 2 (EIP-1559, the default), 1 (EIP-2930, empty access
/// list) or 0 (legacy, EIP-155); the last two pay `max_fee` as their gas price. Runs in
/// parallel with the GIL released.
#[pyfunction]
fn sign_transactions(
    py: Python<'_>,
    chain_id: &Bound<'_, PyAny>,
    secrets: &Bound<'_, PyAny>,
    requests: &Bound<'_, PyAny>,
) -> PyResult<Vec<Py<pyo3::types::PyBytes>>> {
    let chain_id: u64 = uint_arg("chain_id", chain_id)?;
    let secrets: Vec<[u8; 32]> = secrets
        .try_iter()
        .map_err(|_| bad("secrets", "expected a list of 32-byte secret keys"))?
        .enumerate()
        .map(|(i, s)| secret_arg(&format!("secrets[{i}]"), &s?))
        .collect::<PyResult<_>>()?;
    let requests: Vec<Request> = requests
        .try_iter()
        .map_err(|_| bad("requests", "expected a list of request tuples"))?
        .enumerate()
        .map(|(i, r)| request_arg(i, &r?))
        .collect::<PyResult<_>>()?;
    if secrets.len() != requests.len() {
        return Err(bad(
            "secrets",
            format!(
                "got {} secrets for {} requests; expected one per request",
                secrets.len(),
                requests.len()
            ),
        ));
    }
    let signed = py.detach(move || {
        use rayon::prelude::*;
        catch_unwind(AssertUnwindSafe(|| {
            secrets
                .par_iter()
                .zip(requests.par_iter())
                .enumerate()
                .map(|(i, (secret, request))| {
                    sign_one(chain_id, secret, request).map_err(|e| (i, e))
                })
                .collect::<Result<Vec<Bytes>, _>>()
        }))
    });
    match signed {
        Ok(Ok(envelopes)) => Ok(envelopes
            .iter()
            .map(|e| pyo3::types::PyBytes::new(py, e).unbind())
            .collect()),
        Ok(Err((i, err))) => Err(bad(&format!("secrets[{i}]"), err)),
        Err(payload) => Err(errors::panic_error("signing", &*payload)),
    }
}

/// keccak256 of `data`.
#[pyfunction]
fn keccak256<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let data = bytes_arg("data", data)?;
    Ok(convert::bytes_to_py(py, parex_primitives::keccak256(&data).as_slice()).into_any())
}

/// parex: Block-STM parallel execution of Ethereum blocks.
#[pymodule(module = "parex")]
mod _core {
    use super::*;

    #[pymodule_export]
    use super::{
        address_of, execute, execute_copies, execute_prepared, keccak256, prepare,
        sign_transactions, PreparedBlock,
    };
    #[pymodule_export]
    use crate::chain::{
        blob_params, build_block, fork_at, genesis_header, import_block, parse_fork, payload_block,
        system_contracts, Header, ImportedBlock, InvalidBlock,
    };
    #[pymodule_export]
    use crate::conformance::{logs_hash, state_root};
    #[pymodule_export]
    use crate::errors::{
        DecodeError, InvalidTransaction, ParexError, SignatureError, StateError, TransactionError,
    };
    #[pymodule_export]
    use crate::node::{
        account_proof, call, decode_pooled_transaction, decode_transaction, estimate_gas,
        validate_blob_sidecar, CallInvalid, CallResult, StateRootTracker, Store,
    };
    #[pymodule_export]
    use crate::replay::{logs_bloom, receipts_root, rpc_transactions, transactions_root};
    #[pymodule_export]
    use crate::result::{AccountChange, BlockResult, Log, Receipt};
    #[pymodule_export]
    use crate::state::State;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        crate::errors::init_attributes(py)?;
        crate::chain::init_attributes(py)?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add(
            "FORKS",
            pyo3::types::PyTuple::new(py, Fork::ALL.map(|f| f.name()))?,
        )?;
        Ok(())
    }
}
