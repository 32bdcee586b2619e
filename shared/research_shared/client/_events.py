"""Progress events of a run, from two sources that each know what the other does not.

The event history says exactly when each search was scheduled and how it ended, with its
query; the `status` query says what the workflow's own state is (phase, pause, questions
and plan waiting for a person). `EventTracker` turns both into `ResearchEvent`s, each fact
once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.converter import DataConverter

from research_shared.client._models import EventType, PendingQuestion, ResearchEvent
from research_shared.models import ResearchStatus, WebSearchInput, WebSearchResult
from research_shared.names import WEB_SEARCH_ACTIVITY

T = TypeVar("T")

_CLOSED = {
    HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}
_SEARCH_ENDINGS = {
    HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed_out",
    HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "cancelled",
}


class EventTracker:
    """Remembers what was already reported, and reports what is new."""

    def __init__(self, converter: DataConverter) -> None:
        """`converter` is the client's: with its codec and payload store, it reads payloads
        the history holds encrypted or as references to the store."""
        self._converter = converter
        self._searches: dict[int, tuple[int, str]] = {}  # scheduled event id -> (number, query)
        self._status: ResearchStatus | None = None
        self.closed = False

    async def from_history(self, event: HistoryEvent) -> list[ResearchEvent]:
        """Events for one history event (none for most)."""
        kind = event.event_type
        if kind in _CLOSED:
            self.closed = True
            return []
        if kind == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name != WEB_SEARCH_ACTIVITY:
                return []
            query = await self._decoded(attrs.input.payloads, WebSearchInput)
            number = len(self._searches) + 1
            text = query.query if query is not None else ""
            self._searches[event.event_id] = (number, text)
            return [ResearchEvent(type=EventType.SEARCH_STARTED, search=number, query=text)]
        if kind == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            found = self._searches.get(done.scheduled_event_id)
            if found is None:
                return []
            result = await self._decoded(done.result.payloads, WebSearchResult)
            return [
                ResearchEvent(
                    type=EventType.SEARCH_FINISHED,
                    search=found[0],
                    query=found[1],
                    outcome="ok",
                    hits=len(result.hits) if result is not None else 0,
                )
            ]
        if kind in _SEARCH_ENDINGS:
            scheduled, message = _ending(event)
            found = self._searches.get(scheduled)
            if found is None:
                return []
            return [
                ResearchEvent(
                    type=EventType.SEARCH_FINISHED,
                    search=found[0],
                    query=found[1],
                    outcome=_SEARCH_ENDINGS[kind],
                    message=message,
                )
            ]
        return []

    async def _decoded(self, payloads: Sequence[Payload], model: type[T]) -> T | None:
        """The first payload as `model`, or None when there is none or it does not decode (an
        event of a newer or older version must not end the stream)."""
        items = list(payloads)
        if not items:
            return None
        try:
            [value] = await self._converter.decode(items[:1], [model])
        except Exception:
            return None
        return value if isinstance(value, model) else None

    def from_status(self, status: ResearchStatus) -> list[ResearchEvent]:
        """Events for what changed since the last status read."""
        before = self._status
        clocks = {"elapsed_seconds", "phase_seconds"}
        if before is not None and before.model_dump(exclude=clocks) == status.model_dump(
            exclude=clocks
        ):
            return []  # only the clocks moved
        self._status = status
        found = [ResearchEvent(type=EventType.STATUS, status=status)]
        if before is None or before.phase is not status.phase:
            found.append(ResearchEvent(type=EventType.PHASE, phase=status.phase))
        if (before is None and status.paused) or (before and before.paused != status.paused):
            found.append(ResearchEvent(type=EventType.PAUSED, paused=status.paused))
        pending = status.questions_pending
        if pending and (before is None or before.questions_pending != pending):
            questions = [
                PendingQuestion(index=i, question=status.clarifications[i].question)
                for i in pending
                if i < len(status.clarifications)
            ]
            found.append(ResearchEvent(type=EventType.QUESTIONS, questions=questions))
        if status.awaiting_approval and (before is None or not before.awaiting_approval):
            found.append(ResearchEvent(type=EventType.PLAN, queries=status.queries))
        return found


def _ending(event: HistoryEvent) -> tuple[int, str]:
    kind = event.event_type
    if kind == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        failed = event.activity_task_failed_event_attributes
        cause = failed.failure.cause if failed.failure.HasField("cause") else None
        return failed.scheduled_event_id, (cause.message if cause else failed.failure.message)
    if kind == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        timed_out = event.activity_task_timed_out_event_attributes
        return timed_out.scheduled_event_id, timed_out.failure.message
    cancelled = event.activity_task_canceled_event_attributes
    return cancelled.scheduled_event_id, "cancelled"
