"""`DeepResearchWorkflow` on the real dev server, with stub activities under the real names.

Each test gets fresh task queues and runs the workflow with `max_cached_workflows=0`, so
every workflow task replays the history from the start: a non-deterministic workflow fails
here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from research_shared import errors
from research_shared.models import (
    Phase,
    ResearchReport,
    ResearchRequest,
    ResearchStatus,
)
from research_shared.names import STATUS_QUERY, WORKFLOW_TYPE
from tests.helpers.workflow_stubs import Stubs, running_workers, start


async def run_research(client: Client, queue: str, request: Any) -> ResearchReport:
    report: ResearchReport = await client.execute_workflow(
        WORKFLOW_TYPE,
        request,
        id=f"wf-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        result_type=ResearchReport,
    )
    return report


async def test_plan_search_synthesize(client: Client, task_queue: str) -> None:
    """One round, no review: the pipeline at its shortest."""
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        report = await run_research(
            client,
            task_queue,
            ResearchRequest(question="What is x?", max_rounds=1, max_review_rounds=0),
        )
    assert stubs.calls == ["plan", "synthesize", "record_audit"]

    assert [q.query for q in report.queries] == ["alpha", "beta", "gamma"]
    # Sources are numbered in plan order and the page every search found is listed once.
    assert [(s.id, s.url) for s in report.sources] == [
        (1, "https://x.test/alpha"),
        (2, "https://x.test/shared"),
        (3, "https://x.test/beta"),
        (4, "https://x.test/gamma"),
    ]
    assert [s.id for s in stubs.seen_synthesis[0].sources] == [1, 2, 3, 4]
    assert report.report_markdown == "report [1] [2] [3] [4]"
    stats = report.stats
    assert (stats.searches_planned, stats.searches_succeeded, stats.searches_failed) == (3, 3, 0)
    assert (stats.llm_calls, stats.input_tokens, stats.output_tokens) == (2, 110, 55)
    assert stats.total_tokens == 165
    assert stats.sources_retrieved == 4
    assert report.failed_searches == []
    assert all(i.max_results == 5 for i in stubs.seen_search_inputs)


async def test_failed_search_is_reported_not_fatal(client: Client, task_queue: str) -> None:
    stubs = Stubs(
        failing={
            "beta": ApplicationError(
                "Tavily rejected the credentials", type=errors.PROVIDER_AUTH, non_retryable=True
            )
        }
    )
    async with running_workers(client, task_queue, stubs):
        report = await run_research(client, task_queue, {"question": "What is x?"})

    assert report.stats.searches_failed == 1
    assert report.stats.searches_succeeded == 2
    assert len(report.failed_searches) == 1
    failure = report.failed_searches[0]
    assert (failure.query, failure.error_type) == ("beta", errors.PROVIDER_AUTH)
    assert "rejected the credentials" in failure.message
    # The synthesizer is told which search failed and why.
    assert stubs.seen_synthesis[0].failed_searches == report.failed_searches
    assert "https://x.test/beta" not in [s.url for s in report.sources]
    # Non-retryable: exactly one attempt at the failing query.
    assert [i.query for i in stubs.seen_search_inputs].count("beta") == 1


async def test_retryable_search_failure_is_retried(client: Client, task_queue: str) -> None:
    stubs = Stubs(
        failing={"beta": ApplicationError("down", type=errors.PROVIDER_UNAVAILABLE)},
    )

    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue)
        # Let the first attempt fail, then heal the provider.
        while [i.query for i in stubs.seen_search_inputs].count("beta") < 1:
            await asyncio.sleep(0.05)
        stubs.failing.clear()
        report = await handle.result()

    assert report.stats.searches_failed == 0
    assert [i.query for i in stubs.seen_search_inputs].count("beta") == 2
    assert [i.query for i in stubs.seen_search_inputs].count("alpha") == 1


async def test_plan_is_bounded_and_deduplicated(client: Client, task_queue: str) -> None:
    stubs = Stubs(queries=["a", "A ", "b", "c", "d", "e", "f"])
    async with running_workers(client, task_queue, stubs):
        report = await run_research(client, task_queue, {"question": "q", "max_searches": 3})
    assert [q.query for q in report.queries] == ["a", "b", "c"]
    assert sorted(i.query for i in stubs.seen_search_inputs) == ["a", "b", "c"]


async def test_search_concurrency_is_bounded(client: Client, task_queue: str) -> None:
    stubs = Stubs(queries=[f"q{n}" for n in range(6)], search_delay=0.2)
    async with running_workers(client, task_queue, stubs):
        report = await run_research(
            client, task_queue, {"question": "q", "max_searches": 6, "search_concurrency": 2}
        )
    assert report.stats.searches_succeeded == 6
    assert stubs.max_running == 2


async def test_status_query_shows_progress(client: Client, task_queue: str) -> None:
    stubs = Stubs(gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue)
        status = await _wait_for_status(
            handle, lambda s: s.phase is Phase.SEARCHING and s.searches_running == 3
        )
        assert status.searches_planned == 3
        assert [q.query for q in status.queries] == ["alpha", "beta", "gamma"]
        assert status.question == "What is x?"
        stubs.gate.set()  # type: ignore[union-attr]
        await handle.result()
        final = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
    assert final.phase is Phase.COMPLETED
    assert (final.searches_succeeded, final.searches_running) == (3, 0)


async def _wait_for_status(
    handle: Any, predicate: Callable[[ResearchStatus], bool], within: float = 20.0
) -> ResearchStatus:
    async with asyncio.timeout(within):
        while True:
            status: ResearchStatus = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
            if predicate(status):
                return status
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("request_json", "expected"),
    [
        ({"question": ""}, "question: the question is empty"),
        ({"question": "   \n\t "}, "question: the question is empty"),
        ({"question": "x" * 2001}, "the limit is 2000"),
        ({"question": "ok", "max_searches": 0}, "max_searches"),
        ({"question": "ok", "max_searches": 21}, "max_searches"),
        ({"question": "ok", "surprise": True}, "surprise: Extra inputs are not permitted"),
        ({"max_searches": 3}, "question: Field required"),
        ("just a string", "expected a JSON object"),
    ],
)
async def test_bad_input_fails_fast_and_schedules_nothing(
    client: Client, task_queue: str, request_json: Any, expected: str
) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await client.start_workflow(
            WORKFLOW_TYPE, request_json, id=f"wf-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == errors.INVALID_REQUEST
    assert cause.non_retryable
    assert expected in cause.message
    assert "\n" not in cause.message
    history = await handle.fetch_history()
    assert not [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert stubs.seen_search_inputs == []
