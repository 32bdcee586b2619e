"""The least CPU the payload features' store work can cost one research run, beside ours.

A run of the benchmark's one-round shape (5 searches of 5 hits, 2 model calls) with every
payload feature on writes these objects into the folder store, and reads these back (writes
counted in a store kept with `run_bench.py --keep`, their mean sizes from the same; reads
from the code: each recorded-answer and cache lookup of a first attempt, each payload read by
the step that takes it, each page text checked by the audit):

| objects | writes | flushed | reads |
| --- | --- | --- | --- |
| recorded provider answers (`calls/`) | 32 | no | 32, all missing |
| page text for the audit (`content/`) | 25 | yes | 25 |
| the search cache (`searches/`) | 5 | no | 5, all missing |
| payloads stored aside (`payloads/`) | 9 | yes | 9 |
| the audit manifest (`audit/`) | 1 | yes | 0 |

This script does exactly that work, under the keys the store's layout gives it, run after
run, in one process, in a folder on the disk the benchmark uses, two ways in alternating
rounds, and prints the process's CPU time (user and system, all threads) per run of each:
the least, the median and the most over the rounds.

- **system calls only**: each object written to a new file and renamed into place (and
  flushed where ours flushes), each read one `open` and `read`; no encryption, no JSON, no
  event loop. No implementation of these features on a local folder spends less: the
  figure is what the features cost before any code of ours runs.
- **ours**: the same objects through `Records` over `FileObjectStore`, sealed with AES-GCM
  (`RESEARCH_ENCRYPTION_KEY`'s cipher), on an event loop as the workers do it: a search's
  five page texts in one `put_many`, everything else one `put` an object.

Against the allowance the worker-CPU target leaves (0.1 of the floor's worker CPU per run,
`--floor-ms`). Run it from the repository root:

    python bench/store_floor.py [--runs 50] [--rounds 6] [--floor-ms 100]
                                [--store KEPT_STORE --store-runs N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from research_shared.encryption import Keyring
from research_shared.store import Records, layout
from research_shared.store._file import FileObjectStore

SYSCALLS = "system calls only"
OURS = "ours (Records, FileObjectStore, sealed)"


@dataclass(frozen=True)
class Kind:
    prefix: str
    writes: int
    size: int
    durable: bool
    reads_found: int
    reads_missing: int


HITS_PER_SEARCH = 5
# One run of the one-round shape: counts and mean sizes from a kept benchmark store (110 runs).
ONE_ROUND = (
    Kind("calls/", 32, 2087, durable=False, reads_found=0, reads_missing=32),
    Kind("content/", 25, 902, durable=True, reads_found=25, reads_missing=0),
    Kind("searches/", 5, 7466, durable=False, reads_found=0, reads_missing=5),
    Kind("payloads/", 9, 12393, durable=True, reads_found=9, reads_missing=0),
    Kind("audit/", 1, 12232, durable=True, reads_found=0, reads_missing=0),
)


def kinds_from_store(store: Path, runs: int) -> tuple[Kind, ...]:
    """The counts and mean sizes of writes per run in a kept store; reads as in `ONE_ROUND`."""
    kinds = []
    for kind in ONE_ROUND:
        files = [p for p in (store / kind.prefix).rglob("*") if p.is_file()]
        if not files:
            raise SystemExit(f"error: {store} holds nothing under {kind.prefix}")
        writes = round(len(files) / runs)
        size = round(sum(p.stat().st_size for p in files) / len(files))
        kinds.append(
            Kind(kind.prefix, writes, size, kind.durable, kind.reads_found, kind.reads_missing)
        )
    return tuple(kinds)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def keys_of_a_run(run: int, kind: Kind) -> list[str]:
    """The keys a run's objects of `kind` have in the store's layout (`layout`)."""
    workflow = f"run-{run}"
    digests = [
        hashlib.sha256(f"{run}/{kind.prefix}{i}".encode()).hexdigest() for i in range(kind.writes)
    ]
    if kind.prefix == layout.CALLS:
        return [layout.call_key(workflow, digest) for digest in digests]
    if kind.prefix == layout.CONTENT:
        return [layout.content_key(workflow, digest) for digest in digests]
    if kind.prefix == layout.SEARCHES:
        return [layout.search_key(digest) for digest in digests]
    if kind.prefix == layout.PAYLOADS:
        return [layout.payload_key(digest) for digest in digests]
    return [layout.audit_key(workflow)]


def one_run_by_system_calls(root: Path, run: int, kinds: tuple[Kind, ...]) -> None:
    for kind in kinds:
        data = os.urandom(kind.size)
        paths = [root / key for key in keys_of_a_run(run, kind)]
        for path in paths:
            os.makedirs(path.parent, exist_ok=True)
            partial = path.with_name(f".partial-{path.name}")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
                if kind.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(partial, path)
        for i in range(kind.reads_found):
            with open(paths[i % len(paths)], "rb") as f:
                f.read()
        for i in range(kind.reads_missing):
            try:
                with open(paths[0].with_name(f"missing-{i}"), "rb") as f:
                    f.read()
            except FileNotFoundError:
                pass


async def one_run_by_our_store(records: Records, run: int, kinds: tuple[Kind, ...]) -> None:
    for kind in kinds:
        data = os.urandom(kind.size)
        keys = keys_of_a_run(run, kind)
        if kind.prefix == layout.CONTENT:  # a search keeps its pages' text in one write
            for first in range(0, len(keys), HITS_PER_SEARCH):
                batch = keys[first : first + HITS_PER_SEARCH]
                await records.put_many([(key, data) for key in batch], durable=kind.durable)
        else:
            for key in keys:
                await records.put(key, data, durable=kind.durable)
        for i in range(kind.reads_found):
            await records.get(keys[i % len(keys)])
        for i in range(kind.reads_missing):
            await records.get(f"{keys[0]}-missing-{i}")


async def runs_by_our_store(folder: Path, run_numbers: range, kinds: tuple[Kind, ...]) -> None:
    records = Records(FileObjectStore(folder), Keyring([os.urandom(32)]))
    for run in run_numbers:
        await one_run_by_our_store(records, run, kinds)


def measure(
    ways: list[str], run_numbers: range, kinds: tuple[Kind, ...], root: Path
) -> dict[str, float]:
    """CPU ms per run of each way, over `run_numbers`, each way into a folder of its own."""
    figures: dict[str, float] = {}
    for way in ways:
        folder = root / way.split()[0]
        cpu = cpu_seconds()
        if way == SYSCALLS:
            for run in run_numbers:
                one_run_by_system_calls(folder, run, kinds)
        else:
            asyncio.run(runs_by_our_store(folder, run_numbers, kinds))
        figures[way] = (cpu_seconds() - cpu) / len(run_numbers) * 1000
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=50, help="runs of each way a round (default 50)"
    )
    parser.add_argument(
        "--floor-ms",
        type=float,
        default=100.0,
        help="the floor's worker CPU per run, from the same invocation's comparison (default 100)",
    )
    parser.add_argument("--store", type=Path, help="take the writes from this kept store")
    parser.add_argument("--store-runs", type=int, default=0, help="runs of ours in --store")
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to write"
    )
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.rounds < 1 or args.floor_ms <= 0:
        print("error: --runs and --rounds must be at least 1, --floor-ms positive", file=sys.stderr)
        return 2
    if args.store is not None and args.store_runs < 1:
        print("error: --store needs --store-runs, the runs of ours it holds", file=sys.stderr)
        return 2
    kinds = ONE_ROUND if args.store is None else kinds_from_store(args.store, args.store_runs)
    writes = sum(k.writes for k in kinds)
    flushed = sum(k.writes for k in kinds if k.durable)
    reads = sum(k.reads_found + k.reads_missing for k in kinds)
    print(
        f"per run: {writes} writes ({flushed} flushed), {reads} reads; "
        f"{args.rounds} x {args.runs} runs a way, alternating"
    )
    allowance = 0.1 * args.floor_ms
    print(f"allowance: 0.1 x the floor's {args.floor_ms:g} ms = {allowance:.1f} ms of CPU a run")
    # The ways alternate, round after round, each in a folder of its own that grows as a
    # store does; nothing is deleted until the end (deleting many files at once slows the
    # disk of a VM that discards freed blocks, for the next round).
    root = Path(tempfile.mkdtemp(prefix="store-floor-", dir=args.dir))
    rounds: dict[str, list[float]] = {SYSCALLS: [], OURS: []}
    try:
        for number in range(args.rounds):
            ways = [SYSCALLS, OURS] if number % 2 == 0 else [OURS, SYSCALLS]
            runs = range(number * args.runs, (number + 1) * args.runs)
            for way, cpu in measure(ways, runs, kinds, root).items():
                rounds[way].append(cpu)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"{'way':40s} {'CPU ms/run: min':>15s} {'median':>7s} {'max':>7s} {'median/allowance':>17s}"
    )
    for way, figures in rounds.items():
        median = statistics.median(figures)
        print(
            f"{way:40s} {min(figures):15.2f} {median:7.2f} {max(figures):7.2f} "
            f"{median / allowance:17.2f}"
        )
    print(
        "rounds: "
        + "; ".join(f"{way}: {', '.join(f'{x:.1f}' for x in rounds[way])}" for way in rounds)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
