"""Entry point of the orchestrator pool: hosts `DeepResearchWorkflow`, no activities."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from research_orchestrator._sandbox import compile_once
from research_orchestrator.workflows import DeepResearchWorkflow
from research_shared import routing
from research_shared.logs import configure_logging
from research_shared.payloads import open_payloads
from research_shared.serving import (
    check_payload_store,
    connect_worker,
    run_until_signalled,
    serve_probes,
)
from research_shared.settings import (
    PayloadSettings,
    QueueSettings,
    TemporalSettings,
    WorkerSettings,
)
from research_shared.temporal_client import deployment_config


def build_worker(client: Client, queues: QueueSettings, settings: WorkerSettings) -> Worker:
    routing.configure(routing.Routing(search_queue=queues.search_queue, llm_queue=queues.llm_queue))
    # Before the Worker: it creates a first sandboxed run to validate the workflow.
    compile_once(DeepResearchWorkflow)
    return Worker(
        client,
        task_queue=queues.orchestrator_queue,
        workflows=[DeepResearchWorkflow],
        # A run whose worker died goes to another worker after this long (SDK default 10 s);
        # replaying a research history elsewhere is cheap.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        # Half the SDK's 1,000: each cached run holds about 115 KiB, so 10,000 runs waiting
        # on people stay within 300 MB; an evicted run replays its history when it wakes
        # (23 to 43 ms more CPU at its approval). docs/benchmarks.md, "Phase 2".
        max_cached_workflows=settings.max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        # With RESEARCH_DEPLOYMENT_NAME and RESEARCH_BUILD_ID, a versioned worker: each run
        # stays on the build it started on (the workflow is pinned).
        deployment_config=deployment_config(settings),
    )


async def run() -> None:
    # Every setting is read before anything starts, so a bad one stops the process at once.
    settings, temporal, queues = WorkerSettings(), TemporalSettings(), QueueSettings()
    payloads = open_payloads(PayloadSettings())
    configure_logging(settings.log_level, settings.log_format, service="orchestrator")
    async with serve_probes(settings) as health:
        try:
            await check_payload_store(payloads)
            client = await connect_worker(temporal, settings, payloads.converter)
            worker = build_worker(client, queues, settings)
            await run_until_signalled(worker, "orchestrator", health, **payloads.describe())
        finally:
            await payloads.aclose()


def main() -> None:
    asyncio.run(run())
