//! Decoding and sender recovery: raw envelopes to revm transactions, once per block.

use crate::env::{revm_block_env, revm_cfg_env, spec_id};
use crate::BlockError;
use alloy_consensus::{Transaction as _, TxEip4844, TxEip4844Variant, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_eips::eip7702::{RecoveredAuthority, RecoveredAuthorization, SignedAuthorization};
use parex_blockstm::workers::on_workers;
use parex_primitives::{keccak256, Address, BlockEnv, Bytes, Fork, TxIndex, B256, U256};
use revm::context::either::Either;
use revm::context::{BlockEnv as RevmBlockEnv, CfgEnv, TxEnv};
use revm::context_interface::Transaction as _;
use revm::primitives::hardfork::SpecId;
use revm::primitives::TxKind;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::Message;

/// secp256k1n / 2: the largest `s` allowed after Homestead (EIP-2) and in 7702 authorizations.
pub(crate) const SECP256K1N_HALF: U256 = U256::from_be_bytes([
    0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x5D, 0x57, 0x6E, 0x73, 0x57, 0xA4, 0x50, 0x1D, 0xDF, 0xE9, 0x2F, 0x46, 0x68, 0x1B, 0x20, 0xA0,
]);

/// Fewest transactions a worker recovers: a recovery costs about 40 µs, and waking a
/// parked helper about 50 µs on a 2-vCPU VM (a spinning one, 1 µs), so a share of four
/// gains even when the helper was asleep. Fewer transactions recover on the calling thread.
const RECOVERY_SHARE_MIN: usize = 4;

/// One decoded, recovered transaction, ready for revm.
#[derive(Debug, Clone)]
pub(crate) struct PreparedTx {
    pub env: TxEnv,
    pub hash: B256,
    pub tx_type: u8,
    /// Blob gas this transaction consumes (EIP-4844).
    pub blob_gas: u64,
    /// Fee per gas unit paid to the beneficiary: the priority part after London.
    pub coinbase_gas_price: u128,
    /// `Some(to)` when the transaction is a plain value transfer that may credit `to` lazily,
    /// subject to `to` having no code at execution time (see the crate docs).
    pub lazy_to: Option<Address>,
    /// Why the transaction is invalid whatever the state (wrong chain id, ...).
    pub static_error: Option<String>,
}

/// A block decoded and recovered, with its revm environment: everything but the state.
///
/// [`crate::execute_block`] builds one and executes it; benchmarks build it once to time the
/// execution alone.
#[derive(Debug, Clone)]
pub struct PreparedBlock {
    pub(crate) env: BlockEnv,
    pub(crate) spec: SpecId,
    pub(crate) block_env: RevmBlockEnv,
    pub(crate) cfg_env: CfgEnv,
    pub(crate) txs: Vec<PreparedTx>,
    pub(crate) senders: Vec<Address>,
}

impl PreparedBlock {
    /// Decodes `raw_transactions` and recovers their senders on up to `threads` threads.
    pub fn new(
        env: &BlockEnv,
        raw_transactions: &[Bytes],
        threads: usize,
    ) -> Result<Self, BlockError> {
        let spec = spec_id(env.fork);
        let block_env = revm_block_env(env);
        let cfg_env = revm_cfg_env(env);
        let n = raw_transactions.len();
        let threads = threads.min(n / RECOVERY_SHARE_MIN).max(1);
        let prepared: Vec<Result<(PreparedTx, Address), BlockError>> = if threads == 1 {
            raw_transactions
                .iter()
                .enumerate()
                .map(|(i, raw)| prepare_one(env, &block_env, i as TxIndex, raw))
                .collect()
        } else {
            // Contiguous chunks, one per worker, the first on the calling thread, which then
            // executes it from a warm cache, the others on the helper threads the calling
            // thread keeps between blocks (no global pool is touched).
            let chunk = n.div_ceil(threads);
            let chunks: Vec<&[Bytes]> = raw_transactions.chunks(chunk).collect();
            let block_env = &block_env;
            on_workers(chunks.len(), |c| {
                chunks[c]
                    .iter()
                    .enumerate()
                    .map(|(k, raw)| prepare_one(env, block_env, (c * chunk + k) as TxIndex, raw))
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .enumerate()
            .flat_map(|(c, part)| {
                part.unwrap_or_else(|_| {
                    vec![Err(BlockError::Decode {
                        index: (c * chunk) as TxIndex,
                        reason: "panic during decoding".into(),
                    })]
                })
            })
            .collect()
        };
        let mut txs = Vec::with_capacity(n);
        let mut senders = Vec::with_capacity(n);
        for item in prepared {
            let (tx, sender) = item?;
            txs.push(tx);
            senders.push(sender);
        }
        Ok(PreparedBlock {
            env: env.clone(),
            spec,
            block_env,
            cfg_env,
            txs,
            senders,
        })
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The block of transaction `index` alone (same environment), or `None` past the end:
    /// for executing a block one transaction at a time without decoding it again.
    pub fn single(&self, index: usize) -> Option<PreparedBlock> {
        Some(PreparedBlock {
            env: self.env.clone(),
            spec: self.spec,
            block_env: self.block_env.clone(),
            cfg_env: self.cfg_env.clone(),
            txs: vec![self.txs.get(index)?.clone()],
            senders: vec![*self.senders.get(index)?],
        })
    }

    /// Blob gas the block's transactions consume (EIP-4844).
    pub fn blob_gas_used(&self) -> u64 {
        self.txs.iter().map(|t| t.blob_gas).sum()
    }

    /// The block environment the block was prepared for.
    pub fn env(&self) -> &BlockEnv {
        &self.env
    }

    /// Each transaction's recovered sender, in block order.
    pub fn senders(&self) -> &[Address] {
        &self.senders
    }

    /// Each transaction's hash, in block order.
    pub fn tx_hashes(&self) -> Vec<B256> {
        self.txs.iter().map(|t| t.hash).collect()
    }

    /// The revm transactions, senders filled in: for running plain revm on the same block.
    pub fn revm_txs(&self) -> impl Iterator<Item = &TxEnv> {
        self.txs.iter().map(|t| &t.env)
    }

    /// The revm block environment the adapter uses.
    pub fn revm_block_env(&self) -> &RevmBlockEnv {
        &self.block_env
    }

    /// The revm configuration the adapter uses.
    pub fn revm_cfg_env(&self) -> &CfgEnv {
        &self.cfg_env
    }
}

fn prepare_one(
    env: &BlockEnv,
    block_env: &RevmBlockEnv,
    index: TxIndex,
    raw: &Bytes,
) -> Result<(PreparedTx, Address), BlockError> {
    let envelope = TxEnvelope::decode_2718_exact(raw).map_err(|e| BlockError::Decode {
        index,
        reason: e.to_string(),
    })?;
    let sig_err = |reason: String| BlockError::Signature { index, reason };
    let signature = *envelope.signature();
    if env.fork >= Fork::Homestead && signature.s() > SECP256K1N_HALF {
        return Err(sig_err("s above secp256k1n/2 (EIP-2)".into()));
    }
    let sighash = envelope.signature_hash();
    let sender =
        recover_address(signature.r(), signature.s(), signature.v(), &sighash).map_err(sig_err)?;
    // The hash of a transaction is the keccak of its EIP-2718 encoding: the bytes we hold.
    let hash = keccak256(raw);
    let tx_type = envelope.tx_type() as u8;

    let mut tx = TxEnv {
        tx_type,
        caller: sender,
        gas_limit: envelope.gas_limit(),
        gas_price: envelope.max_fee_per_gas(),
        kind: envelope.kind(),
        value: envelope.value(),
        data: envelope.input().clone(),
        nonce: envelope.nonce(),
        chain_id: envelope.chain_id(),
        access_list: envelope.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: envelope.max_priority_fee_per_gas(),
        blob_hashes: Vec::new(),
        max_fee_per_blob_gas: 0,
        authorization_list: Vec::new(),
    };
    match &envelope {
        // Legacy and EIP-2930: `max_fee_per_gas` is the gas price and there is no priority
        // fee, as set above; EIP-1559 needs nothing more either.
        TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) | TxEnvelope::Eip1559(_) => {}
        TxEnvelope::Eip4844(signed) => {
            // A block carries blob transactions without their sidecar; the network form
            // (blobs, commitments, proofs) belongs to the mempool.
            if matches!(signed.tx(), TxEip4844Variant::TxEip4844WithSidecar(_)) {
                return Err(BlockError::Decode {
                    index,
                    reason: "blob transaction in its network form (with blobs) inside a block"
                        .into(),
                });
            }
            let inner: &TxEip4844 = signed.tx().as_ref();
            tx.blob_hashes = inner.blob_versioned_hashes.clone();
            tx.max_fee_per_blob_gas = inner.max_fee_per_blob_gas;
        }
        TxEnvelope::Eip7702(signed) => {
            // Recovered here, in parallel, rather than by revm on every incarnation.
            tx.authorization_list = signed
                .tx()
                .authorization_list
                .iter()
                .map(|auth| Either::Right(recover_authorization(auth)))
                .collect();
        }
    }

    let mut static_error = None;
    if let Some(chain_id) = tx.chain_id {
        if chain_id != env.chain_id {
            static_error = Some(format!(
                "chain id {chain_id} does not match expected {}",
                env.chain_id
            ));
        } else if env.fork < Fork::SpuriousDragon {
            static_error = Some("EIP-155 chain id before Spurious Dragon".into());
        }
    }

    let basefee = block_env.basefee as u128;
    let effective = tx.effective_gas_price(basefee);
    let coinbase_gas_price = if env.fork >= Fork::London {
        effective.saturating_sub(basefee)
    } else {
        effective
    };
    let blob_gas = tx.blob_hashes.len() as u64 * revm::primitives::eip4844::GAS_PER_BLOB;

    // Statically eligible for a lazy credit: a plain value transfer to someone else, outside
    // the precompile range, not a 7702 transaction (its authorizations could give `to` code).
    let lazy_to = match tx.kind {
        TxKind::Call(to)
            if !tx.value.is_zero()
                && tx.data.is_empty()
                && to != sender
                && tx_type != 4
                && !is_precompile_like(&to) =>
        {
            Some(to)
        }
        _ => None,
    };

    Ok((
        PreparedTx {
            env: tx,
            hash,
            tx_type,
            blob_gas,
            coinbase_gas_price,
            lazy_to,
            static_error,
        },
        sender,
    ))
}

/// Addresses whose first 18 bytes are zero: precompiles, present and future.
pub(crate) fn is_precompile_like(address: &Address) -> bool {
    address.0[..18].iter().all(|b| *b == 0)
}

/// Recovers the signer of `hash` with libsecp256k1.
pub(crate) fn recover_address(
    r: U256,
    s: U256,
    odd_y: bool,
    hash: &B256,
) -> Result<Address, String> {
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&r.to_be_bytes::<32>());
    compact[32..].copy_from_slice(&s.to_be_bytes::<32>());
    let recid = if odd_y {
        RecoveryId::One
    } else {
        RecoveryId::Zero
    };
    let signature =
        RecoverableSignature::from_compact(&compact, recid).map_err(|e| e.to_string())?;
    let public = signature
        .recover_ecdsa(Message::from_digest(hash.0))
        .map_err(|e| e.to_string())?;
    Ok(address_of_public(&public))
}

pub(crate) fn address_of_public(public: &secp256k1::PublicKey) -> Address {
    let uncompressed = public.serialize_uncompressed();
    Address::from_slice(&keccak256(&uncompressed[1..])[12..])
}

fn recover_authorization(auth: &SignedAuthorization) -> RecoveredAuthorization {
    let authority = if auth.y_parity() > 1 || auth.s() > SECP256K1N_HALF {
        RecoveredAuthority::Invalid
    } else {
        match recover_address(
            auth.r(),
            auth.s(),
            auth.y_parity() == 1,
            &auth.signature_hash(),
        ) {
            Ok(address) => RecoveredAuthority::Valid(address),
            Err(_) => RecoveredAuthority::Invalid,
        }
    };
    RecoveredAuthorization::new_unchecked(auth.inner().clone(), authority)
}
