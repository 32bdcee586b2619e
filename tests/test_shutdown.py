"""Graceful shutdown with real processes: SIGTERM a worker pool while an activity is in flight.

This is what Kubernetes does on a rollout, a scale-down or a node drain (docs/deploy.md, "The
graceful shutdown budget"): the pool stops polling, the in-flight activity finishes on the
same process within `RESEARCH_GRACEFUL_SHUTDOWN_SECONDS`, the process exits with code 0, and
whatever the budget cut off is retried by another worker.

"Finished on the same process" is read from the run's history (the identity of the worker
that ran the attempt, which carries its pid, and the attempt number) and from the provider
fakes' call counts, not from the workers' logs. How long each process took to leave is
printed, never asserted; the only clock a test looks at is the held provider request that a
cut-off activity must not wait for, and that request is held far longer than the budget.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from research_shared.models import ResearchReport
from tests.helpers.durability import (
    PLANNER_MODEL,
    REPORT_BODY,
    WRITER_MODEL,
    ResearchStack,
    activity_outcomes,
    completed_searches,
    distinct_queries,
    research_stack,
    search_calls,
    search_for,
    writer_request,
)
from tests.helpers.fakes.faultserver import Fault
from tests.helpers.processes import DevServer

pytestmark = pytest.mark.e2e

# Bounds each test as a whole, so a hang fails instead of blocking CI.
TEST_BUDGET_SECONDS = 90.0
# A budget the in-flight activity fits in with room to spare.
AMPLE_BUDGET_SECONDS = 15
# How long the provider holds the in-flight request when the budget is ample.
IN_FLIGHT_SECONDS = 3.0
# A budget far shorter than the held request, so the activity is cut off.
SHORT_BUDGET_SECONDS = 1
# Held long past the short budget: a process that waited for the provider would still be
# running when this request is answered.
CUT_OFF_SECONDS = 20.0
# What a pool may take beyond its budget to stop pollers, report and flush before exiting.
EXIT_MARGIN_SECONDS = 10.0
# The failure type the SDK reports for an attempt cut off by the shutdown budget.
WORKER_SHUTDOWN = "WorkerShutdown"


@dataclass(frozen=True)
class Exit:
    """How a pool process ended after SIGTERM."""

    pid: int
    code: int
    at: float
    seconds: float


async def terminate(stack: ResearchStack, pool: str, budget: float) -> Exit:
    """SIGTERM `pool` and wait for it to exit; fail, after killing it, if it outlives
    its shutdown budget plus a margin."""
    proc = stack.workers.procs[pool]
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(proc.wait, budget + EXIT_MARGIN_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)
        raise AssertionError(
            f"{pool} still ran {budget + EXIT_MARGIN_SECONDS:g}s after SIGTERM\n{stack.logs()}"
        ) from None
    exited = time.monotonic()
    return Exit(pid=proc.pid, code=code, at=exited, seconds=exited - sent)


def report_exit(label: str, stopped: Exit) -> None:
    """Print a measured shutdown time; it is a figure to read, never a pass condition."""
    print(f"SIGTERM to exit [{label}]: {stopped.seconds:.1f}s")


def use_budget(stack: ResearchStack, pool: str, seconds: int, **extra: str) -> None:
    """Give `pool` (every process of it started from now on) a shutdown budget."""
    stack.workers.pool_env[pool] = {"RESEARCH_GRACEFUL_SHUTDOWN_SECONDS": str(seconds), **extra}


def attempt_workers(history: WorkflowHistory) -> dict[str, int]:
    """The pid of the worker that ran the recorded attempt of each activity, keyed by the
    search's query or, for other activities, the activity's name.

    The SDK's default worker identity is `pid@host`; the server writes it into the started
    event of the attempt that closed the activity.
    """
    keys: dict[int, str] = {}
    pids: dict[str, int] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            payloads = attrs.input.payloads
            data: Any = json.loads(payloads[0].data) if payloads else {}
            query = data.get("query") if isinstance(data, dict) else None
            keys[event.event_id] = query or attrs.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            pid, _, _ = started.identity.partition("@")
            pids[keys[started.scheduled_event_id]] = int(pid)
    return pids


def assert_complete(report: ResearchReport, stack: ResearchStack) -> None:
    """Every planned search succeeded and the writer's report came through."""
    assert [q.query for q in report.queries] == stack.queries
    assert report.stats.searches_succeeded == len(stack.queries)
    assert report.stats.searches_failed == 0 and not report.failed_searches
    assert REPORT_BODY in report.report_markdown


async def result_of(handle: WorkflowHandle[Any, Any]) -> ResearchReport:
    report: ResearchReport = await handle.result()
    return report


async def test_search_worker_finishes_the_search_in_flight(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """The search under way when SIGTERM arrives completes on the stopping worker, which
    takes no new search and exits with 0; a new worker runs the search still queued."""
    queries = distinct_queries(2, "graceful search")
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        # One search at a time: the second waits in the queue while the first is held, so
        # a worker that kept polling after SIGTERM would take it as soon as the first ends.
        use_budget(stack, "search", AMPLE_BUDGET_SECONDS, RESEARCH_MAX_CONCURRENT_ACTIVITIES="1")
        stack.tavily.inject(Fault(delay=IN_FLIGHT_SECONDS, match=search_for(*queries)))
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await stack.start_run(client, max_searches=len(queries))
            await stack.wait_for(
                lambda: len(stack.tavily.calls_to("/search")) == 1,
                "a search to reach Tavily",
            )
            in_flight = stack.tavily.calls_to("/search")[0].body["query"]
            [queued] = [q for q in queries if q != in_flight]

            stopped = await terminate(stack, "search", AMPLE_BUDGET_SECONDS)
            report_exit("search, a 3 s search in flight", stopped)
            assert stopped.code == 0, stack.logs()
            assert stack.search_counts() == {in_flight: 1}
            assert await completed_searches(handle) == {in_flight}

            await stack.start_pools("search")
            report = await result_of(handle)

        assert_complete(report, stack)
        assert stack.search_counts() == dict.fromkeys(queries, 1)
        assert stack.model_calls(PLANNER_MODEL) == 1
        assert stack.model_calls(WRITER_MODEL) == 1

    history = await handle.fetch_history()
    outcomes = {o.query: o for o in activity_outcomes(history) if o.name == "web_search"}
    assert {q: (o.completed, o.attempt, o.last_failure) for q, o in outcomes.items()} == {
        q: (True, 1, "") for q in queries
    }
    pids = attempt_workers(history)
    assert pids[in_flight] == stopped.pid
    assert pids[queued] == stack.workers.procs["search"].pid != stopped.pid


async def test_llm_worker_finishes_synthesize_in_flight(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """A synthesis under way when SIGTERM arrives completes on the stopping worker: the
    writer is called once and the run finishes with that report."""
    queries = distinct_queries(2, "graceful synthesis")
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        use_budget(stack, "llm", AMPLE_BUDGET_SECONDS)
        stack.model.inject(Fault(delay=IN_FLIGHT_SECONDS, match=writer_request))
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await stack.start_run(client, max_searches=len(queries))
            await stack.wait_for_writer()

            stopped = await terminate(stack, "llm", AMPLE_BUDGET_SECONDS)
            report_exit("llm, a 3 s synthesis in flight", stopped)
            assert stopped.code == 0, stack.logs()
            # Recorded by the stopping worker itself, before any other could run it.
            by_name = {o.name: o for o in activity_outcomes(await handle.fetch_history())}
            assert by_name["synthesize"].completed

            await stack.start_pools("llm")
            report = await result_of(handle)

        assert_complete(report, stack)
        assert stack.model_calls(WRITER_MODEL) == 1
        assert stack.model_calls(PLANNER_MODEL) == 1
        assert stack.search_counts() == dict.fromkeys(queries, 1)

    history = await handle.fetch_history()
    synthesize = {o.name: o for o in activity_outcomes(history)}["synthesize"]
    assert (synthesize.attempt, synthesize.last_failure) == (1, "")
    assert attempt_workers(history)["synthesize"] == stopped.pid


async def test_shutdown_budget_bounds_the_wait(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """With a budget far shorter than the search under way, the worker cuts the search
    off, exits with 0 without waiting for the provider, and the attempt it gave up is
    retried by the next worker; the run completes."""
    queries = distinct_queries(2, "shutdown budget")
    slow, fast = queries
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        use_budget(stack, "search", SHORT_BUDGET_SECONDS)
        stack.tavily.inject(Fault(delay=CUT_OFF_SECONDS, match=search_for(slow)))
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await stack.start_run(client, max_searches=len(queries))

            async def fast_one_recorded() -> bool:
                return fast in await completed_searches(handle)

            await stack.wait_for(lambda: slow in stack.search_counts(), "the slow search")
            await stack.wait_for(fast_one_recorded, "the fast search to be recorded")

            stopped = await terminate(stack, "search", SHORT_BUDGET_SECONDS)
            report_exit("search, 1 s budget, a 20 s search in flight", stopped)
            assert stopped.code == 0, stack.logs()
            [held] = search_calls(stack, slow)
            # Not a timing goal: the process must be gone before the provider would have
            # answered, or it waited for the provider past its budget.
            assert stopped.at < held.at + CUT_OFF_SECONDS

            await stack.start_pools("search")
            report = await result_of(handle)

        assert_complete(report, stack)
        assert stack.search_counts() == {slow: 2, fast: 1}
        assert stack.model_calls(WRITER_MODEL) == 1

    history = await handle.fetch_history()
    outcomes = {o.query: o for o in activity_outcomes(history) if o.name == "web_search"}
    assert (outcomes[fast].attempt, outcomes[slow].attempt) == (1, 2)
    # Reported as failed by the stopping worker, so the retry did not wait for the server
    # to notice silence on the heartbeat.
    assert outcomes[slow].last_failure.startswith(WORKER_SHUTDOWN), outcomes[slow].last_failure
    pids = attempt_workers(history)
    assert pids[fast] == stopped.pid
    assert pids[slow] == stack.workers.procs["search"].pid != stopped.pid
