"""The payload store: both backends (a folder, and S3 through moto's real S3 server), content
addressing and integrity checks, the documented S3 lifecycle rules, and a run whose large
payloads go aside so that its history holds references instead of page text."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiobotocore.session import get_session
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import StorageDriverRetrieveContext, StorageDriverStoreContext

from research_cli.embedded import wait_for_server
from research_cli.store_commands import payloads_in, referenced_key
from research_shared.models import ResearchReport
from research_shared.names import WORKFLOW_TYPE
from research_shared.payloads import open_payloads
from research_shared.settings import PayloadSettings
from research_shared.store import (
    FileObjectStore,
    IntegrityError,
    ObjectMissing,
    ObjectStore,
    S3ObjectStore,
    StoreDriver,
    StoreError,
)
from tests.helpers.fakes.tavily_server import FakeTavilyServer
from tests.helpers.processes import DevServer, WorkerProcesses, own_queues
from tests.helpers.s3 import S3_ENV, S3Server, start_s3_server

LIFECYCLE = Path(__file__).resolve().parents[1] / "deploy" / "s3" / "lifecycle.json"
PAGE_CHARS = 8192
# A phrase of every page the fake serves with `page_chars`.
PAGE_PHRASE = "耐久実行はワークフローの履歴を再生して".encode()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


async def make_bucket(server: S3Server) -> str:
    bucket = f"research-{uuid.uuid4().hex[:10]}"
    async with get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    ) as s3:
        await s3.create_bucket(Bucket=bucket)
    return bucket


def s3_settings(server: S3Server, bucket: str, prefix: str = "deep-research") -> PayloadSettings:
    return PayloadSettings(
        payload_store=f"s3://{bucket}/{prefix}",
        s3_endpoint_url=server.endpoint_url,
        s3_region=S3_ENV["AWS_DEFAULT_REGION"],
        AWS_ACCESS_KEY_ID=S3_ENV["AWS_ACCESS_KEY_ID"],
        AWS_SECRET_ACCESS_KEY=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
async def s3_store(s3_server: S3Server) -> AsyncIterator[S3ObjectStore]:
    store = open_payloads(s3_settings(s3_server, await make_bucket(s3_server))).store
    assert isinstance(store, S3ObjectStore)
    yield store
    await store.aclose()


async def exercise(store: ObjectStore) -> None:
    """What both backends must do alike."""
    await store.check()
    await store.put("calls/run-1/a", b"first")
    await store.put("calls/run-1/a", b"second")  # replaced whole
    await store.put("calls/run-2/b", b"other")
    # Several at once, each whole, in folders that do not exist yet; and none at all.
    await store.put_many([("content/run-3/x", b"x"), ("content/run-3/y", b"y" * 5000)])
    assert [await store.get(f"content/run-3/{k}") for k in "xy"] == [b"x", b"y" * 5000]
    await store.put_many([])
    for key in ("content/run-3/x", "content/run-3/y"):
        await store.delete(key)
    # Not flushed to disk, but read back alike.
    await store.put("searches/lazy", b"lazy", durable=False)
    assert await store.get("searches/lazy") == b"lazy"
    await store.delete("searches/lazy")
    assert await store.get("calls/run-1/a") == b"second"
    assert await store.exists("calls/run-2/b")
    assert sorted(o.key for o in [o async for o in store.scan("calls/")]) == [
        "calls/run-1/a",
        "calls/run-2/b",
    ]
    assert [o.size async for o in store.scan("calls/run-2/")] == [5]
    await store.delete("calls/run-2/b")
    await store.delete("calls/run-2/b")  # deleting nothing is no error
    assert not await store.exists("calls/run-2/b")
    with pytest.raises(ObjectMissing):
        await store.get("calls/run-2/b")

    driver = StoreDriver(store)
    payload = Payload(
        metadata={"encoding": b"json/plain"}, data=b'{"text": "' + b"x" * 9000 + b'"}'
    )
    [claim] = await driver.store(StorageDriverStoreContext(), [payload])
    [again] = await driver.store(StorageDriverStoreContext(), [payload])
    assert claim.claim_data == again.claim_data  # the same bytes are one object
    assert claim.claim_data["key"].startswith("payloads/sha256/")
    [back] = await driver.retrieve(StorageDriverRetrieveContext(), [claim])
    assert back == payload

    await store.put(claim.claim_data["key"], payload.SerializeToString() + b"tampered")
    with pytest.raises(IntegrityError, match="does not match its reference"):
        await driver.retrieve(StorageDriverRetrieveContext(), [claim])


async def test_folder_store(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "store")
    await exercise(store)
    assert not [p for p in (tmp_path / "store").rglob(".partial-*")]
    with pytest.raises(ValueError, match="not a store key"):
        await store.put("../outside", b"x")


async def test_folder_store_writes_several_all_or_none_of_each(tmp_path: Path) -> None:
    """A batch that cannot write one of its objects raises and leaves no partial file; the
    objects it wrote before the failure are whole."""
    store = FileObjectStore(tmp_path / "store")
    await store.put("content/run/taken", b"a file")
    # "content/run/taken" is a file, so nothing can be written under it as a folder.
    with pytest.raises(StoreError, match=r"cannot write .*taken/b in the payload store"):
        await store.put_many([("content/run/a", b"a"), ("content/run/taken/b", b"b")])
    assert not [p for p in (tmp_path / "store").rglob(".partial-*")]
    assert await store.get("content/run/taken") == b"a file"
    assert not await store.exists("content/run/a")  # nothing is renamed into place early


async def test_s3_store(s3_store: S3ObjectStore) -> None:
    await exercise(s3_store)
    # Every key is under the prefix of the setting.
    assert s3_store.prefix == "deep-research/"


async def test_s3_store_names_a_missing_bucket(s3_server: S3Server) -> None:
    store = open_payloads(s3_settings(s3_server, "no-such-bucket-here")).store
    assert store is not None
    with pytest.raises(StoreError, match="no such bucket"):
        await store.check()
    await store.aclose()


async def test_the_documented_lifecycle_rules_are_accepted_by_s3(
    s3_server: S3Server, s3_store: S3ObjectStore
) -> None:
    rules = json.loads(LIFECYCLE.read_text())
    async with get_session().create_client(
        "s3", endpoint_url=s3_server.endpoint_url, **_credentials()
    ) as s3:
        await s3.put_bucket_lifecycle_configuration(
            Bucket=s3_store.bucket, LifecycleConfiguration=rules
        )
        applied = await s3.get_bucket_lifecycle_configuration(Bucket=s3_store.bucket)
    prefixes = {r["Filter"]["Prefix"] for r in applied["Rules"]}
    for part in ("payloads/", "calls/", "searches/", "content/", "audit/"):
        assert f"{s3_store.prefix}{part}" in prefixes


def _credentials() -> dict[str, str]:
    return {
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.mark.e2e
async def test_a_run_on_s3_keeps_page_text_out_of_its_history(
    dev_server: DevServer, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = await make_bucket(s3_server)
    settings = s3_settings(s3_server, bucket, "runs")
    payloads = open_payloads(settings)
    client: Client = await wait_for_server(dev_server.address, data_converter=payloads.converter)
    suffix = uuid.uuid4().hex[:6]
    queues = own_queues("s3")
    with FakeTavilyServer(page_chars=PAGE_CHARS) as tavily:
        assert isinstance(tavily, FakeTavilyServer)
        workers = WorkerProcesses(
            address=dev_server.address,
            log_dir=tmp_path / "logs",
            env={
                **queues,
                **S3_ENV,
                "RESEARCH_PAYLOAD_STORE": f"s3://{bucket}/runs",
                "RESEARCH_S3_ENDPOINT_URL": s3_server.endpoint_url,
                "RESEARCH_SEARCH_PROVIDER": "tavily",
                "TAVILY_API_KEY": tavily.api_key,
                "TAVILY_BASE_URL": tavily.base_url,
                "RESEARCH_LLM_PROVIDER": "offline",
            },
        )
        try:
            workers.start("orchestrator", "search", "llm")
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                {"question": "How does durable execution survive crashes?", "max_searches": 3},
                id=f"s3-run-{suffix}",
                task_queue=queues["RESEARCH_ORCHESTRATOR_QUEUE"],
                result_type=ResearchReport,
            )
            report = await handle.result()
        finally:
            workers.stop_all()

    assert report.sources and report.stats.searches_succeeded >= 1
    history = await handle.fetch_history()
    inline = [p for event in history.events for p in payloads_in(event)]
    references = {k for p in inline if (k := await referenced_key(p, None))}
    # The page text is in the store; the history holds references to it.
    assert not [p for p in inline if PAGE_PHRASE in p.data]
    assert references
    assert payloads.store is not None
    stored = {o.key async for o in payloads.store.scan("payloads/")}
    assert references <= stored
    pages = [await payloads.store.get(key) for key in references]
    assert any(PAGE_PHRASE in data for data in pages)
    await payloads.aclose()
