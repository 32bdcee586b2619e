"""Real processes for the end-to-end tests: the dev server and the worker pools."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from research_cli.embedded import start_worker, stop_process


@dataclass
class DevServer:
    """A running `temporal server start-dev` on a SQLite file."""

    db_file: Path
    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class WorkerProcesses:
    """Worker pools started as `python -m research_cli worker POOL`, each its own process."""

    address: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    pool_env: dict[str, dict[str, str]] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _log_offsets: dict[str, int] = field(default_factory=dict)

    def log_file(self, pool: str) -> Path:
        return self.log_dir / f"{pool}.log"

    def full_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "TEMPORAL_ADDRESS": self.address,
                "TEMPORAL_NAMESPACE": "default",
                "RESEARCH_LOG_FORMAT": "console",
                "RESEARCH_GRACEFUL_SHUTDOWN_SECONDS": "2",
            }
        )
        env.update(self.env)
        return env

    def start(self, *pools: str, ready_within: float = 120.0) -> None:
        """Start pools and wait until each one logs that it polls its queue."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for pool in pools:
            log = self.log_file(pool)
            self._log_offsets[pool] = log.stat().st_size if log.exists() else 0
            env = {**self.full_env(), **self.pool_env.get(pool, {})}
            self.procs[pool] = start_worker(pool, env, log)
        for pool in pools:
            self.wait_ready(pool, ready_within)

    def wait_ready(self, pool: str, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if "worker started" in self.new_log(pool):
                return
            proc = self.procs[pool]
            if proc.poll() is not None:
                raise RuntimeError(f"worker {pool} exited ({proc.returncode}):\n{self.log(pool)}")
            time.sleep(0.1)
        raise RuntimeError(f"worker {pool} did not start in {within}s:\n{self.log(pool)}")

    def log(self, pool: str) -> str:
        path = self.log_file(pool)
        return path.read_text(errors="replace") if path.exists() else ""

    def new_log(self, pool: str) -> str:
        """What the pool's current process has logged."""
        return self.log(pool)[self._log_offsets.get(pool, 0) :]

    def kill(self, pool: str) -> None:
        """SIGKILL: no graceful shutdown, in-flight work is lost as in a crash."""
        proc = self.procs[pool]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop_process(proc, timeout=15)
