"""The plain `temporal` CLI, as a caller in another language would use it, against a server of
the tests."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import uuid
from pathlib import Path

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


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    """The `temporal` commands of the README's shell blocks, split as a shell splits them."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("temporal "):
                commands.append(shlex.split(line, comments=True))
    return commands


def readme_command(*words: str, without: str = "") -> list[str]:
    """The README's one `temporal` command holding each of `words` (in some argument) and
    no argument holding `without`: what a reader would copy."""
    found = [
        command
        for command in readme_commands()
        if all(any(word in arg for arg in command) for word in words)
        and not (without and any(without in arg for arg in command))
    ]
    assert len(found) == 1, f"the README has {len(found)} temporal commands with {words}"
    return found[0]


async def run_readme_command(
    server: DevServer, command: list[str], workflow_id: str, queue: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run a command of the README as it stands, with the run's id for `ID` and the test's
    queue for the default one; a `workflow start` gets `--workflow-id`."""
    args = [workflow_id if arg == "ID" else arg for arg in command[1:]]
    if queue:
        args = [queue if arg == "research-orchestrator" else arg for arg in args]
    if args[:2] == ["workflow", "start"]:
        args += ["--workflow-id", workflow_id]
    return await temporal_cli(server, *args)
