"""At the door: input that cannot be decoded or validated fails the run at once, or is refused,
with one line and a clear type, whatever sends it.

Everything here is sent through the plain `temporal` CLI, as a caller in another language
would, to the real workflow (sandbox on, no cache) with stub activities under the real names.
A run that cannot read its input must fail at once: before these checks, a lone surrogate
made the workflow task fail on every attempt and the run stay RUNNING forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import uuid
from collections.abc import Awaitable
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from research_shared import errors
from research_shared.models import MAX_QUERY_CHARS, Outcome, Phase, ResearchReport, ResearchStatus
from research_shared.names import (
    ANSWER_UPDATE,
    CANCEL_SIGNAL,
    EDIT_SEARCHES_UPDATE,
    FINISH_NOW_SIGNAL,
    REVIEW_PLAN_UPDATE,
    REVIEW_REPORT_UPDATE,
    WORKFLOW_TYPE,
)
from tests.helpers.processes import DevServer
from tests.helpers.temporal_cli import (
    readme_command,
    run_readme_command,
    start_with_cli,
    temporal_cli,
)
from tests.helpers.workflow_stubs import Stubs, running_workers, status_of, wait_for


async def failure_of(client: Client, workflow_id: str) -> ApplicationError:
    handle = client.get_workflow_handle(workflow_id)
    # A wedged run never ends: give up well before the test's own timeout.
    with pytest.raises(WorkflowFailureError) as failed:
        async with asyncio.timeout(30):
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    events = [e.event_type async for e in handle.fetch_history_events()]
    # Failed at once: no activity scheduled, no workflow task failing over and over.
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
    return cause


@pytest.mark.parametrize(
    ("input_args", "expected"),
    [
        (
            ["--input", '{"question": "asyncio \\ud800 threads"}'],
            "question: the question holds U+D800, a lone surrogate",
        ),
        (
            ["--input", '{"question": "asyncio threads", "max_searches": "5"}'],
            "max_searches: Input should be a valid integer",
        ),
        (
            ["--input", '{"question": "asyncio threads", "clarify": "yes"}'],
            "clarify: Input should be a valid boolean",
        ),
        (
            ["--input", '{"question": "asyncio\\u0000 threads"}'],
            "the question holds the control character U+0000 at position 7",
        ),
        (
            ["--input", '{"question": "asyncio \\u001b[31m threads"}'],
            "the question holds the control character U+001B",
        ),
        (
            ["--input", '{"question": "asyncio", "\\ud800": 1}'],
            "invalid research request: input:",
        ),
        (
            ["--input", '["asyncio threads"]'],
            "expected a JSON object, got list",
        ),
        (
            ["--input", "not json at all", "--input-meta", "encoding=application/x-custom"],
            "its encoding 'application/x-custom' is not supported",
        ),
    ],
)
async def test_bad_start_input_fails_the_run_at_once(
    client: Client,
    dev_server: DevServer,
    task_queue: str,
    input_args: list[str],
    expected: str,
) -> None:
    async with running_workers(client, task_queue, Stubs()):
        workflow_id = await start_with_cli(dev_server, task_queue, *input_args)
        failure = await failure_of(client, workflow_id)
    assert failure.type == errors.INVALID_REQUEST
    assert failure.non_retryable
    assert failure.message.startswith("invalid research request: ")
    assert expected in failure.message
    assert "\n" not in failure.message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"question": "asyncio \xff threads"}', "it is not JSON ('utf-8' codec can't decode"),
        (b'{"question": "asyncio', "it is not JSON (Unterminated string"),
    ],
)
async def test_payload_that_is_not_json_fails_the_run_at_once(
    client: Client, task_queue: str, data: bytes, expected: str
) -> None:
    """The `temporal` CLI refuses to send JSON that is not valid; an SDK sends what it is
    given, so these payloads go out raw through the Python client."""
    payload = Payload(metadata={"encoding": b"json/plain"}, data=data)
    async with running_workers(client, task_queue, Stubs()):
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            RawValue(payload),
            id=f"door-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        failure = await failure_of(client, handle.id)
    assert failure.type == errors.INVALID_REQUEST
    assert "invalid research request: the input cannot be decoded: " in failure.message
    assert expected in failure.message


async def test_valid_text_with_newlines_and_tabs_is_accepted(
    client: Client, dev_server: DevServer, task_queue: str
) -> None:
    question = {"question": "asyncio\tthreads\nfor I/O-bound work"}
    async with running_workers(client, task_queue, Stubs()):
        workflow_id = await start_with_cli(dev_server, task_queue, "--input", json.dumps(question))
        result = await client.get_workflow_handle(workflow_id).result()
    assert result["question"] == question["question"]


async def waiting_for_its_plan(
    client: Client, server: DevServer, queue: str
) -> tuple[WorkflowHandle[Any, Any], ResearchStatus]:
    """A run started with the `temporal` CLI, waiting for its plan to be reviewed."""
    workflow_id = await start_with_cli(
        server,
        queue,
        "--input",
        json.dumps({"question": "What is x?", "approve_plan": True, "max_searches": 2}),
    )
    handle = client.get_workflow_handle(workflow_id)
    return handle, await wait_for(handle, Phase.AWAITING_APPROVAL)


async def update_with_cli(
    server: DevServer, workflow_id: str, name: str, *input_args: str
) -> subprocess.CompletedProcess[str]:
    return await temporal_cli(
        server,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        workflow_id,
        "--name",
        name,
        *input_args,
    )


def refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The one line the CLI prints for a refused update."""
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("name", "arg", "error_type", "expected"),
    [
        (
            REVIEW_PLAN_UPDATE,
            {"decision": "approve", "surprise": True},
            errors.INVALID_REQUEST,
            "surprise: Extra inputs are not permitted",
        ),
        (
            REVIEW_PLAN_UPDATE,
            {"decision": "edit", "queries": [{"query": "asyncio\u0000"}]},
            errors.INVALID_REQUEST,
            "queries.0.query: the query holds the control character U+0000",
        ),
        (
            REVIEW_PLAN_UPDATE,
            {"decision": "edit", "queries": [{"query": "x" * (MAX_QUERY_CHARS + 1)}]},
            errors.INVALID_REQUEST,
            f"the query has {MAX_QUERY_CHARS + 1} characters; the limit is {MAX_QUERY_CHARS}",
        ),
        (
            REVIEW_PLAN_UPDATE,
            {"decision": "maybe"},
            errors.INVALID_REQUEST,
            "decision: Input should be 'approve', 'edit' or 'reject'",
        ),
        (
            REVIEW_PLAN_UPDATE,
            {"decision": "edit", "queries": [{"query": "a"}, {"query": "b"}, {"query": "c"}]},
            errors.UPDATE_REFUSED,
            "an edited plan may hold at most 2 queries (max_searches); got 3",
        ),
        (
            ANSWER_UPDATE,
            {"answers": [{"index": 0, "answer": "Python 3.11"}]},
            errors.UPDATE_REFUSED,
            "no clarifying question is pending",
        ),
        (
            ANSWER_UPDATE,
            {"answers": [{"index": "0", "answer": "Python 3.11"}]},
            errors.INVALID_REQUEST,
            "answers.0.index: Input should be a valid integer",
        ),
        (
            ANSWER_UPDATE,
            {"answers": [{"index": 0, "answer": "Python \ud800"}]},
            errors.INVALID_REQUEST,
            "the answer holds U+D800, a lone surrogate",
        ),
    ],
)
async def test_bad_update_is_refused_and_changes_nothing(
    client: Client,
    dev_server: DevServer,
    task_queue: str,
    name: str,
    arg: Any,
    error_type: str,
    expected: str,
) -> None:
    async with running_workers(client, task_queue, Stubs()):
        handle, before = await waiting_for_its_plan(client, dev_server, task_queue)
        workflow_id = handle.id

        line = refusal(
            await update_with_cli(dev_server, workflow_id, name, "--input", json.dumps(arg))
        )
        assert expected in line
        assert f"(type: {error_type}, retryable: false)" in line

        after = await status_of(handle)
        assert after.phase is Phase.AWAITING_APPROVAL
        assert after.queries == before.queries
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        await handle.terminate("test done")


async def assert_undecodable_is_refused(
    handle: WorkflowHandle[Any, Any], update: str, data: bytes
) -> None:
    """`data`, bytes that are not a JSON object, sent as `update`'s input: refused as invalid
    input that no retry can fix."""
    raw = RawValue(Payload(metadata={"encoding": b"json/plain"}, data=data))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(update, raw)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == errors.INVALID_REQUEST and cause.non_retryable
    assert "the input cannot be decoded" in cause.message


async def test_undecodable_update_is_refused(
    client: Client, dev_server: DevServer, task_queue: str
) -> None:
    """Sent raw through the Python client, since the `temporal` CLI sends only valid JSON."""
    async with running_workers(client, task_queue, Stubs()):
        handle, _ = await waiting_for_its_plan(client, dev_server, task_queue)
        workflow_id = handle.id
        await assert_undecodable_is_refused(handle, REVIEW_PLAN_UPDATE, b'{"decision": "\xff"}')
        # The run goes on as if nothing was sent.
        approved = await update_with_cli(
            dev_server, workflow_id, REVIEW_PLAN_UPDATE, "--input", '{"decision": "approve"}'
        )
        assert approved.returncode == 0, approved.stderr
        result = await handle.result()
    assert result["outcome"] == "completed"


# -- a deep run through the plain `temporal` CLI, with the README's commands -------------------

README_PLAN = ["threading tutorial", "asyncio tasks", "thread pools"]
"""What the stub planner proposes: the README's edit removes its first query."""


async def the_readmes_deep_run(
    client: Client, dev_server: DevServer, task_queue: str
) -> tuple[WorkflowHandle[Any, ResearchReport], ResearchStatus]:
    """A run started with the README's deep `temporal workflow start` command, once it is
    searching, and its status then."""
    run_id = f"cli-{uuid.uuid4().hex[:8]}"
    started = await run_readme_command(
        dev_server, readme_command("workflow", "start", "budget"), run_id, task_queue
    )
    assert started.returncode == 0, started.stderr
    handle = client.get_workflow_handle(run_id, result_type=ResearchReport)
    return handle, await wait_for(handle, Phase.SEARCHING)


async def test_a_deep_run_is_started_and_steered_with_the_readmes_commands(
    client: Client, dev_server: DevServer, task_queue: str
) -> None:
    """Start with rounds, review rounds, a sign-off and a budget; edit the round's searches;
    send the draft back and approve it: each command exactly as the README shows it."""
    stubs = Stubs(queries=README_PLAN, gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        handle, status = await the_readmes_deep_run(client, dev_server, task_queue)
        run_id = handle.id
        assert (status.max_rounds, status.round) == (3, 1)
        assert {line.name: line.limit for line in status.budget.lines} == {
            "max_total_tokens": 200_000,
            "max_cost_usd": 0.5,
            "max_searches_total": 12,
            "max_wall_seconds": 900,
        }
        async with asyncio.timeout(20):
            while len(stubs.seen_search_inputs) < len(README_PLAN):
                await asyncio.sleep(0.05)

        edited = await run_readme_command(
            dev_server, readme_command("--name", "edit_searches"), run_id
        )
        assert edited.returncode == 0, edited.stderr
        assert [q.query for q in (await status_of(handle)).queries][-1] == "asyncio to_thread"
        async with asyncio.timeout(20):
            while not stubs.cancelled_searches:
                await asyncio.sleep(0.05)
        stubs.gate.set()  # type: ignore[union-attr]

        await wait_for(handle, Phase.AWAITING_REPORT_REVIEW)
        revise = readme_command("--name", "review_report", '"revise"')
        sent_back = await run_readme_command(dev_server, revise, run_id)
        assert sent_back.returncode == 0, sent_back.stderr
        status = await wait_for(handle, Phase.AWAITING_REPORT_REVIEW)
        assert status.draft_report == "revision 1: say when threads win"
        approve = readme_command("--name", "review_report", '"approve"')
        approved = await run_readme_command(dev_server, approve, run_id)
        assert approved.returncode == 0, approved.stderr
        report = await handle.result()

    assert stubs.cancelled_searches == ["threading tutorial"]
    assert sorted(i.query for i in stubs.seen_search_inputs) == sorted(
        [*README_PLAN, "asyncio to_thread"]
    )
    assert [(q.query, q.reason) for q in report.queries][-1] == (
        "asyncio to_thread",
        "runs blocking calls off the loop",
    )
    # The stub reviewer approved the first draft (review rounds allowed: 2), the person sent
    # it back once and then approved.
    assert [(r.by, r.approved, r.notes) for r in report.review] == [
        ("reviewer", True, []),
        ("person", False, ["say when threads win"]),
        ("person", True, []),
    ]
    assert report.report_markdown == "revision 1: say when threads win"
    assert report.outcome is Outcome.COMPLETED and not report.partial


@pytest.mark.parametrize(
    ("words", "without", "reason"),
    [
        (("finish_now", "--input"), "", "finished on request: enough for today"),
        (("finish_now",), "--input", "finished on request: no reason given"),
    ],
)
async def test_finish_now_with_the_readmes_signal(
    client: Client,
    dev_server: DevServer,
    task_queue: str,
    words: tuple[str, ...],
    without: str,
    reason: str,
) -> None:
    stubs = Stubs(queries=README_PLAN, gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        handle, _ = await the_readmes_deep_run(client, dev_server, task_queue)
        signalled = await run_readme_command(
            dev_server, readme_command(*words, without=without), handle.id
        )
        assert signalled.returncode == 0, signalled.stderr
        report = await handle.result()

    assert report.partial and report.outcome is Outcome.COMPLETED
    assert report.outcome_reason == reason
    # Written from what was gathered (nothing: the searches were held), without waiting for
    # a sign-off or a review.
    assert stubs.calls[-2:] == ["synthesize", "record_audit"]
    assert report.review == []


DEEP_RUN = {
    "question": "What is x?",
    "max_rounds": 1,
    "max_review_rounds": 0,
    "approve_report": True,
}


async def test_finish_now_with_a_reason_that_is_not_text_still_finishes(
    client: Client, dev_server: DevServer, task_queue: str
) -> None:
    """A signal cannot be refused: the run finishes, without the reason."""
    stubs = Stubs(gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        workflow_id = await start_with_cli(dev_server, task_queue, "--input", json.dumps(DEEP_RUN))
        handle = client.get_workflow_handle(workflow_id, result_type=ResearchReport)
        await wait_for(handle, Phase.SEARCHING)
        signalled = await temporal_cli(
            dev_server,
            "workflow",
            "signal",
            "--workflow-id",
            workflow_id,
            "--name",
            "finish_now",
            "--input",
            '{"reason": 5}',
        )
        assert signalled.returncode == 0, signalled.stderr
        report = await handle.result()
    assert report.outcome_reason == "finished on request: no reason given"


@pytest.mark.parametrize(
    ("phase", "name", "arg", "error_type", "expected"),
    [
        (
            Phase.SEARCHING,
            EDIT_SEARCHES_UPDATE,
            {"add": [{"query": "delta", "why": "a person knows"}]},
            errors.INVALID_REQUEST,
            "add.0.why: Extra inputs are not permitted",
        ),
        (
            Phase.SEARCHING,
            EDIT_SEARCHES_UPDATE,
            {"add": "delta"},
            errors.INVALID_REQUEST,
            "add: Input should be a valid list",
        ),
        (
            Phase.SEARCHING,
            EDIT_SEARCHES_UPDATE,
            {"remove": ["delta\u001b[2J"]},
            errors.INVALID_REQUEST,
            "control character U+001B",
        ),
        (
            Phase.SEARCHING,
            EDIT_SEARCHES_UPDATE,
            {"add": [{"query": "beta"}], "remove": ["omega"]},
            errors.UPDATE_REFUSED,
            "'beta' is already in this run's plan",
        ),
        (
            Phase.SEARCHING,
            REVIEW_REPORT_UPDATE,
            {"decision": "approve"},
            errors.UPDATE_REFUSED,
            "no report is waiting for review",
        ),
        (
            Phase.AWAITING_REPORT_REVIEW,
            REVIEW_REPORT_UPDATE,
            {"decision": "ok"},
            errors.INVALID_REQUEST,
            "decision: Input should be 'approve' or 'revise'",
        ),
        (
            Phase.AWAITING_REPORT_REVIEW,
            REVIEW_REPORT_UPDATE,
            {"decision": "revise"},
            errors.INVALID_REQUEST,
            "a revision needs notes: say what to change",
        ),
        (
            Phase.AWAITING_REPORT_REVIEW,
            REVIEW_REPORT_UPDATE,
            {"decision": "revise", "notes": 3},
            errors.INVALID_REQUEST,
            "notes: Input should be a valid string",
        ),
        (
            Phase.AWAITING_REPORT_REVIEW,
            EDIT_SEARCHES_UPDATE,
            {"remove": ["alpha"]},
            errors.UPDATE_REFUSED,
            "no round is searching now",
        ),
    ],
)
async def test_bad_deep_run_update_is_refused_and_changes_nothing(
    client: Client,
    dev_server: DevServer,
    task_queue: str,
    phase: Phase,
    name: str,
    arg: Any,
    error_type: str,
    expected: str,
) -> None:
    stubs = Stubs(gate=asyncio.Event() if phase is Phase.SEARCHING else None)
    async with running_workers(client, task_queue, stubs):
        workflow_id = await start_with_cli(dev_server, task_queue, "--input", json.dumps(DEEP_RUN))
        handle = client.get_workflow_handle(workflow_id)
        await wait_for(handle, phase)
        async with asyncio.timeout(20):
            while len(stubs.seen_search_inputs) < 3:
                await asyncio.sleep(0.05)
        before = await status_of(handle)

        line = refusal(
            await update_with_cli(dev_server, workflow_id, name, "--input", json.dumps(arg))
        )
        assert expected in line
        assert f"(type: {error_type}, retryable: false)" in line

        after = await status_of(handle)
        assert after.phase is phase
        assert after.queries == before.queries and after.rounds == before.rounds
        assert after.review == before.review and after.draft_report == before.draft_report
        assert stubs.cancelled_searches == []
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        await handle.terminate("test done")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        (EDIT_SEARCHES_UPDATE, b'{"add": [{"query": "delta"}'),
        (REVIEW_REPORT_UPDATE, b'{"decision": "approve\xff"}'),
    ],
)
async def test_deep_run_update_that_is_not_json_is_refused(
    client: Client, dev_server: DevServer, task_queue: str, name: str, data: bytes
) -> None:
    """Sent raw through the Python client, since the `temporal` CLI sends only valid JSON."""
    phase = Phase.SEARCHING if name == EDIT_SEARCHES_UPDATE else Phase.AWAITING_REPORT_REVIEW
    stubs = Stubs(gate=asyncio.Event() if phase is Phase.SEARCHING else None)
    async with running_workers(client, task_queue, stubs):
        workflow_id = await start_with_cli(dev_server, task_queue, "--input", json.dumps(DEEP_RUN))
        handle = client.get_workflow_handle(workflow_id)
        before = await wait_for(handle, phase)
        await assert_undecodable_is_refused(handle, name, data)
        after = await status_of(handle)
        assert (after.phase, after.queries, after.review) == (phase, before.queries, before.review)
        await handle.terminate("test done")


def signal_with_cli(
    server: DevServer, workflow_id: str, name: str, payload: str
) -> Awaitable[subprocess.CompletedProcess[str]]:
    return temporal_cli(
        server,
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id,
        "--name",
        name,
        "--input",
        payload,
    )


CANCELLED_WITHOUT_REASON = (
    "cancel signal with an invalid reason; cancelling without it",
    "cancelled",
    "cancelled by request",
)
FINISHED_WITHOUT_REASON = (
    "finish signal with an invalid reason; finishing without it",
    "completed",
    "finished on request: no reason given",
)


@pytest.mark.parametrize(
    ("name", "payload", "problem", "expected"),
    [
        (
            CANCEL_SIGNAL,
            '{"reason": 5}',
            "reason: Input should be a valid string",
            CANCELLED_WITHOUT_REASON,
        ),
        (
            CANCEL_SIGNAL,
            '{"reason": "enough", "surprise": 1}',
            "surprise: Extra inputs are not permitted",
            CANCELLED_WITHOUT_REASON,
        ),
        (
            FINISH_NOW_SIGNAL,
            '{"reason": "enough\\u0000"}',
            "control character U+0000",
            FINISHED_WITHOUT_REASON,
        ),
        (
            FINISH_NOW_SIGNAL,
            '"enough for today"',
            "Input should be a valid dictionary",
            FINISHED_WITHOUT_REASON,
        ),
    ],
)
async def test_malformed_stop_signal_still_stops_the_run_and_logs_once(
    client: Client,
    dev_server: DevServer,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
    name: str,
    payload: str,
    problem: str,
    expected: tuple[str, str, str],
) -> None:
    """A signal cannot be refused: a `cancel` or `finish_now` whose reason is malformed does
    what it asks without the reason, and the orchestrator says so in one warning naming the
    problem."""
    warning, outcome, reason = expected
    caplog.set_level(logging.WARNING, logger="temporalio.workflow")
    async with running_workers(client, task_queue, Stubs()):
        handle, _ = await waiting_for_its_plan(client, dev_server, task_queue)
        workflow_id = handle.id

        sent = await signal_with_cli(dev_server, workflow_id, name, payload)
        assert sent.returncode == 0, sent.stderr
        async with asyncio.timeout(30):
            result = await handle.result()
    assert (result["outcome"], result["outcome_reason"]) == (outcome, reason)
    assert result["partial"] is True
    logged = [
        record
        for record in caplog.records
        if record.getMessage().startswith(warning) and workflow_id in record.getMessage()
    ]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    assert problem in str(getattr(logged[0], "problem", "")), vars(logged[0])
