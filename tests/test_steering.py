"""People in the loop: clarifying answers and plan review as updates, pause, resume and
cancel as signals, on the real dev server with stub activities under the real names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from research_shared.models import (
    ClarificationState,
    Outcome,
    Phase,
    PlanReviewResult,
)
from research_shared.names import (
    ANSWER_UPDATE,
    CANCEL_SIGNAL,
    PAUSE_SIGNAL,
    RESUME_SIGNAL,
    REVIEW_PLAN_UPDATE,
)
from tests.helpers.workflow_stubs import Stubs, running_workers, start, status_of, wait_for


async def rejected(handle: WorkflowHandle[Any, Any], update: str, arg: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(update, arg)
    return str(failure.value.cause)


async def test_clarifications_one_at_a_time_then_all(client: Client, task_queue: str) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, clarify=True, max_clarifying_questions=3)
        status = await wait_for(handle, Phase.AWAITING_ANSWERS)
        assert [c.question for c in status.clarifications] == stubs.clarifying_questions
        assert status.questions_pending == [0, 1, 2]

        # Validators reject bad answers and leave the run untouched.
        assert "the answer is empty" in await rejected(
            handle, ANSWER_UPDATE, {"answers": [{"index": 0, "answer": "  "}]}
        )
        assert "there is no question 7" in await rejected(
            handle, ANSWER_UPDATE, {"answers": [{"index": 7, "answer": "x"}]}
        )
        assert "answers" in await rejected(handle, ANSWER_UPDATE, {"answer": "no list"})
        assert (await status_of(handle)).questions_pending == [0, 1, 2]

        state = await handle.execute_update(
            ANSWER_UPDATE,
            {"answers": [{"index": 1, "answer": "for a talk"}]},
            result_type=ClarificationState,
        )
        assert state.questions_pending == [0, 2]
        assert "already answered" in await rejected(
            handle, ANSWER_UPDATE, {"answers": [{"index": 1, "answer": "again"}]}
        )
        assert stubs.calls == ["triage", "clarify"]  # nothing planned while waiting

        await handle.execute_update(
            ANSWER_UPDATE,
            {"answers": [{"index": 0, "answer": "3.11"}, {"index": 2, "answer": "deep"}]},
        )
        report = await handle.result()
        # A finished run takes no more answers: the server refuses before any handler runs.
        with pytest.raises(RPCError, match="already completed"):
            await handle.execute_update(
                ANSWER_UPDATE, {"answers": [{"index": 0, "answer": "late"}]}
            )

    # The brief that planning and synthesis get is enriched by the answers.
    answers = [(c.question, c.answer) for c in stubs.seen_plan_inputs[0].clarifications]
    assert answers == [
        ("Which version?", "3.11"),
        ("For what use?", "for a talk"),
        ("How deep?", "deep"),
    ]
    assert stubs.seen_synthesis[0].clarifications == stubs.seen_plan_inputs[0].clarifications
    assert report.outcome is Outcome.COMPLETED
    assert [c.answer for c in report.clarifications] == ["3.11", "for a talk", "deep"]
    # triage, clarify, plan, reflect, synthesize, review; the answers reach the reflection.
    assert report.stats.llm_calls == 6
    assert stubs.seen_reflections[0].clarifications == stubs.seen_plan_inputs[0].clarifications


async def test_answer_rejected_when_no_question_pending(client: Client, task_queue: str) -> None:
    stubs = Stubs(gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue)  # clarify defaults to false
        await wait_for(handle, Phase.SEARCHING)
        assert "no clarifying question is pending" in await rejected(
            handle, ANSWER_UPDATE, {"answers": [{"index": 0, "answer": "x"}]}
        )
        assert stubs.gate is not None
        stubs.gate.set()
        report = await handle.result()
    assert "triage" not in stubs.calls and report.clarifications == []


async def test_clear_question_is_not_clarified(client: Client, task_queue: str) -> None:
    stubs = Stubs(needs_clarification=False)
    async with running_workers(client, task_queue, stubs):
        report = await (await start(client, task_queue, clarify=True)).result()
    assert stubs.calls[:2] == ["triage", "plan"]
    assert report.clarifications == []


async def test_unanswered_clarification_times_out_and_research_goes_on(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, clarify=True, clarification_timeout_seconds=1)
        report = await handle.result()
    assert report.outcome is Outcome.COMPLETED
    assert stubs.seen_plan_inputs[0].clarifications == []
    assert all(c.answer is None for c in report.clarifications)


async def test_plan_edit_is_validated_then_runs(client: Client, task_queue: str) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, approve_plan=True, max_searches=3)
        status = await wait_for(handle, Phase.AWAITING_APPROVAL)
        assert status.awaiting_approval and len(status.queries) == 3

        too_many = [{"query": f"q{n}"} for n in range(4)]
        assert "at most 3 queries" in await rejected(
            handle, REVIEW_PLAN_UPDATE, {"decision": "edit", "queries": too_many}
        )
        assert "repeats a query" in await rejected(
            handle,
            REVIEW_PLAN_UPDATE,
            {"decision": "edit", "queries": [{"query": "a"}, {"query": " A"}]},
        )
        assert "at least one query" in await rejected(
            handle, REVIEW_PLAN_UPDATE, {"decision": "edit", "queries": []}
        )
        assert "decision" in await rejected(handle, REVIEW_PLAN_UPDATE, {"decision": "maybe"})
        assert stubs.seen_search_inputs == []

        result = await handle.execute_update(
            REVIEW_PLAN_UPDATE,
            {
                "decision": "edit",
                "queries": [
                    {"query": "alpha", "reason": "kept"},
                    {"query": "delta rewritten", "reason": "mine"},
                ],
            },
            result_type=PlanReviewResult,
        )
        assert [q.query for q in result.queries] == ["alpha", "delta rewritten"]
        assert "no plan is waiting" in await rejected(
            handle, REVIEW_PLAN_UPDATE, {"decision": "approve"}
        )
        report = await handle.result()
    assert sorted(i.query for i in stubs.seen_search_inputs) == ["alpha", "delta rewritten"]
    assert [q.query for q in report.queries] == ["alpha", "delta rewritten"]


async def test_plan_rejected_ends_the_run(client: Client, task_queue: str) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, approve_plan=True)
        await wait_for(handle, Phase.AWAITING_APPROVAL)
        await handle.execute_update(
            REVIEW_PLAN_UPDATE, {"decision": "reject", "reason": "off topic"}
        )
        report = await handle.result()
    assert report.outcome is Outcome.PLAN_REJECTED
    assert "off topic" in report.outcome_reason
    assert stubs.seen_search_inputs == [] and "synthesize" not in stubs.calls


@pytest.mark.parametrize(("action", "outcome"), [("end", "ended"), ("approve", "approved")])
async def test_approval_timeout_does_what_the_setting_says(
    client: Client, task_queue: str, action: str, outcome: str
) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await start(
            client,
            task_queue,
            approve_plan=True,
            approval_timeout_seconds=1,
            on_approval_timeout=action,
        )
        report = await handle.result()
    if outcome == "ended":
        assert report.outcome is Outcome.APPROVAL_TIMED_OUT
        assert "within 1 seconds" in report.outcome_reason
        assert stubs.seen_search_inputs == []
    else:
        assert report.outcome is Outcome.COMPLETED
        assert len(stubs.seen_search_inputs) == 3


async def test_pause_stops_scheduling_and_resume_continues(client: Client, task_queue: str) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, approve_plan=True)
        await wait_for(handle, Phase.AWAITING_APPROVAL)
        await handle.signal(PAUSE_SIGNAL)
        await handle.execute_update(REVIEW_PLAN_UPDATE, {"decision": "approve"})
        status = await wait_for(handle, Phase.SEARCHING)
        assert status.paused
        # Paused: the approved searches wait instead of being scheduled.
        await asyncio.sleep(1.0)
        assert stubs.seen_search_inputs == []
        assert (await status_of(handle)).searches_running == 0
        await handle.signal(RESUME_SIGNAL)
        report = await handle.result()
    assert report.outcome is Outcome.COMPLETED
    assert report.stats.searches_succeeded == 3


async def test_cancel_returns_partial_report_and_reaches_activities(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs(gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue)
        status = await wait_for(handle, Phase.SEARCHING)
        async with asyncio.timeout(20):
            while (await status_of(handle)).searches_running < 3:
                await asyncio.sleep(0.05)
        await handle.signal(CANCEL_SIGNAL, {"reason": "enough for now"})
        report = await handle.result()
        # The cancellation reached each running search through its heartbeats.
        async with asyncio.timeout(20):
            while len(stubs.cancelled_searches) < 3:
                await asyncio.sleep(0.1)
        final = await status_of(handle)

    assert status.searches_planned == 3
    assert report.outcome is Outcome.CANCELLED and report.partial
    assert report.outcome_reason == "enough for now"
    assert "Partial report" in report.report_markdown
    assert report.stats.searches_cancelled == 3 and report.stats.searches_failed == 0
    assert {f.error_type for f in report.failed_searches} == {"Cancelled"}
    assert "synthesize" not in stubs.calls
    assert sorted(stubs.cancelled_searches) == ["alpha", "beta", "gamma"]
    assert final.phase is Phase.CANCELLED


async def test_cancel_while_waiting_for_approval(client: Client, task_queue: str) -> None:
    stubs = Stubs()
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue, approve_plan=True)
        await wait_for(handle, Phase.AWAITING_APPROVAL)
        await handle.signal(CANCEL_SIGNAL)
        report = await handle.result()
    assert report.outcome is Outcome.CANCELLED
    assert report.outcome_reason == "cancelled by request"
    assert stubs.seen_search_inputs == []


async def test_temporal_cancellation_also_returns_partial_report(
    client: Client, task_queue: str
) -> None:
    stubs = Stubs(gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        handle = await start(client, task_queue)
        await wait_for(handle, Phase.SEARCHING)
        await handle.cancel()
        report = await handle.result()
    assert report.outcome is Outcome.CANCELLED
    assert "cancelled through Temporal" in report.outcome_reason
