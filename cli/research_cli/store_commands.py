"""The commands that work on the payload store: `gc`, `audit` and `codec-server`.

`gc` cleans the local folder store. It never deletes what Temporal still knows: it reads
every workflow the namespace's visibility lists (running, and closed ones still within the
namespace's retention), walks every payload of their histories and of their pending
activities (heartbeat details), and keeps each object those reference. Of the rest, it
deletes only what is older than a grace period, because a payload is written to the store a
moment before the event that references it reaches the history. S3 stores are cleaned by
the bucket's lifecycle rules instead (docs/payloads.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.converter import PayloadCodec

from research_shared import audit
from research_shared.client import ResearchClient, RunNotFound
from research_shared.models import RecordAuditResult
from research_shared.names import RECORD_AUDIT_ACTIVITY
from research_shared.payloads import Payloads
from research_shared.store import (
    DRIVER_NAME,
    FileObjectStore,
    IntegrityError,
    StoreError,
    UnreadableReference,
    layout,
    read_reference,
    retention,
    segment,
)

DEFAULT_GRACE_SECONDS = 3600
DEFAULT_SEARCH_CACHE_SECONDS = retention.SEARCH_CACHE_DAYS * retention.DAY_SECONDS


class StoreCommandError(Exception):
    """One line for the user; `code` 2 for their input, 1 for the environment."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- references -------------------------------------------------------------------------


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every `Payload` anywhere inside a protobuf message (events, descriptions)."""
    if isinstance(message, Payload):
        yield message
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            for item in value.values():
                if isinstance(item, Message):
                    yield from payloads_in(item)
        elif descriptor.is_repeated:
            for item in value:
                yield from payloads_in(item)
        else:
            yield from payloads_in(value)


async def referenced_key(payload: Payload, codec: PayloadCodec | None) -> str | None:
    """The store key a reference payload points at; None for any other payload and for a
    reference of another driver. A reference that cannot be read is `UnreadableReference`."""
    reference = await read_reference(payload, codec)
    if reference is None or reference.driver_name != DRIVER_NAME:
        return None
    return reference.claim_data.get("key") or None


@dataclass
class References:
    """What Temporal still knows: workflow ids (as key segments) and referenced objects."""

    workflows: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)

    async def add(self, message: Message, codec: PayloadCodec | None, workflow_id: str) -> None:
        """The objects every payload of `message` points at."""
        for payload in payloads_in(message):
            try:
                key = await referenced_key(payload, codec)
            except UnreadableReference as err:
                raise StoreCommandError(
                    f"gc cannot read the references of workflow {workflow_id}, so it deleted "
                    f"nothing: {err} (is RESEARCH_ENCRYPTION_KEY set as for the workers?)"
                ) from None
            if key:
                self.keys.add(key)


async def live_references(research: ResearchClient, codec: PayloadCodec | None) -> References:
    """The references of every workflow visibility lists, running or retained, of any type;
    references the SDK encoded are decoded with `codec`. Only a workflow deleted since the
    listing is skipped: any other failure stops the collection, since a history not read
    would leave its payloads unprotected."""
    found = References()
    async for execution in research.executions(every_type=True):
        found.workflows.add(segment(execution.id))
        try:
            history = await research.history(execution.id, run_id=execution.run_id)
        except RunNotFound:
            continue  # deleted between the listing and now
        for event in history.events:
            await found.add(event, codec, execution.id)
        if execution.status is WorkflowExecutionStatus.RUNNING:
            try:
                description = await research.describe(execution.id, run_id=execution.run_id)
            except RunNotFound:
                continue
            await found.add(description.raw_description, codec, execution.id)
    return found


# -- gc ---------------------------------------------------------------------------------


@dataclass
class GcReport:
    """What a collection deleted (or, in a dry run, would delete) and kept."""

    deleted: dict[str, int] = field(default_factory=dict)
    deleted_bytes: int = 0
    kept: int = 0
    workflows_known: int = 0
    references: int = 0


async def collect_garbage(
    payloads: Payloads,
    research: ResearchClient,
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    search_cache_seconds: float = DEFAULT_SEARCH_CACHE_SECONDS,
    dry_run: bool = False,
) -> GcReport:
    """Delete from a local folder store what no workflow Temporal knows refers to.

    - `payloads/`: objects no history or pending activity references;
    - `calls/<workflow>/`: recorded answers of workflows visibility no longer lists;
    - `content/<workflow>/`: page text of such workflows, unless their audit manifest exists;
    - `searches/`: cached searches older than `search_cache_seconds`.
    Audit manifests are kept. Nothing younger than `grace_seconds` is deleted.
    """
    store = payloads.store
    if not isinstance(store, FileObjectStore):
        where = store.url if store is not None else "none"
        raise StoreCommandError(
            f"gc cleans a local folder store; the payload store is {where} (an S3 store is "
            "cleaned by its bucket's lifecycle rules, see docs/payloads.md)",
            code=2,
        )
    refs = await live_references(research, payloads.converter.payload_codec)
    now = datetime.now(UTC)
    grace = timedelta(seconds=grace_seconds)
    audited = {
        w
        async for item in store.scan(layout.AUDIT)
        if (w := layout.workflow_of(item.key, layout.AUDIT))
    }
    report = GcReport(workflows_known=len(refs.workflows), references=len(refs.keys))

    def garbage(prefix: str, key: str) -> bool:
        if prefix == layout.PAYLOADS:
            return key not in refs.keys
        owner = layout.workflow_of(key, prefix)
        if owner is None or owner in refs.workflows:
            return False
        return prefix == layout.CALLS or owner not in audited

    for prefix in (layout.PAYLOADS, layout.CALLS, layout.CONTENT, layout.SEARCHES):
        age_limit = timedelta(seconds=search_cache_seconds) if prefix == layout.SEARCHES else grace
        async for item in store.scan(prefix):
            old = now - item.modified > max(age_limit, grace)
            if old and (prefix == layout.SEARCHES or garbage(prefix, item.key)):
                if not dry_run:
                    await store.delete(item.key)
                report.deleted[prefix.rstrip("/")] = report.deleted.get(prefix.rstrip("/"), 0) + 1
                report.deleted_bytes += item.size
            else:
                report.kept += 1
    return report


def print_gc(report: GcReport, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"dry_run": dry_run, **asdict(report)}, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    parts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.deleted.items())) or "nothing"
    print(
        f"{verb} {parts} ({report.deleted_bytes} bytes); kept {report.kept} objects, "
        f"referenced by {report.workflows_known} workflows Temporal knows"
    )


# -- audit ------------------------------------------------------------------------------


@dataclass
class AuditCheck:
    """A manifest read back and checked."""

    reading: audit.AuditReading
    history_sha256: str | None

    @property
    def verified(self) -> bool:
        return (
            self.history_sha256 is not None
            and self.history_sha256 == self.reading.sha256
            and not self.reading.sources_unverified
        )


async def recorded_sha256(
    research: ResearchClient, payloads: Payloads, workflow_id: str
) -> str | None:
    """The manifest hash the run's history recorded (`record_audit`'s result), if any."""
    try:
        history = await research.history(workflow_id)
    except RunNotFound:
        return None
    scheduled = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == RECORD_AUDIT_ACTIVITY
    }
    for event in reversed(history.events):
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            continue
        attrs = event.activity_task_completed_event_attributes
        if attrs.scheduled_event_id in scheduled:
            [result] = await payloads.converter.decode(attrs.result.payloads, [RecordAuditResult])
            return str(result.sha256)
    return None


async def check_audit(
    payloads: Payloads, research: ResearchClient | None, workflow_id: str
) -> AuditCheck:
    """Read the manifest of `workflow_id` and check its hashes against the store and history."""
    records = payloads.records
    if records is None:
        raise StoreCommandError("RESEARCH_PAYLOAD_STORE is none: there are no manifests", 2)
    try:
        reading = await audit.read_manifest(records, workflow_id)
    except (StoreError, IntegrityError) as err:
        raise StoreCommandError(str(err)) from None
    if reading is None:
        raise StoreCommandError(
            f"no audit manifest for {workflow_id} in {records.url} (has the run ended?)", 2
        )
    history = None
    if research is not None:
        history = await recorded_sha256(research, payloads, workflow_id)
    return AuditCheck(reading=reading, history_sha256=history)


def print_audit(check: AuditCheck, as_json: bool) -> None:
    manifest = check.reading.manifest
    if as_json:
        data: dict[str, Any] = {
            "manifest": manifest.model_dump(mode="json"),
            "sha256": check.reading.sha256,
            "history_sha256": check.history_sha256,
            "sources_unverified": check.reading.sources_unverified,
            "verified": check.verified,
        }
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    print(f"{manifest.workflow_id} (run {manifest.run_id}), recorded {manifest.recorded_at}")
    question = manifest.request.get("question", "")
    print(f"  question: {question}")
    print(f"  outcome: {manifest.outcome or 'unknown'}; cache hits: {manifest.cache_hits}")
    for n, query in enumerate(manifest.plan):
        print(f"  plan {n}: {query.query}")
    for search in manifest.searches:
        cached = ", cached" if search.cached else ""
        print(
            f"  search '{search.query}': {search.outcome} via {search.provider or '?'}, "
            f"{search.attempts} attempts{cached}, {search.hits} hits, "
            f"{search.started_at} to {search.finished_at}"
        )
    unverified = set(check.reading.sources_unverified)
    for source in manifest.sources:
        mark = "missing or altered" if source.id in unverified else "ok"
        print(f"  source [{source.id}] {source.url} sha256 {source.content_sha256 or '-'}: {mark}")
    for step in manifest.model_steps:
        usage = step.usage
        print(
            f"  model step {step.step}: {step.model}, {step.attempts} attempts, "
            f"{usage.calls} calls, {usage.input_tokens} in / {usage.output_tokens} out tokens"
        )
    cited = ", ".join(str(i) for i in manifest.citations.cited_source_ids) or "none"
    print(f"  cited sources: {cited}; removed citations: {manifest.citations.removed_citations}")
    if check.history_sha256 is None:
        print(f"manifest sha256 {check.reading.sha256}: not checked (no record in the history)")
    elif check.history_sha256 == check.reading.sha256:
        print(f"manifest sha256 {check.reading.sha256}: matches the run's history")
    else:
        print(
            f"manifest sha256 {check.reading.sha256}: does NOT match the run's history "
            f"({check.history_sha256})"
        )


# -- codec server -----------------------------------------------------------------------


async def run_codec_server(
    payloads: Payloads, token: str, origins: list[str], host: str, port: int
) -> None:
    """Serve until cancelled (SIGTERM, Ctrl-C)."""
    from research_cli.codec_server import build_app, serve

    try:
        runner = await serve(build_app(payloads, token, origins), host, port)
    except OSError as err:
        raise StoreCommandError(f"cannot serve on {host}:{port}: {err.strerror}") from None
    print(f"codec server on http://{host}:{port} (store: {payloads.describe()['payload_store']})")
    try:
        await asyncio.Event().wait()  # until the command is cancelled
    finally:
        await runner.cleanup()
        await payloads.aclose()
