"""The real `web_search` activity on a real Temporal server, with Tavily behind a local fake.

A tiny workflow runs the activity with a short heartbeat timeout, so what is tested is what
Temporal does with the activity's heartbeats: a retry resumes from the progress the failed
attempt heartbeated, an attempt that hangs before its first beat is still given up at the
heartbeat timeout, a cancellation reaches a search that waits on a slow page, and an answer
too large for the history is cut down instead of failing every attempt.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from itertools import count
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    import pytest
    from prometheus_client import REGISTRY
    from temporalio.api.enums.v1 import EventType, TimeoutType
    from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
    from temporalio.exceptions import CancelledError
    from temporalio.worker import Worker

    from research_search.activities import (
        RESULT_TEXT_BUDGET_BYTES,
        SearchActivities,
        bounded_result,
    )
    from research_search.providers import MAX_TITLE_CHARS, MAX_URL_CHARS
    from research_search.providers.tavily import TavilySearch
    from research_shared import errors, stubs
    from research_shared.models import (
        MAX_HIT_CONTENT_CHARS,
        MAX_SNIPPET_CHARS,
        SearchHit,
        WebSearchInput,
        WebSearchResult,
    )
    from tests.helpers.fakes.faultserver import Fault
    from tests.helpers.fakes.tavily_server import FakeTavilyServer

# The SDK sends heartbeats at most every 0.8 x this timeout, so a short one brings a
# cancellation to the activity within a couple of seconds.
HEARTBEAT_TIMEOUT = timedelta(seconds=2)
HEARTBEAT_SECONDS = 0.5
# Bounds each wait, so a hang fails the test instead of blocking the suite.
WAIT_SECONDS = 30.0


@workflow.defn(name="SearchResumeTestWorkflow")
class SearchOnce:
    """Runs one `web_search` with quick retries and reports its result."""

    @workflow.run
    async def run(self, input: WebSearchInput) -> WebSearchResult:
        return await workflow.execute_activity(
            stubs.web_search,
            input,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=0.2),
                maximum_attempts=4,
                non_retryable_error_types=list(errors.NON_RETRYABLE),
            ),
            # The run ends only once the activity has seen the cancellation, so the test
            # can look at what the activity did with it.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )


@asynccontextmanager
async def search_worker(
    client: Client,
    task_queue: str,
    fake: FakeTavilyServer,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    **provider_options: Any,
) -> AsyncIterator[None]:
    """A worker hosting the test workflow and the real activity with the real provider."""
    provider = TavilySearch(
        fake.api_key, base_url=fake.base_url, timeout_seconds=30, **provider_options
    )
    activities = SearchActivities(provider, heartbeat_seconds=heartbeat_seconds)
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[SearchOnce],
            activities=[activities.web_search],
            max_cached_workflows=0,
        ):
            yield
    finally:
        await provider.aclose()


async def start_search(
    client: Client, task_queue: str, query: str, max_results: int
) -> WorkflowHandle[Any, WebSearchResult]:
    return await client.start_workflow(
        SearchOnce.run,
        WebSearchInput(query=query, max_results=max_results),
        id=f"search-resume-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
    )


async def search_to_the_end(
    client: Client,
    task_queue: str,
    fake: FakeTavilyServer,
    query: str,
    max_results: int,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    **provider_options: Any,
) -> tuple[WorkflowHandle[Any, WebSearchResult], WebSearchResult]:
    """One search through `search_worker`, waited for to its end: the run's handle (its
    history tells the attempts) and the result."""
    async with search_worker(client, task_queue, fake, heartbeat_seconds, **provider_options):
        handle = await start_search(client, task_queue, query, max_results)
        async with asyncio.timeout(WAIT_SECONDS):
            return handle, await handle.result()


async def search_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    """The attempt that closed the run's activity, as the history records it."""
    history = await handle.fetch_history()
    attempts = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert len(attempts) == 1
    return attempts[0]


def nth_extract(n: int) -> Callable[[str, dict[str, Any]], bool]:
    """A fault matcher for the `n`-th /extract request the server receives."""
    extracts = count(1)
    return lambda path, body: path == "/extract" and next(extracts) == n


def text_bytes(result: WebSearchResult) -> int:
    return sum(
        len(field.encode())
        for hit in result.hits
        for field in (hit.title, hit.url, hit.snippet, hit.content)
    )


def searches_ended(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "research_activity_duration_seconds_count",
        {"activity": "web_search", "outcome": outcome},
    )
    return value or 0.0


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"gave up after {WAIT_SECONDS:g}s waiting for {what}") from None


# -- resuming ----------------------------------------------------------------------------


async def resumed_past_a_failed_page(
    client: Client,
    task_queue: str,
    fake: FakeTavilyServer,
    query: str,
    max_results: int,
    failing: int,
    extract_concurrency: int,
) -> WebSearchResult:
    """A search whose `failing`-th page fetch meets a 503: it took a second attempt, and
    that attempt did not ask for the ranking again."""
    fake.inject(Fault(status=503, match=nth_extract(failing)))
    handle, result = await search_to_the_end(
        client, task_queue, fake, query, max_results, extract_concurrency=extract_concurrency
    )
    assert await search_attempts(handle) == 2
    assert fake.queries_received() == [query]
    return result


async def test_retry_resumes_from_the_heartbeated_progress(client: Client, task_queue: str) -> None:
    with FakeTavilyServer() as fake:
        # One page at a time, so which pages the failed attempt fetched is known.
        result = await resumed_past_a_failed_page(
            client, task_queue, fake, "durable execution", 5, failing=3, extract_concurrency=1
        )

        # No page was fetched twice but the one whose fetch failed.
        urls = [hit.url for hit in result.hits]
        assert len(urls) == 5
        assert fake.extracts_received() == [urls[0], urls[1], urls[2], *urls[2:]]
        assert [call.outcome for call in fake.calls_to("/extract")][2] == "503"

    # Every hit carries its full page, fetched by either attempt.
    for hit in result.hits:
        assert hit.content.startswith("Section 1 on durable execution")
        assert hit.snippet.startswith("An overview of durable execution")
    assert result.provider == "tavily"


async def test_pages_fetched_side_by_side_are_each_fetched_once(
    client: Client, task_queue: str
) -> None:
    with FakeTavilyServer() as fake:
        result = await resumed_past_a_failed_page(
            client, task_queue, fake, "workflow replay", 6, failing=2, extract_concurrency=3
        )

        fetched = Counter(fake.extracts_received())
        assert set(fetched) == {hit.url for hit in result.hits}
        # The failed page is the only one asked for twice.
        assert sorted(fetched.values()) == [1, 1, 1, 1, 1, 2]


async def test_an_attempt_that_hangs_before_its_first_beat_is_given_up_at_the_heartbeat_timeout(
    client: Client, task_queue: str
) -> None:
    # A first attempt's first beat waits one interval, here longer than the test: the
    # server's heartbeat timeout must run from the attempt's start, or only the 60 s
    # start-to-close would free the search (and the wait below gives up at 30 s).
    with FakeTavilyServer() as fake:
        fake.inject(Fault(delay=WAIT_SECONDS * 2, match=lambda path, _: path == "/search"))
        handle, result = await search_to_the_end(
            client, task_queue, fake, "a hung ranking", 2, heartbeat_seconds=WAIT_SECONDS * 4
        )
        assert fake.queries_received() == ["a hung ranking"] * 2

    history = await handle.fetch_history()
    [started] = [
        event.activity_task_started_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert started.attempt == 2
    timeout = started.last_failure.timeout_failure_info.timeout_type
    assert timeout == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    assert len(result.hits) == 2


# -- cancelling --------------------------------------------------------------------------


async def test_cancelling_the_run_reaches_a_search_waiting_on_a_page(
    client: Client, task_queue: str
) -> None:
    cancelled_before = searches_ended("CancelledError")
    with FakeTavilyServer() as fake:
        # Longer than the test would wait: only the cancellation can end these calls.
        fake.inject(
            Fault(delay=WAIT_SECONDS * 2, times=10, match=lambda path, _: path == "/extract")
        )
        async with search_worker(client, task_queue, fake, extract_concurrency=3):
            handle = await start_search(client, task_queue, "slow pages", 5)
            await wait_until(lambda: len(fake.extracts_received()) == 3, "three pages in flight")

            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as caught:
                async with asyncio.timeout(WAIT_SECONDS):
                    await handle.result()

        assert isinstance(caught.value.cause, CancelledError)
        # The activity itself saw the cancellation (not merely the workflow giving up on it),
        # and started no page after it.
        assert searches_ended("CancelledError") == cancelled_before + 1
        assert len(fake.extracts_received()) == 3
        assert fake.queries_received() == ["slow pages"]


# -- results too large for the history ---------------------------------------------------


async def test_a_huge_answer_is_cut_down_and_the_run_goes_on(
    client: Client, task_queue: str
) -> None:
    # Twenty results where ten were asked for, each page a megabyte of mixed-script text.
    with FakeTavilyServer(page_chars=1_000_000, overfill=True) as fake:
        handle, result = await search_to_the_end(client, task_queue, fake, "durable execution", 10)
        assert await search_attempts(handle) == 1
        assert len(fake.extracts_received()) == 10

    assert len(result.hits) == 10
    assert text_bytes(result) <= RESULT_TEXT_BUDGET_BYTES
    # The best hits keep their full (capped) text; the budget is taken from the tail.
    assert len(result.hits[0].content) == MAX_HIT_CONTENT_CHARS
    assert len(result.hits[-1].content) < MAX_HIT_CONTENT_CHARS
    assert all(len(hit.snippet) <= MAX_SNIPPET_CHARS for hit in result.hits)
    assert len(result.model_dump_json().encode()) < 2 * RESULT_TEXT_BUDGET_BYTES


def test_whatever_a_provider_returns_the_result_fits() -> None:
    page = "耐久実行 " * 500_000
    hits = [
        SearchHit(
            title="t" * 10_000,
            url=f"https://example.org/{n}",
            snippet="s" * 10_000,
            content=page,
            score=math.nan if n == 0 else 1.0 / (n + 1),
        )
        for n in range(50)
    ]
    hits.insert(
        1, SearchHit(title="a long address", url="https://example.org/" + "x" * MAX_URL_CHARS)
    )
    hits.insert(2, SearchHit(title="no address", url="   "))

    result = bounded_result("q", "odd", hits, max_results=10)

    assert len(result.hits) == 10
    assert [hit.url for hit in result.hits] == [f"https://example.org/{n}" for n in range(10)]
    assert text_bytes(result) <= RESULT_TEXT_BUDGET_BYTES
    assert all(len(hit.title) <= MAX_TITLE_CHARS for hit in result.hits)
    assert all(len(hit.snippet) <= MAX_SNIPPET_CHARS for hit in result.hits)
    assert result.hits[0].content == page[:MAX_HIT_CONTENT_CHARS]
    # Past the budget a hit keeps its snippet as its text.
    assert result.hits[-1].content == result.hits[-1].snippet
    # A score JSON cannot carry would make the result undecodable in the workflow.
    assert result.hits[0].score == 0.0
    decoded = WebSearchResult.model_validate(json.loads(result.model_dump_json()))
    assert decoded == result


def test_a_result_within_the_limits_is_left_alone() -> None:
    hits = [
        SearchHit(title=f"page {n}", url=f"https://example.org/{n}", snippet="s", content="c" * 100)
        for n in range(5)
    ]
    result = bounded_result("q", "tavily", hits, max_results=5)
    assert result.hits == hits
