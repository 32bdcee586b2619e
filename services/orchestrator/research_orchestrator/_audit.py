"""The audit manifest of a run, from what the workflow knows when the report is done.

Each step that returned a result gives its attempts and times from the result's stamp. The
`record_audit` activity reads them from the history only for steps that have none (a failed
or cancelled search; a result of an older worker), and writes the manifest into the payload
store; `deep-research audit ID` prints and verifies it. Pure functions of the run's state, so
replay-safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from research_shared.models import (
    AttemptStamp,
    AuditCitations,
    AuditManifest,
    AuditModelStep,
    AuditRound,
    AuditSearch,
    AuditSource,
    LlmUsage,
    ResearchRequest,
    SearchFailure,
    SearchQuery,
    SourceDocument,
    SynthesisResult,
    WebSearchResult,
)


def search_entries(
    queries: Sequence[SearchQuery],
    rounds: Mapping[int, int],
    outcomes: Mapping[int, WebSearchResult | SearchFailure],
    skipped: Mapping[int, str],
    cancelled_type: str,
) -> list[AuditSearch]:
    """One entry per query of the run, in plan order, with how it ended."""
    entries = []
    for index, query in enumerate(queries):
        outcome = outcomes.get(index)
        entry = AuditSearch(query=query.query, round=rounds.get(index, 0))
        if isinstance(outcome, WebSearchResult):
            entry.provider = outcome.provider
            entry.cached = outcome.cached
            entry.hits = len(outcome.hits)
            _take_stamp(entry, outcome.stamp)
        elif isinstance(outcome, SearchFailure):
            cancelled = outcome.error_type == cancelled_type
            entry.outcome = "cancelled" if cancelled else "failed"
            entry.error_type = "" if cancelled else outcome.error_type
        else:
            entry.outcome = "skipped"
            entry.error_type = skipped.get(index, "")
        entries.append(entry)
    return entries


def model_step(step: str, result: object, started_at: str, finished_at: str) -> AuditModelStep:
    """The entry of a model step that returned `result`: its attempt and times from the
    result's stamp; from an older worker, which stamps none, the workflow's own times
    (`started_at`, `finished_at`) and no attempts, which the history then gives."""
    entry = AuditModelStep(
        step=step,
        model=str(getattr(result, "model", "")),
        usage=getattr(result, "usage", LlmUsage()),
        started_at=started_at,
        finished_at=finished_at,
    )
    stamp = getattr(result, "stamp", None)
    _take_stamp(entry, stamp if isinstance(stamp, AttemptStamp) else None)
    return entry


def _take_stamp(entry: AuditSearch | AuditModelStep, stamp: AttemptStamp | None) -> None:
    """Set `entry`'s attempts and times from the stamp of its step's result, if it has one."""
    if stamp is not None:
        entry.attempts = stamp.attempt
        entry.started_at = stamp.scheduled_at
        entry.finished_at = stamp.finished_at


def manifest(
    request: ResearchRequest,
    outcome: str,
    plan: Sequence[SearchQuery],
    rounds: Sequence[tuple[int, Sequence[SearchQuery]]],
    searches: Sequence[AuditSearch],
    sources: Sequence[SourceDocument],
    model_steps: Sequence[AuditModelStep],
    draft: SynthesisResult | None,
) -> AuditManifest:
    """The manifest as the workflow knows it: identity, times and attempts are the activity's.

    `draft` is what the report was written from; a run that ended before writing (plan
    rejected, cancelled) has none, and its manifest then records no citation.
    """
    draft = draft if draft is not None else SynthesisResult(report_markdown="", summary="")
    cited = set(draft.cited_source_ids)
    return AuditManifest(
        request=request.model_dump(mode="json"),
        outcome=outcome,
        plan=list(plan),
        rounds=[AuditRound(index=n, queries=list(q)) for n, q in rounds],
        searches=list(searches),
        sources=[
            AuditSource(
                id=s.id,
                title=s.title,
                url=s.url,
                query_index=s.query_index,
                content_sha256=s.content_sha256,
            )
            for s in sources
        ],
        model_steps=list(model_steps),
        citations=AuditCitations(
            cited_source_ids=sorted(cited),
            uncited_source_ids=[s.id for s in sources if s.id not in cited],
            removed_citations=draft.citation_check.removed_source_ids,
            citations=draft.citation_check.citations,
            citations_removed=draft.citation_check.citations_removed,
            unsupported_sentences=draft.citation_check.unsupported_sentences,
        ),
        cache_hits=sum(s.cached for s in searches),
    )
