"""Runs of the three kinds: the shapes they share, starting one and waiting for it, many at a
fixed concurrency, and what the processes did meanwhile."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client

from bench._stack import (
    POOLS,
    SERVER,
    BenchError,
    Metrics,
    Processes,
    ProviderControl,
    Queues,
    calls_between,
    delta,
    histogram_mean,
    machine_busy_seconds,
    scrape_pools,
)
from bench.bare import BARE_WORKFLOW, BareRequest
from research_shared.client import ResearchClient
from research_shared.models import Outcome, ResearchRequest

# Accept any cached answer up to an hour old: every run searches queries of its own, so each
# lookup misses, and the cache's cost (a read and a write per search) is paid in full.
CACHE_SECONDS = 3600


@dataclass(frozen=True)
class Shape:
    """What every kind does in one run: K searches a round, rounds with a reflection between
    them, and a review that sends the draft back once."""

    name: str
    searches: int
    hits: int
    rounds: int = 1
    review: bool = False

    @property
    def model_calls(self) -> int:
        """plan, a reflection between rounds, synthesize, and review and revise."""
        return 1 + (self.rounds - 1) + 1 + (2 if self.review else 0)

    @property
    def search_calls(self) -> int:
        return self.searches * self.rounds

    @property
    def sequential_steps(self) -> int:
        """Activity stages one after the other: plan, each round's searches, each reflection,
        synthesize, review, revise, record_audit."""
        return 1 + self.rounds + (self.rounds - 1) + 1 + (2 if self.review else 0) + 1

    def critical_path(self, delay: float) -> float:
        """Provider time on the critical path when every model call and every /search takes
        `delay` seconds and /extract none."""
        return (self.model_calls + self.rounds) * delay

    def describe(self) -> dict[str, Any]:
        return {
            "searches_per_round": self.searches,
            "hits_per_search": self.hits,
            "rounds": self.rounds,
            "review": self.review,
            "model_calls": self.model_calls,
            "searches": self.search_calls,
            "sequential_steps": self.sequential_steps,
        }


@dataclass
class Sample:
    """One run."""

    workflow_id: str
    latency: float
    searches: int
    failed_searches: int = 0


RunOne = Callable[[int, str], Awaitable[Sample]]


def question(tag: str, index: int) -> str:
    """A question of its own for every run, so no two runs search the same queries."""
    return f"How do durable workflows recover from a crash? (benchmark {tag}, run {index})"


async def within(seconds: float, result: Awaitable[Any], workflow_id: str) -> Any:
    """The run's result, or a `BenchError` if it takes longer than `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            return await result
    except TimeoutError:
        raise BenchError(
            f"run {workflow_id} did not finish in {seconds:g}s; is a worker stuck?"
        ) from None


def ours_request(shape: Shape, text: str, cache: bool, **extra: Any) -> ResearchRequest:
    return ResearchRequest(
        question=text,
        max_searches=shape.searches,
        results_per_search=shape.hits,
        max_rounds=shape.rounds,
        max_review_rounds=1 if shape.review else 0,
        reuse_searches_within_seconds=CACHE_SECONDS if cache else 0,
        **extra,
    )


def ours_runner(
    research: ResearchClient, shape: Shape, tag: str, timeout: float, cache: bool
) -> RunOne:
    async def run(index: int, workflow_id: str) -> Sample:
        request = ours_request(shape, question(tag, index), cache)
        started = time.monotonic()
        await research.start(request, id=workflow_id)
        report = await within(timeout, research.wait(workflow_id), workflow_id)
        latency = time.monotonic() - started
        stats = report.stats
        if report.outcome is not Outcome.COMPLETED or stats.rounds != shape.rounds:
            raise BenchError(
                f"run {workflow_id} ended {report.outcome.value} after {stats.rounds} rounds "
                f"({report.outcome_reason or 'no reason given'}); the shape asks for "
                f"{shape.rounds}"
            )
        return Sample(
            workflow_id,
            latency,
            searches=stats.searches_succeeded + stats.searches_failed,
            failed_searches=stats.searches_failed,
        )

    return run


def baseline_runner(
    client: Client, queues: Queues, shape: Shape, tag: str, timeout: float
) -> RunOne:
    async def run(index: int, workflow_id: str) -> Sample:
        request = BareRequest(
            question=question(tag, index),
            searches=shape.searches,
            search_queue=queues.search,
            llm_queue=queues.llm,
            rounds=shape.rounds,
            review=shape.review,
            hits=shape.hits,
        )
        started = time.monotonic()
        handle = await client.start_workflow(
            BARE_WORKFLOW, request, id=workflow_id, task_queue=queues.orchestrator
        )
        result = await within(timeout, handle.result(), workflow_id)
        latency = time.monotonic() - started
        return Sample(workflow_id, latency, searches=int(result["searches"]))

    return run


async def run_many(
    run: RunOne, prefix: str, runs: int, concurrency: int
) -> tuple[list[Sample], float]:
    """`runs` runs, at most `concurrency` in flight: each lane starts its next run as soon
    as its previous one returns. Returns the samples in run order and the wall time."""
    indexes: Iterator[int] = iter(range(runs))
    samples: list[Sample | None] = [None] * runs

    async def lane() -> None:
        for index in indexes:
            samples[index] = await run(index, f"{prefix}-{index:04d}")

    started = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, runs))))
    wall = time.monotonic() - started
    return [s for s in samples if s is not None], wall


async def history_sizes(research: ResearchClient, ids: list[str]) -> tuple[float, float]:
    """Mean event count and mean size in bytes of the runs' histories (of any kind: an
    unscoped client describes any workflow)."""
    events = 0
    size = 0
    for workflow_id in ids:
        description = await research.describe(workflow_id)
        events += description.history_length
        size += description.raw_description.workflow_execution_info.history_size_bytes
    return events / len(ids), size / len(ids)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of values at or
    below it (so with 20 runs, p95 is the 19th fastest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def p50_ratio_interval(
    ours: list[float], other: list[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The 5th and 95th percentiles of ours' p50 over the other's, each kind's runs drawn
    again with replacement `resamples` times (a percentile bootstrap): how far the measured
    ratio could move with other runs of the same machine. Seeded, so an invocation's figures
    are reproducible from its latencies."""
    draw = random.Random(seed).choices
    ratios = sorted(
        percentile(draw(ours, k=len(ours)), 0.5) / percentile(draw(other, k=len(other)), 0.5)
        for _ in range(resamples)
    )
    return percentile(ratios, 0.05), percentile(ratios, 0.95)


_ACTIVITIES = ("plan", "web_search", "reflect", "synthesize", "review", "revise", "record_audit")


@dataclass
class KindResult:
    """The timed runs of one kind at one concurrency, and what its processes did meanwhile."""

    kind: str
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    client_cpu: float = 0.0
    metrics: dict[str, Metrics] = field(default_factory=lambda: {pool: {} for pool in POOLS})
    provider_calls: dict[str, int] = field(default_factory=dict)
    history_events: float = 0.0
    history_bytes: float = 0.0
    outside_cpu: float | None = None

    def summary(self) -> dict[str, Any]:
        latencies = [s.latency for s in self.samples]
        n = len(self.samples)
        cpu = {name.removeprefix(f"{self.kind}-"): s / n for name, s in self.cpu.items()}
        cpu["client"] = self.client_cpu / n
        return {
            "runs": n,
            "searches_per_run": {
                "min": min(s.searches for s in self.samples),
                "max": max(s.searches for s in self.samples),
            },
            "failed_searches": sum(s.failed_searches for s in self.samples),
            "provider_calls_per_run": {k: v / n for k, v in sorted(self.provider_calls.items())},
            "latency_seconds": {
                "p50": percentile(latencies, 0.50),
                "p95": percentile(latencies, 0.95),
                "max": max(latencies),
                "mean": sum(latencies) / n,
            },
            "wall_seconds": self.wall,
            "throughput_runs_per_second": n / self.wall,
            "cpu_seconds_per_run": cpu,
            "worker_cpu_seconds_per_run": sum(cpu.get(pool, 0.0) for pool in POOLS),
            "history_events_per_run": self.history_events,
            "history_bytes_per_run": self.history_bytes,
            "other_processes_cpu_cores": (
                None if self.outside_cpu is None else max(0.0, self.outside_cpu) / self.wall
            ),
            "latencies_in_start_order": [round(s.latency, 4) for s in self.samples],
            "breakdown": self.breakdown(),
        }

    def breakdown(self) -> dict[str, Any]:
        """Per-run means of what the SDK and our workers measured during the timed runs."""
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
        for name in _ACTIVITIES:
            samples = search if name in ("web_search", "record_audit") else llm
            count, execution = histogram_mean(
                samples, "temporal_activity_execution_latency", activity_type=name
            )
            if not count:
                continue
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
                "provider_call_ms": body * 1000 if body is not None else None,
            }
        out["activities"] = activities
        _, out["search_queue_schedule_to_start_ms"] = histogram_mean(
            search, "temporal_activity_schedule_to_start_latency"
        )
        _, out["llm_queue_schedule_to_start_ms"] = histogram_mean(
            llm, "temporal_activity_schedule_to_start_latency"
        )
        return out


async def timed_round(
    result: KindResult,
    run: RunOne,
    runs: int,
    concurrency: int,
    prefix: str,
    procs: Processes,
    control: ProviderControl,
) -> list[Sample]:
    """Time `runs` runs of one kind and add them, and what the processes did, to `result`."""
    kind = result.kind
    metrics_before = await scrape_pools(procs, kind)
    calls_before = await control.calls()
    busy_before = machine_busy_seconds()
    cpu_before = procs.cpu_seconds()
    client_before = time.process_time()
    samples, wall = await run_many(run, prefix, runs, concurrency)
    client_cpu = time.process_time() - client_before
    cpu_after = procs.cpu_seconds()
    busy_after = machine_busy_seconds()
    calls_after = await control.calls()
    metrics_after = await scrape_pools(procs, kind)
    result.samples += samples
    result.wall += wall
    result.client_cpu += client_cpu
    for endpoint, count in calls_between(calls_before, calls_after).items():
        result.provider_calls[endpoint] = result.provider_calls.get(endpoint, 0) + count
    if busy_before is not None and busy_after is not None:
        # What the rest of the machine used meanwhile: other jobs skew every figure here.
        ours = client_cpu + sum(cpu_after[n] - cpu_before.get(n, 0.0) for n in cpu_after)
        result.outside_cpu = (result.outside_cpu or 0.0) + busy_after - busy_before - ours
    # The server, the providers and this kind's pools: the other kinds' pools sit idle in
    # long polls.
    for name in cpu_after:
        if name in (SERVER, "providers") or name.startswith(f"{kind}-"):
            used = cpu_after[name] - cpu_before.get(name, 0.0)
            result.cpu[name] = result.cpu.get(name, 0.0) + used
    for pool in POOLS:
        for key, value in delta(metrics_after[pool], metrics_before[pool]).items():
            result.metrics[pool][key] = result.metrics[pool].get(key, 0.0) + value
    return samples


def round_sizes(runs: int, rounds: int) -> list[int]:
    """`runs` split into `rounds` nearly equal parts."""
    return [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]


def kind_order(number: int, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """Rounds go forward, then backward (bare, floor, ours; ours, floor, bare; ...), so a
    steady drift of the machine's speed weighs on every kind alike."""
    return kinds if number % 2 == 0 else kinds[::-1]
