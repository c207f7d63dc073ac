"""`parex replay`: real mainnet blocks against their headers, parallel against sequential."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared_fixtures import CACHE
from shared_fixtures import MAINNET as FIXTURE

from parex import DecodeError, Fork, replay




@pytest.fixture(scope="module")
def mainnet() -> Path:
    """The extracted fixture's block folders' parent (``.../mainnet``)."""
    dirs = replay.block_dirs(FIXTURE, CACHE)
    return dirs[0].parent.parent


def parex_command() -> list[str]:
    script = shutil.which("parex", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "parex"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        parex_command() + ["replay", *args], capture_output=True, text=True, timeout=600
    )


def test_mainnet_fork_schedule() -> None:
    f = replay.mainnet_fork
    assert f(0, 0) is Fork.FRONTIER
    assert f(1_149_999, 0) is Fork.FRONTIER
    assert f(1_150_000, 0) is Fork.HOMESTEAD
    assert f(2_463_000, 0) is Fork.TANGERINE_WHISTLE
    assert f(2_675_000, 0) is Fork.SPURIOUS_DRAGON
    assert f(4_369_999, 0) is Fork.SPURIOUS_DRAGON
    assert f(4_370_000, 0) is Fork.BYZANTIUM
    assert f(7_280_000, 0) is Fork.PETERSBURG
    assert f(9_069_000, 0) is Fork.ISTANBUL
    assert f(9_200_000, 0) is Fork.MUIR_GLACIER
    assert f(12_244_000, 0) is Fork.BERLIN
    assert f(12_965_000, 0) is Fork.LONDON
    assert f(13_773_000, 0) is Fork.ARROW_GLACIER
    assert f(15_050_000, 0) is Fork.GRAY_GLACIER
    assert f(15_537_393, 1_663_224_162) is Fork.GRAY_GLACIER
    assert f(15_537_394, 1_663_224_179) is Fork.PARIS
    assert f(17_034_869, 1_681_338_443) is Fork.PARIS
    assert f(17_034_870, 1_681_338_455) is Fork.SHANGHAI
    assert f(19_426_586, 1_710_338_123) is Fork.SHANGHAI
    assert f(19_426_587, 1_710_338_135) is Fork.CANCUN
    assert f(22_431_084, 1_746_612_311) is Fork.PRAGUE


def test_sequential_rule_takes_small_blocks_and_still_checks_block_stm(mainnet: Path) -> None:
    tiny = replay.load_block(mainnet / "blocks" / "46147")  # one transfer
    report = replay.replay_block(tiny, threads=2, repeat=1)
    assert report.ok and report.identical  # includes a run forced onto Block-STM
    assert report.sequential_rule == "1 transaction(s): nothing to run side by side"
    forced = replay.replay_block(tiny, threads=2, repeat=1, sequential_rule=False)
    assert forced.ok and forced.sequential_rule is None

    payout = replay.load_block(mainnet / "blocks" / "5891667")  # one sender, 380 transfers
    report = replay.replay_block(payout, threads=2, repeat=1, trace=False)
    assert report.ok and report.sequential_rule == "0 of 380 transactions carry calldata (under 12)"

    chained = replay.load_block(mainnet / "blocks" / "1796867")  # 34 calls, 28 from one sender
    report = replay.replay_block(chained, threads=2, repeat=1, trace=False)
    assert report.ok and (report.sequential_rule or "").startswith("one sender sends")

    busy = replay.load_block(mainnet / "blocks" / "4864590")  # 88 calls, 195 senders
    report = replay.replay_block(busy, threads=2, repeat=1, trace=False)
    assert report.ok and report.sequential_rule is None


def test_extraction_is_idempotent(mainnet: Path) -> None:
    stamp = CACHE / "mainnet-blocks" / ".parex-extracted"
    before = stamp.stat().st_mtime_ns
    assert replay.extract(FIXTURE, CACHE) == CACHE / "mainnet-blocks"
    assert stamp.stat().st_mtime_ns == before  # not extracted again
    assert len(replay.block_dirs(mainnet)) == 49
    assert replay.block_dirs(FIXTURE, CACHE) == replay.block_dirs(CACHE / "mainnet-blocks")


def test_every_mainnet_block_matches_its_header(mainnet: Path) -> None:
    report = replay.replay(mainnet, threads=2, repeat=1, trace=False)
    assert len(report.blocks) == 49
    assert sum(b.txs for b in report.blocks) == 12_055
    problems = [
        (b.number, b.error, {c.name: (c.expected, c.actual) for c in b.checks if not c.ok})
        for b in report.blocks
        if not b.ok
    ]
    assert not problems
    for b in report.blocks:
        skipped = b.number < 4_370_000
        assert b.skipped_checks == (["receipts_root"] if skipped else []), b.number
    assert report.total_speedup is not None and report.total_speedup > 0


def test_header_mismatches_are_reported(mainnet: Path) -> None:
    block = replay.load_block(mainnet / "blocks" / "19934116")
    good = replay.replay_block(block, threads=2, repeat=1)
    assert good.ok and good.ideal_speedup is not None and good.ideal_speedup >= 1

    wrong_root = replay.with_header(block, receipts_root=bytes(32))
    report = replay.replay_block(wrong_root, threads=2, repeat=1)
    assert not report.matches_header and not report.ok
    assert report.failed_checks == ["receipts_root"]
    assert report.identical  # the execution itself is fine
    assert report.as_dict()["checks"] == {
        "gas_used": True, "logs_bloom": True, "transactions_root": True, "receipts_root": False,
    }

    # Drop the last transaction: its gas, logs and receipt go missing from the replay.
    dropped = replay.ReplayBlock(
        number=block.number,
        env=block.env,
        transactions=block.transactions[:-1],
        state=block.state,
        header=block.header,
    )
    report = replay.replay_block(dropped, threads=2, repeat=1)
    assert set(report.failed_checks) >= {"gas_used", "receipts_root", "transactions_root"}


def test_pre_byzantium_receipts_root_is_skipped(mainnet: Path) -> None:
    block = replay.load_block(mainnet / "blocks" / "116525")
    assert block.fork == Fork.FRONTIER
    wrong = replay.with_header(block, receipts_root=bytes(32))
    report = replay.replay_block(wrong, threads=2, repeat=1)
    assert report.ok and report.skipped_checks == ["receipts_root"]
    assert report.as_dict()["checks"]["receipts_root"] is None


def copy_block(mainnet: Path, number: int, dest: Path) -> Path:
    """A fixture of one block under ``dest``, whose block.json the test may edit."""
    root = dest / "fixture"
    (root / "blocks").mkdir(parents=True)
    shutil.copytree(mainnet / "blocks" / str(number), root / "blocks" / str(number))
    for name in ("bytecodes.json", "block_hashes.json"):
        shutil.copy(mainnet / name, root / name)
    return root / "blocks" / str(number)


def test_a_lossy_transaction_conversion_fails_loudly(mainnet: Path, tmp_path: Path) -> None:
    block_dir = copy_block(mainnet, 12_522_062, tmp_path)
    block = json.loads((block_dir / "block.json").read_text())
    block["transactions"][5]["value"] = hex(int(block["transactions"][5]["value"], 16) + 1)
    (block_dir / "block.json").write_text(json.dumps(block))
    with pytest.raises(DecodeError) as err:
        replay.load_block(block_dir)
    assert err.value.index == 5 and "hashes to" in str(err.value)

    report = replay.replay(block_dir, threads=2, repeat=1)
    assert not report.ok and report.blocks[0].error is not None
    assert "transaction 5" in report.blocks[0].error


def test_a_block_without_transactions(mainnet: Path, tmp_path: Path) -> None:
    block_dir = copy_block(mainnet, 19_934_116, tmp_path)
    block = json.loads((block_dir / "block.json").read_text())
    block["transactions"] = []
    block["gasUsed"] = "0x0"
    block["logsBloom"] = "0x" + "00" * 256
    empty = "0x" + replay.EMPTY_ROOT.hex()
    block["receiptsRoot"] = block["transactionsRoot"] = empty
    (block_dir / "block.json").write_text(json.dumps(block))
    report = replay.replay(block_dir, threads=2, repeat=1)
    assert report.ok
    [b] = report.blocks
    assert b.txs == 0 and b.gas == 0 and b.speedup is None
    assert report.total_speedup is None and report.min_speedup is None


def test_cli_json_and_exit_status(mainnet: Path, tmp_path: Path) -> None:
    proc = run_cli(str(mainnet / "blocks" / "4864590"), "--json", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # stdout holds the JSON and nothing else
    [row] = out["blocks"]
    assert {"number", "txs", "gas", "speedup", "ideal_speedup", "matches_header", "identical"} <= set(row)
    assert row["number"] == 4_864_590 and row["txs"] == 195
    assert row["matches_header"] is True and row["identical"] is True
    assert out["total_speedup"] == pytest.approx(row["speedup"]) == out["min_speedup"]

    proc = run_cli(str(mainnet / "blocks" / "46147"), "--json", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["blocks"][0]["sequential_rule"] is not None
    proc = run_cli(str(mainnet / "blocks" / "46147"), "--json", "--repeat", "1", "--force-parallel")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["blocks"][0]["sequential_rule"] is None

    block_dir = copy_block(mainnet, 4_864_590, tmp_path)
    block = json.loads((block_dir / "block.json").read_text())
    block["logsBloom"] = "0x" + "ff" * 256
    (block_dir / "block.json").write_text(json.dumps(block))
    proc = run_cli(str(block_dir.parent.parent), "--repeat", "1")
    assert proc.returncode == 1
    assert "NO" in proc.stdout and "logs_bloom" in proc.stdout
    assert "logs_bloom differs" in proc.stderr


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    assert run_cli().returncode == 2  # PATH is required
    assert run_cli(str(tmp_path / "absent")).returncode == 2
    proc = run_cli(str(tmp_path))
    assert proc.returncode == 1 and "not a replay fixture" in proc.stderr
    assert run_cli(str(tmp_path), "--threads", "0").returncode == 2
