"""The `web_search` activity, hosted by the search worker on the search task queue."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from research_search.providers import (
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    SearchProgress,
    SearchProvider,
)
from research_shared import audit, metrics
from research_shared.encryption import EncryptionError
from research_shared.injection import MAX_LISTED, screen, screen_title
from research_shared.models import (
    MAX_HIT_CONTENT_CHARS,
    MAX_SNIPPET_CHARS,
    AuditManifest,
    RecordAuditInput,
    RecordAuditResult,
    SearchHit,
    WebSearchInput,
    WebSearchResult,
)
from research_shared.names import RECORD_AUDIT_ACTIVITY, WEB_SEARCH_ACTIVITY
from research_shared.store import Records, layout

log = structlog.get_logger(__name__)

RESULT_TEXT_BUDGET_BYTES = 64 * 1024
"""Most bytes of text (titles, addresses, snippets, contents) one search result may carry.

The result is written into the workflow's history, and a result the server refuses as too
large would fail the attempt the same way on every retry. The per-field caps of the contract
keep a well-behaved answer under this budget; the budget holds whatever a provider returns.
"""


class SearchActivities:
    """Activities of the search worker; the provider and the store's records are built once,
    in `worker.py`.

    With `records` (the payload store), each hit's text is kept in the store under its
    SHA-256 for the run's audit, each result is kept as the newest answer to its search for
    the cross-run cache, and `record_audit` can write manifests.
    """

    def __init__(
        self,
        provider: SearchProvider,
        heartbeat_seconds: float = 2.0,
        records: Records | None = None,
    ) -> None:
        self._provider = provider
        self._heartbeat_seconds = heartbeat_seconds
        self._records = records

    @activity.defn(name=WEB_SEARCH_ACTIVITY)
    async def web_search(self, input: WebSearchInput) -> WebSearchResult:
        """Run one search with the configured provider; hits carry capped page text.

        Progress is noted after each unit of work (the ranking, each fetched page) and
        heartbeated every `heartbeat_seconds` (`ProgressHeartbeat`), and a retry resumes from
        the last progress the server recorded instead of starting over; a page fetched after
        it is fetched again from its recorded answer, not paid for again. A cancellation of
        the run reaches the search through those heartbeats.
        """
        info = activity.info()
        log.info(
            "search started",
            query=input.query,
            attempt=info.attempt,
            workflow_id=info.workflow_id,
        )
        if input.reuse_searches_within_seconds > 0:
            cached = await self._cached(input)
            if cached is not None:
                metrics.SEARCH_CACHE_HITS.labels(self._provider.name).inc()
                log.info("search answered from the cache", query=input.query)
                kept = await self._kept(info.workflow_id, cached)
                return kept.model_copy(update={"stamp": audit.attempt_stamp()})
        resumed = _progress_from(info.heartbeat_details, input) if info.attempt > 1 else None
        if resumed is not None:
            log.info(
                "resuming search from heartbeat",
                query=input.query,
                attempt=info.attempt,
                **resumed.done(),
            )
        with metrics.track_activity(WEB_SEARCH_ACTIVITY):
            async with ProgressHeartbeat(self._heartbeat_seconds, resumed) as heartbeat:
                try:
                    hits = await self._provider.search(
                        input.query,
                        input.max_results,
                        progress=resumed,
                        on_progress=heartbeat.report,
                    )
                except asyncio.CancelledError:
                    latest = heartbeat.latest
                    log.info(
                        "search cancelled",
                        query=input.query,
                        attempt=info.attempt,
                        **(latest.done() if latest is not None else {}),
                    )
                    raise
        result = bounded_result(input.query, self._provider.name, hits, input.max_results)
        result = await self._kept(info.workflow_id, result)
        await self._remember(input, result)
        metrics.SEARCH_HITS.labels(self._provider.name).inc(len(result.hits))
        log.info("search finished", query=input.query, hits=len(result.hits))
        return result.model_copy(update={"stamp": audit.attempt_stamp()})

    @activity.defn(name=RECORD_AUDIT_ACTIVITY)
    async def record_audit(self, input: RecordAuditInput) -> RecordAuditResult:
        """Write the manifest of the run that schedules this into the payload store.

        The run's identity and the time are set here, not taken from the input. The result
        names the manifest's SHA-256, which `deep-research audit` checks the stored manifest
        against, and the sources whose text the store does not hold as hashed.
        """
        if self._records is None:
            raise ApplicationError(
                "record_audit needs a payload store, and RESEARCH_PAYLOAD_STORE is none",
                type="PayloadStoreOff",
                non_retryable=True,
            )
        info = activity.info()
        manifest = input.manifest.model_copy(
            update={"workflow_id": info.workflow_id or "", "run_id": info.workflow_run_id or ""}
        )
        # The history, when it is needed, is read while the sources' text is checked: the
        # one waits on the server, the other reads the store, and neither needs the other.
        manifest, unverified = await asyncio.gather(
            self._attempts_and_times(manifest),
            audit.unverified_sources(self._records, manifest),
        )
        manifest = manifest.model_copy(update={"recorded_at": datetime.now(UTC).isoformat()})
        key, digest, size = await audit.write_manifest(self._records, manifest)
        log.info("audit manifest recorded", key=key, sources_unverified=len(unverified))
        return RecordAuditResult(
            key=key,
            sha256=digest,
            size=size,
            sources_verified=len(manifest.sources) - len(unverified),
            sources_unverified=unverified,
        )

    async def _attempts_and_times(self, manifest: AuditManifest) -> AuditManifest:
        """The manifest with each step's attempts and times. The workflow gives them from the
        stamps of the steps' results; the run's own history is read, and then says them for
        every step, only when a step that ran has none (it failed, was cancelled, or was run
        by a worker older than the stamps)."""
        if not audit.history_needed(manifest):
            return manifest
        info = activity.info()
        client = activity.client()
        handle = client.get_workflow_handle(info.workflow_id or "", run_id=info.workflow_run_id)
        try:
            history = await handle.fetch_history()
        except RPCError as err:
            # The manifest is still worth writing; the attempts stay unknown (0).
            log.warning("history not read for the audit", reason=err.message)
            return manifest
        return await audit.with_history(manifest, history.events, client.data_converter)

    # -- the store: page text for audits, the cross-run cache -----------------------------

    def _cache_key(self, input: WebSearchInput) -> str:
        identity = json.dumps([self._provider.name, input.query, input.max_results])
        return layout.search_key(hashlib.sha256(identity.encode()).hexdigest())

    async def _cached(self, input: WebSearchInput) -> WebSearchResult | None:
        """The newest result of this search by any run, if it is young enough."""
        if self._records is None:
            return None
        try:
            record = await self._records.get_json(self._cache_key(input))
            if not isinstance(record, dict):
                return None
            age = time.time() - float(record.get("stored_at", 0))
            result = WebSearchResult.model_validate(record.get("result"))
        except (EncryptionError, ValueError, TypeError) as err:
            # Cut short by a crash of the machine (the cache is not flushed to disk), or
            # written by another version (a ValidationError is a ValueError): search again.
            log.warning("cached search unreadable", query=input.query, reason=type(err).__name__)
            return None
        if not 0 <= age <= input.reuse_searches_within_seconds:
            return None
        return result.model_copy(update={"cached": True})

    async def _remember(self, input: WebSearchInput, result: WebSearchResult) -> None:
        if self._records is None:
            return
        # Not flushed to disk: losing the entry to a crash of the machine costs one search.
        await self._records.put_json(
            self._cache_key(input),
            {"stored_at": time.time(), "result": result.model_dump(mode="json")},
            durable=False,
        )

    async def _kept(self, workflow_id: str | None, result: WebSearchResult) -> WebSearchResult:
        """`result` with each hit's text kept in the store for this run's audit, and hashed."""
        if self._records is None or not workflow_id:
            return result
        digests = await audit.keep_contents(
            self._records, workflow_id, [hit.content for hit in result.hits]
        )
        hits = [
            hit.model_copy(update={"content_sha256": digest})
            for hit, digest in zip(result.hits, digests, strict=True)
        ]
        return result.model_copy(update={"hits": hits})


class ProgressHeartbeat:
    """Heartbeats the latest search progress every `interval` seconds, and once more if the
    attempt ends in an error.

    The periodic beat lets the server notice a dead worker, and tells a live one that its
    run was cancelled, while a provider call is slow. Progress reported between two beats
    waits for the next one: every heartbeat's details go through the data converter (JSON,
    encryption, and the payload store once they pass its threshold), while the server is
    sent at most one heartbeat every 0.8 heartbeat timeouts, the newest (the SDK keeps the
    rest back). So a beat per page would encode details the server never sees. A beat
    always sends the newest progress, because the details of the last heartbeat are what the
    next attempt is given; an attempt that fails sends what it had before it ends, and
    before any progress of its own it sends what it resumed from, so an attempt that fails
    early does not erase the work of the ones before it.

    A first attempt has nothing to keep yet, so its first beat waits one interval: a search
    that ends sooner (most of them) costs the server no heartbeat. The server's heartbeat
    timeout runs from the attempt's start until a first beat, so a worker that dies before
    one is noticed as soon as before.
    """

    def __init__(self, interval: float, resumed: SearchProgress | None = None) -> None:
        self._interval = interval
        self._latest = resumed
        self._unsent = False
        self._task: asyncio.Task[None] | None = None

    @property
    def latest(self) -> SearchProgress | None:
        """The progress last reported (or resumed from)."""
        return self._latest

    def report(self, progress: SearchProgress) -> None:
        """Record new progress; the next beat sends it."""
        self._latest = progress
        self._unsent = True

    def _beat(self) -> None:
        self._unsent = False
        if self._latest is None:
            activity.heartbeat()
        else:
            activity.heartbeat(self._latest)

    async def _beat_every_interval(self) -> None:
        if self._latest is None:  # nothing resumed: nothing an early failure could erase
            await asyncio.sleep(self._interval)
        while True:
            self._beat()
            await asyncio.sleep(self._interval)

    async def __aenter__(self) -> ProgressHeartbeat:
        self._task = asyncio.create_task(self._beat_every_interval())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Not awaited: awaiting here could swallow a cancellation aimed at the activity.
        if self._task is not None:
            self._task.cancel()
        # The SDK hands this last heartbeat to the server before the attempt's failure, so
        # the next attempt resumes from it. A search that succeeds needs no more beats.
        if exc_type is not None and self._unsent:
            self._beat()


def bounded_result(
    query: str, provider: str, hits: Sequence[SearchHit], max_results: int
) -> WebSearchResult:
    """The result of a search, cut down to what the event history can always take.

    At most `max_results` hits; passages that look like injected instructions taken out of
    the text and listed, and a title that does replaced by the address and listed; each
    field capped as the contract says; a hit whose address is empty or too long to cite is
    left out. Every hit kept is first granted its title, address and snippet, and room for
    the snippet again as its text; what is left of the text budget then goes to the hits'
    contents in rank order, so when pages are large the best hits keep their full text, one
    is cut, and the rest fall back to their snippets. Only if even that does not fit are
    hits left out, from the tail.
    """
    capped: list[SearchHit] = []
    dropped = 0
    for hit in hits:
        url = hit.url.strip()
        if len(capped) >= max_results or not url or len(url) > MAX_URL_CHARS:
            dropped += 1
            continue
        # Passages that address the reader with instructions never reach a model step; a
        # flagged title is listed first, so the cap on listed passages never hides it.
        title = screen_title(hit.title, url)
        content, snippet = screen(hit.content), screen(hit.snippet)
        suspicious = list(
            dict.fromkeys([*title.suspicious, *content.suspicious, *snippet.suspicious])
        )
        capped.append(
            SearchHit(
                title=title.text[:MAX_TITLE_CHARS],
                url=url,
                snippet=snippet.text[:MAX_SNIPPET_CHARS],
                content=content.text[:MAX_HIT_CONTENT_CHARS],
                # NaN and infinity do not survive JSON; the workflow could not decode them.
                score=hit.score if math.isfinite(hit.score) else 0.0,
                suspicious=suspicious[:MAX_LISTED],
            )
        )

    def floor(hit: SearchHit) -> int:
        return _size(hit.title) + _size(hit.url) + 2 * _size(hit.snippet)

    while capped and sum(floor(hit) for hit in capped) > RESULT_TEXT_BUDGET_BYTES:
        capped.pop()
        dropped += 1
    left = RESULT_TEXT_BUDGET_BYTES - sum(floor(hit) for hit in capped)
    cut = 0
    for hit in capped:
        # The floor already counts the snippet's size for the content.
        extra = _size(hit.content) - _size(hit.snippet)
        if extra <= left:
            left -= extra
            continue
        cut += 1
        hit.content = _cut_to_bytes(hit.content, _size(hit.snippet) + left)
        if _size(hit.content) < _size(hit.snippet):
            hit.content = hit.snippet
        left -= _size(hit.content) - _size(hit.snippet)

    if cut or dropped:
        log.warning(
            "search result cut down to fit the history",
            query=query,
            hits=len(capped),
            contents_cut=cut,
            hits_dropped=dropped,
            budget_bytes=RESULT_TEXT_BUDGET_BYTES,
        )
    return WebSearchResult(query=query, provider=provider, hits=capped)


def _progress_from(details: Sequence[Any], input: WebSearchInput) -> SearchProgress | None:
    """The progress an earlier attempt heartbeated, if it is this search's and readable.

    Anything else (no details, details of an older worker version, of another shape) means
    starting over, which is always correct, only slower.
    """
    if not details:
        return None
    try:
        progress = SearchProgress.model_validate(details[0])
    except ValidationError as err:
        log.warning(
            "heartbeat details ignored", query=input.query, reason=f"{err.error_count()} errors"
        )
        return None
    if not progress.belongs_to(input.query, input.max_results):
        log.warning("heartbeat details ignored", query=input.query, reason="another search")
        return None
    return progress


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut_to_bytes(text: str, limit: int) -> str:
    """The longest start of `text` that is at most `limit` bytes of UTF-8."""
    if limit <= 0:
        return ""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
