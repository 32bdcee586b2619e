"""What the client hands back: a started run, a run's state, a page of runs, progress events.

These are read by people and other services (through the HTTP API too), so they are plain
models with stable field names; fields are added with defaults.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from research_shared.models import Phase, ResearchStatus, SearchQuery


class ExecutionStatus(StrEnum):
    """Temporal's state of the run's execution, whatever the workflow's own phase says."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TERMINATED = "terminated"
    CONTINUED_AS_NEW = "continued_as_new"
    TIMED_OUT = "timed_out"


class StartedRun(BaseModel):
    """A run `start` started, or found already started under the same id."""

    id: str
    created: bool = Field(description="False when the id named a run that already existed.")


class RunInfo(BaseModel):
    """A run's execution state and, when a worker answered, its `status` query."""

    id: str
    execution_status: ExecutionStatus
    started_at: datetime
    closed_at: datetime | None = None
    question: str = ""
    status: ResearchStatus | None = Field(
        default=None, description="The status query's answer; null while no worker answers."
    )


class RunSummary(BaseModel):
    """One run in a list: what visibility knows without asking a worker."""

    id: str
    execution_status: ExecutionStatus
    started_at: datetime
    closed_at: datetime | None = None
    question: str = ""


class RunPage(BaseModel):
    """A page of runs, newest first; `next_page_token` fetches the next page (null: none)."""

    runs: list[RunSummary]
    next_page_token: str | None = None


class PendingQuestion(BaseModel):
    """A clarifying question waiting for its answer; `index` is what the answer names."""

    index: int
    question: str


class EventType(StrEnum):
    """Kinds of progress event, in the order a run usually produces them."""

    STATUS = "status"
    PHASE = "phase"
    PAUSED = "paused"
    QUESTIONS = "questions"
    PLAN = "plan"
    SEARCH_STARTED = "search_started"
    SEARCH_FINISHED = "search_finished"
    DONE = "done"


class ResearchEvent(BaseModel):
    """One step of a run's progress. Which fields are set depends on `type`:

    - `status`: `status`, the whole status query, whenever it changed;
    - `phase`: `phase`; `paused`: `paused`;
    - `questions`: `questions`, the clarifying questions waiting for answers;
    - `plan`: `queries`, the plan waiting for its review;
    - `search_started`: `search` (its number in this run, from 1) and `query`;
    - `search_finished`: `search`, `query`, `outcome` (`ok`, `failed`, `timed_out`,
      `cancelled`), `hits` when it succeeded, `message` when it did not;
    - `done`: `execution_status`, and `outcome` (the report's) when the run completed.
    """

    type: EventType
    status: ResearchStatus | None = None
    phase: Phase | None = None
    paused: bool | None = None
    questions: list[PendingQuestion] | None = None
    queries: list[SearchQuery] | None = None
    search: int | None = None
    query: str | None = None
    outcome: str | None = None
    hits: int | None = None
    message: str | None = None
    execution_status: ExecutionStatus | None = None
