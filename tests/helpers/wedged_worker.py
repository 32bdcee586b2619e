"""A worker whose activity blocks its event loop, for the liveness test.

It is built like the real pools (probes on RESEARCH_METRICS_PORT, `connect_worker`,
`run_until_signalled`) and polls the queue in RESEARCH_SEARCH_QUEUE. `BlockLoopWorkflow` runs
one `block_event_loop` activity, which sleeps synchronously inside an async function until a
file named by the caller exists: the bug that wedges a worker. The test releases it by
creating the file, so nothing depends on how long anything takes.

Run with `python -m tests.helpers.wedged_worker` from the repository root.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from tests.helpers.worker_main import run_test_worker, serve_test_worker

BLOCK_WORKFLOW = "BlockLoopWorkflow"


@activity.defn
async def block_event_loop(release_file: str) -> str:
    """Blocks the whole event loop until `release_file` exists."""
    while not Path(release_file).exists():
        time.sleep(0.1)  # noqa: ASYNC251 - blocking the loop is what this activity is for
    return "released"


@workflow.defn(name=BLOCK_WORKFLOW)
class BlockLoopWorkflow:
    """Runs `block_event_loop` once."""

    @workflow.run
    async def run(self, release_file: str) -> str:
        return await workflow.execute_activity(
            block_event_loop, release_file, start_to_close_timeout=timedelta(minutes=5)
        )


async def run() -> None:
    await serve_test_worker(
        "wedged",
        lambda queues: queues.search_queue,
        workflows=[BlockLoopWorkflow],
        activities=[block_event_loop],
    )


if __name__ == "__main__":
    run_test_worker(run)
