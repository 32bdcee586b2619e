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
from dataclasses import dataclass, field

from research_shared.models import AuditManifest
from research_shared.store import Records, layout


def manifest_bytes(manifest: AuditManifest) -> bytes:
    """The canonical JSON of a manifest: what is stored and hashed."""
    data = manifest.model_dump(mode="json")
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def content_sha256(text: str) -> str:
    """The hash a source's text is kept under."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


async def keep_content(records: Records, workflow_id: str, text: str) -> str:
    """Keep `text` in the store for `workflow_id`'s audit; returns its hash."""
    digest = content_sha256(text)
    await records.put(
        layout.content_key(workflow_id, digest), text.encode("utf-8", "surrogatepass")
    )
    return digest


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
