"""An orchestrator-like worker for the sandbox logging tests: the probe workflows of
`tests.helpers.sandbox_probe_workflows`, the project's logging and the orchestrator's
sandbox, on the queue from `RESEARCH_ORCHESTRATOR_QUEUE`.

Run with `python -m tests.helpers.sandbox_logging_worker` from the repository root; the log
format comes from `RESEARCH_LOG_FORMAT`, as in every worker.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.worker import Worker

from research_shared.logs import configure_logging
from research_shared.serving import run_until_signalled
from research_shared.settings import QueueSettings, TemporalSettings, WorkerSettings
from research_shared.temporal_client import connect
from tests.helpers.sandbox_probe_workflows import FailsOnceWorkflow, TypedInputWorkflow


async def run() -> None:
    settings = WorkerSettings()
    configure_logging(settings.log_level, settings.log_format, service="sandbox-probe")
    client = await connect(TemporalSettings())
    worker = Worker(
        client,
        task_queue=QueueSettings().orchestrator_queue,
        workflows=[FailsOnceWorkflow, TypedInputWorkflow],
        # Every task replays from the start, so each one runs the workflow code (and its
        # logging) inside a fresh sandbox.
        max_cached_workflows=0,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )
    await run_until_signalled(worker, "sandbox-probe")


if __name__ == "__main__":
    asyncio.run(run())
