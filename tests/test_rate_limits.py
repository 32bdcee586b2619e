"""Fleet-wide rate limits: RESEARCH_SEARCH_RATE_LIMIT and RESEARCH_LLM_RATE_LIMIT hold for a
queue as a whole, however many workers poll it. Every one-second window is checked, at the
provider (each call timed by the Tavily- or OpenAI-speaking fake) and at the server (each
activity's dispatch, the time of its started event).

What the server lets through follows from its limiter (Temporal 1.32's matcher,
`service/matching/ratelimit_manager.go` and `matcher_data.go`): a "GCRA" per queue partition
at the rate divided by the partitions, with a burst of one second (`defaultBurstDuration`).
The session's dev server has one partition per queue, so the whole rate R applies there.
After an idle spell it dispatches R x 1 s + 1 tasks at once, then one every 1/R seconds: a
closed window of L seconds holds at most 1 + R x (L + 1 s) dispatches. With R = 2 that is
5 in any second; measured here, the first three arrive together and the busiest second
holds 5 (0, 0, 0, 0.5, 1.0 s).

The provider sees each dispatch later by the time a worker takes to make the call (a poll
answer, the activity's start, the HTTP request), and that time varies, most for the first
call of a freshly started worker (a few hundred milliseconds). A one-second window at the
provider thus covers dispatches up to 1 s + J apart, J the spread of those delays, which
the test measures call by call: the allowance there is 1 + R x (1 s + 1 s + J). Without a
limit, all twenty calls arrive within a fraction of a second.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from research_cli.embedded import worker_spec
from tests.helpers.fakes.faultserver import Call
from tests.helpers.fakes.openai_server import FakeOpenAIServer
from tests.helpers.fakes.tavily_server import FakeTavilyServer
from tests.helpers.processes import DevServer, WorkerProcesses
from tests.helpers.store_workflows import FanOutModelCalls, FanOutSearches

pytestmark = pytest.mark.e2e

RATE = 2.0
CALLS = 20
BURST_SECONDS = 1.0
"""The server limiter's burst (`defaultBurstDuration`)."""
WINDOW_SECONDS = 1.0


def allowed_in(seconds: float) -> int:
    """The most dispatches the limiter lets fall within `seconds` of one another."""
    return 1 + math.floor(RATE * (seconds + BURST_SECONDS))


def busiest_window(times: Sequence[float], seconds: float = WINDOW_SECONDS) -> list[float]:
    """The most events within `seconds` of one another (a closed window), as offsets from
    the first of them: every window starting at an event is counted, and a busiest window
    always starts at one."""
    ordered = sorted(times)
    best: list[float] = []
    for n, start in enumerate(ordered):
        inside = [round(t - start, 3) for t in ordered[n:] if t - start <= seconds]
        if len(inside) > len(best):
            best = inside
    return best


@dataclass(frozen=True)
class Timed:
    """One activity: when the server dispatched it and when its call reached the provider."""

    dispatched: float
    """Seconds, the server's clock (the activity's started event)."""
    arrived: float
    """Seconds, this process's monotonic clock (the fake's record of the call)."""


async def dispatch_times(handle: WorkflowHandle[Any, Any]) -> dict[str, float]:
    """Each activity's input (as JSON text) -> when the server dispatched its last attempt."""
    inputs: dict[int, str] = {}
    dispatched: dict[str, float] = {}
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            inputs[event.event_id] = attrs.input.payloads[0].data.decode()
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            when = event.event_time.ToDatetime(tzinfo=UTC).timestamp()
            dispatched[inputs[started.scheduled_event_id]] = when
    return dispatched


def timed(
    dispatched: dict[str, float], calls: Sequence[Call], key: Callable[[dict[str, Any]], str]
) -> list[Timed]:
    """The calls matched to their activities by the text both carry (a query, a question)."""
    by_key = {key(json.loads(text)): when for text, when in dispatched.items()}
    matched = []
    for call in calls:
        [found] = [k for k in by_key if k in json.dumps(call.body, ensure_ascii=False)]
        matched.append(Timed(dispatched=by_key.pop(found), arrived=call.at))
    return matched


def assert_within_the_limit(label: str, calls: list[Timed]) -> None:
    """Every second at the server holds what the limiter allows; every second at the
    provider holds that, widened by the measured spread of dispatch-to-call delays."""
    assert len(calls) == CALLS
    dispatched = busiest_window([c.dispatched for c in calls])
    arrived = busiest_window([c.arrived for c in calls])
    delays = [c.arrived - c.dispatched for c in calls]
    spread = max(delays) - min(delays)
    first = min(c.dispatched for c in calls)
    together = sum(1 for c in calls if c.dispatched - first < 0.05)
    # Figures to read; the assertions are the windows.
    print(
        f"{label}: {together} dispatched at once; busiest second at the server "
        f"{dispatched}, at the provider {arrived}; delays spread {spread:.3f}s"
    )
    assert len(dispatched) <= allowed_in(WINDOW_SECONDS), dispatched
    assert len(arrived) <= allowed_in(WINDOW_SECONDS + spread), (arrived, spread)


def two_workers(pool: str, address: str, log_dir: Path, env: dict[str, str]) -> WorkerProcesses:
    """Two workers of `pool` on the same queue with the same limit, polling."""
    workers = WorkerProcesses(address=address, log_dir=log_dir, env=env)
    workers.start(pool)
    second = f"{pool}-2"
    spec = worker_spec(pool, workers.full_env(), workers.log_file(second), second)
    workers.supervisor.start(spec)
    workers.wait_ready(second, 120.0)
    return workers


@dataclass(frozen=True)
class FanOut:
    """A fan-out run that two workers of one pool served."""

    handle: WorkflowHandle[Any, int]
    done: int
    """How many activities the run saw complete."""
    by_worker: dict[str, int]
    """How many activities each worker started, by the line each start logs."""


# What fans out on each pool, and the line its worker logs as each activity starts.
FAN_OUTS: dict[str, tuple[type[FanOutSearches] | type[FanOutModelCalls], str]] = {
    "search": (FanOutSearches, "search started"),
    "llm": (FanOutModelCalls, "model step started"),
}


async def fan_out_over_two_workers(
    client: Client,
    dev_server: DevServer,
    task_queue: str,
    folder: Path,
    pool: str,
    provider_env: dict[str, str],
    inputs: list[str],
) -> FanOut:
    """Start two `pool` workers on a queue of their own with the rate limit `RATE` (their
    logs in `folder`), run the pool's fan-out over `inputs` to the end, and stop them."""
    workflow, started = FAN_OUTS[pool]
    queue = f"rate-{pool}-{uuid.uuid4().hex[:8]}"
    env = {
        f"RESEARCH_{pool.upper()}_QUEUE": queue,
        f"RESEARCH_{pool.upper()}_RATE_LIMIT": str(RATE),
        **provider_env,
    }
    workers = two_workers(pool, dev_server.address, folder / "logs", env)
    try:
        async with Worker(client, task_queue=task_queue, workflows=[workflow]):
            handle: WorkflowHandle[Any, int] = await client.start_workflow(
                workflow.run,
                args=[inputs, queue],
                id=f"fan-out-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            done = await handle.result()
    finally:
        workers.stop_all()
    by_worker = {name: workers.log(name).count(started) for name in (pool, f"{pool}-2")}
    return FanOut(handle, done, by_worker)


async def test_two_search_workers_together_keep_to_the_rate_limit(
    client: Client, dev_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    queries = [f"rate limited search {n}" for n in range(CALLS)]
    with FakeTavilyServer() as tavily:
        assert isinstance(tavily, FakeTavilyServer)
        run = await fan_out_over_two_workers(
            client, dev_server, task_queue, tmp_path, "search", tavily.worker_env(), queries
        )
        calls = tavily.calls_to("/search")

    assert run.done == CALLS
    assert all(run.by_worker.values()), run.by_worker  # both workers took searches
    searches = timed(await dispatch_times(run.handle), calls, lambda input: f'"{input["query"]}"')
    assert_within_the_limit("searches", searches)


async def test_two_llm_workers_together_keep_to_the_rate_limit(
    client: Client, dev_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    questions = [f"Is the model rate limited, take {n}?" for n in range(CALLS)]
    with FakeOpenAIServer() as model:
        assert isinstance(model, FakeOpenAIServer)
        run = await fan_out_over_two_workers(
            client, dev_server, task_queue, tmp_path, "llm", model.worker_env(), questions
        )
        calls = list(model.calls)

    assert run.done == CALLS
    assert all(run.by_worker.values()), run.by_worker  # both workers took model steps
    steps = timed(await dispatch_times(run.handle), calls, lambda input: input["question"])
    assert_within_the_limit("model calls", steps)
