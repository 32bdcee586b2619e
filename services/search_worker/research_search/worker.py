"""Entry point of the search pool: hosts `web_search` only."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from research_search.activities import SearchActivities
from research_search.providers import SearchProvider
from research_shared import metrics
from research_shared.logs import configure_logging
from research_shared.serving import run_until_signalled
from research_shared.settings import (
    QueueSettings,
    SearchProviderName,
    SearchSettings,
    TemporalSettings,
    WorkerSettings,
)
from research_shared.temporal_client import connect, sdk_runtime

log = structlog.get_logger(__name__)


async def build_provider(settings: SearchSettings) -> SearchProvider:
    """The provider the settings ask for: Tavily with a key, else the local corpus."""
    if settings.resolved_provider() is SearchProviderName.TAVILY:
        from research_search.providers.tavily import TavilySearch

        if settings.tavily_api_key is None:
            raise SystemExit("RESEARCH_SEARCH_PROVIDER=tavily needs TAVILY_API_KEY")
        return TavilySearch(
            api_key=settings.tavily_api_key,
            base_url=settings.tavily_base_url,
            timeout_seconds=settings.tavily_timeout_seconds,
        )
    from research_search.corpus import default_index_path, ensure_default_corpus
    from research_search.providers.local_corpus import LocalCorpusSearch

    corpus_dir = settings.corpus_dir
    if corpus_dir is None:
        corpus_dir = await asyncio.to_thread(ensure_default_corpus, settings.data_dir)
    return await LocalCorpusSearch.open(
        corpus_dir, default_index_path(settings.data_dir, corpus_dir)
    )


def build_worker(
    client: Client, provider: SearchProvider, queues: QueueSettings, settings: WorkerSettings
) -> Worker:
    activities = SearchActivities(provider)
    return Worker(
        client,
        task_queue=queues.search_queue,
        activities=[activities.web_search],
        max_concurrent_activities=settings.max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )


async def run() -> None:
    settings = WorkerSettings()
    configure_logging(settings.log_level, settings.log_format, service="search-worker")
    search = SearchSettings()
    provider = await build_provider(search)
    log.info("search provider ready", provider=provider.name)
    try:
        client = await connect(TemporalSettings(), sdk_runtime(settings.sdk_metrics_port))
        # Served once connected: the pods' probes read /metrics, so ready means connected.
        metrics.serve(settings.metrics_port)
        worker = build_worker(client, provider, QueueSettings(), settings)
        await run_until_signalled(worker, "search")
    finally:
        await provider.aclose()


def main() -> None:
    asyncio.run(run())
