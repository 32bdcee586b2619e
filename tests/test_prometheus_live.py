"""The dashboard, the alerts and KEDA's in-flight trigger against a real Prometheus scraping
real workers.

A real Prometheus (Debian's package) runs the repository's scrape configuration and rules
(deploy/observability/prometheus), with static targets standing in for compose's DNS
lookups and a one-second scrape interval, against the three pools as real processes on the
default task queues of the session's dev server. The search pool talks to a Tavily-speaking
server that refuses some calls (a rejected key, an exhausted quota, a rate limit, an
outage), the LLM pool to an OpenAI-speaking server that fails the first synthesis, and the
search pool's connection to Temporal is cut for a while: so every signal the dashboard and
the alerts watch has happened once. Then every panel's query must return series, every
selector of every alert must, and Prometheus must evaluate every rule without error: a panel
that can never show data fails here.

The second test reads each activity pool's two KEDA triggers (search, LLM) the way KEDA
does (the task queue's backlog from Temporal, the in-flight query from Prometheus) and shows
the pair is idle only when nothing waits and nothing runs: idle, a run waiting for a person,
a search or a model step in flight, work waiting for a pool that is not running.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from research_cli.embedded import free_port, stop_process
from research_cli.supervisor import ProcessSpec, spawn
from research_shared.models import Outcome, Phase, ResearchReport, ResearchRequest, ResearchStatus
from research_shared.names import (
    LLM_QUEUE,
    ORCHESTRATOR_QUEUE,
    REVIEW_PLAN_UPDATE,
    SEARCH_QUEUE,
    STATUS_QUERY,
    WORKFLOW_TYPE,
)
from tests.helpers.durability import WRITE_STEP, after_the_draft, model_step
from tests.helpers.fakes.faultserver import Fault
from tests.helpers.fakes.openai_server import FakeOpenAIServer
from tests.helpers.fakes.tavily_server import FakeTavilyServer
from tests.helpers.forwarder import CuttableForwarder
from tests.helpers.processes import DevServer, WorkerProcesses
from tests.helpers.promql import parse, selector_text
from tests.helpers.tools import require

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
OBSERVABILITY = ROOT / "deploy" / "observability"
SCRAPE_CONFIG = OBSERVABILITY / "prometheus" / "prometheus.yml"
RULES = OBSERVABILITY / "prometheus" / "alerts.yml"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"
KEDA = ROOT / "deploy" / "k8s" / "components" / "keda"
POOLS = ("orchestrator", "search", "llm")
SERVICE_OF = {"orchestrator": "orchestrator-worker", "search": "search-worker", "llm": "llm-worker"}
# What the dashboard's variables stand for here: every namespace and queue, and a rate
# window a few scrapes wide.
VARIABLES = {"$namespace": ".*", "$task_queue": ".*", "$__rate_interval": "1m"}
WAIT_SECONDS = 90.0
PLAN = [
    {"query": f"durable execution part {n}", "reason": "a search of the plan"} for n in range(6)
]


def fake_model(body: dict[str, Any]) -> str:
    """Plans six searches; writes a short report citing the first source; research is done
    after one round and the reviewer approves the first draft."""
    later = after_the_draft(body)
    if later is not None:
        return later
    if model_step(body) != WRITE_STEP:
        return json.dumps({"searches": PLAN})
    return json.dumps(
        {
            "report_markdown": "# Report\n\nDurable execution resumes work [1].",
            "summary": "It resumes [1].",
            "follow_up_questions": ["What about versioning?"],
        }
    )


# Faults hit only this module's own calls, never a task some earlier test left on the
# default queues.
QUESTION = "How does durable execution survive a crash?"


def is_synthesis(_path: str, body: dict[str, Any]) -> bool:
    return model_step(body) == WRITE_STEP and QUESTION in json.dumps(body)


def is_search(path: str, body: dict[str, Any]) -> bool:
    return path == "/search" and str(body.get("query", "")).startswith("durable execution part")


@dataclass
class Prometheus:
    """A running Prometheus and its HTTP API."""

    process: subprocess.Popen[bytes]
    port: int
    log_file: Path

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            document = json.loads(answer.read())
        assert document["status"] == "success", document
        data: dict[str, Any] = document["data"]
        return data

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now (an error fails the test)."""
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(self, expr: str, within: float = WAIT_SECONDS) -> list[dict[str, Any]]:
        """Poll until `expr` returns series."""
        deadline = time.monotonic() + within
        while True:
            found = self.query(expr)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr} returned nothing for {within:g}s")
            time.sleep(0.5)


def scrape_config_for(ports: dict[str, dict[int, int]], rules: Path) -> dict[str, Any]:
    """The repository's configuration with its DNS lookups replaced by the local ports of
    the pools' processes (`ports[service][container port] = local port`); every job,
    relabelling and rule stays as it is. Scrapes and evaluations run every second."""
    config: dict[str, Any] = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    config["global"] = {**config["global"], "scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        static = []
        for lookup in job.pop("dns_sd_configs"):
            for name in lookup["names"]:
                local = ports.get(name, {}).get(int(lookup["port"]))
                if local is not None:
                    # What compose's DNS lookup would have labelled the target with.
                    static.append(
                        {"targets": [f"127.0.0.1:{local}"], "labels": {"__meta_dns_name": name}}
                    )
        job["static_configs"] = static
    return config


@dataclass
class Stack:
    workers: WorkerProcesses
    prometheus: Prometheus
    tavily: FakeTavilyServer
    openai: FakeOpenAIServer
    search_link: CuttableForwarder


@pytest.fixture(scope="module")
def stack(dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("prometheus-live")
    ports = {
        pool: {"RESEARCH_METRICS_PORT": free_port(), "RESEARCH_SDK_METRICS_PORT": free_port()}
        for pool in POOLS
    }
    with (
        FakeTavilyServer() as tavily,
        FakeOpenAIServer(responder=fake_model) as openai,
        CuttableForwarder(dev_server.port) as search_link,
    ):
        assert isinstance(tavily, FakeTavilyServer) and isinstance(openai, FakeOpenAIServer)
        workers = WorkerProcesses(
            address=dev_server.address,
            log_dir=folder / "logs",
            env={
                "RESEARCH_SEARCH_PROVIDER": "tavily",
                "TAVILY_API_KEY": tavily.api_key,
                "TAVILY_BASE_URL": tavily.base_url,
                "RESEARCH_LLM_PROVIDER": "openai",
                "OPENAI_API_KEY": openai.api_key,
                "OPENAI_BASE_URL": openai.api_base_url,
                "RESEARCH_OPENAI_API": "chat_completions",
            },
            pool_env={
                pool: {key: str(value) for key, value in pool_ports.items()}
                for pool, pool_ports in ports.items()
            },
        )
        # The search pool reaches Temporal through a link the test can cut.
        workers.pool_env["search"]["TEMPORAL_ADDRESS"] = f"127.0.0.1:{search_link.port}"
        rules = folder / "alerts.yml"
        rules.write_text(RULES.read_text(encoding="utf-8"))
        config = folder / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                scrape_config_for(
                    {
                        SERVICE_OF[pool]: {
                            9464: pool_ports["RESEARCH_METRICS_PORT"],
                            9465: pool_ports["RESEARCH_SDK_METRICS_PORT"],
                        }
                        for pool, pool_ports in ports.items()
                    },
                    rules,
                )
            )
        )
        port = free_port()
        log_file = folder / "prometheus.log"
        process = spawn(
            ProcessSpec(
                "prometheus",
                [
                    require("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                log_file,
            )
        )
        prometheus = Prometheus(process, port, log_file)
        try:
            wait_until_ready(prometheus)
            workers.start(*POOLS)
            yield Stack(workers, prometheus, tavily, openai, search_link)
        finally:
            workers.stop_all()
            stop_process(process, timeout=15)


def wait_until_ready(prometheus: Prometheus) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if prometheus.process.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{prometheus.log_file.read_text()}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{prometheus.port}/-/ready", timeout=2
            ) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus not ready:\n{prometheus.log_file.read_text()}")


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                expr = target["expr"]
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append((f"{inner['title']} [{target['refId']}]", expr))
    return found


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


async def test_every_panel_and_alert_reads_series_of_the_live_stack(
    client: Client, stack: Stack
) -> None:
    # Each of these answers one /search call: two searches fail for good (a key refused, a
    # quota used up), two are retried and succeed (rate limited, unavailable).
    for status, retry_after in ((401, None), (432, None), (429, 1.0), (503, None)):
        stack.tavily.inject(Fault(status=status, retry_after=retry_after, match=is_search))
    # The first synthesis fails (the provider is down for a moment) and is retried.
    stack.openai.inject(Fault(status=503, match=is_synthesis))
    report = await client.execute_workflow(
        WORKFLOW_TYPE,
        ResearchRequest(question=QUESTION, max_searches=6),
        id=f"prometheus-live-{uuid.uuid4().hex[:8]}",
        task_queue=ORCHESTRATOR_QUEUE,
        result_type=ResearchReport,
    )
    assert report.outcome is Outcome.COMPLETED
    failed = {f.error_type for f in report.failed_searches}
    assert failed == {"ProviderAuthError", "ProviderQuotaExhausted"}, report.failed_searches
    assert report.stats.searches_succeeded == len(PLAN) - 2

    # The search pool loses Temporal for a few seconds: its polls fail, then it reconnects.
    prometheus = stack.prometheus
    stack.search_link.cut()
    try:
        await asyncio.to_thread(prometheus.wait_for, "temporal_long_request_failure", 60)
    finally:
        stack.search_link.restore()

    # Every selector of every panel and alert has series, then every whole panel query.
    selectors = {
        selector_text(s)
        for _, expr in dashboard_queries() + [("", r["expr"]) for r in alert_rules()]
        for s in parse(expr).selectors
    }
    for selector in sorted(selectors):
        await asyncio.to_thread(prometheus.wait_for, selector, 30)
    for where, expr in dashboard_queries():
        try:
            await asyncio.to_thread(prometheus.wait_for, expr, 30)
        except AssertionError:
            pytest.fail(f"the panel {where} shows nothing: {expr}")
    # The scrape configuration's relabelling names each target's pool.
    pools = {s["metric"]["pool"] for s in prometheus.query('up{job="deep-research-sdk"}')}
    assert pools == set(SERVICE_OF.values())

    # Prometheus loaded every rule and evaluates each without error.
    groups = (await asyncio.to_thread(prometheus.get, "/api/v1/rules"))["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(loaded) == {rule["alert"] for rule in alert_rules()}
    assert {name: rule["health"] for name, rule in loaded.items()} == dict.fromkeys(loaded, "ok")


@dataclass(frozen=True)
class Triggers:
    """A pool's two KEDA triggers, as components/keda declares them."""

    queue: str
    backlog_activation: int
    in_flight_query: str
    in_flight_activation: float

    @classmethod
    def load(cls, pool: str) -> Triggers:
        scaler = KEDA / f"scaledobject-{SERVICE_OF[pool]}.yaml"
        scaled = yaml.safe_load(scaler.read_text(encoding="utf-8"))
        backlog, in_flight = scaled["spec"]["triggers"]
        assert (backlog["type"], in_flight["type"]) == ("temporal", "prometheus")
        assert backlog["metadata"]["queueTypes"] == "activity"
        assert in_flight["metadata"]["ignoreNullValues"] == "true"
        return cls(
            queue=backlog["metadata"]["taskQueue"],
            backlog_activation=int(backlog["metadata"]["activationTargetQueueSize"]),
            in_flight_query=in_flight["metadata"]["query"],
            in_flight_activation=float(in_flight["metadata"]["activationThreshold"]),
        )


async def backlog(client: Client, queue: str) -> int:
    """The activity backlog of `queue`, asked the way KEDA's temporal scaler asks."""
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            report_stats=True,
        )
    )
    return int(answer.stats.approximate_backlog_count)


def in_flight(prometheus: Prometheus, query: str) -> float:
    """The in-flight trigger's value; no series reads as 0 (ignoreNullValues)."""
    found = prometheus.query(query)
    return sum(float(s["value"][1]) for s in found)


async def reading(client: Client, stack: Stack, triggers: Triggers) -> tuple[int, float, bool]:
    """(backlog, in flight, active): KEDA keeps the pool up while either trigger is active."""
    waiting = await backlog(client, triggers.queue)
    running = await asyncio.to_thread(in_flight, stack.prometheus, triggers.in_flight_query)
    active = waiting > triggers.backlog_activation or running > triggers.in_flight_activation
    return waiting, running, active


async def wait_for_reading(
    client: Client, stack: Stack, triggers: Triggers, want: str
) -> tuple[int, float, bool]:
    """Poll until the reading is `want`: idle (nothing waits, nothing runs), running
    (something runs, nothing waits) or waiting (something waits, nothing runs)."""
    shapes = {
        "idle": lambda w, r: w == 0 and r == 0,
        "running": lambda w, r: w == 0 and r > 0,
        "waiting": lambda w, r: w > 0 and r == 0,
    }
    deadline = time.monotonic() + WAIT_SECONDS
    last: tuple[int, float, bool] = (0, 0.0, False)
    while time.monotonic() < deadline:
        last = await reading(client, stack, triggers)
        if shapes[want](last[0], last[1]):
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"never {want}: last reading (backlog, in flight, active) = {last}")


async def wait_for_phase(client: Client, workflow_id: str, phase: Phase) -> None:
    handle = client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(WAIT_SECONDS):
        while (await handle.query(STATUS_QUERY, result_type=ResearchStatus)).phase is not phase:
            await asyncio.sleep(0.2)


def slow_work_of(pool: str, question: str) -> Fault:
    """A fault that keeps the pool's work for `question` running for seconds: each of its
    searches (search), or its synthesis (llm)."""
    if pool == "search":
        return Fault(delay=8.0, times=len(PLAN), match=is_search)
    return Fault(
        delay=8.0,
        match=lambda _path, body: model_step(body) == WRITE_STEP and question in json.dumps(body),
    )


@pytest.mark.parametrize(("pool", "queue"), [("search", SEARCH_QUEUE), ("llm", LLM_QUEUE)])
async def test_a_pool_reads_idle_only_when_nothing_waits_and_nothing_runs(
    client: Client, stack: Stack, pool: str, queue: str
) -> None:
    triggers = Triggers.load(pool)
    assert triggers.queue == queue
    stack.tavily.clear_faults()
    stack.openai.clear_faults()

    # Nothing to do: both triggers read zero, so KEDA may take the pool to zero.
    assert (await wait_for_reading(client, stack, triggers, "idle"))[2] is False

    # A run waiting for a person to review its plan: still nothing for the pool.
    question = f"How do timers survive restarts ({pool})?"
    waiting_run = f"keda-waits-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        WORKFLOW_TYPE,
        ResearchRequest(question=question, approve_plan=True),
        id=waiting_run,
        task_queue=ORCHESTRATOR_QUEUE,
    )
    await wait_for_phase(client, waiting_run, Phase.AWAITING_APPROVAL)
    assert (await wait_for_reading(client, stack, triggers, "idle"))[2] is False

    # Approved: its work runs, slowly (the provider takes seconds to answer). The backlog
    # is empty, since the pool took the work at once: only the in-flight trigger sees it.
    provider = stack.tavily if pool == "search" else stack.openai
    provider.inject(slow_work_of(pool, question))
    handle = client.get_workflow_handle(waiting_run, result_type=ResearchReport)
    await handle.execute_update(REVIEW_PLAN_UPDATE, {"decision": "approve"})
    assert (await wait_for_reading(client, stack, triggers, "running"))[2] is True
    assert (await handle.result()).outcome is Outcome.COMPLETED
    provider.clear_faults()

    # The pool is gone and a run needs it: nothing runs, so only the backlog sees the work,
    # and wakes the pool.
    stack.workers.kill(pool)
    unserved = f"keda-backlog-{uuid.uuid4().hex[:8]}"
    pending = await client.start_workflow(
        WORKFLOW_TYPE,
        ResearchRequest(question="How do signals reach a workflow?", max_searches=2),
        id=unserved,
        task_queue=ORCHESTRATOR_QUEUE,
        result_type=ResearchReport,
    )
    assert (await wait_for_reading(client, stack, triggers, "waiting"))[2] is True
    await asyncio.to_thread(stack.workers.start, pool)
    assert (await pending.result()).outcome is Outcome.COMPLETED
    assert (await wait_for_reading(client, stack, triggers, "idle"))[2] is False
