//! Ethereum JSON-RPC transaction objects → raw EIP-2718 envelopes.
//!
//! `eth_getBlockByNumber(n, true)` returns each transaction as a JSON object (`type`, `nonce`,
//! `gas`, `gasPrice` or `maxFeePerGas`/`maxPriorityFeePerGas`, `to`, `value`, `input`,
//! `accessList`, `chainId`, `v`/`r`/`s`/`yParity`, `blobVersionedHashes`, ...). The engine takes
//! the signed envelopes a block carries, so replaying a block fetched over RPC needs them back:
//! alloy's `TxEnvelope` deserialises the RPC shape (legacy objects with or without `type`,
//! pre-EIP-155 `v` = 27/28), and its EIP-2718 encoding is the envelope.
//!
//! The conversion is checked: keccak256 of every envelope must equal the object's `hash`.
//! alloy trusts the `hash` field when deserialising, so a lossy conversion (a dropped field, a
//! wrong chain id, a misread parity) would otherwise go unnoticed until a receipt differed.

use alloy_consensus::TxEnvelope;
use alloy_eips::eip2718::Encodable2718;
use parex_primitives::{keccak256, Bytes, B256};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value;

/// Why an RPC transaction could not be turned into its envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcTxError {
    /// The text is not JSON, or not a block object / array of transaction objects.
    #[error("not a block or a list of transactions: {0}")]
    Shape(String),
    /// Transaction `index` is not a transaction object alloy understands.
    #[error("transaction {index}: cannot convert: {reason}")]
    Convert { index: u32, reason: String },
    /// The envelope does not hash to the object's `hash`: the conversion lost something.
    #[error("transaction {index}: envelope hashes to {computed}, the object says {expected}")]
    HashMismatch {
        index: u32,
        expected: B256,
        computed: B256,
    },
}

impl RpcTxError {
    /// The transaction the error concerns, if any.
    pub fn index(&self) -> Option<u32> {
        match self {
            RpcTxError::Shape(_) => None,
            RpcTxError::Convert { index, .. } | RpcTxError::HashMismatch { index, .. } => {
                Some(*index)
            }
        }
    }
}

/// The envelope of one RPC transaction object, checked against its `hash`.
pub fn envelope_from_rpc(index: u32, tx: &Value) -> Result<Bytes, RpcTxError> {
    let convert = |reason: String| RpcTxError::Convert { index, reason };
    let expected: B256 = match tx.get("hash") {
        Some(hash) => serde_json::from_value(hash.clone())
            .map_err(|e| convert(format!("field \"hash\": {e}")))?,
        None => {
            return Err(convert(
                "no \"hash\" field to check the envelope against".into(),
            ))
        }
    };
    let envelope: TxEnvelope =
        TxEnvelope::deserialize_rpc(tx).map_err(|e| convert(e.to_string()))?;
    let raw = envelope.encoded_2718();
    let computed = keccak256(&raw);
    if computed != expected {
        return Err(RpcTxError::HashMismatch {
            index,
            expected,
            computed,
        });
    }
    Ok(Bytes::from(raw))
}

/// Deserialisation of one transaction object, with the legacy `type` made optional.
trait DeserializeRpc: Sized {
    fn deserialize_rpc(tx: &Value) -> Result<Self, serde_json::Error>;
}

impl DeserializeRpc for TxEnvelope {
    fn deserialize_rpc(tx: &Value) -> Result<Self, serde_json::Error> {
        // alloy reads a missing `type` as legacy itself; accept "0x00" and a bare 0 as well.
        match tx.get("type") {
            Some(Value::String(t)) if t != "0x0" && is_zero_quantity(t) => {
                let mut tx = tx.clone();
                tx["type"] = Value::String("0x0".into());
                serde_json::from_value(tx)
            }
            Some(Value::Number(n)) => {
                let mut tx = tx.clone();
                tx["type"] = Value::String(format!("{:#x}", n.as_u64().unwrap_or(u64::MAX)));
                serde_json::from_value(tx)
            }
            _ => TxEnvelope::deserialize(tx),
        }
    }
}

fn is_zero_quantity(text: &str) -> bool {
    text.strip_prefix("0x")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|c| c == b'0'))
}

/// The transaction objects of `json`: a block object (its `transactions`, which must be full
/// objects, not hashes) or an array of transaction objects.
fn transaction_objects(json: &Value) -> Result<&[Value], RpcTxError> {
    let list = match json {
        Value::Array(list) => list,
        Value::Object(block) => match block.get("transactions") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(RpcTxError::Shape("\"transactions\" is not an array".into())),
            None => {
                return Err(RpcTxError::Shape(
                    "an object without \"transactions\"".into(),
                ))
            }
        },
        _ => return Err(RpcTxError::Shape("expected an object or an array".into())),
    };
    if let Some(index) = list.iter().position(|tx| !tx.is_object()) {
        return Err(RpcTxError::Convert {
            index: index as u32,
            reason: "not a transaction object (a block fetched without full transactions?)".into(),
        });
    }
    Ok(list)
}

/// The raw envelopes of the transactions in `json` (see [`transaction_objects`]), in order,
/// each checked against its `hash`. Converts in parallel; the first failing index is reported.
pub fn envelopes_from_rpc_value(json: &Value) -> Result<Vec<Bytes>, RpcTxError> {
    let list = transaction_objects(json)?;
    list.par_iter()
        .enumerate()
        .map(|(i, tx)| envelope_from_rpc(i as u32, tx))
        .collect()
}

/// [`envelopes_from_rpc_value`] on JSON text.
pub fn envelopes_from_rpc_json(json: &[u8]) -> Result<Vec<Bytes>, RpcTxError> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| RpcTxError::Shape(e.to_string()))?;
    envelopes_from_rpc_value(&value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_eips::eip2718::Decodable2718;

    // Mainnet block 46147: the first transaction on Ethereum, pre-EIP-155 (v = 28), with no
    // `type` field as early clients served it.
    const FRONTIER: &str = r#"{
        "hash": "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060",
        "nonce": "0x0",
        "blockNumber": "0xb443",
        "transactionIndex": "0x0",
        "from": "0xa1e4380a3b1f749673e270229993ee55f35663b4",
        "to": "0x5df9b87991262f6ba471f09758cde1c0fc1de734",
        "value": "0x7a69",
        "gas": "0x5208",
        "gasPrice": "0x2d79883d2000",
        "input": "0x",
        "v": "0x1c",
        "r": "0x88ff6cf0fefd94db46111149ae4bfc179e9b94721fffd821d38d16464b3f71d0",
        "s": "0x45e0aff800961cfce805daef7016b9b675c137a6a41a548f7b60a3484c06a33a"
    }"#;

    // Mainnet block 19934116, transaction 0: EIP-1559.
    const LONDON: &str = r#"{
        "hash": "0x048eab29a179f54069746411c6c1b71b6883015fd80c60a1801c8ed29581c14e",
        "nonce": "0x36",
        "from": "0x6c432c6c0b410e89d7c60cb4f5aea95a2a3d9eec",
        "to": "0xc0947d68d8097f0b9e3613863250f86f367920f5",
        "value": "0x17dc6d6f18fcaa",
        "gasPrice": "0x62acfb8a1",
        "gas": "0x5208",
        "maxFeePerGas": "0x62acfb8a1",
        "maxPriorityFeePerGas": "0x62acfb8a1",
        "input": "0x",
        "r": "0xdc031141fb95499307be14fed475286ff2641c4eb9d7b27f6e1ae7253367b86b",
        "s": "0x24e6be317ecff3a3826bfd1d71439f6592a16efc5f9d1e993edc68f326e7d289",
        "v": "0x1",
        "yParity": "0x1",
        "chainId": "0x1",
        "accessList": [],
        "type": "0x2"
    }"#;

    fn value(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn pre_eip155_legacy_without_type() {
        let raw = envelope_from_rpc(0, &value(FRONTIER)).unwrap();
        let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).unwrap();
        assert!(tx.is_legacy());
        assert_eq!(tx.as_legacy().unwrap().tx().chain_id, None);
    }

    #[test]
    fn legacy_with_explicit_type_zero() {
        for ty in ["\"0x0\"", "\"0x00\"", "0"] {
            let mut tx = value(FRONTIER);
            tx["type"] = serde_json::from_str(ty).unwrap();
            envelope_from_rpc(0, &tx).unwrap();
        }
    }

    #[test]
    fn eip1559() {
        let raw = envelope_from_rpc(0, &value(LONDON)).unwrap();
        assert_eq!(raw[0], 2);
    }

    #[test]
    fn a_lossy_conversion_is_caught_by_the_hash() {
        let mut tx = value(LONDON);
        tx["value"] = Value::String("0x17dc6d6f18fcab".into());
        assert!(matches!(
            envelope_from_rpc(3, &tx),
            Err(RpcTxError::HashMismatch { index: 3, .. })
        ));
    }

    #[test]
    fn block_objects_and_arrays() {
        let block = format!(r#"{{"number": "0x1", "transactions": [{FRONTIER}, {LONDON}]}}"#);
        let array = format!("[{FRONTIER}, {LONDON}]");
        let a = envelopes_from_rpc_json(block.as_bytes()).unwrap();
        let b = envelopes_from_rpc_json(array.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        let hashes = r#"{"transactions": ["0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"]}"#;
        assert!(matches!(
            envelopes_from_rpc_json(hashes.as_bytes()),
            Err(RpcTxError::Convert { index: 0, .. })
        ));
        let mut missing = value(LONDON);
        missing.as_object_mut().unwrap().remove("hash");
        assert!(envelope_from_rpc(0, &missing).is_err());
    }
}
