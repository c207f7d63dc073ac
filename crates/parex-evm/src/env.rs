//! Block-level revm configuration: fork to spec, block environment, chain config, blob limits.

use parex_primitives::{BlockEnv, Fork};
use revm::context::{BlockEnv as RevmBlockEnv, CfgEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::primitives::eip4844::{
    BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN, BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE, GAS_PER_BLOB,
};
use revm::primitives::hardfork::SpecId;
use revm::primitives::U256;

/// The revm spec for a fork.
///
/// revm 43 has no separate Constantinople spec (EIP-1283 was withdrawn by Petersburg), so
/// Constantinople runs as Petersburg; the glacier forks only moved the difficulty bomb.
pub fn spec_id(fork: Fork) -> SpecId {
    match fork {
        Fork::Frontier => SpecId::FRONTIER,
        Fork::Homestead => SpecId::HOMESTEAD,
        Fork::TangerineWhistle => SpecId::TANGERINE,
        Fork::SpuriousDragon => SpecId::SPURIOUS_DRAGON,
        Fork::Byzantium => SpecId::BYZANTIUM,
        Fork::Constantinople | Fork::Petersburg => SpecId::PETERSBURG,
        Fork::Istanbul | Fork::MuirGlacier => SpecId::ISTANBUL,
        Fork::Berlin => SpecId::BERLIN,
        Fork::London | Fork::ArrowGlacier | Fork::GrayGlacier => SpecId::LONDON,
        Fork::Paris => SpecId::MERGE,
        Fork::Shanghai => SpecId::SHANGHAI,
        Fork::Cancun => SpecId::CANCUN,
        Fork::Prague => SpecId::PRAGUE,
        Fork::Osaka => SpecId::OSAKA,
    }
}

/// Most blob gas one block may use (EIP-4844, raised by EIP-7691 in Prague).
pub fn max_blob_gas_per_block(fork: Fork) -> u64 {
    if fork >= Fork::Prague {
        9 * GAS_PER_BLOB
    } else if fork >= Fork::Cancun {
        6 * GAS_PER_BLOB
    } else {
        0
    }
}

/// Most blobs one transaction may carry: the block limit until Osaka's EIP-7594 cap of 6.
fn max_blobs_per_tx(fork: Fork) -> Option<u64> {
    if fork >= Fork::Osaka {
        Some(6)
    } else if fork >= Fork::Cancun {
        Some(max_blob_gas_per_block(fork) / GAS_PER_BLOB)
    } else {
        None
    }
}

/// The revm block environment for `env`.
///
/// Before London the base fee is zero whatever the header says; from Cancun the blob base fee
/// follows the fork's update fraction (Cancun and Prague differ). A missing excess blob gas
/// after Cancun is read as zero.
pub fn revm_block_env(env: &BlockEnv) -> RevmBlockEnv {
    let fork = env.fork;
    let blob_excess_gas_and_price = (fork >= Fork::Cancun).then(|| {
        let fraction = if fork >= Fork::Prague {
            BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE
        } else {
            BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN
        };
        BlobExcessGasAndPrice::new(env.excess_blob_gas.unwrap_or(0), fraction)
    });
    RevmBlockEnv {
        number: U256::from(env.number),
        beneficiary: env.beneficiary,
        timestamp: U256::from(env.timestamp),
        gas_limit: env.gas_limit,
        basefee: if fork >= Fork::London {
            env.base_fee
        } else {
            0
        },
        difficulty: env.difficulty,
        prevrandao: Some(env.prevrandao),
        blob_excess_gas_and_price,
        slot_num: 0,
    }
}

/// The revm chain configuration for `env`: spec, mainnet gas parameters, chain id, blob cap.
pub fn revm_cfg_env(env: &BlockEnv) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(spec_id(env.fork)).with_chain_id(env.chain_id);
    cfg.max_blobs_per_tx = max_blobs_per_tx(env.fork);
    cfg
}
