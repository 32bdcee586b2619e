"""Nothing paid twice: a worker killed right after its provider answered does not make the
retried attempt call again, and runs may reuse each other's searches when they ask to.

Every count is taken at the fake provider, over real HTTP; the workers are real processes
killed with SIGKILL. The session's payload store (a folder) holds the recorded answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from temporalio.client import Client

from research_cli.embedded import free_port
from research_shared.models import ResearchReport
from research_shared.store import FileObjectStore, layout, segment
from tests.helpers.durability import (
    PLAN_STEP,
    REFLECT_STEP,
    REVIEW_STEP,
    WRITE_STEP,
    ResearchStack,
    activity_outcomes,
    distinct_queries,
    model_step,
    research_stack,
    search_for,
    start_research,
    step_calls,
)
from tests.helpers.fakes.faultserver import Call, FakeProviderServer, Fault
from tests.helpers.metrics import scrape, series, values
from tests.helpers.processes import DevServer
from tests.helpers.tcp_proxy import FreezableProxy

pytestmark = pytest.mark.e2e

TEST_BUDGET_SECONDS = 120.0
# The model steps of a default run whose research is done after one round and whose first
# draft is approved.
RUN_STEPS = (PLAN_STEP, REFLECT_STEP, WRITE_STEP, REVIEW_STEP)
# Holds a page fetch far longer than the test waits, so the search cannot complete.
HELD_SECONDS = 60.0


def session_store(payload_store: str) -> FileObjectStore:
    return FileObjectStore(Path(urlsplit(payload_store).path))


async def recorded_calls(store: FileObjectStore, workflow_id: str) -> int:
    return len([o async for o in store.scan(f"{layout.CALLS}{segment(workflow_id)}/")])


async def _at_least(count: Awaitable[int], least: int) -> bool:
    return await count >= least


def cut_off_before_answering(
    stack: ResearchStack,
    pool: str,
    proxy: FreezableProxy,
    fake: FakeProviderServer,
    answering: Callable[[Call], bool],
) -> None:
    """Route `pool` to Temporal through `proxy`, and freeze the proxy just before `fake`
    answers a call that `answering` picks: from then on the pool reaches the provider and
    the store, but can tell Temporal nothing."""

    def cut_off_temporal(call: Call) -> None:
        if answering(call):
            proxy.freeze()

    fake.before_answer = cut_off_temporal
    stack.workers.pool_env[pool] = {"TEMPORAL_ADDRESS": proxy.address}


async def replace_the_cut_off_pool(
    stack: ResearchStack, pool: str, proxy: FreezableProxy, fake: FakeProviderServer
) -> None:
    """Kill `pool` and start it again, reaching Temporal directly. A dead pod's connections
    close at the server; here they end at the proxy, so its side is closed too: otherwise
    the server would hand the retried attempt to a poll the dead worker left open, and only
    a heartbeat timeout would free it."""
    await stack.kill(pool)
    proxy.stop()
    fake.before_answer = None
    stack.workers.pool_env[pool] = {}
    await stack.start_pools(pool)


async def start(client: Client, stack: ResearchStack, **request: Any) -> Any:
    return await start_research(
        client, stack, {"question": "Is a paid call ever made twice?", **request}
    )


def attempts_of(history: Any, name: str) -> list[int]:
    return [o.attempt for o in activity_outcomes(history) if o.name == name]


async def assert_searched_once(
    stack: ResearchStack, query: str, handle: Any, report: ResearchReport
) -> None:
    """The run's one search asked Tavily once: its second attempt, on a new worker, reused
    the answer the first had recorded."""
    assert report.sources, report
    assert stack.searched([query]) == {query: 1}
    assert "provider answer reused" in stack.workers.new_log("search")
    # The step completed on a retry (on a busy machine the retry may itself time out once
    # more); however many attempts it took, the provider was asked once (above).
    [attempt] = attempts_of(await handle.fetch_history(), "web_search")
    assert attempt >= 2


async def test_search_worker_killed_after_tavily_answered_does_not_search_again(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    [query] = distinct_queries(1, "killed after the answer")
    with research_stack(dev_server.address, tmp_path / "logs", [query]) as stack:
        # The page fetch after the search is held: the activity cannot finish on its own.
        stack.tavily.inject(Fault(delay=HELD_SECONDS, match=lambda path, _: path == "/extract"))
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await start(client, stack, max_searches=1, results_per_search=1)
            answered = search_for(query)
            await asyncio.to_thread(stack.tavily.wait_answered, lambda c: answered(c.path, c.body))
            # The page fetch starts only once the search's answer is recorded; it is held.
            await stack.wait_for(
                lambda: bool(stack.tavily.calls_to("/extract")), "the page fetch to start"
            )
            await stack.kill("search")
            await stack.start_pools("search")
            report = await handle.result()

        await assert_searched_once(stack, query, handle, report)


async def test_search_worker_killed_after_the_page_was_extracted_does_not_extract_again(
    client: Client, dev_server: DevServer, payload_store: str, tmp_path: Path
) -> None:
    """Page extraction is a paid call too: the search worker is cut off from Temporal just
    before Tavily's /extract answer leaves, then killed once the answer is recorded; the
    retried attempt reuses it."""
    [query] = distinct_queries(1, "killed after the extraction")
    store = session_store(payload_store)
    host, port = dev_server.address.rsplit(":", 1)
    with (
        research_stack(dev_server.address, tmp_path / "logs", [query]) as stack,
        FreezableProxy((host, int(port))) as proxy,
    ):
        cut_off_before_answering(
            stack, "search", proxy, stack.tavily, lambda call: call.path == "/extract"
        )
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await start(
                client,
                stack,
                max_searches=1,
                results_per_search=1,
                max_rounds=1,
                max_review_rounds=0,
            )
            await asyncio.to_thread(stack.tavily.wait_answered, lambda c: c.path == "/extract")
            # Every answer so far recorded (the planner's, the search's, the page's).
            answered = len(stack.model.calls) + len(stack.tavily.calls)
            await stack.wait_for(
                lambda: _at_least(recorded_calls(store, handle.id), answered),
                "the extraction to be recorded",
            )
            await replace_the_cut_off_pool(stack, "search", proxy, stack.tavily)
            report = await handle.result()

        assert len(stack.tavily.calls_to("/extract")) == 1
        await assert_searched_once(stack, query, handle, report)


async def test_llm_worker_killed_after_the_model_answered_does_not_ask_again(
    client: Client, dev_server: DevServer, payload_store: str, tmp_path: Path
) -> None:
    queries = distinct_queries(2, "model answer kept")
    store = session_store(payload_store)
    host, port = dev_server.address.rsplit(":", 1)
    with (
        research_stack(dev_server.address, tmp_path / "logs", queries) as stack,
        FreezableProxy((host, int(port))) as proxy,
    ):

        def is_plan(call: Call) -> bool:
            return model_step(call.body) == PLAN_STEP

        cut_off_before_answering(stack, "llm", proxy, stack.model, is_plan)
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await start(client, stack, max_searches=len(queries))
            await asyncio.to_thread(stack.model.wait_answered, is_plan)
            await stack.wait_for(
                lambda: _at_least(recorded_calls(store, handle.id), 1), "the answer to be recorded"
            )
            await replace_the_cut_off_pool(stack, "llm", proxy, stack.model)
            report = await handle.result()

        assert report.report_markdown
        # The planner was asked once, and so was every later step of the run.
        asked = {step: len(step_calls(stack, step)) for step in RUN_STEPS}
        assert asked == dict.fromkeys(RUN_STEPS, 1), asked
        assert "provider answer reused" in stack.workers.new_log("llm")
    # The step completed on a retry (on a busy machine the retry may itself time out once
    # more); however many attempts it took, the provider was asked once (above).
    [attempt] = attempts_of(await handle.fetch_history(), "plan")
    assert attempt >= 2


async def test_a_run_may_reuse_recent_searches_of_another_run(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    queries = distinct_queries(3, "cached search")
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        metrics_port = str(free_port())
        stack.workers.pool_env["search"] = {"RESEARCH_METRICS_PORT": metrics_port}
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            first = await (await start(client, stack, max_searches=3)).result()
            fresh = await (await start(client, stack, max_searches=3)).result()
            reused = await (
                await start(client, stack, max_searches=3, reuse_searches_within_seconds=600)
            ).result()

        # The run that did not opt in searched again; the one that did reused every search.
        assert stack.searched(queries) == dict.fromkeys(queries, 2)
        assert [s.url for s in reused.sources] == [s.url for s in first.sources]
        assert [s.url for s in fresh.sources] == [s.url for s in first.sources]
        hits = values(scrape(int(metrics_port)))
        assert hits[series("research_search_cache_hits_total", provider="tavily")] == 3
