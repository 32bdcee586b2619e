"""Named timeout and retry presets, one per activity.

The orchestrator passes a preset to every activity it schedules, so each activity carries
its own retry policy, start-to-close timeout and heartbeat timeout in the event history.
Values are chosen for the work each step does:

- `web_search` is short and cheap to repeat: a tight start-to-close, a short heartbeat
  timeout so a dead search worker is noticed in seconds, and a schedule-to-close that
  bounds how long one failing search may hold up the run before it is reported as failed.
- the model steps (`triage`, `clarify`, `plan`, `reflect`, `synthesize`, `review`,
  `revise`) wait on a model: a start-to-close sized to how much the step reads and writes,
  a short heartbeat timeout (the LLM worker heartbeats every few seconds while it waits,
  so 15 s is several missed beats, and a dead worker is noticed in seconds, not at the
  end of the start-to-close), fewer attempts because each one costs tokens, and a
  schedule-to-close that bounds the step as a whole, rate-limit waits included, so no
  provider can stall a run for hours. Every model step has a preset of its own, so one
  step's deadline cannot move with another's.

tests/test_depth_e2e.py checks these numbers in a real run's history against the table in
the README, and that no model step may take an hour.
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


def _model_step(start_to_close: timedelta, schedule_to_close: timedelta) -> ActivityPreset:
    """A model step's preset: deadlines of its own, and the heartbeat timeout and retry
    policy every model step shares."""
    return ActivityPreset(
        start_to_close=start_to_close,
        heartbeat=timedelta(seconds=15),
        schedule_to_close=schedule_to_close,
        retry=_MODEL_RETRY,
    )


# Each model step's schedule-to-close leaves room for every attempt to run most of its
# start-to-close plus the backoff between them (2 + 4 + 8 + 16 s over five attempts); past
# it the step fails and says so.

# Triage reads the question alone and answers yes or no with a reason.
TRIAGE = _model_step(start_to_close=timedelta(minutes=2), schedule_to_close=timedelta(minutes=10))

# Clarify reads the question alone and writes at most five short questions: triage's size.
CLARIFY = _model_step(start_to_close=timedelta(minutes=2), schedule_to_close=timedelta(minutes=10))

# The plan reads the question and the answers and writes up to twenty queries with reasons:
# more output than triage, still no retrieved text.
PLAN = _model_step(start_to_close=timedelta(minutes=3), schedule_to_close=timedelta(minutes=15))

# A reflection reads one short note per source (at most 80 notes of 300 characters, a few
# thousand tokens, never whole pages) and answers with a verdict, gaps and a few queries. It
# runs between rounds, with the run waiting on it: triage's deadlines, which that much
# reading and writing fits well inside.
REFLECT = _model_step(start_to_close=timedelta(minutes=2), schedule_to_close=timedelta(minutes=10))

# The writer reads every source's text (up to 64 KB a search, tens of thousands of tokens)
# and writes the whole report: the longest step, minutes at a slow provider.
SYNTHESIZE = _model_step(
    start_to_close=timedelta(minutes=10), schedule_to_close=timedelta(minutes=40)
)

# A review reads as much as the writer (every source and the draft) but writes only a
# verdict and a few notes; reading is the fast part of a model call, so half the writer's
# start-to-close, and 25 minutes for its five attempts as plan has 15 for its five.
REVIEW = _model_step(start_to_close=timedelta(minutes=5), schedule_to_close=timedelta(minutes=25))

# A revision reads what the writer read plus the draft and the notes, and writes the whole
# report again: the writer's deadlines, for the same work.
REVISE = _model_step(start_to_close=timedelta(minutes=10), schedule_to_close=timedelta(minutes=40))

# Writing the audit manifest is a few store writes; retried for a while, as a store outage
# passes, then reported. It does not heartbeat: its heartbeat timeout is its start-to-close.
RECORD_AUDIT = ActivityPreset(
    start_to_close=timedelta(seconds=60),
    heartbeat=timedelta(seconds=60),
    schedule_to_close=timedelta(minutes=10),
    retry=WEB_SEARCH.retry,
)
