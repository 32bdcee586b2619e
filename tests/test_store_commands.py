"""`record_audit` and `deep-research audit`, and `deep-research gc`, against the shared dev
server: the manifest's hashes verify against the store and the run's history, and the
collector deletes only what no workflow Temporal knows refers to: not what a waiting run or
a pending activity's heartbeat still needs, with or without encryption, and nothing at all
when it meets a reference it cannot read. The S3 lifecycle rules hold the retention the
docs give."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from google.protobuf.message import Message
from temporalio import activity
from temporalio.client import Client
from temporalio.converter import _extstore
from temporalio.worker import Worker

from research_cli.embedded import free_port, start_dev_server, stop_process, wait_for_server
from research_cli.store_commands import payloads_in, referenced_key
from research_search.activities import SearchActivities
from research_shared import audit
from research_shared.encryption import ENCRYPTED_ENCODING
from research_shared.models import (
    MAX_WAIT_SECONDS,
    AuditManifest,
    AuditSearch,
    AuditSource,
    Phase,
    RecordAuditInput,
)
from research_shared.names import REVIEW_PLAN_UPDATE
from research_shared.payloads import open_payloads
from research_shared.settings import PayloadSettings
from research_shared.store import (
    REFERENCE_MARKER,
    FileObjectStore,
    Records,
    layout,
    retention,
    segment,
)
from tests.helpers.processes import DevServer
from tests.helpers.runs import NoSearch
from tests.helpers.store_workflows import HOLD_ACTIVITY, Echo, HoldWithDetails, RecordAudit
from tests.helpers.workflow_stubs import Stubs, running_workers, start, wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e

PAGES = ["Durable execution replays the history.", "Workers may die at any moment."]


async def cli(
    *args: str, store: str, address: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "research_cli", *args],
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "RESEARCH_PAYLOAD_STORE": store,
            **(env or {}),
        },
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
    digests = await audit.keep_contents(records, workflow_id, PAGES)
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


# -- gc and what running workflows still need ------------------------------------------------


def age(root: Path, keys: Iterable[str], days: float = 8) -> None:
    """Make objects look `days` old, past every grace period."""
    then = time.time() - days * 24 * 3600
    for key in keys:
        os.utime(root / key, (then, then))


async def keys_referenced(message: Iterable[Message] | Message, codec: Any) -> set[str]:
    messages = [message] if isinstance(message, Message) else list(message)
    return {k for m in messages for p in payloads_in(m) if (k := await referenced_key(p, codec))}


async def test_gc_keeps_what_a_waiting_run_and_a_pending_heartbeat_need_with_a_key_set(
    dev_server: DevServer, tmp_path: Path, task_queue: str
) -> None:
    """A run waiting for its plan's approval, and an activity whose heartbeat details only
    its pending state references (not the history), keep their objects through gc; with a
    key set, so every object is sealed. Both runs then go on, reading what they stored."""
    root = tmp_path / "store"
    url, key = f"file://{root}", base64.b64encode(os.urandom(32)).decode()
    payloads = open_payloads(
        PayloadSettings(payload_store=url, payload_store_threshold=1024, encryption_key=key)
    )
    codec = payloads.converter.payload_codec
    client = await wait_for_server(dev_server.address, data_converter=payloads.converter)
    released = asyncio.Event()

    @activity.defn(name=HOLD_ACTIVITY)
    async def hold() -> str:
        activity.heartbeat("still reading the sources; " * 80)
        await released.wait()
        return "held and released"

    question = "What must the store keep for a run that waits? " + "Say why. " * 200
    hold_queue = f"{task_queue}-hold"
    async with (
        running_workers(client, task_queue, Stubs()),
        Worker(client, task_queue=hold_queue, workflows=[HoldWithDetails], activities=[hold]),
    ):
        waiting = await start(client, task_queue, question=question, approve_plan=True)
        await wait_for(waiting, Phase.AWAITING_APPROVAL)
        holding = await client.start_workflow(
            HoldWithDetails.run,
            hold_queue,
            id=f"hold-{uuid.uuid4().hex[:8]}",
            task_queue=hold_queue,
        )
        async with asyncio.timeout(30):
            while not (
                in_heartbeat := await keys_referenced(
                    (await holding.describe()).raw_description.pending_activities, codec
                )
            ):
                await asyncio.sleep(0.2)
        in_histories = await keys_referenced(
            [*(await waiting.fetch_history()).events, *(await holding.fetch_history()).events],
            codec,
        )
        assert in_histories, "the waiting run stored nothing aside"
        assert not in_heartbeat & in_histories  # the details are referenced only while pending

        unreferenced = layout.payload_key("ef" * 32)
        await payloads.store.put(unreferenced, b"nobody refers to me")  # type: ignore[union-attr]
        stored = {o.key async for o in payloads.store.scan("")}  # type: ignore[union-attr]
        age(root, stored)
        done = await cli(
            "gc", store=url, address=dev_server.address, env={"RESEARCH_ENCRYPTION_KEY": key}
        )
        assert done.returncode == 0, done.stderr
        left = {o.key async for o in payloads.store.scan("")}  # type: ignore[union-attr]
        # What no workflow references goes (status query answers stored aside, too).
        assert in_histories | in_heartbeat <= left and unreferenced not in left

        released.set()
        assert await holding.result() == "held and released"
        await waiting.execute_update(REVIEW_PLAN_UPDATE, {"decision": "approve"})
        report = await waiting.result()
    assert report.question == question.strip() and report.report_markdown
    await payloads.aclose()


@contextmanager
def references_encoded_by_the_codec() -> Iterator[None]:
    """What a later SDK release does (`_ENCODE_STORAGE_REFERENCES` turned on): references
    encrypted with the payloads, marked with `REFERENCE_MARKER`. This process's workers write
    such references while it is on."""
    before = _extstore._ENCODE_STORAGE_REFERENCES
    _extstore._ENCODE_STORAGE_REFERENCES = True
    try:
        yield
    finally:
        _extstore._ENCODE_STORAGE_REFERENCES = before


async def test_gc_reads_encrypted_references_and_refuses_what_it_cannot_read(
    tmp_path: Path, task_queue: str
) -> None:
    """On a server of its own, so no other test's gc meets these references."""
    server = DevServer(db_file=tmp_path / "t.db", port=free_port(), log_file=tmp_path / "log")
    server.process = start_dev_server(server.db_file, server.port, log_file=server.log_file)
    try:
        root = tmp_path / "store"
        url, key = f"file://{root}", base64.b64encode(os.urandom(32)).decode()
        settings = PayloadSettings(
            payload_store=url, payload_store_threshold=1024, encryption_key=key
        )
        payloads = open_payloads(settings)
        client = await wait_for_server(
            server.address, process=server.process, data_converter=payloads.converter
        )
        echo = f"echo-{uuid.uuid4().hex[:8]}"
        with references_encoded_by_the_codec():
            async with Worker(client, task_queue=task_queue, workflows=[Echo]):
                await client.execute_workflow(Echo.run, "x" * 4000, id=echo, task_queue=task_queue)
        events = (await client.get_workflow_handle(echo).fetch_history()).events
        marked = [
            p for e in events for p in payloads_in(e) if p.metadata.get(REFERENCE_MARKER) == b"true"
        ]
        assert marked and {p.metadata["encoding"] for p in marked} == {ENCRYPTED_ENCODING}
        referenced = await keys_referenced(events, payloads.converter.payload_codec)
        assert referenced

        unreferenced = layout.payload_key("ab" * 32)
        await payloads.store.put(unreferenced, b"nobody refers to me")  # type: ignore[union-attr]
        stored = {o.key async for o in payloads.store.scan("")}  # type: ignore[union-attr]
        assert referenced < stored
        age(root, stored)

        refused = await cli("gc", store=url, address=server.address)
        assert refused.returncode == 1, refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(f"error: gc cannot read the references of workflow {echo}, so")
        assert "deleted nothing" in line and "no key" in line
        assert {o.key async for o in payloads.store.scan("")} == stored  # type: ignore[union-attr]

        done = await cli(
            "gc", store=url, address=server.address, env={"RESEARCH_ENCRYPTION_KEY": key}
        )
        assert done.returncode == 0, done.stderr
        left = {o.key async for o in payloads.store.scan("")}  # type: ignore[union-attr]
        assert left == stored - {unreferenced}
        await payloads.aclose()
    finally:
        stop_process(server.process, timeout=10)


def test_the_s3_lifecycle_keeps_payloads_through_the_longest_run_and_the_retention() -> None:
    rules = json.loads((REPO_ROOT / "deploy" / "s3" / "lifecycle.json").read_text())["Rules"]
    days = {
        r["Filter"]["Prefix"].removeprefix("deep-research/"): r["Expiration"]["Days"]
        for r in rules
        if "Expiration" in r
    }
    assert days == retention.EXPIRY_DAYS
    # Three waits of a year each, then the retention: a history still readable is whole.
    longest_run_days = math.ceil(3 * MAX_WAIT_SECONDS / (24 * 3600))
    assert days[layout.PAYLOADS] >= longest_run_days + retention.MAX_RETENTION_DAYS
    assert days[layout.CONTENT] >= longest_run_days + days[layout.AUDIT]
    assert days[layout.CALLS] * 24 * 3600 > retention.LONGEST_STEP_SECONDS
    # The docs give the same figures.
    docs = (REPO_ROOT / "docs" / "payloads.md").read_text()
    for prefix, n in days.items():
        row = next(line for line in docs.splitlines() if line.startswith(f"| `{prefix}"))
        assert f"| {n:,}" in row, (prefix, row)
