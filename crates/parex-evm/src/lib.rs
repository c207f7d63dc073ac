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
//!
//! # Keys and values
//! - `Account(a)` → balance, nonce and a storage-reset marker; absent = no account.
//! - `Code(a)` → code hash and analysed bytecode; absent = no code. Kept apart from the
//!   balance so that a credit to a contract never conflicts with a call that reads its code.
//! - `Storage(a, slot)` → the value and the transaction that wrote it.
//! - `BlockHash(n)` → read-only, so that store errors take the engine's path.
//!
//! revm's `Database` for one incarnation is a thin wrapper over the engine's read view:
//! `basic` reads `Account` and (for existing accounts) `Code`, `storage` reads `Storage`.
//! The write set holds only what changed: untouched or merely loaded accounts, and touched
//! accounts whose balance, nonce and marker are unchanged, write nothing.
//!
//! # Lazy updates (never read what you only add to)
//! - **Beneficiary.** A handler that overrides only `reward_beneficiary` records the fee
//!   (`price × gas`, the priority part after London, as revm computes it) instead of crediting
//!   the beneficiary; the task emits it as a `Delta` on `Account(beneficiary)`. EIP-3651 warms
//!   the coinbase without a database read, so a transaction that does not itself look at the
//!   beneficiary never depends on the fees before it. One that does (sends from it, sends to
//!   it, `BALANCE(COINBASE)`) reads `Account(beneficiary)` through the view, the engine folds
//!   the earlier deltas in, and the fee is added to its full write.
//! - **Plain transfers.** A top-level call with value, empty input, `to` ≠ sender, `to` outside
//!   the precompile range, in a non-7702 transaction, whose `to` has no code now (read of
//!   `Code(to)`; a delegation is code): revm sees `to` as an empty account and the task emits
//!   the credit as a `Delta` on `Account(to)`. Nothing else in the transaction can observe
//!   `to` (no code runs there), the credit is non-zero so EIP-161 cannot delete it, and the
//!   outcome does not depend on `to`'s balance. Safe because deltas commute and every read of
//!   the account resolves them in block order.
//!
//! # Storage resets
//! A self-destruct (before Cancun, or of a contract created in the same transaction) or an
//! EIP-161 deletion writes `Account(a) = None` and drops the code; a later creation writes the
//! account with `storage_reset = Some(creator)`. A storage read returns a slot's value only if
//! it was written at or after the last reset: an absent account written earlier in the block,
//! or one brought back by a lazy credit (`STORAGE_STALE`), reads all zeros without touching
//! the slot. The final `StateChanges` carry `storage_cleared` and only the slots written since.
//!
//! # Beneficiary and EIP-161
//! The specification touches the beneficiary with every fee, so a zero fee deletes an existing
//! empty beneficiary. Lazy fees never touch it; `execute_block` applies the rule once after the
//! block when some transaction paid no fee (only blocks with zero fees can hit it).
//!
//! # Creation collisions (EIP-7610)
//! A creation at an address with storage (but nonce 0 and no code) collides, like one at an
//! address with a nonce or code; revm checks only the latter. The handler creates every frame
//! through `init_frame`, which asks the store (`StateViewRef::has_storage`) whether the target
//! holds pre-block storage, unless the account read shows a storage reset in this block, and
//! then lets revm fail the creation as a nonce collision. Only pre-block storage can matter:
//! in a block an account gains storage only by running code, which gives it a nonce (from
//! Spurious Dragon; before it, only a CREATE can give it storage without code, at an address no
//! later CREATE derives again, CREATE2 coming with Constantinople).
//!
//! # Per-thread EVM
//! Each worker keeps one revm instance (instruction table, frames, journal maps) and attaches
//! the incarnation's database for the duration of one transaction.

pub mod blob;
mod block;
pub mod call;
mod changes;
mod env;
mod error;
pub mod machine;
mod prepare;
pub mod rpc_json;
pub mod sign;
pub mod state_db;
mod task;
pub mod txinfo;

pub use block::{
    execute_block, execute_prepared, sequential_rule, BlockResult, BlockTrace, ExecConfig,
    ExecutorKind, RULE_MIN_CALLS, RULE_MIN_CALL_GAS, RULE_TRANSFERS_PER_CALL,
};
pub use error::BlockError;
pub use prepare::PreparedBlock;
/// The revm this crate runs, for callers that compare against plain revm.
pub use revm;
pub use task::{
    bytecode_from_bytes, AccountValue, CodeCache, CodeValue, EvmKey, EvmTask, EvmValue, SlotValue,
    TxOutput, STORAGE_STALE,
};
