"""
Replay of real Ethereum mainnet blocks, checked against their headers.

A replay fixture holds, per block, the JSON-RPC block with full transaction objects and the
exact pre-state the block reads (the layout of ``../shared/fixtures/mainnet-blocks.tar.gz``)::

    mainnet/blocks/<number>/block.json       eth_getBlockByNumber(number, true)
    mainnet/blocks/<number>/pre_state.json   {address: {balance, nonce, code_hash?, storage}}
    mainnet/bytecodes.json                   {code_hash: code}
    mainnet/block_hashes.json                {number: hash}, for BLOCKHASH

For each block:

1. the pre-state becomes a :class:`~parex._core.State` (code by ``code_hash``, each code
   checked against its hash; the hashes of the 256 blocks before it for ``BLOCKHASH``);
2. the header becomes a :class:`~parex.engine.BlockEnv`, with the fork from the mainnet
   schedule (:func:`mainnet_fork`);
3. the transaction objects become raw EIP-2718 envelopes, in Rust
   (:func:`parex._core.rpc_transactions`), each checked against its ``hash``: a lossy
   conversion fails loudly instead of executing a different transaction;
4. the block runs sequentially (once traced, for the dependency-graph bound ``ideal``, then
   ``repeat`` times untraced) and with Block-STM (``repeat`` times), every run checked against
   the traced one with ``same_outcome`` and equal digests;
5. the result is checked against the header: gas used, logs bloom, transactions root and,
   from Byzantium on, receipts root.

What is not checked, and why: before Byzantium a receipt embeds the state root after its
transaction, and the pre-state is partial (only what the block reads), so no intermediate
or final state root can be computed: pre-Byzantium receipts roots are skipped (and reported
as skipped). For the same reason the block reward and uncle rewards (before the Merge) and
the withdrawals (after Shanghai) are not applied: they change only the beneficiary's and the
withdrawal recipients' balances after the last transaction, never a receipt, the bloom or the
gas used.

Timings are the engine's ``execution_ns``, as in ``parex bench``: execution only, with
decoding and sender recovery apart (each block is decoded and recovered once for its timed
runs), best of ``repeat``.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import _core
from ._core import BlockResult, ParexError, State
from .engine import BlockEnv, Engine, Fork, default_threads, fastest

DEFAULT_REPEAT = 3


KECCAK_EMPTY = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
EMPTY_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")

_FORK_ORDER: dict[str, int] = {f.value: i for i, f in enumerate(Fork)}


def mainnet_fork(number: int, timestamp: int) -> Fork:
    """The fork whose rules apply to mainnet block ``number`` mined at ``timestamp``: by
    number before the Merge, by timestamp after it. The schedule is Rust's
    (``ForkSchedule::mainnet``, through :func:`parex._core.fork_at`), the engine's own; the
    DAO fork's irregular state change is not modelled."""
    return Fork(_core.fork_at("mainnet", number, timestamp).lower())


def fork_at_least(fork: str, than: Fork) -> bool:
    """True when ``fork`` is ``than`` or a later fork."""
    return _FORK_ORDER[fork] >= _FORK_ORDER[than.value]


# ---------------------------------------------------------------------------------------------
# Locating and extracting fixtures


def default_cache_dir() -> Path:
    """``$PAREX_CACHE_DIR``, else ``.cache/fixtures`` in the working directory."""
    env = os.environ.get("PAREX_CACHE_DIR")
    return Path(env) if env else Path.cwd() / ".cache" / "fixtures"


_STAMP = ".parex-extracted"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _archive_stem(archive: Path) -> str:
    name = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def extract(archive: Path | str, cache_dir: Path | str | None = None) -> Path:
    """
    Extracts ``archive`` into ``cache_dir/<archive stem>`` and returns that folder.

    Idempotent and cheap when already done: a stamp records the archive's size and
    modification time, and a matching stamp skips the extraction. Otherwise the archive is
    extracted into a temporary folder beside the target (with the ``data`` filter: no
    absolute paths, links out of the tree or devices) and renamed into place.
    """
    archive = Path(archive)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / _archive_stem(archive)
    info = archive.stat()
    signature = f"{archive.resolve()}\n{info.st_size}\n{info.st_mtime_ns}\n"
    stamp = target / _STAMP
    if stamp.is_file() and stamp.read_text() == signature:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        (scratch / _STAMP).write_text(signature)
        scratch.chmod(0o755)  # mkdtemp makes it private
        if target.exists():
            shutil.rmtree(target)
        scratch.rename(target)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return target


def fixture_root(path: Path | str, cache_dir: Path | str | None = None) -> Path:
    """
    Where a fixture given on the command line lies: an archive (``.tar.gz``, ``.tgz``,
    ``.tar``) is extracted once into ``cache_dir`` (see :func:`extract`) and its folder
    returned; a folder or another file is returned as it is. Raises ``FileNotFoundError``
    for a path that does not exist. ``parex replay`` and ``parex conformance`` both resolve
    their paths here.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        return extract(path, cache_dir)
    return path


def _is_block_dir(path: Path) -> bool:
    return (path / "block.json").is_file()


def block_dirs(path: Path | str, cache_dir: Path | str | None = None) -> list[Path]:
    """
    The block folders under ``path``, by block number. ``path`` is a ``.tar.gz`` fixture
    (extracted into ``cache_dir`` first), a folder holding ``blocks/`` (or ``mainnet/blocks``),
    or one block folder.
    """
    path = fixture_root(path, cache_dir)
    if _is_block_dir(path):
        return [path]
    roots = [path] + sorted(p for p in path.iterdir() if p.is_dir())
    for root in roots:
        blocks = root / "blocks"
        if blocks.is_dir():
            found = [p for p in blocks.iterdir() if _is_block_dir(p)]
            return sorted(found, key=lambda p: (len(p.name), p.name))
    raise FileNotFoundError(
        f"{path}: not a replay fixture (no block.json, blocks/ or */blocks/ in it)"
    )


# ---------------------------------------------------------------------------------------------
# Loading blocks


def parse_quantity(value: object, what: str = "value") -> int:
    """A JSON quantity: an int, a 0x-hex string or a decimal string."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a quantity, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16) if value[:2] in ("0x", "0X") else int(value)
    raise ValueError(f"{what}: expected a quantity, got {value!r}")


def parse_hex(value: object, what: str = "value") -> bytes:
    """A 0x-prefixed (or bare) hex string as bytes."""
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a hex string, got {value!r}")
    return bytes.fromhex(value[2:] if value[:2] in ("0x", "0X") else value)


@dataclass(frozen=True, slots=True)
class Chain:
    """What every block of a fixture shares: code by hash and the block hashes."""

    codes: Mapping[bytes, bytes]
    block_hashes: Mapping[int, bytes]

    @staticmethod
    def load(root: Path) -> Chain:
        """The chain data of the fixture folder ``root`` (missing files: none)."""
        codes: dict[bytes, bytes] = {}
        hashes: dict[int, bytes] = {}
        if (root / "bytecodes.json").is_file():
            raw = json.loads((root / "bytecodes.json").read_text())
            for key, code in raw.items():
                codes[parse_hex(key, "bytecodes key")] = parse_hex(code, f"bytecodes[{key}]")
        if (root / "block_hashes.json").is_file():
            raw = json.loads((root / "block_hashes.json").read_text())
            for key, value in raw.items():
                hashes[parse_quantity(key, "block_hashes key")] = parse_hex(value, f"block_hashes[{key}]")
        return Chain(codes, hashes)


def _chain_root(block_dir: Path) -> Path:
    """The fixture folder of a block: the first ancestor holding ``bytecodes.json``."""
    for parent in list(block_dir.parents)[:3]:
        if (parent / "bytecodes.json").is_file() or (parent / "block_hashes.json").is_file():
            return parent
    return block_dir.parent.parent


@dataclass(frozen=True, slots=True)
class Header:
    """The header fields a replay is checked against."""

    hash: bytes
    gas_used: int
    logs_bloom: bytes
    receipts_root: bytes
    transactions_root: bytes


@dataclass(frozen=True, slots=True)
class ReplayBlock:
    """One block ready to run: environment, raw transactions, pre-state and header."""

    number: int
    env: BlockEnv
    transactions: list[bytes]
    state: State
    header: Header

    @property
    def fork(self) -> str:
        return self.env.fork


def build_state(pre_state: Mapping[str, Any], chain: Chain, number: int) -> State:
    """The pre-state of block ``number``: accounts, code by hash, storage, block hashes."""
    state = State()
    for address, account in pre_state.items():
        code: bytes | None = None
        if account.get("code") not in (None, "", "0x"):
            code = parse_hex(account["code"], f"{address}.code")
        elif account.get("code_hash") is not None:
            code_hash = parse_hex(account["code_hash"], f"{address}.code_hash")
            if code_hash != KECCAK_EMPTY:
                try:
                    code = chain.codes[code_hash]
                except KeyError:
                    raise ValueError(
                        f"{address}: code hash 0x{code_hash.hex()} is not in bytecodes.json"
                    ) from None
                if _core.keccak256(code) != code_hash:
                    raise ValueError(f"bytecodes.json: code of 0x{code_hash.hex()} hashes wrong")
        state.set_account(
            address,
            parse_quantity(account.get("balance", 0), f"{address}.balance"),
            parse_quantity(account.get("nonce", 0), f"{address}.nonce"),
            code,
        )
        for slot, value in (account.get("storage") or {}).items():
            state.set_storage(
                address,
                parse_quantity(slot, f"{address}.storage key"),
                parse_quantity(value, f"{address}.storage[{slot}]"),
            )
    for n in range(max(0, number - 256), number):
        if n in chain.block_hashes:
            state.set_block_hash(n, chain.block_hashes[n])
    return state


def block_env(header: Mapping[str, Any]) -> BlockEnv:
    """The environment of a mainnet block from its JSON-RPC header."""
    number = parse_quantity(header["number"], "number")
    timestamp = parse_quantity(header["timestamp"], "timestamp")
    fork = mainnet_fork(number, timestamp)
    excess = header.get("excessBlobGas")
    return BlockEnv(
        number=number,
        timestamp=timestamp,
        beneficiary=parse_hex(header["miner"], "miner"),
        base_fee=parse_quantity(header.get("baseFeePerGas", 0), "baseFeePerGas"),
        gas_limit=parse_quantity(header["gasLimit"], "gasLimit"),
        # The engine reads it as PREVRANDAO after the Merge and ignores it before.
        prevrandao=parse_hex(header.get("mixHash") or "0x" + "00" * 32, "mixHash"),
        difficulty=parse_quantity(header.get("difficulty", 0), "difficulty"),
        excess_blob_gas=(
            parse_quantity(excess if excess is not None else 0, "excessBlobGas")
            if fork_at_least(fork.value, Fork.CANCUN)
            else None
        ),
        chain_id=1,
        fork=fork.value,
    )


def load_block(block_dir: Path | str, chain: Chain | None = None) -> ReplayBlock:
    """
    Loads one block folder (``block.json`` and ``pre_state.json``); ``chain`` defaults to the
    data of its fixture folder. Raises :class:`~parex._core.DecodeError` naming the
    transaction when an object does not convert to an envelope with its ``hash``.
    """
    block_dir = Path(block_dir)
    if chain is None:
        chain = Chain.load(_chain_root(block_dir))
    text = (block_dir / "block.json").read_bytes()
    block = json.loads(text)
    env = block_env(block)
    transactions = _core.rpc_transactions(text)
    pre_state_path = block_dir / "pre_state.json"
    pre_state = json.loads(pre_state_path.read_text()) if pre_state_path.is_file() else {}
    header = Header(
        hash=parse_hex(block.get("hash") or "0x", "hash"),
        gas_used=parse_quantity(block["gasUsed"], "gasUsed"),
        logs_bloom=parse_hex(block["logsBloom"], "logsBloom"),
        receipts_root=parse_hex(block["receiptsRoot"], "receiptsRoot"),
        transactions_root=parse_hex(block["transactionsRoot"], "transactionsRoot"),
    )
    return ReplayBlock(
        number=env.number,
        env=env,
        transactions=transactions,
        state=build_state(pre_state, chain, env.number),
        header=header,
    )


# ---------------------------------------------------------------------------------------------
# Running and checking


@dataclass(frozen=True, slots=True)
class Check:
    """One header field compared with the replay's; ``skipped`` says why it was not."""

    name: str
    expected: str
    actual: str | None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is not None or self.expected == self.actual


def check_header(block: ReplayBlock, result: BlockResult) -> list[Check]:
    """The replayed ``result`` against ``block``'s header."""
    h = block.header
    checks = [
        Check("gas_used", str(h.gas_used), str(result.gas_used)),
        Check("logs_bloom", "0x" + h.logs_bloom.hex(), "0x" + _core.logs_bloom(result).hex()),
        Check(
            "transactions_root",
            "0x" + h.transactions_root.hex(),
            "0x" + _core.transactions_root(block.transactions).hex(),
        ),
    ]
    if fork_at_least(block.fork, Fork.BYZANTIUM):
        checks.append(
            Check(
                "receipts_root",
                "0x" + h.receipts_root.hex(),
                "0x" + _core.receipts_root(result).hex(),
            )
        )
    else:
        checks.append(
            Check(
                "receipts_root",
                "0x" + h.receipts_root.hex(),
                None,
                skipped="pre-Byzantium receipts embed intermediate state roots; "
                "the pre-state is partial",
            )
        )
    return checks


@dataclass(frozen=True, slots=True)
class BlockReport:
    """The replay of one block: timings, header checks, parallel against sequential."""

    number: int
    fork: str
    txs: int
    gas: int
    threads: int
    sequential_ms: float | None
    parallel_ms: float | None
    speedup: float | None
    """``sequential_ms / parallel_ms``; ``None`` for a block without transactions."""
    ideal_speedup: float | None
    reexecutions: int | None
    matches_header: bool
    identical: bool
    """Every run had the outcome and digest of the traced sequential run, including a run
    forced onto Block-STM when the sequential rule took the block."""
    checks: list[Check] = field(default_factory=list)
    sequential_rule: str | None = None
    """Why the engine's sequential rule ran the block sequentially (see
    :class:`~parex.engine.Engine`); ``None`` when it ran on Block-STM."""
    error: str | None = None
    """Why the block could not be replayed at all (conversion or execution error)."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.matches_header and self.identical

    @property
    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    @property
    def skipped_checks(self) -> list[str]:
        return [c.name for c in self.checks if c.skipped is not None]

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["checks"] = {c.name: None if c.skipped else c.ok for c in self.checks}
        out["failed_checks"] = self.failed_checks
        out["mismatches"] = {
            c.name: {"expected": c.expected, "actual": c.actual}
            for c in self.checks
            if not c.ok
        }
        return out


def replay_block(
    block: ReplayBlock,
    threads: int | None = None,
    repeat: int = DEFAULT_REPEAT,
    *,
    trace: bool = True,
    sequential_rule: bool = True,
) -> BlockReport:
    """
    Runs ``block`` sequentially and with the parallel engine on ``threads`` workers
    (default: one per CPU), ``repeat`` times each, and checks the outcome against the
    header. With ``sequential_rule`` (the engine's default) a block too small to gain runs
    sequentially in the "parallel" runs too (``sequential_rule`` in the report says why);
    it is then also run once forced onto Block-STM, and that outcome must be identical as
    well. ``trace=False`` skips the traced run (no ``ideal_speedup``). Engine errors (an
    invalid transaction) are returned as ``error``, not raised.
    """
    if repeat < 1:
        raise ValueError(f"repeat: must be at least 1, got {repeat}")
    threads = default_threads() if threads is None else threads
    env, txs, state = block.env, block.transactions, block.state
    sequential_engine = Engine(threads=1)
    parallel_engine = Engine(threads=threads, sequential_rule=sequential_rule)
    try:
        # The reference takes the whole path from the raw envelopes; the timed runs share one
        # decoding and recovery, which they do not time anyway.
        first = sequential_engine.execute_sequential(env, txs, state, trace=trace)
        prepared = parallel_engine.prepare(env, txs)
        sequential_runs = [first] if not trace else []
        while len(sequential_runs) < repeat:
            sequential_runs.append(
                sequential_engine.execute_prepared(prepared, state, sequential=True)
            )
        parallel_runs = [parallel_engine.execute_prepared(prepared, state) for _ in range(repeat)]
        rule = parallel_runs[0].stats["sequential_rule"]
        # Parallel must equal sequential for every block, the ones the rule takes included.
        forced = (
            [
                Engine(threads=threads, sequential_rule=False).execute_prepared(
                    prepared, state
                )
            ]
            if rule is not None
            else []
        )
    except ParexError as err:
        return BlockReport(
            number=block.number, fork=block.fork, txs=len(txs), gas=block.header.gas_used,
            threads=threads, sequential_ms=None, parallel_ms=None, speedup=None,
            ideal_speedup=None, reexecutions=None, matches_header=False, identical=False,
            error=f"{type(err).__name__}: {err}",
        )
    digest = first.digest()
    identical = all(
        r.same_outcome(first) and r.digest() == digest
        for r in sequential_runs + parallel_runs + forced
    )
    checks = check_header(block, first)
    sequential, parallel = fastest(sequential_runs), fastest(parallel_runs)
    speedup = (
        sequential.execution_ns / parallel.execution_ns
        if txs and parallel.execution_ns > 0
        else None
    )
    return BlockReport(
        number=block.number,
        fork=block.fork,
        txs=len(txs),
        gas=first.gas_used,
        threads=threads,
        sequential_ms=sequential.execution_ns / 1e6,
        parallel_ms=parallel.execution_ns / 1e6,
        speedup=speedup,
        ideal_speedup=first.ideal_speedup,
        reexecutions=parallel.stats["reexecutions"],
        matches_header=all(c.ok for c in checks),
        identical=identical,
        checks=checks,
        sequential_rule=rule,
    )


@dataclass(frozen=True, slots=True)
class Report:
    """The replay of a fixture."""

    blocks: list[BlockReport]
    threads: int
    repeat: int

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.blocks)

    def _timed(self) -> list[BlockReport]:
        return [b for b in self.blocks if b.speedup is not None]

    @property
    def total_speedup(self) -> float | None:
        """Time-weighted: total sequential time over total parallel time."""
        timed = self._timed()
        par = sum(b.parallel_ms or 0.0 for b in timed)
        return sum(b.sequential_ms or 0.0 for b in timed) / par if par > 0 else None

    @property
    def min_speedup(self) -> float | None:
        speedups = [b.speedup for b in self._timed() if b.speedup is not None]
        return min(speedups) if speedups else None

    def as_dict(self) -> dict[str, object]:
        return {
            "blocks": [b.as_dict() for b in self.blocks],
            "threads": self.threads,
            "repeat": self.repeat,
            "total_speedup": self.total_speedup,
            "min_speedup": self.min_speedup,
            "all_ok": self.ok,
        }


def _error_report(block_dir: Path, threads: int, err: Exception) -> BlockReport:
    number = int(block_dir.name) if block_dir.name.isdigit() else -1
    return BlockReport(
        number=number, fork="?", txs=0, gas=0, threads=threads, sequential_ms=None,
        parallel_ms=None, speedup=None, ideal_speedup=None, reexecutions=None,
        matches_header=False, identical=False, error=f"{type(err).__name__}: {err}",
    )


def replay(
    path: Path | str,
    *,
    threads: int | None = None,
    repeat: int = DEFAULT_REPEAT,
    cache_dir: Path | str | None = None,
    trace: bool = True,
    sequential_rule: bool = True,
    on_start: Callable[[int], None] = lambda total: None,
    on_block: Callable[[BlockReport], None] = lambda report: None,
) -> Report:
    """
    Replays every block under ``path`` (see :func:`block_dirs`) on ``threads`` Block-STM
    workers (default: one per CPU). A block that cannot be
    loaded (a transaction that does not convert to its hash, a code hash without code) or
    executed is reported with ``error`` and the replay goes on. ``sequential_rule=False``
    forces every block onto Block-STM (see :func:`replay_block`).
    """
    threads = default_threads() if threads is None else threads
    Engine(threads=threads)  # validates threads
    if repeat < 1:
        raise ValueError(f"repeat: must be at least 1, got {repeat}")
    dirs = block_dirs(path, cache_dir)
    on_start(len(dirs))
    chains: dict[Path, Chain] = {}
    reports = []
    for block_dir in dirs:
        root = _chain_root(block_dir)
        if root not in chains:
            chains[root] = Chain.load(root)
        try:
            block = load_block(block_dir, chains[root])
        except (ParexError, ValueError, KeyError) as err:
            report = _error_report(block_dir, threads, err)
        else:
            report = replay_block(
                block, threads, repeat, trace=trace, sequential_rule=sequential_rule
            )
        reports.append(report)
        on_block(report)
    return Report(reports, threads, repeat)


def with_header(block: ReplayBlock, **changes: Any) -> ReplayBlock:
    """A copy of ``block`` whose header has ``changes`` (for tests of the checks)."""
    return replace(block, header=replace(block.header, **changes))
