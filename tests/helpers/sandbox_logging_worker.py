"""An orchestrator-like worker for the sandbox logging tests: the probe workflows of
`tests.helpers.sandbox_probe_workflows`, the project's logging and the orchestrator's
sandbox, on the queue from `RESEARCH_ORCHESTRATOR_QUEUE`.

Run with `python -m tests.helpers.sandbox_logging_worker` from the repository root; the log
format comes from `RESEARCH_LOG_FORMAT`, as in every worker.
"""

from __future__ import annotations

from tests.helpers.sandbox_probe_workflows import FailsOnceWorkflow, TypedInputWorkflow
from tests.helpers.worker_main import run_test_worker, serve_test_worker


async def run() -> None:
    await serve_test_worker(
        "sandbox-probe",
        lambda queues: queues.orchestrator_queue,
        workflows=[FailsOnceWorkflow, TypedInputWorkflow],
        # Every task replays from the start, so each one runs the workflow code (and its
        # logging) inside a fresh sandbox.
        max_cached_workflows=0,
    )


if __name__ == "__main__":
    run_test_worker(run)
