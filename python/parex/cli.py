"""
The ``parex`` command.

``parex bench`` with no options runs the default matrix (transfer, erc20, amm × conflict
0, 20, 50 % × 1, 2 and all CPUs × 10,000 transactions). It exits with status 1 when any
parallel run differs from the sequential reference.

``parex replay PATH`` replays real blocks (a fixture archive or folder) sequentially and with
Block-STM and checks each against its header; it exits with status 1 when a block does not
match its header or the parallel outcome differs.

``parex conformance PATH...`` runs the Ethereum execution-spec state tests under PATH through
the parallel engine and checks post-state roots and logs hashes; it exits with status 1 on any
failure.

``parex node`` runs a dev chain (the ten standard dev accounts, chain id 31337) with a
built-in sequencer, a crash-safe store and JSON-RPC on 127.0.0.1:8545; no flags needed.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__, bench, conformance, replay
from .workloads import WORKLOADS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="parex")
def main() -> None:
    """parex: Block-STM parallel execution of Ethereum blocks."""


def _positive(ctx: click.Context, param: click.Parameter, value: object) -> object:
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, int) and v < 1:
            raise click.BadParameter("must be at least 1")
    return value


def _print_json(value: object) -> None:
    """``--json``: the value, and nothing else, on stdout."""
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _stdout() -> Console:
    """The console for tables: a pipe or a file gets 200 columns, not a squeezed 80."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


def _progress(console: Console) -> Progress:
    """A progress bar on stderr that vanishes when done and stays off when not a terminal."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(rows: list[bench.Row]) -> Table:
    table = Table(
        title="parex: sequential vs Block-STM (execution; recovery apart)",
        title_justify="left",
        caption="speedup = seq ms / par ms; efficiency = speedup / min(threads, ideal); "
        "machine = what this machine gives as many independent copies of the block; "
        "of bounds = speedup / min(machine, ideal); "
        "e2e = with decoding and signature recovery",
    )
    for header in (
        "workload", "conflict", "threads", "txs", "gas", "seq ms", "par ms", "speedup",
        "Mgas/s", "tx/s", "re-exec", "ideal", "efficiency", "machine", "of bounds",
        "recover ms", "e2e", "identical",
    ):
        left = header in ("workload", "identical")
        table.add_column(header, justify="left" if left else "right")
    for r in rows:
        table.add_row(
            r.workload,
            f"{r.conflict}%",
            str(r.threads),
            f"{r.txs:,}",
            f"{r.gas:,}",
            f"{r.sequential_ms:.1f}",
            f"{r.parallel_ms:.1f}",
            f"{r.speedup:.2f}x",
            f"{r.mgas_per_s:,.0f}",
            f"{r.tx_per_s:,.0f}",
            f"{r.reexecutions:,}",
            _fmt(r.ideal_speedup, ".2f"),
            _fmt(r.efficiency, ".0%"),
            f"{r.machine_speedup:.2f}x",
            _fmt(r.machine_efficiency, ".0%"),
            f"{r.recovery_sequential_ms:.0f}/{r.recovery_parallel_ms:.0f}",
            f"{r.end_to_end_speedup:.2f}x",
            "yes" if r.identical else "[bold red]NO[/]",
        )
    return table


@main.command("bench")
@click.option(
    "--workload", "-w", "workloads", multiple=True,
    type=click.Choice(sorted(WORKLOADS)),
    help="Workload to run (repeatable). Default: transfer, erc20, amm.",
)
@click.option(
    "--conflict", "-c", "conflicts", multiple=True, type=click.IntRange(0, 100),
    help="Percent of transactions on the hot account/pair (repeatable). Default: 0, 20, 50.",
)
@click.option(
    "--threads", "-t", "threads", multiple=True, type=int, callback=_positive,
    help="Worker threads (repeatable). Default: 1, 2 and the CPUs this process may run on.",
)
@click.option(
    "--txs", "-n", type=int, default=bench.DEFAULT_TXS, show_default=True,
    callback=_positive, help="Transactions per block.",
)
@click.option(
    "--repeat", "-r", type=int, default=bench.DEFAULT_REPEAT, show_default=True,
    callback=_positive, help="Runs per measurement; the best is reported.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Workload seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON, nothing else.")
def bench_command(
    workloads: tuple[str, ...],
    conflicts: tuple[int, ...],
    threads: tuple[int, ...],
    txs: int,
    repeat: int,
    seed: int,
    as_json: bool,
) -> None:
    """Benchmark Block-STM against sequential execution on generated blocks."""
    names = workloads or bench.DEFAULT_WORKLOADS
    levels = conflicts or bench.DEFAULT_CONFLICTS
    thread_counts = list(threads) or bench.default_threads()
    err = Console(stderr=True)
    total = len(names) * len(levels) * bench.runs_per_workload(thread_counts, repeat)

    with _progress(err) as progress:
        task = progress.add_task("starting", total=total)
        rows = bench.run(
            names,
            levels,
            thread_counts,
            txs=txs,
            repeat=repeat,
            seed=seed,
            on_build=lambda name, conflict: progress.update(
                task, description=f"{name} c{conflict}"
            ),
            tick=lambda: progress.advance(task),
        )

    diverged = [r for r in rows if not r.identical]
    if as_json:
        _print_json([r.as_dict() for r in rows])
    else:
        out = _stdout()
        out.print(_table(rows))
        if not diverged:
            out.print(
                f"[green]all {len(rows)} parallel results identical to sequential[/]"
            )
    if diverged:
        for r in diverged:
            err.print(
                f"[bold red]divergence:[/] {r.workload} conflict={r.conflict}% "
                f"threads={r.threads}: parallel outcome differs from sequential"
            )
        sys.exit(1)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def _replay_table(report: replay.Report) -> Table:
    table = Table(
        title=f"parex replay: mainnet blocks, sequential vs Block-STM at {report.threads} "
        "threads (execution; recovery apart)",
        title_justify="left",
        caption="speedup = seq ms / par ms (best of --repeat); ideal = dependency-graph bound; "
        "header = gas used, logs bloom, transactions root, receipts root (* skipped before "
        "Byzantium: receipts embed state roots and the pre-state is partial); path = what "
        "the engine ran (seq (rule): the sequential rule took the block; identical still "
        "compares a run forced onto Block-STM)",
    )
    for header in (
        "block", "fork", "txs", "gas", "seq ms", "par ms", "speedup", "ideal", "re-exec",
        "header", "identical", "path",
    ):
        left = header in ("fork", "header", "identical", "path")
        table.add_column(header, justify="left" if left else "right")
    for b in report.blocks:
        if b.error is not None:
            header_cell = "[bold red]ERROR[/]"
        elif b.matches_header:
            header_cell = "yes*" if b.skipped_checks else "yes"
        else:
            header_cell = "[bold red]NO[/]: " + ", ".join(b.failed_checks)
        table.add_row(
            str(b.number),
            b.fork,
            f"{b.txs:,}",
            f"{b.gas:,}",
            _ms(b.sequential_ms),
            _ms(b.parallel_ms),
            "-" if b.speedup is None else f"{b.speedup:.2f}x",
            _fmt(b.ideal_speedup, ".2f"),
            "-" if b.reexecutions is None else f"{b.reexecutions:,}",
            header_cell,
            "yes" if b.identical else "[bold red]NO[/]",
            "par" if b.sequential_rule is None else "seq (rule)",
        )
    return table


@main.command("replay")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--threads", "-t", type=int, default=None, callback=_positive,
    help="Block-STM worker threads. Default: one per CPU this process may run on.",
)
@click.option(
    "--repeat", "-r", type=int, default=replay.DEFAULT_REPEAT, show_default=True,
    callback=_positive, help="Runs per measurement; the best is reported.",
)
@click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where a .tar.gz fixture is extracted. Default: $PAREX_CACHE_DIR, else "
    "./.cache/fixtures.",
)
@click.option(
    "--force-parallel", is_flag=True,
    help="Run every block on Block-STM: turn off the engine's rule that runs blocks too small "
    "to gain sequentially.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, nothing else.")
def replay_command(
    path: Path,
    threads: int | None,
    repeat: int,
    cache_dir: Path | None,
    force_parallel: bool,
    as_json: bool,
) -> None:
    """Replay real blocks and check them against their headers.

    PATH is a fixture archive (.tar.gz, extracted once into the cache folder), an extracted
    fixture folder (holding blocks/ or mainnet/blocks/), or one block folder. Each block
    runs sequentially and with Block-STM; gas used, logs bloom, transactions root and (from
    Byzantium on) receipts root must match the header, and the parallel outcome must equal
    the sequential one. Blocks too small to gain run sequentially by the engine's rule
    (column "path"; --force-parallel turns it off), and are then also run once on Block-STM
    to check that outcome. Block rewards and withdrawals are not applied (no state root is
    checked: the pre-state is partial). Exits with status 1 when any block fails.
    """
    err = Console(stderr=True)
    with _progress(err) as progress:
        task = progress.add_task("extracting", total=None)
        try:
            report = replay.replay(
                path,
                threads=threads,
                repeat=repeat,
                cache_dir=cache_dir,
                sequential_rule=not force_parallel,
                on_start=lambda total: progress.update(task, total=total, description="replay"),
                on_block=lambda b: progress.update(
                    task, advance=1, description=f"block {b.number}"
                ),
            )
        except (FileNotFoundError, tarfile.TarError) as e:
            raise click.ClickException(str(e)) from e

    if as_json:
        _print_json(report.as_dict())
    else:
        out = _stdout()
        out.print(_replay_table(report))
        timed = [b for b in report.blocks if b.speedup is not None]
        matching = sum(1 for b in report.blocks if b.error is None and b.matches_header)
        out.print(
            f"{matching}/{len(report.blocks)} blocks match their headers; "
            f"{sum(b.identical for b in report.blocks)}/{len(report.blocks)} parallel "
            "results identical to sequential"
        )
        if timed:
            out.print(
                f"speedup at {report.threads} threads: {_fmt(report.total_speedup, '.2f')}x "
                f"time-weighted (sum seq / sum par over {len(timed)} blocks), "
                f"min {_fmt(report.min_speedup, '.2f')}x"
            )
    failed = [b for b in report.blocks if not b.ok]
    for b in failed:
        if b.error is not None:
            err.print(f"[bold red]block {b.number}:[/] {b.error}")
            continue
        for c in b.checks:
            if not c.ok:
                err.print(
                    f"[bold red]block {b.number}: {c.name} differs:[/] "
                    f"header {c.expected}, replay {c.actual}"
                )
        if not b.identical:
            err.print(f"[bold red]block {b.number}: parallel outcome differs from sequential[/]")
    if failed:
        sys.exit(1)


def _tally_table(title: str, first: str, rows: dict[str, conformance.Tally]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first, justify="left")
    for header in ("passed", "failed", "skipped"):
        table.add_column(header, justify="right")
    for key, t in rows.items():
        table.add_row(
            key,
            f"{t.passed:,}",
            f"[bold red]{t.failed:,}[/]" if t.failed else "0",
            f"{t.skipped:,}",
        )
    return table


def _print_conformance(report: conformance.Report, out: Console) -> None:
    out.print(_tally_table("parex conformance: by kind", "kind", report.by_suite()))
    out.print(_tally_table("by fork", "fork", report.by_fork()))
    out.print(_tally_table("by folder", "folder", report.by_group(with_suite=True)))
    reasons = report.skip_reasons()
    if reasons:
        table = Table(title="skips", title_justify="left")
        table.add_column("reason", justify="left")
        table.add_column("count", justify="right")
        for reason, count in reasons.most_common():
            table.add_row(reason, f"{count:,}")
        out.print(table)
    failures = report.failures
    if failures:
        kinds = ", ".join(f"{k}: {n:,}" for k, n in report.failure_kinds().most_common())
        table = Table(title=f"failures ({kinds})", title_justify="left")
        for header in ("test", "fork", "index", "reason"):
            table.add_column(header, justify="left", overflow="fold")
        for o in failures:
            table.add_row(
                o.test, o.fork or "-", "-" if o.index is None else str(o.index), o.reason or ""
            )
        out.print(table)
    colour = "red" if failures else "green"
    out.print(
        f"[{colour}]{report.passed:,} passed, {report.failed:,} failed, "
        f"{report.skipped:,} skipped[/] in {report.elapsed_s:.1f} s "
        f"(Block-STM at {report.threads} thread{'s' if report.threads != 1 else ''})"
    )


@main.command("conformance")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
@click.option(
    "--threads", "-t", type=int, default=None, callback=_positive,
    help="Block-STM worker threads. Default: one per CPU this process may run on.",
)
@click.option(
    "--fork", "-f", "forks", multiple=True,
    help="Run only this fork of each test (case-insensitive, repeatable). Default: all.",
)
@click.option(
    "-k", "keyword", default=None,
    help="Run only the tests whose name or file path contains this substring.",
)
@click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where a .tar.gz fixture is extracted. Default: $PAREX_CACHE_DIR, else "
    "./.cache/fixtures.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, nothing else.")
def conformance_command(
    paths: tuple[Path, ...],
    threads: int | None,
    forks: tuple[str, ...],
    keyword: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Run Ethereum execution-spec tests through the parallel engine.

    PATH is a fixture archive (.tar.gz, extracted once into the cache folder), a folder
    (searched for .json files) or a JSON fixture file; several may be given. Each state test
    runs its transaction (the post entry's txbytes) as a one-transaction block with Block-STM
    for every fork of its post section that parex knows, and the post-state root and logs hash
    must equal the fixture's; a transaction the fixture expects to fail must be rejected.
    Each blockchain test (EEST or ethereum/tests' classic layout) imports its blocks one by
    one: header validation, system calls, the transactions through Block-STM, withdrawals,
    rewards and requests; a valid block must hash to the fixture's header hash, an invalid
    one must be rejected for one of the expected reasons, and the last block and post-state
    must match. Exits with status 1 when any case fails.
    """
    err = Console(stderr=True)
    with _progress(err) as progress:
        task = progress.add_task("extracting", total=None)
        try:
            report = conformance.run(
                paths,
                threads=threads,
                forks=forks,
                keyword=keyword,
                cache_dir=cache_dir,
                on_start=lambda total: progress.update(task, total=total, description="files"),
                on_file=lambda f, outcomes: progress.update(
                    task, advance=1, description=f.group
                ),
            )
        except (FileNotFoundError, tarfile.TarError) as e:
            raise click.ClickException(str(e)) from e

    if not report.outcomes:
        raise click.ClickException("no tests matched")
    if as_json:
        _print_json(report.as_dict())
    else:
        out = _stdout()
        _print_conformance(report, out)
    if not report.ok:
        sys.exit(1)


def _default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("parex")) / "node"


@main.command("node")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the chain is stored [default: the per-user data folder, e.g. ~/.local/share/parex/node].",
)
@click.option("--genesis", "genesis_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A geth-style genesis JSON file [default: the dev preset].")
@click.option("--chain-id", type=int, default=None, callback=_positive,
              help="Chain id [default: the genesis file's, else 31337].")
@click.option("--gas-limit", type=int, default=None, callback=_positive,
              help="Block gas limit [default: the genesis file's, else 30,000,000].")
@click.option("--http-port", type=click.IntRange(0, 65535), default=8545, show_default=True, help="JSON-RPC port on 127.0.0.1.")
@click.option("--authrpc-port", type=click.IntRange(0, 65535), default=8551, show_default=True,
              help="Engine API port on 127.0.0.1 (JWT); 0 disables it.")
@click.option("--block-time", type=click.FloatRange(0, 3600), default=0.25, show_default=True,
              help="Seconds between blocks; 0 turns the built-in sequencer off (a consensus "
              "client drives blocks through the Engine API).")
@click.option("--jwt-secret", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Hex JWT secret for the Engine API [default: DATA_DIR/jwt.hex, created if absent].")
@click.option("--threads", type=int, default=None, callback=_positive, help="Block-STM workers [default: one per CPU].")
def node_command(
    data_dir: Path | None,
    genesis_file: Path | None,
    chain_id: int | None,
    gas_limit: int | None,
    http_port: int,
    authrpc_port: int,
    block_time: float,
    jwt_secret: Path | None,
    threads: int | None,
) -> None:
    """Run a dev chain: sequencer, persistence, JSON-RPC and the Engine API."""
    from ._core import ParexError
    from .engine import default_threads
    from .node import ChainError, GenesisError, NodeConfig, dev_genesis, load_genesis, run_node
    from .node.genesis import DEFAULT_CHAIN_ID, DEFAULT_GAS_LIMIT

    try:
        if genesis_file is not None:
            genesis = load_genesis(genesis_file, chain_id=chain_id, gas_limit=gas_limit)
        else:
            genesis = dev_genesis(chain_id or DEFAULT_CHAIN_ID, gas_limit or DEFAULT_GAS_LIMIT)
        config = NodeConfig(
            data_dir=data_dir or _default_data_dir(),
            genesis=genesis,
            http_port=http_port,
            authrpc_port=authrpc_port,
            block_time=block_time,
            jwt_secret=jwt_secret,
            threads=threads or default_threads(),
        )
        run_node(config)
    except (GenesisError, ChainError, ParexError) as e:
        raise click.ClickException(str(e)) from e


@main.command("load")
@click.option("--url", default="http://127.0.0.1:8545", show_default=True, help="The node's JSON-RPC URL.")
@click.option("--workload", type=click.Choice(["erc20", "transfer"]), default="erc20", show_default=True)
@click.option("--senders", type=int, default=500, show_default=True, callback=_positive, help="Sending accounts.")
@click.option("--per-sender", type=int, default=20, show_default=True, callback=_positive,
              help="Transactions per sender (nonce chains).")
@click.option("--clients", type=int, default=4, show_default=True, callback=_positive, help="Submitting HTTP clients.")
@click.option("--batch", type=int, default=100, show_default=True, callback=_positive,
              help="Transactions per JSON-RPC batch.")
@click.option("--key", default="0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
              show_default="the first dev account", help="Private key that funds the senders.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, nothing else.")
def load_command(
    url: str, workload: str, senders: int, per_sender: int, clients: int, batch: int, key: str, as_json: bool
) -> None:
    """Send signed transactions to a node over JSON-RPC; report tx/s, block fill and latency."""
    from .node.load import LoadError, run_load

    try:
        secret = bytes.fromhex(key.removeprefix("0x"))
    except ValueError:
        raise click.BadParameter("not hex", param_hint="--key") from None
    err = Console(stderr=True)
    try:
        report = run_load(
            url,
            workload=workload,
            senders=senders,
            per_sender=per_sender,
            clients=clients,
            batch=batch,
            funder_secret=secret,
            progress=(lambda m: None) if as_json else (lambda m: err.print(f"[dim]{m}[/dim]")),
        )
    except (LoadError, OSError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        _print_json(report.as_dict())
        return
    table = Table(title=f"parex load: {workload} over {url}")
    for name in ("transactions", "included", "tx/s", "blocks", "txs/block", "block fill", "p50 ms", "p99 ms"):
        table.add_column(name, justify="right")
    table.add_row(
        str(report.transactions), str(report.included), f"{report.tx_per_second:,.0f}", str(report.blocks),
        f"{report.txs_per_block:,.0f}", f"{report.block_fill:.0%}", f"{report.latency_p50_ms:,.0f}",
        f"{report.latency_p99_ms:,.0f}",
    )
    _stdout().print(table)


if __name__ == "__main__":
    main()
