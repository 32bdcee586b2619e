"""A search worker with a deterministic bug, for the fix-in-flight test.

It registers an activity under the real `web_search` name on the search queue from
`RESEARCH_SEARCH_QUEUE`, with the real input and result models, and fails every call with
the same `KeyError`: the kind of bug a deploy ships and the next deploy fixes. A run that
meets it keeps retrying under the web_search retry policy until a fixed worker takes over.

Run with `python -m tests.helpers.buggy_search_worker` from the repository root.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from research_shared.models import WebSearchInput, WebSearchResult
from research_shared.names import WEB_SEARCH_ACTIVITY
from tests.helpers.worker_main import run_test_worker, serve_test_worker


@activity.defn(name=WEB_SEARCH_ACTIVITY)
async def web_search(input: WebSearchInput) -> WebSearchResult:
    """Reads a field the provider's answer does not have, so every attempt fails alike."""
    answer: dict[str, Any] = {"query": input.query, "results": []}
    return WebSearchResult(query=answer["query"], provider=answer["provider"], hits=[])


async def run() -> None:
    await serve_test_worker(
        "buggy-search", lambda queues: queues.search_queue, activities=[web_search]
    )


if __name__ == "__main__":
    run_test_worker(run)
