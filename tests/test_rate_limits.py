"""Fleet-wide rate limits: RESEARCH_SEARCH_RATE_LIMIT holds for the search queue as a whole,
however many search workers poll it. The searches' arrival times are taken at the provider."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from research_cli.embedded import worker_spec
from tests.helpers.fakes.tavily_server import FakeTavilyServer
from tests.helpers.processes import DevServer, WorkerProcesses
from tests.helpers.store_workflows import FanOutSearches

pytestmark = pytest.mark.e2e

RATE = 2.0
SEARCHES = 20
# The server enforces the limit in each partition of the queue (four by default), each at
# its share of the rate, with a token to start: starts come in bursts of up to a token per
# partition. Two such bursts are allowed on top of the rate.
BURST = 8


def ahead_of_the_rate(times: list[float]) -> list[tuple[int, float]]:
    """The searches that started sooner than the rate allows after the first one: the n-th
    (from 0) may start no sooner than (n - BURST) / RATE seconds after it."""
    ordered = sorted(times)
    return [
        (n, round(t - ordered[0], 2))
        for n, t in enumerate(ordered)
        if t - ordered[0] < (n - BURST) / RATE
    ]


async def test_two_search_workers_together_keep_to_the_rate_limit(
    client: Client, dev_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    search_queue = f"rate-search-{uuid.uuid4().hex[:8]}"
    queries = [f"rate limited search {n}" for n in range(SEARCHES)]
    with FakeTavilyServer() as tavily:
        assert isinstance(tavily, FakeTavilyServer)
        workers = WorkerProcesses(
            address=dev_server.address,
            log_dir=tmp_path / "logs",
            env={
                "RESEARCH_SEARCH_QUEUE": search_queue,
                "RESEARCH_SEARCH_RATE_LIMIT": str(RATE),
                "TAVILY_API_KEY": tavily.api_key,
                "TAVILY_BASE_URL": tavily.base_url,
            },
        )
        try:
            workers.start("search")
            workers.supervisor.start(
                worker_spec("search", workers.full_env(), workers.log_file("search-2"), "search-2")
            )
            workers.wait_ready("search-2", 120.0)
            async with Worker(client, task_queue=task_queue, workflows=[FanOutSearches]):
                done = await client.execute_workflow(
                    FanOutSearches.run,
                    args=[queries, search_queue],
                    id=f"fan-out-{uuid.uuid4().hex[:8]}",
                    task_queue=task_queue,
                )
        finally:
            workers.stop_all()
        times = [c.at for c in tavily.calls_to("/search")]
        by_worker = {
            name: workers.log(name).count("search started") for name in ("search", "search-2")
        }

    assert done == SEARCHES and len(times) == SEARCHES
    assert all(by_worker.values()), by_worker  # both workers took searches
    # Counted at the provider, whichever worker ran them: without the limit all twenty start
    # within a fraction of a second.
    assert ahead_of_the_rate(times) == [], [round(t - min(times), 2) for t in sorted(times)]
