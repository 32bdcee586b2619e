"""Committed histories of real runs replay against today's workflow code.

A change to `DeepResearchWorkflow` that would break runs already in flight (a different
command sequence for the same history) fails here; such a change must go behind
`workflow.patched(...)`. The histories are recorded by `python -m tests.histories.record`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from research_orchestrator.workflows import DeepResearchWorkflow
from research_shared.converter import DATA_CONVERTER

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_scenario_has_a_history() -> None:
    names = {p.stem for p in HISTORIES}
    # Recorded before research went in rounds: they replay the single pass.
    assert {"clarified", "plan_edited", "cancelled", "partly_failed"} <= names
    # Recorded since: rounds with a review loop, a budget, edits, finishing, a sign-off.
    assert {
        "rounds",
        "budget_reached",
        "searches_edited",
        "finished_early",
        "report_reviewed",
        "audited",
    } <= names
    # A token budget searching one at a time, before and since a search reserved the write.
    assert {"token_budget", "strict_budget"} <= names
    # A report cut short by its review's timeout and a cancelled run: recorded before every
    # report was audited, and since.
    assert {"review_timed_out", "cancelled_in_rounds"} <= names
    assert {"review_timed_out_audited", "cancelled_audited"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"history-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[DeepResearchWorkflow], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.stem}: {result.replay_failure}"
