"""
Conformance with the Ethereum execution-spec tests (EEST fixtures).

A fixture file is JSON: ``{test name: test}``. Each test is classified by its shape
(:func:`fixture_kind`):

- a **state test** (``env``, ``pre``, ``transaction``, ``post``): :func:`run_state_test`;
- a **blockchain test** (``blocks``; EEST fixtures and ethereum/tests' classic
  ``BlockchainTests`` share the schema): :func:`run_blockchain_test`;
- anything else is skipped with the reason that it is not a test.

A blockchain test is one case, under its ``network`` (a fork or a transition such as
``ShanghaiToCancunAtTime15k``, parsed by Rust's ``ForkSchedule``):

1. ``pre`` becomes a :class:`~parex._core.State` whose root must be the genesis header's
   (``genesisRLP``), and the genesis hash must be ``genesisBlockHeader.hash``;
2. every block's ``rlp`` goes through :func:`parex._core.import_block`: header validation,
   system calls, the transactions through Block-STM, withdrawals, requests, and every
   commitment of the header. A block with ``expectException`` must be rejected with one of
   the ``|``-separated names (:attr:`~parex._core.InvalidBlock.exception`; for a classic
   fixture, whose names are not EEST's, any rejection counts), and the chain goes on from its
   parent; any other block must be accepted, and its hash must be ``blockHeader.hash``;
3. the last block's hash must be ``lastblockhash`` and the state root that of ``postState``
   (the first differing accounts are named).

For a state test, each fork of ``post`` that parex knows (:func:`engine_fork`) and each entry
under it is one **case**:

1. the pre-state becomes a :class:`~parex._core.State` (accounts, code, storage) plus the
   block hashes state tests assume for ``BLOCKHASH``: ``keccak256(str(n))`` for the 256
   blocks below ``currentNumber``, the convention of the reference state-test runners
   (geth's ``vmTestBlockHash``, revm's ``statetest``); block hashes are not in the state root;
2. ``env`` becomes a :class:`~parex.engine.BlockEnv` (``currentRandom`` is ``PREVRANDAO``,
   chain id from ``config.chainid``, default 1; fork from the ``post`` key);
3. the entry's ``txbytes`` (the signed EIP-2718 envelope of the filled transaction) runs as a
   one-transaction block through the parallel engine (``Engine(threads).execute``);
4. the result is applied to a copy of the pre-state and checked: the state root (Rust,
   :func:`parex._core.state_root`) against ``hash``, and keccak256 of the RLP list of the logs
   (:func:`parex._core.logs_hash`) against ``logs``.

An entry with ``expectException`` must be rejected (the engine raises a
:class:`~parex._core.TransactionError`), and then the post-state is the pre-state, whose root
must still be ``hash``. The engine's reason is not compared with the fixture's exception name
(the vocabularies differ). An entry without ``expectException`` that the engine rejects fails
with the engine's reason.

Failure reasons start with one of :data:`FAILURE_KINDS`; a root mismatch also names the first
accounts whose balance, nonce, code or storage differ from the fixture's full post-state.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import _core
from ._core import BlockResult, Header, InvalidBlock, ParexError, State, TransactionError
from .engine import BlockEnv, Engine, default_threads
from .replay import Chain, build_state, fixture_root, parse_hex, parse_quantity

FAILURE_KINDS = (
    "root mismatch",
    "logs mismatch",
    "hash mismatch",
    "post-state mismatch",
    "wrong rejection",
    "unexpected rejection",
    "missing rejection",
    "engine error",
    "bad fixture",
)
"""The first words of every failure reason."""

EMPTY_LOGS_HASH = bytes.fromhex(
    "1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
)
"""keccak256(rlp([])): the logs hash of a transaction without logs (or of none)."""

Status = Literal["passed", "failed", "skipped"]
TestKind = Literal["state", "blockchain"]

_ROOT_FOLDERS = ("state_tests", "blockchain_tests")

def engine_fork(name: str) -> str | None:
    """The parex fork for a fixture's fork name (case-insensitive, execution-spec aliases such
    as ``EIP158`` included), or ``None``. The parser is Rust's (:func:`parex._core.parse_fork`),
    the one the engine uses."""
    try:
        return _core.parse_fork(name)
    except ValueError:
        return None


def engine_schedule(name: str) -> str | None:
    """``name`` when parex can run a chain under it: a fork or a transition such as
    ``ShanghaiToCancunAtTime15k`` (Rust's ``ForkSchedule`` parser); else ``None``."""
    try:
        _core.fork_at(name, 0, 0)
    except ValueError:
        return None
    return name


# ---------------------------------------------------------------------------------------------
# Locating fixture files


@dataclass(frozen=True, slots=True)
class FixtureFile:
    """One JSON fixture file and the folder it is reported under."""

    path: Path
    group: str
    """The folder under ``state_tests``/``blockchain_tests`` (``cancun/eip4844_blobs``), else
    the folder relative to the path it was found under."""


def _group(path: Path, base: Path) -> str:
    parts = path.parent.parts
    for i, part in enumerate(parts):
        if part in _ROOT_FOLDERS:
            rest = parts[i + 1 :]
            return "/".join(rest) if rest else part
    try:
        rel = path.parent.relative_to(base)
    except ValueError:
        rel = Path(path.parent.name)
    return rel.as_posix() if rel.parts else path.parent.name or "."


def fixture_files(
    paths: Iterable[Path | str], cache_dir: Path | str | None = None
) -> list[FixtureFile]:
    """
    The JSON fixture files under ``paths``, in path order, each once. A path is a ``.tar.gz``
    archive (extracted once into ``cache_dir``, see :func:`parex.replay.extract`), a folder
    (searched recursively) or a JSON file.
    """
    found: dict[Path, FixtureFile] = {}
    for raw in paths:
        path = fixture_root(raw, cache_dir)
        if path.is_file():
            files = [path]
            base = path.parent
        else:
            files = sorted(p for p in path.rglob("*.json") if p.is_file())
            base = path
        base = base.resolve()
        for f in files:
            key = f.resolve()
            if key not in found:
                found[key] = FixtureFile(f, _group(key, base))
    return sorted(found.values(), key=lambda f: f.path.as_posix())


def fixture_kind(test: object) -> TestKind | None:
    """``"state"``, ``"blockchain"`` or ``None`` (not an execution-spec test)."""
    if not isinstance(test, Mapping):
        return None
    if "blocks" in test:
        return "blockchain"
    if all(k in test for k in ("env", "pre", "transaction", "post")):
        return "state"
    return None


# ---------------------------------------------------------------------------------------------
# Building a state test


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def state_test_hashes(number: int) -> Iterator[tuple[int, bytes]]:
    """The ``BLOCKHASH`` answers a state test at block ``number`` assumes: keccak256 of the
    decimal number, for the 256 blocks below it."""
    for n in range(max(0, number - 256), number):
        yield n, _core.keccak256(str(n).encode())


def build_pre_state(pre: Mapping[str, Any], number: int = 0) -> State:
    """The :class:`State` of a state test's ``pre`` (and its block hashes, see above)."""
    return build_state(pre, Chain(codes={}, block_hashes=dict(state_test_hashes(number))), number)


def block_env(env: Mapping[str, Any], fork: str, chain_id: int = 1) -> BlockEnv:
    """The :class:`BlockEnv` of a state test's ``env`` under ``fork`` (a parex fork name)."""
    random = env.get("currentRandom")
    return BlockEnv(
        number=parse_quantity(env.get("currentNumber", 1)),
        timestamp=parse_quantity(env.get("currentTimestamp", 0)),
        beneficiary=parse_hex(env["currentCoinbase"]),
        base_fee=parse_quantity(env.get("currentBaseFee", 0)),
        gas_limit=parse_quantity(env["currentGasLimit"]),
        prevrandao=parse_hex(random).rjust(32, b"\0") if random is not None else bytes(32),
        difficulty=parse_quantity(env.get("currentDifficulty", 0)),
        # Ignored by the engine before Cancun.
        excess_blob_gas=parse_quantity(env.get("currentExcessBlobGas", 0)),
        chain_id=chain_id,
        fork=fork,
    )


# ---------------------------------------------------------------------------------------------
# Outcomes


@dataclass(frozen=True, slots=True)
class Outcome:
    """One case: a post entry of a state test under one fork, a whole blockchain test (fork:
    its ``network``, no index), or one skipped test."""

    test: str
    fork: str | None
    index: int | None
    group: str
    status: Status
    reason: str | None = None
    suite: TestKind | None = None
    """``"state"`` or ``"blockchain"``; ``None`` for a file or object that is not a test."""

    @property
    def name(self) -> str:
        """The test name with the fork and post index: ``name [Prague #0]``."""
        if self.fork is None:
            return self.test
        if self.index is None:
            return f"{self.test} [{self.fork}]"
        return f"{self.test} [{self.fork} #{self.index}]"

    @property
    def kind(self) -> str | None:
        """The failure kind (one of :data:`FAILURE_KINDS`) or the skip reason."""
        if self.reason is None:
            return None
        if self.status == "failed":
            return next((k for k in FAILURE_KINDS if self.reason.startswith(k)), self.reason)
        return self.reason


@dataclass(frozen=True, slots=True)
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, status: Status) -> Tally:
        return Tally(
            self.passed + (status == "passed"),
            self.failed + (status == "failed"),
            self.skipped + (status == "skipped"),
        )


@dataclass(slots=True)
class Report:
    """Every case of a conformance run."""

    outcomes: list[Outcome] = field(default_factory=list)
    threads: int = 1
    elapsed_s: float = 0.0

    def _count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def passed(self) -> int:
        return self._count("passed")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def skips(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "skipped"]

    def by_fork(self) -> dict[str, Tally]:
        """Counts per fork (``-`` for tests skipped as a whole), forks in fixture order."""
        out: dict[str, Tally] = {}
        for o in self.outcomes:
            key = o.fork or "-"
            out[key] = out.get(key, Tally()).add(o.status)
        return out

    def by_group(self, *, with_suite: bool = False) -> dict[str, Tally]:
        """Counts per folder, sorted; ``with_suite`` keys them ``state: cancun/...`` and
        ``blockchain: cancun/...`` (the two kinds share folder names)."""
        out: dict[str, Tally] = {}
        for o in self.outcomes:
            key = f"{o.suite or '-'}: {o.group}" if with_suite else o.group
            out[key] = out.get(key, Tally()).add(o.status)
        return dict(sorted(out.items()))

    def by_suite(self) -> dict[str, Tally]:
        """Counts per kind of test: ``state``, ``blockchain`` (``-`` for non-tests)."""
        out: dict[str, Tally] = {}
        for o in self.outcomes:
            key = o.suite or "-"
            out[key] = out.get(key, Tally()).add(o.status)
        return dict(sorted(out.items()))

    def failure_kinds(self) -> Counter[str]:
        return Counter(o.kind or "" for o in self.failures)

    def skip_reasons(self) -> Counter[str]:
        return Counter(o.reason or "" for o in self.skips)

    def as_dict(self) -> dict[str, object]:
        """The ``--json`` document."""
        return {
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "failures": [{"name": o.name, "reason": o.reason} for o in self.failures],
            "skips": [{"name": o.name, "reason": o.reason} for o in self.skips],
        }


# ---------------------------------------------------------------------------------------------
# Running a blockchain test


def _expected_exceptions(text: str) -> list[str]:
    return [name.strip() for name in text.split("|") if name.strip()]


def _rejection_matches(expected: list[str], exception: str) -> bool:
    """True when ``exception`` is one of ``expected``; classic fixtures name exceptions in
    another vocabulary (no ``Exception.`` in the name), where any rejection matches."""
    if not any("Exception." in name for name in expected):
        return True
    return exception in expected


def blob_schedule_mismatch(config: Mapping[str, Any]) -> str | None:
    """Why a fixture's ``config.blobSchedule`` (EIP-7840) differs from the blob parameters
    parex applies per fork (:func:`parex._core.blob_params`), or ``None`` when it agrees."""
    schedule = config.get("blobSchedule") or {}
    if not isinstance(schedule, Mapping):
        return "blobSchedule is not a mapping"
    for fork_name, params in schedule.items():
        fork = engine_fork(fork_name)
        if fork is None:
            return f"blobSchedule names fork {fork_name}, which parex does not know"
        ours = _core.blob_params(fork)
        theirs = (
            parse_quantity(params.get("target", 0)),
            parse_quantity(params.get("max", 0)),
            parse_quantity(params.get("baseFeeUpdateFraction", 0)),
        )
        if ours != theirs:
            return (
                f"blobSchedule for {fork_name} is (target, max, fraction) {theirs}; "
                f"parex applies {ours}"
            )
    return None


def _check_chain(
    test: Mapping[str, Any], engine: Engine, network: str
) -> tuple[Status, str | None]:
    chain_id = parse_quantity((test.get("config") or {}).get("chainid", 1))
    try:
        genesis = Header.of_block(parse_hex(test["genesisRLP"]))
    except (KeyError, ValueError, InvalidBlock) as err:
        return "failed", f"bad fixture: genesis: {type(err).__name__}: {err}"
    expected_genesis = (test.get("genesisBlockHeader") or {}).get("hash")
    if expected_genesis is not None and genesis.hash != parse_hex(expected_genesis):
        return "failed", (
            f"hash mismatch: genesis hash {_hex(genesis.hash)}, expected {expected_genesis}"
        )
    pre = test["pre"]
    state = build_state(pre, Chain(codes={}, block_hashes={}), 0)
    root = _core.state_root(state)
    if root != genesis.state_root:
        return "failed", _root_mismatch(genesis.state_root, root, pre, pre, state, None)
    state.set_block_hash(genesis.number, genesis.hash)
    head = genesis
    for i, block in enumerate(test["blocks"]):
        expect = _expected_exceptions(block.get("expectException") or "")
        try:
            rlp = parse_hex(block["rlp"])
        except (KeyError, ValueError) as err:
            return "failed", f"bad fixture: block {i}: {type(err).__name__}: {err}"
        try:
            imported = engine.import_block(rlp, head, state, schedule=network, chain_id=chain_id)
        except InvalidBlock as err:
            if not expect:
                return "failed", f"unexpected rejection: block {i}: {err}"
            if not _rejection_matches(expect, err.exception):
                return "failed", (
                    f"wrong rejection: block {i}: expected {'|'.join(expect)}, got {err}"
                )
            continue  # the chain goes on from the parent
        except ParexError as err:
            return "failed", f"engine error: block {i}: {type(err).__name__}: {err}"
        if expect:
            return "failed", (
                f"missing rejection: block {i}: expected {'|'.join(expect)}; the engine "
                f"accepted it (gas used {imported.result.gas_used})"
            )
        expected_hash = (block.get("blockHeader") or {}).get("hash")
        if expected_hash is not None and imported.hash != parse_hex(expected_hash):
            return "failed", (
                f"hash mismatch: block {i} hashes to {_hex(imported.hash)}, expected "
                f"{expected_hash}"
            )
        state = state.copy()
        state.apply(imported.result)
        state.set_block_hash(imported.header.number, imported.hash)
        head = imported.header
    last = test.get("lastblockhash")
    if last is not None and head.hash != parse_hex(last):
        return "failed", f"hash mismatch: last block {_hex(head.hash)}, expected {last}"
    post = test.get("postState")
    if isinstance(post, Mapping):
        expected_root = _core.state_root(build_state(post, Chain(codes={}, block_hashes={}), 0))
    elif test.get("postStateHash") is not None:
        expected_root = parse_hex(test["postStateHash"])
    else:
        return "failed", "bad fixture: neither postState nor postStateHash"
    root = _core.state_root(state)
    if root != expected_root:
        expected_post = post if isinstance(post, Mapping) else None
        reason = _root_mismatch(expected_root, root, expected_post, pre, state, None)
        return "failed", "post-state mismatch: " + reason.removeprefix("root mismatch: ")
    return "passed", None


def run_blockchain_test(
    name: str,
    test: Mapping[str, Any],
    engine: Engine,
    *,
    group: str = ".",
    forks: Sequence[str] = (),
) -> list[Outcome]:
    """One blockchain test (see the module docs) as one case under its ``network``; ``forks``
    (case-insensitive) limits the networks run."""
    network = test.get("network")
    if not isinstance(network, str):
        return [Outcome(name, None, None, group, "failed", "bad fixture: no network", "blockchain")]
    if forks and network.lower() not in {f.lower() for f in forks}:
        return []
    if engine_schedule(network) is None:
        return [Outcome(name, network, None, group, "skipped",
                        f"fork {network}: not supported by parex", "blockchain")]
    mismatch = blob_schedule_mismatch(test.get("config") or {})
    if mismatch is not None:
        return [Outcome(name, network, None, group, "skipped",
                        f"custom blob schedule: {mismatch}", "blockchain")]
    try:
        status, reason = _check_chain(test, engine, network)
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        status, reason = "failed", f"bad fixture: {type(err).__name__}: {err}"
    return [Outcome(name, network, None, group, status, reason, "blockchain")]


# ---------------------------------------------------------------------------------------------
# Running a state test


def _account_diff(
    expected: Mapping[str, Any],
    actual: State,
    candidates: Iterable[bytes],
    slots: Mapping[bytes, set[int]],
    limit: int = 3,
) -> list[str]:
    """Human-readable differences between a fixture post-state and ``actual``."""
    exp_by_address = {parse_hex(a): v for a, v in expected.items()}
    diffs: list[str] = []
    for address in sorted(set(candidates) | exp_by_address.keys()):
        who = _hex(address)
        exp = exp_by_address.get(address)
        act = actual.get_account(address)
        if exp is None and act is None:
            continue
        if exp is None:
            diffs.append(f"{who} exists, expected absent")
            continue
        if act is None:
            diffs.append(f"{who} absent, expected to exist")
            continue
        balance, nonce, code_hash = act
        if balance != parse_quantity(exp.get("balance", 0)):
            diffs.append(f"{who} balance {balance}, expected {parse_quantity(exp.get('balance', 0))}")
        if nonce != parse_quantity(exp.get("nonce", 0)):
            diffs.append(f"{who} nonce {nonce}, expected {parse_quantity(exp.get('nonce', 0))}")
        exp_code = parse_hex(exp.get("code") or "0x")
        if code_hash != _core.keccak256(exp_code):
            diffs.append(
                f"{who} code differs ({len(actual.get_code(address))} bytes, "
                f"expected {len(exp_code)})"
            )
        exp_storage = {parse_quantity(k): parse_quantity(v) for k, v in (exp.get("storage") or {}).items()}
        for slot in sorted(exp_storage.keys() | slots.get(address, set())):
            value = actual.get_storage(address, slot)
            if value != exp_storage.get(slot, 0):
                diffs.append(
                    f"{who} storage[{hex(slot)}] {hex(value)}, "
                    f"expected {hex(exp_storage.get(slot, 0))}"
                )
    if len(diffs) > limit:
        diffs = diffs[:limit] + [f"{len(diffs) - limit} more"]
    return diffs


def _root_mismatch(
    expected_hash: bytes,
    root: bytes,
    post: Mapping[str, Any] | None,
    pre: Mapping[str, Any],
    after: State,
    result: BlockResult | None,
) -> str:
    reason = f"root mismatch: expected {_hex(expected_hash)}, got {_hex(root)}"
    if not isinstance(post, Mapping):
        return reason
    candidates = {parse_hex(a) for a in pre}
    slots: dict[bytes, set[int]] = {}
    for a, account in pre.items():
        slots.setdefault(parse_hex(a), set()).update(parse_quantity(s) for s in account.get("storage") or {})
    if result is not None:
        for change in result.changes:
            candidates.add(change.address)
            slots.setdefault(change.address, set()).update(change.storage)
    try:
        diffs = _account_diff(post, after, candidates, slots)
    except (ValueError, TypeError, AttributeError):
        return reason + " (the fixture's post-state does not parse)"
    return reason + (" (" + "; ".join(diffs) + ")" if diffs else "")


def _check_entry(
    engine: Engine,
    env: BlockEnv,
    pre_state: State,
    pre: Mapping[str, Any],
    entry: Mapping[str, Any],
) -> tuple[Status, str | None]:
    try:
        expected_hash = parse_hex(entry["hash"])
        expected_logs = parse_hex(entry["logs"])
        txbytes = parse_hex(entry["txbytes"])
    except (KeyError, ValueError) as err:
        return "failed", f"bad fixture: post entry: {type(err).__name__}: {err}"
    expect_exception = entry.get("expectException")
    try:
        result: BlockResult | None = engine.execute(env, [txbytes], pre_state)
    except TransactionError as err:
        if not expect_exception:
            return "failed", f"unexpected rejection: {type(err).__name__}: {err}"
        result = None
    except ParexError as err:
        return "failed", f"engine error: {type(err).__name__}: {err}"
    except (ValueError, OverflowError) as err:  # a value the engine cannot take
        return "failed", f"bad fixture: {type(err).__name__}: {err}"
    if result is None:
        after = pre_state
        logs = EMPTY_LOGS_HASH
    else:
        if expect_exception:
            return "failed", (
                f"missing rejection: expected {expect_exception}; the engine accepted the "
                f"transaction (gas used {result.gas_used})"
            )
        after = pre_state.copy()
        after.apply(result)
        logs = _core.logs_hash(result)
    root = _core.state_root(after)
    if root != expected_hash:
        return "failed", _root_mismatch(
            expected_hash, root, entry.get("state"), pre, after, result
        )
    if logs != expected_logs:
        return "failed", f"logs mismatch: expected {_hex(expected_logs)}, got {_hex(logs)}"
    return "passed", None


def run_state_test(
    name: str,
    test: Mapping[str, Any],
    engine: Engine,
    *,
    group: str = ".",
    forks: Sequence[str] = (),
) -> list[Outcome]:
    """
    Every case of one state test. ``forks`` (case-insensitive fixture names) limits the forks
    run; a fork parex does not know is one skipped case per entry.
    """
    wanted = {f.lower() for f in forks}
    post = test.get("post")
    if not isinstance(post, Mapping):
        return [Outcome(name, None, None, group, "failed", "bad fixture: no post mapping", "state")]
    selected = [(f, entries) for f, entries in post.items() if not wanted or f.lower() in wanted]
    if not selected:
        return []
    if any(not isinstance(entries, list) for _, entries in selected):
        return [Outcome(name, None, None, group, "failed", "bad fixture: post entries not a list",
                        "state")]
    outcomes: list[Outcome] = []
    pre = test["pre"]
    try:
        number = parse_quantity(test["env"].get("currentNumber", 1))
        pre_state = build_pre_state(pre, number)
        chain_id = parse_quantity((test.get("config") or {}).get("chainid", 1))
    except (KeyError, ValueError, TypeError, ParexError) as err:
        why = f"bad fixture: pre-state: {type(err).__name__}: {err}"
        return [
            Outcome(name, f, i, group, "failed", why, "state")
            for f, entries in selected
            for i in range(len(entries))
        ]
    for fork_name, entries in selected:
        fork = engine_fork(fork_name)
        if fork is None:
            outcomes.extend(
                Outcome(name, fork_name, i, group, "skipped",
                        f"fork {fork_name}: not supported by parex", "state")
                for i in range(len(entries))
            )
            continue
        try:
            env = block_env(test["env"], fork, chain_id)
        except (KeyError, ValueError, TypeError) as err:
            why = f"bad fixture: env: {type(err).__name__}: {err}"
            outcomes.extend(
                Outcome(name, fork_name, i, group, "failed", why, "state")
                for i in range(len(entries))
            )
            continue
        for i, entry in enumerate(entries):
            status, reason = _check_entry(engine, env, pre_state, pre, entry)
            outcomes.append(Outcome(name, fork_name, i, group, status, reason, "state"))
    return outcomes


def run_test(
    name: str,
    test: object,
    engine: Engine,
    *,
    group: str = ".",
    forks: Sequence[str] = (),
) -> list[Outcome]:
    """Every case of one fixture test, whatever its kind (see the module docs)."""
    kind = fixture_kind(test)
    if kind == "state":
        assert isinstance(test, Mapping)
        return run_state_test(name, test, engine, group=group, forks=forks)
    if kind == "blockchain":
        assert isinstance(test, Mapping)
        return run_blockchain_test(name, test, engine, group=group, forks=forks)
    return [Outcome(name, None, None, group, "skipped", "not an execution-spec test")]


def run(
    paths: Iterable[Path | str],
    *,
    threads: int | None = None,
    forks: Sequence[str] = (),
    keyword: str | None = None,
    cache_dir: Path | str | None = None,
    on_start: Callable[[int], None] = lambda files: None,
    on_file: Callable[[FixtureFile, list[Outcome]], None] = lambda f, outcomes: None,
) -> Report:
    """
    Runs every test under ``paths`` (see :func:`fixture_files`) whose name or file path holds
    ``keyword``, under the ``forks`` given (default: all), on ``threads`` Block-STM workers
    (default: one per CPU). ``on_start`` gets the number of files, ``on_file`` each file's
    outcomes as it finishes.
    """
    started = time.perf_counter()
    threads = default_threads() if threads is None else threads
    # Every test goes through Block-STM, however small its block.
    engine = Engine(threads=threads, sequential_rule=False)
    files = fixture_files(paths, cache_dir)
    on_start(len(files))
    report = Report(threads=threads)
    for fixture in files:
        outcomes: list[Outcome] = []
        path_text = fixture.path.as_posix()
        try:
            tests = json.loads(fixture.path.read_bytes())
        except (OSError, ValueError) as err:
            outcomes.append(
                Outcome(path_text, None, None, fixture.group, "failed",
                        f"bad fixture: {type(err).__name__}: {err}")
            )
            tests = {}
        if not isinstance(tests, dict):
            tests = {}
            outcomes.append(
                Outcome(path_text, None, None, fixture.group, "skipped",
                        "not an execution-spec test")
            )
        for name, test in tests.items():
            if keyword and keyword not in name and keyword not in path_text:
                continue
            outcomes.extend(run_test(name, test, engine, group=fixture.group, forks=forks))
        report.outcomes.extend(outcomes)
        on_file(fixture, outcomes)
    report.elapsed_s = time.perf_counter() - started
    return report
