"""Record the histories that `tests/test_replay.py` replays.

Runs real `DeepResearchWorkflow` runs (stub activities under the real names) on a throwaway
dev server, one per scenario people rely on, and writes each history as JSON beside this
file. Only scenarios without a file are recorded: a committed history stands for runs of the
code that recorded it, and must keep replaying; a change that breaks replay of one goes
behind `workflow.patched`. Name scenarios to record them again on purpose (only when old
runs are drained):

    python -m tests.histories.record                 # the scenarios not recorded yet
    python -m tests.histories.record rounds cancelled

The first four (clarified, plan_edited, cancelled, partly_failed) were recorded before
research went in rounds; they replay the single pass.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from research_cli.embedded import free_port, start_dev_server, stop_process, wait_for_server
from research_shared import errors
from research_shared.models import (
    Phase,
    ReflectResult,
    ResearchReport,
    ResearchStatus,
    ReviewResult,
    SearchQuery,
)
from research_shared.names import (
    ANSWER_UPDATE,
    CANCEL_SIGNAL,
    EDIT_SEARCHES_UPDATE,
    FINISH_NOW_SIGNAL,
    PAUSE_SIGNAL,
    RESUME_SIGNAL,
    REVIEW_PLAN_UPDATE,
    REVIEW_REPORT_UPDATE,
    STATUS_QUERY,
    WORKFLOW_TYPE,
)
from tests.helpers.workflow_stubs import Stubs, running_workers

HERE = Path(__file__).parent
Scenario = Callable[[WorkflowHandle[Any, ResearchReport], Stubs], Awaitable[None]]


async def _phase(handle: WorkflowHandle[Any, Any], phase: Phase) -> None:
    async with asyncio.timeout(30):
        while (await handle.query(STATUS_QUERY, result_type=ResearchStatus)).phase is not phase:
            await asyncio.sleep(0.05)


async def clarified(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    await _phase(handle, Phase.AWAITING_ANSWERS)
    await handle.execute_update(ANSWER_UPDATE, {"answers": [{"index": 1, "answer": "a talk"}]})
    await handle.execute_update(
        ANSWER_UPDATE,
        {"answers": [{"index": 0, "answer": "3.11"}, {"index": 2, "answer": "deep"}]},
    )


async def plan_edited(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    await _phase(handle, Phase.AWAITING_APPROVAL)
    await handle.signal(PAUSE_SIGNAL)
    await handle.execute_update(
        REVIEW_PLAN_UPDATE,
        {"decision": "edit", "queries": [{"query": "alpha"}, {"query": "delta", "reason": "x"}]},
    )
    await asyncio.sleep(0.5)
    await handle.signal(RESUME_SIGNAL)


async def cancelled(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    await _phase(handle, Phase.SEARCHING)
    await asyncio.sleep(0.5)
    await handle.signal(CANCEL_SIGNAL, {"reason": "seen enough"})


async def partly_failed(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    return None


async def searches_edited(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    await _phase(handle, Phase.SEARCHING)
    async with asyncio.timeout(30):
        while not stubs.seen_search_inputs:
            await asyncio.sleep(0.05)
    await handle.execute_update(
        EDIT_SEARCHES_UPDATE, {"add": [{"query": "delta"}], "remove": ["alpha", "gamma"]}
    )
    async with asyncio.timeout(30):
        while not stubs.cancelled_searches:
            await asyncio.sleep(0.05)
    assert stubs.gate is not None
    stubs.gate.set()


async def finished_early(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    await _phase(handle, Phase.SEARCHING)
    async with asyncio.timeout(30):
        while not stubs.seen_search_inputs:
            await asyncio.sleep(0.05)
    await handle.signal(FINISH_NOW_SIGNAL, {"reason": "enough"})


async def report_reviewed(handle: WorkflowHandle[Any, ResearchReport], stubs: Stubs) -> None:
    await _phase(handle, Phase.AWAITING_REPORT_REVIEW)
    await handle.execute_update(REVIEW_REPORT_UPDATE, {"decision": "revise", "notes": "more"})
    await _phase(handle, Phase.AWAITING_REPORT_REVIEW)
    await handle.execute_update(REVIEW_REPORT_UPDATE, {"decision": "approve"})


def _follow_ups(*queries: str) -> ReflectResult:
    return ReflectResult(
        done=False,
        gaps=["a gap"],
        follow_up_queries=[SearchQuery(query=q, reason="gap") for q in queries],
    )


def _gone(step: str) -> dict[str, ApplicationError]:
    return {
        step: ApplicationError(
            f"the {step} model is gone", type=errors.PROVIDER_BAD_REQUEST, non_retryable=True
        )
    }


_REVIEW_TIMES_OUT = {
    "approve_report": True,
    "report_review_timeout_seconds": 1,
    "on_report_review_timeout": "end",
    "max_review_rounds": 0,
    "fairness_key": "bob",
}
_CANCELLED_IN_ROUNDS = {"search_concurrency": 1, "max_rounds": 2}

SCENARIOS: dict[str, tuple[dict[str, Any], Stubs, Scenario]] = {
    "clarified": ({"clarify": True}, Stubs(), clarified),
    "plan_edited": ({"approve_plan": True}, Stubs(), plan_edited),
    "cancelled": ({}, Stubs(gate=asyncio.Event()), cancelled),
    "partly_failed": (
        {},
        Stubs(
            failing={
                "beta": ApplicationError(
                    "Tavily rejected the credentials",
                    type=errors.PROVIDER_AUTH,
                    non_retryable=True,
                )
            }
        ),
        partly_failed,
    ),
    # Recorded once research went in rounds.
    "rounds": (
        {"max_rounds": 3, "max_review_rounds": 2},
        Stubs(
            reflections=[_follow_ups("delta"), _follow_ups("epsilon")],
            verdicts=[
                ReviewResult(approved=False, notes=["say more"]),
                ReviewResult(approved=True),
            ],
        ),
        partly_failed,
    ),
    "budget_reached": (
        {"max_rounds": 3, "budget": {"max_searches_total": 4}},
        Stubs(reflections=[_follow_ups("delta", "epsilon")]),
        partly_failed,
    ),
    "searches_edited": (
        {"search_concurrency": 1, "max_rounds": 1},
        Stubs(gate=asyncio.Event()),
        searches_edited,
    ),
    "finished_early": (
        {"search_concurrency": 1, "max_rounds": 3},
        Stubs(gate=asyncio.Event()),
        finished_early,
    ),
    "report_reviewed": (
        {"approve_report": True, "max_review_rounds": 0},
        Stubs(),
        report_reviewed,
    ),
    # Recorded once a completed run records its audit manifest, with priority and fairness.
    "audited": (
        {"max_rounds": 2, "priority": 1, "fairness_key": "alice"},
        Stubs(reflections=[_follow_ups("delta")]),
        partly_failed,
    ),
    # A token budget the final write would exceed once the first search is in, searching one
    # at a time. Recorded before starting a search reserved the final write: all three
    # searches ran. `strict_budget` is the same run recorded since: only the first did.
    "token_budget": (
        {"search_concurrency": 1, "max_rounds": 2, "budget": {"max_total_tokens": 1520}},
        Stubs(reflections=[_follow_ups("delta")]),
        partly_failed,
    ),
    "strict_budget": (
        {"search_concurrency": 1, "max_rounds": 2, "budget": {"max_total_tokens": 1520}},
        Stubs(reflections=[_follow_ups("delta")]),
        partly_failed,
    ),
    # A report cut short by its review's timeout, and a run cancelled while it searched:
    # recorded before such runs were audited, then (`_audited`) since.
    "review_timed_out": (_REVIEW_TIMES_OUT, Stubs(), partly_failed),
    "cancelled_in_rounds": (_CANCELLED_IN_ROUNDS, Stubs(gate=asyncio.Event()), cancelled),
    "review_timed_out_audited": (_REVIEW_TIMES_OUT, Stubs(), partly_failed),
    "cancelled_audited": (_CANCELLED_IN_ROUNDS, Stubs(gate=asyncio.Event()), cancelled),
    # A reflection that fails for good: recorded when that failed the run, then
    # (`_left_out`) since the run does without it; and a review left out likewise.
    "reflect_failed": ({"max_rounds": 2}, Stubs(failing_steps=_gone("reflect")), partly_failed),
    "reflect_left_out": (
        {"max_rounds": 2},
        Stubs(failing_steps=_gone("reflect")),
        partly_failed,
    ),
    "review_left_out": ({"max_rounds": 1}, Stubs(failing_steps=_gone("review")), partly_failed),
}


async def record(client: Client, names: list[str]) -> None:
    for name in names:
        fields, stubs, steer = SCENARIOS[name]
        queue = f"record-{uuid.uuid4().hex[:8]}"
        async with running_workers(client, queue, stubs):
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                {"question": "What is x?", **fields},
                id=f"history-{name}",
                task_queue=queue,
                result_type=ResearchReport,
            )
            await steer(handle, stubs)
            try:
                outcome = (await handle.result()).outcome.value
            except WorkflowFailureError as err:  # a run that failed is a history too
                outcome = f"failed ({err.cause})"
        history = await handle.fetch_history()
        data = _without_stack_traces(json.loads(history.to_json()))
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"{name}: {outcome}, {len(history.events)} events")


def _without_stack_traces(node: Any) -> Any:
    """Stack traces name paths of the recording machine; replay does not need them."""
    if isinstance(node, dict):
        return {k: "" if k == "stackTrace" else _without_stack_traces(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_stack_traces(v) for v in node]
    return node


async def main() -> None:
    names = sys.argv[1:] or [n for n in SCENARIOS if not (HERE / f"{n}.json").exists()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"no such scenario: {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if not names:
        print("every scenario has a history; name scenarios to record them again")
        return
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = start_dev_server(Path(folder) / "temporal.db", port)
        try:
            await record(await wait_for_server(f"127.0.0.1:{port}", process=server), names)
        finally:
            stop_process(server)


if __name__ == "__main__":
    asyncio.run(main())
