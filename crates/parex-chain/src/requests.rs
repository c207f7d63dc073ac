//! EIP-7685 requests: deposits (EIP-6110, from the deposit contract's logs), withdrawal
//! requests (EIP-7002) and consolidation requests (EIP-7251, both from system calls).

use crate::error::{block, ChainError};
use alloy_primitives::b256;
use parex_primitives::{Address, Bytes, Receipt, B256, U256};

/// `keccak256("DepositEvent(bytes,bytes,bytes,bytes,bytes)")`.
pub const DEPOSIT_EVENT_TOPIC: B256 =
    b256!("649bbc62d0e31342afea4e5cd82d4049e7e1ee912fc0889aa790803be39038c5");

/// The ABI layout of a `DepositEvent`'s data: five dynamic `bytes` (pubkey, withdrawal
/// credentials, amount, signature, index) at fixed offsets with fixed sizes.
const DEPOSIT_DATA_LEN: usize = 576;
const DEPOSIT_FIELDS: [(usize, usize); 5] = [(160, 48), (256, 32), (320, 8), (384, 96), (512, 8)];

fn word(data: &[u8], at: usize) -> U256 {
    U256::from_be_slice(&data[at..at + 32])
}

/// The deposit request (192 bytes: pubkey, credentials, amount, signature, index) of one
/// `DepositEvent` log's data; a log that does not follow the layout makes the block invalid.
pub fn parse_deposit(data: &[u8]) -> Result<[u8; 192], ChainError> {
    let bad = |why: String| ChainError::invalid(block::INVALID_DEPOSIT_EVENT_LAYOUT, why);
    if data.len() != DEPOSIT_DATA_LEN {
        return Err(bad(format!(
            "deposit event data is {} bytes, expected {DEPOSIT_DATA_LEN}",
            data.len()
        )));
    }
    let mut out = [0u8; 192];
    let mut written = 0;
    for (i, (offset, size)) in DEPOSIT_FIELDS.into_iter().enumerate() {
        if word(data, i * 32) != U256::from(offset) {
            return Err(bad(format!(
                "deposit event field {i}: offset is not {offset}"
            )));
        }
        if word(data, offset) != U256::from(size) {
            return Err(bad(format!("deposit event field {i}: size is not {size}")));
        }
        out[written..written + size].copy_from_slice(&data[offset + 32..offset + 32 + size]);
        written += size;
    }
    Ok(out)
}

/// Every deposit request of a block, in log order, concatenated.
pub fn deposit_requests(
    receipts: &[Receipt],
    deposit_contract: Address,
) -> Result<Vec<u8>, ChainError> {
    let mut out = Vec::new();
    for log in receipts.iter().flat_map(|r| r.logs.iter()) {
        if log.address == deposit_contract && log.topics().first() == Some(&DEPOSIT_EVENT_TOPIC) {
            out.extend_from_slice(&parse_deposit(&log.data.data)?);
        }
    }
    Ok(out)
}

/// `request_type ++ data`, the form EIP-7685 hashes; `None` for no data (not committed to).
pub fn typed_request(request_type: u8, data: &[u8]) -> Option<Bytes> {
    (!data.is_empty()).then(|| {
        let mut out = Vec::with_capacity(data.len() + 1);
        out.push(request_type);
        out.extend_from_slice(data);
        Bytes::from(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Vec<u8> {
        let mut data = vec![0u8; DEPOSIT_DATA_LEN];
        for (i, (offset, size)) in DEPOSIT_FIELDS.into_iter().enumerate() {
            data[i * 32..i * 32 + 32].copy_from_slice(&U256::from(offset).to_be_bytes::<32>());
            data[offset..offset + 32].copy_from_slice(&U256::from(size).to_be_bytes::<32>());
            for b in &mut data[offset + 32..offset + 32 + size] {
                *b = i as u8 + 1;
            }
        }
        data
    }

    #[test]
    fn a_well_formed_event_gives_its_fields_in_order() {
        let request = parse_deposit(&layout()).unwrap();
        assert!(request[..48].iter().all(|b| *b == 1));
        assert!(request[48..80].iter().all(|b| *b == 2));
        assert!(request[80..88].iter().all(|b| *b == 3));
        assert!(request[88..184].iter().all(|b| *b == 4));
        assert!(request[184..].iter().all(|b| *b == 5));
    }

    #[test]
    fn a_wrong_offset_size_or_length_is_invalid_layout() {
        let mut data = layout();
        data[31] = 161;
        let e = parse_deposit(&data).unwrap_err();
        assert_eq!(e.exception(), Some(block::INVALID_DEPOSIT_EVENT_LAYOUT));
        let mut data = layout();
        data[160 + 31] = 47;
        assert!(parse_deposit(&data).is_err());
        assert!(parse_deposit(&layout()[..575]).is_err());
    }
}
