"""What one invocation runs: the Temporal dev server, the providers' process and three sets of
worker pools (bare, floor, ours), each set on queues of its own; and what is read from them
(metrics, CPU time, memory, the providers' call counts)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from research_cli.embedded import SERVER, free_port, without_temporal_connection, worker_spec

__all__ = ["SERVER"]  # with everything defined here: the server's name in the group
from research_cli.supervisor import ProcessError, ProcessSpec, Supervisor

BENCH_DIR = Path(__file__).resolve().parent
BARE_SCRIPT = BENCH_DIR / "bare.py"
PROVIDERS_SCRIPT = BENCH_DIR / "providers.py"
PROVIDERS = "providers"
POOLS = ("orchestrator", "search", "llm")
KINDS = ("bare", "floor", "ours")
BASELINES = ("bare", "floor")
PLAN_MODEL = "planner-model"
WRITE_MODEL = "writer-model"
# Variables of the caller's shell that would change what a pool talks to or how it encodes
# payloads; each kind gets its own values below.
_OWN_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "TAVILY_API_KEY",
    "TAVILY_BASE_URL",
    "RESEARCH_PAYLOAD_STORE",
    "RESEARCH_ENCRYPTION_KEY",
    "RESEARCH_ENCRYPTION_KEY_FILE",
    "RESEARCH_ENCRYPTION_PREVIOUS_KEYS",
    "RESEARCH_SEARCH_PROVIDER",
    "RESEARCH_LLM_PROVIDER",
)


class BenchError(Exception):
    """The benchmark could not run: printed as one line, exit code 1."""


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Queues:
    orchestrator: str
    search: str
    llm: str


@dataclass(frozen=True)
class Features:
    """What our pools run with: each of the payload issue's features, on unless turned off."""

    store: bool = True
    encryption: bool = True
    cache: bool = True

    def describe(self) -> dict[str, bool]:
        return {
            "payload_store": self.store,
            "provider_call_recording": self.store,
            "search_cache": self.store and self.cache,
            "encryption": self.encryption,
            "audit_manifest": self.store,
        }


# -- processes ---------------------------------------------------------------------------------


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy_seconds() -> float | None:
    """CPU time the whole machine spent busy (all processes, and time stolen by the
    hypervisor), from /proc/stat; None where that does not exist."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _clock_ticks()


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


@dataclass
class Processes:
    """Everything the benchmark started, on the project's supervisor, and the metrics ports
    of each worker; `stop` ends all of it, whatever happened before."""

    log_dir: Path
    supervisor: Supervisor = field(default_factory=Supervisor)
    # Per worker: the port of its SDK metrics, and of its application metrics (0: none).
    metrics_ports: dict[str, tuple[int, int]] = field(default_factory=dict)

    def start(self, spec: ProcessSpec, sdk_metrics_port: int = 0, metrics_port: int = 0) -> None:
        self.supervisor.start(spec)
        self.metrics_ports[spec.name] = (sdk_metrics_port, metrics_port)

    def workers(self) -> list[str]:
        return [n for n in self.supervisor.processes if n not in (SERVER, PROVIDERS)]

    def dead(self) -> list[str]:
        return list(self.supervisor.exited())

    def pid(self, name: str) -> int:
        return self.supervisor.processes[name].pid

    async def wait_ready(self, names: Iterable[str], marker: str, within: float) -> None:
        """Wait until each process logs `marker`."""
        deadline = time.monotonic() + within
        pending = list(names)
        while pending:
            try:
                pending = [n for n in pending if not self.supervisor.ready(n, marker)]
            except ProcessError as err:
                raise BenchError(str(err)) from None
            if time.monotonic() > deadline:
                raise BenchError(f"{', '.join(pending)} did not start in {within:g}s")
            await asyncio.sleep(0.1)

    def cpu_seconds(self) -> dict[str, float]:
        """User plus system CPU time of each live process, from /proc (Linux); else empty."""
        cpu: dict[str, float] = {}
        for name, proc in self.supervisor.processes.items():
            try:
                stat = Path(f"/proc/{proc.pid}/stat").read_text()
            except OSError:
                continue
            # Fields after the command name, which is in parentheses and may hold spaces.
            fields = stat.rsplit(")", 1)[1].split()
            cpu[name] = (int(fields[11]) + int(fields[12])) / _clock_ticks()
        return cpu

    def rss_bytes(self, name: str) -> int | None:
        """Resident memory of a process (VmRSS), None where /proc does not say."""
        try:
            status = Path(f"/proc/{self.pid(name)}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    def stop(self) -> None:
        """SIGTERM every worker at once, wait for them, then the server."""
        self.supervisor.stop_all(timeout=15, last=(SERVER,))


def _inherited_env(address: str) -> dict[str, str]:
    env = without_temporal_connection(os.environ)
    for key in _OWN_VARIABLES:
        env.pop(key, None)
    env.update(
        {
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": "default",
            # Nothing is in flight when the benchmark stops its workers.
            "RESEARCH_GRACEFUL_SHUTDOWN_SECONDS": "2",
        }
    )
    return env


@dataclass(frozen=True)
class ProviderUrls:
    """Where the providers' process serves, and the keys its servers accept."""

    tavily: str
    openai: str
    control: str
    tavily_key: str
    openai_key: str


def providers_spec(log: Path, tavily_key: str, openai_key: str) -> ProcessSpec:
    env = {**os.environ, "BENCH_TAVILY_KEY": tavily_key, "BENCH_OPENAI_KEY": openai_key}
    return ProcessSpec(
        PROVIDERS,
        [sys.executable, str(PROVIDERS_SCRIPT)],
        log_file=log,
        env=env,
        label="the benchmark's providers",
    )


async def start_providers(procs: Processes) -> ProviderUrls:
    """Start the providers' process; its URLs once it serves."""
    tavily_key = f"tvly-bench-{secrets.token_hex(12)}"
    openai_key = f"sk-bench-{secrets.token_hex(12)}"
    procs.start(providers_spec(procs.log_dir / f"{PROVIDERS}.log", tavily_key, openai_key))
    await procs.wait_ready([PROVIDERS], "providers ready", 60)
    line = next(
        line
        for line in procs.supervisor.output(PROVIDERS).splitlines()
        if line.startswith("providers ready ")
    )
    urls = json.loads(line.removeprefix("providers ready "))
    return ProviderUrls(urls["tavily"], urls["openai"], urls["control"], tavily_key, openai_key)


def new_encryption_key() -> str:
    """A fresh AES-256 key for this invocation's pools; it lives in their environment only."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class PoolSetup:
    """How every kind's pools are configured: the server, providers, store and key."""

    address: str
    providers: ProviderUrls
    store_url: str | None
    encryption_key: str | None
    features: Features


def start_pools(procs: Processes, setup: PoolSetup, kind: str, queues: Queues) -> None:
    """Start the three pools of `kind` on `queues`, each with SDK metrics (and ours with
    application metrics too)."""
    for pool in POOLS:
        env = _inherited_env(setup.address)
        sdk_port = free_port()
        env["RESEARCH_SDK_METRICS_PORT"] = str(sdk_port)
        env["RESEARCH_PLAN_MODEL"] = PLAN_MODEL
        env["RESEARCH_SYNTHESIZE_MODEL"] = WRITE_MODEL
        name = f"{kind}-{pool}"
        log = procs.log_dir / f"{name}.log"
        if kind == "ours":
            app_port = free_port()
            env.update(
                {
                    "RESEARCH_METRICS_PORT": str(app_port),
                    "RESEARCH_ORCHESTRATOR_QUEUE": queues.orchestrator,
                    "RESEARCH_SEARCH_QUEUE": queues.search,
                    "RESEARCH_LLM_QUEUE": queues.llm,
                    "RESEARCH_SEARCH_PROVIDER": "tavily",
                    "TAVILY_API_KEY": setup.providers.tavily_key,
                    "TAVILY_BASE_URL": setup.providers.tavily,
                    "RESEARCH_LLM_PROVIDER": "openai",
                    "OPENAI_API_KEY": setup.providers.openai_key,
                    "OPENAI_BASE_URL": setup.providers.openai,
                    "RESEARCH_PAYLOAD_STORE": setup.store_url or "none",
                }
            )
            if setup.encryption_key:
                env["RESEARCH_ENCRYPTION_KEY"] = setup.encryption_key
            procs.start(worker_spec(pool, env, log, name), sdk_port, app_port)
            continue
        env["RESEARCH_PAYLOAD_STORE"] = "none"
        if kind == "floor":
            env.update(
                {
                    "TAVILY_API_KEY": setup.providers.tavily_key,
                    "TAVILY_BASE_URL": setup.providers.tavily,
                    "OPENAI_API_KEY": setup.providers.openai_key,
                    "OPENAI_BASE_URL": setup.providers.openai,
                }
            )
        args = [sys.executable, str(BARE_SCRIPT), "worker", kind, pool, "--queue"]
        args.append(getattr(queues, pool))
        spec = ProcessSpec(name, args, log_file=log, env=env, label=f"worker {name}")
        procs.start(spec, sdk_port)


# -- the providers' control endpoint ---------------------------------------------------------


class ProviderControl:
    """Sets the providers' delays and page size, and reads their call counts."""

    def __init__(self, url: str) -> None:
        self._url = url

    def _request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self._url + path, data=data, method="POST" if data else "GET"
        )
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except OSError as err:
            raise BenchError(f"the providers' control endpoint failed: {err}") from None

    async def configure(
        self,
        *,
        model_delay: float = 0.0,
        search_delay: float = 0.0,
        extract_delay: float = 0.0,
        page_chars: int | None = None,
    ) -> None:
        body = {
            "model_delay": model_delay,
            "search_delay": search_delay,
            "extract_delay": extract_delay,
            "page_chars": page_chars,
        }
        await asyncio.to_thread(self._request, "/settings", body)

    async def calls(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = await asyncio.to_thread(self._request, "/calls")
        return counts


def calls_between(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, int]:
    """Requests received between two readings, by endpoint or model step."""
    return {
        kind: after[kind]["received"] - before.get(kind, {}).get("received", 0)
        for kind in after
        if after[kind]["received"] - before.get(kind, {}).get("received", 0)
    }


# -- metrics -----------------------------------------------------------------------------------

Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_prometheus(text: str) -> Metrics:
    """Samples of a Prometheus text exposition, keyed by name and label set.

    Only histograms are read here, whose sample names the parser keeps as exposed (it
    renames counters without `_total`; tests/helpers/metrics.py undoes that for the tests).
    """
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(port: int) -> Metrics:
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return parse_prometheus(response.read().decode())
    except OSError as err:
        raise BenchError(f"cannot read the metrics at {url}: {err}") from None


async def scrape_pools(procs: Processes, kind: str) -> dict[str, Metrics]:
    """The SDK and application metrics of `kind`'s three pools, merged per pool."""
    merged: dict[str, Metrics] = {}
    for pool in POOLS:
        samples: Metrics = {}
        for port in procs.metrics_ports[f"{kind}-{pool}"]:
            if port:
                samples.update(await asyncio.to_thread(scrape, port))
        merged[pool] = samples
    return merged


def delta(after: Metrics, before: Metrics) -> Metrics:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def total(samples: Metrics, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def histogram_mean(samples: Metrics, name: str, **labels: str) -> tuple[float, float | None]:
    """Observation count and mean of a histogram, over the samples matching `labels`."""
    count = total(samples, f"{name}_count", **labels)
    if count <= 0:
        return 0.0, None
    return count, total(samples, f"{name}_sum", **labels) / count
