"""Unmodified clients (web3.py, ethers, viem, cast) over real sockets.

Each runs the same scenario (tests/client_scenarios.py): deploy, transfer, contract calls, receipts,
logs, gas estimate, fee history. Against anvil first, which shows the drivers and the checker are
right on a reference node; then against `parex node`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from anvil_process import start_anvil
from node_process import rpc
from client_scenarios import CLIENTS, Scenario, check_outcome, dev_key
from web3 import Web3

# A distinct dev account per client, so that one client's pending transactions never block another.
CLIENT_ACCOUNTS = {name: 1 + i for i, name in enumerate(CLIENTS)}
ANVIL_CHAIN_ID = 31337


def scenario_for(client: str, url: str) -> Scenario:
    recipient = Web3.to_checksum_address("0x" + secrets.token_hex(20))
    return Scenario(url, dev_key(CLIENT_ACCOUNTS[client]), recipient, value=10**18 + 12_345)


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with start_anvil(chain_id=ANVIL_CHAIN_ID) as url:
        yield url


@pytest.mark.parametrize("client", CLIENTS)
def test_client_scenario_on_anvil(client: str, anvil_url: str) -> None:
    scenario = scenario_for(client, anvil_url)
    check_outcome(CLIENTS[client](scenario), scenario, ANVIL_CHAIN_ID)


@pytest.mark.parametrize("client", CLIENTS)
def test_client_scenario_on_parex(client: str, parex_node: Any) -> None:
    scenario = scenario_for(client, parex_node.url)
    chain_id = int(str(rpc(parex_node.url, "eth_chainId")), 16)
    check_outcome(CLIENTS[client](scenario), scenario, chain_id)
