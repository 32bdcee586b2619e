"""Offline search: the `local` provider, BM25 over a folder of markdown, text and HTML files.

A thin adapter: the documents, the SQLite FTS5 index and the ranking are
`research_search.corpus`; this module runs them off the event loop, caps hits to the
contract's limits and turns failures into provider errors.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from research_search.corpus import (
    CorpusIndex,
    CorpusUnavailableError,
    HitLimits,
    IndexStats,
    match_expression,
)
from research_search.providers import (
    MAX_TITLE_CHARS,
    ProgressCallback,
    SearchProgress,
)
from research_shared import provider_errors
from research_shared.models import MAX_HIT_CONTENT_CHARS, MAX_SNIPPET_CHARS, SearchHit

__all__ = ["CorpusUnavailableError", "IndexStats", "LocalCorpusSearch"]

_LIMITS = HitLimits(title=MAX_TITLE_CHARS, snippet=MAX_SNIPPET_CHARS, content=MAX_HIT_CONTENT_CHARS)


class LocalCorpusSearch:
    """A `SearchProvider` over a local folder of documents, ranked by BM25.

    Build it with `await LocalCorpusSearch.open(corpus_dir, index_path)`, which creates or
    refreshes the index off the event loop. Several processes may open the same index: it
    runs in WAL mode, so searches never wait for a build, and builds wait for each other.
    """

    name: str = "local"

    def __init__(self, corpus_dir: Path, index_path: Path) -> None:
        self._index = CorpusIndex(corpus_dir, index_path)
        self._built = False
        self._closed = False
        self._build_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"LocalCorpusSearch(corpus_dir={str(self.corpus_dir)!r})"

    @property
    def corpus_dir(self) -> Path:
        """The corpus folder, resolved."""
        return self._index.corpus_dir

    @property
    def index_path(self) -> Path:
        """The index file, resolved."""
        return self._index.index_path

    @classmethod
    async def open(cls, corpus_dir: Path, index_path: Path) -> LocalCorpusSearch:
        """Create the provider and build or refresh its index in a worker thread.

        Raises `CorpusUnavailableError` when the corpus folder is missing or empty.
        """
        provider = cls(corpus_dir, index_path)
        await asyncio.to_thread(provider.build_index)
        return provider

    def build_index(self) -> IndexStats:
        """Bring the index in line with the corpus folder; blocking, so call it in a thread.

        Only files whose modification time or size changed are read again; files that are
        gone are forgotten. Safe to run from several processes at once.
        """
        stats = self._index.build()
        self._built = True
        return stats

    async def search(
        self,
        query: str,
        max_results: int,
        progress: SearchProgress | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[SearchHit]:
        """The best passage of each of the `max_results` most relevant files, best first.

        One query of a local index is one step, so there is no progress to report or resume.
        """
        if self._closed:
            raise RuntimeError("LocalCorpusSearch is closed")
        expression = match_expression(query)
        if expression is None or max_results < 1:
            return []
        try:
            if not self._built:
                async with self._build_lock:
                    if not self._built:
                        await asyncio.to_thread(self.build_index)
            hits = await asyncio.to_thread(self._index.search, expression, max_results, _LIMITS)
        except (sqlite3.Error, CorpusUnavailableError) as err:
            # A locked or unreadable index, or a corpus folder that went away, may well be
            # fixed by the time the activity retries.
            raise provider_errors.unavailable(self.name, err) from err
        return [
            SearchHit(
                title=hit.title,
                url=hit.path,
                snippet=hit.snippet,
                content=hit.content,
                score=hit.score,
            )
            for hit in hits
        ]

    async def aclose(self) -> None:
        """Close the pooled database connections; searching afterwards is an error."""
        self._closed = True
        await asyncio.to_thread(self._index.close)
