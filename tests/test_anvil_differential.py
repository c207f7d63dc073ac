"""parex node against anvil, the differential oracle (tests/anvil_differential.py)."""

from __future__ import annotations

from typing import Any

from anvil_differential import differential_run
from anvil_process import start_anvil
from node_process import rpc


def test_parex_agrees_with_anvil(parex_node: Any) -> None:
    chain_id = int(str(rpc(parex_node.url, "eth_chainId")), 16)
    with start_anvil(chain_id=chain_id) as anvil_url:
        assert differential_run(anvil_url, parex_node.url) == []


def test_the_oracle_sees_a_difference() -> None:
    """Two anvils that disagree on the fork must be told apart, or the comparison proves nothing."""
    with start_anvil() as prague, start_anvil(hardfork="london") as london:
        differences = differential_run(prague, london)
    assert differences, "a London node and a Prague node agreed on every receipt"
