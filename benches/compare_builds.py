"""
Two or more builds of the engine, one block, in one process: the runs of every build take turns
round by round, so that a host whose speed drifts by 10-40% over minutes (the shared 2-vCPU VM
of docs/benchmarks.md) slows every build alike, where alternating processes compare one
build's quiet minute with another's busy one.

    .venv/bin/python benches/compare_builds.py save /tmp/builds/before    # the current build
    # ... change the engine, `make build` ...
    .venv/bin/python benches/compare_builds.py run /tmp/builds/before python/parex \\
        --workload erc20 --conflict 0 --rounds 40

`save` copies the installed package (`python/parex`, with its compiled `_core`) to a folder.
`run` loads each given package folder under a name of its own (`build0`, `build1`, ...), builds
the same seeded block with each, and then runs, every round, the sequential executor and
Block-STM at 1 and 2 threads on each build, the builds' order rotating from round to round.
It prints, per build, the median execution times, the medians of the per-round ratios
sequential / Block-STM (`r1`, `r2`: within one build, so free of any bias between builds),
and the median per-round time of each executor against the first build's.

Cross-build time ratios carry a bias of a few percent (the sequential executor's, whose code
two builds shared, came out 0.95-1.03), so a change is judged by `r1`/`r2` and by repeating the
run with the builds' order swapped, not by one time ratio.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

# Each copy of the extension brings its own allocator, whose thread-locals live in the static
# TLS block; the loader's default reserve holds one copy, not several.
TLS_TUNABLE = "glibc.rtld.optional_static_tls=65536"
EXECUTORS = ("seq", "p1", "p2")


@dataclass
class Build:
    name: str
    source: Path
    times: dict[str, list[float]] = field(default_factory=lambda: {e: [] for e in EXECUTORS})


def save(destination: Path) -> None:
    source = Path(__file__).resolve().parent.parent / "python" / "parex"
    if not any(source.glob("_core*.so")):
        sys.exit(f"compare_builds: no compiled _core in {source}: run `make build` first")
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
    print(f"saved {source} to {destination}")


def load(build: Build, root: Path) -> ModuleType:
    if not (build.source / "__init__.py").is_file() or not any(build.source.glob("_core*.so")):
        sys.exit(f"compare_builds: {build.source} is not a built parex package")
    shutil.copytree(build.source, root / build.name, ignore=shutil.ignore_patterns("__pycache__"))
    return importlib.import_module(build.name)


def runner(
    build: Build, package: ModuleType, workload: str, txs: int, conflict: int
) -> Callable[[], None]:
    """One round of `build` on its own copy of the block: each executor once, timed and checked."""
    generators = importlib.import_module(f"{build.name}.workloads").WORKLOADS
    if workload not in generators:
        sys.exit(f"compare_builds: no workload {workload!r} (known: {', '.join(generators)})")
    block = generators[workload](txs, conflict)
    reference = package.Engine(threads=1)
    prepared = reference.prepare(block.block_env, block.transactions)
    engines = {n: package.Engine(threads=n, sequential_rule=False) for n in (1, 2)}
    digest = reference.execute_prepared(prepared, block.pre_state, sequential=True).digest()

    def run() -> None:
        state = block.pre_state
        results = {
            "seq": reference.execute_prepared(prepared, state, sequential=True),
            "p1": engines[1].execute_prepared(prepared, state),
            "p2": engines[2].execute_prepared(prepared, state),
        }
        for executor, result in results.items():
            if result.digest() != digest:
                sys.exit(f"compare_builds: {build.name} ({build.source}): {executor} diverged")
            build.times[executor].append(result.execution_ns / 1e6)

    return run


def report(builds: list[Build], workload: str, conflict: int) -> None:
    median = statistics.median
    first = builds[0]
    for build in builds:
        t = build.times
        r1, r2 = (median(s / p for s, p in zip(t["seq"], t[e])) for e in ("p1", "p2"))
        against = " ".join(
            f"{e} {median(b / a for a, b in zip(first.times[e], t[e])):.3f}" for e in EXECUTORS
        )
        print(
            f"{build.name} {workload} c{conflict}: seq {median(t['seq']):.2f} "
            f"p1 {median(t['p1']):.2f} p2 {median(t['p2']):.2f} ms | r1 {r1:.3f} r2 {r2:.3f} | "
            f"time against {first.name}: {against} | {build.source}"
        )


def compare(args: argparse.Namespace) -> None:
    if TLS_TUNABLE not in os.environ.get("GLIBC_TUNABLES", ""):
        tunables = ":".join(filter(None, [os.environ.get("GLIBC_TUNABLES"), TLS_TUNABLE]))
        environment = {**os.environ, "GLIBC_TUNABLES": tunables}
        os.execve(sys.executable, [sys.executable, *sys.argv], environment)
    builds = [Build(f"build{i}", Path(p).resolve()) for i, p in enumerate(args.builds)]
    with tempfile.TemporaryDirectory(prefix="parex-builds-") as root:
        sys.path.insert(0, root)
        runs = [
            (build, runner(build, load(build, Path(root)), args.workload, args.txs, args.conflict))
            for build in builds
        ]
        for build, run in runs:  # warm-up, not counted
            run()
            for times in build.times.values():
                times.clear()
        for round_ in range(args.rounds):
            turn = round_ % len(runs)
            for _, run in runs[turn:] + runs[:turn]:
                run()
    report(builds, args.workload, args.conflict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    saving = commands.add_parser("save", help="copy the installed build to a folder")
    saving.add_argument("destination", type=Path)
    running = commands.add_parser("run", help="compare builds in one process")
    running.add_argument(
        "builds", nargs="+", help="parex package folders (python/parex, saved ones)"
    )
    running.add_argument("--workload", default="erc20", help="a parex bench workload")
    running.add_argument("--conflict", type=int, default=0)
    running.add_argument("--txs", type=int, default=10_000)
    running.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    if args.command == "save":
        save(args.destination)
    else:
        if args.rounds < 1:
            parser.error("--rounds: must be at least 1")
        compare(args)


if __name__ == "__main__":
    main()
