"""The HTTP API as a real process (`deep-research api`) for the tests, with two owners' keys,
and small readers of its answers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from research_cli.embedded import api_spec, free_port
from research_cli.supervisor import ProcessError, Supervisor

OWNERS = ("alice", "bob", "fuzz")
# The session's API and its pools use queues of their own: modules that run pools on the
# default queues must not see their tasks taken by these, which live for the whole session.
API_QUEUES = {
    "RESEARCH_ORCHESTRATOR_QUEUE": "api-tests-orchestrator",
    "RESEARCH_SEARCH_QUEUE": "api-tests-search",
    "RESEARCH_LLM_QUEUE": "api-tests-llm",
}


def key_setting(keys: Mapping[str, str]) -> str:
    """`RESEARCH_API_KEYS` for these owner -> key pairs: each key stored as its SHA-256."""
    return ",".join(
        f"{owner}:{hashlib.sha256(key.encode()).hexdigest()}" for owner, key in keys.items()
    )


@dataclass
class ApiServer:
    """A running `deep-research api` and the keys it accepts, by owner."""

    port: int
    log_file: Path
    keys: dict[str, str]
    supervisor: Supervisor = field(default_factory=Supervisor)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self, owner: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[owner]}"}

    def client(self, owner: str | None = None) -> httpx.AsyncClient:
        """An HTTP client of this API that presents `owner`'s key, or no key."""
        headers = self.headers(owner) if owner is not None else None
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        self.supervisor.stop_all(timeout=15)


def start_api(
    temporal_address: str,
    log_dir: Path,
    *,
    keys: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    ready_within: float = 60.0,
) -> ApiServer:
    """Start the API on a free loopback port and wait until `/healthz` answers."""
    keys = dict(keys) if keys is not None else {o: secrets.token_urlsafe(24) for o in OWNERS}
    server = ApiServer(port=free_port(), log_file=log_dir / "api.log", keys=keys)
    full_env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": "default",
        "RESEARCH_API_HOST": "127.0.0.1",
        "RESEARCH_API_PORT": str(server.port),
        "RESEARCH_LOG_FORMAT": "console",
        "RESEARCH_GRACEFUL_SHUTDOWN_SECONDS": "2",
        **({"RESEARCH_API_KEYS": key_setting(keys)} if keys else {}),
        **(env or {}),
    }
    if not keys:
        full_env.pop("RESEARCH_API_KEYS", None)
    proc = server.supervisor.start(api_spec(full_env, server.log_file))
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProcessError(
                server.supervisor.specs["api"], f"exited with code {proc.returncode}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"the API did not answer in {ready_within:g}s:\n{server.log()}")


async def read_events(
    client: httpx.AsyncClient, path: str, found: list[tuple[str, dict[str, Any]]] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Every Server-Sent Event of `path` until the server ends the stream: (event, data),
    appended to `found` as each arrives when it is given."""
    found = [] if found is None else found
    event, data = "message", ""
    async with client.stream("GET", path, timeout=httpx.Timeout(30, read=120)) as answer:
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        async for line in answer.aiter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data += line.partition(":")[2].strip()
            elif not line and data:
                found.append((event, json.loads(data)))
                event, data = "message", ""
    return found


async def wait_for_phase(
    client: httpx.AsyncClient, run_id: str, phase: str, within: float = 90.0
) -> dict[str, Any]:
    """Poll GET /v1/research/{id} until the run's status is in `phase`; its body."""
    deadline = time.monotonic() + within
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = await client.get(f"/v1/research/{run_id}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if body["status"] and body["status"]["phase"] == phase:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run_id} did not reach {phase} in {within:g}s: {body}")


async def wait_for_result(
    client: httpx.AsyncClient, run_id: str, within: float = 30.0
) -> dict[str, Any]:
    """Poll GET /v1/research/{id}/result until the run's report is there; the report."""
    deadline = time.monotonic() + within
    while True:
        answer = await client.get(f"/v1/research/{run_id}/result")
        if answer.status_code == 200:
            report: dict[str, Any] = answer.json()
            return report
        if time.monotonic() >= deadline:
            raise AssertionError(f"{run_id} has no result: {answer.status_code} {answer.text}")
        await asyncio.sleep(0.2)


async def saw(found: list[tuple[str, dict[str, Any]]], event: str, within: float = 60.0) -> None:
    """Wait until `found` (filled by `read_events`) holds an `event`: what a follower must be
    shown before the run moves on."""
    async with asyncio.timeout(within):
        while event not in {kind for kind, _ in found}:
            await asyncio.sleep(0.05)
