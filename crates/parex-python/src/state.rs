//! `State`: the in-memory pre-block state, shared copy-on-write with running blocks.

use crate::convert::{address_arg, bytes_arg, bytes_to_py, u256_arg, u256_to_py, uint_arg};
use crate::errors::state_error;
use crate::result::BlockResult;
use parex_primitives::{Bytes, KECCAK_EMPTY, U256};
use parex_state::{InMemoryState, StateViewRef};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::Arc;

/// A complete Ethereum state held in memory.
///
/// `copy()` is O(1): copies share the accounts until one of them is modified. A block being
/// executed holds its own reference, so modifying a `State` from another thread while a block
/// runs on it is safe and does not affect that block.
#[pyclass(module = "parex._core")]
pub struct State {
    pub(crate) inner: Arc<InMemoryState>,
}

impl State {
    fn state_mut(&mut self) -> &mut InMemoryState {
        Arc::make_mut(&mut self.inner)
    }
}

#[pymethods]
impl State {
    #[new]
    fn new() -> Self {
        State {
            inner: Arc::new(InMemoryState::new()),
        }
    }

    /// Creates or replaces the account at `address`. Its storage is kept.
    #[pyo3(signature = (address, balance, nonce = None, code = None))]
    fn set_account(
        &mut self,
        address: &Bound<'_, PyAny>,
        balance: &Bound<'_, PyAny>,
        nonce: Option<&Bound<'_, PyAny>>,
        code: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let address = address_arg("address", address)?;
        let balance = u256_arg("balance", balance)?;
        let nonce = match nonce {
            Some(n) => uint_arg::<u64>("nonce", n)?,
            None => 0,
        };
        let code = match code {
            Some(c) => Some(Bytes::from(bytes_arg("code", c)?)),
            None => None,
        };
        self.state_mut()
            .insert_account(address, balance, nonce, code);
        Ok(())
    }

    /// Sets one storage slot; zero deletes it. Creates an empty account if needed.
    fn set_storage(
        &mut self,
        address: &Bound<'_, PyAny>,
        slot: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let address = address_arg("address", address)?;
        let slot = u256_arg("slot", slot)?;
        let value = u256_arg("value", value)?;
        self.state_mut().insert_storage(address, slot, value);
        Ok(())
    }

    /// Records the hash of block `number`, for `BLOCKHASH`.
    fn set_block_hash(
        &mut self,
        number: &Bound<'_, PyAny>,
        hash: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let number = uint_arg::<u64>("number", number)?;
        let hash = crate::convert::b256_arg("hash", hash)?;
        self.state_mut().insert_block_hash(number, hash);
        Ok(())
    }

    /// `(balance, nonce, code_hash)`, or `None` when the account does not exist.
    fn get_account<'py>(
        &self,
        py: Python<'py>,
        address: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let address = address_arg("address", address)?;
        let Some(info) = StateViewRef::account(&*self.inner, &address).map_err(state_error)? else {
            return Ok(None);
        };
        let items = [
            u256_to_py(py, &info.balance)?,
            info.nonce.into_pyobject(py)?.into_any(),
            bytes_to_py(py, info.code_hash.as_slice()).into_any(),
        ];
        Ok(Some(PyTuple::new(py, items)?))
    }

    /// The value of `slot` in `address`'s storage; 0 when unset.
    fn get_storage<'py>(
        &self,
        py: Python<'py>,
        address: &Bound<'py, PyAny>,
        slot: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let address = address_arg("address", address)?;
        let slot = u256_arg("slot", slot)?;
        let value: U256 =
            StateViewRef::storage(&*self.inner, &address, &slot).map_err(state_error)?;
        u256_to_py(py, &value)
    }

    /// The code at `address`; empty when there is none.
    fn get_code<'py>(
        &self,
        py: Python<'py>,
        address: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let address = address_arg("address", address)?;
        let info = StateViewRef::account(&*self.inner, &address).map_err(state_error)?;
        let code_hash = info.map(|i| i.code_hash).unwrap_or(KECCAK_EMPTY);
        let code = StateViewRef::code_by_hash(&*self.inner, &code_hash)
            .map_err(state_error)?
            .unwrap_or_default();
        Ok(bytes_to_py(py, &code).into_any())
    }

    /// Applies a block's changes: this becomes the post-block state.
    fn apply(&mut self, result: &Bound<'_, BlockResult>) {
        let result = result.get();
        self.state_mut().apply(&result.inner.changes);
    }

    /// An independent copy (O(1), copy-on-write).
    fn copy(&self) -> State {
        State {
            inner: Arc::clone(&self.inner),
        }
    }

    fn __copy__(&self) -> State {
        self.copy()
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> State {
        self.copy()
    }

    /// Number of accounts.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// True when both hold the same accounts, storage and code.
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<State>() {
            Ok(other) => {
                let other = other.borrow();
                Arc::ptr_eq(&self.inner, &other.inner)
                    || self.inner.accounts() == other.inner.accounts()
            }
            Err(_) => false,
        }
    }

    fn __repr__(&self) -> String {
        format!("State(accounts={})", self.inner.len())
    }
}
