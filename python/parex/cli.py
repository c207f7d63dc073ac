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

``parex load`` sends a sustained stream of signed transactions to a node over JSON-RPC and
reports tx/s, block fill and receipt latency; it exits with status 1 when a transaction reverts,
is refused or is never included.
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

from . import __version__, bench, conformance, load, replay
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
        "e2e = with decoding and signature recovery",
    )
    for header in (
        "workload", "conflict", "threads", "txs", "gas", "seq ms", "par ms", "speedup",
        "Mgas/s", "tx/s", "re-exec", "ideal", "efficiency", "recover ms", "e2e", "identical",
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
    help="Worker threads (repeatable). Default: 1, 2 and the number of CPUs.",
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
        "Byzantium: receipts embed state roots and the pre-state is partial)",
    )
    for header in (
        "block", "fork", "txs", "gas", "seq ms", "par ms", "speedup", "ideal", "re-exec",
        "header", "identical",
    ):
        left = header in ("fork", "header", "identical")
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
        )
    return table


@main.command("replay")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--threads", "-t", type=int, default=None, callback=_positive,
    help="Block-STM worker threads. Default: the number of CPUs.",
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, nothing else.")
def replay_command(
    path: Path, threads: int | None, repeat: int, cache_dir: Path | None, as_json: bool
) -> None:
    """Replay real blocks and check them against their headers.

    PATH is a fixture archive (.tar.gz, extracted once into the cache folder), an extracted
    fixture folder (holding blocks/ or mainnet/blocks/), or one block folder. Each block
    runs sequentially and with Block-STM; gas used, logs bloom, transactions root and (from
    Byzantium on) receipts root must match the header, and the parallel outcome must equal
    the sequential one. Block rewards and withdrawals are not applied (no state root is
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
    out.print(_tally_table("parex conformance: by fork", "fork", report.by_fork()))
    out.print(_tally_table("by folder", "folder", report.by_group()))
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
    help="Block-STM worker threads. Default: the number of CPUs.",
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
    Blockchain tests are reported as skipped (not yet implemented). Exits with status 1 when
    any case fails.
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


@main.command("load")
@click.option(
    "--rpc-url", default=load.DEFAULTS.url, show_default=True, help="The node's JSON-RPC URL."
)
@click.option(
    "--workload", type=click.Choice(sorted(load.WORKLOAD_GAS)), default="erc20",
    show_default=True, help="What each measured transaction does.",
)
@click.option(
    "--senders", type=int, default=load.DEFAULTS.senders, show_default=True,
    callback=_positive, help="Distinct sending accounts (funded during set-up).",
)
@click.option(
    "--duration", type=float, default=load.DEFAULTS.duration_s, show_default=True,
    help="Seconds of sending.",
)
@click.option(
    "--rate", type=int, default=0, show_default=True,
    help="Target transactions per second; 0 sends as fast as the in-flight window allows.",
)
@click.option(
    "--batch", type=int, default=load.DEFAULTS.batch, show_default=True, callback=_positive,
    help="Transactions per JSON-RPC batch request.",
)
@click.option(
    "--depth", type=int, default=load.DEFAULTS.depth, show_default=True, callback=_positive,
    help="Transactions each sender keeps in flight.",
)
@click.option(
    "--private-key", default=None,
    help="Funder's key (hex). Default: the first dev account of the standard test mnemonic.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the senders' keys.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, nothing else.")
def load_command(
    rpc_url: str, workload: str, senders: int, duration: float, rate: int, batch: int,
    depth: int, private_key: str | None, seed: int, as_json: bool,
) -> None:
    """Send signed transactions to a node over JSON-RPC and measure it end to end.

    Set-up funds SENDERS accounts (and deploys and mints a token for erc20); then, for
    DURATION seconds, every sender keeps DEPTH transactions in flight. Reports sustained
    tx/s (first send to last inclusion), block fill, and send-to-receipt latency at p50/p99.
    """
    config = load.LoadConfig(
        url=rpc_url, workload=workload, senders=senders, duration_s=duration, rate=rate,
        batch=batch, depth=depth, private_key=private_key, seed=seed,
    )
    err = Console(stderr=True)
    with _progress(err) as progress:
        task = progress.add_task("set-up", total=duration)
        try:
            report = load.run_load(
                config,
                on_progress=lambda elapsed, sent: progress.update(
                    task, completed=elapsed, description=f"load: {sent} sent"
                ),
            )
        except (load.LoadError, load.RpcError) as e:
            raise click.ClickException(str(e)) from e
    if as_json:
        _print_json(report.as_json())
    else:
        table = Table(title=f"parex load: {report.workload} against {report.url}",
                      title_justify="left")
        for column in ("sent", "included", "tx/s", "blocks", "tx/block", "block fill",
                       "p50 ms", "p99 ms", "failed", "rejected", "lost"):
            table.add_column(column, justify="right")
        table.add_row(
            str(report.sent), str(report.included), f"{report.tx_per_s:,.0f}",
            str(report.blocks), f"{report.txs_per_block:.0f}", f"{report.block_fill:.0%}",
            f"{report.latency_p50_ms:.0f}", f"{report.latency_p99_ms:.0f}",
            str(report.failed), str(report.rejected), str(report.lost),
        )
        _stdout().print(table)
    for reason in report.rejection_reasons:
        err.print(f"[bold red]refused:[/] {reason}")
    if report.failed or report.rejected or report.lost:
        sys.exit(1)


if __name__ == "__main__":
    main()
