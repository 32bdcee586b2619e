"""The LLM worker's activities bound what a model writes before it reaches the contract: the
real `plan` activity, the real openai client and Agents SDK, a fake server that speaks the
Responses protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from research_llm.activities import LlmActivities
from research_llm.providers.openai_compatible import OpenAICompatibleModels, configure_agents_sdk
from research_shared.models import MAX_QUERY_CHARS, MAX_REASON_CHARS, PlanInput
from research_shared.settings import OpenAIApi
from tests.helpers.fakes.openai_server import FakeOpenAIServer

KEY = "sk-test-activities-4kq"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    configure_agents_sdk()
    server = FakeOpenAIServer(api_key=KEY)
    server.start()
    yield server
    server.stop()


async def test_plan_cuts_queries_a_search_provider_would_refuse(fake: FakeOpenAIServer) -> None:
    words = " ".join(f"word{n}" for n in range(200))
    searches = [
        {"query": words, "reason": "r" * (MAX_REASON_CHARS + 50)},
        {"query": "  asyncio   threads ", "reason": "short"},
        {"query": "ASYNCIO threads", "reason": "the same query again"},
    ]

    def answer(body: dict[str, Any]) -> str:
        return json.dumps({"searches": searches})

    fake.responder = answer
    models = OpenAICompatibleModels(
        api_key=SecretStr(KEY), base_url=fake.api_base_url, api=OpenAIApi.RESPONSES
    )
    activities = LlmActivities(models, plan_model="planner", synthesize_model="writer")
    try:
        result = await ActivityEnvironment().run(
            activities.plan, PlanInput(question="asyncio or threads?", max_searches=5)
        )
    finally:
        await models.aclose()

    long, short = result.queries
    assert len(long.query) <= MAX_QUERY_CHARS
    # Cut between words, keeping the start of what the model asked for.
    assert words.startswith(long.query) and words[len(long.query)] == " "
    assert len(long.reason) <= MAX_REASON_CHARS
    assert short.query == "asyncio threads"
