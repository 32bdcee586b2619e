"""A workflow that schedules many `web_search` activities at once, through the real stub and
preset, for tests of what the search queue does with a burst (rate limits)."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from research_shared import retry, stubs
    from research_shared.models import WebSearchInput


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
