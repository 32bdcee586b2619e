"""Real processes for the end-to-end tests: the dev server and the worker pools, run by the
project's own supervisor (`research_cli.supervisor`)."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from research_cli.embedded import worker_spec
from research_cli.supervisor import ProcessError, Supervisor


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
    supervisor: Supervisor = field(default_factory=Supervisor)

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        """The current process of each pool; a test may put a process of its own here, and
        `stop_all` stops it with the rest."""
        return self.supervisor.processes

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
        for pool in pools:
            env = {**self.full_env(), **self.pool_env.get(pool, {})}
            self.supervisor.start(worker_spec(pool, env, self.log_file(pool)))
        for pool in pools:
            self.wait_ready(pool, ready_within)

    def wait_ready(self, pool: str, within: float) -> None:
        try:
            self.supervisor.wait_ready([pool], "worker started", within)
        except (ProcessError, TimeoutError) as err:
            raise RuntimeError(f"{err}:\n{self.log(pool)}") from None

    def log(self, pool: str) -> str:
        path = self.log_file(pool)
        return path.read_text(errors="replace") if path.exists() else ""

    def new_log(self, pool: str) -> str:
        """What the pool's current process has logged."""
        return self.supervisor.output(pool)

    def kill(self, pool: str) -> None:
        """SIGKILL: no graceful shutdown, in-flight work is lost as in a crash."""
        self.supervisor.kill(pool)

    def stop_all(self) -> None:
        self.supervisor.stop_all(timeout=15)


# The offline providers: the local corpus and the offline model.
OFFLINE_PROVIDERS = {"RESEARCH_SEARCH_PROVIDER": "local", "RESEARCH_LLM_PROVIDER": "offline"}


def own_queues(prefix: str) -> dict[str, str]:
    """Queue settings, by variable name, for three queues no other test polls:
    `<prefix>-orchestrator-<random>`, `<prefix>-search-<random>`, `<prefix>-llm-<random>`."""
    tag = uuid.uuid4().hex[:8]
    return {
        "RESEARCH_ORCHESTRATOR_QUEUE": f"{prefix}-orchestrator-{tag}",
        "RESEARCH_SEARCH_QUEUE": f"{prefix}-search-{tag}",
        "RESEARCH_LLM_QUEUE": f"{prefix}-llm-{tag}",
    }


def offline_pools(
    address: str, log_dir: Path, data_dir: Path, queues: dict[str, str] | None = None
) -> WorkerProcesses:
    """The three pools with the offline providers and the default corpus, started and
    polling; on the default queues, or on `queues` (queue settings by variable name)."""
    workers = WorkerProcesses(
        address=address,
        log_dir=log_dir,
        env={
            "RESEARCH_DATA_DIR": str(data_dir),
            **OFFLINE_PROVIDERS,
            **(queues or {}),
        },
    )
    workers.start("orchestrator", "search", "llm")
    return workers
