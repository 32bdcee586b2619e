"""Running a worker: its probes, its first connection to Temporal, how an activity pool's
worker is configured, and polling until SIGTERM or SIGINT, then a graceful shutdown.

A worker that cannot start raises `WorkerError`, which `deep-research worker` prints as one
line. The first connection is retried for RESEARCH_CONNECT_RETRY_SECONDS (30 s by default):
a pod often starts before the Temporal server it needs (the dev overlay starts both at once,
a cluster restarts its frontends), and waiting a little in-process is quicker and quieter
than exiting into Kubernetes' growing restart back-off. The wait is bounded so that a wrong
address still fails visibly, with the error in the log and the pod restarting.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from research_shared.health import Health, ProbeServer, keep_beating, watch_readiness
from research_shared.log_context import LogContextInterceptor
from research_shared.payloads import Payloads
from research_shared.settings import TemporalSettings, WorkerSettings
from research_shared.store import StoreError
from research_shared.temporal_client import connect, deployment_config, sdk_runtime

log = structlog.get_logger(__name__)

_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 5.0


class WorkerError(Exception):
    """A worker cannot start or cannot go on, for a reason its operator can fix (a setting,
    an unreachable or misconfigured server): one line, no traceback.

    `code` is the exit status: 2 when the operator's input is wrong (a setting, a folder),
    1 when the environment is (no server, a busy port).
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# The SDK's core reports a failure as a Rust error's debug text; its innermost message
# ("Connection refused", "Namespace x is not found.") is what a person needs. The retry
# warnings keep the whole text.
_CORE_MESSAGE = re.compile(r'(?:message|error): "([^"]+)"')


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _core_message(err: BaseException) -> str:
    found = _CORE_MESSAGE.findall(str(err))
    return str(found[-1]) if found else _one_line(err)


@asynccontextmanager
async def serve_probes(settings: WorkerSettings) -> AsyncIterator[Health]:
    """/metrics, /readyz and /healthz on RESEARCH_METRICS_PORT (0 leaves them off), for as
    long as the block runs; `/healthz` follows the event loop from the start."""
    health = Health(settings.liveness_stall_seconds)
    server = None
    if settings.metrics_port:
        try:
            server = ProbeServer(health, settings.metrics_port)
        except OSError as err:
            raise WorkerError(
                f"cannot serve metrics and probes on port {settings.metrics_port}: {_one_line(err)}"
            ) from None
    beating = asyncio.create_task(keep_beating(health))
    try:
        yield health
    finally:
        # Not awaited: awaiting here could swallow a cancellation aimed at the caller.
        beating.cancel()
        if server is not None:
            server.close()


async def check_payload_store(payloads: Payloads) -> None:
    """Stop the worker with one line if its payload store cannot be used."""
    if payloads.store is None:
        return
    try:
        await payloads.store.check()
    except StoreError as err:
        raise WorkerError(f"{err} (RESEARCH_PAYLOAD_STORE)") from None


async def connect_worker(
    temporal: TemporalSettings, settings: WorkerSettings, data_converter: DataConverter
) -> Client:
    """The worker's client, with the process's data converter, serving the SDK's metrics
    if asked; the first connection is retried for `settings.connect_retry_seconds`."""
    try:
        runtime: Runtime = sdk_runtime(settings.sdk_metrics_port, settings.log_level)
    except ValueError as err:  # the SDK's Prometheus exporter could not bind its port
        raise WorkerError(
            f"cannot serve the SDK metrics on port {settings.sdk_metrics_port}: {_one_line(err)}"
        ) from None
    deadline = time.monotonic() + settings.connect_retry_seconds
    delay = _FIRST_RETRY_SECONDS
    while True:
        try:
            return await connect(temporal, runtime, data_converter)
        except OSError as err:
            # A TLS file that cannot be read: a setting names it, and waiting will not help.
            raise WorkerError(
                f"cannot read the TLS files for Temporal: {_one_line(err)}", code=2
            ) from None
        except RuntimeError as err:  # how the SDK's core reports a failed connection
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(
                    f"cannot reach Temporal at {temporal.address}: {_core_message(err)}"
                ) from None
            wait = min(delay, left)
            log.warning(
                "waiting for Temporal",
                address=temporal.address,
                error=_one_line(err),
                retry_in=round(wait, 1),
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, _MAX_RETRY_SECONDS)


def activity_worker(
    client: Client,
    settings: WorkerSettings,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    activities_per_second: float | None,
) -> Worker:
    """The worker of an activity pool (search, LLM), configured as every such pool is."""
    return Worker(
        client,
        task_queue=task_queue,
        activities=activities,
        max_concurrent_activities=settings.max_concurrent_activities,
        # The server applies the newest value any worker of the queue sends, to the whole
        # queue: every worker of a pool carries the same setting, so the fleet together never
        # starts more activities a second than the provider allows (docs/payloads.md).
        max_task_queue_activities_per_second=activities_per_second,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        # Every line written inside an activity names its run, activity and attempt.
        interceptors=[LogContextInterceptor()],
        deployment_config=deployment_config(settings),
    )


async def run_until_signalled(
    worker: Worker, pool: str, health: Health | None = None, **setup: str
) -> None:
    """Poll until SIGTERM/SIGINT; then stop polling and let in-flight tasks finish.

    The worker's `graceful_shutdown_timeout` bounds the wait; keep it shorter than the
    pod's termination grace period so Kubernetes does not kill in-flight work first. With
    `health`, readiness follows the worker and its connection while it runs, and turns off
    as soon as the signal arrives. `setup` (no secret in it) goes on the "worker started"
    line: a worker that cannot start says nothing before its one-line error.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with worker:
            log.info("worker started", pool=pool, task_queue=worker.task_queue, **setup)
            watcher = None
            if health is not None:
                watcher = asyncio.create_task(
                    watch_readiness(
                        health, worker.client, lambda: worker.is_running and not stop.is_set()
                    )
                )
            try:
                await stop.wait()
            finally:
                if health is not None:
                    health.set_ready("stopping")
                if watcher is not None:
                    watcher.cancel()  # not awaited, as in serve_probes
            log.info("worker stopping", pool=pool)
    except RuntimeError as err:
        # A fatal worker error: a namespace that does not exist (checked as polling starts),
        # or later a permission withdrawn (the SDK logs those with their details first).
        raise WorkerError(
            f"the {pool} worker cannot poll {worker.task_queue}: {_core_message(err)}"
        ) from None
    log.info("worker stopped", pool=pool)
