"""The `parex` command, run as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import parex
from parex.engine import available_cpus

KEYS = {
    "workload", "conflict", "threads", "txs", "gas", "sequential_ms", "parallel_ms",
    "speedup", "ideal_speedup", "efficiency", "reexecutions", "identical",
    "machine_speedup", "machine_efficiency",
}


def parex_command() -> list[str]:
    script = shutil.which("parex", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "parex"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        parex_command() + list(args), capture_output=True, text=True, timeout=600
    )


def test_bench_json() -> None:
    proc = run("bench", "--txs", "200", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)  # stdout holds the JSON and nothing else
    threads = sorted({1, 2, available_cpus()})
    assert len(rows) == 3 * 3 * len(threads)
    seen = set()
    for row in rows:
        assert KEYS <= set(row), KEYS - set(row)
        assert row["identical"] is True
        assert row["txs"] == 200 and row["gas"] >= 200 * 21_000
        assert row["sequential_ms"] > 0 and row["parallel_ms"] > 0
        assert row["ideal_speedup"] >= 1.0
        # The machine bound is measured above one thread, and 1 by definition at one.
        assert row["machine_speedup"] > 0
        assert row["threads"] > 1 or row["machine_speedup"] == 1.0
        seen.add((row["workload"], row["conflict"], row["threads"]))
    assert seen == {
        (w, c, t) for w in ("transfer", "erc20", "amm") for c in (0, 20, 50) for t in threads
    }


def test_bench_table() -> None:
    proc = run("bench", "-w", "erc20", "-c", "50", "-t", "2", "--txs", "50", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    assert "erc20" in proc.stdout and "identical to sequential" in proc.stdout


def test_bench_rejects_bad_options() -> None:
    assert run("bench", "--threads", "0", "--txs", "10").returncode == 2
    assert run("bench", "--conflict", "101").returncode == 2
    assert run("bench", "--workload", "nft").returncode == 2


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0 and parex.__version__ in proc.stdout


def test_bench_rounds_run_each_thread_count_once() -> None:
    from parex import bench, workloads

    block = workloads.erc20(txs=40, conflict=50, seed=3)
    ticks: list[int] = []
    rows = bench.measure(block, [2, 1, 2], repeat=2, tick=lambda: ticks.append(1))
    assert [row.threads for row in rows] == [2, 1]
    assert all(row.identical for row in rows)
    # The progress bar's total is what measure ticks.
    assert len(ticks) == bench.runs_per_workload([2, 1, 2], 2)
