"""benches/compare_builds.py: builds loaded side by side in one process, their runs checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared_fixtures import ROOT

SCRIPT = ROOT / "benches" / "compare_builds.py"


def compare_builds(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_a_saved_build_and_the_installed_one_run_side_by_side(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    assert compare_builds("save", str(saved)).returncode == 0
    assert any(saved.glob("_core*.so"))

    run = compare_builds(
        "run", str(saved), str(ROOT / "python" / "parex"),
        "--workload", "erc20", "--conflict", "50", "--txs", "24", "--rounds", "2",
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    # Two copies of the extension in one process: each build ran and reports its own line.
    assert [line.split()[0] for line in lines] == ["build0", "build1"]
    assert all(" r2 " in line and "erc20 c50" in line for line in lines)
    assert lines[0].endswith(str(saved))


def test_a_folder_without_a_build_is_named(tmp_path: Path) -> None:
    run = compare_builds("run", str(tmp_path), "--txs", "4", "--rounds", "1")
    assert run.returncode != 0
    assert f"{tmp_path} is not a built parex package" in run.stderr
