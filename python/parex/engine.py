"""
Block execution: the block environment and the engine that runs blocks on it.

A block is executed against a pre-block :class:`~parex._core.State`, which is never modified:
the :class:`~parex._core.BlockResult` carries receipts and state changes, and
``state.apply(result)`` makes the state the post-block state.

:meth:`Engine.execute` runs Block-STM on ``Engine.threads`` workers;
:meth:`Engine.execute_sequential` runs the transactions one after another. Both produce the
same outcome, bit for bit (``a.same_outcome(b)``); the sequential executor is the reference.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeAlias

from . import _core
from ._core import BlockResult, Header, ImportedBlock, PreparedBlock, State

Address: TypeAlias = bytes
"""20 bytes."""

Hash32: TypeAlias = bytes
"""32 bytes."""

Wei: TypeAlias = int
Gas: TypeAlias = int

ZERO_ADDRESS: Address = bytes(20)
ZERO_HASH: Hash32 = bytes(32)


class Fork(StrEnum):
    """
    Ethereum hard forks in activation order. The engine accepts the names
    case-insensitively (and the execution-spec aliases such as ``"EIP158"``).
    """

    FRONTIER = "frontier"
    HOMESTEAD = "homestead"
    TANGERINE_WHISTLE = "tangerinewhistle"
    SPURIOUS_DRAGON = "spuriousdragon"
    BYZANTIUM = "byzantium"
    CONSTANTINOPLE = "constantinople"
    PETERSBURG = "petersburg"
    ISTANBUL = "istanbul"
    MUIR_GLACIER = "muirglacier"
    BERLIN = "berlin"
    LONDON = "london"
    ARROW_GLACIER = "arrowglacier"
    GRAY_GLACIER = "grayglacier"
    PARIS = "paris"
    SHANGHAI = "shanghai"
    CANCUN = "cancun"
    PRAGUE = "prague"
    OSAKA = "osaka"


@dataclass(frozen=True, slots=True)
class BlockEnv:
    """
    Everything a block's transactions can observe about the block itself.
    """

    number: int = 1
    timestamp: int = 1
    beneficiary: Address = ZERO_ADDRESS
    base_fee: Wei = 0
    """EIP-1559 base fee per gas; ignored before London."""
    gas_limit: Gas = 30_000_000
    prevrandao: Hash32 = ZERO_HASH
    """``PREVRANDAO`` after the Merge; the header's mix hash before it."""
    difficulty: int = 0
    """Pre-Merge ``DIFFICULTY``."""
    excess_blob_gas: int | None = 0
    """EIP-4844 excess blob gas; ``None`` before Cancun."""
    chain_id: int = 1
    fork: str = Fork.PRAGUE.value

    def replace(self, **changes: object) -> BlockEnv:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)  # type: ignore[arg-type]


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (a cpuset, ``taskset``), not the
    machine's count, so that a node in a container starts no more workers than it has cores."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def default_threads() -> int:
    """One Block-STM worker per CPU this process may run on."""
    return available_cpus()


def _check_threads(threads: object) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise ValueError(f"threads: expected an int, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads: must be at least 1, got {threads}")
    return threads


def _check_trace_runs(runs: object) -> int:
    if isinstance(runs, bool) or not isinstance(runs, int):
        raise ValueError(f"trace_runs: expected an int, got {type(runs).__name__}")
    if not 1 <= runs <= 1_000:
        raise ValueError(f"trace_runs: must be between 1 and 1000, got {runs}")
    return runs


@dataclass(frozen=True, slots=True)
class Engine:
    """
    Executes blocks. ``threads`` is the number of Block-STM workers (default: one per CPU).

    ``sequential_rule`` (on by default) lets :meth:`execute` run a block too small to gain
    from Block-STM on the sequential executor: fewer than 2 transactions, one sender with at
    least half of them, fewer than 12 carrying calldata or under 2.5M gas in their limits, or
    fewer than 1 in 20 carrying calldata (the rule is Rust's, ``parex_evm::sequential_rule``;
    docs/benchmarks.md has the measurements behind it). ``result.stats["sequential_rule"]``
    says why it did. ``Engine(sequential_rule=False)`` forces the parallel path, as tests and
    benchmarks of the parallel executor need.
    """

    threads: int = field(default_factory=default_threads)
    sequential_rule: bool = True

    def __post_init__(self) -> None:
        _check_threads(self.threads)

    def execute(
        self,
        block_env: BlockEnv,
        transactions: Sequence[bytes],
        state: State,
        *,
        trace: bool = False,
        trace_runs: int = 1,
    ) -> BlockResult:
        """
        Executes ``transactions`` (raw EIP-2718 envelopes) on ``state`` with Block-STM.

        ``trace=True`` also records per-transaction times (``result.tx_nanos``) and the
        dependency-graph bound on the speedup (``result.ideal_speedup``). With
        ``trace_runs=n`` a traced block runs ``n`` times and each transaction's time is its
        least over the runs: one preempted transaction then does not become the block's
        critical path.

        Raises a :class:`~parex._core.TransactionError` subclass naming the first
        transaction that makes the block invalid.
        """
        return _core.execute(
            block_env,
            transactions,
            state,
            threads=self.threads,
            trace=trace,
            trace_runs=_check_trace_runs(trace_runs),
            sequential_rule=self.sequential_rule,
        )

    def execute_sequential(
        self,
        block_env: BlockEnv,
        transactions: Sequence[bytes],
        state: State,
        *,
        trace: bool = False,
        trace_runs: int = 1,
    ) -> BlockResult:
        """
        Executes ``transactions`` one after another: the reference for :meth:`execute`
        (``trace`` and ``trace_runs`` as there).
        """
        return _core.execute(
            block_env,
            transactions,
            state,
            sequential=True,
            trace=trace,
            trace_runs=_check_trace_runs(trace_runs),
        )

    def prepare(self, block_env: BlockEnv, transactions: Sequence[bytes]) -> PreparedBlock:
        """
        Decodes ``transactions`` and recovers their senders on this engine's threads, once:
        :meth:`execute_prepared` and :meth:`execute_copies` then run the block without
        recovering it again. ``block.recovery_ns`` says how long that took. Raises as
        :meth:`execute` does for a transaction that does not decode or recover.
        """
        return _core.prepare(block_env, transactions, threads=self.threads)

    def execute_prepared(
        self,
        block: PreparedBlock,
        state: State,
        *,
        sequential: bool = False,
        trace: bool = False,
        trace_runs: int = 1,
    ) -> BlockResult:
        """
        :meth:`execute` (or, with ``sequential=True``, :meth:`execute_sequential`) on a block
        from :meth:`prepare`: the same result, with ``recovery_ns`` 0.
        """
        # The sequential executor runs on one thread and takes no rule.
        return _core.execute_prepared(
            block,
            state,
            threads=self.threads,
            sequential=sequential,
            trace=trace,
            trace_runs=_check_trace_runs(trace_runs),
            sequential_rule=self.sequential_rule,
        )

    def execute_copies(
        self, block: PreparedBlock, state: State, *, copies: int | None = None
    ) -> tuple[int, int]:
        """
        Executes copies of a prepared block on the sequential executor, one thread each: one
        copy alone, then ``copies`` of them at once (default: ``threads``). Returns both wall
        times in nanoseconds, ``(alone, together)``, taken back to back on the same warm
        threads. ``copies * alone / together`` is what the machine gives independent blocks:
        the bound ``parex bench`` reports as ``machine_speedup``. A warm-up run per thread
        comes first and is not timed.
        """
        return _core.execute_copies(
            block, state, copies=self.threads if copies is None else copies
        )

    def import_block(
        self,
        block: bytes,
        parent: Header,
        state: State,
        *,
        schedule: str,
        chain_id: int = 1,
    ) -> ImportedBlock:
        """
        Validates ``block`` (RLP) as the child of ``parent`` and executes it on ``state`` (the
        state after ``parent``; not modified): header checks, system calls, the transactions
        on this engine, withdrawals, rewards, requests, and every commitment of the header.
        ``schedule`` is the chain's forks: a fork name, a transition such as
        ``"ShanghaiToCancunAtTime15k"``, or ``"mainnet"``. Apply ``imported.result`` to a copy
        of ``state`` to go on. Raises :class:`~parex._core.InvalidBlock` naming the rule
        broken (``.exception``, in the execution-spec tests' vocabulary).
        """
        return _core.import_block(
            block,
            parent,
            state,
            schedule=schedule,
            chain_id=chain_id,
            threads=self.threads,
            sequential_rule=self.sequential_rule,
        )


def fastest(results: Iterable[BlockResult]) -> BlockResult:
    """The run with the shortest execution time (the engine's own clock)."""
    return min(results, key=lambda r: r.execution_ns)
