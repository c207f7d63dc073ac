//! revm as a Block-STM task: keys, values, lazy deltas, and one transaction per incarnation.

use crate::prepare::{PreparedBlock, PreparedTx};
use ahash::AHashMap;
use parex_blockstm::{
    BlockTask, ReadError, ReadValue, ReadView, TaskOutcome, TxnIndex, WriteOp, WriteSet,
};
use parex_primitives::{Address, Bytes, Log, B256, KECCAK_EMPTY, U256};
use parex_state::StateViewRef;
use revm::context::{
    BlockEnv as RevmBlockEnv, Cfg, CfgEnv, Context, Evm, Journal, JournalEntry, JournalInner,
    LocalContext, TxEnv,
};
use revm::context_interface::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction};
use revm::context_interface::{ContextTr, DBErrorMarker, Database, FrameStack, JournalTr};
use revm::handler::instructions::EthInstructions;
use revm::handler::{EthFrame, EthPrecompiles, EvmTr, FrameResult, FrameTr, Handler, ItemOrResult};
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::interpreter_action::FrameInit;
use revm::interpreter::{CreateInputs, FrameInput};
use revm::primitives::constants::CALL_STACK_LIMIT;
use revm::primitives::hardfork::SpecId;
use revm::primitives::TxKind;
use revm::state::{AccountInfo, Bytecode, EvmState};
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::RwLock;

/// `AccountValue::storage_reset` of an account that a lazy credit brought back from
/// non-existence: every storage value below it is stale, and the next full write of the
/// account replaces the marker with its own index.
pub const STORAGE_STALE: u32 = u32::MAX;

/// A piece of state the engine orders reads and writes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvmKey {
    /// Balance and nonce (and the storage-reset marker).
    Account(Address),
    /// Code hash and code, apart from the balance so that credits never conflict with calls.
    Code(Address),
    Storage(Address, U256),
    /// `BLOCKHASH` lookups: never written, read through the view so store errors take the
    /// engine's path.
    BlockHash(u64),
}

impl EvmKey {
    /// The account the key belongs to; `None` for a block hash.
    pub fn address(&self) -> Option<Address> {
        match self {
            EvmKey::Account(address) | EvmKey::Code(address) | EvmKey::Storage(address, _) => {
                Some(*address)
            }
            EvmKey::BlockHash(_) => None,
        }
    }
}

impl std::hash::Hash for EvmKey {
    /// A few word writes instead of the derived byte-wise hash: keys are hashed on every read
    /// and write of the engine's maps.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        fn address<H: std::hash::Hasher>(a: &Address, tag: u64, state: &mut H) {
            let b = &a.0 .0;
            let w0 = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let w1 = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
            let w2 = u32::from_le_bytes([b[16], b[17], b[18], b[19]]) as u64;
            state.write_u64(w0);
            state.write_u64(w1);
            state.write_u64(w2 | (tag << 32));
        }
        match self {
            EvmKey::Account(a) => address(a, 1, state),
            EvmKey::Code(a) => address(a, 2, state),
            EvmKey::Storage(a, slot) => {
                address(a, 3, state);
                for limb in slot.as_limbs() {
                    state.write_u64(*limb);
                }
            }
            EvmKey::BlockHash(n) => {
                state.write_u64(u64::MAX);
                state.write_u64(*n);
            }
        }
    }
}

/// Balance and nonce of an existing account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountValue {
    pub balance: U256,
    pub nonce: u64,
    /// The transaction that last wiped this account's storage in this block (creation,
    /// re-creation after a self-destruct or deletion); storage values written before it are
    /// stale. [`STORAGE_STALE`]: all are.
    pub storage_reset: Option<TxnIndex>,
    /// Whether the account holds code (a delegation included). A reader that sees `false`
    /// skips the code read: every transaction that gives an account code or takes it away
    /// also writes this value (it flips), so validating the account read covers the code.
    pub has_code: bool,
}

/// Code of an account with code.
#[derive(Debug, Clone)]
pub struct CodeValue {
    pub hash: B256,
    pub bytecode: Bytecode,
}

impl PartialEq for CodeValue {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

/// A storage slot, with the transaction that wrote it (`None`: pre-block state), which the
/// storage-reset rule compares against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotValue {
    pub value: U256,
    pub written_by: Option<TxnIndex>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EvmValue {
    Account(AccountValue),
    Code(CodeValue),
    Storage(SlotValue),
    BlockHash(B256),
}

/// What one transaction produced, for its receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct TxOutput {
    pub success: bool,
    pub gas_used: u64,
    pub logs: Vec<Log>,
    pub contract_address: Option<Address>,
    pub tx_type: u8,
    /// Fee credited to the beneficiary.
    pub fee: U256,
}

/// Analysed pre-block code by code hash, shared by a block's workers. Code by hash never
/// changes, so a caller may keep one cache across blocks (the engine keeps one per calling
/// thread) and stop analysing the same contracts block after block.
#[derive(Debug, Default)]
pub struct CodeCache(RwLock<AHashMap<B256, Bytecode>>);

impl CodeCache {
    /// Most contracts a cache keeps; past this it starts over (a long-lived node thread must
    /// not grow without bound).
    pub const MAX: usize = 16_384;

    /// Empties the cache if it holds more than [`CodeCache::MAX`] contracts.
    pub fn bound(&self) {
        if let Ok(mut codes) = self.0.write() {
            if codes.len() > Self::MAX {
                codes.clear();
            }
        }
    }
}

/// How far ahead [`EvmTask`]'s successor hint looks for the next call to the same contract.
pub const SUCCESSOR_WINDOW: usize = 32;

/// A call's selector and first argument word.
const CALL_HEAD: usize = 4 + 32;

/// One block for the Block-STM engine: revm over a [`ReadView`].
pub struct EvmTask<'a, S: StateViewRef> {
    block: &'a PreparedBlock,
    state: &'a S,
    /// Analysed bytecode by hash: every incarnation that reads a contract from pre-block state
    /// shares one analysis, as a `CacheDB` would, and so does every later block executed from
    /// the same thread (see [`CodeCache`]).
    codes: &'a CodeCache,
    /// For each transaction, the previous transaction of the same sender: it writes the
    /// nonce this one checks, so it is the dependency hint.
    previous_of_sender: Vec<Option<TxnIndex>>,
}

impl<'a, S: StateViewRef> EvmTask<'a, S> {
    pub fn new(block: &'a PreparedBlock, state: &'a S, codes: &'a CodeCache) -> Self {
        let mut last: AHashMap<Address, TxnIndex> = AHashMap::with_capacity(block.senders.len());
        let previous_of_sender = block
            .senders
            .iter()
            .enumerate()
            .map(|(i, sender)| last.insert(*sender, i as TxnIndex))
            .collect();
        EvmTask {
            block,
            state,
            codes,
            previous_of_sender,
        }
    }

    /// Pre-block code by hash, as this thread's own copy: the block's shared cache analyses
    /// each contract once, and each worker then keeps a private copy (its own reference count)
    /// in [`THREAD_CODES`], so that workers running calls to the same contract never write
    /// the same cache line: a clone of a shared `Bytecode` is an atomic increment on one
    /// count that every core would bounce on every call.
    fn base_code(&self, hash: B256) -> Result<Bytecode, ReadError> {
        if hash == KECCAK_EMPTY || hash == B256::ZERO {
            return Ok(Bytecode::default());
        }
        let cached = THREAD_CODES.with(|codes| {
            codes
                .try_borrow()
                .ok()
                .and_then(|codes| codes.get(&hash).cloned())
        });
        if let Some(code) = cached {
            return Ok(code);
        }
        let shared = self.shared_code(hash)?;
        let private = private_copy(&shared);
        THREAD_CODES.with(|codes| {
            if let Ok(mut codes) = codes.try_borrow_mut() {
                // Code by hash never changes, so entries stay valid across blocks; the bound
                // only caps the memory of a long-lived thread.
                if codes.len() >= THREAD_CODES_MAX {
                    codes.clear();
                }
                codes.insert(hash, private.clone());
            }
        });
        Ok(private)
    }

    /// Pre-block code by hash from the shared cache, analysed once.
    fn shared_code(&self, hash: B256) -> Result<Bytecode, ReadError> {
        if let Ok(codes) = self.codes.0.read() {
            if let Some(code) = codes.get(&hash) {
                return Ok(code.clone());
            }
        }
        let bytes = self
            .state
            .code_by_hash(&hash)
            .map_err(|e| ReadError::Storage(e.to_string()))?
            .ok_or_else(|| ReadError::Storage(format!("code {hash} missing from the store")))?;
        let code = bytecode_from_bytes(bytes);
        if let Ok(mut codes) = self.codes.0.write() {
            codes.insert(hash, code.clone());
        }
        Ok(code)
    }
}

/// Most contracts one thread keeps private copies of (see [`EvmTask::base_code`]).
const THREAD_CODES_MAX: usize = 4096;

thread_local! {
    /// This thread's own copies of pre-block code, by code hash.
    static THREAD_CODES: RefCell<AHashMap<B256, Bytecode>> = RefCell::new(AHashMap::new());
}

/// A copy of `code` behind its own reference count, without analysing it again: the padded
/// bytes are shared (read-only, never counted per call) and the jump table is copied.
fn private_copy(code: &Bytecode) -> Bytecode {
    match code.legacy_jump_table() {
        Some(jump_table) if !code.bytecode().is_empty() => {
            // SAFETY: bytes, original length and jump table are those of an analysed legacy
            // bytecode, which already satisfies `new_analyzed`'s conditions (padded bytes, a
            // jump table covering the original length, not empty).
            unsafe {
                Bytecode::new_analyzed(code.bytecode().clone(), code.len(), jump_table.clone())
            }
        }
        _ => bytecode_from_bytes(code.original_bytes()),
    }
}

/// Whether a code hash stands for code (revm and some stores write zero for "none").
pub(crate) fn has_code(code_hash: B256) -> bool {
    code_hash != KECCAK_EMPTY && code_hash != B256::ZERO
}

/// Raw code to revm bytecode without panicking on a malformed delegation designator.
pub fn bytecode_from_bytes(bytes: Bytes) -> Bytecode {
    if bytes.starts_with(&[0xEF, 0x01]) {
        Bytecode::new_raw_checked(bytes.clone()).unwrap_or_else(|_| Bytecode::new_legacy(bytes))
    } else {
        Bytecode::new_legacy(bytes)
    }
}

fn store_error(e: parex_state::StateError) -> ReadError {
    ReadError::Storage(e.0)
}

impl<S: StateViewRef> BlockTask for EvmTask<'_, S> {
    type Key = EvmKey;
    type Value = EvmValue;
    type Delta = U256;
    type Output = TxOutput;
    type Error = String;

    fn len(&self) -> usize {
        self.block.txs.len()
    }

    fn read_base(&self, key: &EvmKey) -> Result<Option<EvmValue>, ReadError> {
        match key {
            EvmKey::Account(address) => {
                Ok(self
                    .state
                    .account(address)
                    .map_err(store_error)?
                    .map(|info| {
                        EvmValue::Account(AccountValue {
                            balance: info.balance,
                            nonce: info.nonce,
                            storage_reset: None,
                            has_code: has_code(info.code_hash),
                        })
                    }))
            }
            EvmKey::Code(address) => {
                let Some(info) = self.state.account(address).map_err(store_error)? else {
                    return Ok(None);
                };
                if info.code_hash == KECCAK_EMPTY || info.code_hash == B256::ZERO {
                    return Ok(None);
                }
                let bytecode = self.base_code(info.code_hash)?;
                Ok(Some(EvmValue::Code(CodeValue {
                    hash: info.code_hash,
                    bytecode,
                })))
            }
            EvmKey::Storage(address, slot) => {
                let value = self.state.storage(address, slot).map_err(store_error)?;
                Ok(Some(EvmValue::Storage(SlotValue {
                    value,
                    written_by: None,
                })))
            }
            EvmKey::BlockHash(number) => Ok(Some(EvmValue::BlockHash(
                self.state.block_hash(*number).map_err(store_error)?,
            ))),
        }
    }

    fn execute<R>(
        &self,
        txn_idx: TxnIndex,
        view: &mut R,
    ) -> TaskOutcome<EvmKey, EvmValue, U256, TxOutput, String>
    where
        R: ReadView<Key = EvmKey, Value = EvmValue>,
    {
        let Some(tx) = self.block.txs.get(txn_idx as usize) else {
            return TaskOutcome::Invalid(format!("no transaction {txn_idx}"));
        };
        if let Some(reason) = &tx.static_error {
            return TaskOutcome::Invalid(reason.clone());
        }
        let mut db = ViewDb::new(view, self);
        // A plain transfer credits `to` lazily only if `to` has no code now (a 7702
        // delegation is code): then nothing in the transaction can observe `to`'s balance.
        if let Some(to) = tx.lazy_to {
            match db.read_code(to) {
                Ok(None) => db.lazy_to = Some(to),
                Ok(Some(_)) => {}
                Err(_) => return TaskOutcome::ReadFailed,
            }
        }
        let ran = catch_unwind(AssertUnwindSafe(|| run_revm(self.block, tx, &mut db)));
        if db.failed {
            return TaskOutcome::ReadFailed;
        }
        if let Some(reason) = db.store_error.take() {
            return TaskOutcome::Invalid(format!("state store error: {reason}"));
        }
        let (result, state, fee) = match ran {
            Ok(ran) => ran,
            // A speculative incarnation may see an inconsistent state; validation decides.
            Err(_) => return TaskOutcome::Invalid("revm panicked".into()),
        };
        let result = match result {
            Ok(result) => result,
            Err(EVMError::Transaction(e)) => return TaskOutcome::Invalid(e.to_string()),
            Err(EVMError::Header(e)) => {
                return TaskOutcome::Invalid(format!("invalid header: {e}"))
            }
            Err(e) => return TaskOutcome::Invalid(e.to_string()),
        };
        let writes = self.write_set(txn_idx, &db, &state, fee);
        recycle_state(state);
        recycle_reads(std::mem::take(&mut db.accounts));
        let success = result.is_success();
        let gas_used = result.tx_gas_used();
        let contract_address = result.created_address();
        let output = TxOutput {
            success,
            gas_used,
            logs: result.into_logs(),
            contract_address,
            tx_type: tx.tx_type,
            fee,
        };
        TaskOutcome::Done { writes, output }
    }

    fn dependency_hint(&self, txn_idx: TxnIndex) -> Option<TxnIndex> {
        self.previous_of_sender
            .get(txn_idx as usize)
            .copied()
            .flatten()
    }

    /// The next call to the contract this transaction called, within [`SUCCESSOR_WINDOW`]
    /// transactions: after a write of a hot key (a pair's reserves, a popular recipient's
    /// balance), the next call to the same contract most likely reads it. A call with the
    /// same selector and first argument (a transfer to the same recipient) is preferred to the
    /// first call to the contract: of the token transfers that follow one to a hot recipient,
    /// the next one to that recipient is the one that reads its balance. Looked up only when
    /// asked (a few times per hot key), not built for every block.
    fn successor_hint(&self, txn_idx: TxnIndex) -> Option<TxnIndex> {
        let txs = &self.block.txs;
        let this = &txs.get(txn_idx as usize)?.env;
        let TxKind::Call(target) = this.kind else {
            return None;
        };
        let head = this.data.get(..CALL_HEAD);
        let from = txn_idx as usize + 1;
        let window = &txs[from..(from + SUCCESSOR_WINDOW).min(txs.len())];
        let mut first_call = None;
        for (offset, tx) in window.iter().enumerate() {
            if tx.env.kind != TxKind::Call(target) {
                continue;
            }
            if head.is_some() && tx.env.data.get(..CALL_HEAD) == head {
                return Some((from + offset) as TxnIndex);
            }
            first_call.get_or_insert((from + offset) as TxnIndex);
        }
        first_call
    }

    fn apply_delta(_key: &EvmKey, base: Option<&EvmValue>, delta: &U256) -> EvmValue {
        match base {
            Some(EvmValue::Account(account)) => EvmValue::Account(AccountValue {
                balance: account.balance.saturating_add(*delta),
                ..*account
            }),
            // A credit to an absent account creates it; whatever storage it had before it
            // disappeared is gone.
            _ => EvmValue::Account(AccountValue {
                balance: *delta,
                nonce: 0,
                storage_reset: Some(STORAGE_STALE),
                has_code: false,
            }),
        }
    }
}

impl<S: StateViewRef> EvmTask<'_, S> {
    /// Turns revm's post-transaction state into writes: only accounts whose value changed,
    /// code that changed, slots that changed, then the lazy credits.
    fn write_set<R>(
        &self,
        txn_idx: TxnIndex,
        db: &ViewDb<'_, '_, '_, R, S>,
        state: &EvmState,
        fee: U256,
    ) -> WriteSet<EvmKey, EvmValue, U256> {
        let spurious_dragon = self.block.spec.is_enabled_in(SpecId::SPURIOUS_DRAGON);
        let beneficiary = self.block.env.beneficiary;
        let mut beneficiary_done = false;
        let mut writes: WriteSet<EvmKey, EvmValue, U256> = Vec::with_capacity(state.len() + 2);
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            if Some(*address) == db.lazy_to {
                // The mock started at zero, so its balance is exactly the credit.
                let mut credit = account.info.balance;
                if *address == beneficiary {
                    beneficiary_done = true;
                    credit = credit.saturating_add(fee);
                }
                if !credit.is_zero() {
                    writes.push((EvmKey::Account(*address), WriteOp::Delta(credit)));
                }
                continue;
            }
            let read = db.accounts.get(address);
            let (read_value, mode) = read
                .and_then(|r| r.account)
                .unwrap_or((None, StorageMode::Normal));
            let read_code_hash = read
                .and_then(|r| r.code.as_ref())
                .and_then(|c| c.as_ref())
                .map_or(KECCAK_EMPTY, |c| c.hash);

            let destroyed = account.is_selfdestructed();
            // EIP-161: a touched empty account is deleted (revm leaves this to the database).
            let emptied = !destroyed && spurious_dragon && account.is_empty();
            let storage_reset = if account.is_created() {
                Some(txn_idx)
            } else {
                match mode {
                    StorageMode::Normal => None,
                    StorageMode::ValidFrom(reset) => Some(reset),
                    StorageMode::AllZero => Some(txn_idx),
                }
            };
            let live = AccountValue {
                balance: account.info.balance,
                nonce: account.info.nonce,
                storage_reset,
                has_code: has_code(account.info.code_hash),
            };
            let is_beneficiary = *address == beneficiary;
            beneficiary_done |= is_beneficiary;
            // The fee lands before EIP-161 clearing (so a credited beneficiary survives) and
            // before self-destructs (so it burns with the account), as in the spec.
            let final_value = if destroyed {
                None
            } else if is_beneficiary && !fee.is_zero() {
                Some(AccountValue {
                    balance: live.balance.saturating_add(fee),
                    ..live
                })
            } else if emptied {
                None
            } else {
                Some(live)
            };
            let removed = final_value.is_none();
            let account_op = (final_value != read_value)
                .then(|| WriteOp::Write(final_value.map(EvmValue::Account)));
            if let Some(op) = account_op {
                writes.push((EvmKey::Account(*address), op));
            }

            let new_code_hash = if removed {
                KECCAK_EMPTY
            } else {
                account.info.code_hash
            };
            let new_code_hash = if new_code_hash == B256::ZERO {
                KECCAK_EMPTY
            } else {
                new_code_hash
            };
            if new_code_hash != read_code_hash {
                let value = if new_code_hash == KECCAK_EMPTY {
                    None
                } else {
                    account
                        .info
                        .code
                        .clone()
                        .filter(|c| !c.is_empty())
                        .map(|bytecode| {
                            EvmValue::Code(CodeValue {
                                hash: new_code_hash,
                                bytecode,
                            })
                        })
                };
                writes.push((EvmKey::Code(*address), WriteOp::Write(value)));
            }

            if !removed {
                for (slot, value) in account.storage.iter() {
                    if value.is_changed() {
                        writes.push((
                            EvmKey::Storage(*address, *slot),
                            WriteOp::Write(Some(EvmValue::Storage(SlotValue {
                                value: value.present_value,
                                written_by: Some(txn_idx),
                            }))),
                        ));
                    }
                }
            }
        }
        if !beneficiary_done && !fee.is_zero() {
            writes.push((EvmKey::Account(beneficiary), WriteOp::Delta(fee)));
        }
        writes
    }
}

/// How a storage read of an account is answered, from what the account read showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageMode {
    /// No reset in this block: the slot's value as read.
    Normal,
    /// Reset by this transaction: values written before it are stale (zero).
    ValidFrom(TxnIndex),
    /// The account is absent after a deletion in this block, or was re-created by a lazy
    /// credit: every slot is zero.
    AllZero,
}

/// What an incarnation read about one address.
#[derive(Debug, Default)]
struct AddressReads {
    account: Option<(Option<AccountValue>, StorageMode)>,
    /// `Some(None)`: read, no code.
    code: Option<Option<CodeValue>>,
}

/// revm's database for one incarnation: every read goes through the engine's view.
struct ViewDb<'v, 't, 'a, R, S: StateViewRef> {
    view: &'v mut R,
    task: &'t EvmTask<'a, S>,
    /// The lazily credited recipient: revm sees an empty account, the engine a delta.
    lazy_to: Option<Address>,
    accounts: AHashMap<Address, AddressReads>,
    /// A read through the view failed: the outcome is `ReadFailed`.
    failed: bool,
    /// The store failed outside the view (code by an unknown hash).
    store_error: Option<String>,
}

/// The database error revm carries back when a read failed; the details stay in the view.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ViewDbError(String);

impl DBErrorMarker for ViewDbError {}

impl<'v, 't, 'a, R, S> ViewDb<'v, 't, 'a, R, S>
where
    R: ReadView<Key = EvmKey, Value = EvmValue>,
    S: StateViewRef,
{
    fn new(view: &'v mut R, task: &'t EvmTask<'a, S>) -> Self {
        ViewDb {
            view,
            task,
            lazy_to: None,
            accounts: take_reads(),
            failed: false,
            store_error: None,
        }
    }

    fn read(&mut self, key: EvmKey) -> Result<ReadValue<EvmValue>, ViewDbError> {
        self.view.read(&key).map_err(|e| {
            self.failed = true;
            ViewDbError(e.to_string())
        })
    }

    fn read_code(&mut self, address: Address) -> Result<Option<CodeValue>, ViewDbError> {
        if let Some(code) = self.accounts.get(&address).and_then(|r| r.code.as_ref()) {
            return Ok(code.clone());
        }
        let code = match self.read(EvmKey::Code(address))?.value {
            Some(EvmValue::Code(code)) => Some(code),
            _ => None,
        };
        self.accounts.entry(address).or_default().code = Some(code.clone());
        Ok(code)
    }

    fn read_account(
        &mut self,
        address: Address,
    ) -> Result<(Option<AccountValue>, StorageMode), ViewDbError> {
        if let Some(account) = self.accounts.get(&address).and_then(|r| r.account) {
            return Ok(account);
        }
        let read = self.read(EvmKey::Account(address))?;
        let entry = match read.value {
            Some(EvmValue::Account(account)) => {
                let mode = match account.storage_reset {
                    None => StorageMode::Normal,
                    Some(STORAGE_STALE) => StorageMode::AllZero,
                    Some(reset) => StorageMode::ValidFrom(reset),
                };
                (Some(account), mode)
            }
            // Absent: deleted earlier in this block (storage gone with it) or never existed.
            _ if read.writer.is_some() => (None, StorageMode::AllZero),
            _ => (None, StorageMode::Normal),
        };
        self.accounts.entry(address).or_default().account = Some(entry);
        Ok(entry)
    }
}

impl<R, S> Database for ViewDb<'_, '_, '_, R, S>
where
    R: ReadView<Key = EvmKey, Value = EvmValue>,
    S: StateViewRef,
{
    type Error = ViewDbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, ViewDbError> {
        if Some(address) == self.lazy_to {
            return Ok(Some(AccountInfo::default()));
        }
        let (account, _) = self.read_account(address)?;
        // An absent account, or one without code, needs no second read.
        let Some(account) = account else {
            return Ok(None);
        };
        if !account.has_code {
            return Ok(Some(AccountInfo::new(
                account.balance,
                account.nonce,
                KECCAK_EMPTY,
                Bytecode::default(),
            )));
        }
        let info = match self.read_code(address)? {
            Some(code) => {
                AccountInfo::new(account.balance, account.nonce, code.hash, code.bytecode)
            }
            None => AccountInfo::new(
                account.balance,
                account.nonce,
                KECCAK_EMPTY,
                Bytecode::default(),
            ),
        };
        Ok(Some(info))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, ViewDbError> {
        for reads in self.accounts.values() {
            if let Some(Some(code)) = &reads.code {
                if code.hash == code_hash {
                    return Ok(code.bytecode.clone());
                }
            }
        }
        self.task.base_code(code_hash).map_err(|e| {
            self.store_error = Some(e.to_string());
            ViewDbError(e.to_string())
        })
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, ViewDbError> {
        let (_, mode) = self.read_account(address)?;
        if mode == StorageMode::AllZero {
            // Depends only on the account read, which validation re-checks.
            return Ok(U256::ZERO);
        }
        let slot = match self.read(EvmKey::Storage(address, index))?.value {
            Some(EvmValue::Storage(slot)) => slot,
            _ => return Ok(U256::ZERO),
        };
        match mode {
            StorageMode::ValidFrom(reset) if slot.written_by.is_none_or(|w| w < reset) => {
                Ok(U256::ZERO)
            }
            _ => Ok(slot.value),
        }
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, ViewDbError> {
        match self.read(EvmKey::BlockHash(number))?.value {
            Some(EvmValue::BlockHash(hash)) => Ok(hash),
            _ => Ok(B256::ZERO),
        }
    }
}

/// The mainnet handler with two hooks replaced: the beneficiary is not touched (its fee is
/// recorded for the task to emit as a lazy credit), and frame creation adds the EIP-7610
/// storage collision that revm does not check (see [`storage_collision`]).
struct LazyBeneficiaryHandler<EVM> {
    coinbase_gas_price: u128,
    fee: Cell<U256>,
    _evm: PhantomData<fn() -> EVM>,
}

impl<EVM> LazyBeneficiaryHandler<EVM> {
    fn new(coinbase_gas_price: u128) -> Self {
        LazyBeneficiaryHandler {
            coinbase_gas_price,
            fee: Cell::new(U256::ZERO),
            _evm: PhantomData,
        }
    }
}

impl<EVM> Handler for LazyBeneficiaryHandler<EVM>
where
    EVM: EvmTr<
        Context: ContextTr<Db = AttachedDb, Journal: JournalTr<State = EvmState>>,
        Frame = EthFrame<EthInterpreter>,
    >,
{
    type Evm = EVM;
    type Error = EVMError<<<EVM::Context as ContextTr>::Db as Database>::Error, InvalidTransaction>;
    type HaltReason = HaltReason;

    fn reward_beneficiary(
        &self,
        _evm: &mut Self::Evm,
        exec_result: &mut <<Self::Evm as EvmTr>::Frame as FrameTr>::FrameResult,
    ) -> Result<(), Self::Error> {
        // Same amount as revm's post_execution::reward_beneficiary; the price already drops
        // the burnt base fee after London.
        let gas = exec_result.gas();
        let used = gas.used().saturating_sub(gas.reservoir());
        self.fee
            .set(U256::from(self.coinbase_gas_price).saturating_mul(U256::from(used)));
        Ok(())
    }

    /// revm's loop, with every frame created through [`init_frame`].
    fn run_exec_loop(
        &mut self,
        evm: &mut Self::Evm,
        first_frame_input: FrameInit,
    ) -> Result<FrameResult, Self::Error> {
        if let Some(result) = init_frame(evm, first_frame_input)? {
            return Ok(result);
        }
        loop {
            let result = match evm.frame_run()? {
                ItemOrResult::Item(init) => match init_frame(evm, init)? {
                    Some(result) => result,
                    None => continue,
                },
                ItemOrResult::Result(result) => result,
            };
            if let Some(result) = evm.frame_return_result(result)? {
                return Ok(result);
            }
        }
    }
}

/// `evm.frame_init(init)`: `None` when a frame was pushed, else the frame's immediate result.
///
/// EIP-7610 (retroactive to every fork): creating a contract at an address with non-empty
/// storage fails like a nonce or code collision. revm checks nonce and code only, so when
/// [`storage_collision`] finds the case, the target's nonce is set to 1 in the journal for the
/// duration of `frame_init`, where revm then fails the creation with `CreateCollision` exactly
/// as for a nonce collision (caller nonce bumped, target warmed, the frame's gas consumed), and
/// put back to 0 right after. A collision reverts its checkpoint, so no journal entry ever
/// records the borrowed nonce.
fn init_frame<EVM>(
    evm: &mut EVM,
    init: FrameInit,
) -> Result<Option<FrameResult>, EVMError<ViewDbError, InvalidTransaction>>
where
    EVM: EvmTr<
        Context: ContextTr<Db = AttachedDb, Journal: JournalTr<State = EvmState>>,
        Frame = EthFrame<EthInterpreter>,
    >,
{
    let collides = match &init.frame_input {
        FrameInput::Create(inputs) => storage_collision(evm.ctx(), init.depth, inputs)?,
        _ => None,
    };
    let set_nonce = |evm: &mut EVM, target: &Address, nonce: u64| {
        if let Some(account) = evm.ctx().journal_mut().evm_state_mut().get_mut(target) {
            account.info.nonce = nonce;
        }
    };
    if let Some(target) = &collides {
        set_nonce(evm, target, 1);
    }
    let result = match evm.frame_init(init) {
        Ok(ItemOrResult::Item(_)) => Ok(None),
        Ok(ItemOrResult::Result(result)) => Ok(Some(result)),
        Err(e) => Err(e),
    };
    if let Some(target) = &collides {
        set_nonce(evm, target, 0);
    }
    Ok(result?)
}

/// The address a create frame would collide with under EIP-7610 but not under revm's own
/// rule: the creation gets past revm's earlier checks (depth, caller balance, caller nonce,
/// in its order), and the target has nonce 0, no code and storage. Loads the target into the
/// journal (warm), as revm does next in the same case.
fn storage_collision<CTX>(
    ctx: &mut CTX,
    depth: usize,
    inputs: &CreateInputs,
) -> Result<Option<Address>, ViewDbError>
where
    CTX: ContextTr<Db = AttachedDb, Journal: JournalTr<State = EvmState>>,
{
    if depth > CALL_STACK_LIMIT as usize {
        return Ok(None);
    }
    let journal = ctx.journal_mut();
    let caller = journal.load_account(inputs.caller())?;
    let (balance, nonce) = (caller.data.info.balance, caller.data.info.nonce);
    if balance < inputs.value() || nonce == u64::MAX {
        return Ok(None);
    }
    let target = inputs.created_address(nonce);
    let account = journal.load_account(target)?;
    if account.data.info.nonce != 0 || account.data.info.code_hash != KECCAK_EMPTY {
        return Ok(None); // revm's own collision, or no collision
    }
    Ok(journal.db_mut().has_storage(target)?.then_some(target))
}

/// The object-safe face of one incarnation's database, so that the per-thread EVM below can
/// hold it without naming the view's type or lifetime.
trait DbBackend {
    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, ViewDbError>;
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, ViewDbError>;
    fn storage(&mut self, address: Address, index: U256) -> Result<U256, ViewDbError>;
    fn block_hash(&mut self, number: u64) -> Result<B256, ViewDbError>;
    /// EIP-7610: whether `address` holds storage that a creation there would collide with.
    fn has_storage(&mut self, address: Address) -> Result<bool, ViewDbError>;
}

impl<R, S> DbBackend for ViewDb<'_, '_, '_, R, S>
where
    R: ReadView<Key = EvmKey, Value = EvmValue>,
    S: StateViewRef,
{
    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, ViewDbError> {
        Database::basic(self, address)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, ViewDbError> {
        Database::code_by_hash(self, code_hash)
    }
    fn storage(&mut self, address: Address, index: U256) -> Result<U256, ViewDbError> {
        Database::storage(self, address, index)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, ViewDbError> {
        Database::block_hash(self, number)
    }
    /// Storage can only come from pre-block state: within a block an account gains storage
    /// only by running code, which (from Spurious Dragon) gives it a nonce, so it collides
    /// anyway. A reset in this block (deletion, re-creation, a lazy credit bringing it back)
    /// wiped the pre-block storage. The account read that tells the two apart is recorded, so
    /// validation re-checks it; pre-block state never changes.
    fn has_storage(&mut self, address: Address) -> Result<bool, ViewDbError> {
        let (_, mode) = self.read_account(address)?;
        if mode != StorageMode::Normal {
            return Ok(false);
        }
        self.task.state.has_storage(&address).map_err(|e| {
            self.store_error = Some(e.to_string());
            ViewDbError(e.to_string())
        })
    }
}

/// revm's database inside the cached EVM: the running incarnation's [`ViewDb`] while a
/// transaction runs, nothing otherwise.
struct AttachedDb(Option<NonNull<dyn DbBackend>>);

impl AttachedDb {
    fn get(&mut self) -> Result<&mut dyn DbBackend, ViewDbError> {
        match &mut self.0 {
            // SAFETY: `run_revm` attaches a pointer to a database that outlives the run and
            // detaches it before returning; an EVM that panicked mid-run is dropped, never
            // reused, so no dangling pointer is ever dereferenced.
            Some(db) => Ok(unsafe { db.as_mut() }),
            None => Err(ViewDbError("no database attached".into())),
        }
    }

    fn has_storage(&mut self, address: Address) -> Result<bool, ViewDbError> {
        self.get()?.has_storage(address)
    }
}

impl Database for AttachedDb {
    type Error = ViewDbError;
    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, ViewDbError> {
        self.get()?.basic(address)
    }
    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, ViewDbError> {
        self.get()?.code_by_hash(code_hash)
    }
    fn storage(&mut self, address: Address, index: U256) -> Result<U256, ViewDbError> {
        self.get()?.storage(address, index)
    }
    fn block_hash(&mut self, number: u64) -> Result<B256, ViewDbError> {
        self.get()?.block_hash(number)
    }
}

type CachedCtx = Context<RevmBlockEnv, TxEnv, CfgEnv, AttachedDb, Journal<AttachedDb>, ()>;
type CachedEvm = Evm<
    CachedCtx,
    (),
    EthInstructions<EthInterpreter, CachedCtx>,
    EthPrecompiles,
    EthFrame<EthInterpreter>,
>;

fn new_evm(block: &PreparedBlock) -> Box<CachedEvm> {
    let mut inner = JournalInner::<JournalEntry>::new();
    inner.set_spec_id(block.spec);
    Box::new(Evm {
        ctx: Context {
            block: block.block_env.clone(),
            tx: TxEnv::default(),
            cfg: block.cfg_env.clone(),
            journaled_state: Journal::new_with_inner(AttachedDb(None), inner),
            chain: (),
            local: LocalContext::default(),
            error: Ok(()),
        },
        inspector: (),
        instruction: EthInstructions::new_mainnet_with_spec(block.spec),
        precompiles: EthPrecompiles::new(block.spec),
        frame_stack: FrameStack::new_prealloc(8),
    })
}

thread_local! {
    /// One EVM per worker thread, reused by every incarnation it runs, as plain revm reuses
    /// one EVM for a whole block: instruction tables, frames, memory and maps stay allocated.
    static EVM: RefCell<Option<Box<CachedEvm>>> = const { RefCell::new(None) };
    /// The read cache of the last incarnation, cleared, for its allocation.
    static READS: RefCell<AHashMap<Address, AddressReads>> = RefCell::new(AHashMap::new());
}

fn recycle_state(mut state: EvmState) {
    state.clear();
    EVM.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            if let Some(evm) = slot.as_mut() {
                if evm.ctx.journaled_state.inner.state.capacity() < state.capacity() {
                    evm.ctx.journaled_state.inner.state = state;
                }
            }
        }
    });
}

fn take_reads() -> AHashMap<Address, AddressReads> {
    READS.with(|cell| {
        cell.try_borrow_mut()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    })
}

fn recycle_reads(mut reads: AHashMap<Address, AddressReads>) {
    reads.clear();
    READS.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = reads;
        }
    });
}

type RunResult = (
    Result<ExecutionResult<HaltReason>, EVMError<ViewDbError, InvalidTransaction>>,
    EvmState,
    U256,
);

/// Runs one transaction on the thread's EVM over `db`; returns its result, state and fee.
fn run_revm<'d>(
    block: &PreparedBlock,
    tx: &PreparedTx,
    db: &'d mut (dyn DbBackend + 'd),
) -> RunResult {
    // Taken out of the thread-local for the run: a panic drops it instead of leaving it
    // half-used (and attached) for the next incarnation.
    let cached = EVM.with(|cell| cell.try_borrow_mut().ok().and_then(|mut slot| slot.take()));
    let mut evm = match cached {
        Some(evm) if evm.instruction.spec == block.spec => evm,
        _ => new_evm(block),
    };
    evm.ctx.block.clone_from(&block.block_env);
    evm.ctx.cfg.clone_from(&block.cfg_env);
    evm.ctx.tx.clone_from(&tx.env);
    evm.ctx.error = Ok(());
    evm.ctx.journaled_state.inner.set_eip7708_config(
        block.cfg_env.is_eip7708_disabled(),
        block.cfg_env.is_eip8246_delayed_clear_disabled(),
    );
    let attached: NonNull<dyn DbBackend + 'd> = NonNull::from(db);
    // SAFETY: only the lifetime is erased; the pointer is detached below, before `db`'s
    // borrow ends (see `AttachedDb::get`).
    let attached: NonNull<dyn DbBackend> = unsafe { std::mem::transmute(attached) };
    evm.ctx.journaled_state.database = AttachedDb(Some(attached));
    let mut handler = LazyBeneficiaryHandler::new(tx.coinbase_gas_price);
    let result = handler.run(&mut *evm);
    let state = evm.ctx.journaled_state.inner.finalize();
    evm.ctx.journaled_state.database = AttachedDb(None);
    EVM.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = Some(evm);
        }
    });
    (result, state, handler.fee.get())
}
