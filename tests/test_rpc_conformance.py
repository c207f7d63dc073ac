"""
The Ethereum JSON-RPC conformance cases of ethereum/execution-apis (`tests/*/*.io`), run
against a real `parex node` over HTTP. The node's data dir holds hive's test chain
(`tests/chain.rlp` on `tests/genesis.json`, Homestead to BPO2), imported block by block
through parex-chain exactly as a syncing node would (`Chain.import_chain`).

Comparison: each `>>` request is sent as is and the reply must equal the `<<` line as JSON
(object equality: key order and whitespace do not matter), with one tolerated difference:
where the expected reply is an error, any error is accepted except "method not found"
(-32601). Error codes and messages are each client's own (hive's rpc-compat simulator
compares them the same way); a method parex lacks must not pass its error cases.

Every case runs; the results (pass, or the reason it failed) are written to
`.cache/rpc-conformance.json`, and the summary is printed. The test fails when fewer cases
pass than `PASS_FLOOR`, the count this branch reached (raise it as the node grows). Most
failures are methods parex does not have (debug_*, eth_simulateV1, eth_createAccessList,
eth_config, txpool_*, testing_*), state at older blocks (the node keeps the head's only),
and pre-merge/pre-London block and receipt fields (see docs/node.md).
"""

from __future__ import annotations

import gc
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from node_process import start_node

from _rlp import split as split_rlp
from shared_fixtures import CACHE, ROOT
from shared_fixtures import RPC_TESTS as FIXTURE

from parex import replay
from parex.node.chain import Chain
from parex.node.genesis import load_genesis

REPORT = ROOT / ".cache" / "rpc-conformance.json"
PASS_FLOOR = 71
"""Cases that must pass (see the module docstring)."""




def _post(url: str, body: str) -> Any:
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def _matches(got: Any, want: Any) -> bool:
    if isinstance(want, dict) and "error" in want:
        # Any error but "no such method": a method parex lacks does not pass its error cases.
        error = got.get("error") if isinstance(got, dict) else None
        return isinstance(error, dict) and error.get("code") != -32601 and got.get("id") == want.get("id")
    return bool(got == want)


def run_case(url: str, path: Path) -> str | None:
    """None when every exchange of the case matches, else why not."""
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("//")]
    pending: str | None = None
    for line in lines:
        if line.startswith(">>"):
            pending = line[2:].strip()
        elif line.startswith("<<") and pending is not None:
            want = json.loads(line[2:])
            got = _post(url, pending)
            if not _matches(got, want):
                return f"got {json.dumps(got)[:300]}, want {json.dumps(want)[:300]}"
            pending = None
    return None


@pytest.fixture(scope="module")
def tests_dir() -> Path:
    if not FIXTURE.exists():
        pytest.fail(f"{FIXTURE} is missing (see ../shared/fixtures/README.md)")
    return replay.extract(FIXTURE, CACHE) / "tests"


def test_rpc_conformance(tests_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    genesis = load_genesis(tests_dir / "genesis.json")
    chain = Chain.open(data_dir, genesis, threads=2)
    blocks = split_rlp((tests_dir / "chain.rlp").read_bytes())
    assert chain.import_chain(blocks) == len(blocks)
    head = json.loads((tests_dir / "headfcu.json").read_text())["params"][0]["headBlockHash"]
    assert "0x" + chain.head.hash.hex() == head
    del chain
    gc.collect()  # closes the store: the node process opens it next

    cases = sorted(tests_dir.glob("*/*.io"))
    results: dict[str, str | None] = {}
    with start_node(data_dir, block_time=0, extra_args=["--genesis", str(tests_dir / "genesis.json")]) as node:
        for case in cases:
            name = f"{case.parent.name}/{case.name}"
            try:
                results[name] = run_case(node.url, case)
            except Exception as e:  # a malformed reply is a failure of this case, not the run
                results[name] = f"{type(e).__name__}: {e}"
    passed = sorted(n for n, r in results.items() if r is None)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"passed": len(passed), "cases": len(results), "results": results}, indent=1))
    by_method: dict[str, list[int]] = {}
    for name, reason in results.items():
        counts = by_method.setdefault(name.split("/")[0], [0, 0])
        counts[0 if reason is None else 1] += 1
    print(f"\nRPC conformance: {len(passed)}/{len(results)} cases pass (details: {REPORT})")
    for method, (ok, bad) in sorted(by_method.items()):
        print(f"  {method:45} {ok:3} pass {bad:3} fail")
    assert len(passed) >= PASS_FLOOR, f"{len(passed)} cases pass, fewer than {PASS_FLOOR}"
