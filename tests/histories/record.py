"""Record the histories that `tests/test_replay.py` replays.

Runs real `DeepResearchWorkflow` runs (stub activities under the real names) on a throwaway
dev server, one per scenario people rely on, and writes each history as JSON beside this
file. Re-record only when a change is meant to be incompatible and old runs are drained;
otherwise a change that breaks replay of these files must go behind `workflow.patched`.

    python -m tests.histories.record
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError

from research_cli.embedded import free_port, start_dev_server, stop_process, wait_for_server
from research_shared import errors
from research_shared.models import Phase, ResearchReport, ResearchStatus
from research_shared.names import (
    ANSWER_UPDATE,
    CANCEL_SIGNAL,
    PAUSE_SIGNAL,
    RESUME_SIGNAL,
    REVIEW_PLAN_UPDATE,
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
}


async def record(client: Client) -> None:
    for name, (fields, stubs, steer) in SCENARIOS.items():
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
            report = await handle.result()
        history = await handle.fetch_history()
        data = _without_stack_traces(json.loads(history.to_json()))
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"{name}: {report.outcome.value}, {len(history.events)} events")


def _without_stack_traces(node: Any) -> Any:
    """Stack traces name paths of the recording machine; replay does not need them."""
    if isinstance(node, dict):
        return {k: "" if k == "stackTrace" else _without_stack_traces(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_stack_traces(v) for v in node]
    return node


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = start_dev_server(Path(folder) / "temporal.db", port)
        try:
            await record(await wait_for_server(f"127.0.0.1:{port}", process=server))
        finally:
            stop_process(server)


if __name__ == "__main__":
    asyncio.run(main())
