"""The retry taxonomy end to end: each kind of provider failure, met by the real clients in
the real worker processes, is retried (or not) by Temporal as `research_shared.errors` says.

One stack (three worker pools on their own queues, a fake Tavily and a fake OpenAI) serves
the whole module; each test plans its own queries and asks its own question, so the fakes'
counts for one test are never another test's. Faults on the search side hit POST /search
only, and what is counted there is /search requests per query: how a search is carried
out after /search answers is no business of the retry policy.

What is asserted is the protocol: how many requests the provider saw, the error types the
history and the report record, and lower bounds on the wait before a retry (Retry-After,
the preset's backoff). The upper bound of any wait is never asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from research_shared import errors, retry
from research_shared.models import ResearchReport
from tests.helpers.durability import (
    PLAN_STEP,
    REPORT_BODY,
    WRITE_STEP,
    ResearchStack,
    activity_outcomes,
    distinct_queries,
    research_stack,
    scripted_steps,
    search_calls,
    search_for,
    start_research,
    step_calls,
    step_request,
)
from tests.helpers.fakes.faultserver import Call, Fault
from tests.helpers.fakes.openai_server import error_body
from tests.helpers.processes import DevServer

pytestmark = pytest.mark.e2e

RETRY_AFTER_SECONDS = 3.0
# Short client timeouts, so a held request times out in the client within a test's budget;
# a held request is held for twice as long, so it is the client that gives up.
CLIENT_TIMEOUT_SECONDS = 1.5
HELD_SECONDS = 2 * CLIENT_TIMEOUT_SECONDS
RUN_BUDGET_SECONDS = 60.0
# The fakes call themselves by these names; error messages must say which provider failed.
TAVILY = "Tavily"
MODEL_PROVIDER = "OpenAI-compatible server 127.0.0.1"


def tavily_error(message: str) -> dict[str, Any]:
    """Tavily's error document, which tavily-python reads into its exceptions."""
    return {"detail": {"error": message}}


def openai_rate_limit() -> dict[str, Any]:
    return error_body(
        "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. "
        "Please try again in 3s.",
        "requests",
        "rate_limit_exceeded",
    )


@pytest.fixture(scope="module")
def shared_stack(
    dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ResearchStack]:
    """One stack for the module: starting three pools per test would dominate its time."""
    log_dir = tmp_path_factory.mktemp("retry-taxonomy-logs")
    with research_stack(dev_server.address, log_dir, queries=[]) as stack:
        stack.workers.env.update(
            {
                "RESEARCH_TAVILY_TIMEOUT_SECONDS": f"{CLIENT_TIMEOUT_SECONDS:g}",
                "RESEARCH_OPENAI_TIMEOUT_SECONDS": f"{CLIENT_TIMEOUT_SECONDS:g}",
            }
        )
        stack.workers.start("orchestrator", "search", "llm")
        yield stack


@pytest.fixture
def stack(shared_stack: ResearchStack) -> Iterator[ResearchStack]:
    """The shared stack, with no fault left over from another test."""
    shared_stack.tavily.clear_faults()
    shared_stack.model.clear_faults()
    yield shared_stack
    shared_stack.tavily.clear_faults()
    shared_stack.model.clear_faults()


def script_plans(stack: ResearchStack, runs: dict[str, list[str]]) -> None:
    """Script the model: the run asking each question plans that question's queries."""
    stack.model.responder = scripted_steps(runs)


async def run(
    client: Client, stack: ResearchStack, question: str, queries: list[str]
) -> tuple[WorkflowHandle[Any, Any], ResearchReport]:
    handle = await start_research(
        client, stack, {"question": question, "max_searches": len(queries)}
    )
    async with asyncio.timeout(RUN_BUDGET_SECONDS):
        report = await handle.result()
    return handle, report


def question(topic: str) -> str:
    """A question no other run of the session asks."""
    return f"How does {topic} behave? ({uuid.uuid4().hex[:8]})"


def outcomes(calls: list[Call]) -> list[str]:
    """How the provider answered each request: `ok`, a status, or `dropped`."""
    return [c.outcome for c in calls]


def gaps(calls: list[Call]) -> list[float]:
    """Seconds between consecutive requests, as the provider saw them arrive."""
    return [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]


def backoff(preset: retry.ActivityPreset, retries: int) -> list[float]:
    """The preset's waits before retries 1..`retries`: the least the provider may see."""
    policy = preset.retry
    assert policy.initial_interval is not None
    waits = []
    interval = policy.initial_interval
    for _ in range(retries):
        capped = min(interval, policy.maximum_interval or interval)
        waits.append(capped.total_seconds())
        interval = timedelta(seconds=interval.total_seconds() * policy.backoff_coefficient)
    return waits


def failure_cause(err: WorkflowFailureError) -> ApplicationError:
    """The run's own error: it names the step that failed and carries the provider's cause."""
    cause = err.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


def assert_all_searched(report: ResearchReport, queries: list[str]) -> None:
    assert [q.query for q in report.queries] == queries
    assert report.stats.searches_succeeded == len(queries)
    assert not report.failed_searches
    assert REPORT_BODY in report.report_markdown


# -- rate limits: retried, never sooner than Retry-After -----------------------------------


async def test_search_rate_limit_waits_for_retry_after(
    client: Client, stack: ResearchStack
) -> None:
    """A 429 with Retry-After: the search is asked again, no sooner than it says."""
    # Otherwise the preset's own backoff would satisfy the bound below by itself.
    assert backoff(retry.WEB_SEARCH, 1)[0] < RETRY_AFTER_SECONDS
    asked = question("a rate-limited search")
    queries = distinct_queries(3, "search rate limit")
    limited = queries[0]
    script_plans(stack, {asked: queries})
    stack.tavily.inject(
        Fault(
            status=429,
            retry_after=RETRY_AFTER_SECONDS,
            body=tavily_error("Your request has been blocked due to excessive requests."),
            match=search_for(limited),
        )
    )
    handle, report = await run(client, stack, asked, queries)

    assert_all_searched(report, queries)
    calls = search_calls(stack, limited)
    assert outcomes(calls) == ["429", "ok"]
    assert gaps(calls)[0] >= RETRY_AFTER_SECONDS
    for query in queries[1:]:
        assert outcomes(search_calls(stack, query)) == ["ok"]
    searched = {o.query: o for o in activity_outcomes(await handle.fetch_history())}
    assert searched[limited].attempt == 2
    assert searched[limited].last_failure.startswith(f"{errors.PROVIDER_RATE_LIMITED}: {TAVILY}")


async def test_model_rate_limit_waits_for_retry_after(client: Client, stack: ResearchStack) -> None:
    """A 429 with Retry-After to the planner: the plan is asked again, no sooner than it says."""
    assert backoff(retry.PLAN, 1)[0] < RETRY_AFTER_SECONDS
    asked = question("a rate-limited planner")
    queries = distinct_queries(2, "model rate limit")
    script_plans(stack, {asked: queries})
    stack.model.inject(
        Fault(
            status=429,
            retry_after=RETRY_AFTER_SECONDS,
            body=openai_rate_limit(),
            match=step_request(PLAN_STEP, asked),
        )
    )
    handle, report = await run(client, stack, asked, queries)

    assert_all_searched(report, queries)
    calls = step_calls(stack, PLAN_STEP, asked)
    assert outcomes(calls) == ["429", "ok"]
    assert gaps(calls)[0] >= RETRY_AFTER_SECONDS
    by_name = {o.name: o for o in activity_outcomes(await handle.fetch_history())}
    assert by_name["plan"].attempt == 2
    assert by_name["plan"].last_failure.startswith(
        f"{errors.PROVIDER_RATE_LIMITED}: {MODEL_PROVIDER}"
    )
    assert "rate_limit_exceeded" in by_name["plan"].last_failure


# -- 5xx, timeouts, dropped connections: retried with backoff -----------------------------


async def test_transient_failures_are_retried_with_backoff(
    client: Client, stack: ResearchStack
) -> None:
    """Two runs at once, so the waits overlap: one meets every transient failure on the
    search side and a 502 and a timeout on the model side, the other a dropped connection
    to the planner."""
    first, second = question("a flaky provider"), question("a dropped planner connection")
    queries = distinct_queries(4, "transient failure")
    unavailable, held, dropped, healthy = queries
    other_queries = distinct_queries(1, "after a dropped planner connection")
    script_plans(stack, {first: queries, second: other_queries})
    stack.tavily.inject(Fault(status=502, times=2, match=search_for(unavailable)))
    stack.tavily.inject(Fault(delay=HELD_SECONDS, match=search_for(held)))
    stack.tavily.inject(Fault(drop=True, times=2, match=search_for(dropped)))
    stack.model.inject(Fault(status=502, match=step_request(PLAN_STEP, first)))
    stack.model.inject(Fault(delay=HELD_SECONDS, match=step_request(WRITE_STEP, first)))
    stack.model.inject(Fault(drop=True, match=step_request(PLAN_STEP, second)))

    (handle, report), (other, other_report) = await asyncio.gather(
        run(client, stack, first, queries), run(client, stack, second, other_queries)
    )

    assert_all_searched(report, queries)
    assert_all_searched(other_report, other_queries)
    expected = {unavailable: 3, held: 2, dropped: 3, healthy: 1}
    for query, attempts in expected.items():
        calls = search_calls(stack, query)
        assert len(calls) == attempts, (query, outcomes(calls))
        assert calls[-1].outcome == "ok"
        for gap, least in zip(gaps(calls), backoff(retry.WEB_SEARCH, attempts - 1), strict=True):
            assert gap >= least, (query, gaps(calls))
    assert outcomes(search_calls(stack, dropped)) == ["dropped", "dropped", "ok"]

    model_expected = [
        (PLAN_STEP, first, retry.PLAN),
        (WRITE_STEP, first, retry.SYNTHESIZE),
        (PLAN_STEP, second, retry.PLAN),
    ]
    for step, asked, preset in model_expected:
        calls = step_calls(stack, step, asked)
        assert len(calls) == 2, (step, asked, outcomes(calls))
        assert gaps(calls)[0] >= backoff(preset, 1)[0]
    assert outcomes(step_calls(stack, PLAN_STEP, first))[0] == "502"
    assert outcomes(step_calls(stack, PLAN_STEP, second))[0] == "dropped"

    searched = {o.query: o for o in activity_outcomes(await handle.fetch_history())}
    for query, attempts in expected.items():
        assert searched[query].attempt == attempts
    for query in (unavailable, held, dropped):
        assert searched[query].last_failure.startswith(f"{errors.PROVIDER_UNAVAILABLE}: {TAVILY}")
    assert "HTTP 502" in searched[unavailable].last_failure
    by_name = {o.name: o for o in activity_outcomes(await handle.fetch_history())}
    for step in ("plan", "synthesize"):
        assert by_name[step].attempt == 2
        assert by_name[step].last_failure.startswith(
            f"{errors.PROVIDER_UNAVAILABLE}: {MODEL_PROVIDER}"
        )
    assert "timed out" in by_name["synthesize"].last_failure
    other_plan = next(o for o in activity_outcomes(await other.fetch_history()) if o.name == "plan")
    assert other_plan.attempt == 2
    assert other_plan.last_failure.startswith(f"{errors.PROVIDER_UNAVAILABLE}: {MODEL_PROVIDER}")


# -- refusals: not retried -----------------------------------------------------------------


async def test_search_refusals_are_not_retried(client: Client, stack: ResearchStack) -> None:
    """A refused search is asked once, recorded with its cause, and the run goes on."""
    asked = question("refused searches")
    queries = distinct_queries(4, "search refusal")
    refused_key, malformed, over_quota, healthy = queries
    refusals = {
        refused_key: (401, "Unauthorized: missing or invalid API key.", errors.PROVIDER_AUTH),
        malformed: (400, "Invalid search_depth.", errors.PROVIDER_BAD_REQUEST),
        over_quota: (
            432,
            "This request exceeds your plan's set usage limit. Please upgrade your plan.",
            errors.PROVIDER_QUOTA,
        ),
    }
    script_plans(stack, {asked: queries})
    for query, (status, message, _) in refusals.items():
        stack.tavily.inject(
            Fault(status=status, body=tavily_error(message), match=search_for(query))
        )
    handle, report = await run(client, stack, asked, queries)

    for query, (status, _, _) in refusals.items():
        assert outcomes(search_calls(stack, query)) == [str(status)]
    assert outcomes(search_calls(stack, healthy)) == ["ok"]
    assert report.stats.searches_succeeded == 1
    assert report.stats.searches_failed == len(refusals)
    assert REPORT_BODY in report.report_markdown
    failed = {f.query: f for f in report.failed_searches}
    assert set(failed) == set(refusals)
    for query, (status, _, error_type) in refusals.items():
        assert failed[query].error_type == error_type
        assert TAVILY in failed[query].message
        assert f"HTTP {status}" in failed[query].message
        assert stack.tavily.api_key not in failed[query].message
    assert "credentials" in failed[refused_key].message
    assert "quota" in failed[over_quota].message
    searched = {o.query: o for o in activity_outcomes(await handle.fetch_history())}
    assert all(searched[q].attempt == 1 for q in queries)


async def test_model_refusals_fail_the_run(client: Client, stack: ResearchStack) -> None:
    """Without a plan there is no research: a refused planner call fails the run at once,
    with the provider and the cause in the error, after one request."""
    refused_key, over_quota = question("a revoked model key"), question("a model out of quota")
    script_plans(stack, {refused_key: ["unused"], over_quota: ["unused"]})
    stack.model.inject(
        Fault(
            status=401,
            body=error_body(
                "Incorrect API key provided: sk-tes*****-key.",
                "invalid_request_error",
                "invalid_api_key",
            ),
            match=step_request(PLAN_STEP, refused_key),
        )
    )
    stack.model.inject(
        Fault(
            status=429,
            body=error_body(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
            match=step_request(PLAN_STEP, over_quota),
        )
    )
    expected = {refused_key: errors.PROVIDER_AUTH, over_quota: errors.PROVIDER_QUOTA}
    handles = {
        asked: await start_research(client, stack, {"question": asked, "max_searches": 1})
        for asked in expected
    }

    causes: dict[str, ApplicationError] = {}
    for asked, error_type in expected.items():
        with pytest.raises(WorkflowFailureError) as failed:
            async with asyncio.timeout(RUN_BUDGET_SECONDS):
                await handles[asked].result()
        cause = causes[asked] = failure_cause(failed.value)
        assert cause.type == error_type
        assert cause.non_retryable
        assert cause.message.startswith(f"plan failed: {MODEL_PROVIDER}")
        assert stack.model.api_key not in cause.message
        assert not step_calls(stack, WRITE_STEP, asked)
        history = activity_outcomes(await handles[asked].fetch_history())
        assert [(o.name, o.attempt, o.completed) for o in history] == [("plan", 1, False)]
    assert outcomes(step_calls(stack, PLAN_STEP, refused_key)) == ["401"]
    assert outcomes(step_calls(stack, PLAN_STEP, over_quota)) == ["429"]
    auth, quota = causes[refused_key], causes[over_quota]
    assert "rejected the credentials" in auth.message and "check the API key" in auth.message
    # The masked key the provider echoed reaches the history nowhere, not even in a cause.
    assert "sk-" not in auth.message
    assert auth.cause is None, auth.cause
    assert "quota is exhausted" in quota.message and "insufficient_quota" in quota.message
