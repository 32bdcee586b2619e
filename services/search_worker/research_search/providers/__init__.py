"""Search providers behind one small interface, chosen by settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from research_shared.models import SearchHit

MAX_TITLE_CHARS = 300
"""Longest title a hit keeps."""

MAX_URL_CHARS = 2048
"""Longest address a hit may have. A cut address would cite the wrong page, so a hit with a
longer one is left out rather than shortened."""


class SearchProgress(BaseModel):
    """What one attempt of a search has done so far, heartbeated so the next attempt resumes.

    It lives only in the heartbeat details of the `web_search` activity, never in a workflow's
    history, so it is the search worker's own model rather than part of `research_shared`.
    Page text is capped like hit content, which keeps the details far below Temporal's
    payload limits.
    """

    # Details heartbeated by a newer worker may carry fields this one does not know; what it
    # does know is still worth resuming from.
    model_config = ConfigDict(extra="ignore")

    query: str
    max_results: int
    hits: list[SearchHit] | None = Field(
        default=None,
        description="The ranked hits of the search stage, with the excerpt as content; "
        "None until that stage is done.",
    )
    pages: dict[str, str] = Field(
        default_factory=dict,
        description="Full text fetched per hit address; an empty text means the page could "
        "not be fetched and the hit keeps its excerpt.",
    )

    def belongs_to(self, query: str, max_results: int) -> bool:
        """Whether this progress was made by a search for exactly this query and size."""
        return self.query == query and self.max_results == max_results

    def done(self) -> dict[str, int]:
        """How much work is recorded, for log lines."""
        return {
            "hits_found": len(self.hits or ()),
            "pages_fetched": sum(1 for hit in self.hits or () if hit.url in self.pages),
        }


ProgressCallback = Callable[[SearchProgress], None]
"""Called with a snapshot of the progress after each unit of work."""


class SearchProvider(Protocol):
    """Finds documents for a query.

    Failures are raised as `temporalio.exceptions.ApplicationError` built by
    `research_shared.provider_errors`, so the retry presets can tell a rate limit from a
    bad key. Hits carry text already capped to the contract's limits.

    A provider that works in several steps reports a `SearchProgress` to `on_progress` after
    each one, and given the `progress` of an earlier attempt skips the steps it records. A
    provider that works in one step accepts both and ignores them.
    """

    name: str

    async def search(
        self,
        query: str,
        max_results: int,
        progress: SearchProgress | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[SearchHit]: ...

    async def aclose(self) -> None: ...
