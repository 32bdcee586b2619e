"""Pages of runs newest first, from a visibility store that cannot sort by start time.

Temporal's visibility lists executions in one fixed order, `CloseTime DESC NULLS FIRST,
StartTime DESC` (its documented default), and refuses `ORDER BY` on SQL visibility (the dev
server's SQLite, PostgreSQL, MySQL) and on Temporal Cloud. That order puts running runs
first, newest first, then closed runs by when they closed: a run that started first but
closed last comes before newer ones, and pages of it re-sorted one at a time are not newest
first either.

So a page is computed from two streams that each keep the fixed order:

- running runs arrive by start time, newest first;
- closed runs arrive by close time, and a run never closes before it starts, so once a closed
  run closed before the page's oldest candidate started, no run after it can enter the page.

Each stream is read only until nothing later in it can enter the page (`_Best.full_below`):
about a page of runs, plus the runs that closed while the page's runs were starting. The
page token is the (start time, id) of the last run given, so the next page holds what is
older in that order, whatever started or closed in between.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import heapq
import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowExecution

_MICROSECOND = timedelta(microseconds=1)

Key = tuple[datetime, str]
"""Where a run sorts: its start time, then its id (both descending)."""


class BadPageToken(ValueError):
    """A page token that no page gave out."""


def key_of(execution: WorkflowExecution) -> Key:
    return (execution.start_time, execution.id)


def encode_token(key: Key) -> str:
    text = json.dumps([key[0].isoformat(), key[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str) -> Key:
    try:
        raw = base64.b64decode(
            token.encode("ascii") + b"=" * (-len(token) % 4), altchars=b"-_", validate=True
        )
        started, run_id = json.loads(raw.decode())
        when = datetime.fromisoformat(started)
    except (binascii.Error, UnicodeError, ValueError, TypeError):
        raise BadPageToken(token) from None
    if not isinstance(run_id, str) or when.tzinfo is None:
        raise BadPageToken(token)
    return (when.astimezone(UTC), run_id)


def started_before_clause(key: Key) -> str:
    """A visibility clause that keeps every run at or before `key` (the exact cut is made on
    this side: the store's time resolution may be finer than a microsecond)."""
    bound = (key[0] + _MICROSECOND).astimezone(UTC)
    return f"StartTime < '{bound.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"


@dataclass
class _Best:
    """The `size` newest runs seen so far, by `Key`."""

    size: int
    heap: list[tuple[Key, int, WorkflowExecution]] = field(default_factory=list)
    _count: int = 0

    def offer(self, execution: WorkflowExecution) -> None:
        self._count += 1  # a tie-breaker, so executions are never compared
        item = (key_of(execution), self._count, execution)
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, item)
        elif item[0] > self.heap[0][0]:
            heapq.heapreplace(self.heap, item)

    def full_below(self, bound: datetime) -> bool:
        """True when the page is full and nothing that started at or before `bound` can
        enter it."""
        return len(self.heap) >= self.size and bound < self.heap[0][0][0]

    def runs(self) -> list[WorkflowExecution]:
        return [item[2] for item in self.heap]


async def newest(
    stream: AsyncGenerator[WorkflowExecution, None],
    size: int,
    *,
    bound: Callable[[WorkflowExecution], datetime],
    before: Key | None,
) -> list[WorkflowExecution]:
    """The `size` newest runs of `stream` that sort after `before`. `bound(execution)` is a
    time no later run of the stream started after: its start time for running runs (they
    arrive newest first), its close time for closed runs (they arrive by close time). The
    stream is closed once it has given enough."""
    best = _Best(size)
    async with contextlib.aclosing(stream):
        async for execution in stream:
            if best.full_below(bound(execution)):
                break
            if before is None or key_of(execution) < before:
                best.offer(execution)
    return best.runs()


def start_bound(execution: WorkflowExecution) -> datetime:
    return execution.start_time


def close_bound(execution: WorkflowExecution) -> datetime:
    return execution.close_time or datetime.max.replace(tzinfo=UTC)
