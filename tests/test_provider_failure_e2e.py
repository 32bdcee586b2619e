"""What a provider's failure leaves behind, through Temporal with the real worker processes:
no key anywhere, no wait longer than the Retry-After cap, and a report when only a step that
refines it failed.

The workers hold keys that look like nothing (32 random letters and digits, chosen per
run), so only the redactor's registry of configured secrets can remove them, and the fakes
refuse them with a 401 that quotes the whole presented key. The key must then appear in no
event of the run's history (failures included, payloads decoded), in no worker's log, and in
no error the caller gets: for the search worker (Tavily) and for the LLM worker (OpenAI).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory

from research_shared import errors
from research_shared.models import ResearchReport
from research_shared.names import WEB_SEARCH_ACTIVITY
from research_shared.provider_errors import MAX_RETRY_AFTER
from research_shared.redaction import MASK
from tests.helpers.durability import (
    PLAN_STEP,
    REVIEW_STEP,
    ResearchStack,
    distinct_queries,
    pending_activities,
    research_stack,
    scripted_steps,
    search_calls,
    search_for,
    start_research,
    step_calls,
    step_request,
)
from tests.helpers.fakes.faultserver import Fault
from tests.helpers.processes import DevServer

pytestmark = pytest.mark.e2e

RUN_BUDGET_SECONDS = 60.0
POOLS = ("orchestrator", "search", "llm")


def random_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


@dataclass(frozen=True)
class Keys:
    """The keys the workers present; the fakes accept neither."""

    tavily: str
    openai: str


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(tavily=random_key(), openai=random_key())


@pytest.fixture(scope="module")
def stack(
    dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory, keys: Keys
) -> Iterator[ResearchStack]:
    """One stack for the module. The search worker holds a key the fake Tavily refuses; the
    LLM worker starts with the key the fake OpenAI accepts (a run must plan before it
    searches), and a test that needs a refused model key restarts it with one."""
    log_dir = tmp_path_factory.mktemp("provider-failure-logs")
    with research_stack(dev_server.address, log_dir, queries=[]) as stack:
        stack.tavily.echo_rejected_key = True
        stack.model.echo_rejected_key = True
        stack.workers.env["TAVILY_API_KEY"] = keys.tavily
        stack.workers.start(*POOLS)
        yield stack


async def llm_pool_with_key(stack: ResearchStack, key: str) -> None:
    """Make sure the LLM pool runs with `key`, restarting it if it holds another."""
    held = stack.workers.pool_env.get("llm", {}).get("OPENAI_API_KEY", stack.model.api_key)
    if held == key:
        return
    await stack.stop("llm")
    stack.workers.pool_env["llm"] = {"OPENAI_API_KEY": key}
    await stack.start_pools("llm")


def question(topic: str) -> str:
    return f"What does {topic} leave behind? ({uuid.uuid4().hex[:8]})"


def payload_texts(message: Message) -> list[str]:
    """The decoded data and metadata of every payload in a protobuf message, at any depth:
    the history's JSON carries payloads in base64, where a key would not show."""
    if isinstance(message, Payload):
        parts = [message.data, *message.metadata.values()]
        return [part.decode(errors="replace") for part in parts]
    texts: list[str] = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.is_repeated:
            items = value.values() if field.message_type.GetOptions().map_entry else value
            for item in items:
                if isinstance(item, Message):
                    texts.extend(payload_texts(item))
        else:
            texts.extend(payload_texts(value))
    return texts


async def history_text(handle: WorkflowHandle[Any, Any]) -> str:
    """The run's whole history as text: its JSON, and every payload in it decoded."""
    history: WorkflowHistory = await handle.fetch_history()
    texts = [history.to_json()]
    for event in history.events:
        texts.extend(payload_texts(event))
    return "\n".join(texts)


def assert_nowhere(key: str, stack: ResearchStack, history: str, *caller_sees: str) -> None:
    assert key not in history, "the key is in the run's history"
    for pool in POOLS:
        assert key not in stack.workers.log(pool), f"the key is in the {pool} worker's log"
    for text in caller_sees:
        assert key not in text, f"the key is in what the caller gets: {text}"


async def test_search_worker_leaks_no_tavily_key(
    client: Client, stack: ResearchStack, keys: Keys
) -> None:
    await llm_pool_with_key(stack, stack.model.api_key)
    asked = question("a refused Tavily key")
    queries = distinct_queries(2, "refused tavily key")
    stack.model.responder = scripted_steps({asked: queries})
    handle = await start_research(client, stack, {"question": asked, "max_searches": 2})
    async with asyncio.timeout(RUN_BUDGET_SECONDS):
        report: ResearchReport = await handle.result()

    # The fake was handed the key and quoted it back: there was something to leak.
    for query in queries:
        [call] = search_calls(stack, query)
        assert call.outcome == "401"
        assert keys.tavily in json.dumps(call.answer)
    assert report.stats.searches_failed == len(queries)
    assert {f.query for f in report.failed_searches} == set(queries)
    for failure in report.failed_searches:
        assert failure.error_type == errors.PROVIDER_AUTH
        assert f"invalid API key {MASK}" in failure.message
    history = await history_text(handle)
    assert f"invalid API key {MASK}" in history
    assert_nowhere(
        keys.tavily,
        stack,
        history,
        report.model_dump_json(),
        *(f.message for f in report.failed_searches),
    )


async def test_llm_worker_leaks_no_openai_key(
    client: Client, stack: ResearchStack, keys: Keys
) -> None:
    await llm_pool_with_key(stack, keys.openai)
    asked = question("a refused model key")
    stack.model.responder = scripted_steps({asked: ["unused"]})
    handle = await start_research(client, stack, {"question": asked, "max_searches": 1})
    with pytest.raises(WorkflowFailureError) as failed:
        async with asyncio.timeout(RUN_BUDGET_SECONDS):
            await handle.result()

    [call] = step_calls(stack, PLAN_STEP, asked)
    assert call.outcome == "401"
    assert keys.openai in json.dumps(call.answer)
    chain: list[BaseException] = []
    current: BaseException | None = failed.value
    while current is not None:
        chain.append(current)
        current = current.__cause__
    caller_sees = [text for err in chain for text in (str(err), repr(err))]
    assert any(f"Incorrect API key provided: {MASK}" in text for text in caller_sees)
    history = await history_text(handle)
    assert f"Incorrect API key provided: {MASK}" in history
    assert_nowhere(keys.openai, stack, history, *caller_sees)


async def test_a_day_of_retry_after_reaches_the_server_as_a_minute(
    client: Client, stack: ResearchStack
) -> None:
    """The capped delay is what the search worker hands Temporal as `next_retry_delay`."""
    await llm_pool_with_key(stack, stack.model.api_key)
    asked = question("a day-long Retry-After")
    [query] = distinct_queries(1, "day long retry after")
    stack.model.responder = scripted_steps({asked: [query]})
    stack.tavily.inject(Fault(status=429, retry_after=86400, match=search_for(query)))
    handle = await start_research(client, stack, {"question": asked, "max_searches": 1})
    try:

        async def rate_limited() -> bool:
            pending = await pending_activities(handle, WEB_SEARCH_ACTIVITY)
            return bool(pending) and pending[0].HasField("last_failure")

        await stack.wait_for(rate_limited, "the rate-limited search to wait for its retry")
        [pending] = await pending_activities(handle, WEB_SEARCH_ACTIVITY)
        info = pending.last_failure.application_failure_info
        assert info.type == errors.PROVIDER_RATE_LIMITED
        assert info.next_retry_delay.ToTimedelta() == MAX_RETRY_AFTER
        assert timedelta(seconds=86400) > MAX_RETRY_AFTER
        assert [c.outcome for c in search_calls(stack, query)] == ["429"]
    finally:
        await handle.terminate("the test has read the delay")


async def test_a_review_the_model_refuses_is_left_out(client: Client, stack: ResearchStack) -> None:
    """The model refuses the review (HTTP 400, which no retry fixes): the run still delivers
    its report, says the draft stands unreviewed, and asked for the review once."""
    await llm_pool_with_key(stack, stack.model.api_key)
    asked = question("a refused review")
    [query] = distinct_queries(1, "refused review")
    stack.model.responder = scripted_steps({asked: [query]})
    stack.model.inject(Fault(status=400, match=step_request(REVIEW_STEP, asked)))
    handle = await start_research(
        client, stack, {"question": asked, "max_searches": 1, "max_review_rounds": 2}
    )
    async with asyncio.timeout(RUN_BUDGET_SECONDS):
        report: ResearchReport = await handle.result()

    [warning] = report.warnings
    assert warning == (
        "review failed: OpenAI-compatible server 127.0.0.1 refused the request "
        "(OpenAI-compatible server 127.0.0.1 answered HTTP 400: injected); "
        "the draft stands unreviewed"
    )
    assert report.outcome.value == "completed" and not report.partial
    assert report.review == []
    assert report.report_markdown.endswith(f"## Steps left out\n\n- {warning}\n")
    assert [c.outcome for c in step_calls(stack, REVIEW_STEP, asked)] == ["400"]
