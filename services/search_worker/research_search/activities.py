"""The `web_search` activity, hosted by the search worker on the search task queue."""

from __future__ import annotations

import structlog
from temporalio import activity

from research_search.providers import SearchProvider
from research_shared import metrics
from research_shared.heartbeat import heartbeat_every
from research_shared.models import WebSearchInput, WebSearchResult
from research_shared.names import WEB_SEARCH_ACTIVITY

log = structlog.get_logger(__name__)


class SearchActivities:
    """Activities of the search worker; the provider is built once, in `worker.py`."""

    def __init__(self, provider: SearchProvider, heartbeat_seconds: float = 2.0) -> None:
        self._provider = provider
        self._heartbeat_seconds = heartbeat_seconds

    @activity.defn(name=WEB_SEARCH_ACTIVITY)
    async def web_search(self, input: WebSearchInput) -> WebSearchResult:
        """Run one search with the configured provider; hits carry capped page text."""
        info = activity.info()
        log.info(
            "search started",
            query=input.query,
            attempt=info.attempt,
            workflow_id=info.workflow_id,
        )
        with metrics.track_activity(WEB_SEARCH_ACTIVITY):
            async with heartbeat_every(self._heartbeat_seconds, {"query": input.query}):
                hits = await self._provider.search(input.query, input.max_results)
        metrics.SEARCH_HITS.labels(self._provider.name).inc(len(hits))
        log.info("search finished", query=input.query, hits=len(hits))
        return WebSearchResult(query=input.query, provider=self._provider.name, hits=hits)
