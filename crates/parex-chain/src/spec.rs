//! What a chain fixes once: its id, fork schedule and system contract addresses.

use alloy_eips::eip7840::BlobParams;
use parex_primitives::{Address, Fork, ForkSchedule};

/// A chain's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    pub chain_id: u64,
    pub schedule: ForkSchedule,
    /// The EIP-6110 deposit contract whose `DepositEvent` logs become deposit requests.
    pub deposit_contract: Address,
}

impl ChainSpec {
    /// A chain with `schedule`, mainnet's deposit contract and the forks' blob parameters.
    pub fn new(chain_id: u64, schedule: ForkSchedule) -> Self {
        ChainSpec {
            chain_id,
            schedule,
            deposit_contract: alloy_eips::eip6110::MAINNET_DEPOSIT_CONTRACT_ADDRESS,
        }
    }

    /// Ethereum mainnet.
    pub fn mainnet() -> Self {
        ChainSpec::new(1, ForkSchedule::mainnet())
    }

    /// The fork whose rules apply to block `number` at `timestamp`.
    pub fn fork_at(&self, number: u64, timestamp: u64) -> Fork {
        self.schedule.fork_at(number, timestamp)
    }

    /// The blob parameters of `fork` (EIP-7840); `None` before Cancun.
    pub fn blob_params(&self, fork: Fork) -> Option<BlobParams> {
        match fork {
            f if f < Fork::Cancun => None,
            Fork::Cancun => Some(BlobParams::cancun()),
            Fork::Prague => Some(BlobParams::prague()),
            _ => Some(BlobParams::osaka()),
        }
    }
}
