"""Records that a crash of the machine cut short: recorded provider answers and cached searches
are written without a flush to disk, so a reader takes one it cannot read as missing and the
call is made again, once, counted at the provider.

The real `web_search` and `plan` activities run in the test's process (Temporal's activity
environment gives them a workflow and activity id), their providers behind the local fakes,
over real HTTP, with a folder store; each record is then cut short as a crash would leave it
(empty, or its first half), plain and encrypted.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from research_llm.activities import LlmActivities
from research_llm.providers.openai_compatible import OpenAICompatibleModels
from research_search.activities import SearchActivities
from research_search.providers.tavily import TavilySearch
from research_shared.encryption import Keyring
from research_shared.models import PlanInput, WebSearchInput
from research_shared.recorded_calls import CallRecorder
from research_shared.settings import OpenAIApi
from research_shared.store import FileObjectStore, Records, layout, segment
from tests.helpers.fakes.openai_server import FakeOpenAIServer
from tests.helpers.fakes.tavily_server import FakeTavilyServer

QUERY = "durable execution"
RESULTS = 2


def emptied(data: bytes) -> bytes:
    return b""


def halved(data: bytes) -> bytes:
    return data[: len(data) // 2]


CUTS = [pytest.param(emptied, id="empty"), pytest.param(halved, id="half")]
KEYRINGS = [
    pytest.param(None, id="plain"),
    pytest.param(Keyring([bytes(range(32))]), id="encrypted"),
]


def one_step(workflow_id: str, run_id: str = "run-1") -> ActivityEnvironment:
    """An activity environment whose attempts are all of one step of one run."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, workflow_id=workflow_id, workflow_run_id=run_id, activity_id="7", attempt=2
    )
    return env


def planner(
    fake: FakeOpenAIServer, records: Records
) -> tuple[OpenAICompatibleModels, LlmActivities]:
    """The LLM pool's activities on the fake OpenAI server, recording into `records`."""
    models = OpenAICompatibleModels(
        api_key=SecretStr(fake.api_key),
        base_url=fake.api_base_url,
        api=OpenAIApi.RESPONSES,
        recorder=CallRecorder(records, "openai"),
    )
    return models, LlmActivities(models, plan_model="planner", synthesize_model="planner")


def cut_short(root: Path, prefix: str, cut: Callable[[bytes], bytes]) -> int:
    """Cut every record under `prefix` as `cut` says; how many there were."""
    files = [p for p in (root / prefix).rglob("*") if p.is_file()]
    for path in files:
        path.write_bytes(cut(path.read_bytes()))
    return len(files)


@pytest.mark.parametrize("keyring", KEYRINGS)
@pytest.mark.parametrize("cut", CUTS)
async def test_a_search_whose_records_were_cut_short_searches_again(
    tmp_path: Path, cut: Callable[[bytes], bytes], keyring: Keyring | None
) -> None:
    root = tmp_path / "store"
    records = Records(FileObjectStore(root), keyring)
    workflow_id = f"lost-records-{uuid.uuid4().hex[:8]}"
    calls = f"{layout.CALLS}{segment(workflow_id)}"
    with FakeTavilyServer() as fake:
        provider = TavilySearch(
            fake.api_key, base_url=fake.base_url, recorder=CallRecorder(records, "tavily")
        )
        activities = SearchActivities(provider, records=records)
        env = one_step(workflow_id)
        input = WebSearchInput(query=QUERY, max_results=RESULTS)
        try:
            first = await env.run(activities.web_search, input)
            # Read whole, the records answer the step's next attempt: nothing is asked again.
            again = await env.run(activities.web_search, input)
            assert (len(fake.calls_to("/search")), len(fake.calls_to("/extract"))) == (1, RESULTS)

            assert cut_short(root, calls, cut) == 1 + RESULTS
            retried = await env.run(activities.web_search, input)
            # Each record cut short was taken as missing: each call made once more.
            paid = (len(fake.calls_to("/search")), len(fake.calls_to("/extract")))
            assert paid == (2, 2 * RESULTS)
            # And recorded again, whole: the next attempt asks nothing.
            last = await env.run(activities.web_search, input)
            assert (len(fake.calls_to("/search")), len(fake.calls_to("/extract"))) == paid
        finally:
            await provider.aclose()

    for result in (again, retried, last):
        assert [(h.url, h.content) for h in result.hits] == [(h.url, h.content) for h in first.hits]


@pytest.mark.parametrize("keyring", KEYRINGS)
@pytest.mark.parametrize("cut", CUTS)
async def test_a_cached_search_cut_short_is_searched_again(
    tmp_path: Path, cut: Callable[[bytes], bytes], keyring: Keyring | None
) -> None:
    root = tmp_path / "store"
    records = Records(FileObjectStore(root), keyring)
    with FakeTavilyServer() as fake:
        provider = TavilySearch(fake.api_key, base_url=fake.base_url)
        activities = SearchActivities(provider, records=records)
        input = WebSearchInput(query=QUERY, max_results=RESULTS, reuse_searches_within_seconds=600)
        try:
            first = await one_step("cache-first").run(activities.web_search, input)
            cached = await one_step("cache-second").run(activities.web_search, input)
            assert len(fake.calls_to("/search")) == 1 and cached.cached

            assert cut_short(root, layout.SEARCHES, cut) == 1
            searched = await one_step("cache-third").run(activities.web_search, input)
            assert len(fake.calls_to("/search")) == 2 and not searched.cached
            # The search wrote the entry again, whole.
            reused = await one_step("cache-fourth").run(activities.web_search, input)
            assert len(fake.calls_to("/search")) == 2 and reused.cached
        finally:
            await provider.aclose()
    assert [h.url for h in searched.hits] == [h.url for h in first.hits]


@pytest.mark.parametrize("keyring", KEYRINGS)
@pytest.mark.parametrize("cut", CUTS)
async def test_a_model_answer_cut_short_is_asked_again(
    tmp_path: Path,
    openai_fake: FakeOpenAIServer,
    cut: Callable[[bytes], bytes],
    keyring: Keyring | None,
) -> None:
    root = tmp_path / "store"
    records = Records(FileObjectStore(root), keyring)
    workflow_id = f"lost-answer-{uuid.uuid4().hex[:8]}"
    models, activities = planner(openai_fake, records)
    env = one_step(workflow_id)
    input = PlanInput(question="Is a lost record paid for twice?", max_searches=2)
    before = len(openai_fake.calls)
    try:
        first = await env.run(activities.plan, input)
        again = await env.run(activities.plan, input)
        assert len(openai_fake.calls) - before == 1
        assert cut_short(root, f"{layout.CALLS}{segment(workflow_id)}", cut) == 1
        retried = await env.run(activities.plan, input)
    finally:
        await models.aclose()
    assert len(openai_fake.calls) - before == 2
    assert retried.queries == again.queries == first.queries


async def test_a_reset_run_asks_again_where_a_retry_reuses(
    tmp_path: Path, openai_fake: FakeOpenAIServer
) -> None:
    # A reset run has the workflow id and the activity ids of the run it replaces; only the
    # run id tells them apart. Its steps must not be handed the earlier run's answers.
    records = Records(FileObjectStore(tmp_path / "store"), None)
    workflow_id = f"reset-{uuid.uuid4().hex[:8]}"
    models, activities = planner(openai_fake, records)
    input = PlanInput(question="Is a reset run handed the old answers?", max_searches=2)
    before = len(openai_fake.calls)
    try:
        await one_step(workflow_id, "run-1").run(activities.plan, input)
        await one_step(workflow_id, "run-1").run(activities.plan, input)
        assert len(openai_fake.calls) - before == 1  # a retry of the same run reuses
        await one_step(workflow_id, "run-2").run(activities.plan, input)
    finally:
        await models.aclose()
    assert len(openai_fake.calls) - before == 2
