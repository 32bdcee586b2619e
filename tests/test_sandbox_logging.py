"""Logging from inside the workflow sandbox, in a real worker process, in both log formats.

When a workflow task fails, the SDK logs "Failed activation ..." with the exception from
inside the sandbox, through the project's handlers. Once, that line was lost in a
"--- Logging error ---" traceback on stderr (the renderer's fallback imported a module that
the sandbox re-imported under its restrictions), for every attempt, with UserWarnings about
modules "imported after initial workflow load". The worker here runs the project's logging
and the SDK's default sandbox, as the orchestrator does, against the session's dev server.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client

from research_cli.supervisor import Supervisor
from tests.helpers.processes import DevServer
from tests.helpers.sandbox_probe_workflows import (
    FAILS_ONCE_WORKFLOW,
    FIRST_TASK_ERROR,
    TYPED_INPUT_WORKFLOW,
)
from tests.helpers.worker_commands import module_spec

pytestmark = pytest.mark.e2e

READY_WITHIN_SECONDS = 60.0
FAILURES_WITHIN_SECONDS = 60.0
FAILED_ACTIVATION = "Failed activation on workflow"
# The SDK's Rust core writes its own warnings to stderr, outside Python's logging, so they
# are neither JSON nor the project's business; they are told apart by the core's target.
CORE_TARGET = "temporalio_sdk_core"
# What went wrong when logging broke: the stdlib's report of a failed emit, the sandbox's
# refusal, and the warnings of modules the sandbox had to import while a line was logged.
BROKEN_LOGGING = (
    "--- Logging error ---",
    "RestrictedWorkflowAccessError",
    "restricted",
    "imported after initial workflow load",
    "logging/__init__.py",
)


@dataclass
class ProbeWorker:
    """A running `tests.helpers.sandbox_logging_worker`, under the project's supervisor.

    The worker writes its log lines to stderr and nothing to stdout; the supervisor puts
    both in one file, so "stderr" below is that file, where nothing else may appear.
    """

    supervisor: Supervisor
    name: str
    task_queue: str

    def stderr(self) -> str:
        return self.supervisor.output(self.name)

    def wait_for(self, text: str, count: int, within: float) -> None:
        """Wait until stderr holds `text` `count` times; fail with stderr if it does not."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.stderr().count(text) >= count:
                return
            if self.name in self.supervisor.exited():
                raise AssertionError(f"the probe worker exited:\n{self.stderr()}")
            time.sleep(0.1)
        raise AssertionError(f"{text!r} x{count} not logged in {within:g}s:\n{self.stderr()}")

    def stop(self) -> None:
        """SIGTERM, and wait: stopping the worker flushes whatever it still had to say."""
        self.supervisor.stop(self.name, timeout=15)


@pytest.fixture
def start_probe(dev_server: DevServer, tmp_path: Path) -> Iterator[Callable[[str], ProbeWorker]]:
    """Starts the probe worker with a log format; every worker started is stopped after."""
    supervisor = Supervisor()

    def start(fmt: str) -> ProbeWorker:
        queue = f"sandbox-logging-{uuid.uuid4().hex[:10]}"
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": dev_server.address,
            "TEMPORAL_NAMESPACE": "default",
            "RESEARCH_ORCHESTRATOR_QUEUE": queue,
            "RESEARCH_LOG_FORMAT": fmt,
            "RESEARCH_GRACEFUL_SHUTDOWN_SECONDS": "2",
        }
        name = f"probe-{fmt}"
        module = "tests.helpers.sandbox_logging_worker"
        supervisor.start(module_spec(name, module, env, tmp_path / f"{name}.log"))
        worker = ProbeWorker(supervisor, name, queue)
        worker.wait_for("worker started", 1, READY_WITHIN_SECONDS)
        return worker

    try:
        yield start
    finally:
        supervisor.stop_all(timeout=15)


async def exercise(client: Client, probe: ProbeWorker) -> None:
    """A run whose first task fails, and one whose input never decodes (twice, at least)."""
    fails_once = await client.start_workflow(
        FAILS_ONCE_WORKFLOW,
        "probe",
        id=f"sandbox-logging-{uuid.uuid4().hex[:10]}",
        task_queue=probe.task_queue,
    )
    async with asyncio.timeout(FAILURES_WITHIN_SECONDS):
        assert await fails_once.result() == "done probe"
    undecodable = await client.start_workflow(
        TYPED_INPUT_WORKFLOW,
        {"count": "not a number"},
        id=f"sandbox-logging-{uuid.uuid4().hex[:10]}",
        task_queue=probe.task_queue,
    )
    try:
        await asyncio.to_thread(
            probe.wait_for,
            f"{FAILED_ACTIVATION} {TYPED_INPUT_WORKFLOW}",
            2,
            FAILURES_WITHIN_SECONDS,
        )
    finally:
        await undecodable.terminate("the test has seen what it needed")
    await asyncio.to_thread(probe.stop)


async def logged_through_the_exercise(
    client: Client, start_probe: Callable[[str], ProbeWorker], log_format: str
) -> str:
    """What a probe worker logging in `log_format` wrote to stderr through `exercise`, once
    its logging is shown to have held."""
    probe = await asyncio.to_thread(start_probe, log_format)
    await exercise(client, probe)
    stderr = probe.stderr()
    for symptom in BROKEN_LOGGING:
        assert symptom not in stderr, f"{symptom!r} on stderr:\n{stderr}"
    assert stderr.count(f"{FAILED_ACTIVATION} {FAILS_ONCE_WORKFLOW}") == 1, stderr
    assert "worker stopped" in stderr, stderr
    return stderr


async def test_json_lines_survive_a_failing_workflow_task(
    client: Client, start_probe: Callable[[str], ProbeWorker]
) -> None:
    stderr = await logged_through_the_exercise(client, start_probe, "json")

    records = []
    for line in stderr.splitlines():
        if not line.strip() or CORE_TARGET in line:
            continue
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    failed = [r for r in records if str(r.get("event", "")).startswith(FAILED_ACTIVATION)]
    by_workflow = {
        name: [r for r in failed if name in r["event"]]
        for name in (FAILS_ONCE_WORKFLOW, TYPED_INPUT_WORKFLOW)
    }
    [first_task] = by_workflow[FAILS_ONCE_WORKFLOW]
    assert first_task["level"] == "warning"
    assert first_task["exception"].startswith("Traceback (most recent call last)")
    assert first_task["exception"].endswith(f"RuntimeError: {FIRST_TASK_ERROR}")
    assert len(by_workflow[TYPED_INPUT_WORKFLOW]) >= 2
    for record in by_workflow[TYPED_INPUT_WORKFLOW]:
        assert "validation error for ProbeInput" in record["exception"]
    # The workflow's own log line, written from inside the sandbox too, once per task.
    assert sum(r["event"].startswith("probe workflow running") for r in records) == 2


async def test_console_lines_survive_a_failing_workflow_task(
    client: Client, start_probe: Callable[[str], ProbeWorker]
) -> None:
    stderr = await logged_through_the_exercise(client, start_probe, "console")

    lines = stderr.splitlines()
    start = next(
        i for i, line in enumerate(lines) if f"{FAILED_ACTIVATION} {FAILS_ONCE_WORKFLOW}" in line
    )
    assert "[warning" in lines[start]
    assert lines[start + 1] == "Traceback (most recent call last):"
    assert f"RuntimeError: {FIRST_TASK_ERROR}" in lines[start + 1 :]
    assert stderr.count("probe workflow running") == 2
