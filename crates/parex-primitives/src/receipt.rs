use alloy_primitives::{Address, Log};

/// The outcome of one transaction, in the order the block executed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// EIP-2718 type: 0 legacy, 1 EIP-2930, 2 EIP-1559, 3 EIP-4844, 4 EIP-7702.
    pub tx_type: u8,
    pub success: bool,
    pub gas_used: u64,
    pub cumulative_gas_used: u64,
    pub logs: Vec<Log>,
    /// The address of the contract a creation transaction deployed.
    pub contract_address: Option<Address>,
}
