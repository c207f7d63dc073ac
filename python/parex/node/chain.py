"""
The chain: the persistent store, the hot in-memory state in front of it, and block building.

Blocks are made and checked by parex-chain, the same code that passes the execution-spec
blockchain tests: the sequencer and the Engine API's payload building call
``_core.build_block`` (system calls, transactions through Block-STM, withdrawals, requests,
every commitment, the sealed header), and ``engine_newPayload`` calls ``_core.import_block``
(header validation against the parent, every commitment checked). A block is made in four
steps, the last two under the chain's lock:

1. build (or import) the block on the hot state, its state root computed incrementally by
   the chain's ``StateRootTracker`` (left unchanged: a rejected block costs nothing); a
   transaction the rules reject (its index is named) is dropped and the block rebuilt;
2. apply the block's changes to the hot state and the tracker;
3. commit record, transaction index and state changes to the store in ONE durable write
   transaction (redb, fsync before commit returns);
4. publish the block: only now can RPC see its receipts.

A crash before step 3 completes loses the block whole (nobody saw a receipt of it); after it,
the block is on disk. If the store fails at step 3 the hot state is ahead of the disk, so the
chain refuses to build further (``Chain.failed``) and the node must be restarted.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _core
from .._core import BlockResult, Header, State, StateRootTracker, Store
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
"""Prague's target blob gas per block (EIP-7691); for the pending environment only."""
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
class Withdrawal:
    """An EIP-4895 withdrawal: ``amount`` in gwei."""

    index: int
    validator_index: int
    address: Address
    amount: int

    def as_tuple(self) -> tuple[int, int, bytes, int]:
        return (self.index, self.validator_index, self.address, self.amount)


@dataclass(frozen=True, slots=True)
class BlockAttributes:
    """What the proposer decides about the next block; parex-chain derives the rest."""

    timestamp: int
    beneficiary: Address
    gas_limit: int
    prev_randao: Hash32 = bytes(32)
    parent_beacon_block_root: Hash32 = bytes(32)
    withdrawals: tuple[Withdrawal, ...] = ()


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
    parent_beacon_block_root: Hash32
    withdrawals: tuple[Withdrawal, ...]
    withdrawals_root: Hash32
    requests_hash: Hash32
    requests: tuple[bytes, ...]
    """EIP-7685 requests (type byte first), empty ones left out."""
    rlp: bytes
    """The whole block's RLP, as parex-chain sealed it (``Header.of_block(rlp)``)."""

    def header(self) -> Header:
        return Header.of_block(self.rlp)

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
                "withdrawals": [[w.index, w.validator_index, h(w.address), w.amount] for w in self.withdrawals],
                "withdrawals_root": h(self.withdrawals_root),
                "requests_hash": h(self.requests_hash),
                "requests": [h(r) for r in self.requests],
                "rlp": h(self.rlp),
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
        if "rlp" not in d:
            raise ChainError(
                "the store was written by a parex before blocks were sealed by parex-chain; "
                "start the node on a new --data-dir"
            )
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
            parent_beacon_block_root=b(d["parent_beacon_block_root"]),
            withdrawals=tuple(Withdrawal(i, v, b(a), amount) for i, v, a, amount in d["withdrawals"]),
            withdrawals_root=b(d["withdrawals_root"]),
            requests_hash=b(d["requests_hash"]),
            requests=tuple(b(r) for r in d["requests"]),
            rlp=b(d["rlp"]),
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
    """Transactions (raw) that the rules rejected, with the reason."""
    result: BlockResult
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent building (execution and state root), applying, recording and committing."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A block built or imported on top of a head but not committed (an Engine API payload)."""

    block: BlockRecord
    result: BlockResult
    dropped: tuple[tuple[bytes, str], ...]


def _reason(err: _core.InvalidBlock) -> str:
    return f"{err.exception}: {err.reason}" if err.exception else str(err)


def record_of(
    imported: _core.ImportedBlock,
    transactions: list[bytes] | None,
    withdrawals: tuple[Withdrawal, ...] | None,
) -> BlockRecord:
    """The store's record of a block parex-chain built or imported (``transactions`` and
    ``withdrawals``: the block's, when the caller has them; else read from its RLP)."""
    if transactions is None:
        transactions = imported.transactions
    if withdrawals is None:
        withdrawals = tuple(Withdrawal(i, v, bytes(a), amount) for i, v, a, amount in imported.withdrawals or [])
    header = imported.header
    result = imported.result
    rlp = imported.rlp
    decoded = [_core.decode_transaction(t, recover=False) for t in transactions]
    base_fee = header.base_fee_per_gas or 0
    receipts: list[ReceiptRecord] = []
    for receipt, info in zip(result.receipts, decoded):
        tip = info["max_priority_fee_per_gas"]
        cap = info["max_fee_per_gas"]
        price = cap if tip is None else min(cap, base_fee + tip)
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
        number=header.number,
        hash=header.hash,
        parent_hash=header.parent_hash,
        timestamp=header.timestamp,
        beneficiary=header.beneficiary,
        gas_limit=header.gas_limit,
        gas_used=header.gas_used,
        base_fee=base_fee,
        state_root=header.state_root,
        transactions_root=header.transactions_root,
        receipts_root=header.receipts_root,
        logs_bloom=header.logs_bloom,
        mix_hash=header.mix_hash,
        extra_data=header.extra_data,
        blob_gas_used=header.blob_gas_used or 0,
        excess_blob_gas=header.excess_blob_gas or 0,
        size=len(rlp),
        transactions=tuple(transactions),
        tx_hashes=tuple(result.tx_hashes),
        senders=tuple(result.senders),
        receipts=tuple(receipts),
        parent_beacon_block_root=header.parent_beacon_block_root or bytes(32),
        withdrawals=withdrawals,
        withdrawals_root=header.withdrawals_root or EMPTY_ROOT,
        requests_hash=header.requests_hash or EMPTY_REQUESTS_HASH,
        requests=tuple(imported.requests or ()),
        rlp=rlp,
    )


class Chain:
    """
    The store, the hot state and the head. Thread-safe: one builder (the sequencer) and any
    number of readers; readers take ``lock`` for a consistent (state, head) pair.
    """

    def __init__(self, store: Store, state: State, head: BlockRecord, config: dict[str, Any], threads: int):
        self.store = store
        self.state = state
        self.head = head
        self.head_header = head.header()
        self.chain_id: int = config["chainId"]
        self.schedule: str = config.get("schedule", FORK)
        self.gas_limit: int = config["gasLimit"]
        self.coinbase: Address = bytes.fromhex(config["coinbase"][2:])
        self.threads = threads
        # The state root follows the hot state incrementally (only changed paths re-hashed);
        # parex-chain commits to a block's root through it without changing it.
        self.roots = StateRootTracker(state)
        self.lock = threading.RLock()
        # Serialises block writers (the sequencer, the Engine API) and every use of `roots`;
        # readers take `lock` only.
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
            header = genesis_header(genesis, state)
            fields = _payload_fields(header)
            fields.update(difficulty=genesis.difficulty, nonce=genesis.nonce)
            with_withdrawals = header.withdrawals_root is not None
            record = BlockRecord(
                number=0,
                hash=header.hash,
                parent_hash=bytes(32),
                timestamp=header.timestamp,
                beneficiary=header.beneficiary,
                gas_limit=header.gas_limit,
                gas_used=0,
                base_fee=header.base_fee_per_gas or 0,
                state_root=header.state_root,
                transactions_root=EMPTY_ROOT,
                receipts_root=EMPTY_ROOT,
                logs_bloom=bytes(256),
                mix_hash=header.mix_hash,
                extra_data=header.extra_data,
                blob_gas_used=0,
                excess_blob_gas=0,
                size=0,
                transactions=(),
                tx_hashes=(),
                senders=(),
                receipts=(),
                parent_beacon_block_root=bytes(32),
                withdrawals=(),
                withdrawals_root=EMPTY_ROOT,
                requests_hash=EMPTY_REQUESTS_HASH,
                requests=(),
                rlp=_core.payload_block(
                    fields,
                    [],
                    withdrawals=[] if with_withdrawals else None,
                    parent_beacon_block_root=header.parent_beacon_block_root,
                    requests=[] if header.requests_hash is not None else None,
                ),
            )
            record = dataclasses.replace(record, size=len(record.rlp))
            if record.header().hash != header.hash:
                raise ChainError("the genesis block does not re-encode to its header (a parex bug)")
            state.set_block_hash(0, header.hash)
            store.commit_block(
                0,
                header.hash,
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
            fork=_core.fork_at(self.schedule, head.number + 1, head.timestamp + 1),
        )

    # -- building ------------------------------------------------------------------------

    def build_block(self, transactions: list[bytes], timestamp: int | None = None) -> Built:
        """
        The sequencer's step: builds the next block from ``transactions`` with parex-chain
        (dropping those the rules reject), commits it and makes it the head. The changes are
        applied to the hot state in place (no copy). Raises ``ChainError`` when the store fails.
        """
        with self.write_lock:
            if self.failed:
                raise ChainError(self.failed)
            head = self.head
            started = time.perf_counter()
            attributes = BlockAttributes(
                timestamp=max(head.timestamp + 1, timestamp if timestamp is not None else int(time.time())),
                beneficiary=self.coinbase,
                gas_limit=self.gas_limit,
            )
            prepared = self._build(transactions, attributes, drop_invalid=True)
            built = time.perf_counter()
            timings = self._commit_prepared(prepared, started=built)
            timings["build"] = built - started
            return Built(prepared.block, prepared.dropped, prepared.result, timings)

    def prepare_block(
        self, transactions: list[bytes], attributes: BlockAttributes, *, drop_invalid: bool = False
    ) -> Prepared:
        """
        Builds a block on top of the head without committing it (Engine API payloads).
        Raises ``_core.InvalidBlock`` for a block the rules reject (an invalid transaction
        unless ``drop_invalid``).
        """
        with self.write_lock:
            return self._build(transactions, attributes, drop_invalid=drop_invalid)

    def import_block(
        self, rlp: bytes, transactions: list[bytes] | None, withdrawals: tuple[Withdrawal, ...] | None
    ) -> Prepared:
        """
        Validates and executes a block (RLP) on top of the head, without committing it
        (``engine_newPayload``). Raises ``_core.InvalidBlock`` naming the rule it breaks, and
        ``ChainError`` when its parent is not the head.
        """
        with self.write_lock:
            head = self.head
            header = Header.of_block(rlp)
            if header.parent_hash != head.hash:
                raise ChainError(
                    f"block {header.number}'s parent 0x{header.parent_hash.hex()} is not the head "
                    f"0x{head.hash.hex()} (block {head.number}); parex keeps one chain and does not reorg"
                )
            imported = _core.import_block(
                rlp,
                self.head_header,
                self.state,
                schedule=self.schedule,
                chain_id=self.chain_id,
                threads=self.threads,
                roots=self.roots,
            )
            return Prepared(record_of(imported, transactions, withdrawals), imported.result, ())

    def import_chain(self, blocks: list[bytes]) -> int:
        """
        Imports and commits ``blocks`` (RLP, in order, the first a child of the head) through
        parex-chain, as a node syncing them would; returns how many were committed. Raises
        ``_core.InvalidBlock`` at the first block the rules reject (the blocks before it stay).
        """
        for rlp in blocks:
            self.commit_prepared(self.import_block(rlp, None, None))
        return len(blocks)

    def _build(
        self, transactions: list[bytes], attributes: BlockAttributes, *, drop_invalid: bool
    ) -> Prepared:
        """Builds on the head with parex-chain, dropping (if told) each transaction it rejects."""
        txs = list(transactions)
        dropped: list[tuple[bytes, str]] = []
        while True:
            try:
                imported = _core.build_block(
                    self.head_header,
                    self.state,
                    txs,
                    schedule=self.schedule,
                    chain_id=self.chain_id,
                    beneficiary=attributes.beneficiary,
                    gas_limit=attributes.gas_limit,
                    timestamp=attributes.timestamp,
                    prev_randao=attributes.prev_randao,
                    parent_beacon_block_root=attributes.parent_beacon_block_root,
                    withdrawals=[w.as_tuple() for w in attributes.withdrawals],
                    threads=self.threads,
                    roots=self.roots,
                )
            except _core.InvalidBlock as e:
                if not drop_invalid or e.index is None or not 0 <= e.index < len(txs):
                    raise
                dropped.append((txs.pop(e.index), _reason(e)))
                continue
            return Prepared(
                record_of(imported, txs, attributes.withdrawals), imported.result, tuple(dropped)
            )

    def commit_prepared(self, prepared: Prepared) -> None:
        """Commits a prepared block whose parent is still the head, and makes it the head."""
        with self.write_lock:
            self._commit_prepared(prepared, started=time.perf_counter())

    def _commit_prepared(self, prepared: Prepared, *, started: float) -> dict[str, float]:
        with self.write_lock, self.lock:
            if self.failed:
                raise ChainError(self.failed)
            record = prepared.block
            if record.parent_hash != self.head.hash:
                raise ChainError(
                    f"block {record.number} does not extend the head "
                    f"0x{self.head.hash.hex()} (parex keeps one chain and does not reorg)"
                )
            try:
                # The block's changes are absolute values: they apply to the head's state in
                # place (no copy), as they did to the state the block was built on.
                self.state.apply(prepared.result)
                self.roots.apply(prepared.result)
                if self.roots.root() != record.state_root:
                    raise ChainError(f"state root tracker disagrees with block {record.number}")
                self.state.set_block_hash(record.number, record.hash)
                applied = time.perf_counter()
                self._commit(record, prepared.result)
                committed = time.perf_counter()
            except ChainError as e:
                self.failed = self.failed or str(e)
                raise
            except Exception as e:
                # The hot state may already hold this block's changes: stop building
                # rather than serve a state the store does not have.
                self.failed = f"committing block {record.number} failed: {type(e).__name__}: {e}"
                raise ChainError(self.failed) from e
            self.head_header = record.header()
            return {"apply_and_root": applied - started, "commit": committed - applied}

    def _commit(self, record: BlockRecord, result: BlockResult) -> None:
        """Writes ``record`` and ``result``'s changes in one transaction; publishes it."""
        try:
            self.store.commit_block(
                record.number, record.hash, record.encode(), list(record.tx_hashes), result=result
            )
        except Exception as e:
            self.failed = f"the store failed to commit block {record.number}: {e}"
            raise ChainError(self.failed) from e
        # N1: published only now that the commit returned (S1); the hot state was changed
        # under `lock`, which readers take, so none saw it ahead of the store either.
        self.head = record
        self._cache(record)


def _payload_fields(header: Header) -> dict[str, Any]:
    return {
        "parent_hash": header.parent_hash,
        "beneficiary": header.beneficiary,
        "state_root": header.state_root,
        "receipts_root": header.receipts_root,
        "logs_bloom": header.logs_bloom,
        "number": header.number,
        "gas_limit": header.gas_limit,
        "gas_used": header.gas_used,
        "timestamp": header.timestamp,
        "extra_data": header.extra_data,
        "mix_hash": header.mix_hash,
        "base_fee_per_gas": header.base_fee_per_gas,
        "blob_gas_used": header.blob_gas_used,
        "excess_blob_gas": header.excess_blob_gas,
    }


def genesis_header(genesis: Genesis, state: State) -> Header:
    """The genesis block's header, as parex-chain makes it for the node's fork."""
    return _core.genesis_header(
        state,
        schedule=genesis.schedule,
        gas_limit=genesis.gas_limit,
        timestamp=genesis.timestamp,
        extra_data=genesis.extra_data,
        beneficiary=genesis.coinbase,
        base_fee=genesis.base_fee,
        mix_hash=genesis.mix_hash,
        difficulty=genesis.difficulty,
        nonce=genesis.nonce,
    )


def replay_chain(store: Store, genesis_state: State, *, threads: int = 1) -> State:
    """
    Re-imports every block in ``store`` from ``genesis_state`` (a fresh copy is used) through
    parex-chain, which checks every commitment of each block's header; checks each record's
    hash against its block. Returns the state after the head. Raises ``ChainError`` naming
    the first block that differs.

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
    parent = genesis.header()
    for number in range(1, head + 1):
        raw = store.block(number)
        if raw is None:
            raise ChainError(f"block {number} is missing below head {head}")
        record = BlockRecord.decode(raw)
        try:
            imported = _core.import_block(
                record.rlp,
                parent,
                state,
                schedule=config.get("schedule", FORK),
                chain_id=config.get("chainId", 1),
                threads=threads,
            )
        except _core.InvalidBlock as e:
            raise ChainError(f"block {number}: {_reason(e)}") from e
        if imported.hash != record.hash:
            raise ChainError(f"block {number}: record hash 0x{record.hash.hex()} is not its block's")
        state.apply(imported.result)
        state.set_block_hash(number, record.hash)
        parent = imported.header
    return state
