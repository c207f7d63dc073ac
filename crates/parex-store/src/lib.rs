//! The node's embedded, crash-safe store, on [redb](https://docs.rs/redb).
//!
//! redb is a pure-Rust embedded key-value store with ACID transactions over copy-on-write
//! B-trees: a write transaction either commits whole (its new roots are published by one
//! checksummed header swap, after an fsync with [`Durability::Immediate`]) or leaves no trace.
//! parex commits each block — its record, its transaction index and its state changes — in
//! ONE write transaction ([`Store::commit_block`]), so a crash (SIGKILL, power loss) between
//! two blocks leaves the store at the last committed block, never at half a block.
//!
//! ```text
//!   accounts      address(20)              -> balance(32) nonce(8) code_hash(32)
//!   storage       address(20) slot(32)     -> value(32)          (zero values are absent)
//!   codes         code_hash(32)            -> code
//!   block_hashes  number                   -> hash               (BLOCKHASH, hash lookups)
//!   block_numbers hash(32)                 -> number
//!   blocks        number                   -> record             (opaque to the store)
//!   transactions  tx_hash(32)              -> number(8) index(4)
//!   meta          name                     -> bytes              ("head" and the caller's)
//! ```
//!
//! The block record is opaque: the node encodes header, transactions and receipts as it
//! likes. The state side is typed: [`StoreView`] (a read transaction, a consistent snapshot)
//! implements [`parex_state::StateViewRef`], so the engine executes on the persistent store
//! exactly as it does on [`parex_state::InMemoryState`].
//!
//! Invariants:
//! - S1: the `head` meta entry, the block at `head`, its transaction index and the state
//!   after it are written by the same transaction; a reader sees all of them or none.
//! - S2: the state tables hold the state after block `head`, nothing more.
//! - S3: blocks are committed in order: `commit_block(n)` requires `head == n - 1` (or an empty
//!   store and `n == 0`), so a replayed or skipped block is an error, not a silent overwrite.

use parex_primitives::{
    keccak256, AccountInfo, Address, Bytes, StateChanges, B256, KECCAK_EMPTY, U256,
};
use parex_state::{InMemoryState, StateError, StateViewRef};
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition,
};
use std::path::Path;

const ACCOUNTS: TableDefinition<[u8; 20], [u8; 72]> = TableDefinition::new("accounts");
const STORAGE: TableDefinition<[u8; 52], [u8; 32]> = TableDefinition::new("storage");
const CODES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("codes");
const BLOCK_HASHES: TableDefinition<u64, [u8; 32]> = TableDefinition::new("block_hashes");
const BLOCK_NUMBERS: TableDefinition<[u8; 32], u64> = TableDefinition::new("block_numbers");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const TRANSACTIONS: TableDefinition<[u8; 32], [u8; 12]> = TableDefinition::new("transactions");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const HEAD: &str = "head";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened, read or written.
    #[error("store {0}")]
    Db(String),
    /// The caller asked for something the store's invariants forbid.
    #[error("{0}")]
    Usage(String),
}

fn db_err(context: &'static str) -> impl Fn(redb::Error) -> StoreError {
    move |e| StoreError::Db(format!("{context}: {e}"))
}

macro_rules! db {
    ($context:literal, $expr:expr) => {
        $expr.map_err(|e| db_err($context)(e.into()))
    };
}

/// One block as the store commits it.
#[derive(Debug, Clone, Copy)]
pub struct BlockCommit<'a> {
    pub number: u64,
    pub hash: B256,
    /// The node's encoding of the block (header, transactions, receipts).
    pub record: &'a [u8],
    /// The block's transaction hashes, in block order.
    pub tx_hashes: &'a [B256],
    /// What the block did to the state.
    pub changes: &'a StateChanges,
    /// Extra `meta` entries to write with the block (the genesis writes the chain config).
    pub meta: &'a [(&'a str, &'a [u8])],
}

/// The embedded store. Cheap to share behind an `Arc`; redb serialises writers itself.
pub struct Store {
    db: Database,
}

fn account_key(address: &Address) -> [u8; 20] {
    address.0 .0
}

fn storage_key(address: &Address, slot: &U256) -> [u8; 52] {
    let mut key = [0u8; 52];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    key
}

fn encode_account(info: &AccountInfo) -> [u8; 72] {
    let mut out = [0u8; 72];
    out[..32].copy_from_slice(&info.balance.to_be_bytes::<32>());
    out[32..40].copy_from_slice(&info.nonce.to_be_bytes());
    out[40..].copy_from_slice(info.code_hash.as_slice());
    out
}

fn decode_account(raw: &[u8; 72]) -> AccountInfo {
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&raw[32..40]);
    AccountInfo {
        balance: U256::from_be_slice(&raw[..32]),
        nonce: u64::from_be_bytes(nonce),
        code_hash: B256::from_slice(&raw[40..]),
    }
}

impl Store {
    /// Opens the store at `path`, creating it (and its tables) when absent. A store left by a
    /// crash opens at its last committed transaction (redb recovers on open).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let db = Database::create(path)
            .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))?;
        let store = Store { db };
        // Create every table once, so readers never meet a missing one.
        let txn = db!("begin", store.db.begin_write())?;
        {
            db!("create", txn.open_table(ACCOUNTS))?;
            db!("create", txn.open_table(STORAGE))?;
            db!("create", txn.open_table(CODES))?;
            db!("create", txn.open_table(BLOCK_HASHES))?;
            db!("create", txn.open_table(BLOCK_NUMBERS))?;
            db!("create", txn.open_table(BLOCKS))?;
            db!("create", txn.open_table(TRANSACTIONS))?;
            db!("create", txn.open_table(META))?;
        }
        db!("commit", txn.commit())?;
        Ok(store)
    }

    /// The number of the last committed block; `None` for an empty store.
    pub fn head(&self) -> Result<Option<u64>, StoreError> {
        let txn = db!("read", self.db.begin_read())?;
        let meta = db!("read", txn.open_table(META))?;
        let head = db!("read", meta.get(HEAD))?;
        Ok(head.map(|g| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(g.value());
            u64::from_be_bytes(raw)
        }))
    }

    /// Commits one block (S1, S3): its record, hash, transaction index, state changes and
    /// `meta` entries, in one durable write transaction. Nothing is written on error.
    pub fn commit_block(&self, block: &BlockCommit<'_>) -> Result<(), StoreError> {
        // S3: the head moves one block at a time.
        let expected = match self.head()? {
            None => 0,
            Some(head) => head + 1,
        };
        if block.number != expected {
            return Err(StoreError::Usage(format!(
                "block {} does not follow the store's head (expected block {expected})",
                block.number
            )));
        }
        // S1: everything below is one write transaction; it is durable (fsync) when `commit`
        // returns, and an error or a crash before that leaves no trace of it.
        let mut txn = db!("begin", self.db.begin_write())?;
        db!("durability", txn.set_durability(Durability::Immediate))?;
        {
            // S2: the state tables move from the state after `head` to the state after
            // `number`, by the block's own changes.
            let mut accounts = db!("open", txn.open_table(ACCOUNTS))?;
            let mut storage = db!("open", txn.open_table(STORAGE))?;
            let mut codes = db!("open", txn.open_table(CODES))?;
            for (address, change) in block.changes {
                if let Some(code) = change.code.as_ref().filter(|c| !c.is_empty()) {
                    db!("write", codes.insert(keccak256(code).0, code.as_ref()))?;
                }
                if change.storage_cleared || change.info.is_none() {
                    let from = storage_key(address, &U256::ZERO);
                    let to = storage_key(address, &U256::MAX);
                    db!("write", storage.retain_in(from..=to, |_, _| false))?;
                }
                match &change.info {
                    None => {
                        db!("write", accounts.remove(account_key(address)))?;
                    }
                    Some(info) => {
                        db!(
                            "write",
                            accounts.insert(account_key(address), encode_account(info))
                        )?;
                        for (slot, value) in &change.storage {
                            let key = storage_key(address, slot);
                            if value.is_zero() {
                                db!("write", storage.remove(key))?;
                            } else {
                                db!("write", storage.insert(key, value.to_be_bytes::<32>()))?;
                            }
                        }
                    }
                }
            }
            let mut hashes = db!("open", txn.open_table(BLOCK_HASHES))?;
            db!("write", hashes.insert(block.number, block.hash.0))?;
            let mut numbers = db!("open", txn.open_table(BLOCK_NUMBERS))?;
            db!("write", numbers.insert(block.hash.0, block.number))?;
            let mut blocks = db!("open", txn.open_table(BLOCKS))?;
            db!("write", blocks.insert(block.number, block.record))?;
            let mut transactions = db!("open", txn.open_table(TRANSACTIONS))?;
            for (index, hash) in block.tx_hashes.iter().enumerate() {
                let mut location = [0u8; 12];
                location[..8].copy_from_slice(&block.number.to_be_bytes());
                location[8..].copy_from_slice(&(index as u32).to_be_bytes());
                db!("write", transactions.insert(hash.0, location))?;
            }
            let mut meta = db!("open", txn.open_table(META))?;
            for (name, value) in block.meta {
                if *name == HEAD {
                    return Err(StoreError::Usage("meta name \"head\" is reserved".into()));
                }
                db!("write", meta.insert(*name, *value))?;
            }
            db!(
                "write",
                meta.insert(HEAD, block.number.to_be_bytes().as_slice())
            )?;
        }
        db!("commit", txn.commit())?;
        Ok(())
    }

    /// The record of block `number`.
    pub fn block(&self, number: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = db!("read", self.db.begin_read())?;
        let blocks = db!("read", txn.open_table(BLOCKS))?;
        Ok(db!("read", blocks.get(number))?.map(|g| g.value().to_vec()))
    }

    /// The number of the block whose hash is `hash`.
    pub fn block_number(&self, hash: &B256) -> Result<Option<u64>, StoreError> {
        let txn = db!("read", self.db.begin_read())?;
        let numbers = db!("read", txn.open_table(BLOCK_NUMBERS))?;
        Ok(db!("read", numbers.get(hash.0))?.map(|g| g.value()))
    }

    /// `(block number, index)` of the transaction whose hash is `hash`.
    pub fn transaction(&self, hash: &B256) -> Result<Option<(u64, u32)>, StoreError> {
        let txn = db!("read", self.db.begin_read())?;
        let transactions = db!("read", txn.open_table(TRANSACTIONS))?;
        Ok(db!("read", transactions.get(hash.0))?.map(|g| {
            let raw = g.value();
            let mut number = [0u8; 8];
            number.copy_from_slice(&raw[..8]);
            let mut index = [0u8; 4];
            index.copy_from_slice(&raw[8..]);
            (u64::from_be_bytes(number), u32::from_be_bytes(index))
        }))
    }

    /// A `meta` entry written with some block.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = db!("read", self.db.begin_read())?;
        let meta = db!("read", txn.open_table(META))?;
        Ok(db!("read", meta.get(name))?.map(|g| g.value().to_vec()))
    }

    /// A consistent read-only snapshot of the state after the head block (S1): later commits
    /// do not change what it reads.
    pub fn view(&self) -> Result<StoreView, StoreError> {
        let txn = db!("read", self.db.begin_read())?;
        Ok(StoreView {
            accounts: db!("read", txn.open_table(ACCOUNTS))?,
            storage: db!("read", txn.open_table(STORAGE))?,
            codes: db!("read", txn.open_table(CODES))?,
            block_hashes: db!("read", txn.open_table(BLOCK_HASHES))?,
            _txn: txn,
        })
    }

    /// The whole state after the head block, in memory: the node's hot copy on start.
    pub fn load_state(&self) -> Result<InMemoryState, StoreError> {
        let view = self.view()?;
        let mut state = InMemoryState::new();
        let mut codes = std::collections::HashMap::new();
        for item in db!("read", view.codes.iter())? {
            let (hash, code) = db!("read", item)?;
            codes.insert(
                B256::from(hash.value()),
                Bytes::copy_from_slice(code.value()),
            );
        }
        for item in db!("read", view.accounts.iter())? {
            let (address, raw) = db!("read", item)?;
            let address = Address::from(address.value());
            let info = decode_account(&raw.value());
            let code = if info.code_hash == KECCAK_EMPTY {
                None
            } else {
                Some(codes.get(&info.code_hash).cloned().ok_or_else(|| {
                    StoreError::Db(format!(
                        "account {address} names code {} that the store lacks",
                        info.code_hash
                    ))
                })?)
            };
            state.insert_account(address, info.balance, info.nonce, code);
        }
        for item in db!("read", view.storage.iter())? {
            let (key, value) = db!("read", item)?;
            let key = key.value();
            state.insert_storage(
                Address::from_slice(&key[..20]),
                U256::from_be_slice(&key[20..]),
                U256::from_be_bytes(value.value()),
            );
        }
        for item in db!("read", view.block_hashes.iter())? {
            let (number, hash) = db!("read", item)?;
            state.insert_block_hash(number.value(), B256::from(hash.value()));
        }
        Ok(state)
    }
}

/// A read transaction over the state tables: a snapshot that the engine reads through
/// [`StateViewRef`], from many threads at once.
pub struct StoreView {
    accounts: ReadOnlyTable<[u8; 20], [u8; 72]>,
    storage: ReadOnlyTable<[u8; 52], [u8; 32]>,
    codes: ReadOnlyTable<[u8; 32], &'static [u8]>,
    block_hashes: ReadOnlyTable<u64, [u8; 32]>,
    // Keeps the snapshot pinned for as long as the view lives.
    _txn: ReadTransaction,
}

fn state_err(e: impl std::fmt::Display) -> StateError {
    StateError(format!("store: {e}"))
}

impl StateViewRef for StoreView {
    fn account(&self, address: &Address) -> Result<Option<AccountInfo>, StateError> {
        Ok(self
            .accounts
            .get(account_key(address))
            .map_err(state_err)?
            .map(|g| decode_account(&g.value())))
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        Ok(self
            .storage
            .get(storage_key(address, slot))
            .map_err(state_err)?
            .map(|g| U256::from_be_bytes(g.value()))
            .unwrap_or_default())
    }

    fn code_by_hash(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        if *code_hash == KECCAK_EMPTY {
            return Ok(Some(Bytes::new()));
        }
        Ok(self
            .codes
            .get(code_hash.0)
            .map_err(state_err)?
            .map(|g| Bytes::copy_from_slice(g.value())))
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        Ok(self
            .block_hashes
            .get(number)
            .map_err(state_err)?
            .map(|g| B256::from(g.value()))
            .unwrap_or_default())
    }

    fn has_storage(&self, address: &Address) -> Result<bool, StateError> {
        let from = storage_key(address, &U256::ZERO);
        let to = storage_key(address, &U256::MAX);
        let mut range = self.storage.range(from..=to).map_err(state_err)?;
        Ok(range.next().is_some())
    }
}
