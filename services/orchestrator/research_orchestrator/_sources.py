"""What the workflow makes of search outcomes: numbered sources, failures, bounded plans and
the short notes the reflection reads. Pure functions of the run's state, so replay-safe."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

from research_shared.models import (
    MAX_NOTE_CHARS,
    ResearchRequest,
    SearchFailure,
    SearchQuery,
    SourceDocument,
    SourceNote,
    WebSearchResult,
)

MAX_NOTES = 80
"""Sources the reflection reads notes of, in id order: enough to judge coverage, small in
the history however many rounds ran."""


@dataclass
class SearchRound:
    """One round of searches: the indexes of its queries in the run's plan, and what the
    reflection after it said. Defined here rather than in the workflow module so that the
    sandbox does not build the dataclass again for every run."""

    number: int
    indexes: list[int]
    gaps: list[str] = field(default_factory=list)
    done_reason: str = ""


def query_key(query: str) -> str:
    """A query as deduplication sees it: case and whitespace folded."""
    return " ".join(query.lower().split())


def bounded_queries(queries: list[SearchQuery], request: ResearchRequest) -> list[SearchQuery]:
    """The plan deduplicated and cut to `max_searches`; never empty."""
    seen: set[str] = set()
    kept: list[SearchQuery] = []
    for q in queries:
        key = query_key(q.query)
        if key and key not in seen:
            seen.add(key)
            kept.append(q)
    if not kept:
        kept = [SearchQuery(query=request.question, reason="The planner proposed no search.")]
    return kept[: request.max_searches]


def failure_of(query: SearchQuery, err: ActivityError) -> SearchFailure:
    """What a search that failed after its retries reports."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return SearchFailure(
            query=query.query, error_type=cause.type or "ApplicationError", message=cause.message
        )
    if isinstance(cause, ActivityTimeoutError):
        kind = cause.type.name.lower() if cause.type is not None else "unknown"
        return SearchFailure(
            query=query.query, error_type="Timeout", message=f"the search timed out ({kind})"
        )
    return SearchFailure(
        query=query.query,
        error_type=type(cause).__name__ if cause else "ActivityError",
        message=str(cause or err),
    )


def collect(
    outcomes: Mapping[int, WebSearchResult | SearchFailure],
) -> tuple[list[SourceDocument], list[SearchFailure]]:
    """Number the distinct sources in plan order; the ids are what the report cites.

    Queries are indexed in the order they were planned over the whole run, so the sources of
    a later round number after those of earlier ones and keep their ids from round to round.
    """
    sources: list[SourceDocument] = []
    failures: list[SearchFailure] = []
    seen: set[str] = set()
    for index, outcome in sorted(outcomes.items()):
        if isinstance(outcome, SearchFailure):
            failures.append(outcome)
            continue
        for hit in outcome.hits:
            if hit.url in seen:
                continue
            seen.add(hit.url)
            sources.append(
                SourceDocument(
                    id=len(sources) + 1,
                    title=hit.title,
                    url=hit.url,
                    snippet=hit.snippet,
                    content=hit.content,
                    query_index=index,
                    suspicious=hit.suspicious,
                    content_sha256=hit.content_sha256,
                )
            )
    return sources, failures


def notes_of(sources: Iterable[SourceDocument]) -> list[SourceNote]:
    """A short note per source: its excerpt, or the start of its text."""
    notes = []
    for source in sources:
        text = " ".join((source.snippet or source.content).split())
        notes.append(
            SourceNote(id=source.id, title=source.title, url=source.url, note=text[:MAX_NOTE_CHARS])
        )
        if len(notes) >= MAX_NOTES:
            break
    return notes


def text_chars(sources: Iterable[SourceDocument]) -> int:
    """Characters of text a writer would read: what the final write's reserve is sized by."""
    return sum(len(s.content) + len(s.title) + len(s.url) for s in sources)
