//! Block processing: header validation, pre- and post-block system operations, rewards,
//! withdrawals, requests and the block's commitments, around the parallel engine.
//!
//! `parex-evm` executes a block's transactions (Block-STM or sequentially); this crate makes a
//! block of them: it checks the header against its parent ([`validate_header`]), runs the
//! system calls before the transactions (EIP-4788 beacon root, EIP-2935 history), the
//! transactions on the engine, then withdrawals (EIP-4895), proof-of-work rewards with
//! ommers, and the EIP-7685 requests (deposits from logs, EIP-7002 and EIP-7251 system calls),
//! and checks every commitment the header makes ([`execute_block`]). The steps around the
//! transactions are few and run sequentially; they are the same for a node that builds a
//! block (compute the header) and one that imports it (compare with the header).
//!
//! A rejected block comes back as [`ChainError::Invalid`] with an [`Exception`] named as the
//! execution-spec tests name it.

mod block;
mod error;
mod execute;
mod overlay;
mod requests;
mod spec;
mod system;
mod tracked;
mod validate;

pub use block::Block;
pub use error::{
    block as block_exception, transaction_exception, tx as tx_exception, ChainError, Exception,
};
pub use execute::{
    block_env, block_reward, build_block, execute_block, genesis_header, ExecutedBlock,
    StateCommitment,
};
pub use overlay::{credit, merge_changes, Overlay};
pub use requests::{deposit_requests, parse_deposit, DEPOSIT_EVENT_TOPIC};
pub use spec::ChainSpec;
pub use system::{
    system_call, SystemCallOutcome, PRAGUE_SYSTEM_CONTRACTS, SYSTEM_ADDRESS, SYSTEM_CALL_GAS,
};
pub use tracked::TrackedState;
pub use validate::{ethash_difficulty, validate_header};
