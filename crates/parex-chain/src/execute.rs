//! Full block processing around the parallel engine.
//!
//! ```text
//!  parent header ─┐
//!  block ─────────┼─► validate_header ─► body checks (tx root, ommers, withdrawals root)
//!                 │
//!                 ▼   pre-block, sequential       transactions, Block-STM     post-block, sequential
//!  state ──► [4788 beacon root, 2935 history] ─► [parex_evm::execute_prepared] ─► [withdrawals,
//!            (Overlay over state)                 (Overlay over state + pre)      rewards, requests:
//!                                                                                 deposits, 7002, 7251]
//!                 ▼
//!  commitments: gas used, blob gas used, receipts root, logs bloom, requests hash, state root
//!                 ▼
//!  ExecutedBlock { header (computed), hash, result (receipts, all changes), requests }
//! ```
//!
//! Every step reads the state its predecessors left through an [`Overlay`] and returns its own
//! `StateChanges`; [`merge_changes`] folds them, in order, into the block's changes.

use crate::block::Block;
use crate::error::{block, ChainError};
use crate::overlay::{credit, merge_changes, Overlay};
use crate::requests::{deposit_requests, typed_request};
use crate::spec::ChainSpec;
use crate::system::system_call;
use crate::validate::validate_header;
use alloy_consensus::Header;
use alloy_eips::eip7685::Requests;
use parex_commitment::{
    block_logs_bloom, ommers_hash, receipts_root, receipts_root_with_post_states, state_root,
    transactions_root, withdrawals_root,
};
use parex_evm::{execute_prepared, BlockResult, ExecConfig, PreparedBlock};
use parex_primitives::{Address, BlockEnv, Bytes, Fork, StateChanges, B256, KECCAK_EMPTY, U256};
use parex_state::{InMemoryState, StateError, StateViewRef};
use std::time::Instant;

/// A store that can commit to its state after a block: the state root of pre-block state plus
/// `changes`.
pub trait StateCommitment {
    fn state_root_after(&self, changes: &StateChanges) -> Result<B256, StateError>;
}

impl StateCommitment for InMemoryState {
    /// A copy with the changes applied, hashed whole (storage tries in parallel).
    fn state_root_after(&self, changes: &StateChanges) -> Result<B256, StateError> {
        let mut after = self.clone();
        after.apply(changes);
        Ok(state_root(&after))
    }
}

/// A block the rules accept, with everything it committed to.
#[derive(Debug, Clone)]
pub struct ExecutedBlock {
    pub fork: Fork,
    /// The header with every computed field in place; equal to the block's when it is valid.
    pub header: Header,
    /// keccak256 of `header`'s RLP.
    pub hash: B256,
    /// Receipts, gas used, stats, and the changes of the whole block (system calls,
    /// transactions, withdrawals, rewards): apply them to the pre-block state.
    pub result: BlockResult,
    /// The EIP-7685 requests (Prague on); `None` before.
    pub requests: Option<Requests>,
}

/// The block reward of a proof-of-work fork (none from the Merge on).
pub fn block_reward(fork: Fork) -> U256 {
    const ETHER: u128 = 1_000_000_000_000_000_000;
    let ether = match fork {
        f if f >= Fork::Paris => 0,
        f if f >= Fork::Constantinople => 2,
        f if f >= Fork::Byzantium => 3,
        _ => 5,
    };
    U256::from(ether * ETHER)
}

/// The revm environment values of a header under `fork`.
pub fn block_env(spec: &ChainSpec, header: &Header, fork: Fork) -> BlockEnv {
    BlockEnv {
        number: header.number,
        timestamp: header.timestamp,
        beneficiary: header.beneficiary,
        base_fee: header.base_fee_per_gas.unwrap_or_default(),
        gas_limit: header.gas_limit,
        prevrandao: header.mix_hash,
        difficulty: header.difficulty,
        excess_blob_gas: header.excess_blob_gas,
        chain_id: spec.chain_id,
        fork,
    }
}

/// Fails with `exception` when `header`'s value of `what` is not what the block computes.
fn ensure_same<T: PartialEq + std::fmt::Debug>(
    exception: crate::Exception,
    what: &str,
    header: T,
    computed: T,
) -> Result<(), ChainError> {
    if header == computed {
        return Ok(());
    }
    Err(ChainError::invalid(
        exception,
        format!("{what}: header has {header:?}, block computes {computed:?}"),
    ))
}

/// Validates and executes `block` on top of `parent` and `state` (the state after `parent`,
/// which is not modified), transactions through Block-STM as `config` says: a node importing
/// a block. Every commitment of the header is checked; the first that differs names the
/// rejection.
pub fn execute_block<S: StateViewRef + StateCommitment>(
    spec: &ChainSpec,
    parent: &Header,
    block: &Block,
    state: &S,
    config: &ExecConfig,
) -> Result<ExecutedBlock, ChainError> {
    process(spec, parent, block, state, config, Mode::Import)
}

/// Builds a block from `block`'s body and the header fields a proposer chooses
/// (beneficiary, gas limit, timestamp, extra data, mix hash, nonce, parent beacon root):
/// parent hash, number, base fee, excess blob gas and (before the Merge) difficulty are
/// derived from `parent`, and every commitment (roots, bloom, gas used, blob gas used,
/// requests hash) from the execution. The returned header is the block's;
/// [`execute_block`] accepts the block it completes.
pub fn build_block<S: StateViewRef + StateCommitment>(
    spec: &ChainSpec,
    parent: &Header,
    block: &Block,
    state: &S,
    config: &ExecConfig,
) -> Result<ExecutedBlock, ChainError> {
    let mut block = block.clone();
    complete_header(spec, parent, &mut block);
    process(spec, parent, &block, state, config, Mode::Build)
}

/// The genesis header of a chain under `spec` whose genesis state has `state_root`, from the
/// fields a genesis file chooses (`template`: beneficiary, difficulty, gas limit, timestamp,
/// extra data, mix hash, nonce, and optionally base fee, blob gas used, excess blob gas);
/// every other field is the empty block's, and the fork fields are those the fork at block 0
/// requires, as geth's `Genesis.ToBlock` fills them: base fee (London; the template's or
/// EIP-1559's initial one), the withdrawals root of none (Shanghai), blob gas fields (zero
/// unless given) and a zero parent beacon root (Cancun), the empty requests hash (Prague).
pub fn genesis_header(spec: &ChainSpec, template: &Header, state_root: B256) -> Header {
    let fork = spec.fork_at(0, template.timestamp);
    let empty = alloy_trie_root_of_nothing();
    Header {
        parent_hash: B256::ZERO,
        ommers_hash: ommers_hash(&[]),
        state_root,
        transactions_root: empty,
        receipts_root: empty,
        logs_bloom: Default::default(),
        number: 0,
        gas_used: 0,
        base_fee_per_gas: (fork >= Fork::London).then(|| {
            template
                .base_fee_per_gas
                .unwrap_or(alloy_eips::eip1559::INITIAL_BASE_FEE)
        }),
        withdrawals_root: (fork >= Fork::Shanghai).then(|| withdrawals_root(&[])),
        blob_gas_used: (fork >= Fork::Cancun).then(|| template.blob_gas_used.unwrap_or(0)),
        excess_blob_gas: (fork >= Fork::Cancun).then(|| template.excess_blob_gas.unwrap_or(0)),
        parent_beacon_block_root: (fork >= Fork::Cancun).then_some(B256::ZERO),
        requests_hash: (fork >= Fork::Prague).then(|| Requests::default().requests_hash()),
        ..template.clone()
    }
}

/// The root of an empty trie (no transactions, no receipts).
fn alloy_trie_root_of_nothing() -> B256 {
    transactions_root(&[])
}

/// The derived header fields of a block being built (see [`build_block`]).
fn complete_header(spec: &ChainSpec, parent: &Header, block: &mut Block) {
    let header = &mut block.header;
    header.parent_hash = parent.hash_slow();
    header.number = parent.number + 1;
    let fork = spec.fork_at(header.number, header.timestamp);
    let parent_fork = spec.fork_at(parent.number, parent.timestamp);
    header.base_fee_per_gas = (fork >= Fork::London).then(|| {
        if parent_fork < Fork::London {
            alloy_eips::eip1559::INITIAL_BASE_FEE
        } else {
            alloy_eips::eip1559::calc_next_block_base_fee(
                parent.gas_used,
                parent.gas_limit,
                parent.base_fee_per_gas.unwrap_or_default(),
                alloy_eips::eip1559::BaseFeeParams::ethereum(),
            )
        }
    });
    header.excess_blob_gas = spec.blob_params(fork).map(|params| {
        let excess = parent.excess_blob_gas.unwrap_or_default();
        let used = parent.blob_gas_used.unwrap_or_default();
        if fork >= Fork::Osaka {
            params.next_block_excess_blob_gas_osaka(
                excess,
                used,
                parent.base_fee_per_gas.unwrap_or_default(),
            )
        } else {
            (excess + used).saturating_sub(params.target_blob_gas_per_block())
        }
    });
    header.blob_gas_used = (fork >= Fork::Cancun).then_some(0);
    header.parent_beacon_block_root =
        (fork >= Fork::Cancun).then(|| header.parent_beacon_block_root.unwrap_or_default());
    header.requests_hash = (fork >= Fork::Prague).then_some(B256::ZERO);
    if fork >= Fork::Paris {
        header.difficulty = U256::ZERO;
    } else {
        header.difficulty = crate::validate::ethash_difficulty(fork, parent, header);
    }
    if fork >= Fork::Shanghai {
        let withdrawals = block.withdrawals.get_or_insert_with(Vec::new);
        header.withdrawals_root = Some(withdrawals_root(withdrawals));
    } else {
        block.withdrawals = None;
        header.withdrawals_root = None;
    }
    header.transactions_root = transactions_root(&block.transactions);
    header.ommers_hash = ommers_hash(&block.ommers);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Check every commitment against the header.
    Import,
    /// Fill the commitments in.
    Build,
}

fn process<S: StateViewRef + StateCommitment>(
    spec: &ChainSpec,
    parent: &Header,
    block: &Block,
    state: &S,
    config: &ExecConfig,
    mode: Mode,
) -> Result<ExecutedBlock, ChainError> {
    let checking = mode == Mode::Import;
    let start = Instant::now();
    let header = &block.header;
    // A block being built has its derived fields from `complete_header`, but gas used is
    // not known yet: validate with zero as a stand-in.
    let fork = if checking {
        validate_header(spec, parent, header)?
    } else {
        let mut provisional = header.clone();
        provisional.gas_used = 0;
        validate_header(spec, parent, &provisional)?
    };
    check_body(fork, block)?;

    let env = block_env(spec, header, fork);
    let prepared = PreparedBlock::new(&env, &block.transactions, config.threads)
        .map_err(|e| decode_error(e, &block.transactions))?;
    let recovery_nanos = start.elapsed().as_nanos() as u64;
    let revm_env = prepared.revm_block_env();
    let cfg = prepared.revm_cfg_env();

    // C1: every step reads the state through an Overlay of the changes merged so far.
    // Pre-block system calls (their failures are ignored: these contracts are not checked).
    let mut changes = StateChanges::new();
    if fork >= Fork::Cancun {
        let root = header.parent_beacon_block_root.unwrap_or_default();
        let outcome = system_call(
            &Overlay::new(state, &changes),
            revm_env,
            cfg,
            alloy_eips::eip4788::BEACON_ROOTS_ADDRESS,
            Bytes::copy_from_slice(root.as_slice()),
        )?;
        merge_changes(&mut changes, outcome.changes);
    }
    if fork >= Fork::Prague {
        let outcome = system_call(
            &Overlay::new(state, &changes),
            revm_env,
            cfg,
            alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS,
            Bytes::copy_from_slice(header.parent_hash.as_slice()),
        )?;
        merge_changes(&mut changes, outcome.changes);
    }

    // The transactions, on the engine.
    let mut result = execute_prepared(&prepared, &Overlay::new(state, &changes), config)?;
    let blob_gas_used = (fork >= Fork::Cancun).then(|| prepared.blob_gas_used());
    if checking && blob_gas_used.is_some() {
        ensure_same(
            block::INCORRECT_BLOB_GAS_USED,
            "blob gas used",
            header.blob_gas_used,
            blob_gas_used,
        )?;
    }
    // Before Byzantium a receipt commits to the state root after its transaction, which a
    // block executed as a whole does not produce: replay the transactions one at a time on
    // the sequential executor for those roots.
    let post_states = if fork < Fork::Byzantium && !prepared.is_empty() {
        Some(post_states(&prepared, state, &changes)?)
    } else {
        None
    };
    if checking {
        ensure_same(
            block::INVALID_GAS_USED,
            "gas used",
            header.gas_used,
            result.gas_used,
        )?;
    }
    merge_changes(&mut changes, std::mem::take(&mut result.changes));

    // Withdrawals, then rewards.
    let mut credits = StateChanges::new();
    {
        let view = Overlay::new(state, &changes);
        for withdrawal in block.withdrawals.iter().flatten() {
            credit(
                &view,
                &mut credits,
                withdrawal.address,
                withdrawal.amount_wei(),
            )?;
        }
        let reward = block_reward(fork);
        if !reward.is_zero() {
            let per_ommer = reward / U256::from(32);
            let miner = reward + per_ommer * U256::from(block.ommers.len());
            credit(&view, &mut credits, header.beneficiary, miner)?;
            for ommer in &block.ommers {
                let depth = header.number.saturating_sub(ommer.number);
                let share = reward * U256::from(8u64.saturating_sub(depth)) / U256::from(8);
                credit(&view, &mut credits, ommer.beneficiary, share)?;
            }
        }
    }
    merge_changes(&mut changes, credits);

    // EIP-7685 requests.
    let requests = if fork >= Fork::Prague {
        let mut requests = Requests::default();
        let deposits = deposit_requests(&result.receipts, spec.deposit_contract)?;
        if let Some(request) = typed_request(alloy_eips::eip6110::DEPOSIT_REQUEST_TYPE, &deposits) {
            requests.push_request(request);
        }
        for (contract, request_type) in [
            (
                alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
                alloy_eips::eip7002::WITHDRAWAL_REQUEST_TYPE,
            ),
            (
                alloy_eips::eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
                alloy_eips::eip7251::CONSOLIDATION_REQUEST_TYPE,
            ),
        ] {
            let output = checked_system_call(state, &mut changes, revm_env, cfg, contract)?;
            if let Some(request) = typed_request(request_type, &output) {
                requests.push_request(request);
            }
        }
        Some(requests)
    } else {
        None
    };
    let requests_hash = requests.as_ref().map(|r| r.requests_hash());
    if checking && requests_hash.is_some() {
        ensure_same(
            block::INVALID_REQUESTS,
            "requests hash",
            header.requests_hash,
            requests_hash,
        )?;
    }

    // Commitments. C3: each is compared when importing, filled in when building.
    let mut computed = header.clone();
    computed.gas_used = result.gas_used;
    if blob_gas_used.is_some() {
        computed.blob_gas_used = blob_gas_used;
    }
    if requests_hash.is_some() {
        computed.requests_hash = requests_hash;
    }
    computed.receipts_root = match &post_states {
        Some(roots) => receipts_root_with_post_states(&result.receipts, roots),
        None => receipts_root(&result.receipts),
    };
    if checking {
        ensure_same(
            block::INVALID_RECEIPTS_ROOT,
            "receipts root",
            header.receipts_root,
            computed.receipts_root,
        )?;
    }
    computed.logs_bloom = block_logs_bloom(&result.receipts);
    if checking {
        ensure_same(
            block::INVALID_LOG_BLOOM,
            "logs bloom",
            header.logs_bloom,
            computed.logs_bloom,
        )?;
    }
    computed.state_root = state.state_root_after(&changes)?;
    if checking {
        ensure_same(
            block::INVALID_STATE_ROOT,
            "state root",
            header.state_root,
            computed.state_root,
        )?;
    }

    result.changes = changes;
    result.recovery_nanos = recovery_nanos;
    result.elapsed_nanos = start.elapsed().as_nanos() as u64;
    let hash = computed.hash_slow();
    Ok(ExecutedBlock {
        fork,
        header: computed,
        hash,
        result,
        requests,
    })
}

/// The state root after each transaction of `prepared`, run one at a time on the sequential
/// executor on top of `state` and `before` (the pre-block steps' changes).
fn post_states<S: StateViewRef + StateCommitment>(
    prepared: &PreparedBlock,
    state: &S,
    before: &StateChanges,
) -> Result<Vec<B256>, ChainError> {
    let sequential = ExecConfig {
        executor: parex_evm::ExecutorKind::Sequential,
        threads: 1,
        trace: false,
        trace_runs: 1,
        sequential_rule: false,
    };
    let mut so_far = before.clone();
    let mut roots = Vec::with_capacity(prepared.len());
    for index in 0..prepared.len() {
        let Some(one) = prepared.single(index) else {
            break;
        };
        let mut done = execute_prepared(&one, &Overlay::new(state, &so_far), &sequential)?;
        merge_changes(&mut so_far, std::mem::take(&mut done.changes));
        roots.push(state.state_root_after(&so_far)?);
    }
    Ok(roots)
}

/// A post-block system call whose contract must exist and succeed (EIP-7002, EIP-7251); its
/// changes are merged into `changes`, its output returned.
fn checked_system_call<S: StateViewRef>(
    state: &S,
    changes: &mut StateChanges,
    revm_env: &parex_evm::revm::context::BlockEnv,
    cfg: &parex_evm::revm::context::CfgEnv,
    contract: Address,
) -> Result<Bytes, ChainError> {
    let view = Overlay::new(state, changes);
    let has_code = view
        .account(&contract)?
        .is_some_and(|info| info.code_hash != KECCAK_EMPTY);
    if !has_code {
        return Err(ChainError::invalid(
            block::SYSTEM_CONTRACT_EMPTY,
            format!("system contract {contract} has no code"),
        ));
    }
    let outcome = system_call(&view, revm_env, cfg, contract, Bytes::new())?;
    let Some(output) = outcome.output else {
        return Err(ChainError::invalid(
            block::SYSTEM_CONTRACT_CALL_FAILED,
            format!("system call to {contract} failed"),
        ));
    };
    merge_changes(changes, outcome.changes);
    Ok(output)
}

/// A transaction that does not decode: a blob or set-code transaction without a `to` is
/// named as the creation it attempts (their envelopes cannot express one).
fn decode_error(err: parex_evm::BlockError, transactions: &[Bytes]) -> ChainError {
    let parex_evm::BlockError::Decode { index, reason } = &err else {
        return err.into();
    };
    let exception = match transactions.get(*index as usize).map(|raw| raw.as_ref()) {
        Some([3, payload @ ..]) if empty_to(payload) => {
            crate::tx_exception::TYPE_3_TX_CONTRACT_CREATION
        }
        Some([4, payload @ ..]) if empty_to(payload) => {
            crate::tx_exception::TYPE_4_TX_CONTRACT_CREATION
        }
        _ => return err.into(),
    };
    ChainError::Invalid {
        exception,
        reason: format!("transaction {index}: {reason} (no `to`: a creation)"),
        index: Some(*index),
    }
}

/// True when the sixth field of an EIP-1559-shaped payload (`to`) is the empty string.
fn empty_to(payload: &[u8]) -> bool {
    let mut buf = payload;
    let Ok(list) = alloy_rlp::Header::decode(&mut buf) else {
        return false;
    };
    if !list.list {
        return false;
    }
    for _ in 0..5 {
        let Ok(item) = alloy_rlp::Header::decode(&mut buf) else {
            return false;
        };
        if item.payload_length > buf.len() {
            return false;
        }
        buf = &buf[item.payload_length..];
    }
    buf.first() == Some(&alloy_rlp::EMPTY_STRING_CODE)
}

/// The body matches the header: transactions root, ommers, withdrawals.
fn check_body(fork: Fork, block: &Block) -> Result<(), ChainError> {
    let header = &block.header;
    let tx_root = transactions_root(&block.transactions);
    ensure_same(
        block::INVALID_TRANSACTIONS_ROOT,
        "transactions root",
        header.transactions_root,
        tx_root,
    )?;
    if fork >= Fork::Paris && !block.ommers.is_empty() {
        return Err(ChainError::invalid(
            block::IMPORT_IMPOSSIBLE_UNCLES_OVER_PARIS,
            format!("{} ommers after the Merge", block.ommers.len()),
        ));
    }
    if block.ommers.len() > 2 {
        return Err(ChainError::invalid(
            block::TOO_MANY_UNCLES,
            format!("{} ommers", block.ommers.len()),
        ));
    }
    for ommer in &block.ommers {
        let depth = header.number.saturating_sub(ommer.number);
        if ommer.number >= header.number || depth > 6 {
            return Err(ChainError::invalid(
                block::UNCLE_PARENT_INCORRECT,
                format!("ommer {} of block {}", ommer.number, header.number),
            ));
        }
    }
    let ommers = ommers_hash(&block.ommers);
    ensure_same(
        block::INVALID_UNCLES_HASH,
        "ommers hash",
        header.ommers_hash,
        ommers,
    )?;
    match (&block.withdrawals, fork >= Fork::Shanghai) {
        (Some(withdrawals), true) => {
            let root = withdrawals_root(withdrawals);
            ensure_same(
                block::INVALID_WITHDRAWALS_ROOT,
                "withdrawals root",
                header.withdrawals_root,
                Some(root),
            )?;
        }
        (None, false) => {}
        (Some(_), false) => {
            return Err(ChainError::invalid(
                block::INCORRECT_BLOCK_FORMAT,
                format!("withdrawals in a {fork} block"),
            ))
        }
        (None, true) => {
            return Err(ChainError::invalid(
                block::INCORRECT_BLOCK_FORMAT,
                format!("{fork} block without withdrawals"),
            ))
        }
    }
    Ok(())
}
