"""Named timeout and retry presets, one per activity.

The orchestrator passes a preset to every activity it schedules, so each activity carries
its own retry policy, start-to-close timeout and heartbeat timeout in the event history.
Values are chosen for the work each step does:

- `web_search` is short and cheap to repeat: a tight start-to-close, a short heartbeat
  timeout so a dead search worker is noticed in seconds, and a schedule-to-close that
  bounds how long one failing search may hold up the run before it is reported as failed.
- `plan` and `synthesize` wait on a model: longer start-to-close, the same short
  heartbeat timeout (the LLM worker heartbeats while it waits), fewer attempts because
  each one costs tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

from research_shared import errors


@dataclass(frozen=True)
class ActivityPreset:
    """Timeouts and retry policy for one kind of activity."""

    start_to_close: timedelta
    heartbeat: timedelta
    retry: RetryPolicy
    schedule_to_close: timedelta | None = None

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `workflow.execute_activity`."""
        opts: dict[str, Any] = {
            "start_to_close_timeout": self.start_to_close,
            "heartbeat_timeout": self.heartbeat,
            "retry_policy": self.retry,
        }
        if self.schedule_to_close is not None:
            opts["schedule_to_close_timeout"] = self.schedule_to_close
        return opts


WEB_SEARCH = ActivityPreset(
    start_to_close=timedelta(seconds=60),
    heartbeat=timedelta(seconds=10),
    schedule_to_close=timedelta(minutes=10),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=6,
        non_retryable_error_types=list(errors.NON_RETRYABLE),
    ),
)

# Model calls cost tokens: fewer attempts than searches, a slower backoff.
_MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=list(errors.NON_RETRYABLE),
)

PLAN = ActivityPreset(
    start_to_close=timedelta(minutes=3), heartbeat=timedelta(seconds=15), retry=_MODEL_RETRY
)

SYNTHESIZE = ActivityPreset(
    start_to_close=timedelta(minutes=10), heartbeat=timedelta(seconds=15), retry=_MODEL_RETRY
)

# Triage and clarify are short model calls: plan's policy, a shorter start-to-close.
TRIAGE = ActivityPreset(
    start_to_close=timedelta(minutes=2), heartbeat=PLAN.heartbeat, retry=PLAN.retry
)
CLARIFY = TRIAGE
