//! Plain data shared by every parex crate.
//!
//! Nothing here executes anything: these are the nouns that the state, the engine, the VM
//! adapters and the Python bindings agree on. Keeping them in a leaf crate lets a persistent
//! store or a second VM depend on them without pulling in revm.

mod block;
mod changes;
mod receipt;
mod schedule;
mod sorted_map;
mod stats;
#[cfg(feature = "proptest")]
pub mod strategies;

pub use alloy_primitives::{keccak256, Address, Bytes, Log, LogData, B256, U256};
pub use block::{BlockEnv, Fork, UnknownFork};
pub use changes::{AccountChange, AccountInfo, StateChanges, KECCAK_EMPTY};
pub use receipt::Receipt;
pub use schedule::{Activation, ForkSchedule};
pub use sorted_map::SortedMap;
pub use stats::ExecStats;

/// Position of a transaction inside its block.
pub type TxIndex = u32;
