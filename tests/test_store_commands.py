"""`record_audit` and `deep-research audit`, and `deep-research gc`, against the shared dev
server: the manifest's hashes verify against the store and the run's history, and the
collector deletes only what no workflow Temporal knows refers to."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from research_cli.embedded import wait_for_server
from research_search.activities import SearchActivities
from research_search.providers import SearchProgress
from research_shared import audit
from research_shared.models import (
    AuditManifest,
    AuditSearch,
    AuditSource,
    RecordAuditInput,
    SearchHit,
)
from research_shared.payloads import open_payloads
from research_shared.settings import PayloadSettings
from research_shared.store import FileObjectStore, Records, layout, segment
from tests.helpers.processes import DevServer
from tests.helpers.store_workflows import Echo, RecordAudit

pytestmark = pytest.mark.e2e

PAGES = ["Durable execution replays the history.", "Workers may die at any moment."]


class NoSearch:
    """A provider the audit tests never call."""

    name = "none"

    async def search(
        self,
        query: str,
        max_results: int,
        progress: SearchProgress | None = None,
        on_progress: Any = None,
    ) -> list[SearchHit]:
        raise AssertionError("not called")

    async def aclose(self) -> None:
        return None


async def cli(*args: str, store: str, address: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "research_cli", *args],
        env={**os.environ, "TEMPORAL_ADDRESS": address, "RESEARCH_PAYLOAD_STORE": store},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_record_audit_then_audit_verifies_against_store_and_history(
    client: Client, dev_server: DevServer, payload_store: str, task_queue: str
) -> None:
    records = Records(FileObjectStore(Path(urlsplit(payload_store).path)))
    workflow_id = f"audited-{uuid.uuid4().hex[:8]}"
    digests = [await audit.keep_content(records, workflow_id, page) for page in PAGES]
    manifest = AuditManifest(
        workflow_id="set by the activity, not by the caller",
        request={"question": "Does the audit verify?"},
        outcome="completed",
        searches=[AuditSearch(query="durable execution", provider="tavily", attempts=2)],
        sources=[
            AuditSource(id=n, url=f"https://example.org/{n}", content_sha256=d)
            for n, d in enumerate(digests, 1)
        ],
    )
    activities = SearchActivities(NoSearch(), records=records)
    async with Worker(
        client, task_queue=task_queue, workflows=[RecordAudit], activities=[activities.record_audit]
    ):
        result = await client.execute_workflow(
            RecordAudit.run,
            args=[RecordAuditInput(manifest=manifest), task_queue],
            id=workflow_id,
            task_queue=task_queue,
        )
    assert result.key == layout.audit_key(workflow_id)
    assert result.sources_verified == 2 and result.sources_unverified == []

    done = await cli(
        "audit", workflow_id, "--json", store=payload_store, address=dev_server.address
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["verified"] and shown["history_sha256"] == shown["sha256"] == result.sha256
    assert shown["manifest"]["workflow_id"] == workflow_id

    # A manifest changed after the run no longer matches what its history recorded.
    changed = shown["manifest"] | {"outcome": "cancelled"}
    await records.put(result.key, json.dumps(changed).encode())
    done = await cli("audit", workflow_id, store=payload_store, address=dev_server.address)
    assert done.returncode == 1
    assert "does NOT match the run's history" in done.stdout
    assert done.stderr.strip().splitlines() == [
        f"error: the audit of {workflow_id} does not verify against the store"
    ]

    done = await cli("audit", "no-such-run", store=payload_store, address=dev_server.address)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: no audit manifest for no-such-run")


async def test_gc_deletes_only_what_no_known_workflow_references(
    dev_server: DevServer, tmp_path: Path, task_queue: str
) -> None:
    root = tmp_path / "store"
    url = f"file://{root}"
    payloads = open_payloads(PayloadSettings(payload_store=url, payload_store_threshold=1024))
    client = await wait_for_server(dev_server.address, data_converter=payloads.converter)
    store = payloads.store
    assert isinstance(store, FileObjectStore)

    async with Worker(client, task_queue=task_queue, workflows=[Echo]):
        known = f"echo-{uuid.uuid4().hex[:8]}"
        await client.execute_workflow(Echo.run, "x" * 4000, id=known, task_queue=task_queue)
    referenced = {o.key async for o in store.scan(layout.PAYLOADS)}
    assert referenced, "the echo's payloads were not stored aside"

    gone, audited = f"gone-{uuid.uuid4().hex[:6]}", f"gone-audited-{uuid.uuid4().hex[:6]}"
    old = {
        layout.payload_key("ab" * 32): b"nobody refers to me",
        layout.call_key(gone, "k1"): b"{}",
        layout.call_key(known, "k2"): b"{}",
        layout.content_key(gone, "c1"): b"page",
        layout.content_key(audited, "c2"): b"page",
        layout.audit_key(audited): b"{}",
        layout.search_key("s1" * 32): b"{}",
    }
    young = {layout.payload_key("cd" * 32): b"just written", layout.search_key("s2" * 32): b"{}"}
    for key, data in {**old, **young}.items():
        await store.put(key, data)
    hours_ago = time.time() - 8 * 24 * 3600
    for key in [*old, *referenced]:
        os.utime(root / key, (hours_ago, hours_ago))

    dry = await cli("gc", "--dry-run", "--json", store=url, address=dev_server.address)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["deleted"] == {
        "payloads": 1,
        "calls": 1,
        "content": 1,
        "searches": 1,
    }
    assert all((root / key).exists() for key in old)

    done = await cli("gc", store=url, address=dev_server.address)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("deleted 1 calls, 1 content, 1 payloads, 1 searches")
    left = {o.key async for o in store.scan("")}
    assert left == (set(old) | set(young) | referenced) - {
        layout.payload_key("ab" * 32),
        layout.call_key(gone, "k1"),
        layout.content_key(gone, "c1"),
        layout.search_key("s1" * 32),
    }
    assert segment(known) in {layout.workflow_of(k, layout.CALLS) for k in left}
    await payloads.aclose()


async def test_gc_refuses_a_store_it_does_not_clean(dev_server: DevServer) -> None:
    done = await cli("gc", store="s3://some-bucket/prefix", address=dev_server.address)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "lifecycle rules" in line
