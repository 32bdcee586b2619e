"""Encryption at rest: every payload encrypted with the configured key, rotation, the codec
server the Web UI decodes through, and a wrong key as a clear error.

The end-to-end test runs the three pools with a key, then reads the run's history with a
plain Temporal client (no codec, as anyone with access to the database would) and finds no
question, query or report in it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from pydantic import ValidationError
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client

from research_cli.embedded import free_port, stop_process, wait_for_server
from research_cli.store_commands import payloads_in
from research_shared.converter import DATA_CONVERTER, data_converter
from research_shared.encryption import ENCRYPTED_ENCODING, EncryptionError, Keyring, key_id
from research_shared.models import ResearchReport
from research_shared.names import WORKFLOW_TYPE
from research_shared.payloads import open_payloads
from research_shared.settings import PayloadSettings, describe_settings_error
from research_shared.store import is_reference
from tests.helpers.durability import research_stack
from tests.helpers.processes import DevServer, WorkerProcesses, own_queues

KEY_A, KEY_B = os.urandom(32), os.urandom(32)
QUESTION = "How do zlib and gzip compress data, and when should I use each?"
TOKEN = "codec-token-" + uuid.uuid4().hex


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


# -- the codec ---------------------------------------------------------------------------


async def test_payloads_are_encrypted_and_old_keys_still_decrypt() -> None:
    old = data_converter(keyring=Keyring([KEY_A]))
    [payload] = await old.encode([{"question": QUESTION}])
    assert payload.metadata["encoding"] == ENCRYPTED_ENCODING
    assert payload.metadata["encryption-key-id"] == key_id(KEY_A).encode()
    assert QUESTION.encode() not in payload.SerializeToString()

    rotated = data_converter(keyring=Keyring([KEY_B, KEY_A]))
    assert await rotated.decode([payload]) == [{"question": QUESTION}]
    [newer] = await rotated.encode(["x"])
    assert newer.metadata["encryption-key-id"] == key_id(KEY_B).encode()


async def test_a_wrong_or_missing_key_is_a_clear_error() -> None:
    [payload] = await data_converter(keyring=Keyring([KEY_A])).encode([QUESTION])
    with pytest.raises(EncryptionError, match=f"key {key_id(KEY_A)}, which is not among"):
        await data_converter(keyring=Keyring([KEY_B])).decode([payload])
    with pytest.raises(EncryptionError, match="no key is configured"):
        await DATA_CONVERTER.decode([payload])
    payload.data = payload.data[:-1] + bytes([payload.data[-1] ^ 1])
    with pytest.raises(EncryptionError, match="does not authenticate"):
        await data_converter(keyring=Keyring([KEY_A])).decode([payload])


async def test_without_a_key_nothing_changes() -> None:
    [plain] = await data_converter().encode([{"question": QUESTION}])
    [before] = await DATA_CONVERTER.encode([{"question": QUESTION}])
    assert plain == before
    assert plain.metadata["encoding"] == b"json/plain"


def test_a_bad_key_setting_is_one_line_without_the_value() -> None:
    with pytest.raises(ValidationError) as raised:
        PayloadSettings(encryption_key=b64(os.urandom(16)))
    message = describe_settings_error(raised.value)
    assert message is not None
    assert "holds 16 bytes; an AES-256 key is 32 bytes" in message
    assert "\n" not in message


def test_keys_come_from_a_file_the_first_line_encrypting(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{b64(KEY_B)}\n{b64(KEY_A)}\n")
    settings = PayloadSettings(encryption_key_file=keys)
    assert settings.encryption_keys() == [KEY_B, KEY_A]


# -- a run with a key, read without it --------------------------------------------------


@pytest.fixture(scope="module")
def encrypted_run(
    dev_server: DevServer, session_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The three pools with KEY_A on their own queues, and the id of one completed run."""
    suffix = uuid.uuid4().hex[:6]
    queues = own_queues("enc")
    workers = WorkerProcesses(
        address=dev_server.address,
        log_dir=tmp_path_factory.mktemp("encrypted-logs"),
        env={
            **queues,
            "RESEARCH_ENCRYPTION_KEY": b64(KEY_A),
            "RESEARCH_DATA_DIR": str(session_data_dir),
            "RESEARCH_SEARCH_PROVIDER": "local",
            "RESEARCH_LLM_PROVIDER": "offline",
        },
    )
    workers.start("orchestrator", "search", "llm")
    yield {"queues": queues, "workers": workers, "id": f"encrypted-{suffix}"}
    workers.stop_all()


async def keyed_client(dev_server: DevServer, key: bytes) -> Client:
    settings = PayloadSettings(encryption_key=b64(key))
    return await wait_for_server(
        dev_server.address, data_converter=open_payloads(settings).converter
    )


@pytest.mark.e2e
async def test_the_history_shows_no_question_query_or_report_without_the_key(
    dev_server: DevServer, encrypted_run: dict[str, Any]
) -> None:
    client = await keyed_client(dev_server, KEY_A)
    report = await client.execute_workflow(
        WORKFLOW_TYPE,
        {"question": QUESTION, "max_searches": 3},
        id=encrypted_run["id"],
        task_queue=encrypted_run["queues"]["RESEARCH_ORCHESTRATOR_QUEUE"],
        result_type=ResearchReport,
    )
    assert report.sources and report.queries

    plain = await Client.connect(dev_server.address)  # the SDK's defaults: no codec
    history = await plain.get_workflow_handle(encrypted_run["id"]).fetch_history()
    data = b"".join(p.SerializeToString() for e in history.events for p in payloads_in(e))
    secrets = [QUESTION, report.summary, *(q.query for q in report.queries)]
    secrets += [line for line in report.report_markdown.splitlines() if len(line) > 30][:5]
    for text in secrets:
        assert text.encode() not in data, text
    assert ENCRYPTED_ENCODING in data


@pytest.fixture(scope="module")
def codec_server(
    encrypted_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """`deep-research codec-server` with KEY_A, as an operator runs it."""
    port = free_port()
    log = tmp_path_factory.mktemp("codec") / "codec.log"
    env = {
        **os.environ,
        "RESEARCH_ENCRYPTION_KEY": b64(KEY_A),
        "RESEARCH_CODEC_AUTH_TOKEN": TOKEN,
        "RESEARCH_CODEC_CORS_ORIGINS": "http://localhost:8233",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "research_cli", "codec-server", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while call(port, "OPTIONS", "/decode")[0] != 204:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield port
    stop_process(process, timeout=10)
    assert TOKEN not in log.read_text()


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()
    except OSError:
        return 0, {}, b""


@pytest.mark.e2e
async def test_the_codec_server_decodes_the_history_for_the_ui(
    dev_server: DevServer, encrypted_run: dict[str, Any], codec_server: int
) -> None:
    plain = await Client.connect(dev_server.address)
    client = await keyed_client(dev_server, KEY_A)
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        {"question": QUESTION, "max_searches": 2},
        id=f"{encrypted_run['id']}-codec",
        task_queue=encrypted_run["queues"]["RESEARCH_ORCHESTRATOR_QUEUE"],
        result_type=ResearchReport,
    )
    report = await handle.result()
    history = await plain.get_workflow_handle(handle.id).fetch_history()
    start = history.events[0].workflow_execution_started_event_attributes.input
    body = json_format.MessageToJson(start).encode()
    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    for path, headers in (
        ("/decode", {"Authorization": f"Bearer {TOKEN}"}),
        (f"/{TOKEN}/decode", {}),  # as the dev server's UI calls it
    ):
        status, answer_headers, answer = call(
            codec_server,
            "POST",
            path,
            body,
            {**headers, "Content-Type": "application/json", "Origin": "http://localhost:8233"},
        )
        assert status == 200, answer
        assert answer_headers["Access-Control-Allow-Origin"] == "http://localhost:8233"
        decoded = json_format.Parse(answer, Payloads())
        assert json.loads(decoded.payloads[0].data)["question"] == QUESTION

    # Payloads stored aside (search results, the writer's input): the history holds only
    # references; the server fetches each from the store and decrypts it.
    stored = [p for e in history.events for p in payloads_in(e) if is_reference(p)]
    assert stored, "nothing of this run was stored aside"
    aside = json_format.MessageToJson(Payloads(payloads=stored)).encode()
    status, _, answer = call(codec_server, "POST", "/decode", aside, bearer)
    assert status == 200, answer
    opened = json_format.Parse(answer, Payloads()).payloads
    assert len(opened) == len(stored)
    assert {p.metadata["encoding"] for p in opened} == {b"json/plain"}
    texts = [p.data.decode() for p in opened]
    assert any(source.url in text for text in texts for source in report.sources)

    assert call(codec_server, "POST", "/decode", body)[0] == 401
    assert call(codec_server, "POST", "/decode", body, {"Authorization": "Bearer wrong"})[0] == 401
    # The browser asks first, without credentials, from the UI's origin: it may send the
    # token and a JSON body. Another origin is told nothing.
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    status, headers, _ = call(
        codec_server,
        "OPTIONS",
        f"/{TOKEN}/decode",
        headers={"Origin": "http://localhost:8233", **preflight},
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:8233"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-namespace"} <= allowed
    status, headers, _ = call(
        codec_server, "OPTIONS", "/decode", headers={"Origin": "http://evil.example", **preflight}
    )
    assert status == 204 and "Access-Control-Allow-Origin" not in headers


@pytest.mark.e2e
async def test_reading_a_run_with_the_wrong_key_is_one_line(
    dev_server: DevServer, encrypted_run: dict[str, Any], tmp_path: Path
) -> None:
    client = await keyed_client(dev_server, KEY_A)
    run_id = f"{encrypted_run['id']}-wrong-key"
    await client.execute_workflow(
        WORKFLOW_TYPE,
        {"question": QUESTION, "max_searches": 1},
        id=run_id,
        task_queue=encrypted_run["queues"]["RESEARCH_ORCHESTRATOR_QUEUE"],
        result_type=ResearchReport,
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "research_cli", "result", run_id, "--out", str(tmp_path / "r.md")],
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": dev_server.address,
            "RESEARCH_ENCRYPTION_KEY": b64(KEY_B),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"encrypted with key {key_id(KEY_A)}, which is not among the configured keys" in line


@pytest.mark.e2e
async def test_every_object_the_store_holds_is_sealed(
    dev_server: DevServer, tmp_path: Path
) -> None:
    """A run with a key, on providers that answer over HTTP (so answers are recorded), that
    also reuses a search of an earlier run: payloads stored aside, recorded answers, page
    text, cached searches and the audit manifest are all in the store, and not one of its
    files holds the question, a query, a page's text or the report in the clear."""
    root = tmp_path / "store"
    key = b64(KEY_A)
    queries = [f"sealed search about harbours {n}" for n in range(2)]
    payloads = open_payloads(PayloadSettings(payload_store=f"file://{root}", encryption_key=key))
    client = await wait_for_server(dev_server.address, data_converter=payloads.converter)
    with research_stack(dev_server.address, tmp_path / "logs", queries) as stack:
        stack.workers.env.update(
            {
                "RESEARCH_PAYLOAD_STORE": f"file://{root}",
                "RESEARCH_ENCRYPTION_KEY": key,
                # Small enough that the plan and the search results go aside too.
                "RESEARCH_PAYLOAD_STORE_THRESHOLD": "512",
            }
        )
        await stack.start_pools("orchestrator", "search", "llm")
        reports = []
        for reuse in (0, 600):
            reports.append(
                await client.execute_workflow(
                    WORKFLOW_TYPE,
                    {
                        "question": QUESTION,
                        "max_searches": 2,
                        "max_rounds": 1,
                        "reuse_searches_within_seconds": reuse,
                    },
                    id=f"sealed-{uuid.uuid4().hex[:8]}",
                    task_queue=stack.orchestrator_queue,
                    result_type=ResearchReport,
                )
            )
        pages = [
            result["raw_content"]
            for call in stack.tavily.calls_to("/extract")
            for result in call.answer["results"]
        ]
    assert reports[1].stats.searches_cached == 2

    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    kinds = {name.split("/", 1)[0] for name in files}
    assert {"payloads", "calls", "content", "searches", "audit"} <= kinds, kinds
    report = reports[0]
    lines = [line for line in report.report_markdown.splitlines() if len(line) > 20]
    plain = [QUESTION, *queries, report.summary, *lines[:3]]
    plain += [s.title for s in report.sources]
    plain += [page[len(page) // 2 :][:40] for page in pages]
    assert pages and all(len(text) >= 8 for text in plain), plain
    for name, data in files.items():
        for text in plain:
            assert text.encode() not in data, (name, text)
    await payloads.aclose()
