"""`parex conformance`: execution-spec state tests through the parallel engine.

A spread of folders of the shared EEST fixture must pass in full (the whole set runs with
`make conformance`); tampered fixtures must fail with the right reason.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared_fixtures import CACHE
from shared_fixtures import EEST as FIXTURE

from _rlp import encode
from parex import State, _core, conformance, replay
from parex.engine import Engine

THREADS = 2


# Folders that stress what a one-transaction block can get wrong: rejections (blob and
# fee-market validity, EIP-7702), the zero-fee and warm coinbase, EIP-161 deletions,
# self-destructs, creation collisions (EIP-7610), logs.
SUBSET = [
    "cancun/eip4844_blobs",
    "cancun/eip6780_selfdestruct",
    "paris/eip7610_create_collision",
    "prague/eip7702_set_code_tx",
    "shanghai/eip3651_warm_coinbase",
    "static/state_tests/stCreate2",
    "static/state_tests/stEIP1559",
    "static/state_tests/stEIP158Specific",
    "static/state_tests/stExtCodeHash",
    "static/state_tests/stLogTests",
    "static/state_tests/stTransactionTest",
]
WITH_LOGS = "static/state_tests/stLogTests/log1_emptyMem.json"
EXPECTS_EXCEPTION = "static/state_tests/stTransactionTest/HighGasPriceParis.json"
BLOCKCHAIN_TEST = "cancun/eip1153_tstore/test_basic_tload_after_store.json"


@pytest.fixture(scope="module")
def fixture_root() -> Path:
    """The extracted fixture's ``eest_cancun_prague`` folder."""
    return replay.extract(FIXTURE, CACHE) / "eest_cancun_prague"


@pytest.fixture(scope="module")
def state_tests(fixture_root: Path) -> Path:
    return fixture_root / "state_tests"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def write(tmp_path: Path, name: str, tests: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tests))
    return path


def first_entry(tests: dict[str, Any]) -> dict[str, Any]:
    test = next(iter(tests.values()))
    entries: list[dict[str, Any]] = next(iter(test["post"].values()))
    return entries[0]


def only_one(tests: dict[str, Any]) -> dict[str, Any]:
    """The first test of a file, alone (one fork, one entry)."""
    name, test = next(iter(tests.items()))
    return {name: copy.deepcopy(test)}


def run(*paths: Path, **options: Any) -> conformance.Report:
    return conformance.run(list(paths), threads=THREADS, **options)


# ---------------------------------------------------------------------------------------------
# The subset passes


@pytest.mark.parametrize("folder", SUBSET)
def test_subset_passes(state_tests: Path, folder: str) -> None:
    report = run(state_tests / folder)
    failures = [f"{o.name}: {o.reason}" for o in report.failures]
    assert not failures, "\n".join(failures[:20])
    assert report.passed > 0 and report.skipped == 0
    assert all(group.startswith(folder) for group in report.by_group())
    assert set(report.by_fork()) == {"Cancun", "Prague"}


def test_subset_exercises_rejections(state_tests: Path) -> None:
    """Entries with expectException pass because the engine rejects them."""
    tests = load(state_tests / EXPECTS_EXCEPTION)
    entry = first_entry(tests)
    assert entry.get("expectException")
    test = next(iter(tests.values()))
    fork = conformance.engine_fork(next(iter(test["post"])))
    assert fork is not None
    env = conformance.block_env(test["env"], fork)
    state = conformance.build_pre_state(test["pre"], env.number)
    with pytest.raises(_core.TransactionError):
        Engine(threads=THREADS, sequential_rule=False).execute(env, [bytes.fromhex(entry["txbytes"][2:])], state)
    assert run(state_tests / EXPECTS_EXCEPTION).failed == 0


# ---------------------------------------------------------------------------------------------
# Tampered fixtures fail with the right reason


def single_failure(path: Path) -> conformance.Outcome:
    report = run(path)
    assert report.failed == 1 and report.passed == 0, report.as_dict()
    return report.failures[0]


def test_tampered_hash_is_a_root_mismatch(state_tests: Path, tmp_path: Path) -> None:
    tests = only_one(load(state_tests / WITH_LOGS))
    entry = first_entry(tests)
    entry["hash"] = "0x" + "11" * 32
    failure = single_failure(write(tmp_path, "hash.json", tests))
    assert failure.kind == "root mismatch"
    assert failure.reason is not None and "expected 0x" + "11" * 32 in failure.reason


def test_root_mismatch_names_the_differing_account(state_tests: Path, tmp_path: Path) -> None:
    tests = only_one(load(state_tests / WITH_LOGS))
    test = next(iter(tests.values()))
    entry = first_entry(tests)
    sender = test["transaction"]["sender"]
    account = next(v for k, v in entry["state"].items() if k.lower() == sender.lower())
    account["balance"] = hex(int(account["balance"], 16) + 1)
    entry["hash"] = "0x" + "22" * 32
    failure = single_failure(write(tmp_path, "balance.json", tests))
    assert failure.kind == "root mismatch"
    assert failure.reason is not None and f"{sender.lower()} balance" in failure.reason


def test_tampered_logs_are_a_logs_mismatch(state_tests: Path, tmp_path: Path) -> None:
    tests = only_one(load(state_tests / WITH_LOGS))
    first_entry(tests)["logs"] = conformance.EMPTY_LOGS_HASH.hex()
    failure = single_failure(write(tmp_path, "logs.json", tests))
    assert failure.kind == "logs mismatch"


def test_truncated_txbytes_are_an_unexpected_rejection(
    state_tests: Path, tmp_path: Path
) -> None:
    tests = only_one(load(state_tests / WITH_LOGS))
    entry = first_entry(tests)
    entry["txbytes"] = entry["txbytes"][:-10]
    failure = single_failure(write(tmp_path, "truncated.json", tests))
    assert failure.kind == "unexpected rejection"
    assert failure.reason is not None and "DecodeError" in failure.reason


def test_tampered_signature_is_an_unexpected_rejection(
    state_tests: Path, tmp_path: Path
) -> None:
    tests = only_one(load(state_tests / WITH_LOGS))
    entry = first_entry(tests)
    raw = bytearray.fromhex(entry["txbytes"][2:])
    raw[-5] ^= 0xFF  # inside s: another (unfunded) sender, or no sender at all
    entry["txbytes"] = "0x" + raw.hex()
    failure = single_failure(write(tmp_path, "signature.json", tests))
    assert failure.kind == "unexpected rejection", failure.reason


def test_expected_exception_must_be_raised(state_tests: Path, tmp_path: Path) -> None:
    tests = only_one(load(state_tests / WITH_LOGS))
    first_entry(tests)["expectException"] = "TransactionException.INTRINSIC_GAS_TOO_LOW"
    failure = single_failure(write(tmp_path, "missing.json", tests))
    assert failure.kind == "missing rejection"
    assert failure.reason is not None and "INTRINSIC_GAS_TOO_LOW" in failure.reason


def test_rejection_without_expected_exception_fails(state_tests: Path, tmp_path: Path) -> None:
    tests = only_one(load(state_tests / EXPECTS_EXCEPTION))
    del first_entry(tests)["expectException"]
    failure = single_failure(write(tmp_path, "unexpected.json", tests))
    assert failure.kind == "unexpected rejection"


# ---------------------------------------------------------------------------------------------
# Skips, filters and the test-kind dispatch


def test_blockchain_tests_run_one_case_per_network(fixture_root: Path) -> None:
    path = fixture_root / "blockchain_tests" / BLOCKCHAIN_TEST
    report = run(path)
    assert report.passed == len(load(path)) == 2
    assert report.by_group() == {"cancun/eip1153_tstore": conformance.Tally(2, 0, 0)}
    assert set(report.by_fork()) == {"Cancun", "Prague"}
    assert report.by_suite() == {"blockchain": conformance.Tally(2, 0, 0)}
    assert report.by_group(with_suite=True) == {
        "blockchain: cancun/eip1153_tstore": conformance.Tally(2, 0, 0)
    }
    assert all(o.index is None and o.name.endswith(f"[{o.fork}]") for o in report.outcomes)


def test_unknown_fork_is_skipped_with_a_reason(state_tests: Path, tmp_path: Path) -> None:
    tests = only_one(load(state_tests / WITH_LOGS))
    test = next(iter(tests.values()))
    test["post"] = {"Amsterdam": next(iter(test["post"].values()))}
    report = run(write(tmp_path, "future.json", tests))
    assert (report.passed, report.failed, report.skipped) == (0, 0, 1)
    assert report.skips[0].reason == "fork Amsterdam: not supported by parex"


def test_not_a_test_is_skipped(tmp_path: Path) -> None:
    report = run(write(tmp_path, "other.json", {"a": {"b": 1}}))
    assert [s.reason for s in report.skips] == ["not an execution-spec test"]


def test_fork_and_keyword_filters(state_tests: Path) -> None:
    folder = state_tests / "static/state_tests/stLogTests"
    everything = run(folder)
    prague = run(folder, forks=["prague"])
    assert set(prague.by_fork()) == {"Prague"}
    assert 0 < prague.passed < everything.passed
    some = run(folder, keyword="log1_")
    assert 0 < some.passed < everything.passed
    assert all("log1_" in o.test for o in some.outcomes)


def test_archive_path_and_groups(state_tests: Path) -> None:
    files = conformance.fixture_files([FIXTURE], CACHE)
    groups = {f.group for f in files}
    assert "cancun/eip4844_blobs" in groups and "static/state_tests/stEIP1559" in groups
    assert len({f.path for f in files}) == len(files)


# ---------------------------------------------------------------------------------------------
# The Rust commitments


def test_state_root_and_logs_hash_bindings(state_tests: Path) -> None:
    assert _core.state_root(State()).hex() == (
        "56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
    )
    tests = load(state_tests / WITH_LOGS)
    test = next(iter(tests.values()))
    fork_name, entries = next(iter(test["post"].items()))
    fork = conformance.engine_fork(fork_name)
    assert fork is not None
    env = conformance.block_env(test["env"], fork)
    state = conformance.build_pre_state(test["pre"], env.number)
    txbytes = bytes.fromhex(entries[0]["txbytes"][2:])
    result = Engine(threads=THREADS, sequential_rule=False).execute(env, [txbytes], state)
    logs = [log for receipt in result.receipts for log in receipt.logs]
    assert logs, "the fixture emits a log"
    rlp = encode([[log.address, list(log.topics), log.data] for log in logs])
    assert _core.logs_hash(result) == _core.keccak256(rlp)
    assert _core.logs_hash(result).hex() == entries[0]["logs"][2:]
    after = state.copy()
    after.apply(result)
    assert _core.state_root(after).hex() == entries[0]["hash"][2:]
    assert _core.state_root(state) != _core.state_root(after)


# ---------------------------------------------------------------------------------------------
# The command


def parex_command() -> list[str]:
    script = shutil.which("parex", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "parex"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        parex_command() + ["conformance", *args], capture_output=True, text=True, timeout=600
    )


def test_cli_json(state_tests: Path, fixture_root: Path) -> None:
    proc = run_cli(
        str(state_tests / "static/state_tests/stLogTests"),
        str(fixture_root / "blockchain_tests" / BLOCKCHAIN_TEST),
        "--threads", "2", "--json",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # stdout holds the JSON and nothing else
    assert set(report) == {"passed", "failed", "skipped", "failures", "skips"}
    assert report["passed"] > 2 and report["failed"] == 0 and report["failures"] == []
    assert report["skipped"] == len(report["skips"]) == 0


def test_cli_fails_and_names_the_failure(state_tests: Path, tmp_path: Path) -> None:
    tests = only_one(load(state_tests / WITH_LOGS))
    first_entry(tests)["hash"] = "0x" + "33" * 32
    path = write(tmp_path, "tampered.json", tests)
    proc = run_cli(str(path), "-t", "2", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["failed"] == 1
    (failure,) = report["failures"]
    assert failure["name"].startswith(next(iter(tests)))
    assert failure["reason"].startswith("root mismatch")

    table = run_cli(str(path), "-t", "2")
    assert table.returncode == 1
    assert "root mismatch" in table.stdout and "by folder" in table.stdout


def test_cli_rejects_bad_input(tmp_path: Path) -> None:
    assert run_cli(str(tmp_path / "absent")).returncode == 2
    assert run_cli().returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli(str(empty))
    assert proc.returncode == 1 and "no tests matched" in proc.stderr
