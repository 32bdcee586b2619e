"""Search providers behind one small interface, chosen by settings."""

from __future__ import annotations

from typing import Protocol

from research_shared.models import SearchHit


class SearchProvider(Protocol):
    """Finds documents for a query.

    Failures are raised as `temporalio.exceptions.ApplicationError` built by
    `research_shared.provider_errors`, so the retry presets can tell a rate limit from a
    bad key. Hits carry text already capped to the contract's limits.
    """

    name: str

    async def search(self, query: str, max_results: int) -> list[SearchHit]: ...

    async def aclose(self) -> None: ...
