"""`parex load` against `parex node`, and against anvil, a reference node, which shows the tool
itself is right whatever node it drives."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from anvil_process import start_anvil
from node_process import NodeProcess

PAREX = [sys.executable, "-m", "parex"]


def load_and_check(url: str, workload: str) -> None:
    done = subprocess.run(
        [*PAREX, "load", "--url", url, "--workload", workload, "--senders", "20",
         "--per-sender", "5", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["transactions"] == report["included"] == 100
    assert report["tx_per_second"] > 0 and report["blocks"] >= 1
    assert 0 < report["block_fill"] <= 1
    assert 0 <= report["latency_p50_ms"] <= report["latency_p99_ms"]


@pytest.mark.parametrize("workload", ["erc20", "transfer"])
def test_load_against_parex(workload: str, parex_node: NodeProcess) -> None:
    load_and_check(parex_node.url, workload)


@pytest.mark.parametrize("workload", ["erc20", "transfer"])
def test_load_against_anvil(workload: str) -> None:
    with start_anvil() as url:
        load_and_check(url, workload)


def test_load_names_an_unreachable_node() -> None:
    done = subprocess.run(
        [*PAREX, "load", "--url", "http://127.0.0.1:9", "--senders", "2", "--per-sender", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "cannot reach the node at http://127.0.0.1:9" in done.stderr
