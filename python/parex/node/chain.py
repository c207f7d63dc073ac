"""
The chain: the persistent store, the hot in-memory state in front of it, and block building.

A block is built in four steps, the last two under the chain's lock:

1. execute the candidate transactions with the parallel engine on the hot state; a
   transaction the engine rejects (its index is named) is dropped and the rest re-executed;
2. apply the changes to the hot state and compute the state root, receipts root, logs bloom
   and transactions root, then seal the header (alloy ``Header``: hash and RLP);
3. commit record, transaction index and state changes to the store in ONE durable write
   transaction (redb, fsync before commit returns);
4. publish the block: only now can RPC see its receipts.

A crash before step 3 completes loses the block whole (nobody saw a receipt of it); after it,
the block is on disk. If the store fails at step 3 the hot state is ahead of the disk, so the
chain refuses to build further (``Chain.failed``) and the node must be restarted.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _core
from .._core import BlockResult, State, StateRootTracker, Store
from ..engine import Address, BlockEnv, Hash32
from .genesis import FORK, Genesis

EMPTY_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
EMPTY_REQUESTS_HASH = bytes.fromhex(
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
"""sha256 of nothing: the EIP-7685 requests hash of a block without requests."""
BASE_FEE_CHANGE_DENOMINATOR = 8
ELASTICITY_MULTIPLIER = 2
BLOB_TARGET_GAS = 6 * 131072
"""Prague's target blob gas per block (EIP-7691)."""
RECORD_CACHE = 256
"""Decoded block records kept in memory (the head and recent blocks serve most reads)."""


class ChainError(RuntimeError):
    """The chain cannot go on (the store failed, or it was opened with another genesis)."""


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    tx_type: int
    success: bool
    gas_used: int
    cumulative_gas_used: int
    logs: tuple[tuple[Address, tuple[Hash32, ...], bytes], ...]
    contract_address: Address | None
    effective_gas_price: int


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """A committed block: header fields, transactions and receipts."""

    number: int
    hash: Hash32
    parent_hash: Hash32
    timestamp: int
    beneficiary: Address
    gas_limit: int
    gas_used: int
    base_fee: int
    state_root: Hash32
    transactions_root: Hash32
    receipts_root: Hash32
    logs_bloom: bytes
    mix_hash: Hash32
    extra_data: bytes
    blob_gas_used: int
    excess_blob_gas: int
    size: int
    transactions: tuple[bytes, ...]
    tx_hashes: tuple[Hash32, ...]
    senders: tuple[Address, ...]
    receipts: tuple[ReceiptRecord, ...]
    parent_beacon_block_root: Hash32 = bytes(32)

    def encode(self) -> bytes:
        h = bytes.hex
        return json.dumps(
            {
                "number": self.number,
                "hash": h(self.hash),
                "parent_hash": h(self.parent_hash),
                "timestamp": self.timestamp,
                "beneficiary": h(self.beneficiary),
                "gas_limit": self.gas_limit,
                "gas_used": self.gas_used,
                "base_fee": self.base_fee,
                "state_root": h(self.state_root),
                "transactions_root": h(self.transactions_root),
                "receipts_root": h(self.receipts_root),
                "logs_bloom": h(self.logs_bloom),
                "mix_hash": h(self.mix_hash),
                "extra_data": h(self.extra_data),
                "blob_gas_used": self.blob_gas_used,
                "excess_blob_gas": self.excess_blob_gas,
                "size": self.size,
                "parent_beacon_block_root": h(self.parent_beacon_block_root),
                "transactions": [h(t) for t in self.transactions],
                "tx_hashes": [h(t) for t in self.tx_hashes],
                "senders": [h(s) for s in self.senders],
                "receipts": [
                    [
                        r.tx_type,
                        r.success,
                        r.gas_used,
                        r.cumulative_gas_used,
                        [[h(a), [h(t) for t in topics], h(d)] for a, topics, d in r.logs],
                        h(r.contract_address) if r.contract_address else None,
                        r.effective_gas_price,
                    ]
                    for r in self.receipts
                ],
            },
            separators=(",", ":"),
        ).encode()

    @staticmethod
    def decode(raw: bytes) -> BlockRecord:
        d: dict[str, Any] = json.loads(raw)
        b = bytes.fromhex
        return BlockRecord(
            number=d["number"],
            hash=b(d["hash"]),
            parent_hash=b(d["parent_hash"]),
            timestamp=d["timestamp"],
            beneficiary=b(d["beneficiary"]),
            gas_limit=d["gas_limit"],
            gas_used=d["gas_used"],
            base_fee=d["base_fee"],
            state_root=b(d["state_root"]),
            transactions_root=b(d["transactions_root"]),
            receipts_root=b(d["receipts_root"]),
            logs_bloom=b(d["logs_bloom"]),
            mix_hash=b(d["mix_hash"]),
            extra_data=b(d["extra_data"]),
            blob_gas_used=d["blob_gas_used"],
            excess_blob_gas=d["excess_blob_gas"],
            size=d["size"],
            parent_beacon_block_root=b(d.get("parent_beacon_block_root", "00" * 32)),
            transactions=tuple(b(t) for t in d["transactions"]),
            tx_hashes=tuple(b(t) for t in d["tx_hashes"]),
            senders=tuple(b(s) for s in d["senders"]),
            receipts=tuple(
                ReceiptRecord(
                    tx_type=r[0],
                    success=r[1],
                    gas_used=r[2],
                    cumulative_gas_used=r[3],
                    logs=tuple(
                        (b(a), tuple(b(t) for t in topics), b(data)) for a, topics, data in r[4]
                    ),
                    contract_address=b(r[5]) if r[5] else None,
                    effective_gas_price=r[6],
                )
                for r in d["receipts"]
            ),
        )


def next_base_fee(parent: BlockRecord) -> int:
    """EIP-1559: the base fee of the block after ``parent``."""
    target = parent.gas_limit // ELASTICITY_MULTIPLIER
    if target == 0 or parent.gas_used == target:
        return parent.base_fee
    if parent.gas_used > target:
        delta = parent.base_fee * (parent.gas_used - target) // target // BASE_FEE_CHANGE_DENOMINATOR
        return parent.base_fee + max(delta, 1)
    delta = parent.base_fee * (target - parent.gas_used) // target // BASE_FEE_CHANGE_DENOMINATOR
    return max(parent.base_fee - delta, 0)


def next_excess_blob_gas(parent: BlockRecord) -> int:
    """EIP-4844: the excess blob gas of the block after ``parent``."""
    return max(parent.excess_blob_gas + parent.blob_gas_used - BLOB_TARGET_GAS, 0)


@dataclass(frozen=True, slots=True)
class Built:
    """What building one block did."""

    block: BlockRecord
    dropped: tuple[tuple[bytes, str], ...]
    """Transactions (raw) that the engine rejected, with the reason."""
    result: BlockResult | None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent executing, applying + state root, sealing (header, record) and committing."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A block executed on top of the head but not committed (an Engine API payload)."""

    block: BlockRecord
    result: BlockResult | None
    post_state: State
    dropped: tuple[tuple[bytes, str], ...]


def _seal(fields: dict[str, Any]) -> tuple[bytes, bytes]:
    return _core.seal_header(fields)


class Chain:
    """
    The store, the hot state and the head. Thread-safe: one builder (the sequencer) and any
    number of readers; readers take ``lock`` for a consistent (state, head) pair.
    """

    def __init__(self, store: Store, state: State, head: BlockRecord, config: dict[str, Any], threads: int):
        self.store = store
        self.state = state
        self.head = head
        self.chain_id: int = config["chainId"]
        self.gas_limit: int = config["gasLimit"]
        self.coinbase: Address = bytes.fromhex(config["coinbase"][2:])
        self.threads = threads
        # The state root follows the hot state incrementally (only changed paths re-hashed).
        self.roots = StateRootTracker(state)
        self.lock = threading.RLock()
        # Serialises block writers (the sequencer, the Engine API); readers take `lock` only.
        self.write_lock = threading.RLock()
        self.failed: str | None = None
        self._records: OrderedDict[int, BlockRecord] = OrderedDict()
        self._cache(head)

    # -- opening -------------------------------------------------------------------------

    @staticmethod
    def open(data_dir: Path, genesis: Genesis, *, threads: int = 2) -> Chain:
        """
        Opens the chain in ``data_dir``, writing the genesis block when the store is empty.
        A store that holds a chain keeps it (its own chain id and gas limit); only a genesis
        that differs in its state root is refused.
        """
        data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(data_dir / "chain.redb")
        head_number = store.head()
        if head_number is None:
            state = genesis.state()
            genesis_root = _core.state_root(state)
            fields: dict[str, Any] = {
                "parent_hash": bytes(32),
                "beneficiary": genesis.coinbase,
                "state_root": genesis_root,
                "transactions_root": EMPTY_ROOT,
                "receipts_root": EMPTY_ROOT,
                "logs_bloom": bytes(256),
                "number": 0,
                "gas_limit": genesis.gas_limit,
                "gas_used": 0,
                "timestamp": genesis.timestamp,
                "extra_data": genesis.extra_data,
                "mix_hash": bytes(32),
                "base_fee_per_gas": genesis.base_fee,
                "withdrawals_root": EMPTY_ROOT,
                "blob_gas_used": 0,
                "excess_blob_gas": 0,
                "parent_beacon_block_root": bytes(32),
                "requests_hash": EMPTY_REQUESTS_HASH,
            }
            block_hash, rlp = _seal(fields)
            record = BlockRecord(
                number=0,
                hash=block_hash,
                parent_hash=bytes(32),
                timestamp=genesis.timestamp,
                beneficiary=genesis.coinbase,
                gas_limit=genesis.gas_limit,
                gas_used=0,
                base_fee=genesis.base_fee,
                state_root=genesis_root,
                transactions_root=EMPTY_ROOT,
                receipts_root=EMPTY_ROOT,
                logs_bloom=bytes(256),
                mix_hash=bytes(32),
                extra_data=genesis.extra_data,
                blob_gas_used=0,
                excess_blob_gas=0,
                size=len(rlp) + 3,
                transactions=(),
                tx_hashes=(),
                senders=(),
                receipts=(),
            )
            state.set_block_hash(0, block_hash)
            store.commit_block(
                0,
                block_hash,
                record.encode(),
                [],
                genesis=state,
                meta={"config": genesis.to_json()},
            )
            head = record
        else:
            state = store.load_state()
            raw = store.block(head_number)
            if raw is None:
                raise ChainError(f"store {data_dir} names head block {head_number} but lacks it")
            head = BlockRecord.decode(raw)
        raw_config = store.meta("config")
        if raw_config is None:
            raise ChainError(f"store {data_dir} has no chain config")
        config = json.loads(raw_config)
        genesis_raw = store.block(0)
        assert genesis_raw is not None
        stored_genesis = BlockRecord.decode(genesis_raw)
        if head_number is not None and stored_genesis.state_root != _core.state_root(genesis.state()):
            raise ChainError(
                f"{data_dir} holds a chain with another genesis (state root "
                f"0x{stored_genesis.state_root.hex()}); use another --data-dir"
            )
        return Chain(store, state, head, config, threads)

    # -- reads ---------------------------------------------------------------------------

    def _cache(self, record: BlockRecord) -> None:
        self._records[record.number] = record
        self._records.move_to_end(record.number)
        while len(self._records) > RECORD_CACHE:
            self._records.popitem(last=False)

    def block(self, number: int) -> BlockRecord | None:
        with self.lock:
            cached = self._records.get(number)
            if cached is not None:
                return cached
            if number > self.head.number:
                return None
        raw = self.store.block(number)
        if raw is None:
            return None
        record = BlockRecord.decode(raw)
        with self.lock:
            self._cache(record)
        return record

    def block_by_hash(self, block_hash: bytes) -> BlockRecord | None:
        number = self.store.block_number(block_hash)
        if number is None or number > self.head.number:
            return None
        return self.block(number)

    def transaction(self, tx_hash: bytes) -> tuple[BlockRecord, int] | None:
        location = self.store.transaction(tx_hash)
        if location is None:
            return None
        number, index = location
        record = self.block(number)
        if record is None:
            return None
        return record, index

    def pending_env(self, timestamp: int | None = None) -> BlockEnv:
        """The environment of the next block (eth_call and estimates run in it)."""
        head = self.head
        return BlockEnv(
            number=head.number + 1,
            timestamp=max(head.timestamp + 1, timestamp if timestamp is not None else int(time.time())),
            beneficiary=self.coinbase,
            base_fee=next_base_fee(head),
            gas_limit=self.gas_limit,
            prevrandao=bytes(32),
            excess_blob_gas=next_excess_blob_gas(head),
            chain_id=self.chain_id,
            fork=FORK,
        )

    # -- building ------------------------------------------------------------------------

    def build_block(self, transactions: list[bytes], timestamp: int | None = None) -> Built:
        """
        The sequencer's step: executes ``transactions`` as the next block (dropping those the
        engine rejects), commits it and makes it the head. The changes are applied to the hot
        state in place (no copy). Raises ``ChainError`` when the store fails.
        """
        with self.write_lock:
            if self.failed:
                raise ChainError(self.failed)
            env = self.pending_env(timestamp)
            started = time.perf_counter()
            txs, result, dropped = self._execute(env, transactions, drop_invalid=True, state=self.state)
            executed = time.perf_counter()
            with self.lock:
                try:
                    if result is not None:
                        self.state.apply(result)
                        self.roots.apply(result)
                    state_root = self.roots.root() if result is not None else self.head.state_root
                    rooted = time.perf_counter()
                    record = self._record(env, txs, result, state_root, bytes(32), b"")
                    self.state.set_block_hash(env.number, record.hash)
                    sealed = time.perf_counter()
                    self._commit(record, result)
                    committed = time.perf_counter()
                except ChainError:
                    raise
                except Exception as e:
                    # The hot state may already hold this block's changes: stop building
                    # rather than serve a state the store does not have.
                    self.failed = f"building block {env.number} failed: {type(e).__name__}: {e}"
                    raise ChainError(self.failed) from e
            timings = {
                "execute": executed - started,
                "apply_and_root": rooted - executed,
                "seal": sealed - rooted,
                "commit": committed - sealed,
            }
            return Built(record, tuple(dropped), result, timings)

    def prepare_block(
        self,
        env: BlockEnv,
        transactions: list[bytes],
        *,
        parent_beacon_block_root: Hash32 = bytes(32),
        extra_data: bytes = b"",
        drop_invalid: bool = False,
    ) -> Prepared:
        """
        Executes a block on top of the head without committing it (Engine API payloads):
        the post-state is a copy. Raises ``_core.TransactionError`` for an invalid
        transaction unless ``drop_invalid``.
        """
        with self.write_lock:
            parent = self.head
            base = self.state.copy()
        txs, result, dropped = self._execute(env, transactions, drop_invalid=drop_invalid, state=base)
        post = base.copy()
        if result is not None:
            post.apply(result)
        state_root = _core.state_root(post) if result is not None else parent.state_root
        record = self._record(env, txs, result, state_root, parent_beacon_block_root, extra_data, parent=parent)
        post.set_block_hash(env.number, record.hash)
        return Prepared(record, result, post, tuple(dropped))

    def commit_prepared(self, prepared: Prepared) -> None:
        """Commits a prepared block whose parent is still the head, and makes it the head."""
        with self.write_lock, self.lock:
            if self.failed:
                raise ChainError(self.failed)
            if prepared.block.parent_hash != self.head.hash:
                raise ChainError(
                    f"block {prepared.block.number} does not extend the head "
                    f"0x{self.head.hash.hex()} (parex keeps one chain and does not reorg)"
                )
            roots = self.roots
            if prepared.result is not None:
                roots.apply(prepared.result)
                if roots.root() != prepared.block.state_root:
                    self.failed = f"state root tracker disagrees with block {prepared.block.number}"
                    raise ChainError(self.failed)
            self._commit(prepared.block, prepared.result)
            self.state = prepared.post_state

    def _execute(
        self, env: BlockEnv, transactions: list[bytes], *, drop_invalid: bool, state: State
    ) -> tuple[list[bytes], BlockResult | None, list[tuple[bytes, str]]]:
        txs = list(transactions)
        dropped: list[tuple[bytes, str]] = []
        while txs:
            try:
                return txs, _core.execute(env, txs, state, threads=self.threads), dropped
            except _core.TransactionError as e:
                if not drop_invalid:
                    raise
                index = e.index if e.index is not None else 0
                dropped.append((txs.pop(index), e.reason or str(e)))
        return txs, None, dropped

    def _record(
        self,
        env: BlockEnv,
        txs: list[bytes],
        result: BlockResult | None,
        state_root: Hash32,
        parent_beacon_block_root: Hash32,
        extra_data: bytes,
        parent: BlockRecord | None = None,
    ) -> BlockRecord:
        parent = parent or self.head
        if result is not None:
            receipts_root = _core.receipts_root(result)
            logs_bloom = _core.logs_bloom(result)
            gas_used = result.gas_used
        else:
            receipts_root = EMPTY_ROOT
            logs_bloom = bytes(256)
            gas_used = 0
        transactions_root = _core.transactions_root(txs) if txs else EMPTY_ROOT
        decoded = [_core.decode_transaction(t, recover=False) for t in txs]
        blob_gas_used = sum(131072 * len(info["blob_versioned_hashes"]) for info in decoded)
        fields: dict[str, Any] = {
            "parent_hash": parent.hash,
            "beneficiary": env.beneficiary,
            "state_root": state_root,
            "transactions_root": transactions_root,
            "receipts_root": receipts_root,
            "logs_bloom": logs_bloom,
            "number": env.number,
            "gas_limit": env.gas_limit,
            "gas_used": gas_used,
            "timestamp": env.timestamp,
            "extra_data": extra_data,
            "mix_hash": env.prevrandao,
            "base_fee_per_gas": env.base_fee,
            "withdrawals_root": EMPTY_ROOT,
            "blob_gas_used": blob_gas_used,
            "excess_blob_gas": env.excess_blob_gas or 0,
            "parent_beacon_block_root": parent_beacon_block_root,
            "requests_hash": EMPTY_REQUESTS_HASH,
        }
        block_hash, rlp = _seal(fields)
        receipts: list[ReceiptRecord] = []
        if result is not None:
            for receipt, info in zip(result.receipts, decoded):
                tip = info["max_priority_fee_per_gas"]
                cap = info["max_fee_per_gas"]
                price = cap if tip is None else min(cap, env.base_fee + tip)
                receipts.append(
                    ReceiptRecord(
                        tx_type=receipt.tx_type,
                        success=receipt.success,
                        gas_used=receipt.gas_used,
                        cumulative_gas_used=receipt.cumulative_gas_used,
                        logs=tuple((log.address, tuple(log.topics), log.data) for log in receipt.logs),
                        contract_address=receipt.contract_address,
                        effective_gas_price=price,
                    )
                )
        return BlockRecord(
            number=env.number,
            hash=block_hash,
            parent_hash=parent.hash,
            timestamp=env.timestamp,
            beneficiary=env.beneficiary,
            gas_limit=env.gas_limit,
            gas_used=gas_used,
            base_fee=env.base_fee,
            state_root=state_root,
            transactions_root=transactions_root,
            receipts_root=receipts_root,
            logs_bloom=logs_bloom,
            mix_hash=env.prevrandao,
            extra_data=extra_data,
            blob_gas_used=blob_gas_used,
            excess_blob_gas=env.excess_blob_gas or 0,
            size=len(rlp) + sum(len(t) for t in txs) + 8,
            transactions=tuple(txs),
            tx_hashes=tuple(result.tx_hashes) if result is not None else (),
            senders=tuple(result.senders) if result is not None else (),
            receipts=tuple(receipts),
            parent_beacon_block_root=parent_beacon_block_root,
        )

    def _commit(self, record: BlockRecord, result: BlockResult | None) -> None:
        """Writes ``record`` (and ``result``'s changes) in one transaction; publishes it."""
        try:
            if result is not None:
                self.store.commit_block(
                    record.number, record.hash, record.encode(), list(record.tx_hashes), result=result
                )
            else:
                self.store.commit_block(record.number, record.hash, record.encode(), [])
        except Exception as e:
            self.failed = f"the store failed to commit block {record.number}: {e}"
            raise ChainError(self.failed) from e
        # N1: published only now that the commit returned (S1); the hot state was changed
        # under `lock`, which readers take, so none saw it ahead of the store either.
        self.head = record
        self._cache(record)


def replay_chain(store: Store, genesis_state: State, *, threads: int = 1) -> State:
    """
    Re-executes every block in ``store`` from ``genesis_state`` (a fresh copy is used) and
    checks each block's state root, receipts root and gas used against its record. Returns
    the state after the head. Raises ``ChainError`` naming the first block that differs.

    This is the crash-safety oracle: whatever the store holds after a crash must be exactly
    what executing its blocks from genesis gives.
    """
    state = genesis_state.copy()
    head = store.head()
    if head is None:
        raise ChainError("the store is empty")
    config = json.loads(store.meta("config") or b"{}")
    genesis_raw = store.block(0)
    assert genesis_raw is not None
    genesis = BlockRecord.decode(genesis_raw)
    if _core.state_root(state) != genesis.state_root:
        raise ChainError("genesis state root differs from the store's genesis block")
    state.set_block_hash(0, genesis.hash)
    for number in range(1, head + 1):
        raw = store.block(number)
        if raw is None:
            raise ChainError(f"block {number} is missing below head {head}")
        record = BlockRecord.decode(raw)
        if record.transactions:
            env = BlockEnv(
                number=record.number,
                timestamp=record.timestamp,
                beneficiary=record.beneficiary,
                base_fee=record.base_fee,
                gas_limit=record.gas_limit,
                prevrandao=record.mix_hash,
                excess_blob_gas=record.excess_blob_gas,
                chain_id=config.get("chainId", 1),
                fork=FORK,
            )
            result = _core.execute(env, list(record.transactions), state, threads=threads)
            state.apply(result)
            if result.gas_used != record.gas_used:
                raise ChainError(f"block {number}: gas used {result.gas_used} != recorded {record.gas_used}")
            if _core.receipts_root(result) != record.receipts_root:
                raise ChainError(f"block {number}: receipts root differs from the record")
        root = _core.state_root(state)
        if root != record.state_root:
            raise ChainError(
                f"block {number}: state root 0x{root.hex()} != recorded 0x{record.state_root.hex()}"
            )
        state.set_block_hash(number, record.hash)
    return state
