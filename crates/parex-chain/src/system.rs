//! System calls (EIP-4788, EIP-2935, EIP-7002, EIP-7251): a call from the system address to a
//! system contract, outside any transaction: no gas paid, no nonce, no fee to the
//! beneficiary, 30 million gas. They run sequentially, before or after the block's
//! transactions, on plain revm over an [`Overlay`](crate::Overlay) of the state so far.

use parex_evm::revm::context::result::ExecutionResult;
use parex_evm::revm::context::result::{EVMError, InvalidTransaction};
use parex_evm::revm::context::{BlockEnv as RevmBlockEnv, CfgEnv, TxEnv};
use parex_evm::revm::database_interface::WrapDatabaseRef;
use parex_evm::revm::handler::{EthFrame, Handler, MainnetHandler};
use parex_evm::revm::primitives::TxKind;
use parex_evm::revm::{Context, ExecuteEvm, MainBuilder, MainContext};
use parex_evm::state_db::{StateDb, StateDbError};
use parex_primitives::{AccountChange, AccountInfo, Address, Bytes, StateChanges};
use parex_state::{StateError, StateViewRef};

/// The caller of every system call.
pub const SYSTEM_ADDRESS: Address = alloy_eips::eip4788::SYSTEM_ADDRESS;

/// The system contracts Prague calls around a block's transactions (EIP-4788 beacon roots,
/// EIP-2935 block hashes, EIP-7002 withdrawal and EIP-7251 consolidation requests), with the
/// code their EIPs deploy: accounts, not precompiles, so a Prague genesis must hold them.
pub static PRAGUE_SYSTEM_CONTRACTS: [(Address, &Bytes); 4] = {
    use alloy_eips::{eip2935, eip4788, eip7002, eip7251};
    [
        (eip4788::BEACON_ROOTS_ADDRESS, &eip4788::BEACON_ROOTS_CODE),
        (
            eip2935::HISTORY_STORAGE_ADDRESS,
            &eip2935::HISTORY_STORAGE_CODE,
        ),
        (
            eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
            &eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_CODE,
        ),
        (
            eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
            &eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_CODE,
        ),
    ]
};

/// Gas a system call may use (the EIPs' 30,000,000).
pub const SYSTEM_CALL_GAS: u64 = 30_000_000;

/// A store error inside revm.
/// What one system call did.
pub struct SystemCallOutcome {
    /// `Some(output)` when the call succeeded; `None` when it reverted or halted.
    pub output: Option<Bytes>,
    /// Its state changes (empty when it failed).
    pub changes: StateChanges,
}

/// Calls `contract` with `data` from [`SYSTEM_ADDRESS`] on top of `view`.
pub fn system_call<S: StateViewRef + ?Sized>(
    view: &S,
    block_env: &RevmBlockEnv,
    cfg: &CfgEnv,
    contract: Address,
    data: Bytes,
) -> Result<SystemCallOutcome, StateError> {
    let mut evm = Context::mainnet()
        .with_db(WrapDatabaseRef(StateDb(view)))
        .with_block(block_env.clone())
        .with_cfg(cfg.clone())
        .build_mainnet();
    evm.ctx.tx = TxEnv {
        caller: SYSTEM_ADDRESS,
        kind: TxKind::Call(contract),
        data,
        gas_limit: SYSTEM_CALL_GAS,
        gas_price: 0,
        ..Default::default()
    };
    let mut handler: MainnetHandler<_, EVMError<StateDbError, InvalidTransaction>, EthFrame> =
        MainnetHandler::default();
    let result = handler.run_system_call(&mut evm);
    let state = evm.finalize();
    let result = result.map_err(|e| StateError(format!("system call to {contract}: {e}")))?;
    let output = match result {
        ExecutionResult::Success { output, .. } => output.into_data(),
        ExecutionResult::Revert { .. } | ExecutionResult::Halt { .. } => {
            return Ok(SystemCallOutcome {
                output: None,
                changes: StateChanges::new(),
            })
        }
    };
    let mut changes = StateChanges::new();
    for (address, account) in state {
        // The system address is only the caller: it is neither touched nor charged.
        let wrote_storage = account.storage.values().any(|slot| slot.is_changed());
        if address == SYSTEM_ADDRESS || !(account.is_touched() || wrote_storage) {
            continue;
        }
        let existed = view.account(&address)?.is_some();
        if account.is_selfdestructed() || account.is_empty() {
            // EIP-161: a touched empty account is deleted (the system contracts' forks all
            // come after Spurious Dragon).
            if existed {
                changes.insert(address, AccountChange::deleted());
            }
            continue;
        }
        let created = account.is_created();
        let code = if created {
            account.info.code.as_ref().map(|c| c.original_bytes())
        } else {
            None
        };
        changes.insert(
            address,
            AccountChange {
                info: Some(AccountInfo {
                    balance: account.info.balance,
                    nonce: account.info.nonce,
                    code_hash: account.info.code_hash,
                }),
                code,
                storage_cleared: created,
                storage: account
                    .storage
                    .iter()
                    .filter(|(_, slot)| slot.is_changed())
                    .map(|(slot, value)| (*slot, value.present_value))
                    .collect(),
            },
        );
    }
    Ok(SystemCallOutcome {
        output: Some(output),
        changes,
    })
}
