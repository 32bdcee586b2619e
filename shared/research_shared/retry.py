"""Named timeout and retry presets, one per activity.

The orchestrator passes a preset to every activity it schedules, so each activity carries
its own retry policy, start-to-close timeout and heartbeat timeout in the event history.
Values are chosen for the work each step does:

- `web_search` is short and cheap to repeat: a tight start-to-close, a short heartbeat
  timeout so a dead search worker is noticed in seconds, and a schedule-to-close that
  bounds how long one failing search may hold up the run before it is reported as failed.
- the model steps (`triage`, `clarify`, `plan`, `reflect`, `synthesize`, `review`,
  `revise`) wait on a model: a longer start-to-close, a short heartbeat timeout (the LLM
  worker heartbeats while it waits), fewer attempts because each one costs tokens, and a
  schedule-to-close that bounds the step as a whole, rate-limit waits included, so no
  provider can stall a run for hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy

from research_shared import errors


class ActivityOptions(TypedDict):
    """The keyword arguments of `workflow.start_activity` a preset sets."""

    start_to_close_timeout: timedelta
    heartbeat_timeout: timedelta
    schedule_to_close_timeout: timedelta
    retry_policy: RetryPolicy


@dataclass(frozen=True)
class ActivityPreset:
    """Timeouts and retry policy for one kind of activity."""

    start_to_close: timedelta
    heartbeat: timedelta
    schedule_to_close: timedelta
    """The deadline of the step as a whole, over all its attempts and the waits between."""
    retry: RetryPolicy

    def options(self) -> ActivityOptions:
        """Keyword arguments for `workflow.start_activity`."""
        return {
            "start_to_close_timeout": self.start_to_close,
            "heartbeat_timeout": self.heartbeat,
            "schedule_to_close_timeout": self.schedule_to_close,
            "retry_policy": self.retry,
        }


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

# Each model step's schedule-to-close leaves room for every attempt to run most of its
# start-to-close plus the backoff between them; past it the step fails and says so.
PLAN = ActivityPreset(
    start_to_close=timedelta(minutes=3),
    heartbeat=timedelta(seconds=15),
    schedule_to_close=timedelta(minutes=15),
    retry=_MODEL_RETRY,
)

SYNTHESIZE = ActivityPreset(
    start_to_close=timedelta(minutes=10),
    heartbeat=timedelta(seconds=15),
    schedule_to_close=timedelta(minutes=40),
    retry=_MODEL_RETRY,
)

# Triage and clarify are short model calls: plan's policy, a shorter start-to-close.
TRIAGE = ActivityPreset(
    start_to_close=timedelta(minutes=2),
    heartbeat=PLAN.heartbeat,
    schedule_to_close=timedelta(minutes=10),
    retry=PLAN.retry,
)
CLARIFY = TRIAGE

# Reflection and review read notes and a draft and answer briefly: plan's preset.
REFLECT = PLAN
REVIEW = PLAN
# A revision writes a whole report again: synthesize's preset.
REVISE = SYNTHESIZE
# Writing the audit manifest is a few store writes; retried for a while, as a store outage
# passes, then reported. It does not heartbeat: its heartbeat timeout is its start-to-close.
RECORD_AUDIT = ActivityPreset(
    start_to_close=timedelta(seconds=60),
    heartbeat=timedelta(seconds=60),
    schedule_to_close=timedelta(minutes=10),
    retry=WEB_SEARCH.retry,
)
