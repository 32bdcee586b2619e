"""History bytes of one 10-search run over 8 KB pages, with payloads inline and stored aside.

It starts a Temporal dev server, the fake Tavily and OpenAI servers of the test suite (real
HTTP; pages of 8,192 characters; a planner that plans exactly ten searches of five hits),
and, for each setting of RESEARCH_PAYLOAD_STORE, the three worker pools; it runs one
research and reads the size of its history from the server (`describe`). Run it from the
repository root:

    python bench/history_bytes.py [--json]

docs/benchmarks.md has the figures. Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.durability import distinct_queries, fake_providers, scripted_model
from tests.helpers.fakes.openai_server import FakeOpenAIServer
from tests.helpers.fakes.tavily_server import FakeTavilyServer
from tests.helpers.processes import WorkerProcesses, own_queues

from research_cli.embedded import free_port, start_dev_server, stop_process, wait_for_server
from research_cli.main import exit_without_finalizing
from research_shared.client import ResearchClient
from research_shared.models import ResearchRequest
from research_shared.payloads import open_payloads
from research_shared.settings import PayloadSettings

SEARCHES = 10
HITS = 5
PAGE_CHARS = 8192


async def one_run(address: str, folder: Path, store: str) -> dict[str, Any]:
    queries = distinct_queries(SEARCHES, "durable execution history size")
    payloads = open_payloads(PayloadSettings(payload_store=store))
    client = await wait_for_server(address, data_converter=payloads.converter)
    tag = uuid.uuid4().hex[:6]
    queues = own_queues("hist")
    research = ResearchClient(client, task_queue=queues["RESEARCH_ORCHESTRATOR_QUEUE"])
    with (
        FakeTavilyServer(page_chars=PAGE_CHARS) as tavily,
        FakeOpenAIServer(responder=scripted_model(queries)) as model,
    ):
        assert isinstance(tavily, FakeTavilyServer) and isinstance(model, FakeOpenAIServer)
        workers = WorkerProcesses(
            address=address,
            log_dir=folder / f"logs-{tag}",
            env={**queues, "RESEARCH_PAYLOAD_STORE": store, **fake_providers(tavily, model)},
        )
        try:
            await asyncio.to_thread(workers.start, "orchestrator", "search", "llm")
            run = await research.start(
                ResearchRequest(
                    question="How large is the history of a run?",
                    max_searches=SEARCHES,
                    results_per_search=HITS,
                ),
                id=f"history-bytes-{tag}",
            )
            report = await research.wait(run.id)
        finally:
            await asyncio.to_thread(workers.stop_all)
    info = (await research.describe(run.id)).raw_description.workflow_execution_info
    await payloads.aclose()
    return {
        "payload_store": store if store == "none" else "folder",
        "searches": report.stats.searches_succeeded,
        "sources": report.stats.sources_retrieved,
        "history_events": info.history_length,
        "history_bytes": info.history_size_bytes,
    }


async def measure(folder: Path) -> list[dict[str, Any]]:
    port = free_port()
    server = start_dev_server(folder / "temporal.db", port, log_file=folder / "temporal.log")
    try:
        address = f"127.0.0.1:{port}"
        await wait_for_server(address, process=server)
        return [
            await one_run(address, folder, "none"),
            await one_run(address, folder, f"file://{folder / 'payloads'}"),
        ]
    finally:
        stop_process(server, timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="history-bytes-") as folder:
        rows = asyncio.run(measure(Path(folder)))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(
                f"payload store {row['payload_store']:>6}: {row['searches']} searches, "
                f"{row['sources']} sources, {row['history_events']} events, "
                f"{row['history_bytes']} bytes ({row['history_bytes'] / 1024:.1f} KiB)"
            )
    return 0


if __name__ == "__main__":
    exit_without_finalizing(main())
