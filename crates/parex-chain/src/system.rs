//! System calls (EIP-4788, EIP-2935, EIP-7002, EIP-7251): a call from the system address to a
//! system contract, outside any transaction: no gas paid, no nonce, no fee to the
//! beneficiary, 30 million gas. They run sequentially, before or after the block's
//! transactions, on plain revm over an [`Overlay`](crate::Overlay) of the state so far.

use parex_evm::bytecode_from_bytes;
use parex_evm::revm::context::result::ExecutionResult;
use parex_evm::revm::context::result::{EVMError, InvalidTransaction};
use parex_evm::revm::context::{BlockEnv as RevmBlockEnv, CfgEnv, TxEnv};
use parex_evm::revm::database_interface::{DBErrorMarker, WrapDatabaseRef};
use parex_evm::revm::handler::{EthFrame, Handler, MainnetHandler};
use parex_evm::revm::primitives::TxKind;
use parex_evm::revm::state::{AccountInfo as RevmAccountInfo, Bytecode};
use parex_evm::revm::{Context, DatabaseRef, ExecuteEvm, MainBuilder, MainContext};
use parex_primitives::{AccountChange, AccountInfo, Address, Bytes, StateChanges, B256, U256};
use parex_state::{StateError, StateViewRef};

/// The caller of every system call.
pub const SYSTEM_ADDRESS: Address = alloy_eips::eip4788::SYSTEM_ADDRESS;

/// Gas a system call may use (the EIPs' 30,000,000).
pub const SYSTEM_CALL_GAS: u64 = 30_000_000;

/// A store error inside revm.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SystemDbError(String);

impl DBErrorMarker for SystemDbError {}

/// revm's read-only database over a parex view.
struct ViewDatabase<'a, S: ?Sized>(&'a S);

impl<S: StateViewRef + ?Sized> DatabaseRef for ViewDatabase<'_, S> {
    type Error = SystemDbError;

    fn basic_ref(&self, address: Address) -> Result<Option<RevmAccountInfo>, Self::Error> {
        let Some(info) = self.0.account(&address).map_err(db_error)? else {
            return Ok(None);
        };
        let code = self.code_by_hash_ref(info.code_hash)?;
        Ok(Some(RevmAccountInfo::new(
            info.balance,
            info.nonce,
            info.code_hash,
            code,
        )))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        let code = self
            .0
            .code_by_hash(&code_hash)
            .map_err(db_error)?
            .ok_or_else(|| SystemDbError(format!("code {code_hash} missing from the store")))?;
        Ok(bytecode_from_bytes(code))
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        self.0.storage(&address, &index).map_err(db_error)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.0.block_hash(number).map_err(db_error)
    }
}

fn db_error(e: StateError) -> SystemDbError {
    SystemDbError(e.0)
}

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
        .with_db(WrapDatabaseRef(ViewDatabase(view)))
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
    let mut handler: MainnetHandler<_, EVMError<SystemDbError, InvalidTransaction>, EthFrame> =
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
                changes.insert(
                    address,
                    AccountChange {
                        info: None,
                        code: None,
                        storage_cleared: true,
                        storage: Default::default(),
                    },
                );
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
