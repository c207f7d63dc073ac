"""Blockchain tests: full block processing through `parex._core.import_block`.

Folders of the shared EEST fixture pass in full (the whole set runs with `make conformance`);
tampered fixtures fail with the right reason; the classic ethereum/tests layout and fork
transitions run; the bindings reject bad input with clear errors.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from shared_fixtures import CACHE
from shared_fixtures import EEST as FIXTURE

from _rlp import decode, encode
from parex import State, _core, conformance, replay
from parex._core import Header, InvalidBlock

THREADS = 2


# One folder per block-level feature: withdrawals, beacon root, blobs, history storage,
# deposits, withdrawal and consolidation requests, general requests, set-code transactions.
FOLDERS = [
    "shanghai/eip4895_withdrawals",
    "cancun/eip4788_beacon_root",
    "cancun/eip4844_blobs",
    "prague/eip2935_historical_block_hashes_from_state",
    "prague/eip6110_deposits",
    "prague/eip7002_el_triggerable_withdrawals",
    "prague/eip7251_consolidations",
    "prague/eip7685_general_purpose_el_requests",
    "prague/eip7702_set_code_tx",
]
# Two blocks, a valid one then one with withdrawals (Cancun and Prague).
VALID = "shanghai/eip4895_withdrawals/test_use_value_in_tx.json"
# A block rejected for its excess blob gas.
INVALID = "cancun/eip4844_blobs/test_invalid_static_excess_blob_gas.json"


@pytest.fixture(scope="module")
def blockchain_tests() -> Path:
    return replay.extract(FIXTURE, CACHE) / "eest_cancun_prague" / "blockchain_tests"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def first(tests: dict[str, Any], network: str | None = None) -> tuple[str, dict[str, Any]]:
    for name, test in tests.items():
        if network is None or test["network"] == network:
            return name, copy.deepcopy(test)
    raise AssertionError(f"no {network} test")


def run_one(tmp_path: Path, name: str, test: dict[str, Any]) -> conformance.Outcome:
    path = tmp_path / "case.json"
    path.write_text(json.dumps({name: test}))
    report = conformance.run([path], threads=THREADS)
    [outcome] = report.outcomes
    return outcome


def hexed(data: bytes) -> str:
    return "0x" + data.hex()


def tampered_header(rlp_hex: str, field: int, value: bytes) -> str:
    """The block RLP with header field ``field`` replaced (the header hash changes too)."""
    block = decode(bytes.fromhex(rlp_hex[2:]))
    assert isinstance(block, list) and isinstance(block[0], list)
    block[0][field] = value
    return hexed(encode(block))


# ---------------------------------------------------------------------------------------------
# The fixture passes


@pytest.mark.parametrize("folder", FOLDERS)
def test_folder_passes(blockchain_tests: Path, folder: str) -> None:
    report = conformance.run([blockchain_tests / folder], threads=THREADS)
    failures = [f"{o.name}: {o.reason}" for o in report.failures]
    assert not failures, "\n".join(failures[:20])
    assert report.passed > 0 and report.skipped == 0
    assert set(report.by_group()) == {folder}


def test_invalid_block_passes_only_for_the_expected_reason(
    blockchain_tests: Path, tmp_path: Path
) -> None:
    name, test = first(load(blockchain_tests / INVALID))
    [block] = test["blocks"]
    assert block["expectException"] == "BlockException.INCORRECT_EXCESS_BLOB_GAS"
    assert run_one(tmp_path, name, test).status == "passed"

    block["expectException"] = "BlockException.INVALID_STATE_ROOT"
    outcome = run_one(tmp_path, name, test)
    assert outcome.kind == "wrong rejection"
    assert "INCORRECT_EXCESS_BLOB_GAS" in (outcome.reason or "")

    # Any of the |-separated names will do.
    block["expectException"] = (
        "BlockException.INVALID_STATE_ROOT|BlockException.INCORRECT_EXCESS_BLOB_GAS"
    )
    assert run_one(tmp_path, name, test).status == "passed"

    del block["expectException"]
    assert run_one(tmp_path, name, test).kind == "unexpected rejection"


def test_tampered_valid_chains_fail(blockchain_tests: Path, tmp_path: Path) -> None:
    name, test = first(load(blockchain_tests / VALID), "Prague")
    assert len(test["blocks"]) == 2
    assert run_one(tmp_path, name, test).status == "passed"

    missing = copy.deepcopy(test)
    missing["blocks"][1]["expectException"] = "BlockException.INVALID_STATE_ROOT"
    assert run_one(tmp_path, name, missing).kind == "missing rejection"

    wrong_hash = copy.deepcopy(test)
    wrong_hash["blocks"][0]["blockHeader"]["hash"] = hexed(bytes(32))
    outcome = run_one(tmp_path, name, wrong_hash)
    assert outcome.kind == "hash mismatch" and "block 0" in (outcome.reason or "")

    wrong_last = copy.deepcopy(test)
    wrong_last["lastblockhash"] = hexed(bytes(32))
    assert run_one(tmp_path, name, wrong_last).kind == "hash mismatch"

    wrong_post = copy.deepcopy(test)
    address, account = next(iter(wrong_post["postState"].items()))
    account["balance"] = hex(int(account["balance"], 16) + 1)
    outcome = run_one(tmp_path, name, wrong_post)
    assert outcome.kind == "post-state mismatch"
    assert address.lower() in (outcome.reason or "").lower()

    wrong_pre = copy.deepcopy(test)
    address, account = next(iter(wrong_pre["pre"].items()))
    account["nonce"] = hex(int(account["nonce"], 16) + 1)
    assert run_one(tmp_path, name, wrong_pre).kind == "root mismatch"  # genesis state root

    # A header field the execution contradicts: gas used (header field 10).
    wrong_gas = copy.deepcopy(test)
    wrong_gas["blocks"][0]["rlp"] = tampered_header(wrong_gas["blocks"][0]["rlp"], 10, b"\x01")
    outcome = run_one(tmp_path, name, wrong_gas)
    assert outcome.kind == "unexpected rejection"
    assert "BlockException.INVALID_GAS_USED" in (outcome.reason or "")


def test_the_chain_goes_on_from_the_parent_of_an_invalid_block(
    blockchain_tests: Path, tmp_path: Path
) -> None:
    name, test = first(load(blockchain_tests / VALID), "Cancun")
    blocks = test["blocks"]
    garbage = {"rlp": blocks[0]["rlp"] + "00", "expectException": "BlockException.RLP_STRUCTURES_ENCODING"}
    wrong_gas = {
        "rlp": tampered_header(blocks[1]["rlp"], 10, b"\x01"),
        "expectException": "BlockException.INVALID_GAS_USED",
    }
    # The first block again, on top of itself: its parent is no longer the head.
    again = {"rlp": blocks[0]["rlp"], "expectException": "BlockException.UNKNOWN_PARENT"}
    test["blocks"] = [garbage, blocks[0], wrong_gas, again, blocks[1]]
    outcome = run_one(tmp_path, name, test)
    assert outcome.status == "passed", outcome.reason


# ---------------------------------------------------------------------------------------------
# Layouts and networks


def test_classic_layout(blockchain_tests: Path, tmp_path: Path) -> None:
    """ethereum/tests' BlockchainTests: folders of JSON files, the same schema, no ``config``,
    exception names in another vocabulary."""
    valid_name, valid = first(load(blockchain_tests / VALID), "Cancun")
    invalid_name, invalid = first(load(blockchain_tests / INVALID), "Cancun")
    for test in (valid, invalid):
        del test["config"], test["_info"]
    invalid["blocks"][0]["expectException"] = "InvalidExcessBlobGas"
    folder = tmp_path / "BlockchainTests" / "ValidBlocks" / "bcExample"
    folder.mkdir(parents=True)
    (folder / "valid.json").write_text(json.dumps({valid_name: valid}))
    (folder.parent / "invalid.json").write_text(json.dumps({invalid_name: invalid}))
    report = conformance.run([tmp_path / "BlockchainTests"], threads=THREADS)
    assert (report.passed, report.failed, report.skipped) == (2, 0, 0), report.failures
    assert set(report.by_group()) == {"ValidBlocks", "ValidBlocks/bcExample"}

    # A classic invalid block must still be rejected.
    del invalid["blocks"][0]["expectException"]
    (folder.parent / "invalid.json").write_text(json.dumps({invalid_name: invalid}))
    report = conformance.run([tmp_path / "BlockchainTests"], threads=THREADS)
    assert [o.kind for o in report.failures] == ["unexpected rejection"]


def test_transition_networks_switch_by_timestamp(blockchain_tests: Path, tmp_path: Path) -> None:
    name, test = first(load(blockchain_tests / VALID), "Prague")
    # Every block of the fixture is before 15k: Prague rules, then Prague from time 0.
    for network in ("PragueToOsakaAtTime15k", "CancunToPragueAtTime0"):
        test["network"] = network
        assert run_one(tmp_path, name, test).status == "passed", network
    # Under Cancun rules until 15k, a block with Prague's requests hash is malformed.
    test["network"] = "CancunToPragueAtTime15k"
    outcome = run_one(tmp_path, name, test)
    assert outcome.kind == "unexpected rejection"
    assert "INCORRECT_BLOCK_FORMAT" in (outcome.reason or "")
    test["network"] = "Prague"
    test["config"]["blobSchedule"]["Prague"]["max"] = "0x0c"
    outcome = run_one(tmp_path, name, test)
    assert outcome.status == "skipped"
    assert outcome.reason is not None and outcome.reason.startswith("custom blob schedule")
    assert _core.blob_params("Prague") == (6, 9, 5007716)
    assert _core.blob_params("Shanghai") is None
    test["network"] = "HomesteadToDaoAt5"
    outcome = run_one(tmp_path, name, test)
    assert outcome.status == "skipped"
    assert outcome.reason == "fork HomesteadToDaoAt5: not supported by parex"


def test_fork_names_come_from_rust() -> None:
    assert _core.parse_fork("EIP158") == "SpuriousDragon"
    assert _core.parse_fork("merge") == "Paris"
    assert conformance.engine_fork("ConstantinopleFix") == "Petersburg"
    assert conformance.engine_fork("ParisToShanghaiAtTime15k") is None  # a schedule, not a fork
    assert conformance.engine_schedule("ParisToShanghaiAtTime15k") == "ParisToShanghaiAtTime15k"
    assert conformance.engine_schedule("Amsterdam") is None
    assert _core.fork_at("ParisToShanghaiAtTime15k", 3, 14_999) == "Paris"
    assert _core.fork_at("ParisToShanghaiAtTime15k", 3, 15_000) == "Shanghai"
    assert _core.fork_at("BerlinToLondonAt5", 5, 0) == "London"
    assert _core.fork_at("mainnet", 1_150_000, 0) == "Homestead"
    with pytest.raises(ValueError, match="Pragueish"):
        _core.parse_fork("Pragueish")
    with pytest.raises(ValueError, match="schedule"):
        _core.fork_at("CancunToShanghaiAtTime15k", 1, 1)


# ---------------------------------------------------------------------------------------------
# The bindings


def test_import_block_bindings(blockchain_tests: Path) -> None:
    _, test = first(load(blockchain_tests / VALID), "Prague")
    genesis = Header.of_block(bytes.fromhex(test["genesisRLP"][2:]))
    assert genesis.hash.hex() == test["genesisBlockHeader"]["hash"][2:]
    assert Header.decode(genesis.rlp) == genesis and genesis.number == 0
    state = replay.build_state(test["pre"], replay.Chain(codes={}, block_hashes={}), 0)
    rlp = bytes.fromhex(test["blocks"][0]["rlp"][2:])

    parallel = _core.import_block(rlp, genesis, state, schedule="Prague", threads=4)
    sequential = _core.import_block(rlp, genesis, state, schedule="Prague", sequential=True)
    assert parallel.result.same_outcome(sequential.result)
    assert parallel.hash == sequential.hash == bytes.fromhex(test["blocks"][0]["blockHeader"]["hash"][2:])
    assert parallel.fork == "Prague" and parallel.requests == []
    assert parallel.header.parent_hash == genesis.hash
    fields = test["blocks"][0]["blockHeader"]
    header = parallel.header
    assert header.beneficiary.hex() == fields["coinbase"][2:]
    assert header.base_fee_per_gas == int(fields["baseFeePerGas"], 16)
    assert header.blob_gas_used == int(fields["blobGasUsed"], 16)
    assert header.excess_blob_gas == int(fields["excessBlobGas"], 16)
    assert header.requests_hash is not None
    assert header.requests_hash.hex() == fields["requestsHash"][2:]
    assert header.withdrawals_root is not None
    assert header.withdrawals_root.hex() == fields["withdrawalsRoot"][2:]
    assert header.receipts_root.hex() == fields["receiptTrie"][2:]
    assert header.state_root.hex() == fields["stateRoot"][2:]
    assert header.difficulty == 0 and genesis.parent_beacon_block_root == bytes(32)
    assert parallel.result.stats["sequential_rule"] is None
    ruled = _core.import_block(rlp, genesis, state, schedule="Prague", sequential_rule=True)
    assert ruled.result.stats["sequential_rule"] is not None  # no transactions
    assert ruled.result.same_outcome(parallel.result)

    # The second block's transaction, from a sender left without funds.
    after = state.copy()
    after.apply(parallel.result)
    second = bytes.fromhex(test["blocks"][1]["rlp"][2:])
    imported = _core.import_block(second, parallel.header, after, schedule="Prague", threads=2)
    assert imported.hash.hex() == test["lastblockhash"][2:]
    [sender] = imported.result.senders
    poor = after.copy()
    poor.set_account(sender, 0)
    with pytest.raises(InvalidBlock) as info:
        _core.import_block(second, parallel.header, poor, schedule="Prague", threads=2)
    assert info.value.exception == "TransactionException.INSUFFICIENT_ACCOUNT_FUNDS"
    assert info.value.index == 0

    with pytest.raises(InvalidBlock) as info:
        _core.import_block(rlp, parallel.header, state, schedule="Prague")
    assert info.value.exception == "BlockException.UNKNOWN_PARENT" and info.value.index is None
    with pytest.raises(InvalidBlock) as info:
        _core.import_block(rlp[:-1], genesis, state, schedule="Prague")
    assert info.value.exception == "BlockException.RLP_STRUCTURES_ENCODING"
    with pytest.raises(InvalidBlock) as info:  # a Prague state without its system contracts
        _core.import_block(rlp, genesis, State(), schedule="Prague")
    assert info.value.exception == "BlockException.SYSTEM_CONTRACT_EMPTY"
    with pytest.raises(ValueError, match="schedule"):
        _core.import_block(rlp, genesis, state, schedule="Pragueish")
    with pytest.raises(ValueError, match="threads"):
        _core.import_block(rlp, genesis, state, schedule="Prague", threads=0)
    with pytest.raises(ValueError, match="block"):
        _core.import_block(42, genesis, state, schedule="Prague")  # type: ignore[arg-type]
    with pytest.raises(InvalidBlock):
        Header.decode(b"\x01\x02")
