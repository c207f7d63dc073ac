"""
The benchmark: sequential against parallel on the same block, verified identical.

For each workload and conflict level the block is built once, and decoded and recovered once
(``Engine.prepare``): every run below executes that prepared block. Then:

1. one traced sequential execution (``trace=True``, ``trace_runs=TRACE_RUNS``: the block
   runs that many times and each transaction's time is its least over them, so that one
   preempted transaction does not become the critical path of a block without
   dependencies) gives the per-transaction times and the dependency-graph bound on the
   speedup (``ideal_speedup``);
2. ``repeat`` rounds, each one untraced sequential run (tracing costs time, so the traced run
   is not timed), then one parallel run at every thread count, each checked against the
   sequential result with ``same_outcome`` *and* equal digests, and, at every thread count
   above one, the machine's own bound (``Engine.execute_copies``): one copy of the block
   alone on the sequential executor, then that many copies at once, one thread each;
3. recovery, timed apart: the block prepared ``RECOVERY_RUNS`` times on one thread and on
   every thread count, the least time of each.

The machine bound: ``machine_speedup`` is ``threads`` times the time of one copy alone over
the time of ``threads`` independent copies at once, the median over the rounds (each round's
two runs back to back, so that a drifting host gives both the same speed). Cores that share
caches, memory bandwidth or a host do not give ``n`` times the throughput of one, and the
dependency-graph bound assumes they do; ``machine_efficiency`` is the speedup over the
tighter of the two bounds, which tells the engine's shortfall from the machine's.

Times are the engine's own clocks, with no Python in them, best of ``repeat``. The rounds
interleave the runs, so that a slow spell of the machine (a shared host that throttles for a
second at a time) falls on every configuration alike instead of on all of one's runs.
``sequential_ms``, ``parallel_ms`` and ``speedup`` measure *execution*: what Block-STM
parallelises and what the ideal bound bounds. Decoding and signature recovery come before
execution, are embarrassingly parallel and, for signed transfers, cost more than executing
them; they are reported apart (``recovery_*_ms``) and folded into ``end_to_end_speedup``, so
that recovery's easy speedup never hides the engine's.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from ._core import BlockResult
from .engine import Engine, available_cpus, fastest
from .workloads import WORKLOADS, Workload

DEFAULT_WORKLOADS = ("transfer", "erc20", "amm")
DEFAULT_CONFLICTS = (0, 20, 50)
DEFAULT_TXS = 10_000
DEFAULT_REPEAT = 9
TRACE_RUNS = 3
RECOVERY_RUNS = 3


def default_threads() -> list[int]:
    """1, 2 and, when larger, the number of CPUs this process may run on."""
    return sorted({1, 2, available_cpus()})


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the benchmark table."""

    workload: str
    conflict: int
    threads: int
    txs: int
    gas: int
    sequential_ms: float
    """Execution time of the sequential executor."""
    parallel_ms: float
    """Execution time of the parallel executor."""
    speedup: float
    """``sequential_ms / parallel_ms``."""
    recovery_sequential_ms: float
    """Decoding and sender recovery on one thread."""
    recovery_parallel_ms: float
    """Decoding and sender recovery on ``threads`` threads."""
    end_to_end_speedup: float
    """Whole engine time, recovery included, sequential over parallel."""
    mgas_per_s: float
    """Parallel throughput in millions of gas per second."""
    tx_per_s: float
    """Parallel throughput in transactions per second."""
    reexecutions: int
    """Re-executions of the fastest parallel run."""
    ideal_speedup: float | None
    efficiency: float | None
    """``speedup / min(threads, ideal_speedup)``: the share of the reachable speedup reached."""
    machine_speedup: float
    """``threads`` copies of the block at once on the sequential executor, against one alone
    (median of the rounds): the throughput this machine gives independent work (1 at one
    thread, by definition)."""
    machine_efficiency: float | None
    """``speedup / min(machine_speedup, ideal_speedup)``."""
    identical: bool
    """Every parallel run had the sequential outcome and digest."""
    fallback_reason: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def measure(
    workload: Workload,
    threads: Sequence[int],
    repeat: int = DEFAULT_REPEAT,
    tick: Callable[[], None] = lambda: None,
) -> list[Row]:
    """Rows for ``workload`` at each thread count (once each, in the order given); ``tick`` is
    called after every run."""
    if repeat < 1:
        raise ValueError(f"repeat: must be at least 1, got {repeat}")
    env, txs, state = workload.block_env, workload.transactions, workload.pre_state
    reference = Engine(threads=1)
    block = reference.prepare(env, txs)
    tick()

    traced = reference.execute_prepared(
        block, state, sequential=True, trace=True, trace_runs=TRACE_RUNS
    )
    tick()
    digest = traced.digest()
    # The benchmark measures Block-STM itself: no block takes the sequential rule.
    engines = {n: Engine(threads=n, sequential_rule=False) for n in threads}
    sequential_runs = []
    parallel_runs: dict[int, list[BlockResult]] = {n: [] for n in threads}
    machine_runs: dict[int, list[float]] = {n: [] for n in engines if n > 1}
    for _ in range(repeat):
        sequential_runs.append(reference.execute_prepared(block, state, sequential=True))
        tick()
        for n, engine in engines.items():
            parallel_runs[n].append(engine.execute_prepared(block, state))
            tick()
        for n, ratios in machine_runs.items():
            alone, together = reference.execute_copies(block, state, copies=n)
            ratios.append(n * alone / max(together, 1))
            tick()
    recovery_ns: dict[int, int] = {}
    for n in sorted({1, *engines}):
        # The block's own preparation was one run on one thread.
        times = [block.recovery_ns] if n == 1 else []
        while len(times) < RECOVERY_RUNS:
            times.append(Engine(threads=n).prepare(env, txs).recovery_ns)
            tick()
        recovery_ns[n] = min(times)
    sequential = fastest(sequential_runs)
    identical = all(
        r.same_outcome(traced) and r.digest() == digest for r in sequential_runs
    )

    rows = []
    for n, runs in parallel_runs.items():
        ok = identical and all(
            r.same_outcome(traced) and r.digest() == digest for r in runs
        )
        parallel = fastest(runs)
        seq_s = sequential.execution_ns / 1e9
        par_s = max(parallel.execution_ns, 1) / 1e9
        speedup = seq_s / par_s
        seq_recovery_s = recovery_ns[1] / 1e9
        par_recovery_s = recovery_ns[n] / 1e9
        ideal = traced.ideal_speedup
        reachable = min(float(n), ideal) if ideal is not None else None
        machine = statistics.median(machine_runs[n]) if n > 1 else 1.0
        machine_bound = min(machine, ideal) if ideal is not None else machine
        rows.append(
            Row(
                workload=workload.name,
                conflict=workload.conflict,
                threads=n,
                txs=len(txs),
                gas=traced.gas_used,
                sequential_ms=seq_s * 1e3,
                parallel_ms=par_s * 1e3,
                speedup=speedup,
                recovery_sequential_ms=seq_recovery_s * 1e3,
                recovery_parallel_ms=par_recovery_s * 1e3,
                end_to_end_speedup=(seq_s + seq_recovery_s) / max(par_s + par_recovery_s, 1e-9),
                mgas_per_s=traced.gas_used / par_s / 1e6,
                tx_per_s=len(txs) / par_s,
                reexecutions=parallel.stats["reexecutions"],
                ideal_speedup=ideal,
                efficiency=speedup / reachable if reachable else None,
                machine_speedup=machine,
                machine_efficiency=speedup / machine_bound if machine_bound > 0 else None,
                identical=ok,
                fallback_reason=parallel.stats["fallback_reason"],
            )
        )
    return rows


def runs_per_workload(threads: Sequence[int], repeat: int) -> int:
    """How many times ``measure`` calls ``tick``."""
    counts = set(threads)
    recoveries = len(counts | {1}) * RECOVERY_RUNS - 1
    return 2 + repeat + len(counts) * repeat + len(counts - {1}) * repeat + recoveries


def run(
    workloads: Sequence[str] = DEFAULT_WORKLOADS,
    conflicts: Sequence[int] = DEFAULT_CONFLICTS,
    threads: Sequence[int] | None = None,
    txs: int = DEFAULT_TXS,
    repeat: int = DEFAULT_REPEAT,
    seed: int = 0,
    on_build: Callable[[str, int], None] = lambda name, conflict: None,
    tick: Callable[[], None] = lambda: None,
) -> list[Row]:
    """The whole matrix, workload by workload."""
    thread_counts = list(threads) if threads else default_threads()
    rows: list[Row] = []
    for name in workloads:
        generate = WORKLOADS[name]
        for conflict in conflicts:
            on_build(name, conflict)
            workload = generate(txs, conflict, seed)
            rows.extend(measure(workload, thread_counts, repeat, tick))
    return rows
