"""`parex load` over real sockets: against anvil (the tool itself) and against `parex node`."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from anvil_process import start_anvil

PAREX = [sys.executable, "-m", "parex"]


def load(url: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*PAREX, "load", "--rpc-url", url, "--json", *args],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def check_report(report: dict[str, Any]) -> None:
    assert report["sent"] > 0
    assert report["included"] == report["sent"]
    assert (report["failed"], report["rejected"], report["lost"]) == (0, 0, 0)
    assert report["tx_per_s"] > 0
    assert report["blocks"] >= 1
    assert 0 < report["block_fill"] <= 1
    assert 0 < report["latency_p50_ms"] <= report["latency_p99_ms"]


@pytest.mark.parametrize("workload", ["erc20", "transfer"])
def test_load_against_anvil(workload: str) -> None:
    with start_anvil() as url:
        check_report(load(url, "--workload", workload, "--duration", "1.5", "--senders", "20"))


def test_load_against_parex(parex_node: Any) -> None:
    check_report(load(parex_node.url, "--duration", "2", "--senders", "40"))


def test_load_names_an_unreachable_node() -> None:
    done = subprocess.run(
        [*PAREX, "load", "--rpc-url", "http://127.0.0.1:9", "--duration", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "127.0.0.1:9" in done.stderr
