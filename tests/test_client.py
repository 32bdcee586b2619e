"""`ResearchClient` itself, against the session's dev server and real offline worker pools:
every method, its typed errors and owners' isolation, and the example of docs/api.md run as
it is written."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client, WorkflowExecutionStatus

from research_cli.embedded import free_port
from research_shared.client import (
    EventType,
    ExecutionStatus,
    InvalidPageToken,
    ResearchClient,
    ResearchEvent,
    RunConflict,
    RunEnded,
    RunFailed,
    RunNotFound,
    StatusUnavailable,
    TemporalUnavailable,
    UpdateRejected,
)
from research_shared.models import (
    ClarificationAnswer,
    ClarificationAnswers,
    EditedQuery,
    Outcome,
    PlanReview,
    ResearchRequest,
    ResearchStatus,
)
from research_shared.settings import TemporalSettings
from tests.helpers.api import API_QUEUES
from tests.helpers.processes import DevServer, WorkerProcesses

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
API_DOC = ROOT / "docs" / "api.md"
VAGUE = "Which is better for parsing dates?"  # the offline triage asks about it first
QUEUE = API_QUEUES["RESEARCH_ORCHESTRATOR_QUEUE"]


@pytest.fixture
async def research(
    client: Client, offline_workers_session: WorkerProcesses
) -> AsyncIterator[ResearchClient]:
    """A client scoped to an owner of this test alone, on the session pools' queue."""
    yield ResearchClient(client, task_queue=QUEUE, owner=f"owner-{uuid.uuid4().hex[:8]}")


async def reach(
    research: ResearchClient, run_id: str, phase: str, within: float = 90.0
) -> ResearchStatus:
    """Poll the status query until the run is in `phase`."""
    deadline = time.monotonic() + within
    status: ResearchStatus | None = None
    while time.monotonic() < deadline:
        try:
            status = await research.status(run_id)
        except StatusUnavailable:
            status = None
        if status is not None and status.phase.value == phase:
            return status
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run_id} did not reach {phase} in {within:g}s: {status}")


async def collect(events: AsyncIterator[ResearchEvent]) -> list[ResearchEvent]:
    return [event async for event in events]


class Follower:
    """Reads a run's events in the background, as a page or a service following it would."""

    def __init__(self, events: AsyncIterator[ResearchEvent]) -> None:
        self.seen: list[ResearchEvent] = []
        self._reading = asyncio.ensure_future(self._read(events))

    async def _read(self, events: AsyncIterator[ResearchEvent]) -> list[ResearchEvent]:
        async for event in events:
            self.seen.append(event)
        return self.seen

    async def saw(self, kind: EventType, within: float = 60.0) -> None:
        """Wait until an event of `kind` has arrived: what a follower must see before the
        run moves on (a question is answered once the follower has been shown it)."""
        async with asyncio.timeout(within):
            while kind not in {event.type for event in self.seen}:
                assert not self._reading.done(), [e.type for e in self.seen]
                await asyncio.sleep(0.05)

    async def all(self, within: float = 60.0) -> list[ResearchEvent]:
        """Every event, once the stream has ended."""
        return await asyncio.wait_for(self._reading, within)


async def outcomes(calls: Mapping[str, Awaitable[object]]) -> dict[str, str]:
    """What each call raised as `RunNotFound` (its message), or what else it did."""
    found = {}
    for name, call in calls.items():
        try:
            await call
        except RunNotFound as err:
            found[name] = err.message
        except Exception as err:
            found[name] = f"{type(err).__name__}: {err}"
        else:
            found[name] = "no error"
    return found


async def test_a_whole_run_through_the_client(research: ResearchClient) -> None:
    request = ResearchRequest(question=VAGUE, clarify=True, approve_plan=True, max_searches=3)
    key = f"client-run-{uuid.uuid4().hex[:8]}"
    run = await research.start(request, idempotency_key=key)
    assert run.created
    assert await research.start(request, idempotency_key=key) == run.model_copy(
        update={"created": False}
    )
    with pytest.raises(RunConflict):
        await research.start(request.model_copy(update={"max_searches": 2}), idempotency_key=key)
    # The run shares the pools as its owner, the one field the client fills in.
    assert await research.request(run.id) == request.model_copy(
        update={"fairness_key": research.owner}
    )

    following = Follower(research.events(run.id))
    waiting = await reach(research, run.id, "awaiting_answers")
    assert waiting.questions_pending
    await following.saw(EventType.QUESTIONS)
    with pytest.raises(UpdateRejected) as refused:
        await research.answer(run.id, {"answers": [{"index": 9, "answer": "x"}]})
    assert refused.value.error_type == "UpdateRefused" and not refused.value.invalid_input
    answers = [
        ClarificationAnswer(index=i, answer="dates in log files") for i in waiting.questions_pending
    ]
    state = await research.answer(run.id, ClarificationAnswers(answers=answers))
    assert state.questions_pending == []

    plan = (await reach(research, run.id, "awaiting_approval")).queries
    await following.saw(EventType.PLAN)
    edited = [EditedQuery(query="datetime strptime format codes"), EditedQuery(query=plan[0].query)]
    reviewed = await research.review_plan(run.id, PlanReview(decision="edit", queries=edited))
    assert [q.query for q in reviewed.queries] == [q.query for q in edited]

    report = await research.wait(run.id)
    assert report.outcome is Outcome.COMPLETED
    assert [q.query for q in report.queries] == [q.query for q in edited]
    assert await research.result(run.id) == report

    events = await following.all()
    kinds = [event.type for event in events]
    assert kinds[-1] is EventType.DONE and events[-1].execution_status is ExecutionStatus.COMPLETED
    assert EventType.QUESTIONS in kinds and EventType.PLAN in kinds
    started = {e.query for e in events if e.type is EventType.SEARCH_STARTED}
    finished = {e.query for e in events if e.type is EventType.SEARCH_FINISHED}
    assert started == finished == {q.query for q in edited}

    info = await research.get(run.id)
    assert info.execution_status is ExecutionStatus.COMPLETED and info.closed_at is not None
    assert info.question == VAGUE and info.status is not None
    listed = await research.list()
    assert [r.id for r in listed.runs] == [run.id] and listed.next_page_token is None
    assert [r.id for r in (await research.list(status=ExecutionStatus.RUNNING)).runs] == []
    assert [e.id async for e in research.executions()] == [run.id]

    history = await research.history(run.id)
    assert history.events[0].event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert history.events[-1].event_type == (
        HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    )
    described = await research.describe(run.id)
    assert described.status is WorkflowExecutionStatus.COMPLETED
    assert described.history_length == len(history.events)

    with pytest.raises(RunEnded):
        await research.pause(run.id)
    with pytest.raises(RunEnded):
        await research.cancel(run.id)


async def test_pause_resume_cancel_and_the_result_while_running(
    research: ResearchClient,
) -> None:
    run = await research.start(
        ResearchRequest(question="How do I use the zlib module?", approve_plan=True)
    )
    await reach(research, run.id, "awaiting_approval")
    assert await research.result(run.id) is None
    await research.pause(run.id)
    for _ in range(50):
        if (await research.status(run.id)).paused:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the run did not pause")
    await research.resume(run.id)
    for _ in range(50):
        if not (await research.status(run.id)).paused:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the run did not resume")
    await research.cancel(run.id, "seen enough")
    report = await research.wait(run.id)
    assert report.outcome is Outcome.CANCELLED and report.outcome_reason == "seen enough"
    assert (await research.get(run.id)).execution_status is ExecutionStatus.COMPLETED


async def test_another_owners_run_does_not_exist(research: ResearchClient) -> None:
    run = await research.start(
        ResearchRequest(question="How do I use the gzip module?", approve_plan=True)
    )
    other = research.for_owner("someone-else")
    calls = {
        "get": other.get(run.id),
        "status": other.status(run.id),
        "result": other.result(run.id),
        "wait": other.wait(run.id),
        "answer": other.answer(run.id, {"answers": [{"index": 0, "answer": "x"}]}),
        "review_plan": other.review_plan(run.id, {"decision": "approve"}),
        "pause": other.pause(run.id),
        "resume": other.resume(run.id),
        "cancel": other.cancel(run.id),
        "history": other.history(run.id),
        "describe": other.describe(run.id),
        "request": other.request(run.id),
        "events": collect(other.events(run.id)),
    }
    assert await outcomes(calls) == dict.fromkeys(calls, f"there is no research run {run.id}")
    assert run.id not in {r.id for r in (await other.list(page_size=100)).runs}
    with pytest.raises(RunConflict):
        await other.start(ResearchRequest(question="mine now?"), id=run.id)
    with pytest.raises(ValueError, match="scoped"):
        await anext(other.executions(every_type=True))
    # The owner still steers it.
    await research.cancel(run.id)
    assert (await research.wait(run.id)).outcome is Outcome.CANCELLED


async def test_an_unknown_run_is_not_found_everywhere(research: ResearchClient) -> None:
    unscoped = research.for_owner(None)
    missing = f"research-missing-{uuid.uuid4().hex[:6]}"
    for client in (research, unscoped):
        calls = {
            "get": client.get(missing),
            "status": client.status(missing),
            "result": client.result(missing),
            "wait": client.wait(missing),
            "answer": client.answer(missing, {"answers": [{"index": 0, "answer": "x"}]}),
            "pause": client.pause(missing),
            "cancel": client.cancel(missing),
            "history": client.history(missing),
            "describe": client.describe(missing),
            "request": client.request(missing),
            "events": collect(client.events(missing)),
        }
        found = await outcomes(calls)
        assert found == dict.fromkeys(calls, f"there is no research run {missing}"), client.owner


async def test_a_terminated_run_has_no_report(client: Client, research: ResearchClient) -> None:
    """A run no worker picks up, then terminated: `wait` and `result` say it failed, and its
    events end with `done` and the execution state."""
    unpolled = f"unpolled-{uuid.uuid4().hex[:8]}"
    idle = ResearchClient(client, task_queue=unpolled, owner=research.owner, query_timeout=1)
    run = await idle.start(ResearchRequest(question="Will anyone pick this up?"))
    with pytest.raises(StatusUnavailable):
        await idle.status(run.id)
    await client.get_workflow_handle(run.id).terminate(reason="nobody came")
    with pytest.raises(RunFailed, match=r"research .* failed"):
        await idle.wait(run.id)
    with pytest.raises(RunFailed):
        await idle.result(run.id)
    events = await collect(idle.events(run.id, interval=0.5))
    assert events[-1].type is EventType.DONE
    assert events[-1].execution_status is ExecutionStatus.TERMINATED
    info = await idle.get(run.id)
    assert info.execution_status is ExecutionStatus.TERMINATED and info.status is None


async def test_bad_page_tokens_are_refused(research: ResearchClient) -> None:
    for token in ("%%%", "bm90IGpzb24", "WyJub3QgYSB0aW1lIiwiaWQiXQ", "WzEsMl0", "W10"):
        with pytest.raises(InvalidPageToken):
            await research.list(page_token=token)


async def test_temporal_unreachable_is_one_typed_error() -> None:
    nowhere = TemporalSettings(address=f"127.0.0.1:{free_port()}")
    with pytest.raises(TemporalUnavailable, match="cannot reach Temporal"):
        await ResearchClient.connect(nowhere)
    lazy = await ResearchClient.connect(nowhere, lazy=True)
    with pytest.raises(TemporalUnavailable):
        await lazy.get("research-anything")
    with pytest.raises(TemporalUnavailable):
        await lazy.list()


def example_code() -> str:
    """The Python example of docs/api.md's typed client section, as written."""
    text = API_DOC.read_text(encoding="utf-8")
    section = text[text.index("## The typed client") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "docs/api.md has no Python example for the typed client"
    return found[1]


# Runs code with top-level `await`, as the example is written for an async context.
RUN_WITH_AWAIT = """
import ast, asyncio, os, sys
code = compile(sys.stdin.read(), "docs/api.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__"})
if asyncio.iscoroutine(result):
    asyncio.run(result)
sys.stdout.flush()
os._exit(0)  # without finalization, as the CLI leaves (temporalio/sdk-python issue 300)
"""


def test_the_documented_example_runs(
    dev_server: DevServer, offline_workers_session: WorkerProcesses
) -> None:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_server.address,
        "TEMPORAL_NAMESPACE": "default",
        "RESEARCH_ORCHESTRATOR_QUEUE": QUEUE,
    }
    done = subprocess.run(
        [sys.executable, "-c", RUN_WITH_AWAIT],
        input=example_code(),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # It prints the report's summary: sentences quoted from the corpus, with citations.
    assert re.search(r"\[\d+\]", done.stdout), done.stdout
