"""Where each kind of object lives in a store. docs/payloads.md describes the layout and how
long each part is kept; `deep-research gc` and S3 lifecycle rules act on these prefixes."""

from __future__ import annotations

from research_shared.store._objects import segment

PAYLOADS = "payloads/"
"""Payloads stored aside by the data converter, by the SHA-256 of their bytes."""
CALLS = "calls/"
"""Recorded provider answers, per workflow: `calls/<workflow>/<call key>`."""
SEARCHES = "searches/"
"""The cross-run search cache: the newest result of each search, by provider and query."""
CONTENT = "content/"
"""Retrieved page text, per workflow, by the SHA-256 of its UTF-8: what audits verify."""
AUDIT = "audit/"
"""One manifest per run that returned a report: `audit/<workflow>.json`."""


def payload_key(sha256: str) -> str:
    return f"{PAYLOADS}sha256/{sha256[:2]}/{sha256}"


def call_key(workflow_id: str, key: str) -> str:
    return f"{CALLS}{segment(workflow_id)}/{key}"


def search_key(key: str) -> str:
    return f"{SEARCHES}{key[:2]}/{key}"


def content_key(workflow_id: str, sha256: str) -> str:
    return f"{CONTENT}{segment(workflow_id)}/{sha256}"


def audit_key(workflow_id: str) -> str:
    return f"{AUDIT}{segment(workflow_id)}.json"


def workflow_of(key: str, prefix: str) -> str | None:
    """The workflow segment of a per-workflow key under `prefix`, None for other keys."""
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    if prefix == AUDIT:
        return rest.removesuffix(".json") if rest.endswith(".json") else None
    head, sep, _ = rest.partition("/")
    return head if sep else None
