"""Running a worker until SIGTERM or SIGINT, then shutting it down gracefully."""

from __future__ import annotations

import asyncio
import signal

import structlog
from temporalio.worker import Worker

log = structlog.get_logger(__name__)


async def run_until_signalled(worker: Worker, pool: str) -> None:
    """Poll until SIGTERM/SIGINT; then stop polling and let in-flight tasks finish.

    The worker's `graceful_shutdown_timeout` bounds the wait; keep it shorter than the
    pod's termination grace period so Kubernetes does not kill in-flight work first.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker started", pool=pool, task_queue=worker.task_queue)
        await stop.wait()
        log.info("worker stopping", pool=pool)
    log.info("worker stopped", pool=pool)
