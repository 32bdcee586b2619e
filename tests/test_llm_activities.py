"""The LLM worker's activities bound what a model writes before it reaches the contract: the
real `plan` activity, the real openai client and Agents SDK, a fake server that speaks the
Responses protocol."""

from __future__ import annotations

import json
from typing import Any

from agents import Model
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from research_llm.activities import LlmActivities
from research_llm.providers.openai_compatible import OpenAICompatibleModels
from research_shared.models import MAX_QUERY_CHARS, MAX_REASON_CHARS, PlanInput
from research_shared.settings import OpenAIApi
from tests.helpers.fakes.openai_server import FakeOpenAIServer
from tests.helpers.llm_activities import plan_with_the_fake


async def test_plan_cuts_queries_a_search_provider_would_refuse(
    openai_fake: FakeOpenAIServer,
) -> None:
    words = " ".join(f"word{n}" for n in range(200))
    searches = [
        {"query": words, "reason": "r" * (MAX_REASON_CHARS + 50)},
        {"query": "  asyncio   threads ", "reason": "short"},
        {"query": "ASYNCIO threads", "reason": "the same query again"},
    ]

    def answer(body: dict[str, Any]) -> str:
        return json.dumps({"searches": searches})

    openai_fake.responder = answer
    result = await plan_with_the_fake(
        openai_fake, PlanInput(question="asyncio or threads?", max_searches=5)
    )

    long, short = result.queries
    assert len(long.query) <= MAX_QUERY_CHARS
    # Cut between words, keeping the start of what the model asked for.
    assert words.startswith(long.query) and words[len(long.query)] == " "
    assert len(long.reason) <= MAX_REASON_CHARS
    assert short.query == "asyncio threads"


async def test_each_agent_is_made_once_and_serves_every_call(
    openai_fake: FakeOpenAIServer,
) -> None:
    models = OpenAICompatibleModels(
        api_key=SecretStr(openai_fake.api_key),
        base_url=openai_fake.api_base_url,
        api=OpenAIApi.RESPONSES,
    )
    asked: list[str] = []

    class CountingModels:
        name = models.name

        def model_for(self, model_name: str) -> Model:
            asked.append(model_name)
            return models.model_for(model_name)

        async def aclose(self) -> None:
            await models.aclose()

    activities = LlmActivities(CountingModels(), plan_model="planner", synthesize_model="writer")
    earlier = len(openai_fake.requests_for(OpenAIApi.RESPONSES))
    try:
        for question in ("asyncio or threads?", "queues or streams?"):
            result = await ActivityEnvironment().run(
                activities.plan, PlanInput(question=question, max_searches=2)
            )
            assert result.queries
    finally:
        await models.aclose()
    assert asked == ["planner"]
    requests = openai_fake.requests_for(OpenAIApi.RESPONSES)[earlier:]
    assert [request.model for request in requests] == ["planner"] * 2
