"""Entry point of the search pool: hosts `web_search` and `record_audit` only."""

from __future__ import annotations

import asyncio

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from research_search.activities import SearchActivities
from research_search.providers import SearchProvider
from research_shared.logs import configure_logging
from research_shared.payloads import Payloads, open_payloads
from research_shared.recorded_calls import CallRecorder
from research_shared.serving import (
    WorkerError,
    activity_worker,
    check_payload_store,
    connect_worker,
    run_until_signalled,
    serve_probes,
)
from research_shared.settings import (
    PayloadSettings,
    QueueSettings,
    SearchProviderName,
    SearchSettings,
    TemporalSettings,
    WorkerSettings,
)

log = structlog.get_logger(__name__)


async def build_provider(
    settings: SearchSettings, recorder: CallRecorder | None = None
) -> SearchProvider:
    """The provider the settings ask for: Tavily with a key, else the local corpus.

    With a `recorder`, Tavily's answers are recorded so that a retried attempt does not pay
    for them again; the local corpus costs nothing and records nothing.
    """
    if settings.resolved_provider() is SearchProviderName.TAVILY:
        from research_search.providers.tavily import TavilySearch

        # The settings refuse Tavily without a key when they load.
        assert settings.tavily_api_key is not None
        return TavilySearch(
            api_key=settings.tavily_api_key,
            base_url=settings.tavily_base_url,
            timeout_seconds=settings.tavily_timeout_seconds,
            recorder=recorder,
        )
    from research_search.corpus import default_index_path, ensure_default_corpus
    from research_search.providers.local_corpus import CorpusUnavailableError, LocalCorpusSearch

    corpus_dir = settings.corpus_dir
    if corpus_dir is None:
        corpus_dir = await asyncio.to_thread(ensure_default_corpus, settings.data_dir)
    try:
        return await LocalCorpusSearch.open(
            corpus_dir, default_index_path(settings.data_dir, corpus_dir)
        )
    except CorpusUnavailableError as err:
        if settings.corpus_dir is None:
            raise  # the built-in corpus was just built: a bug, not a setting
        raise WorkerError(f"RESEARCH_CORPUS_DIR: {err}", code=2) from None


def build_worker(
    client: Client,
    provider: SearchProvider,
    queues: QueueSettings,
    settings: WorkerSettings,
    search: SearchSettings,
    payloads: Payloads,
) -> Worker:
    activities = SearchActivities(provider, records=payloads.records)
    return activity_worker(
        client,
        settings,
        queues.search_queue,
        [activities.web_search, activities.record_audit],
        search.search_rate_limit,
    )


async def run() -> None:
    # Every setting is read before anything starts, so a bad one stops the process at once.
    settings, search = WorkerSettings(), SearchSettings()
    temporal, queues = TemporalSettings(), QueueSettings()
    payloads = open_payloads(PayloadSettings())
    configure_logging(settings.log_level, settings.log_format, service="search-worker")
    async with serve_probes(settings) as health:
        try:
            await check_payload_store(payloads)
            provider = await build_provider(search, CallRecorder(payloads.records, "tavily"))
            log.info("search provider ready", provider=provider.name)
            try:
                client = await connect_worker(temporal, settings, payloads.converter)
                worker = build_worker(client, provider, queues, settings, search, payloads)
                await run_until_signalled(worker, "search", health, **payloads.describe())
            finally:
                await provider.aclose()
        finally:
            await payloads.aclose()


def main() -> None:
    asyncio.run(run())
