"""How the test-only worker modules run: like the real pools (settings from the environment,
logging, probes, the first connection with its retry, SIGTERM), with workflows and activities
of the test's choosing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from temporalio.worker import Worker

from research_cli.main import exit_without_finalizing
from research_shared.logs import configure_logging
from research_shared.payloads import open_payloads
from research_shared.serving import connect_worker, run_until_signalled, serve_probes
from research_shared.settings import QueueSettings, TemporalSettings, WorkerSettings
from research_shared.temporal_client import deployment_config


async def serve_test_worker(
    name: str,
    queue: Callable[[QueueSettings], str],
    *,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
    max_cached_workflows: int | None = None,
) -> None:
    """Poll the queue `queue` picks from the settings until SIGTERM."""
    settings, temporal, queues = WorkerSettings(), TemporalSettings(), QueueSettings()
    configure_logging(settings.log_level, settings.log_format, service=name)
    async with serve_probes(settings) as health:
        client = await connect_worker(temporal, settings, open_payloads().converter)
        options: dict[str, Any] = {}
        if max_cached_workflows is not None:
            options["max_cached_workflows"] = max_cached_workflows
        worker = Worker(
            client,
            task_queue=queue(queues),
            workflows=list(workflows),
            activities=list(activities),
            graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
            deployment_config=deployment_config(settings),
            **options,
        )
        await run_until_signalled(worker, name, health)


def run_test_worker(main: Callable[[], Coroutine[Any, Any, None]]) -> NoReturn:
    """A test worker module's `__main__`: run it, then leave as `deep-research worker` does,
    without interpreter finalization. The SDK's Rust core forwards its log lines from its own
    threads, and one arriving while the interpreter finalizes aborts the process
    (temporalio/sdk-python issue 300)."""
    asyncio.run(main())
    exit_without_finalizing(0)
