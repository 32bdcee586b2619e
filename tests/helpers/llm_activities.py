"""The LLM worker's real `plan` activity, its model served by the fake OpenAI server over the
Responses API: the real openai client and Agents SDK, in the test's process."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from research_llm.activities import LlmActivities
from research_llm.providers.openai_compatible import OpenAICompatibleModels
from research_shared.models import PlanInput, PlanResult
from research_shared.settings import ModelPrice, OpenAIApi
from tests.helpers.fakes.openai_server import FakeOpenAIServer


async def plan_with_the_fake(
    fake: FakeOpenAIServer,
    input: PlanInput,
    model: str = "planner",
    prices: Mapping[str, ModelPrice] | None = None,
) -> PlanResult:
    """What the `plan` activity returns for `input`, asking `fake` for `model` and pricing
    its usage with `prices` (the worker's defaults when None)."""
    models = OpenAICompatibleModels(
        api_key=SecretStr(fake.api_key), base_url=fake.api_base_url, api=OpenAIApi.RESPONSES
    )
    activities = LlmActivities(models, plan_model=model, synthesize_model=model, prices=prices)
    try:
        result: PlanResult = await ActivityEnvironment().run(activities.plan, input)
    finally:
        await models.aclose()
    return result
