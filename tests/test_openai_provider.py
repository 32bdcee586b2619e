"""The OpenAI-compatible provider: the real openai client and Agents SDK Runner against a fake
server that speaks both the Responses and the Chat Completions protocol."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Literal

import pytest
from agents import Runner, trace
from agents.agent_output import AgentOutputSchema
from agents.tracing.traces import NoOpTrace
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from pydantic import BaseModel, Field, SecretStr
from temporalio.exceptions import ApplicationError

from research_llm.agents import (
    PlanOutput,
    ReportOutput,
    build_planner,
    build_writer,
    plan_prompt,
)
from research_llm.providers.openai_compatible import (
    OpenAICompatibleModels,
    configure_agents_sdk,
    to_application_error,
    usage_of,
)
from research_shared import errors
from research_shared.models import LlmUsage, PlanInput
from research_shared.redaction import MASK
from research_shared.settings import OpenAIApi
from tests.helpers.fakes.faultserver import Fault
from tests.helpers.fakes.openai_server import (
    CHAT_COMPLETIONS_PATH,
    PATHS,
    RESPONSES_PATH,
    FakeOpenAIServer,
    error_body,
    example_for_schema,
)

KEY = "sk-test-right-7zq"
WRONG_KEY = "sk-test-wrong-9xq"
MODEL = "gpt-test"
PROMPT = plan_prompt(PlanInput(question="How does Temporal replay workflows?", max_searches=3))
APIS = [OpenAIApi.RESPONSES, OpenAIApi.CHAT_COMPLETIONS]


@pytest.fixture(scope="module", autouse=True)
def _quiet_sdk() -> None:
    configure_agents_sdk()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer(api_key=KEY)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.reset()
    return server


@pytest.fixture(params=APIS, ids=[api.value for api in APIS])
def api(request: pytest.FixtureRequest) -> OpenAIApi:
    value: OpenAIApi = request.param
    return value


def _other(api: OpenAIApi) -> OpenAIApi:
    return OpenAIApi.CHAT_COMPLETIONS if api is OpenAIApi.RESPONSES else OpenAIApi.RESPONSES


def _models(
    fake: FakeOpenAIServer, api: OpenAIApi, *, key: str = KEY, timeout: float = 5.0
) -> OpenAICompatibleModels:
    return OpenAICompatibleModels(
        api_key=SecretStr(key),
        base_url=fake.api_base_url,
        api=api,
        timeout=timeout,
    )


@pytest.fixture
async def models(fake: FakeOpenAIServer, api: OpenAIApi) -> AsyncIterator[OpenAICompatibleModels]:
    provider = _models(fake, api)
    yield provider
    await provider.aclose()


async def _planner_failure(models: OpenAICompatibleModels) -> tuple[Exception, ApplicationError]:
    """Run the planner, expecting it to fail, and map the failure."""
    try:
        await Runner.run(build_planner(models.model_for(MODEL)), PROMPT)
    except Exception as exc:
        mapped = to_application_error(exc)
        assert mapped is not None, f"unmapped failure: {exc!r}"
        return exc, mapped
    raise AssertionError("the planner run succeeded; a failure was expected")


def _assert_one_request(fake: FakeOpenAIServer, api: OpenAIApi) -> None:
    assert len(fake.calls_for(api)) == 1, "the client or the SDK retried"
    assert fake.calls_for(_other(api)) == []


# -- happy paths --------------------------------------------------------------------------


async def test_planner_returns_a_plan_over_the_chosen_protocol(
    fake: FakeOpenAIServer, models: OpenAICompatibleModels, api: OpenAIApi
) -> None:
    result = await Runner.run(build_planner(models.model_for(MODEL)), PROMPT)

    assert isinstance(result.final_output, PlanOutput)
    assert [s.query for s in result.final_output.searches] == ["query 1", "query 2"]
    [request] = fake.requests_for(api)
    assert request.model == MODEL
    assert request.bearer == KEY
    assert request.schema_title == "PlanOutput"
    assert request.schema_name == "final_output"
    assert fake.calls_to(PATHS[api]) and not fake.calls_for(_other(api))


async def test_writer_returns_the_report_the_model_wrote(
    fake: FakeOpenAIServer, models: OpenAICompatibleModels, api: OpenAIApi
) -> None:
    written = {
        "report_markdown": "# Replay\n\nTemporal replays history [1].",
        "summary": "Workflows are rebuilt from their event history.",
        "follow_up_questions": ["How are non-deterministic changes detected?"],
    }
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(body)
        return json.dumps(written)

    fake.responder = responder
    result = await Runner.run(build_writer(models.model_for("gpt-writer")), '{"question": "q"}')

    assert result.final_output == ReportOutput.model_validate(written)
    assert len(seen) == 1 and seen[0]["model"] == "gpt-writer"
    [request] = fake.requests_for(api)
    assert request.schema_title == "ReportOutput"


async def test_usage_reports_calls_and_tokens_of_the_fake(
    fake: FakeOpenAIServer, models: OpenAICompatibleModels, api: OpenAIApi
) -> None:
    result = await Runner.run(build_planner(models.model_for(MODEL)), PROMPT)

    [answer] = fake.answers_for(api)
    assert usage_of(result) == LlmUsage(
        calls=1, input_tokens=answer.input_tokens, output_tokens=answer.output_tokens
    )
    assert answer.input_tokens > 1 and answer.output_tokens > 1


async def test_usage_adds_up_over_several_runs(
    fake: FakeOpenAIServer, models: OpenAICompatibleModels, api: OpenAIApi
) -> None:
    plan = await Runner.run(build_planner(models.model_for(MODEL)), PROMPT)
    report = await Runner.run(build_writer(models.model_for(MODEL)), '{"question": "q"}')

    total = usage_of(plan) + usage_of(report)
    answers = fake.answers_for(api)
    assert total.calls == 2
    assert total.input_tokens == sum(a.input_tokens for a in answers)
    assert total.output_tokens == sum(a.output_tokens for a in answers)


# -- failures -------------------------------------------------------------------------------


async def test_wrong_key_is_a_non_retryable_auth_error_without_the_key(
    fake: FakeOpenAIServer, api: OpenAIApi
) -> None:
    models = _models(fake, api, key=WRONG_KEY)
    try:
        raw, mapped = await _planner_failure(models)
    finally:
        await models.aclose()
    named = to_application_error(raw, models.name)

    assert mapped.type == errors.PROVIDER_AUTH
    assert mapped.non_retryable
    assert "OpenAI" in mapped.message
    assert named is not None and named.type == errors.PROVIDER_AUTH
    assert "127.0.0.1" in named.message
    for text in (mapped.message, named.message, repr(mapped), repr(named)):
        assert WRONG_KEY not in text
        # The fake echoes a masked key the way OpenAI does; that is scrubbed too.
        assert WRONG_KEY[-4:] not in text
    [request] = fake.requests_for(api)
    assert request.bearer == WRONG_KEY and request.outcome == "401"
    _assert_one_request(fake, api)


async def test_an_echoed_key_of_no_known_shape_is_redacted(
    fake: FakeOpenAIServer, api: OpenAIApi
) -> None:
    """A compatible server that quotes a refused key whole; the key has no prefix to match,
    so only the exact configured value gives it away."""
    shapeless = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    fake.echo_rejected_key = True
    models = _models(fake, api, key=shapeless)
    try:
        _, mapped = await _planner_failure(models)
    finally:
        fake.echo_rejected_key = False
        await models.aclose()

    [call] = fake.calls_for(api)
    assert shapeless in str(call.answer)
    assert mapped.type == errors.PROVIDER_AUTH
    assert shapeless not in mapped.message
    assert f"Incorrect API key provided: {MASK}" in mapped.message


@pytest.mark.parametrize(
    ("fault", "error_type", "non_retryable", "delay"),
    [
        pytest.param(
            Fault(status=400, body=error_body("bad schema", "invalid_request_error")),
            errors.PROVIDER_BAD_REQUEST,
            True,
            None,
            id="400",
        ),
        pytest.param(
            Fault(
                status=403,
                body=error_body("model not allowed", "invalid_request_error", "model_denied"),
            ),
            errors.PROVIDER_AUTH,
            True,
            None,
            id="403",
        ),
        pytest.param(
            Fault(
                status=429,
                retry_after=5,
                body=error_body("Rate limit reached for requests", "requests", "rate_limit"),
            ),
            errors.PROVIDER_RATE_LIMITED,
            False,
            timedelta(seconds=5),
            id="429-retry-after",
        ),
        pytest.param(
            Fault(
                status=429,
                body=error_body(
                    "You exceeded your current limit, check your plan and billing details.",
                    "insufficient_quota",
                    "insufficient_quota",
                ),
            ),
            errors.PROVIDER_QUOTA,
            True,
            None,
            id="429-insufficient-quota",
        ),
        pytest.param(
            Fault(status=500, body=error_body("The server had an error", "server_error")),
            errors.PROVIDER_UNAVAILABLE,
            False,
            None,
            id="500",
        ),
        pytest.param(
            Fault(status=503, body=error_body("Service overloaded", "server_error")),
            errors.PROVIDER_UNAVAILABLE,
            False,
            None,
            id="503",
        ),
        pytest.param(
            Fault(drop=True), errors.PROVIDER_UNAVAILABLE, False, None, id="dropped-connection"
        ),
    ],
)
async def test_http_faults_map_to_their_error_type_after_one_request(
    fake: FakeOpenAIServer,
    models: OpenAICompatibleModels,
    api: OpenAIApi,
    fault: Fault,
    error_type: str,
    non_retryable: bool,
    delay: timedelta | None,
) -> None:
    fake.inject(fault)

    _, mapped = await _planner_failure(models)

    assert mapped.type == error_type
    assert mapped.non_retryable is non_retryable
    assert mapped.next_retry_delay == delay
    assert "OpenAI" in mapped.message
    assert KEY not in mapped.message
    _assert_one_request(fake, api)


async def test_error_detail_comes_from_the_body(
    fake: FakeOpenAIServer, models: OpenAICompatibleModels
) -> None:
    fake.inject(
        Fault(status=400, body=error_body("Unknown parameter: 'foo'.", "invalid_request_error"))
    )

    _, mapped = await _planner_failure(models)

    assert "HTTP 400" in mapped.message
    assert "Unknown parameter: 'foo'." in mapped.message


async def test_a_slow_server_times_out_as_unavailable_after_one_request(
    fake: FakeOpenAIServer, api: OpenAIApi
) -> None:
    # The status is what the server would send after the delay; the client is gone by then.
    fake.inject(Fault(delay=2.0, status=500))
    models = _models(fake, api, timeout=0.5)
    try:
        _, mapped = await _planner_failure(models)
    finally:
        await models.aclose()

    assert mapped.type == errors.PROVIDER_UNAVAILABLE
    assert not mapped.non_retryable
    assert "timed out" in mapped.message
    _assert_one_request(fake, api)


async def test_output_that_does_not_fit_is_retryable_model_output_invalid(
    fake: FakeOpenAIServer, models: OpenAICompatibleModels, api: OpenAIApi
) -> None:
    fake.responder = lambda body: json.dumps({"searches": "not a list"})

    _, mapped = await _planner_failure(models)

    assert mapped.type == errors.MODEL_OUTPUT_INVALID
    assert not mapped.non_retryable
    _assert_one_request(fake, api)


def test_unknown_exceptions_are_left_to_the_caller() -> None:
    assert to_application_error(KeyError("surprise")) is None
    assert to_application_error(RuntimeError("boom")) is None


def test_wrapped_openai_errors_are_found_through_the_cause() -> None:
    inner = ApplicationError("already classified", type=errors.PROVIDER_QUOTA, non_retryable=True)
    try:
        try:
            raise inner
        except ApplicationError as exc:
            raise RuntimeError("wrapper") from exc
    except RuntimeError as outer:
        assert to_application_error(outer) is inner


# -- construction, secrets, SDK set-up ------------------------------------------------------


async def test_models_are_built_once_per_name_and_keep_the_key_out_of_repr(
    fake: FakeOpenAIServer,
) -> None:
    models = _models(fake, OpenAIApi.CHAT_COMPLETIONS)
    try:
        assert models.model_for("a") is models.model_for("a")
        assert models.model_for("a") is not models.model_for("b")
        assert models.client.max_retries == 0
        assert KEY not in repr(models)
        assert "chat_completions" in repr(models)
    finally:
        await models.aclose()


def test_openai_itself_needs_a_key_but_local_servers_do_not() -> None:
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAICompatibleModels(api_key=None)
    local = OpenAICompatibleModels(api_key=None, base_url="http://127.0.0.1:11434/v1")
    assert local.name == "OpenAI-compatible server 127.0.0.1"
    assert OpenAICompatibleModels(api_key="sk-x" * 4).name == "OpenAI"


def test_tracing_is_off_after_configuration() -> None:
    configure_agents_sdk()
    assert isinstance(trace("probe"), NoOpTrace)


# -- the fake itself ------------------------------------------------------------------------


def _structured_body(api: OpenAIApi, schema: dict[str, Any]) -> dict[str, Any]:
    if api is OpenAIApi.RESPONSES:
        return {
            "model": MODEL,
            "input": [{"role": "user", "content": "hi"}],
            "text": {"format": {"type": "json_schema", "name": "out", "schema": schema}},
        }
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": schema},
        },
    }


def test_fake_answers_parse_strictly_as_openai_types(fake: FakeOpenAIServer) -> None:
    schema = PlanOutput.model_json_schema()
    auth = {"Authorization": f"Bearer {KEY}"}

    status, payload = fake.answer(
        RESPONSES_PATH, _structured_body(OpenAIApi.RESPONSES, schema), auth
    )
    assert status == 200
    response = Response.model_validate(payload)
    assert PlanOutput.model_validate_json(response.output_text).searches

    status, payload = fake.answer(
        CHAT_COMPLETIONS_PATH, _structured_body(OpenAIApi.CHAT_COMPLETIONS, schema), auth
    )
    assert status == 200
    completion = ChatCompletion.model_validate(payload)
    assert completion.usage is not None and completion.usage.total_tokens > 0
    content = completion.choices[0].message.content
    assert content is not None and PlanOutput.model_validate_json(content).searches


def test_fake_refuses_a_missing_key_like_openai(fake: FakeOpenAIServer) -> None:
    status, payload = fake.answer(RESPONSES_PATH, {"model": MODEL}, {})
    assert status == 401
    assert payload["error"]["code"] == "missing_api_key"


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Leaf(BaseModel):
    name: str = Field(min_length=12, max_length=40)
    rank: int = Field(ge=10, le=20)
    weight: float = Field(gt=0, lt=1)
    colour: Colour
    kind: Literal["a", "b"]
    when: date
    flag: bool


class Tree(BaseModel):
    title: str
    leaves: list[Leaf] = Field(min_length=3, max_length=5)
    best: Leaf | None
    tags: list[str] = Field(max_length=1)
    child: Tree | None = None


@pytest.mark.parametrize("strict", [False, True], ids=["pydantic-schema", "agents-strict-schema"])
def test_schema_examples_validate_against_their_model(strict: bool) -> None:
    schema = AgentOutputSchema(Tree).json_schema() if strict else Tree.model_json_schema()

    tree = Tree.model_validate(example_for_schema(schema))

    assert len(tree.leaves) == 3
    assert tree.leaves[0].rank == 10 and tree.leaves[0].colour is Colour.RED
    assert tree.leaves[1].colour is Colour.BLUE
    assert len(tree.tags) == 1
    assert tree.best is not None and tree.child is not None


def test_schema_examples_handle_maps() -> None:
    class Scores(BaseModel):
        scores: dict[str, int]

    assert Scores.model_validate(example_for_schema(Scores.model_json_schema())).scores == {}
