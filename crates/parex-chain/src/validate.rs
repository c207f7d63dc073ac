//! Header validation against the parent header: the checks that need no execution.

use crate::error::{block, ChainError};
use crate::spec::ChainSpec;
use alloy_consensus::constants::EMPTY_OMMER_ROOT_HASH;
use alloy_consensus::Header;
use alloy_eips::eip1559::{calc_next_block_base_fee, BaseFeeParams, INITIAL_BASE_FEE};
use parex_primitives::{Fork, U256};

/// Most bytes of `extra_data`.
pub const MAX_EXTRA_DATA: usize = 32;
/// Least gas limit a block may have.
pub const MIN_GAS_LIMIT: u64 = 5000;
/// A block's gas limit moves by less than parent / 1024.
pub const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;
/// Least Ethash difficulty.
pub const MIN_DIFFICULTY: u64 = 131_072;

fn invalid(exception: crate::Exception, reason: String) -> ChainError {
    ChainError::invalid(exception, reason)
}

/// Checks `header` against `parent` under `spec`; returns the fork of `header`.
///
/// Covers: parent hash, number, timestamp, gas limit bounds, gas used within the limit, extra
/// data size, the fields each fork adds (base fee, withdrawals root, blob fields, parent
/// beacon root, requests hash), the base fee (EIP-1559), the excess blob gas (EIP-4844 with
/// the fork's blob parameters, EIP-7918 from Osaka), the Ethash difficulty
/// before the Merge and the post-Merge constants (difficulty, nonce, ommers hash). The
/// proof-of-work seal is not verified.
pub fn validate_header(
    spec: &ChainSpec,
    parent: &Header,
    header: &Header,
) -> Result<Fork, ChainError> {
    let fork = spec.fork_at(header.number, header.timestamp);
    let parent_fork = spec.fork_at(parent.number, parent.timestamp);
    let parent_hash = parent.hash_slow();
    if header.parent_hash != parent_hash {
        return Err(invalid(
            block::UNKNOWN_PARENT,
            format!("parent hash {} is not {parent_hash}", header.parent_hash),
        ));
    }
    if Some(header.number) != parent.number.checked_add(1) {
        return Err(invalid(
            block::INVALID_BLOCK_NUMBER,
            format!("number {} after parent {}", header.number, parent.number),
        ));
    }
    if header.timestamp <= parent.timestamp {
        return Err(invalid(
            block::INVALID_BLOCK_TIMESTAMP_OLDER_THAN_PARENT,
            format!(
                "timestamp {} not after parent's {}",
                header.timestamp, parent.timestamp
            ),
        ));
    }
    if header.extra_data.len() > MAX_EXTRA_DATA {
        return Err(invalid(
            block::EXTRA_DATA_TOO_BIG,
            format!("extra data of {} bytes", header.extra_data.len()),
        ));
    }
    if header.gas_used > header.gas_limit {
        return Err(invalid(
            block::GAS_USED_OVERFLOW,
            format!(
                "gas used {} above the gas limit {}",
                header.gas_used, header.gas_limit
            ),
        ));
    }
    check_fields(fork, header)?;

    // EIP-1559 doubles the gas limit's meaning at the London block: the parent's limit is the
    // target there, so the bound is taken from twice the parent's limit.
    let london_block = fork >= Fork::London && parent_fork < Fork::London;
    let parent_limit = if london_block {
        parent.gas_limit.saturating_mul(2)
    } else {
        parent.gas_limit
    };
    let bound = parent_limit / GAS_LIMIT_BOUND_DIVISOR;
    if header.gas_limit >= parent_limit.saturating_add(bound)
        || header.gas_limit <= parent_limit.saturating_sub(bound)
        || header.gas_limit < MIN_GAS_LIMIT
    {
        return Err(invalid(
            block::INVALID_GASLIMIT,
            format!(
                "gas limit {} after parent's {}",
                header.gas_limit, parent.gas_limit
            ),
        ));
    }

    if fork >= Fork::London {
        let expected = if london_block {
            INITIAL_BASE_FEE
        } else {
            calc_next_block_base_fee(
                parent.gas_used,
                parent.gas_limit,
                parent.base_fee_per_gas.unwrap_or_default(),
                BaseFeeParams::ethereum(),
            )
        };
        if header.base_fee_per_gas != Some(expected) {
            return Err(invalid(
                block::INVALID_BASEFEE_PER_GAS,
                format!(
                    "base fee {:?}, expected {expected}",
                    header.base_fee_per_gas
                ),
            ));
        }
    }

    if fork >= Fork::Paris {
        if !header.difficulty.is_zero() {
            return Err(invalid(
                block::INVALID_DIFFICULTY,
                "difficulty after the Merge".into(),
            ));
        }
        if !header.nonce.is_zero() {
            return Err(invalid(
                block::INVALID_NONCE,
                "nonce after the Merge".into(),
            ));
        }
        if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
            return Err(invalid(
                block::IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS,
                "ommers after the Merge".into(),
            ));
        }
    } else {
        let expected = ethash_difficulty(fork, parent, header);
        if header.difficulty != expected {
            return Err(invalid(
                block::INVALID_DIFFICULTY,
                format!("difficulty {}, expected {expected}", header.difficulty),
            ));
        }
    }

    // The blob gas used is checked after execution, against the transactions' (EIP-4844
    // counts a block over the limit against the transaction that crosses it).
    if let Some(params) = spec.blob_params(fork) {
        // A parent before Cancun counts as zero excess and zero use.
        let parent_excess = parent.excess_blob_gas.unwrap_or_default();
        let parent_used = parent.blob_gas_used.unwrap_or_default();
        let expected = if fork >= Fork::Osaka {
            params.next_block_excess_blob_gas_osaka(
                parent_excess,
                parent_used,
                parent.base_fee_per_gas.unwrap_or_default(),
            )
        } else {
            (parent_excess.saturating_add(parent_used))
                .saturating_sub(params.target_blob_gas_per_block())
        };
        if header.excess_blob_gas != Some(expected) {
            return Err(invalid(
                block::INCORRECT_EXCESS_BLOB_GAS,
                format!(
                    "excess blob gas {:?}, expected {expected}",
                    header.excess_blob_gas
                ),
            ));
        }
    }
    Ok(fork)
}

/// The header carries exactly the fields of its fork.
fn check_fields(fork: Fork, header: &Header) -> Result<(), ChainError> {
    let fields = [
        ("base fee", header.base_fee_per_gas.is_some(), Fork::London),
        (
            "withdrawals root",
            header.withdrawals_root.is_some(),
            Fork::Shanghai,
        ),
        (
            "blob gas used",
            header.blob_gas_used.is_some(),
            Fork::Cancun,
        ),
        (
            "excess blob gas",
            header.excess_blob_gas.is_some(),
            Fork::Cancun,
        ),
        (
            "parent beacon block root",
            header.parent_beacon_block_root.is_some(),
            Fork::Cancun,
        ),
        (
            "requests hash",
            header.requests_hash.is_some(),
            Fork::Prague,
        ),
    ];
    for (name, present, since) in fields {
        if present != (fork >= since) {
            let why = if present {
                format!("{name} in a {fork} header (from {since} on)")
            } else {
                format!("{fork} header without {name}")
            };
            return Err(invalid(block::INCORRECT_BLOCK_FORMAT, why));
        }
    }
    Ok(())
}

/// The difficulty-bomb delay of a fork, in blocks.
fn bomb_delay(fork: Fork) -> u64 {
    match fork {
        f if f < Fork::Byzantium => 0,
        Fork::Byzantium => 3_000_000,
        Fork::Constantinople | Fork::Petersburg | Fork::Istanbul => 5_000_000,
        Fork::MuirGlacier | Fork::Berlin => 9_000_000,
        Fork::London => 9_700_000,
        Fork::ArrowGlacier => 10_700_000,
        _ => 11_400_000,
    }
}

/// The Ethash difficulty of `header` (Frontier, EIP-2 from Homestead, EIP-100 from Byzantium,
/// with the fork's bomb delay).
pub fn ethash_difficulty(fork: Fork, parent: &Header, header: &Header) -> U256 {
    let parent_difficulty = parent.difficulty;
    let step = parent_difficulty / U256::from(2048);
    let elapsed = header.timestamp.saturating_sub(parent.timestamp);
    // The adjustment factor, clamped at -99.
    let factor: i64 = if fork >= Fork::Byzantium {
        let uncles = if parent.ommers_hash != EMPTY_OMMER_ROOT_HASH {
            2
        } else {
            1
        };
        (uncles - (elapsed / 9).min(1_000) as i64).max(-99)
    } else if fork >= Fork::Homestead {
        (1 - (elapsed / 10).min(1_000) as i64).max(-99)
    } else if elapsed < 13 {
        1
    } else {
        -1
    };
    let delta = step * U256::from(factor.unsigned_abs());
    let mut difficulty = if factor >= 0 {
        parent_difficulty.saturating_add(delta)
    } else {
        parent_difficulty.saturating_sub(delta)
    };
    let fake_number = header.number.saturating_sub(bomb_delay(fork));
    if let Some(periods) = (fake_number / 100_000).checked_sub(2) {
        if periods < 256 {
            difficulty = difficulty.saturating_add(U256::from(1) << periods as usize);
        }
    }
    difficulty.max(U256::from(MIN_DIFFICULTY))
}
