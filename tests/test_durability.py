"""Durability with real processes: workers killed mid-step, the Temporal server stopped
mid-run, a provider outage, a bug fixed while a run waits on it, and clarifying answers
sent while every worker is down.

Each test runs the three pools as processes on its own task queues, with the real Tavily and
OpenAI clients against counting fakes, so "no call was repeated" is the provider's count.
What is asserted is what must hold (the run completes, which calls happened how often, what
the history records); how long recovery took is printed, never asserted. Run with `-s` or
`-rP` to see the figures.

Recovery after a SIGKILL is bounded by the heartbeat timeouts in `research_shared.retry`
(web_search 10 s, plan and synthesize 15 s): the activities heartbeat every 2-3 s, so the
server notices a dead worker within that timeout, not the start-to-close timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from research_cli.embedded import free_port, start_dev_server, stop_process, wait_for_server
from research_shared.models import ClarificationState, Phase, ResearchReport, ResearchStatus
from research_shared.names import ANSWER_UPDATE, STATUS_QUERY
from tests.helpers.durability import (
    CLARIFY_STEP,
    PLAN_STEP,
    PLANNER_MODEL,
    REPORT_BODY,
    TRIAGE_STEP,
    WRITE_STEP,
    WRITER_MODEL,
    ResearchStack,
    activity_outcomes,
    completed_searches,
    distinct_queries,
    model_prompt,
    pending_activities,
    report_recovery,
    research_stack,
    scripted_steps,
    search_for,
    start_research,
    step_calls,
    update_events,
    update_stage,
    writer_request,
)
from tests.helpers.fakes.faultserver import Fault
from tests.helpers.processes import DevServer

pytestmark = pytest.mark.e2e

# A delay the killed worker can never wait out: the request stays in flight until the kill.
IN_FLIGHT_SECONDS = 30.0
# Bounds each test as a whole, so a hang fails instead of blocking CI.
TEST_BUDGET_SECONDS = 120.0
HEARTBEAT_TIMEOUT = "TIMEOUT_TYPE_HEARTBEAT"


def assert_complete(report: ResearchReport, stack: ResearchStack) -> None:
    """Every planned search succeeded and the writer's report came through."""
    assert [q.query for q in report.queries] == stack.queries
    assert report.stats.searches_succeeded == len(stack.queries)
    assert report.stats.searches_failed == 0 and not report.failed_searches
    assert REPORT_BODY in report.report_markdown
    assert report.sources


def delay_each(stack: ResearchStack, queries: list[str], seconds: float) -> None:
    """Hold the first request of each query for `seconds`; a retry is answered at once."""
    for query in queries:
        stack.tavily.inject(Fault(delay=seconds, match=search_for(query)))


async def test_search_worker_killed_with_searches_in_flight(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """Completed searches are not run again; the ones lost with the worker are retried."""
    queries = distinct_queries(6, "search worker crash")
    slow, fast = queries[:3], queries[3:]
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        delay_each(stack, slow, IN_FLIGHT_SECONDS)
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await stack.start_run(client, max_searches=len(queries))
            await stack.wait_for(
                lambda: set(slow) <= set(stack.tavily.queries_received()),
                "the slow searches to reach Tavily",
            )

            async def fast_ones_recorded() -> bool:
                return set(fast) <= await completed_searches(handle)

            await stack.wait_for(fast_ones_recorded, "the fast searches to be recorded")
            killed_at = await stack.kill("search")
            await stack.start_pools("search")
            report = await handle.result()
            report_recovery("search worker SIGKILL", time.monotonic() - killed_at)

        assert_complete(report, stack)
        assert stack.searched(fast) == dict.fromkeys(fast, 1)
        # Lost with the worker, so run again exactly once by the new one.
        assert stack.searched(slow) == dict.fromkeys(slow, 2)
        assert stack.model_calls(PLANNER_MODEL) == 1
        assert stack.model_calls(WRITER_MODEL) == 1

    outcomes = {o.query: o for o in activity_outcomes(await handle.fetch_history())}
    for query in fast:
        assert outcomes[query].attempt == 1
    for query in slow:
        assert outcomes[query].attempt == 2
        assert outcomes[query].last_failure.startswith(HEARTBEAT_TIMEOUT)


async def test_llm_worker_killed_during_synthesize(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """The plan is not asked for again; only the lost writer call is repeated."""
    queries = distinct_queries(3, "llm worker crash")
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        stack.model.inject(Fault(delay=IN_FLIGHT_SECONDS, match=writer_request))
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await stack.start_run(client, max_searches=len(queries))
            await stack.wait_for_writer()
            killed_at = await stack.kill("llm")
            await stack.start_pools("llm")
            report = await handle.result()
            report_recovery("llm worker SIGKILL during synthesize", time.monotonic() - killed_at)

        assert_complete(report, stack)
        assert stack.model_calls(PLANNER_MODEL) == 1
        assert stack.model_calls(WRITER_MODEL) == 2
        assert stack.search_counts() == Counter(dict.fromkeys(queries, 1))

    by_name = {o.name: o for o in activity_outcomes(await handle.fetch_history())}
    assert by_name["plan"].attempt == 1
    assert by_name["synthesize"].attempt == 2
    assert by_name["synthesize"].last_failure.startswith(HEARTBEAT_TIMEOUT)


async def test_orchestrator_killed_while_searches_run(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """A new orchestrator replays the history: no search and no model call is repeated."""
    queries = distinct_queries(5, "orchestrator crash")
    with research_stack(
        dev_server.address, tmp_path / "logs", queries, api="chat_completions"
    ) as stack:
        delay_each(stack, queries, 3.0)
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await stack.start_run(client, max_searches=len(queries))
            await stack.wait_for(
                lambda: set(queries) <= set(stack.tavily.queries_received()),
                "the searches to reach Tavily",
            )
            killed_at = await stack.kill("orchestrator")

            # The searches finish while no orchestrator is alive; the server keeps results.
            async def all_recorded() -> bool:
                return set(queries) <= await completed_searches(handle)

            await stack.wait_for(all_recorded, "the searches to be recorded")
            restarted_at = time.monotonic()
            await stack.start_pools("orchestrator")
            report = await handle.result()
            done = time.monotonic()
            report_recovery("orchestrator SIGKILL, kill to completion", done - killed_at)
            report_recovery("orchestrator SIGKILL, restart to completion", done - restarted_at)

        assert_complete(report, stack)
        assert stack.search_counts() == Counter(dict.fromkeys(queries, 1))
        assert stack.model_calls(PLANNER_MODEL) == 1
        assert stack.model_calls(WRITER_MODEL) == 1

    # Each step scheduled once and done at its first attempt: the new orchestrator replayed
    # the history instead of scheduling anything again.
    outcomes = activity_outcomes(await handle.fetch_history())
    assert Counter(o.name for o in outcomes) == Counter(
        {"plan": 1, "web_search": len(queries), "synthesize": 1, "record_audit": 1}
    )
    assert all(o.completed and o.attempt == 1 for o in outcomes)


async def test_temporal_server_restarted_mid_run(tmp_path: Path) -> None:
    """The server stops and comes back on the same SQLite file and port; the same worker
    processes reconnect by themselves and the run completes."""
    folder = tmp_path / "temporal"
    server = DevServer(db_file=folder / "temporal.db", port=free_port(), log_file=folder / "log")
    server.process = start_dev_server(server.db_file, server.port, log_file=server.log_file)
    try:
        own_client = await wait_for_server(server.address, process=server.process)
        queries = distinct_queries(4, "server outage")
        with research_stack(server.address, tmp_path / "logs", queries) as stack:
            delay_each(stack, queries, 3.0)
            await stack.start_pools("orchestrator", "search", "llm")
            pids = {pool: proc.pid for pool, proc in stack.workers.procs.items()}
            async with asyncio.timeout(TEST_BUDGET_SECONDS):
                handle = await stack.start_run(own_client, max_searches=len(queries))
                await stack.wait_for(
                    lambda: set(queries) <= set(stack.tavily.queries_received()),
                    "the searches to reach Tavily",
                )
                stopped_at = time.monotonic()
                await asyncio.to_thread(stop_process, server.process, 15.0)
                # Stay down until the held searches have answered, so their results meet
                # the outage instead of slipping in before it.
                answered_at = max(c.at for c in stack.tavily.calls_to("/search")) + 3.0
                await asyncio.sleep(max(0.0, answered_at - time.monotonic()) + 1.0)

                server.process = start_dev_server(
                    server.db_file, server.port, log_file=server.log_file
                )
                restarted_at = time.monotonic()
                await wait_for_server(server.address, process=server.process)
                report = await handle.result()
                done = time.monotonic()
                report_recovery("server stop, stop to completion", done - stopped_at)
                report_recovery("server stop, restart to completion", done - restarted_at)

            assert_complete(report, stack)
            # The workers that finish the run are the ones that lived through the outage.
            assert {pool: proc.pid for pool, proc in stack.workers.procs.items()} == pids
            assert all(proc.poll() is None for proc in stack.workers.procs.values())
            counts = stack.search_counts()
            assert set(counts) == set(queries)
            # A result that could not be reported during the outage is searched again.
            assert max(counts.values()) <= 2
            assert stack.model_calls(PLANNER_MODEL) == 1
            assert stack.model_calls(WRITER_MODEL) == 1
    finally:
        if server.process is not None:
            stop_process(server.process, timeout=15)


async def test_provider_outage_retries_only_the_failing_searches(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """Three of ten searches meet 503s or dropped connections twice; only they are retried."""
    queries = distinct_queries(10, "network outage")
    unavailable, dropped = queries[:2], queries[2]
    failing = [*unavailable, dropped]
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        for query in unavailable:
            stack.tavily.inject(Fault(status=503, times=2, match=search_for(query)))
        stack.tavily.inject(Fault(drop=True, times=2, match=search_for(dropped)))
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await stack.start_run(client, max_searches=10)
            report = await handle.result()

        assert_complete(report, stack)
        assert report.stats.searches_succeeded == 10
        assert stack.searched(failing) == dict.fromkeys(failing, 3)
        healthy = [q for q in queries if q not in failing]
        assert stack.searched(healthy) == dict.fromkeys(healthy, 1)
        assert stack.model_calls(PLANNER_MODEL) == 1
        assert stack.model_calls(WRITER_MODEL) == 1

    outcomes = {o.query: o for o in activity_outcomes(await handle.fetch_history())}
    for query in failing:
        assert outcomes[query].attempt == 3
        assert outcomes[query].last_failure.startswith("ProviderUnavailable: Tavily")
    assert "HTTP 503" in outcomes[unavailable[0]].last_failure
    assert all(outcomes[q].attempt == 1 for q in healthy)


async def test_bug_fixed_while_the_run_waits(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """A `web_search` that always raises keeps retrying; once a fixed worker replaces the
    buggy one, the same run completes without being restarted."""
    queries = distinct_queries(3, "fixed in flight")
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        await stack.start_pools("orchestrator", "llm")
        await stack.start_module("buggy-search", "tests.helpers.buggy_search_worker")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await stack.start_run(client, max_searches=len(queries))
            run_id = handle.result_run_id

            # Attempt n+1 pending means n attempts failed. With backoffs of 1, 2, 4, 8 s and
            # six attempts, waiting for two failures leaves four attempts for the fix.
            async def failed_twice() -> bool:
                pending = await pending_activities(handle, "web_search")
                return len(pending) == len(queries) and all(
                    p.attempt >= 3 and p.HasField("last_failure") for p in pending
                )

            await stack.wait_for(failed_twice, "two failed attempts of every search")
            for pending in await pending_activities(handle, "web_search"):
                assert pending.last_failure.application_failure_info.type == "KeyError"
                assert "provider" in pending.last_failure.message
            # The bug is in our code: the provider was never asked.
            assert stack.search_counts() == Counter()

            await stack.stop("buggy-search")
            fixed_at = time.monotonic()
            await stack.start_pools("search")
            report = await handle.result(follow_runs=False)
            report_recovery("fixed worker deployed, to completion", time.monotonic() - fixed_at)

        assert_complete(report, stack)
        assert stack.search_counts() == Counter(dict.fromkeys(queries, 1))
        assert stack.model_calls(PLANNER_MODEL) == 1
        assert stack.model_calls(WRITER_MODEL) == 1

    description = await handle.describe()
    assert description.run_id == run_id
    assert description.status == WorkflowExecutionStatus.COMPLETED
    searches = [
        o for o in activity_outcomes(await handle.fetch_history()) if o.name == "web_search"
    ]
    assert len(searches) == len(queries)
    for outcome in searches:
        assert outcome.completed and outcome.attempt >= 3
        assert outcome.last_failure.startswith("KeyError")


async def test_answers_sent_while_every_worker_is_down(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """A run waits for clarifying answers; every pool is killed; the answers are sent while
    nothing runs. The server holds the update until a workflow worker is back to validate
    it, then the run goes on with the answers, asking the model nothing twice."""
    asked = "Which failures must a durable research run survive?"
    clarifying = ["Which kind of crash matters most?", "How long may recovery take?"]
    answers = ["A worker killed in the middle of a step.", "Under a minute."]
    answered = list(zip(clarifying, answers, strict=True))
    queries = distinct_queries(2, "answered while down")
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        stack.model.responder = scripted_steps({asked: queries}, clarifying)
        await stack.start_pools("orchestrator", "search", "llm")
        async with asyncio.timeout(TEST_BUDGET_SECONDS):
            handle = await start_research(
                client,
                stack,
                {"question": asked, "max_searches": len(queries), "clarify": True},
            )

            async def awaiting_answers() -> bool:
                status = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
                return status.phase is Phase.AWAITING_ANSWERS

            await stack.wait_for(awaiting_answers, "the run to ask its questions")
            status = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
            assert [c.question for c in status.clarifications] == clarifying
            assert status.questions_pending == [0, 1]

            for pool in ("orchestrator", "search", "llm"):
                await stack.kill(pool)
            killed_at = time.monotonic()
            update_id = f"answers-{uuid.uuid4().hex[:8]}"
            # The call returns only once a worker has run the update, so it runs as a task.
            answering = asyncio.create_task(
                handle.execute_update(
                    ANSWER_UPDATE,
                    {"answers": [{"index": i, "answer": a} for i, a in enumerate(answers)]},
                    id=update_id,
                    result_type=ClarificationState,
                )
            )

            async def held_by_the_server() -> bool:
                return await update_stage(client, handle, update_id) == "admitted"

            await stack.wait_for(held_by_the_server, "the server to admit the answers")
            # Admitted, not accepted: no validator has run, so the history has no trace.
            assert not answering.done()
            assert not update_events(await handle.fetch_history())

            restarted_at = time.monotonic()
            await stack.start_pools("orchestrator", "search", "llm")
            state = await answering
            report = await handle.result()
            done = time.monotonic()
            report_recovery(
                "every pool SIGKILLed, answers sent, kill to completion", done - killed_at
            )
            report_recovery("every pool SIGKILLed, restart to completion", done - restarted_at)

        assert state.questions_pending == []
        assert [(c.question, c.answer) for c in state.clarifications] == answered
        assert_complete(report, stack)
        assert [(c.question, c.answer) for c in report.clarifications] == answered
        plans = step_calls(stack, PLAN_STEP, asked)
        assert len(plans) == 1
        assert model_prompt(plans[0].body)["clarifications"] == [
            {"question": q, "answer": a} for q, a in answered
        ]
        # Triage and clarify finished before the kill: the new workers took their results
        # from the history instead of asking the model again.
        assert len(step_calls(stack, TRIAGE_STEP, asked)) == 1
        assert len(step_calls(stack, CLARIFY_STEP, asked)) == 1
        assert len(step_calls(stack, WRITE_STEP, asked)) == 1
        assert stack.search_counts() == Counter(dict.fromkeys(queries, 1))

    history = await handle.fetch_history()
    assert update_events(history) == Counter(accepted=1, completed=1)
    outcomes = activity_outcomes(history)
    assert [o.name for o in outcomes[:3]] == ["triage", "clarify", "plan"]
    assert all(o.completed and o.attempt == 1 for o in outcomes)
