"""Workflows that make the SDK log from inside the workflow sandbox, for the logging tests.

`FailsOnceWorkflow` fails its first workflow task (the SDK logs "Failed activation" with the
exception) and completes on the retry; `TypedInputWorkflow` takes a pydantic model, so a
start with input that does not fit it fails every task in decoding. Both log through
`workflow.logger` as well, which runs the worker's logging handlers inside the sandbox.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

FAILS_ONCE_WORKFLOW = "SandboxLoggingFailsOnce"
TYPED_INPUT_WORKFLOW = "SandboxLoggingTypedInput"
FIRST_TASK_ERROR = "the first workflow task fails on purpose"
# Events of a run before its first workflow task completes: started, task scheduled, task
# started. The retry of a failed first task sees more (the failure, a new schedule and start).
_FIRST_TASK_HISTORY_LENGTH = 3


class ProbeInput(BaseModel):
    """What `TypedInputWorkflow` expects; the test sends something else."""

    count: int


@workflow.defn(name=FAILS_ONCE_WORKFLOW)
class FailsOnceWorkflow:
    """Raises on its first workflow task, so the SDK logs the failure with its traceback."""

    @workflow.run
    async def run(self, name: str) -> str:
        workflow.logger.info("probe workflow running", extra={"probe": {"name": name}})
        if workflow.info().get_current_history_length() <= _FIRST_TASK_HISTORY_LENGTH:
            raise RuntimeError(FIRST_TASK_ERROR)
        return f"done {name}"


@workflow.defn(name=TYPED_INPUT_WORKFLOW)
class TypedInputWorkflow:
    """Never runs its body with input that does not decode into `ProbeInput`."""

    @workflow.run
    async def run(self, input: ProbeInput) -> int:
        return input.count
