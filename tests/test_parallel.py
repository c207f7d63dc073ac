"""Property: Block-STM on any number of threads produces the sequential outcome, bit for bit."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection

import pytest
from conftest import universe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parex import BlockResult, Engine
from parex.workloads import Account, Call, contracts, sign_calls, swap_call


@dataclass(frozen=True)
class Op:
    kind: str  # "eth", "erc20", "swap", "deploy"
    sender: int
    target: int
    amount: int
    zero_for_one: bool
    tx_type: int = 2


ops = st.builds(
    Op,
    kind=st.sampled_from(["eth", "erc20", "swap", "deploy"]),
    # Small ranges on purpose: repeated senders chain nonces, repeated targets conflict.
    sender=st.integers(0, 15),
    target=st.integers(0, 3),
    amount=st.one_of(
        st.integers(1, 10**20),
        st.integers(10**24, 10**25),  # above every balance: the transaction reverts
    ),
    zero_for_one=st.booleans(),
    tx_type=st.sampled_from([2, 2, 1, 0]),
)


def build_block(block: list[Op]) -> list[bytes]:
    u = universe()
    users = [Account(a.secret, a.address, a.nonce) for a in u.users]
    token_code = contracts.load("Token").deploy_data("Prop", "PRP")
    calls = []
    for op in block:
        sender = users[op.sender]
        if op.kind == "eth":
            # Target 0 is another user (a read-modify-write of a live account).
            to = users[op.target].address if op.target == 0 else u.recipients[op.target]
            calls.append(Call(sender, to, value=op.amount % 10**18, gas_limit=21_000))
        elif op.kind == "erc20":
            token = u.market.token0 if op.zero_for_one else u.market.token1
            data = contracts.encode_call(
                "transfer(address,uint256)", u.recipients[op.target], op.amount
            )
            calls.append(Call(sender, token, data, gas_limit=100_000))
        elif op.kind == "swap":
            calls.append(
                swap_call(sender, u.market.pairs[op.target], op.amount, op.zero_for_one)
            )
        else:
            calls.append(Call(sender, None, token_code, gas_limit=2_000_000))
    calls = [replace(c, tx_type=op.tx_type) for c, op in zip(calls, block)]
    return sign_calls(calls, chain_id=u.env.chain_id)


def assert_same(parallel: BlockResult, sequential: BlockResult) -> None:
    assert len(parallel.receipts) == len(sequential.receipts)
    for i, (p, s) in enumerate(zip(parallel.receipts, sequential.receipts)):
        assert (p.tx_type, p.success, p.gas_used, p.cumulative_gas_used) == (
            s.tx_type,
            s.success,
            s.gas_used,
            s.cumulative_gas_used,
        ), f"receipt {i}"
        assert p.contract_address == s.contract_address, f"receipt {i}"
        assert [(l.address, l.topics, l.data) for l in p.logs] == [
            (l.address, l.topics, l.data) for l in s.logs
        ], f"receipt {i} logs"
        assert p == s
    assert parallel.gas_used == sequential.gas_used
    assert parallel.senders == sequential.senders
    assert parallel.tx_hashes == sequential.tx_hashes
    assert parallel.changes == sequential.changes
    assert parallel.same_outcome(sequential)
    assert sequential.same_outcome(parallel)
    assert parallel.digest() == sequential.digest()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(block=st.lists(ops, min_size=1, max_size=48), threads=st.integers(1, 8))
def test_parallel_equals_sequential(block: list[Op], threads: int) -> None:
    u = universe()
    txs = build_block(block)
    env = u.env.replace(gas_limit=30_000_000 + 2_000_000 * len(txs))
    sequential = Engine().execute_sequential(env, txs, u.state)
    parallel = Engine(threads=threads, sequential_rule=False).execute(env, txs, u.state)
    assert_same(parallel, sequential)
    # Applying either result gives the same post-state.
    a, b = u.state.copy(), u.state.copy()
    a.apply(parallel)
    b.apply(sequential)
    assert a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block=st.lists(ops, min_size=0, max_size=32), threads=st.integers(2, 4))
def test_sequential_rule_only_picks_the_executor(block: list[Op], threads: int) -> None:
    """The engine's default rule may run a block sequentially; the outcome never changes,
    and the stats say which path ran."""
    u = universe()
    txs = build_block(block)
    env = u.env.replace(gas_limit=30_000_000 + 2_000_000 * len(txs))
    ruled = Engine(threads=threads).execute(env, txs, u.state)
    forced = Engine(threads=threads, sequential_rule=False).execute(env, txs, u.state)
    assert_same(ruled, forced)
    assert forced.stats["sequential_rule"] is None
    rule = ruled.stats["sequential_rule"]
    if len(txs) < 2:
        assert rule is not None and "nothing to run side by side" in rule
    if rule is not None:
        assert ruled.stats["threads"] == 1
    else:
        assert ruled.stats["threads"] == min(threads, len(txs))


def test_hot_block_reexecutes_and_still_agrees() -> None:
    """Every transaction swaps on one pair: the worst case for Block-STM."""
    block = [Op("swap", i % 16, 0, 10**18 + i, i % 2 == 0) for i in range(48)]
    u = universe()
    txs = build_block(block)
    env = u.env.replace(gas_limit=30_000_000)
    sequential = Engine().execute_sequential(env, txs, u.state, trace=True)
    assert all(r.success for r in sequential.receipts)
    assert sequential.ideal_speedup is not None and sequential.ideal_speedup < 1.5
    for threads in (2, 4, 8):
        parallel = Engine(threads=threads, sequential_rule=False).execute(env, txs, u.state)
        assert_same(parallel, sequential)


def test_digest_distinguishes_outcomes() -> None:
    u = universe()
    env = u.env.replace(gas_limit=30_000_000)
    one = Engine().execute_sequential(env, build_block([Op("eth", 0, 1, 5, True)]), u.state)
    two = Engine().execute_sequential(env, build_block([Op("eth", 0, 1, 6, True)]), u.state)
    assert not one.same_outcome(two)
    assert one.digest() != two.digest()
    assert len(one.digest()) == 32


def _execute_in_child(txs: list[bytes], digest: str, conn: Connection) -> None:
    u = universe()
    result = Engine(threads=2, sequential_rule=False).execute(u.env, txs, u.state)
    conn.send(result.digest() == digest)


def test_forked_child_executes_in_parallel() -> None:
    """A process forked after the parent ran Block-STM (a multiprocessing worker) executes in
    parallel too: nothing the parent's engine keeps per thread (memory, caches; a pool of
    worker threads, which a child would inherit without its threads) may hang it."""
    u = universe()
    txs = build_block([Op("erc20", i, i % 4, 10**18, i % 2 == 0) for i in range(12)])
    parent = Engine(threads=2, sequential_rule=False).execute(u.env, txs, u.state)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_execute_in_child, args=(txs, parent.digest(), send))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        child.join()
        raise AssertionError("the forked child hung on the parent's worker pool")
    assert child.exitcode == 0
    assert receive.recv() is True


def _worker_threads() -> set[int]:
    """The thread ids of this process's parex helper threads (Linux: /proc names them)."""
    tasks = "/proc/self/task"
    found = set()
    for tid in os.listdir(tasks):
        with open(f"{tasks}/{tid}/comm") as comm:
            if comm.read().startswith("parex-worker"):
                found.add(int(tid))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="no /proc thread list")
def test_block_after_block_runs_on_the_same_helper_threads() -> None:
    """The calling thread keeps its helper threads between blocks (workers.rs, I22): the
    executor, the block tail and recovery start no thread per block, and a later block with
    fewer workers uses some of the same helpers."""
    u = universe()
    txs = build_block([Op("erc20", i % 16, i % 4, 10**18, i % 2 == 0) for i in range(24)])
    engine = Engine(threads=3, sequential_rule=False)
    reference = engine.execute_sequential(u.env, txs, u.state)
    engine.execute(u.env, txs, u.state)
    helpers = _worker_threads()
    assert len(helpers) >= 2
    for _ in range(5):
        assert engine.execute(u.env, txs, u.state).same_outcome(reference)
        assert Engine(threads=2, sequential_rule=False).execute(u.env, txs, u.state).same_outcome(
            reference
        )
    assert _worker_threads() == helpers


def test_engines_on_several_threads_at_once_agree() -> None:
    """Several Python threads executing at once (a node's sequencer beside RPC handlers, a
    benchmark beside a replay): each calling thread keeps its own helpers, the threads
    outnumber the cores, and every result equals the sequential one."""
    u = universe()
    txs = build_block([Op("erc20", i % 16, i % 4, 10**18, i % 3 == 0) for i in range(40)])
    reference = Engine().execute_sequential(u.env, txs, u.state)

    def run(threads: int) -> list[bool]:
        engine = Engine(threads=threads, sequential_rule=False)
        return [engine.execute(u.env, txs, u.state).same_outcome(reference) for _ in range(8)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(run, [2, 3, 2, 4]))
    assert outcomes == [[True] * 8] * 4


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_default_workers_follow_the_cpus_the_process_may_run_on() -> None:
    """A node pinned to one core (taskset, a container's cpuset) starts one worker by default,
    not one per core of the machine, and the bench's default thread counts follow suit."""
    script = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from parex import Engine; from parex.bench import default_threads;"
        "print(Engine().threads, *default_threads())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "2"]
    assert Engine().threads == len(os.sched_getaffinity(0))
