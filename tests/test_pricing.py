"""What model calls cost: the `RESEARCH_MODEL_PRICES` setting, the cost the LLM worker puts
on a step (the real activity, the real openai client, a server that speaks the Responses
protocol), and the built-in table the README lists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from research_llm.activities import LlmActivities
from research_llm.providers.offline import OFFLINE_MODEL_NAME
from research_llm.worker import OfflineModels
from research_shared.models import PlanInput, PlanResult
from research_shared.settings import (
    DEFAULT_MODEL_PRICES,
    LlmSettings,
    ModelPrice,
    describe_settings_error,
)
from tests.helpers.fakes.openai_server import Answer, FakeOpenAIServer
from tests.helpers.llm_activities import plan_with_the_fake

README = Path(__file__).resolve().parents[1] / "README.md"


def prices_from(monkeypatch: pytest.MonkeyPatch, value: str | None) -> LlmSettings:
    if value is None:
        monkeypatch.delenv("RESEARCH_MODEL_PRICES", raising=False)
    else:
        monkeypatch.setenv("RESEARCH_MODEL_PRICES", value)
    return LlmSettings()


# -- the setting -------------------------------------------------------------------------------


def test_without_the_setting_the_built_in_table_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    assert prices_from(monkeypatch, None).price_table() == DEFAULT_MODEL_PRICES
    assert prices_from(monkeypatch, "").price_table() == DEFAULT_MODEL_PRICES


def test_prices_given_are_merged_over_the_built_in_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    value = {
        "gpt-4.1": {"input_per_million": 1.5, "output_per_million": 6},
        "house-writer-7b": {"input_per_million": 0.2, "output_per_million": 0.6},
    }
    table = prices_from(monkeypatch, json.dumps(value)).price_table()
    assert table["gpt-4.1"] == ModelPrice(input_per_million=1.5, output_per_million=6.0)
    assert table["house-writer-7b"] == ModelPrice(input_per_million=0.2, output_per_million=0.6)
    assert table["gpt-4o"] == DEFAULT_MODEL_PRICES["gpt-4o"]
    assert set(table) == {*DEFAULT_MODEL_PRICES, "house-writer-7b"}


PRICE = '{"input_per_million": 1, "output_per_million": 2}'
INVALID = [
    ("prices", "RESEARCH_MODEL_PRICES='prices': not JSON (Expecting value at position 0)"),
    ('{"m": ', "RESEARCH_MODEL_PRICES='{\"m\": ': not JSON (Expecting value at position 6)"),
    ("[1, 2]", "RESEARCH_MODEL_PRICES=[1, 2]: Input should be a valid dictionary"),
    (
        '{"m": 3}',
        'RESEARCH_MODEL_PRICES["m"]=3: Input should be a valid dictionary or instance of '
        "ModelPrice",
    ),
    (
        '{"m": {"input_per_million": -1, "output_per_million": 2}}',
        'RESEARCH_MODEL_PRICES["m"]["input_per_million"]=-1: Input should be greater than or '
        "equal to 0",
    ),
    (
        '{"m": {"input_per_million": 1, "output_per_million": "NaN"}}',
        'RESEARCH_MODEL_PRICES["m"]["output_per_million"]=\'NaN\': Input should be a finite number',
    ),
    (
        '{"m": {"input_per_million": 1}}',
        'RESEARCH_MODEL_PRICES["m"]["output_per_million"]: Field required',
    ),
    (
        '{"m": {"input_per_million": 1, "output_per_million": 2, "per_request": 3}}',
        'RESEARCH_MODEL_PRICES["m"]["per_request"]=3: Extra inputs are not permitted',
    ),
    (
        f'{{" gpt-4.1": {PRICE}}}',
        "model name ' gpt-4.1' is blank or has surrounding spaces",
    ),
]


@pytest.mark.parametrize(("value", "message"), INVALID, ids=[v for v, _ in INVALID])
def test_a_bad_price_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        prices_from(monkeypatch, value)
    described = describe_settings_error(raised.value)
    assert described is not None and "\n" not in described
    assert described.startswith("invalid settings: RESEARCH_MODEL_PRICES")
    assert described.endswith(message)


# -- the cost of a step ------------------------------------------------------------------------


async def plan_with(
    fake: FakeOpenAIServer, model: str, prices: dict[str, ModelPrice]
) -> tuple[PlanResult, Answer]:
    def answer(body: dict[str, Any]) -> str:
        return json.dumps({"searches": [{"query": "lock gates", "reason": "the question"}]})

    fake.reset()
    fake.responder = answer
    result = await plan_with_the_fake(
        fake, PlanInput(question="How do lock gates work?", max_searches=2), model, prices
    )
    [answered] = fake.answers_for("responses")
    return result, answered


async def test_a_step_costs_its_tokens_at_its_models_price(
    openai_fake: FakeOpenAIServer,
) -> None:
    price = ModelPrice(input_per_million=1.25, output_per_million=10.0)
    result, answered = await plan_with(openai_fake, "planner-x", {"planner-x": price})
    usage = result.usage
    # The tokens the provider reported, at the table's price per million.
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == (
        1,
        answered.input_tokens,
        answered.output_tokens,
    )
    expected = (answered.input_tokens * 1.25 + answered.output_tokens * 10.0) / 1_000_000
    assert usage.cost_usd == round(expected, 6) > 0
    assert usage.unpriced_models == []


async def test_a_model_without_a_price_is_named_not_costed(
    openai_fake: FakeOpenAIServer,
) -> None:
    result, answered = await plan_with(openai_fake, "house-planner", dict(DEFAULT_MODEL_PRICES))
    assert result.usage.input_tokens == answered.input_tokens > 0
    assert result.usage.cost_usd == 0.0
    assert result.usage.unpriced_models == ["house-planner"]


async def test_the_offline_model_is_priced_at_nothing() -> None:
    activities = LlmActivities(
        OfflineModels(),
        plan_model=OFFLINE_MODEL_NAME,
        synthesize_model=OFFLINE_MODEL_NAME,
        prices=DEFAULT_MODEL_PRICES,
    )
    result = await ActivityEnvironment().run(
        activities.plan, PlanInput(question="How do lock gates work?", max_searches=2)
    )
    assert result.usage.input_tokens > 0
    assert (result.usage.cost_usd, result.usage.unpriced_models) == (0.0, [])


# -- the README --------------------------------------------------------------------------------


def test_the_readme_lists_the_built_in_prices() -> None:
    text = README.read_text(encoding="utf-8")
    table = text.split("\n| model | input | output |\n| --- | --- | --- |\n", 1)[1]
    listed: dict[str, ModelPrice] = {}
    for line in table.split("\n\n", 1)[0].splitlines():
        row = re.fullmatch(r"\| `([^`]+)`[^|]* \| ([\d.]+) \| ([\d.]+) \|", line)
        assert row is not None, f"not a row of the price table: {line!r}"
        listed[row[1]] = ModelPrice(
            input_per_million=float(row[2]), output_per_million=float(row[3])
        )
    assert listed == DEFAULT_MODEL_PRICES
