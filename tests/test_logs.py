"""Logs that say which run: a real research through the three pools as real processes, with
JSON logs, and the captured lines of each pool read back.

Every line inside an activity names its run, activity and attempt; the workflow's lines name
their run; every line of every pool (structlog's, the stdlib's, the SDK's Python and Rust
loggers) is one JSON object, and none holds a configured secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from research_shared.models import Outcome, ResearchReport, ResearchRequest
from research_shared.names import WORKFLOW_TYPE
from research_shared.temporal_client import CORE_LOGGER
from tests.helpers.processes import OFFLINE_PROVIDERS, DevServer, WorkerProcesses, own_queues

pytestmark = pytest.mark.e2e

POOLS = ("orchestrator", "search", "llm")
ACTIVITY_FIELDS = ("workflow_id", "run_id", "activity_type", "activity_id", "attempt", "task_queue")
# A key the workers hold but never need (the providers are offline): it must never be logged.
PLANTED_SECRET = "tvly-planted-" + uuid.uuid4().hex
# Lines the activities write on every run, by pool.
ACTIVITY_EVENTS = {
    "search": {"search started", "search finished"},
    "llm": {"model step started", "model step finished"},
}


@pytest.fixture(scope="module")
def json_workers(
    dev_server: DevServer, session_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcesses]:
    """The three pools with their default log format (JSON, stderr being no terminal) on
    queues of their own."""
    workers = WorkerProcesses(
        address=dev_server.address,
        log_dir=tmp_path_factory.mktemp("json-logs"),
        env={
            "RESEARCH_DATA_DIR": str(session_data_dir),
            **OFFLINE_PROVIDERS,
            # The default, auto: the workers' stderr is a file here, as in a container.
            "RESEARCH_LOG_FORMAT": "auto",
            **own_queues("logs"),
        },
        # At DEBUG the SDK's Rust core has something to say (its INFO lines), so the
        # orchestrator shows that the core's lines are forwarded through the same formatter.
        pool_env={
            "search": {"TAVILY_API_KEY": PLANTED_SECRET},
            "orchestrator": {"RESEARCH_LOG_LEVEL": "DEBUG"},
        },
    )
    workers.start(*POOLS)
    yield workers
    workers.stop_all()


async def scheduled_activity_types(handle: WorkflowHandle[Any, Any]) -> dict[str, set[str]]:
    """The activity types a run scheduled, by task queue, read from its history."""
    by_queue: dict[str, set[str]] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            by_queue.setdefault(attrs.task_queue.name, set()).add(attrs.activity_type.name)
    return by_queue


def json_lines(text: str, pool: str) -> list[dict[str, Any]]:
    """Every line of a pool's output as a JSON object; a line that is not one fails."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{pool} line {number} is not JSON: {line!r}")
        assert isinstance(record, dict), f"{pool} line {number}: {line!r}"
        records.append(record)
    return records


async def test_every_line_of_a_research_names_its_run(
    client: Client, json_workers: WorkerProcesses
) -> None:
    queue = json_workers.env["RESEARCH_ORCHESTRATOR_QUEUE"]
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        # The plan waits a second for a review nobody gives, then is approved: the workflow
        # writes a line of its own on the way.
        ResearchRequest(
            question="How do I compress data with gzip?",
            max_searches=2,
            approve_plan=True,
            approval_timeout_seconds=1,
            on_approval_timeout="approve",
        ),
        id=f"logs-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        result_type=ResearchReport,
    )
    report = await handle.result()
    assert report.outcome is Outcome.COMPLETED
    run_id = handle.result_run_id
    assert run_id
    json_workers.stop_all()  # the last lines are flushed as each worker stops

    # Every model step the run scheduled (a default run reflects and reviews too) logged its
    # lines; the search pool's lines come from the searches.
    scheduled = await scheduled_activity_types(handle)
    llm_queue = json_workers.env["RESEARCH_LLM_QUEUE"]
    expected_types = {"search": {"web_search"}, "llm": scheduled[llm_queue]}
    assert {"plan", "reflect", "synthesize", "review"} <= expected_types["llm"], expected_types

    by_pool = {pool: json_lines(json_workers.log(pool), pool) for pool in POOLS}
    for pool, records in by_pool.items():
        assert records, f"{pool} logged nothing"
        assert any(r.get("event") == "worker stopped" for r in records), pool
        for record in records:
            assert PLANTED_SECRET not in json.dumps(record), f"{pool} logged the key: {record}"
            assert {"event", "level", "timestamp"} <= record.keys(), record
            # An activity field on a line means the line was written inside an activity:
            # then it carries all of them, and they name this run.
            if "activity_id" in record:
                missing = [f for f in ACTIVITY_FIELDS if record.get(f) in (None, "")]
                assert not missing, f"{pool}: {record} lacks {missing}"

    for pool, events in ACTIVITY_EVENTS.items():
        queue_name = json_workers.env[f"RESEARCH_{pool.upper()}_QUEUE"]
        inside = [r for r in by_pool[pool] if r.get("event") in events]
        assert {r["event"] for r in inside} == events, f"{pool}: {[r['event'] for r in inside]}"
        for record in inside:
            assert record["workflow_id"] == handle.id, record
            assert record["run_id"] == run_id, record
            assert record["task_queue"] == queue_name, record
            assert record["attempt"] == 1, record
            assert record["activity_id"], record
        types = {r["activity_type"] for r in inside}
        assert types == expected_types[pool], types

    # The workflow's own line (through workflow.logger, inside the sandbox).
    workflow_lines = [
        r for r in by_pool["orchestrator"] if r.get("logger") == "temporalio.workflow"
    ]
    assert workflow_lines, "the workflow logged nothing"
    for record in workflow_lines:
        assert (record["workflow_id"], record["run_id"]) == (handle.id, run_id), record
        assert "temporal_workflow" not in record, "the SDK's details are flattened"
        assert "{" not in record["event"], "the details are fields, not part of the message"
    # The SDK's own loggers, Python and Rust, come out as the same JSON lines as ours.
    loggers = {str(r.get("logger", "")) for pool in POOLS for r in by_pool[pool]}
    assert "temporalio.worker._worker" in loggers, sorted(loggers)
    assert any(name.startswith(CORE_LOGGER) for name in loggers), sorted(loggers)


LOG_ONE_LINE = """
import structlog
from research_shared.logs import configure_logging
configure_logging(fmt="auto", service="terminal-check")
structlog.get_logger().info("hello from a terminal", answer=42)
"""


def test_auto_logs_console_text_at_a_terminal() -> None:
    """The same default gives a person at a terminal readable lines, not JSON."""
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-c", LOG_ONE_LINE],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=secondary,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        output = b""
        with contextlib.suppress(OSError):  # EIO once everything written has been read
            while chunk := os.read(primary, 4096):
                output += chunk
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    assert done.returncode == 0
    text = output.decode()
    assert "hello from a terminal" in text and "answer=42" in text, text
    assert not text.lstrip().startswith("{"), text
