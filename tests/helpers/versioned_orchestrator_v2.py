"""Version 2 of the orchestrator, for the Worker Versioning test: a workflow registered as
`DeepResearchWorkflow` whose first command differs from the real one's (a timer where the
real workflow schedules its first activity).

That is the kind of change that cannot replay an old run's history: the test replays a
version-1 history against it to show that, and shows that pinning keeps old runs off it.
It serves new runs only, and returns which version served them.

Run with `python -m tests.helpers.versioned_orchestrator_v2` from the repository root, with
RESEARCH_DEPLOYMENT_NAME and RESEARCH_BUILD_ID set.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from research_shared.names import WORKFLOW_TYPE
    from tests.helpers.worker_main import run_test_worker, serve_test_worker

SERVED_BY = "version 2"


@workflow.defn(name=WORKFLOW_TYPE)
class DeepResearchWorkflowV2:
    """Waits a moment before anything else, then answers with its version."""

    @workflow.run
    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        await workflow.sleep(timedelta(milliseconds=10))
        return {"served_by": SERVED_BY, "question": request.get("question")}


async def run() -> None:
    await serve_test_worker(
        "orchestrator-v2",
        lambda queues: queues.orchestrator_queue,
        workflows=[DeepResearchWorkflowV2],
    )


if __name__ == "__main__":
    run_test_worker(run)
