"""The plain `temporal` CLI, as a caller in another language would use it, against a server of
the tests."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

from research_cli.embedded import temporal_binary
from research_shared.names import WORKFLOW_TYPE
from tests.helpers.processes import DevServer


async def temporal_cli(server: DevServer, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `temporal ARGS --address ...` off the event loop: a worker in the test's own
    process may have to answer before the command returns (an update waits for its result)."""
    return await asyncio.to_thread(
        subprocess.run,
        [temporal_binary(), *args, "--address", server.address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def start_with_cli(server: DevServer, queue: str, *input_args: str) -> str:
    """Start a research run with `temporal workflow start`; returns its workflow id."""
    workflow_id = f"cli-{uuid.uuid4().hex[:8]}"
    started = await temporal_cli(
        server,
        "workflow",
        "start",
        "--type",
        WORKFLOW_TYPE,
        "--task-queue",
        queue,
        "--workflow-id",
        workflow_id,
        *input_args,
    )
    assert started.returncode == 0, started.stderr
    return workflow_id
