"""Small workflows for the tests of the queues and the payload store: two schedule many
`web_search` or `triage` activities at once (rate limits), one writes an audit manifest
through `record_audit`, one echoes a payload that its history then references, and one
holds an activity whose heartbeat details only its pending state references (gc)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from research_shared import retry, stubs
    from research_shared.models import (
        RecordAuditInput,
        RecordAuditResult,
        TriageInput,
        WebSearchInput,
    )


@workflow.defn(name="FanOutSearches")
class FanOutSearches:
    """Runs `queries` as searches on `queue`, all scheduled in one workflow task."""

    @workflow.run
    async def run(self, queries: list[str], queue: str) -> int:
        results = await asyncio.gather(
            *(
                workflow.execute_activity(
                    stubs.web_search,
                    WebSearchInput(query=query, max_results=1),
                    task_queue=queue,
                    **retry.WEB_SEARCH.options(),
                )
                for query in queries
            )
        )
        return len(results)


@workflow.defn(name="FanOutModelCalls")
class FanOutModelCalls:
    """Runs a `triage` model step for each of `questions` on `queue`, all scheduled at once."""

    @workflow.run
    async def run(self, questions: list[str], queue: str) -> int:
        results = await asyncio.gather(
            *(
                workflow.execute_activity(
                    stubs.triage,
                    TriageInput(question=question),
                    task_queue=queue,
                    **retry.TRIAGE.options(),
                )
                for question in questions
            )
        )
        return len(results)


@workflow.defn(name="RecordAudit")
class RecordAudit:
    """Writes one manifest through the real `record_audit` stub, as a run's end would."""

    @workflow.run
    async def run(self, input: RecordAuditInput, queue: str) -> RecordAuditResult:
        return await workflow.execute_activity(
            stubs.record_audit, input, task_queue=queue, **retry.RECORD_AUDIT.options()
        )


@workflow.defn(name="Echo")
class Echo:
    """Returns its input: a payload the history references, for the store's collector."""

    @workflow.run
    async def run(self, text: str) -> str:
        return text


HOLD_ACTIVITY = "hold_with_details"
"""The activity `HoldWithDetails` runs; each test registers its own."""


@workflow.defn(name="HoldWithDetails")
class HoldWithDetails:
    """Runs one `hold_with_details` activity on `queue`, which heartbeats once and waits:
    until it returns, its details are referenced by nothing but the pending activity."""

    @workflow.run
    async def run(self, queue: str) -> str:
        result: str = await workflow.execute_activity(
            HOLD_ACTIVITY,
            task_queue=queue,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(minutes=5),
            result_type=str,
        )
        return result
