"""Audit manifests in the payload store: written by the `record_audit` activity at the end of
a run, read and verified by `deep-research audit ID`.

A manifest is canonical JSON (sorted keys, no spaces) at `audit/<workflow>.json`, sealed
with the current key when encryption is on. Its SHA-256 is taken over that JSON and returned
by `record_audit`, so it is written into the run's history: the audit compares the two,
and a manifest changed afterwards no longer matches. Each source names the SHA-256 of the
text the search worker retrieved for it; the search worker keeps that text in the store
under the hash (`content/<workflow>/<sha256>`), and the audit checks each one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.converter import DataConverter

from research_shared.models import AttemptStamp, AuditManifest, WebSearchInput
from research_shared.names import WEB_SEARCH_ACTIVITY
from research_shared.store import Records, layout


def attempt_stamp() -> AttemptStamp:
    """The stamp of the running activity attempt, for its result: this attempt's number, when
    the activity was first scheduled, and now."""
    info = activity.info()
    return AttemptStamp(
        attempt=info.attempt,
        scheduled_at=info.scheduled_time.astimezone(UTC).isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
    )


def history_needed(manifest: AuditManifest) -> bool:
    """Whether the run's history must be read for the manifest's attempts and times: a step
    that ran has none when it failed or was cancelled (it returned no result to stamp), or
    was stamped by no worker (one older than the stamps)."""
    ran = [s for s in manifest.searches if s.outcome != "skipped"]
    return any(s.attempts == 0 for s in ran) or any(m.attempts == 0 for m in manifest.model_steps)


def manifest_bytes(manifest: AuditManifest) -> bytes:
    """The canonical JSON of a manifest: what is stored and hashed."""
    data = manifest.model_dump(mode="json")
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


async def keep_contents(records: Records, workflow_id: str, texts: Sequence[str]) -> list[str]:
    """Keep each of `texts` in the store for `workflow_id`'s audit, all in one write of the
    store; returns their hashes, in order."""
    data = [text.encode("utf-8", "surrogatepass") for text in texts]
    digests = [hashlib.sha256(item).hexdigest() for item in data]
    await records.put_many(
        [(layout.content_key(workflow_id, d), item) for d, item in zip(digests, data, strict=True)]
    )
    return digests


async def content_matches(records: Records, workflow_id: str, digest: str) -> bool:
    """Whether the store holds text of `workflow_id` under `digest` that hashes to it."""
    data = await records.get(layout.content_key(workflow_id, digest))
    return data is not None and hashlib.sha256(data).hexdigest() == digest


async def write_manifest(records: Records, manifest: AuditManifest) -> tuple[str, str, int]:
    """Store `manifest`; returns its key, its SHA-256 and its size in bytes."""
    data = manifest_bytes(manifest)
    key = layout.audit_key(manifest.workflow_id)
    await records.put(key, data)
    return key, hashlib.sha256(data).hexdigest(), len(data)


async def unverified_sources(records: Records, manifest: AuditManifest) -> list[int]:
    """Ids of the manifest's sources whose text the store lacks or holds under another hash."""
    checks = await asyncio.gather(
        *(
            content_matches(records, manifest.workflow_id, s.content_sha256)
            for s in manifest.sources
            if s.content_sha256
        )
    )
    hashed = [s for s in manifest.sources if s.content_sha256]
    missing = [s.id for s, ok in zip(hashed, checks, strict=True) if not ok]
    return sorted(missing + [s.id for s in manifest.sources if not s.content_sha256])


@dataclass
class AuditReading:
    """A manifest as read back, and what its hashes say."""

    manifest: AuditManifest
    sha256: str
    sources_unverified: list[int] = field(default_factory=list)


async def read_manifest(records: Records, workflow_id: str) -> AuditReading | None:
    """The manifest of `workflow_id` with its hash and its unverified sources; None if the
    store has none."""
    data = await records.get(layout.audit_key(workflow_id))
    if data is None:
        return None
    manifest = AuditManifest.model_validate_json(data)
    reading = AuditReading(manifest=manifest, sha256=hashlib.sha256(data).hexdigest())
    reading.sources_unverified = await unverified_sources(records, manifest)
    return reading


@dataclass
class ActivityRecord:
    """What the history says of one scheduled activity."""

    activity_type: str
    scheduled_at: str
    input: Sequence[Payload]
    attempts: int = 0
    finished_at: str = ""


def activity_records(events: Iterable[HistoryEvent]) -> list[ActivityRecord]:
    """Every activity a run scheduled, in order, with its attempts and when it finished."""
    records: dict[int, ActivityRecord] = {}
    for event in events:
        kind = event.event_type
        when = event.event_time.ToDatetime(tzinfo=UTC).isoformat()
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            records[event.event_id] = ActivityRecord(
                attrs.activity_type.name, when, list(attrs.input.payloads)
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            record = records.get(started.scheduled_event_id)
            if record is not None:
                record.attempts = max(record.attempts, started.attempt)
        else:
            scheduled = _scheduled_id(event)
            if scheduled is not None and scheduled in records:
                records[scheduled].finished_at = when
    return list(records.values())


def _scheduled_id(event: HistoryEvent) -> int | None:
    for name in (
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",
        "activity_task_timed_out_event_attributes",
        "activity_task_canceled_event_attributes",
    ):
        if event.HasField(name):
            scheduled: int = getattr(event, name).scheduled_event_id
            return scheduled
    return None


async def with_history(
    manifest: AuditManifest, events: Iterable[HistoryEvent], converter: DataConverter
) -> AuditManifest:
    """The manifest with each search's and model step's attempts and times from the history.

    Searches are matched by their query (decoded from the scheduled input), model steps by
    their name, in order. What the history does not show is left as the workflow gave it.
    """
    records = activity_records(events)
    searches: dict[str, ActivityRecord] = {}
    for record in records:
        if record.activity_type == WEB_SEARCH_ACTIVITY and record.input:
            [search_input] = await converter.decode(record.input, [WebSearchInput])
            searches[search_input.query] = record
    updated = manifest.model_copy(deep=True)
    for search in updated.searches:
        found = searches.get(search.query)
        if found is not None:
            search.started_at, search.finished_at = found.scheduled_at, found.finished_at
            search.attempts = found.attempts
    steps: dict[str, list[ActivityRecord]] = {}
    for record in records:
        steps.setdefault(record.activity_type, []).append(record)
    for step in updated.model_steps:
        queue = steps.get(step.step)
        if queue:
            found = queue.pop(0)
            step.attempts = found.attempts
            step.started_at, step.finished_at = found.scheduled_at, found.finished_at
    return updated
