"""Probes that mean what they say, checked against real worker processes.

/readyz follows the worker's connection: it turns 503 when the test stops its own dev server
and 200 again when the server is back on the same port and SQLite file. /healthz follows the
event loop: it stays 200 through the outage, and turns 503 while an activity blocks the loop.
Every wait polls with a generous deadline; nothing here measures time.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from research_cli.embedded import free_port, start_dev_server, stop_process, wait_for_server
from research_cli.supervisor import Supervisor
from research_shared.models import ResearchRequest, ResearchStatus
from research_shared.names import STATUS_QUERY, WORKFLOW_TYPE
from tests.helpers.processes import DevServer, WorkerProcesses
from tests.helpers.wedged_worker import BLOCK_WORKFLOW
from tests.helpers.worker_commands import (
    http_status,
    http_text,
    module_spec,
    wait_for_status,
    worker_env,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def own_server(tmp_path: Path) -> AsyncIterator[DevServer]:
    """A dev server of this test's own, which the test may stop and start again."""
    server = DevServer(db_file=tmp_path / "temporal.db", port=free_port(), log_file=tmp_path / "s")
    server.process = start_dev_server(server.db_file, server.port, log_file=server.log_file)
    await wait_for_server(server.address, process=server.process)
    yield server
    if server.process is not None:
        stop_process(server.process, timeout=15)


async def test_readiness_follows_the_connection_and_liveness_does_not(
    own_server: DevServer, tmp_path: Path, task_queue: str
) -> None:
    port = free_port()
    workers = WorkerProcesses(
        address=own_server.address,
        log_dir=tmp_path / "logs",
        env={"RESEARCH_ORCHESTRATOR_QUEUE": task_queue, "RESEARCH_METRICS_PORT": str(port)},
    )
    log = workers.log_file("orchestrator")
    try:
        await asyncio.to_thread(workers.start, "orchestrator")
        proc = workers.procs["orchestrator"]
        await asyncio.to_thread(wait_for_status, port, "/readyz", 200, 60, proc, log)
        assert await asyncio.to_thread(http_status, port, "/healthz") == 200
        metrics = await asyncio.to_thread(http_text, port, "/metrics")
        assert re.search(r"^# TYPE research_activity_duration_seconds histogram$", metrics, re.M)
        assert await asyncio.to_thread(http_status, port, "/") == 404

        assert own_server.process is not None
        await asyncio.to_thread(stop_process, own_server.process, 15)
        await asyncio.to_thread(wait_for_status, port, "/readyz", 503, 60, proc, log)
        assert await asyncio.to_thread(http_status, port, "/healthz") == 200

        own_server.process = start_dev_server(
            own_server.db_file, own_server.port, log_file=own_server.log_file
        )
        await asyncio.to_thread(wait_for_status, port, "/readyz", 200, 120, proc, log)
        assert await asyncio.to_thread(http_status, port, "/healthz") == 200
        # Ready again means polling again: the worker answers a query about a new run.
        client = await wait_for_server(own_server.address, process=own_server.process)
        await answers_a_status_query(client, task_queue)
    finally:
        await asyncio.to_thread(workers.stop_all)


async def answers_a_status_query(client: Client, task_queue: str) -> None:
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        ResearchRequest(question="Is the orchestrator polling again?"),
        id=f"probes-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )
    try:
        status = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
        assert status.phase.value
    finally:
        await handle.terminate("the test is over")


async def test_a_wedged_event_loop_fails_liveness(
    client: Client, dev_server: DevServer, tmp_path: Path, task_queue: str
) -> None:
    port = free_port()
    env = worker_env(
        tmp_path,
        TEMPORAL_ADDRESS=dev_server.address,
        RESEARCH_SEARCH_QUEUE=task_queue,
        RESEARCH_METRICS_PORT=str(port),
        RESEARCH_LIVENESS_STALL_SECONDS="1",
        RESEARCH_GRACEFUL_SHUTDOWN_SECONDS="2",
    )
    log = tmp_path / "wedged.log"
    release = tmp_path / "release"
    supervisor = Supervisor()
    proc = supervisor.start(module_spec("wedged", "tests.helpers.wedged_worker", env, log))
    try:
        await asyncio.to_thread(wait_for_status, port, "/readyz", 200, 60, proc, log)
        assert await asyncio.to_thread(http_status, port, "/healthz") == 200
        handle = await client.start_workflow(
            BLOCK_WORKFLOW,
            str(release),
            id=f"wedged-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=str,
        )
        await asyncio.to_thread(wait_for_status, port, "/healthz", 503, 60, proc, log)
        assert await asyncio.to_thread(http_status, port, "/readyz") == 503

        release.touch()
        assert await handle.result() == "released"
        await asyncio.to_thread(wait_for_status, port, "/healthz", 200, 60, proc, log)
        await asyncio.to_thread(wait_for_status, port, "/readyz", 200, 60, proc, log)
    finally:
        release.touch()
        await asyncio.to_thread(supervisor.stop_all, 15)
