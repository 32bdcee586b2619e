"""The workflow module is compiled once per process, and every sandboxed run still gets a
module of its own (`research_orchestrator._sandbox.compile_once`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from research_orchestrator._sandbox import compile_once
from research_orchestrator.workflows import DeepResearchWorkflow

PROBE = """
from temporalio import workflow

STATE: list[int] = []


@workflow.defn
class Probe:
    @workflow.run
    async def run(self) -> int:
        return len(STATE)
"""


class _KeepingRunner(SandboxedWorkflowRunner):
    """The SDK's sandbox, keeping each instance it creates so a test can look inside."""

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "instances", [])

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = super().create_instance(det)
        self.instances.append(instance)  # type: ignore[attr-defined]
        return instance


def _sandboxed_classes(cls: type, count: int) -> list[Any]:
    """The workflow class as `count` fresh sandboxes each imported it, as runs do (a
    sandboxed instance needs a running event loop: call it from a coroutine)."""
    runner = _KeepingRunner()
    defn = workflow._Definition.must_from_class(cls)
    for _ in range(count):
        runner.prepare_workflow(defn)
    # The sandbox keeps the class it imported under this name in the instance's globals.
    return [i.globals_and_locals["__temporal_workflow_class"] for i in runner.instances]  # type: ignore[attr-defined]


async def test_each_sandbox_runs_the_workflow_module_from_one_code_object() -> None:
    compile_once(DeepResearchWorkflow)
    first, second = _sandboxed_classes(DeepResearchWorkflow, 2)
    # Each run still has its own module: its own class, its own functions...
    assert first is not second
    assert first is not DeepResearchWorkflow
    assert first.run is not second.run
    # ...made from the same code, not compiled (or unmarshalled) again for each run.
    assert first.run.__code__ is second.run.__code__
    assert first._research.__code__ is second._research.__code__


def test_an_import_again_executes_the_module_into_a_new_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "compile_once_probe.py").write_text(PROBE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = importlib.import_module("compile_once_probe")
    compile_once(first.Probe)
    monkeypatch.delitem(sys.modules, "compile_once_probe")
    second = importlib.import_module("compile_once_probe")
    monkeypatch.delitem(sys.modules, "compile_once_probe")
    third = importlib.import_module("compile_once_probe")
    monkeypatch.delitem(sys.modules, "compile_once_probe")

    third.STATE.append(1)
    assert second.STATE == []
    assert second.Probe is not third.Probe
    assert second.Probe.run.__code__ is third.Probe.run.__code__
    # The import before `compile_once` compiled its own.
    assert first.Probe.run.__code__ is not second.Probe.run.__code__
