"""
The transaction pool: admission checks for ``eth_sendRawTransaction`` and block selection.

Admission (against the head state; the error messages are geth's where geth has one):

- the envelope decodes and its signature recovers (types 0-4, EIP-2 low ``s``);
- its chain id is the node's (pre-EIP-155 legacy transactions carry none and are accepted);
- the nonce is not below the sender's account nonce and at most ``MAX_NONCE_GAP`` above the
  sender's next pending nonce ("nonce too high");
- the sender can pay ``gas × fee cap + value`` on top of what its pending transactions
  already commit;
- the gas limit covers the intrinsic gas and fits in a block;
- the fee cap is at least the next block's base fee; a replacement (same sender and nonce)
  must raise both fee cap and tip by at least ``REPLACEMENT_BUMP_PERCENT``;
- a blob transaction (type 3) comes in its EIP-4844 network form with a sidecar that
  validates (``blobs.validate_sidecar``: counts, versioned hashes, KZG proofs, at most
  ``MAX_BLOBS_PER_TX``), has a ``to``, and a blob fee cap at least the next block's blob base
  fee. The pool keeps the sidecar; blocks get the canonical transaction.

Selection: per sender, transactions run in nonce order starting at the account nonce; a
transaction behind a gap waits. Across senders, the next transaction of each sender competes
by the tip it pays at the block's base fee (highest first, earlier arrival breaks ties), as
geth's price-and-nonce ordering does. A block takes at most the fork's max blobs, and a blob
transaction only while its blob fee cap covers the block's blob base fee.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .. import _core
from ..engine import Address, Hash32
from .blobs import BLOB_PARAMS, GAS_PER_BLOB, MAX_BLOBS_PER_TX, MIN_BLOB_BASE_FEE, BlobSidecar, validate_sidecar

MAX_NONCE_GAP = 64
"""How far past its next pending nonce a sender may queue a transaction."""
MAX_TX_BYTES = 128 * 1024
"""geth's txMaxSize, for the canonical encoding."""
MAX_BLOB_TX_BYTES = 2 * 1024 * 1024
"""A blob transaction's network form: room for a full block's sidecar (9 blobs, 1.2 MB) with
slack, so that one blob too many is refused by count, not size; the canonical part must
still fit in ``MAX_TX_BYTES``. The HTTP body limit (5 MiB) holds its hex encoding."""
REPLACEMENT_BUMP_PERCENT = 10
MAX_POOL = 200_000


class PoolError(ValueError):
    """Why a transaction was refused; ``str()`` is the message RPC returns."""


@dataclass(frozen=True, slots=True)
class PooledTx:
    raw: bytes
    hash: Hash32
    sender: Address
    nonce: int
    gas: int
    max_fee: int
    tip: int | None
    value: int
    seq: int
    blob_fee_cap: int | None = None
    """``max_fee_per_blob_gas`` of a blob transaction."""
    sidecar: BlobSidecar | None = None
    """A blob transaction's blobs, commitments and proofs (``raw`` is canonical, without)."""

    @property
    def blob_count(self) -> int:
        return 0 if self.sidecar is None else len(self.sidecar)

    def effective_tip(self, base_fee: int) -> int:
        room = self.max_fee - base_fee
        return room if self.tip is None else min(self.tip, room)

    def cost(self) -> int:
        blob_cost = self.blob_count * GAS_PER_BLOB * (self.blob_fee_cap or 0)
        return self.gas * self.max_fee + blob_cost + self.value


def intrinsic_gas(info: _core._DecodedTransaction) -> int:
    """Intrinsic gas of a transaction (Prague rules, without the EIP-7623 floor)."""
    data = info["input"]
    zeros = data.count(0)
    gas = 21_000 + 4 * zeros + 16 * (len(data) - zeros)
    if info["to"] is None:
        gas += 32_000 + 2 * ((len(data) + 31) // 32)
    for _, keys in info["access_list"]:
        gas += 2_400 + 1_900 * len(keys)
    gas += 25_000 * len(info["authorization_list"])
    return gas


class Mempool:
    """Pending transactions by sender and nonce. Thread-safe."""

    def __init__(self, chain_id: int, gas_limit: int):
        self.chain_id = chain_id
        self.gas_limit = gas_limit
        self._lock = threading.Lock()
        self._by_sender: dict[Address, dict[int, PooledTx]] = {}
        self._by_hash: dict[Hash32, PooledTx] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_hash)

    def get(self, tx_hash: Hash32) -> PooledTx | None:
        with self._lock:
            return self._by_hash.get(tx_hash)

    def sidecar(self, tx_hash: Hash32) -> BlobSidecar | None:
        """The sidecar of a pending blob transaction."""
        with self._lock:
            tx = self._by_hash.get(tx_hash)
            return None if tx is None else tx.sidecar

    def pending(self) -> list[PooledTx]:
        with self._lock:
            return sorted(self._by_hash.values(), key=lambda t: t.seq)

    def pending_nonce(self, sender: Address, account_nonce: int) -> int:
        """The nonce after the sender's contiguous pending run (``pending`` block tag)."""
        with self._lock:
            queue = self._by_sender.get(sender, {})
            nonce = account_nonce
            while nonce in queue:
                nonce += 1
            return nonce

    def add(
        self,
        raw: bytes,
        account: Callable[[Address], tuple[int, int]],
        base_fee: int,
        blob_base_fee: int = MIN_BLOB_BASE_FEE,
    ) -> Hash32:
        """
        Admits ``raw`` (a blob transaction in its network form) or raises ``PoolError``.
        ``account(sender)`` gives the sender's ``(balance, nonce)`` at the head; ``base_fee``
        and ``blob_base_fee`` are the next block's.
        """
        limit = MAX_BLOB_TX_BYTES if raw[:1] == b"\x03" else MAX_TX_BYTES
        if len(raw) > limit:
            raise PoolError(f"oversized data: transaction of {len(raw)} bytes exceeds {limit}")
        try:
            info = _core.decode_pooled_transaction(raw)
        except _core.SignatureError as e:
            raise PoolError(f"invalid sender: {e.reason}") from None
        except _core.DecodeError as e:
            raise PoolError(f"invalid transaction: {e.reason}") from None
        if info["chain_id"] is not None and info["chain_id"] != self.chain_id:
            raise PoolError(
                f"invalid chain id: transaction is for chain {info['chain_id']}, this chain is {self.chain_id}"
            )
        if len(info["raw"]) > MAX_TX_BYTES:
            raise PoolError(f"oversized data: transaction of {len(info['raw'])} bytes exceeds {MAX_TX_BYTES}")
        sidecar = None
        if info["type"] == 3:
            sidecar = self._check_blobs(info, blob_base_fee)
        sender = info["sender"]
        assert sender is not None  # recovered
        if info["gas"] > self.gas_limit:
            raise PoolError(f"exceeds block gas limit: gas {info['gas']} > {self.gas_limit}")
        intrinsic = intrinsic_gas(info)
        if info["gas"] < intrinsic:
            raise PoolError(f"intrinsic gas too low: have {info['gas']}, want {intrinsic}")
        tip = info["max_priority_fee_per_gas"]
        if tip is not None and tip > info["max_fee_per_gas"]:
            raise PoolError(
                f"max priority fee per gas higher than max fee per gas: {tip} > {info['max_fee_per_gas']}"
            )
        if info["max_fee_per_gas"] < base_fee:
            raise PoolError(
                f"transaction underpriced: max fee per gas {info['max_fee_per_gas']} < base fee {base_fee}"
            )
        balance, account_nonce = account(sender)
        tx = PooledTx(
            raw=info["raw"],
            hash=info["hash"],
            sender=sender,
            nonce=info["nonce"],
            gas=info["gas"],
            max_fee=info["max_fee_per_gas"],
            tip=tip,
            value=info["value"],
            seq=next(self._seq),
            blob_fee_cap=info["max_fee_per_blob_gas"],
            sidecar=sidecar,
        )
        with self._lock:
            if tx.hash in self._by_hash:
                raise PoolError("already known")
            if tx.nonce < account_nonce:
                raise PoolError(f"nonce too low: next nonce {account_nonce}, tx nonce {tx.nonce}")
            queue = self._by_sender.setdefault(sender, {})
            next_nonce = account_nonce
            while next_nonce in queue:
                next_nonce += 1
            if tx.nonce > next_nonce + MAX_NONCE_GAP:
                raise PoolError(
                    f"nonce too high: next nonce {next_nonce}, tx nonce {tx.nonce} "
                    f"(at most {MAX_NONCE_GAP} ahead)"
                )
            replaced = queue.get(tx.nonce)
            if replaced is not None:
                bump = 100 + REPLACEMENT_BUMP_PERCENT
                old_tip = replaced.tip if replaced.tip is not None else replaced.max_fee
                new_tip = tip if tip is not None else tx.max_fee
                if tx.max_fee * 100 < replaced.max_fee * bump or new_tip * 100 < old_tip * bump:
                    raise PoolError("replacement transaction underpriced")
                if replaced.blob_fee_cap is not None and (tx.blob_fee_cap or 0) * 100 < replaced.blob_fee_cap * bump:
                    raise PoolError("replacement transaction underpriced: blob fee cap must rise too")
            committed = sum(t.cost() for n, t in queue.items() if n != tx.nonce)
            if balance < committed + tx.cost():
                raise PoolError(
                    f"insufficient funds for gas * price + value: balance {balance}, "
                    f"tx cost {tx.cost()}, overshot {committed + tx.cost() - balance}"
                )
            if len(self._by_hash) >= MAX_POOL and replaced is None:
                raise PoolError("txpool is full")
            if replaced is not None:
                del self._by_hash[replaced.hash]
            queue[tx.nonce] = tx
            self._by_hash[tx.hash] = tx
        return tx.hash

    @staticmethod
    def _check_blobs(info: _core._PooledTransaction, blob_base_fee: int) -> BlobSidecar:
        """The sidecar of blob transaction ``info``, checked; raises ``PoolError``."""
        if info["to"] is None:
            raise PoolError("blob transaction of type create")
        pooled = info["sidecar"]
        if pooled is None:
            raise PoolError("missing sidecar in blob transaction")
        sidecar = BlobSidecar(tuple(pooled["blobs"]), tuple(pooled["commitments"]), tuple(pooled["proofs"]))
        try:
            validate_sidecar(info["blob_versioned_hashes"], sidecar)
        except ValueError as e:
            raise PoolError(str(e)) from None
        cap = info["max_fee_per_blob_gas"]
        assert cap is not None  # type 3
        if cap < blob_base_fee:
            raise PoolError(
                f"max fee per blob gas less than block blob gas fee: blob fee cap {cap} < blob base fee {blob_base_fee}"
            )
        return sidecar

    def select(
        self,
        nonce_of: Callable[[Address], int],
        base_fee: int,
        gas_limit: int,
        max_count: int,
        blob_base_fee: int = MIN_BLOB_BASE_FEE,
        max_blobs: int = BLOB_PARAMS.max,
    ) -> list[PooledTx]:
        """
        The next block's transactions: executable runs only, best tip first, whose gas limits
        fit in ``gas_limit`` and whose blobs fit in ``max_blobs``; a blob transaction whose
        blob fee cap is below ``blob_base_fee`` waits, as one below ``base_fee`` does.
        Transactions that can no longer run (their nonce is taken) are evicted on the way.
        """

        def payable(tx: PooledTx) -> bool:
            return tx.max_fee >= base_fee and (tx.blob_fee_cap is None or tx.blob_fee_cap >= blob_base_fee)

        with self._lock:
            heads: list[tuple[int, int, Address, int]] = []
            for sender, queue in self._by_sender.items():
                nonce = nonce_of(sender)
                for stale in [n for n in queue if n < nonce]:
                    self._by_hash.pop(queue.pop(stale).hash, None)
                tx = queue.get(nonce)
                if tx is not None and payable(tx):
                    heapq.heappush(heads, (-tx.effective_tip(base_fee), tx.seq, sender, nonce))
            chosen: list[PooledTx] = []
            gas_left = gas_limit
            blobs_left = max_blobs
            while heads and len(chosen) < max_count:
                _, _, sender, nonce = heapq.heappop(heads)
                tx = self._by_sender[sender][nonce]
                if tx.gas > gas_left or tx.blob_count > blobs_left:
                    # This sender is done for this block; smaller ones may still fit.
                    continue
                chosen.append(tx)
                gas_left -= tx.gas
                blobs_left -= tx.blob_count
                following = self._by_sender[sender].get(nonce + 1)
                if following is not None and payable(following):
                    heapq.heappush(
                        heads, (-following.effective_tip(base_fee), following.seq, sender, nonce + 1)
                    )
            for sender in [s for s, q in self._by_sender.items() if not q]:
                del self._by_sender[sender]
            return chosen

    def remove(self, hashes: list[Hash32]) -> None:
        """Forgets included or dropped transactions."""
        with self._lock:
            for tx_hash in hashes:
                tx = self._by_hash.pop(tx_hash, None)
                if tx is None:
                    continue
                queue = self._by_sender.get(tx.sender)
                if queue is not None and queue.get(tx.nonce) is tx:
                    del queue[tx.nonce]
                    if not queue:
                        del self._by_sender[tx.sender]
