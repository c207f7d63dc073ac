use alloy_primitives::{Address, B256};
use std::fmt;
use std::str::FromStr;

/// Ethereum hard forks, in activation order. `Ord` follows activation, so `fork >= Fork::London`
/// reads as "London rules apply".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fork {
    Frontier,
    Homestead,
    TangerineWhistle,
    SpuriousDragon,
    Byzantium,
    Constantinople,
    Petersburg,
    Istanbul,
    MuirGlacier,
    Berlin,
    London,
    ArrowGlacier,
    GrayGlacier,
    Paris,
    Shanghai,
    Cancun,
    Prague,
    Osaka,
}

impl Fork {
    pub const ALL: [Fork; 18] = [
        Fork::Frontier,
        Fork::Homestead,
        Fork::TangerineWhistle,
        Fork::SpuriousDragon,
        Fork::Byzantium,
        Fork::Constantinople,
        Fork::Petersburg,
        Fork::Istanbul,
        Fork::MuirGlacier,
        Fork::Berlin,
        Fork::London,
        Fork::ArrowGlacier,
        Fork::GrayGlacier,
        Fork::Paris,
        Fork::Shanghai,
        Fork::Cancun,
        Fork::Prague,
        Fork::Osaka,
    ];

    /// The name used by the execution-spec tests (`"Cancun"`, `"EIP158"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Fork::Frontier => "Frontier",
            Fork::Homestead => "Homestead",
            Fork::TangerineWhistle => "TangerineWhistle",
            Fork::SpuriousDragon => "SpuriousDragon",
            Fork::Byzantium => "Byzantium",
            Fork::Constantinople => "Constantinople",
            Fork::Petersburg => "Petersburg",
            Fork::Istanbul => "Istanbul",
            Fork::MuirGlacier => "MuirGlacier",
            Fork::Berlin => "Berlin",
            Fork::London => "London",
            Fork::ArrowGlacier => "ArrowGlacier",
            Fork::GrayGlacier => "GrayGlacier",
            Fork::Paris => "Paris",
            Fork::Shanghai => "Shanghai",
            Fork::Cancun => "Cancun",
            Fork::Prague => "Prague",
            Fork::Osaka => "Osaka",
        }
    }
}

impl fmt::Display for Fork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fork {0:?}; expected one of Frontier .. Osaka")]
pub struct UnknownFork(pub String);

impl FromStr for Fork {
    type Err = UnknownFork;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The execution-spec tests' aliases, any case, like the names themselves.
        let alias = match s.to_ascii_lowercase().as_str() {
            "eip150" => "TangerineWhistle",
            "eip158" => "SpuriousDragon",
            "constantinoplefix" => "Petersburg",
            "merge" => "Paris",
            _ => s,
        };
        Fork::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(alias))
            .ok_or_else(|| UnknownFork(s.to_string()))
    }
}

/// Everything a block's transactions can observe about the block itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEnv {
    pub number: u64,
    pub timestamp: u64,
    pub beneficiary: Address,
    /// EIP-1559 base fee in wei; ignored before London.
    pub base_fee: u64,
    pub gas_limit: u64,
    /// `PREVRANDAO` after the Merge; the header's mix hash before it.
    pub prevrandao: B256,
    /// Pre-Merge `DIFFICULTY`.
    pub difficulty: alloy_primitives::U256,
    /// EIP-4844 excess blob gas; `None` before Cancun.
    pub excess_blob_gas: Option<u64>,
    pub chain_id: u64,
    pub fork: Fork,
}

impl Default for BlockEnv {
    fn default() -> Self {
        BlockEnv {
            number: 1,
            timestamp: 1,
            beneficiary: Address::ZERO,
            base_fee: 0,
            gas_limit: 30_000_000,
            prevrandao: B256::ZERO,
            difficulty: alloy_primitives::U256::ZERO,
            excess_blob_gas: Some(0),
            chain_id: 1,
            fork: Fork::Prague,
        }
    }
}
