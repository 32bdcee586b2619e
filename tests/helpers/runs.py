"""Starting a research run as the tests do, and reading its audit back with the CLI; a search
provider for the tests of `record_audit`, which never search."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

from temporalio.client import Client, WorkflowHandle

from research_search.providers import SearchProgress
from research_shared.models import ResearchReport, SearchHit
from research_shared.names import WORKFLOW_TYPE


async def start_run(
    client: Client, task_queue: str, request: dict[str, Any], prefix: str
) -> WorkflowHandle[Any, ResearchReport]:
    """Start a `DeepResearchWorkflow` run of `request` (a `ResearchRequest` as JSON) on
    `task_queue`, with a fresh id that starts with `prefix`."""
    return await client.start_workflow(
        WORKFLOW_TYPE,
        request,
        id=f"{prefix}-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
        result_type=ResearchReport,
    )


async def audit_manifest(workflow_id: str, address: str) -> dict[str, Any]:
    """`deep-research audit ID --json`'s manifest, which must verify."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "research_cli", "audit", workflow_id, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TEMPORAL_ADDRESS": address},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["verified"] is True, shown
    manifest: dict[str, Any] = shown["manifest"]
    return manifest


class NoSearch:
    """A provider the audit tests never call."""

    name = "none"

    async def search(
        self,
        query: str,
        max_results: int,
        progress: SearchProgress | None = None,
        on_progress: Any = None,
    ) -> list[SearchHit]:
        raise AssertionError("not called")

    async def aclose(self) -> None:
        return None
