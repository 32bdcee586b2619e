"""Retry-After is honoured up to `MAX_RETRY_AFTER`: parsed and capped in one place, and the
capped delay is what the real Tavily and openai clients' failures carry as
`next_retry_delay`, against the local fakes over real HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from agents import Runner
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from research_llm.agents import build_planner, plan_prompt
from research_llm.providers.openai_compatible import (
    OpenAICompatibleModels,
    configure_agents_sdk,
    to_application_error,
)
from research_search.providers.tavily import TavilySearch
from research_shared import errors, retry
from research_shared.models import PlanInput
from research_shared.provider_errors import MAX_RETRY_AFTER, from_http_status, parse_retry_after
from research_shared.settings import OpenAIApi
from tests.helpers.fakes.faultserver import Fault
from tests.helpers.fakes.openai_server import FakeOpenAIServer, error_body
from tests.helpers.fakes.tavily_server import FakeTavilyServer

A_DAY = 86400
PRESETS = [retry.TRIAGE, retry.CLARIFY, retry.PLAN, retry.WEB_SEARCH, retry.SYNTHESIZE]


# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", timedelta(seconds=7)),
        (" 2.5 ", timedelta(seconds=2.5)),
        ("0", timedelta(0)),
        ("-3", timedelta(0)),
        ("60", MAX_RETRY_AFTER),
        (str(A_DAY), MAX_RETRY_AFTER),
        ("1e300", MAX_RETRY_AFTER),
        ("inf", MAX_RETRY_AFTER),
        ("nan", None),
        ("", None),
        (None, None),
        ("soon", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_retry_after_is_parsed_and_capped(header: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1500", timedelta(seconds=1.5)),
        ("20", timedelta(milliseconds=20)),
        (str(A_DAY * 1000), MAX_RETRY_AFTER),
        ("x", None),
    ],
)
def test_milliseconds_are_read_as_milliseconds(header: str, expected: timedelta | None) -> None:
    assert parse_retry_after(header, milliseconds=True) == expected


def test_a_delay_given_directly_is_held_to_the_cap() -> None:
    limited = from_http_status("P", 429, retry_after=timedelta(days=1))
    assert limited.type == errors.PROVIDER_RATE_LIMITED
    assert limited.next_retry_delay == MAX_RETRY_AFTER
    down = from_http_status("P", 503, retry_after=timedelta(seconds=-1))
    assert down.next_retry_delay == timedelta(0)
    assert from_http_status("P", 429).next_retry_delay is None


def test_the_cap_fits_the_presets() -> None:
    """Honoured at least as long as any preset's own backoff waits, and short enough that a
    search refused on every attempt uses all its attempts inside its schedule-to-close."""
    for preset in PRESETS:
        assert preset.retry.maximum_interval is not None
        assert preset.retry.maximum_interval <= MAX_RETRY_AFTER
    search = retry.WEB_SEARCH
    assert search.schedule_to_close is not None
    assert MAX_RETRY_AFTER * (search.retry.maximum_attempts - 1) < search.schedule_to_close


# -- the capped delay in the real clients' failures -------------------------------------------


@pytest.fixture(scope="module")
def tavily_server() -> Iterator[FakeTavilyServer]:
    with FakeTavilyServer() as fake:
        yield fake


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
async def tavily(tavily_server: FakeTavilyServer) -> AsyncIterator[TavilySearch]:
    tavily_server.reset()
    provider = TavilySearch(
        SecretStr(tavily_server.api_key), base_url=tavily_server.base_url, timeout_seconds=5
    )
    yield provider
    await provider.aclose()


@pytest.fixture(params=list(OpenAIApi), ids=[api.value for api in OpenAIApi])
async def models(
    request: pytest.FixtureRequest, openai_server: FakeOpenAIServer
) -> AsyncIterator[OpenAICompatibleModels]:
    configure_agents_sdk()
    openai_server.reset()
    provider = OpenAICompatibleModels(
        api_key=openai_server.api_key,
        base_url=openai_server.api_base_url,
        api=request.param,
        timeout=5,
    )
    yield provider
    await provider.aclose()


async def test_tavily_a_day_of_retry_after_is_a_minute(
    tavily: TavilySearch, tavily_server: FakeTavilyServer
) -> None:
    tavily_server.inject(Fault(status=429, retry_after=A_DAY))
    with pytest.raises(ApplicationError) as caught:
        await tavily.search("temporal replay", max_results=3)
    assert caught.value.type == errors.PROVIDER_RATE_LIMITED
    assert caught.value.next_retry_delay == MAX_RETRY_AFTER
    assert [c.outcome for c in tavily_server.calls_to("/search")] == ["429"]


async def model_failure(models: OpenAICompatibleModels) -> ApplicationError:
    prompt = plan_prompt(PlanInput(question="How is a long wait bounded?", max_searches=2))
    try:
        await Runner.run(build_planner(models.model_for("gpt-test")), prompt)
    except Exception as err:
        mapped = to_application_error(err, models.name)
        assert mapped is not None, f"unmapped failure: {err!r}"
        return mapped
    raise AssertionError("the planner run succeeded; a rate limit was expected")


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault(status=429, retry_after=A_DAY), id="retry-after"),
        pytest.param(
            Fault(status=503, headers={"retry-after-ms": str(A_DAY * 1000)}), id="retry-after-ms"
        ),
    ],
)
async def test_openai_a_day_of_retry_after_is_a_minute(
    models: OpenAICompatibleModels, openai_server: FakeOpenAIServer, fault: Fault
) -> None:
    fault.body = error_body("Rate limit reached for requests", "requests", "rate_limit")
    openai_server.inject(fault)
    mapped = await model_failure(models)
    assert not mapped.non_retryable
    assert mapped.next_retry_delay == MAX_RETRY_AFTER
    assert [c.outcome for c in openai_server.calls_for(models.api)] == [str(fault.status)]
