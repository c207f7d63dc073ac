//! Checked conversions between Python values and parex primitives.
//!
//! Every conversion names the argument it failed on, so that a bad call says which value was
//! wrong instead of raising a bare `TypeError` from deep inside PyO3.

use parex_primitives::{Address, Bytes, B256, U256};
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyInt, PyList, PyString};

/// A `ValueError` whose message starts with the argument's name.
pub fn bad(name: &str, why: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{name}: {why}"))
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// Raw bytes from `bytes` or `bytearray`.
pub fn bytes_arg(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    Err(bad(
        name,
        format!("expected bytes, got {}", type_name(value)),
    ))
}

fn hex_arg(name: &str, text: &str, len: usize) -> PyResult<Vec<u8>> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or_else(|| {
            bad(
                name,
                format!("expected a 0x-prefixed hex string, got {text:?}"),
            )
        })?;
    if digits.len() != 2 * len || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(
            name,
            format!(
                "expected 0x followed by {} hex digits, got {text:?}",
                2 * len
            ),
        ));
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    };
    Ok(digits
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| nibble(pair[0]) << 4 | nibble(pair[1]))
        .collect())
}

/// Exactly `N` bytes, given as `bytes`/`bytearray` or as a `"0x…"` hex string.
pub fn fixed_arg<const N: usize>(name: &str, value: &Bound<'_, PyAny>) -> PyResult<[u8; N]> {
    let raw = if let Ok(s) = value.cast::<PyString>() {
        hex_arg(name, s.to_str()?, N)?
    } else if value.is_instance_of::<PyBytes>() || value.is_instance_of::<PyByteArray>() {
        bytes_arg(name, value)?
    } else {
        return Err(bad(
            name,
            format!(
                "expected {N} bytes or a 0x-prefixed hex string, got {}",
                type_name(value)
            ),
        ));
    };
    raw.try_into()
        .map_err(|raw: Vec<u8>| bad(name, format!("expected {N} bytes, got {}", raw.len())))
}

pub fn address_arg(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Address> {
    Ok(Address::from(fixed_arg::<20>(name, value)?))
}

pub fn b256_arg(name: &str, value: &Bound<'_, PyAny>) -> PyResult<B256> {
    Ok(B256::from(fixed_arg::<32>(name, value)?))
}

fn int_arg<'py>(name: &str, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyInt>> {
    // `bool` is an `int` subclass; a flag where a number belongs is almost always a mistake.
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(bad(name, "expected an int, got bool"));
    }
    value
        .cast::<PyInt>()
        .cloned()
        .map_err(|_| bad(name, format!("expected an int, got {}", type_name(value))))
}

/// A non-negative int below 2**256.
pub fn u256_arg(name: &str, value: &Bound<'_, PyAny>) -> PyResult<U256> {
    let int = int_arg(name, value)?;
    if let Ok(small) = int.extract::<u128>() {
        return Ok(U256::from(small));
    }
    if int.lt(0)? {
        return Err(bad(name, "must be non-negative"));
    }
    match int.call_method1("to_bytes", (32, "big")) {
        Ok(raw) => Ok(U256::from_be_slice(raw.cast::<PyBytes>()?.as_bytes())),
        Err(err) if err.is_instance_of::<PyOverflowError>(value.py()) => {
            Err(bad(name, "must be below 2**256"))
        }
        Err(err) => Err(err),
    }
}

/// A non-negative int that fits in an unsigned integer of type `T`.
pub fn uint_arg<T>(name: &str, value: &Bound<'_, PyAny>) -> PyResult<T>
where
    T: TryFrom<u128> + num_bits::Bits,
{
    let int = int_arg(name, value)?;
    match int.extract::<u128>().ok().and_then(|v| T::try_from(v).ok()) {
        Some(v) => Ok(v),
        None if int.lt(0)? => Err(bad(name, "must be non-negative")),
        None => Err(bad(name, format!("must be below 2**{}", T::BITS))),
    }
}

pub mod num_bits {
    pub trait Bits {
        const BITS: u32;
    }
    impl Bits for u8 {
        const BITS: u32 = 8;
    }
    impl Bits for u32 {
        const BITS: u32 = 32;
    }
    impl Bits for u64 {
        const BITS: u32 = 64;
    }
    impl Bits for u128 {
        const BITS: u32 = 128;
    }
    impl Bits for usize {
        const BITS: u32 = usize::BITS;
    }
}

pub fn u256_to_py<'py>(py: Python<'py>, value: &U256) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(small) = u128::try_from(*value) {
        return Ok(small.into_pyobject(py)?.into_any());
    }
    let raw = PyBytes::new(py, &value.to_be_bytes::<32>());
    py.get_type::<PyInt>()
        .call_method1("from_bytes", (raw, "big"))
}

pub fn bytes_to_py<'py>(py: Python<'py>, raw: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, raw)
}

/// A list of `bytes`, one per item (addresses, hashes).
pub fn bytes_list<'py, T: AsRef<[u8]>>(
    py: Python<'py>,
    items: impl IntoIterator<Item = T>,
) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        items.into_iter().map(|item| bytes_to_py(py, item.as_ref())),
    )
}

/// A list of raw transactions, copied out of Python.
pub fn transactions_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<Bytes>> {
    if value.is_instance_of::<PyBytes>() || value.is_instance_of::<PyString>() {
        return Err(bad(
            "transactions",
            "expected a list of bytes, got a single bytes/str",
        ));
    }
    let iter = value.try_iter().map_err(|_| {
        bad(
            "transactions",
            format!("expected a list of bytes, got {}", type_name(value)),
        )
    })?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        out.push(Bytes::from(bytes_arg(
            &format!("transactions[{i}]"),
            &item,
        )?));
    }
    Ok(out)
}
