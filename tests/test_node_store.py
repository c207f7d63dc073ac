"""
The persistent store from Python: it plugs into the engine like the in-memory state, commits
blocks in order only, refuses bad arguments clearly, and survives reopening.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from node_process import rpc, start_node

from parex import State, _core
from parex.engine import BlockEnv
from parex.workloads import Account, Call, derive_accounts, sign_calls


def funded(n: int) -> tuple[list[Account], State]:
    accounts = derive_accounts(3, "store", n)
    state = State()
    for a in accounts:
        state.set_account(a.address, 10**20)
    return accounts, state


def test_store_executes_like_memory_and_survives_reopen(tmp_path: Path) -> None:
    accounts, state = funded(16)
    store = _core.Store(tmp_path / "chain.redb")
    assert store.head() is None
    store.commit_block(0, b"\x01" * 32, b"genesis", [], genesis=state, meta={"config": b"{}"})
    env = BlockEnv(number=1, base_fee=7, chain_id=1)
    calls = [Call(a, accounts[(i + 1) % 16].address, value=1_000 + i, gas_limit=21_000) for i, a in enumerate(accounts)]
    calls += [Call(a, None, bytes.fromhex("346000556001600155"), gas_limit=100_000) for a in accounts[:4]]
    txs = sign_calls(calls, chain_id=1, max_fee=10, priority_fee=1)
    on_memory = _core.execute(env, txs, state, threads=2)
    on_store = store.execute(env, txs, threads=2)
    assert on_memory.same_outcome(on_store)
    store.commit_block(1, b"\x02" * 32, b"one", on_store.tx_hashes, result=on_store)
    state.apply(on_memory)
    del store
    reopened = _core.Store(tmp_path / "chain.redb")
    assert reopened.head() == 1
    assert reopened.load_state() == state
    assert reopened.transaction(on_store.tx_hashes[5]) == (1, 5)
    assert reopened.block(1) == b"one" and reopened.block(2) is None
    assert reopened.block_number(b"\x02" * 32) == 1
    assert reopened.meta("config") == b"{}"
    assert _core.state_root(reopened.load_state()) == _core.state_root(state)


def test_store_refuses_bad_use(tmp_path: Path) -> None:
    store = _core.Store(tmp_path / "chain.redb")
    with pytest.raises(ValueError, match="expected block 0"):
        store.commit_block(3, b"\x01" * 32, b"", [])
    store.commit_block(0, b"\x01" * 32, b"", [])
    with pytest.raises(ValueError, match="at most one of result"):
        store.commit_block(1, b"\x02" * 32, b"", [], genesis=State(), result=_core.execute(None, [], State()))
    with pytest.raises(ValueError, match="hash"):
        store.commit_block(1, b"\x02" * 31, b"", [])
    with pytest.raises(ValueError, match="reserved"):
        store.commit_block(1, b"\x02" * 32, b"", [], meta={"head": b"x"})
    assert store.head() == 0
    # The file is locked while open: a second opener gets a clear error, not a corrupt store.
    with pytest.raises(_core.StateError, match="cannot open"):
        _core.Store(tmp_path / "chain.redb")


def test_genesis_file_and_restart(tmp_path: Path) -> None:
    genesis = {
        "config": {"chainId": 901},
        "gasLimit": "0x2faf080",
        "baseFeePerGas": "0x3b9aca00",
        "alloc": {
            "0x1000000000000000000000000000000000000001": {
                "balance": "0x100", "code": "0x6001600055", "nonce": "0x1",
                "storage": {"0x01": "0x2a"},
            },
            "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266": {"balance": "1000000000000000000000"},
            # Prague's system contracts, as a real genesis deploys them.
            **{"0x" + a.hex(): {"code": "0x" + c.hex(), "nonce": "0x1"} for a, c in _core.system_contracts()},
        },
    }
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(genesis))
    data_dir = tmp_path / "node"
    with start_node(data_dir, extra_args=["--genesis", str(path)]) as node:
        assert rpc(node.url, "eth_chainId") == hex(901)
        assert rpc(node.url, "eth_getBalance", ["0x1000000000000000000000000000000000000001", "latest"]) == "0x100"
        assert rpc(node.url, "eth_getCode", ["0x1000000000000000000000000000000000000001", "latest"]) == "0x6001600055"
        assert rpc(node.url, "eth_getStorageAt", ["0x1000000000000000000000000000000000000001", "0x1", "latest"]) == "0x" + "00" * 31 + "2a"
        assert rpc(node.url, "eth_accounts") == []
        genesis_hash = rpc(node.url, "eth_getBlockByNumber", ["0x0", False])["hash"]  # type: ignore[index]
    # A restart continues the stored chain without the flags.
    with start_node(data_dir, extra_args=["--genesis", str(path)]) as node:
        assert rpc(node.url, "eth_chainId") == hex(901)
        assert rpc(node.url, "eth_getBlockByNumber", ["0x0", False])["hash"] == genesis_hash  # type: ignore[index]
        # A second node on the same data dir is refused while the first runs.
        second = subprocess.run(
            [sys.executable, "-m", "parex", "node", "--data-dir", str(data_dir), "--genesis", str(path),
             "--http-port", "0", "--authrpc-port", "0"],
            capture_output=True, text=True, timeout=60,
        )
        assert second.returncode != 0 and "cannot open" in second.stderr and "Traceback" not in second.stderr
    # Another genesis on the same data dir is refused, clearly.
    refused = subprocess.run(
        [sys.executable, "-m", "parex", "node", "--data-dir", str(data_dir), "--http-port", "0", "--authrpc-port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode != 0 and "another genesis" in refused.stderr


def test_bad_genesis_files_are_named(tmp_path: Path) -> None:
    cases = {
        "is not JSON": "{",
        "alloc[0x1000000000000000000000000000000000000001].balance": json.dumps(
            {"alloc": {"0x1000000000000000000000000000000000000001": {"balance": "x"}}}
        ),
        "an address is 20 bytes": json.dumps({"alloc": {"0x12": {"balance": "0x1"}}}),
        "config.chainId": json.dumps({"config": {"chainId": "ninety"}}),
        # Prague rejects every block without the EIP-7002 / EIP-7251 contracts: named at start.
        "0x00000961ef480eb55e80d19ad83579a64c007002 (EIP-7002": json.dumps({"alloc": {}}),
    }
    for needle, text in cases.items():
        path = tmp_path / "genesis.json"
        path.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "parex", "node", "--data-dir", str(tmp_path / "n"), "--genesis", str(path)],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode != 0, needle
        assert needle in result.stderr, (needle, result.stderr)
        assert "Traceback" not in result.stderr


def test_state_root_tracker_follows_blocks() -> None:
    """The incremental root equals the full recompute after every block of a real workload."""
    from parex.workloads import erc20

    workload = erc20(300, conflict=30, seed=5)
    state = workload.pre_state.copy()
    tracker = _core.StateRootTracker(state)
    assert tracker.root() == _core.state_root(state)
    txs = list(workload.transactions)
    for start in range(0, len(txs), 100):
        env = workload.block_env.replace(number=workload.block_env.number + start)
        result = _core.execute(env, txs[start : start + 100], state, threads=2)
        state.apply(result)
        tracker.apply(result)
        assert tracker.root() == _core.state_root(state)
