"""The offline model as an Agents SDK `Model` under the real `Runner`: the output types it
answers, the prompts it refuses, its usage and its streamed answer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from agents import Agent, Model, ModelSettings, ModelTracing, Runner, set_tracing_disabled
from agents.agent_output import AgentOutputSchema, AgentOutputSchemaBase
from agents.exceptions import ModelBehaviorError, UserError
from pydantic import BaseModel

from research_llm.agents import (
    CLARIFIER_INSTRUCTIONS,
    PLANNER_INSTRUCTIONS,
    TRIAGE_INSTRUCTIONS,
    UNTRUSTED_DATA_RULE,
    WRITER_INSTRUCTIONS,
    PlanOutput,
    build_clarifier,
    build_planner,
    build_triage,
    build_writer,
    clarify_prompt,
    plan_prompt,
    synthesis_prompt,
    triage_prompt,
)
from research_llm.providers.offline import OfflineModel, OfflineModelError
from research_shared.models import Clarification, ClarifyInput, PlanInput, TriageInput
from tests.helpers.offline_model import (
    CHOICE_QUESTION,
    QUESTION,
    SCOPE_QUESTION,
    answer_text,
    synthesis_input,
)

# The Agents SDK would otherwise export traces to OpenAI's servers.
set_tracing_disabled(True)


class Unknown(BaseModel):
    verdict: str


async def test_unknown_output_type_is_refused() -> None:
    agent = Agent(name="unknown", instructions="x", model=OfflineModel(), output_type=Unknown)

    with pytest.raises(OfflineModelError, match="Unknown"):
        await Runner.run(agent, plan_prompt(PlanInput(question=QUESTION, max_searches=2)))


async def test_plain_text_agent_is_refused() -> None:
    agent = Agent(name="chat", instructions="x", model=OfflineModel())

    with pytest.raises(UserError, match="structured outputs"):
        await Runner.run(agent, "hello")


async def test_prompt_that_is_not_json_is_refused() -> None:
    with pytest.raises(OfflineModelError, match="not JSON"):
        await Runner.run(build_planner(OfflineModel()), "How do asyncio tasks work?")


async def test_streamed_run_gives_the_same_answer() -> None:
    prompt = plan_prompt(PlanInput(question=QUESTION, max_searches=4))
    plain = await Runner.run(build_planner(OfflineModel()), prompt)
    streamed = Runner.run_streamed(build_planner(OfflineModel()), prompt)
    async for _ in streamed.stream_events():
        pass

    assert streamed.final_output == plain.final_output
    assert streamed.context_wrapper.usage.requests == 1
    assert streamed.context_wrapper.usage.total_tokens == plain.context_wrapper.usage.total_tokens


async def test_reads_the_last_user_message_of_responses_items() -> None:
    model = OfflineModel()
    prompt = plan_prompt(PlanInput(question="What is Temporal?", max_searches=2))
    response = await model.get_response(
        system_instructions=None,
        input=[
            {"role": "user", "content": "an earlier turn that is not JSON"},
            {"role": "assistant", "content": "an earlier answer"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": prompt}],
            },
        ],
        model_settings=ModelSettings(),
        tools=[],
        output_schema=AgentOutputSchema(PlanOutput),
        handoffs=[],
        tracing=ModelTracing.DISABLED,
        previous_response_id=None,
        conversation_id=None,
        prompt=None,
    )

    plan_output = PlanOutput.model_validate_json(answer_text(response))
    queries = [search.query for search in plan_output.searches]
    # One key term, and no facet asked for: one search rather than padding.
    assert queries == ["Temporal"]
    assert response.usage.requests == 1


@pytest.mark.parametrize(
    ("build", "instructions", "prompt"),
    [
        (build_triage, TRIAGE_INSTRUCTIONS, triage_prompt(TriageInput(question=CHOICE_QUESTION))),
        (
            build_clarifier,
            CLARIFIER_INSTRUCTIONS,
            clarify_prompt(ClarifyInput(question=CHOICE_QUESTION, max_questions=3)),
        ),
        (
            build_planner,
            PLANNER_INSTRUCTIONS,
            plan_prompt(PlanInput(question=QUESTION, max_searches=4)),
        ),
        (
            build_planner,
            PLANNER_INSTRUCTIONS,
            plan_prompt(
                PlanInput(
                    question=CHOICE_QUESTION,
                    max_searches=4,
                    clarifications=[Clarification(question=SCOPE_QUESTION, answer="Python 3.11")],
                )
            ),
        ),
        (build_writer, WRITER_INSTRUCTIONS, synthesis_prompt(synthesis_input())),
    ],
    ids=["triage", "clarifier", "planner", "planner-answered", "writer"],
)
async def test_every_agent_reports_usage(
    build: Callable[[Model], Agent[None]], instructions: str, prompt: str
) -> None:
    """One request, and the words of instructions, prompt and answer counted as tokens."""
    agent = build(OfflineModel())
    # Every agent's instructions are its own, then the rule on untrusted data.
    assert agent.instructions == instructions + "\n" + UNTRUSTED_DATA_RULE
    result = await Runner.run(agent, prompt)

    usage = result.context_wrapper.usage
    answer = answer_text(result.raw_responses[0])
    assert usage.requests == 1
    assert usage.input_tokens == len(str(agent.instructions).split()) + len(prompt.split())
    assert usage.output_tokens == len(answer.split()) > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_each_output_schema_is_built_once_and_validates_as_the_sdks() -> None:
    model = OfflineModel()
    first, second = build_planner(model).output_type, build_planner(model).output_type
    assert first is second
    assert isinstance(first, AgentOutputSchemaBase)
    reference = AgentOutputSchema(PlanOutput)
    assert first.json_schema() == reference.json_schema()
    assert first.name() == reference.name() and first.is_strict_json_schema()
    answer = '{"searches": [{"query": "q", "reason": "r"}]}'
    assert first.validate_json(answer) == reference.validate_json(answer)
    with pytest.raises(ModelBehaviorError):
        first.validate_json('{"searches": "none"}')
