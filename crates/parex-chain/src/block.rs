//! A block as it travels: header, raw transactions, ommers, withdrawals; and its RLP.

use crate::error::{block, ChainError};
use alloy_consensus::Header;
use alloy_eips::eip4895::Withdrawal;
use alloy_rlp::{Decodable, Encodable};
use parex_primitives::{Bytes, B256};

/// A block: its header and body. Transactions stay raw EIP-2718 envelopes (the engine decodes
/// and recovers them in parallel, and their hashes are the keccak of these bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub header: Header,
    pub transactions: Vec<Bytes>,
    pub ommers: Vec<Header>,
    /// From Shanghai on (EIP-4895); `None` before.
    pub withdrawals: Option<Vec<Withdrawal>>,
}

fn rlp_error(what: &str, e: impl std::fmt::Display) -> ChainError {
    ChainError::invalid(block::RLP_STRUCTURES_ENCODING, format!("{what}: {e}"))
}

/// Splits one RLP item off the front of `buf`: (its header, payload, rest).
fn split_item<'a>(
    what: &str,
    buf: &'a [u8],
) -> Result<(alloy_rlp::Header, &'a [u8], &'a [u8]), ChainError> {
    let mut rest = buf;
    let header = alloy_rlp::Header::decode(&mut rest).map_err(|e| rlp_error(what, e))?;
    if rest.len() < header.payload_length {
        return Err(rlp_error(what, "item longer than its input"));
    }
    let (payload, rest) = rest.split_at(header.payload_length);
    Ok((header, payload, rest))
}

impl Block {
    /// Decodes `rlp([header, transactions, ommers(, withdrawals)])`. A typed transaction is an
    /// RLP string holding its envelope, a legacy one an RLP list: both come out as envelopes.
    pub fn decode(rlp: &[u8]) -> Result<Block, ChainError> {
        let (outer, mut body, rest) = split_item("block", rlp)?;
        if !outer.list {
            return Err(rlp_error("block", "expected a list"));
        }
        if !rest.is_empty() {
            return Err(rlp_error(
                "block",
                format!("{} bytes after the block", rest.len()),
            ));
        }
        let header = Header::decode(&mut body).map_err(|e| rlp_error("header", e))?;
        let (list, mut txs, after) = split_item("transactions", body)?;
        if !list.list {
            return Err(rlp_error("transactions", "expected a list"));
        }
        body = after;
        let mut transactions = Vec::new();
        while !txs.is_empty() {
            let (item, payload, next) = split_item("transaction", txs)?;
            let raw = if item.list {
                &txs[..txs.len() - next.len()]
            } else {
                payload
            };
            transactions.push(Bytes::copy_from_slice(raw));
            txs = next;
        }
        let ommers = Vec::<Header>::decode(&mut body).map_err(|e| rlp_error("ommers", e))?;
        let withdrawals = if body.is_empty() {
            None
        } else {
            Some(Vec::<Withdrawal>::decode(&mut body).map_err(|e| rlp_error("withdrawals", e))?)
        };
        if !body.is_empty() {
            return Err(rlp_error(
                "block",
                "unexpected fields after the withdrawals",
            ));
        }
        Ok(Block {
            header,
            transactions,
            ommers,
            withdrawals,
        })
    }

    /// The RLP of the block (the inverse of [`Block::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        self.header.encode(&mut payload);
        let tx_payload_len: usize = self
            .transactions
            .iter()
            .map(|raw| {
                if raw.first().is_some_and(|b| *b >= 0xc0) {
                    raw.len()
                } else {
                    raw.as_ref().length()
                }
            })
            .sum();
        alloy_rlp::Header {
            list: true,
            payload_length: tx_payload_len,
        }
        .encode(&mut payload);
        for raw in &self.transactions {
            if raw.first().is_some_and(|b| *b >= 0xc0) {
                payload.extend_from_slice(raw);
            } else {
                raw.as_ref().encode(&mut payload);
            }
        }
        self.ommers.encode(&mut payload);
        if let Some(withdrawals) = &self.withdrawals {
            withdrawals.encode(&mut payload);
        }
        let mut out = Vec::with_capacity(payload.len() + 9);
        alloy_rlp::Header {
            list: true,
            payload_length: payload.len(),
        }
        .encode(&mut out);
        out.extend_from_slice(&payload);
        out
    }

    /// keccak256 of the header's RLP.
    pub fn hash(&self) -> B256 {
        self.header.hash_slow()
    }
}
