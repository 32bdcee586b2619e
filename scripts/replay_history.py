"""Replay a research run's event history against the orchestrator code checked out here, to
debug a run or to check that a change still replays old runs (docs/operations.md).

    temporal workflow show --workflow-id ID --output json > history.json
    .venv/bin/python scripts/replay_history.py history.json [more.json ...]

The histories are read with this process's converter, from the same settings as the workers
(RESEARCH_PAYLOAD_STORE to fetch payloads stored aside, the encryption key to open them).
Exit 0 when every history replays; 1 with the run and the reason when one does not (a
nondeterminism error names the command that differs); 2 when a file or a setting cannot be read.
Set breakpoints in the workflow code and run this under a debugger to step through a run
as it happened.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import ValidationError
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from research_cli.main import exit_without_finalizing
from research_orchestrator.workflows import DeepResearchWorkflow
from research_shared.payloads import Payloads, open_payloads
from research_shared.settings import describe_settings_error


async def replay(paths: list[Path]) -> int:
    try:
        payloads = open_payloads()
    except ValidationError as err:
        print(f"error: {describe_settings_error(err) or err}", file=sys.stderr)
        return 2
    try:
        return await _replay_all(payloads, paths)
    finally:
        await payloads.aclose()


async def _replay_all(payloads: Payloads, paths: list[Path]) -> int:
    replayer = Replayer(workflows=[DeepResearchWorkflow], data_converter=payloads.converter)
    failed = 0
    for path in paths:
        try:
            history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            print(f"error: cannot read {path}: {err}", file=sys.stderr)
            return 2
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failed += 1
            reason = " ".join(str(result.replay_failure).split())
            print(f"{path}: does not replay: {reason}", file=sys.stderr)
        else:
            print(f"{path}: replays")
    return 1 if failed else 0


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: replay_history.py HISTORY.json [...]", file=sys.stderr)
        return 2
    return asyncio.run(replay([Path(arg) for arg in sys.argv[1:]]))


if __name__ == "__main__":
    # A replay that passed once exited with SIGSEGV in the interpreter's finalization.
    exit_without_finalizing(main())
