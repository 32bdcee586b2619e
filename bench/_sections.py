"""The benchmark's sections, each a coroutine over the running stack that returns its figures:
the comparison of the three kinds, the critical path, recovery after a SIGKILL, history
size, runs waiting on people, and the profile of our pools."""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import _profile
from bench._runs import (
    KindResult,
    RunOne,
    Sample,
    Shape,
    baseline_runner,
    history_sizes,
    kind_order,
    ours_request,
    ours_runner,
    p50_ratio_interval,
    percentile,
    question,
    round_sizes,
    run_many,
    timed_round,
    within,
)
from bench._stack import (
    KINDS,
    POOLS,
    SERVER,
    BenchError,
    Features,
    Processes,
    ProviderControl,
    Queues,
    calls_between,
    load_average,
    note,
    scrape,
    total,
)
from research_shared import retry
from research_shared.client import ResearchClient
from research_shared.models import Outcome, ResearchReport

T = TypeVar("T")
# The kinds the profile samples, the floor first: ours' extra is what it shows.
PROFILED = ("floor", "ours")
# Histories described per kind and concurrency: enough for a mean, without a call per run.
HISTORY_SAMPLE = 20


@dataclass
class Bench:
    """The running stack, as the sections use it."""

    procs: Processes
    control: ProviderControl
    queues: dict[str, Queues]
    research: ResearchClient
    baseline_client: Client
    tag: str
    features: Features
    run_timeout: float

    def runner(self, kind: str, shape: Shape, tag: str) -> RunOne:
        if kind == "ours":
            return ours_runner(self.research, shape, tag, self.run_timeout, self.features.cache)
        return baseline_runner(
            self.baseline_client, self.queues[kind], shape, tag, self.run_timeout
        )

    async def one(self, kind: str, shape: Shape, label: str) -> Sample:
        tag = f"{self.tag}-{label}-{kind}"
        samples, _ = await run_many(self.runner(kind, shape, tag), f"bench-{tag}", 1, 1)
        return samples[0]

    def check_alive(self) -> None:
        if dead := self.procs.dead():
            raise BenchError(f"processes exited during the runs: {', '.join(dead)}")


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _ratios(ours: dict[str, Any], other: dict[str, Any]) -> dict[str, float | None]:
    return {
        "p50_latency": _ratio(ours["latency_seconds"]["p50"], other["latency_seconds"]["p50"]),
        "p95_latency": _ratio(ours["latency_seconds"]["p95"], other["latency_seconds"]["p95"]),
        "throughput": _ratio(
            ours["throughput_runs_per_second"], other["throughput_runs_per_second"]
        ),
        "worker_cpu_per_run": _ratio(
            ours["worker_cpu_seconds_per_run"], other["worker_cpu_seconds_per_run"]
        ),
        "history_bytes_per_run": _ratio(
            ours["history_bytes_per_run"], other["history_bytes_per_run"]
        ),
    }


# -- the comparison ----------------------------------------------------------------------------


async def warm_up(bench: Bench, shape: Shape, runs: int) -> None:
    """Untimed runs of each kind: imports, the sandbox, connections, the providers."""
    for kind in KINDS:
        tag = f"{bench.tag}-warm-{shape.name}-{kind}"
        await run_many(bench.runner(kind, shape, tag), f"bench-{tag}", runs, min(runs, 5))
    bench.check_alive()


async def comparison(
    bench: Bench, shape: Shape, levels: list[int], runs: int, rounds: int
) -> list[dict[str, Any]]:
    """Each kind at each concurrency, in rounds of alternating order."""
    figures = []
    for concurrency in levels:
        total_runs = max(runs, 2 * rounds * concurrency)
        results = {kind: KindResult(kind) for kind in KINDS}
        load = load_average()
        by_round: list[dict[str, float]] = []  # each kind's p50 in each round
        for number, size in enumerate(round_sizes(total_runs, rounds)):
            by_round.append({})
            for kind in kind_order(number, KINDS):
                note(
                    f"{shape.name}, concurrency {concurrency}, round {number + 1}: "
                    f"{size} {kind} runs"
                )
                tag = f"{bench.tag}-{shape.name}-c{concurrency}-r{number}-{kind}"
                timed = await timed_round(
                    results[kind],
                    bench.runner(kind, shape, tag),
                    size,
                    concurrency,
                    f"bench-{tag}",
                    bench.procs,
                    bench.control,
                )
                by_round[-1][kind] = percentile([sample.latency for sample in timed], 0.5)
                bench.check_alive()
        for result in results.values():
            ids = [s.workflow_id for s in result.samples[:HISTORY_SAMPLE]]
            result.history_events, result.history_bytes = await history_sizes(bench.research, ids)
        kinds = {kind: results[kind].summary() for kind in KINDS}
        figures.append(
            {
                "concurrency": concurrency,
                "runs_per_kind": total_runs,
                "load_average_before": load,
                "kinds": kinds,
                "ours_over_floor": _ratios(kinds["ours"], kinds["floor"]),
                "ours_over_bare": _ratios(kinds["ours"], kinds["bare"]),
                # How much the serial ratio moves: round by round, and drawn again from the
                # runs (the 90 % interval of a bootstrap).
                "ours_over_floor_p50_by_round": [r["ours"] / r["floor"] for r in by_round],
                "ours_over_floor_p50_interval": p50_ratio_interval(
                    [sample.latency for sample in results["ours"].samples],
                    [sample.latency for sample in results["floor"].samples],
                ),
                "same_provider_calls": (
                    kinds["ours"]["provider_calls_per_run"]
                    == kinds["floor"]["provider_calls_per_run"]
                ),
            }
        )
    return figures


# -- the critical path -------------------------------------------------------------------------


async def critical_path(
    bench: Bench, shapes: list[Shape], delay: float, runs: int
) -> dict[str, Any]:
    """One run at a time, every model call and every /search answered after `delay`; the
    end-to-end time of each kind against the provider time on its critical path, and what
    each extra sequential step costs beyond its provider time."""
    await bench.control.configure(model_delay=delay, search_delay=delay)
    latencies: dict[str, dict[str, list[float]]] = {s.name: {k: [] for k in KINDS} for s in shapes}
    load = load_average()
    try:
        for shape in shapes:
            for number in range(runs):
                for kind in kind_order(number, KINDS):
                    note(f"critical path, {shape.name}: {kind} run {number + 1} of {runs}")
                    sample = await bench.one(kind, shape, f"cp-{shape.name}-{number}")
                    latencies[shape.name][kind].append(sample.latency)
                    bench.check_alive()
    finally:
        await bench.control.configure()
    figures: dict[str, Any] = {
        "provider_delay_seconds": delay,
        "runs": runs,
        "load_average_before": load,
        "shapes": {},
    }
    for shape in shapes:
        rows = {}
        for kind in KINDS:
            values = latencies[shape.name][kind]
            median = statistics.median(values)
            path = 0.0 if kind == "bare" else shape.critical_path(delay)
            rows[kind] = {
                "end_to_end_seconds": median,
                "min_seconds": min(values),
                "max_seconds": max(values),
                "critical_path_seconds": path,
                "over_critical_path": median / path if path else None,
                "beyond_provider_seconds": median - path,
            }
        figures["shapes"][shape.name] = {**shape.describe(), "kinds": rows}
    short, deep = shapes[0], shapes[-1]
    extra_steps = deep.sequential_steps - short.sequential_steps
    figures["extra_sequential_steps"] = extra_steps
    figures["tax_per_step_ms"] = {
        kind: 1000
        * (
            figures["shapes"][deep.name]["kinds"][kind]["beyond_provider_seconds"]
            - figures["shapes"][short.name]["kinds"][kind]["beyond_provider_seconds"]
        )
        / extra_steps
        for kind in KINDS
    }
    tax = figures["tax_per_step_ms"]
    figures["ours_tax_minus_bare_ms"] = tax["ours"] - tax["bare"]
    return figures


# -- recovery ------------------------------------------------------------------------------------


async def _until(condition: Callable[[], Awaitable[bool]], what: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not await condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {within_s:g}s waiting for {what}")
        await asyncio.sleep(0.02)


async def recovery(bench: Bench, shape: Shape, delay: float) -> dict[str, Any]:
    """SIGKILL our search worker while a run's searches wait on the provider, start it
    again at once (as a supervisor or Kubernetes would), and time the run to its report."""
    await bench.control.configure(model_delay=delay, search_delay=delay)
    name = "ours-search"
    try:
        before = await bench.control.calls()

        async def searches_in_flight() -> bool:
            now = (await bench.control.calls()).get("search", {})
            received = now.get("received", 0) - before.get("search", {}).get("received", 0)
            return received >= shape.searches

        workflow_id = f"bench-{bench.tag}-recovery"
        request = ours_request(shape, question(bench.tag, 0) + " recovery", bench.features.cache)
        started = time.monotonic()
        await bench.research.start(request, id=workflow_id)
        await _until(searches_in_flight, "the run's searches to reach the provider", 120)
        killed = time.monotonic()
        killed_at = time.time()
        note(f"recovery: SIGKILL {name} with {shape.searches} searches in flight")
        bench.procs.supervisor.kill(name)
        bench.procs.supervisor.start(bench.procs.supervisor.specs[name])
        await bench.procs.wait_ready([name], "worker started", 120)
        ready = time.monotonic()
        report = await within(300, bench.research.wait(workflow_id), workflow_id)
        done = time.monotonic()
        after = await bench.control.calls()
    finally:
        await bench.control.configure()
    calls = calls_between(before, after)
    retried = await _retried_searches(bench.research, workflow_id)
    heartbeat = retry.WEB_SEARCH.heartbeat.total_seconds()
    # After the kill: the killed searches again (their /search had not answered, so nothing
    # was recorded), then synthesize.
    remaining = 2 * delay
    bound = heartbeat + remaining + 2.0
    return {
        "provider_delay_seconds": delay,
        "searches": shape.searches,
        "killed_after_start_seconds": killed - started,
        "restarted_worker_ready_seconds": ready - killed,
        "kill_to_report_seconds": done - killed,
        "heartbeat_timeout_seconds": heartbeat,
        "remaining_provider_seconds": remaining,
        "bound_seconds": bound,
        "met": done - killed <= bound,
        # From the run's history: when the killed searches' next attempts started, and when
        # the run completed, counted from the kill (this machine's wall clock).
        "kill_to_next_attempts_seconds": (
            retried["next_attempts_started"] - killed_at if retried else None
        ),
        "next_attempts_to_completed_seconds": (
            retried["completed"] - retried["next_attempts_started"] if retried else None
        ),
        "retry_initial_interval_seconds": _seconds(retry.WEB_SEARCH.retry.initial_interval),
        "outcome": report.outcome.value,
        "searches_succeeded": report.stats.searches_succeeded,
        "searches_failed": report.stats.searches_failed,
        "search_calls": calls.get("search", 0),
        "model_calls": sum(v for k, v in calls.items() if k not in ("search", "extract")),
    }


def _seconds(value: timedelta | None) -> float:
    return value.total_seconds() if value is not None else 0.0


async def _retried_searches(research: ResearchClient, workflow_id: str) -> dict[str, float]:
    """When the last of the run's retried searches started its next attempt, and when the
    run completed (epoch seconds, from the history's event times); empty if none retried."""
    history = await research.history(workflow_id)
    started = [
        e.event_time.ToDatetime(tzinfo=UTC).timestamp()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.attempt > 1
    ]
    completed = [
        e.event_time.ToDatetime(tzinfo=UTC).timestamp()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    ]
    if not started or not completed:
        return {}
    return {"next_attempts_started": max(started), "completed": completed[0]}


# -- history size --------------------------------------------------------------------------------


async def history(bench: Bench, shape: Shape, page_chars: int) -> dict[str, Any]:
    """One run of each kind over pages of `page_chars` characters; its history's size."""
    await bench.control.configure(page_chars=page_chars)
    rows = {}
    try:
        for kind in KINDS:
            note(
                f"history: one {kind} run of {shape.searches} searches over {page_chars}-char pages"
            )
            sample = await bench.one(kind, shape, "history")
            events, size = await history_sizes(bench.research, [sample.workflow_id])
            rows[kind] = {
                "searches": sample.searches,
                "history_events": int(events),
                "history_bytes": int(size),
            }
    finally:
        await bench.control.configure()
    return {**shape.describe(), "page_chars": page_chars, "kinds": rows}


# -- runs waiting on people ----------------------------------------------------------------------

APPROVE = {"decision": "approve"}


async def _report(research: ResearchClient, workflow_id: str) -> ResearchReport:
    report: ResearchReport = await within(3600, research.wait(workflow_id), workflow_id)
    return report


async def _bounded(jobs: list[Callable[[], Awaitable[T]]], at_once: int) -> list[T]:
    gate = asyncio.Semaphore(at_once)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


async def restart_pool(bench: Bench, name: str) -> None:
    """Stop the pool `name` (no run has work in it) and start it again, ready."""
    note(f"restarting {name}")
    bench.procs.supervisor.kill(name)
    bench.procs.supervisor.start(bench.procs.supervisor.specs[name])
    await bench.procs.wait_ready([name], "worker started", 120)


async def waiting(bench: Bench, count: int, at_once: int = 50) -> dict[str, Any]:
    """`count` runs of ours waiting for a person to approve their plan: the orchestrator's
    memory idle, with all of them waiting, and once every one is approved and complete."""
    shape = Shape("waiting", searches=1, hits=1)
    orchestrator = "ours-orchestrator"
    sdk_port = bench.procs.metrics_ports[orchestrator][0]
    tasks_name = "temporal_workflow_task_execution_latency_count"
    load = load_average()
    rss_idle = bench.procs.rss_bytes(orchestrator)
    server_idle = (
        bench.procs.rss_bytes(SERVER) if SERVER in bench.procs.supervisor.processes else None
    )
    tasks_before = total(await asyncio.to_thread(scrape, sdk_port), tasks_name)
    calls_before = await bench.control.calls()
    cpu_idle = bench.procs.cpu_seconds().get(orchestrator, 0.0)
    # Ids of this call's own: a second count's runs must not meet the first's (a start with
    # the id of a finished run would return that run, and nothing would wait).
    batch = uuid.uuid4().hex[:6]
    ids = [f"bench-{bench.tag}-waiting-{batch}-{n:05d}" for n in range(count)]

    def starter(n: int) -> Callable[[], Awaitable[Any]]:
        request = ours_request(
            shape,
            question(bench.tag, n) + f" waiting {batch}",
            bench.features.cache,
            approve_plan=True,
        )
        return lambda: bench.research.start(request, id=ids[n])

    note(f"waiting: starting {count} runs that wait for their plan's approval")
    started = time.monotonic()
    await _bounded([starter(n) for n in range(count)], at_once)
    start_seconds = time.monotonic() - started

    async def all_waiting() -> bool:
        plans = (await bench.control.calls()).get("plan", {}).get("answered", 0)
        plans -= calls_before.get("plan", {}).get("answered", 0)
        tasks = total(await asyncio.to_thread(scrape, sdk_port), tasks_name) - tasks_before
        # Two workflow tasks each: the start (schedules the plan), the plan's result.
        return plans >= count and tasks >= 2 * count

    await _until(all_waiting, f"{count} runs to wait for approval", 120 + count * 0.2)
    waiting_seconds = time.monotonic() - started
    for workflow_id in ids[:: max(1, count // 10)]:
        status = await bench.research.status(workflow_id)
        if not status.awaiting_approval:
            raise BenchError(f"run {workflow_id} is not waiting for approval ({status.phase})")
    await asyncio.sleep(2)  # the worker's last task completions settle
    rss_waiting = bench.procs.rss_bytes(orchestrator)
    cpu_waiting = bench.procs.cpu_seconds().get(orchestrator, 0.0)
    server_waiting = (
        bench.procs.rss_bytes(SERVER) if SERVER in bench.procs.supervisor.processes else None
    )

    note(f"waiting: approving all {count} plans")
    approving = time.monotonic()
    await _bounded(
        [functools.partial(bench.research.review_plan, i, APPROVE) for i in ids], at_once
    )
    approve_seconds = time.monotonic() - approving
    reports = await _bounded(
        [functools.partial(_report, bench.research, i) for i in ids], 4 * at_once
    )
    complete_seconds = time.monotonic() - approving
    completed = sum(
        1 for r in reports if r.outcome is Outcome.COMPLETED and r.stats.searches_succeeded == 1
    )
    if completed != count:
        raise BenchError(f"{count - completed} of {count} approved runs did not complete")
    rss_after = bench.procs.rss_bytes(orchestrator)
    cpu_after = bench.procs.cpu_seconds().get(orchestrator, 0.0)
    bench.check_alive()
    return {
        "runs": count,
        "load_average_before": load,
        "start_seconds": start_seconds,
        "all_waiting_seconds": waiting_seconds,
        "orchestrator_rss_idle_bytes": rss_idle,
        "orchestrator_rss_waiting_bytes": rss_waiting,
        "orchestrator_rss_after_bytes": rss_after,
        "server_rss_idle_bytes": server_idle,
        "server_rss_waiting_bytes": server_waiting,
        "approve_all_seconds": approve_seconds,
        "approve_to_all_complete_seconds": complete_seconds,
        "completed": completed,
        # The orchestrator's CPU a run up to its wait, and from its approval to its report
        # (a run evicted from the workflow cache replays its history when it is approved).
        "orchestrator_cpu_seconds_per_run_to_waiting": (cpu_waiting - cpu_idle) / count,
        "orchestrator_cpu_seconds_per_run_approved": (cpu_after - cpu_waiting) / count,
    }


# -- the profile ---------------------------------------------------------------------------------


async def profile(
    bench: Bench, shape: Shape, concurrency: int, seconds: float, folder: Path
) -> dict[str, Any]:
    """py-spy on each pool of the floor, then of ours, while runs of that kind go on at
    `concurrency`; each area's sampled time per run side by side, and ours' extra."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    kinds = {
        kind: await _profile_kind(bench, kind, shape, concurrency, seconds, folder)
        for kind in PROFILED
    }
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "rate_hz": _profile.RATE,
        "kinds": kinds,
        "ms_per_run_by_area": {
            pool: _profile.side_by_side(
                {kind: kinds[kind]["pools"][pool]["ms_per_run_by_area"] for kind in PROFILED}
            )
            for pool in POOLS
        },
    }


async def _profile_kind(
    bench: Bench, kind: str, shape: Shape, concurrency: int, seconds: float, folder: Path
) -> dict[str, Any]:
    runner = bench.runner(kind, shape, f"{bench.tag}-profile")
    stop = asyncio.Event()
    counter = iter(range(10**9))
    done: list[Sample] = []

    async def lane() -> None:
        while not stop.is_set():
            index = next(counter)
            done.append(await runner(index, f"bench-{bench.tag}-profile-{kind}-{index:05d}"))

    note(
        f"profile: py-spy on the {kind} pools for {seconds:g}s, runs of {kind} at "
        f"concurrency {concurrency}"
    )
    lanes = [asyncio.create_task(lane()) for _ in range(concurrency)]
    try:
        await asyncio.sleep(1)  # every lane busy before sampling starts
        cpu_before, runs_before = bench.procs.cpu_seconds(), len(done)
        files = {pool: folder / f"{kind}-{pool}.txt" for pool in POOLS}
        await asyncio.gather(
            *(
                _profile.record(bench.procs.pid(f"{kind}-{pool}"), seconds, files[pool])
                for pool in POOLS
            )
        )
        cpu_after, runs = bench.procs.cpu_seconds(), max(1, len(done) - runs_before)
    finally:
        stop.set()
        await asyncio.gather(*lanes)
    pools = {}
    for pool in POOLS:
        name = f"{kind}-{pool}"
        summary = _profile.summarize(files[pool].read_text())
        pools[pool] = {
            "raw_file": str(files[pool]),
            "cpu_seconds_per_run": (cpu_after[name] - cpu_before[name]) / runs,
            "ms_per_run_by_area": _profile.per_run(summary["samples_by_area"], runs),
            **summary,
        }
    return {"runs": runs, "pools": pools}
