//! Calls and gas estimation: one message executed on top of a state, nothing committed
//! (`eth_call`, `eth_estimateGas`).
//!
//! A call runs plain revm (no Block-STM: one message has nothing to run in parallel) over a
//! [`StateViewRef`], with the node's block environment. As in geth, a call that names no fee
//! pays none: its gas price is zero and the block's base fee is taken as zero for it, so an
//! account without ether can still call; a call that names no nonce skips the nonce check.

use crate::env::{revm_block_env, revm_cfg_env};
use crate::state_db::StateDb;
pub use alloy_eips::eip2930::{AccessList, AccessListItem};
use parex_primitives::{Address, BlockEnv, Bytes, Log, U256};
use parex_state::StateViewRef;
use revm::context::result::{EVMError, ExecutionResult, HaltReason, Output};
use revm::context::{Context, TxEnv};
use revm::database_interface::WrapDatabaseRef;
use revm::primitives::TxKind;
use revm::{ExecuteEvm, MainBuilder, MainContext};

/// Gas of the cheapest transaction: the lower bound of every estimate.
const TX_BASE_GAS: u64 = 21_000;

/// One message to execute, as `eth_call` and `eth_estimateGas` describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallRequest {
    /// The caller; the zero address when the request names none.
    pub from: Address,
    /// The callee; `None` creates a contract from `input`.
    pub to: Option<Address>,
    /// Gas limit; `None` for the block's gas limit.
    pub gas: Option<u64>,
    /// Legacy gas price, or the EIP-1559 fee cap; `None` pays no fee.
    pub max_fee_per_gas: Option<u128>,
    pub max_priority_fee_per_gas: Option<u128>,
    pub value: U256,
    pub input: Bytes,
    /// Checked against the caller's nonce when given.
    pub nonce: Option<u64>,
    pub access_list: AccessList,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallStatus {
    Success,
    /// `REVERT`: `output` carries the revert data.
    Revert,
    /// An exceptional halt (out of gas, invalid opcode, ...), named.
    Halt(String),
}

/// What a call produced. Nothing of it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    pub status: CallStatus,
    /// Gas the transaction would be charged (after refunds).
    pub gas_used: u64,
    /// Return data, revert data, or the deployed code of a creation.
    pub output: Bytes,
    pub logs: Vec<Log>,
    pub contract_address: Option<Address>,
}

/// Why a call could not run at all: the message is not a valid transaction here (insufficient
/// funds, nonce, gas below the intrinsic cost, ...) or the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Invalid(String),
    #[error("state store error: {0}")]
    State(String),
}

fn halt_name(reason: &HaltReason) -> String {
    match reason {
        HaltReason::OutOfGas(_) => "out of gas".into(),
        HaltReason::OpcodeNotFound | HaltReason::InvalidFEOpcode => "invalid opcode".into(),
        HaltReason::StackOverflow => "stack overflow".into(),
        HaltReason::StackUnderflow => "stack underflow".into(),
        HaltReason::InvalidJump => "invalid jump destination".into(),
        HaltReason::StateChangeDuringStaticCall => "write protection".into(),
        HaltReason::CallTooDeep => "max call depth exceeded".into(),
        HaltReason::CreateCollision => "contract address collision".into(),
        HaltReason::CreateContractSizeLimit => "max code size exceeded".into(),
        HaltReason::OutOfFunds => "insufficient balance for transfer".into(),
        other => format!("{other:?}"),
    }
}

/// Executes `request` on top of `state` in the block `env`, committing nothing.
pub fn call<S: StateViewRef>(
    env: &BlockEnv,
    request: &CallRequest,
    state: &S,
) -> Result<CallOutcome, CallError> {
    call_with_gas(env, request, state, request.gas.unwrap_or(default_gas(env)))
}

/// EIP-7825 (Osaka): no transaction may ask for more gas than this.
pub const TX_GAS_LIMIT_CAP: u64 = 1 << 24;

/// The gas of a request that names none: the block's gas limit, capped from Osaka on at the
/// per-transaction limit (EIP-7825), as geth does.
pub fn default_gas(env: &BlockEnv) -> u64 {
    if env.fork >= parex_primitives::Fork::Osaka {
        env.gas_limit.min(TX_GAS_LIMIT_CAP)
    } else {
        env.gas_limit
    }
}

fn call_with_gas<S: StateViewRef>(
    env: &BlockEnv,
    request: &CallRequest,
    state: &S,
    gas_limit: u64,
) -> Result<CallOutcome, CallError> {
    let mut block = revm_block_env(env);
    let mut cfg = revm_cfg_env(env);
    let pays_fee = request.max_fee_per_gas.is_some_and(|fee| fee > 0);
    if !pays_fee {
        // geth: a call without a fee runs with a zero base fee.
        block.basefee = 0;
    }
    cfg.disable_nonce_check = request.nonce.is_none();
    let (tx_type, gas_priority_fee) = match request.max_priority_fee_per_gas {
        Some(tip) => (2, Some(tip)),
        None if request.access_list.is_empty() => (0, None),
        None => (1, None),
    };
    let tx = TxEnv {
        tx_type,
        caller: request.from,
        gas_limit,
        gas_price: request.max_fee_per_gas.unwrap_or(0),
        kind: match request.to {
            Some(to) => TxKind::Call(to),
            None => TxKind::Create,
        },
        value: request.value,
        data: request.input.clone(),
        nonce: match request.nonce {
            Some(nonce) => nonce,
            None => state
                .account(&request.from)
                .map_err(|e| CallError::State(e.0))?
                .map_or(0, |a| a.nonce),
        },
        chain_id: Some(env.chain_id),
        access_list: request.access_list.clone(),
        gas_priority_fee,
        blob_hashes: Vec::new(),
        max_fee_per_blob_gas: 0,
        authorization_list: Vec::new(),
    };
    let mut evm = Context::mainnet()
        .with_db(WrapDatabaseRef(StateDb(state)))
        .with_block(block)
        .with_cfg(cfg)
        .build_mainnet();
    let result = evm.transact(tx).map_err(|e| match e {
        EVMError::Database(e) => CallError::State(e.0),
        EVMError::Transaction(e) => CallError::Invalid(e.to_string()),
        EVMError::Header(e) => CallError::Invalid(e.to_string()),
        EVMError::Custom(e) => CallError::Invalid(e),
        EVMError::CustomAny(e) => CallError::Invalid(e.to_string()),
    })?;
    let result = result.result;
    let gas_used = result.tx_gas_used();
    Ok(match result {
        ExecutionResult::Success { logs, output, .. } => {
            let contract_address = match &output {
                Output::Create(_, address) => *address,
                Output::Call(_) => None,
            };
            CallOutcome {
                status: CallStatus::Success,
                gas_used,
                output: output.into_data(),
                logs,
                contract_address,
            }
        }
        ExecutionResult::Revert { output, logs, .. } => CallOutcome {
            status: CallStatus::Revert,
            gas_used,
            output,
            logs,
            contract_address: None,
        },
        ExecutionResult::Halt { reason, logs, .. } => CallOutcome {
            status: CallStatus::Halt(halt_name(&reason)),
            gas_used,
            output: Bytes::new(),
            logs,
            contract_address: None,
        },
    })
}

/// The least gas limit at which `request` succeeds, found by bisection between the gas it
/// uses at the cap and the cap, as geth does. The cap is the request's gas, else the block's,
/// lowered to what the caller's balance pays for at the request's fee.
///
/// Returns the estimate, or the failing outcome at the cap (a revert or halt there means no
/// limit helps). Gas used is not the answer by itself: refunds and the 63/64 rule make some
/// calls need more gas than they end up using.
pub fn estimate_gas<S: StateViewRef>(
    env: &BlockEnv,
    request: &CallRequest,
    state: &S,
) -> Result<Result<u64, CallOutcome>, CallError> {
    let mut cap = request.gas.unwrap_or(default_gas(env));
    // geth: a request that pays a fee can use at most the gas its balance buys after `value`.
    if let Some(fee) = request.max_fee_per_gas.filter(|fee| *fee > 0) {
        let balance = state
            .account(&request.from)
            .map_err(|e| CallError::State(e.0))?
            .map_or(U256::ZERO, |a| a.balance);
        let available = balance.checked_sub(request.value).ok_or_else(|| {
            CallError::Invalid(format!(
                "insufficient funds for transfer: balance {balance}, value {}",
                request.value
            ))
        })?;
        let allowance = available / U256::from(fee);
        if allowance < U256::from(TX_BASE_GAS) {
            return Err(CallError::Invalid(format!(
                "insufficient funds for gas * price + value: balance {balance}, value {}, \
                 fee per gas {fee} buys {allowance} gas",
                request.value
            )));
        }
        if allowance < U256::from(cap) {
            cap = allowance.to::<u64>();
        }
    }
    let at_cap = call_with_gas(env, request, state, cap)?;
    if at_cap.status != CallStatus::Success {
        return Ok(Err(at_cap));
    }
    let succeeds = |gas: u64| -> Result<bool, CallError> {
        match call_with_gas(env, request, state, gas) {
            Ok(outcome) => Ok(outcome.status == CallStatus::Success),
            // Below the intrinsic gas (or the EIP-7623 floor) the message is invalid: too low.
            Err(CallError::Invalid(_)) => Ok(false),
            Err(e) => Err(e),
        }
    };
    // `lo` always fails, `hi` always succeeds.
    let mut lo = at_cap.gas_used.max(TX_BASE_GAS) - 1;
    let mut hi = cap;
    // Most calls need only a little more than they use: try that first.
    let optimistic = at_cap.gas_used.saturating_add(2_300).saturating_mul(64) / 63;
    if optimistic < hi {
        if succeeds(optimistic)? {
            hi = optimistic;
        } else {
            lo = optimistic;
        }
    }
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if succeeds(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Ok(hi))
}

#[cfg(test)]
mod default_gas_tests {
    use super::*;
    use parex_primitives::Fork;

    #[test]
    fn default_gas_is_capped_from_osaka() {
        let mut env = BlockEnv {
            gas_limit: 100_000_000,
            ..BlockEnv::default()
        };
        env.fork = Fork::Prague;
        assert_eq!(default_gas(&env), 100_000_000);
        env.fork = Fork::Osaka;
        assert_eq!(default_gas(&env), TX_GAS_LIMIT_CAP);
        env.gas_limit = 1_000_000;
        assert_eq!(default_gas(&env), 1_000_000);
    }
}
