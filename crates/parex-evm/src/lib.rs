//! The EVM behind parex.
//!
//! revm runs each transaction; this crate adapts it to the VM-agnostic Block-STM task of
//! `parex-blockstm` and drives both executors over one adapter:
//!
//! ```text
//!  raw envelopes ──decode──► TxEnvelope ──recover (parallel)──► senders
//!        │                                                        │
//!        └────────────► EvmTask { env, txs, senders, state } ◄────┘
//!                               │
//!            ┌──────────────────┴───────────────────┐
//!   blockstm::execute_sequential         blockstm::execute_parallel
//!            └──────────────────┬───────────────────┘
//!                 receipts + StateChanges + stats
//! ```

mod block;
mod error;
pub mod sign;

pub use block::{execute_block, BlockResult, BlockTrace, ExecConfig, ExecutorKind};
pub use error::BlockError;
