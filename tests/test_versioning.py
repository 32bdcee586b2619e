"""Deploys that never break a running workflow: Worker Versioning on the session's dev server.

A run starts on version 1 of the orchestrator (the real pool, versioned through
RESEARCH_DEPLOYMENT_NAME and RESEARCH_BUILD_ID) and waits for its plan to be approved.
Version 2, whose workflow would not replay version 1's histories, is deployed and made
current with the `temporal` CLI, as an operator does (docs/operations.md). The old run is
approved and completes on version 1; a new run runs on version 2.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.common import VersioningBehavior
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from research_shared.models import Outcome, Phase, ResearchReport, ResearchRequest, ResearchStatus
from research_shared.names import REVIEW_PLAN_UPDATE, STATUS_QUERY, WORKFLOW_TYPE
from tests.helpers.processes import OFFLINE_PROVIDERS, DevServer, WorkerProcesses, own_queues
from tests.helpers.temporal_cli import temporal_cli
from tests.helpers.versioned_orchestrator_v2 import SERVED_BY, DeepResearchWorkflowV2
from tests.helpers.worker_commands import module_spec

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
V1, V2 = "1.0", "2.0"
WAIT_SECONDS = 60.0


@pytest.fixture
def versioned(
    dev_server: DevServer, session_data_dir: Path, tmp_path: Path
) -> Iterator[WorkerProcesses]:
    """Version 1 of a fresh orchestrator deployment, and unversioned activity pools."""
    suffix = uuid.uuid4().hex[:8]
    workers = WorkerProcesses(
        address=dev_server.address,
        log_dir=tmp_path / "logs",
        env={
            "RESEARCH_DATA_DIR": str(session_data_dir),
            **OFFLINE_PROVIDERS,
            **own_queues("versioned"),
        },
        pool_env={
            "orchestrator": {
                "RESEARCH_DEPLOYMENT_NAME": f"research-orchestrator-{suffix}",
                "RESEARCH_BUILD_ID": V1,
            }
        },
    )
    try:
        workers.start("orchestrator", "search", "llm")
        yield workers
    finally:
        workers.stop_all()


async def set_current_version(server: DevServer, deployment: str, build_id: str) -> None:
    """`temporal worker deployment set-current-version`, once the version's worker has been
    seen polling (the server refuses a version it has not seen poll yet)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        done = await temporal_cli(
            server,
            "worker",
            "deployment",
            "set-current-version",
            "--deployment-name",
            deployment,
            "--build-id",
            build_id,
            "--yes",
        )
        if done.returncode == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"set-current-version {build_id} failed:\n{done.stderr}")
        await asyncio.sleep(0.5)


async def open_runs_of(server: DevServer, deployment: str, build_id: str) -> str:
    """What docs/operations.md's drain query lists (visibility lags a little behind)."""
    query = (
        f'TemporalWorkerDeploymentVersion="{deployment}:{build_id}" AND ExecutionStatus="Running"'
    )
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        listed = await temporal_cli(server, "workflow", "list", "--query", query)
        assert listed.returncode == 0, listed.stderr
        if listed.stdout.strip() or asyncio.get_running_loop().time() > deadline:
            return listed.stdout
        await asyncio.sleep(0.5)


async def wait_for_phase(handle: WorkflowHandle[object, object], phase: Phase) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            status = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
            if status.phase is phase:
                return
            await asyncio.sleep(0.2)


async def served_by(client: Client, workflow_id: str) -> tuple[str, VersioningBehavior]:
    """The build a run is on and how it is bound to it, as the server records them."""
    description = await client.get_workflow_handle(workflow_id).describe()
    info = description.raw_description.workflow_execution_info.versioning_info
    return info.deployment_version.build_id, VersioningBehavior(info.behavior)


async def test_old_runs_finish_on_their_version_while_new_runs_take_the_new_one(
    client: Client, dev_server: DevServer, versioned: WorkerProcesses, tmp_path: Path
) -> None:
    deployment = versioned.pool_env["orchestrator"]["RESEARCH_DEPLOYMENT_NAME"]
    queue = versioned.env["RESEARCH_ORCHESTRATOR_QUEUE"]
    await set_current_version(dev_server, deployment, V1)

    old = await client.start_workflow(
        WORKFLOW_TYPE,
        ResearchRequest(question="How do I read a gzip file?", max_searches=2, approve_plan=True),
        id=f"versioned-old-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        result_type=ResearchReport,
    )
    await wait_for_phase(old, Phase.AWAITING_APPROVAL)
    assert await served_by(client, old.id) == (V1, VersioningBehavior.PINNED)

    # Deploy version 2 next to version 1, and make it current.
    env = {
        **versioned.full_env(),
        **versioned.pool_env["orchestrator"],
        "RESEARCH_BUILD_ID": V2,
    }
    versioned.supervisor.start(
        module_spec(
            "orchestrator-v2",
            "tests.helpers.versioned_orchestrator_v2",
            env,
            tmp_path / "orchestrator-v2.log",
        )
    )
    await set_current_version(dev_server, deployment, V2)
    # The runbook's drain check finds the old run among version 1's open runs.
    assert old.id in await open_runs_of(dev_server, deployment, V1)
    # And its search by question: list the runs as JSON, ask each its status.
    listed = await temporal_cli(
        dev_server,
        "workflow",
        "list",
        "--query",
        f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running"',
        "--output",
        "json",
    )
    assert listed.returncode == 0, listed.stderr
    assert old.id in [run["execution"]["workflowId"] for run in json.loads(listed.stdout)]
    status = await temporal_cli(
        dev_server,
        "workflow",
        "query",
        "--workflow-id",
        old.id,
        "--type",
        STATUS_QUERY,
        "--output",
        "json",
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["queryResult"][0]["question"] == "How do I read a gzip file?"

    new = await client.start_workflow(
        WORKFLOW_TYPE,
        {"question": "How do I write a tar archive?"},
        id=f"versioned-new-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        result_type=dict,
    )
    assert (await new.result())["served_by"] == SERVED_BY
    assert await served_by(client, new.id) == (V2, VersioningBehavior.PINNED)

    # The old run goes on where it waited, on version 1, to the end.
    await old.execute_update(REVIEW_PLAN_UPDATE, {"decision": "approve"})
    report = await old.result()
    assert report.outcome is Outcome.COMPLETED
    assert report.stats.searches_succeeded == report.stats.searches_planned >= 1
    assert await served_by(client, old.id) == (V1, VersioningBehavior.PINNED)
    history = await old.fetch_history()
    completed = [
        e.workflow_task_completed_event_attributes.deployment_version.build_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    assert completed and set(completed) == {V1}, completed

    # Pinning was what kept it working: version 2 cannot replay that history.
    with pytest.raises(NondeterminismError):
        await Replayer(
            workflows=[DeepResearchWorkflowV2], data_converter=client.data_converter
        ).replay_workflow(history)

    # The runbook's replay, step by step: export the history with the CLI, replay it here.
    exported = await temporal_cli(
        dev_server, "workflow", "show", "--workflow-id", old.id, "--output", "json"
    )
    assert exported.returncode == 0, exported.stderr
    saved = tmp_path / "history.json"
    saved.write_text(exported.stdout)
    replayed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "scripts" / "replay_history.py"), str(saved)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert f"{saved}: replays" in replayed.stdout
