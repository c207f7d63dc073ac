"""Shared fixtures: a small prepared chain that many tests build blocks on."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from node_process import NodeProcess, start_node

from parex import State
from parex.engine import Address, BlockEnv
from parex.workloads import (
    MAX_UINT256,
    TOKEN_FUNDS,
    Account,
    Market,
    contracts,
    deploy_market,
    derive_accounts,
    fund,
    genesis,
    mint_calls,
)
from parex.workloads import Call


@dataclass(frozen=True)
class Universe:
    """Funded users holding both tokens, with unlimited approvals to every pair."""

    env: BlockEnv
    state: State
    users: tuple[Account, ...]
    market: Market
    deployer: Account
    recipients: tuple[Address, ...]

    def nonces(self) -> dict[bytes, int]:
        return {u.address: u.nonce for u in self.users}


@functools.cache
def universe(users: int = 16, pairs: int = 4, seed: int = 7) -> Universe:
    chain, deployer = genesis(seed)
    accounts = derive_accounts(seed, "user", users)
    fund(chain.state, accounts)
    market = deploy_market(chain, deployer, pairs)
    addresses = [a.address for a in accounts]
    calls = mint_calls(deployer, market.token0, addresses, TOKEN_FUNDS)
    calls += mint_calls(deployer, market.token1, addresses, TOKEN_FUNDS)
    for user in accounts:
        for token in (market.token0, market.token1):
            for pair in market.pairs:
                data = contracts.encode_call("approve(address,uint256)", pair, MAX_UINT256)
                calls.append(Call(user, token, data, gas_limit=80_000))
    chain.run(calls)
    recipients = tuple(bytes([0xEE] * 19 + [i]) for i in range(4))
    return Universe(chain.env, chain.state, tuple(accounts), market, deployer, recipients)


@pytest.fixture
def parex_node(tmp_path: Path) -> Iterator[NodeProcess]:
    """A running ``parex node`` (dev preset, 0.1 s blocks) on free ports, stopped afterwards."""
    with start_node(tmp_path / "node", block_time=0.1) as node:
        yield node
