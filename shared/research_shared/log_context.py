"""Which run a log line belongs to: a worker interceptor that binds the running activity's
identity into structlog's context variables for as long as the activity runs.

Every line written while an activity runs (its own, its provider client's, the stdlib lines
of libraries it calls, the SDK's) then carries `workflow_id`, `run_id`, `activity_type`,
`activity_id`, `attempt` and `task_queue`, whichever logger wrote it: both chains of
`research_shared.logs` merge the context variables. The SDK runs each activity in a task of
its own, whose context is a copy, so one activity's fields never leak into another's lines.

Workflow lines need no interceptor: `workflow.logger` attaches the run's details to each
record, and `research_shared.logs` flattens them into the same fields.
"""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


def activity_fields(info: activity.Info) -> dict[str, Any]:
    """The fields every line written inside this activity carries."""
    return {
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "workflow_type": info.workflow_type,
        "activity_type": info.activity_type,
        "activity_id": info.activity_id,
        "attempt": info.attempt,
        "task_queue": info.task_queue,
    }


class _BindActivityFields(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with structlog.contextvars.bound_contextvars(**activity_fields(activity.info())):
            return await super().execute_activity(input)


class LogContextInterceptor(Interceptor):
    """Pass to `Worker(interceptors=[...])` of every pool that runs activities."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindActivityFields(next)
