"""
The execution-apis RPC test chain (hive's `tests/chain.rlp` on `tests/genesis.json`, from
Homestead to Osaka and the BPO forks) imported block by block through parex-chain: the first
half of the RPC conformance work. Every block must be accepted with exactly its header's
hash, and the head must be the one `tests/headfcu.json` names.

The fixture is third-party (../shared/fixtures, README there); it is extracted into the
ignored .cache/ folder at test time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _rlp import split as split_rlp
from shared_fixtures import CACHE
from shared_fixtures import RPC_TESTS as FIXTURE

from parex import State, _core, replay
from parex.node.genesis import schedule_from_geth_config





def _int(value: str | int) -> int:
    return value if isinstance(value, int) else int(value, 16) if value.startswith("0x") else int(value)


@pytest.fixture(scope="module")
def tests_dir() -> Path:
    if not FIXTURE.exists():
        pytest.fail(f"{FIXTURE} is missing (see ../shared/fixtures/README.md)")
    return replay.extract(FIXTURE, CACHE) / "tests"


def test_schedule_from_geth_config() -> None:
    config = {"homesteadBlock": 0, "byzantiumBlock": 9, "mergeNetsplitBlock": 36, "shanghaiTime": 390,
              "bpo1Time": 510}
    schedule, unmodelled = schedule_from_geth_config(config)
    assert schedule == "Frontier@0,Homestead@0,Byzantium@9,Paris@36,Shanghai@t390"
    assert unmodelled == ["bpo1Time"]
    assert _core.fork_at(schedule, 8, 80) == "Homestead"
    assert _core.fork_at(schedule, 36, 360) == "Paris"
    assert _core.fork_at(schedule, 40, 400) == "Shanghai"
    with pytest.raises(ValueError, match="schedule"):
        _core.fork_at("Homestead@0,Nowhere@t5", 0, 0)


def test_hive_chain_imports_through_parex_chain(tests_dir: Path) -> None:
    genesis = json.loads((tests_dir / "genesis.json").read_text())
    config = genesis["config"]
    schedule, unmodelled = schedule_from_geth_config(config)
    # BPO1/BPO2 only raise blob targets and maxima; this chain's blocks carry at most one blob
    # and excess blob gas stays 0, so Osaka's parameters give the same headers.
    assert unmodelled == ["bpo1Time", "bpo2Time"]
    state = State()
    for address, account in genesis["alloc"].items():
        raw = bytes.fromhex(address.removeprefix("0x"))
        code = bytes.fromhex(account.get("code", "0x")[2:]) or None
        state.set_account(raw, _int(account.get("balance", 0)), _int(account.get("nonce", 0)), code)
        for slot, value in (account.get("storage") or {}).items():
            state.set_storage(raw, _int(slot), _int(value))
    parent = _core.genesis_header(
        state,
        schedule=schedule,
        gas_limit=_int(genesis["gasLimit"]),
        timestamp=_int(genesis["timestamp"]),
        extra_data=bytes.fromhex(genesis["extraData"][2:]),
        beneficiary=bytes.fromhex(genesis["coinbase"][2:]),
        mix_hash=bytes.fromhex(genesis["mixHash"][2:]),
        difficulty=_int(genesis["difficulty"]),
        nonce=_int(genesis["nonce"]),
    )
    blocks = split_rlp((tests_dir / "chain.rlp").read_bytes())
    assert len(blocks) == 54
    assert _core.Header.of_block(blocks[0]).parent_hash == parent.hash, "genesis hash"
    state.set_block_hash(0, parent.hash)
    forks = set()
    for raw in blocks:
        imported = _core.import_block(
            raw, parent, state, schedule=schedule, chain_id=config["chainId"], threads=2
        )
        assert imported.hash == _core.Header.of_block(raw).hash
        state.apply(imported.result)
        state.set_block_hash(imported.header.number, imported.hash)
        forks.add(imported.fork)
        parent = imported.header
    head = json.loads((tests_dir / "headfcu.json").read_text())["params"][0]["headBlockHash"]
    assert "0x" + parent.hash.hex() == head
    assert {"Homestead", "Byzantium", "London", "Paris", "Shanghai", "Cancun", "Prague", "Osaka"} <= forks
