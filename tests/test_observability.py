"""Checks of deploy/observability: the Grafana dashboard and the Prometheus alert rules.

Every PromQL expression in both files is taken apart into the series it selects, the label
matchers it applies and the labels it groups by, and each is checked against what the
workers really export: the application's metrics as `research_shared.metrics` registers
them, and the Temporal SDK's as scraped from a running worker (`SDK_SERIES` below; a test
scrapes a live worker to keep that list honest as the SDK changes). A dashboard panel or an
alert on a misspelt metric, a label the metric lacks or an error type that does not exist
would otherwise show an empty graph, or never fire, without anyone noticing.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import pytest
    from prometheus_client import REGISTRY
    from prometheus_client.metrics import MetricWrapperBase
    from temporalio.client import Client
    from temporalio.exceptions import ApplicationError
    from temporalio.worker import Worker

    from research_cli.embedded import free_port
    from research_shared import errors, names
    from research_shared import metrics as app_metrics
    from research_shared.settings import TemporalSettings
    from research_shared.temporal_client import connect, sdk_runtime
    from tests.helpers import metrics as metrics_text
    from tests.helpers.processes import DevServer
    from tests.helpers.promql import parse
    from tests.helpers.tools import require

# No resolve(): the workflow sandbox re-imports this module and forbids file system calls.
ROOT = Path(__file__).parents[1]
OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"
RULES = OBSERVABILITY / "prometheus-rules.yaml"
PROMETHEUS_DIR = OBSERVABILITY / "prometheus"
PLAIN_RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
GRAFANA = OBSERVABILITY / "grafana" / "provisioning"

# The Temporal SDK's series as its Rust core exports them (temporalio 1.35), with the labels
# each carries. Obtained by starting `temporal server start-dev`, the three pools as
# `python -m research_cli worker POOL` with RESEARCH_SDK_METRICS_PORT set, running one
# research with `deep-research run`, and scraping each worker's port; the failure series by
# running again with Tavily answering 401 and stopping the server before scraping. Note what
# the SDK does differently from prometheus_client: durations are in milliseconds, and
# counters have no `_total` suffix.
_HISTOGRAM = "histogram"
_COUNTER = "counter"
_GAUGE = "gauge"
_QUEUE = frozenset({"namespace", "service_name", "task_queue"})
_WORKFLOW = _QUEUE | {"workflow_type"}
_ACTIVITY = _WORKFLOW | {"activity_type"}
SDK_METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "temporal_activity_execution_failed": (_COUNTER, _ACTIVITY | {"failure_reason"}),
    "temporal_activity_execution_latency": (_HISTOGRAM, _ACTIVITY),
    "temporal_activity_schedule_to_start_latency": (_HISTOGRAM, _QUEUE),
    "temporal_activity_succeed_endtoend_latency": (_HISTOGRAM, _ACTIVITY),
    "temporal_activity_task_received": (_COUNTER, _ACTIVITY | {"eager"}),
    "temporal_long_request": (_COUNTER, _QUEUE | {"operation"}),
    "temporal_long_request_failure": (_COUNTER, _QUEUE | {"operation", "status_code"}),
    "temporal_long_request_latency": (_HISTOGRAM, _QUEUE | {"operation"}),
    "temporal_num_pollers": (_GAUGE, _QUEUE | {"poller_type"}),
    "temporal_request": (_COUNTER, frozenset({"namespace", "operation", "service_name"})),
    "temporal_request_latency": (_HISTOGRAM, frozenset({"namespace", "operation", "service_name"})),
    "temporal_sticky_cache_hit": (_COUNTER, _WORKFLOW),
    "temporal_sticky_cache_size": (_GAUGE, _QUEUE),
    "temporal_worker_start": (_COUNTER, _QUEUE),
    "temporal_worker_task_slots_available": (_GAUGE, _QUEUE | {"worker_type"}),
    "temporal_worker_task_slots_used": (_GAUGE, _QUEUE | {"worker_type"}),
    "temporal_workflow_completed": (_COUNTER, _WORKFLOW),
    "temporal_workflow_endtoend_latency": (_HISTOGRAM, _WORKFLOW),
    "temporal_workflow_task_execution_latency": (_HISTOGRAM, _WORKFLOW),
    "temporal_workflow_task_queue_poll_succeed": (_COUNTER, _QUEUE),
    "temporal_workflow_task_replay_latency": (_HISTOGRAM, _WORKFLOW),
    "temporal_workflow_task_schedule_to_start_latency": (_HISTOGRAM, _QUEUE),
}
# Label values the SDK uses, seen in the same scrapes.
SDK_LABEL_VALUES = {
    "poller_type": frozenset({"workflow_task", "sticky_workflow_task", "activity_task"}),
    "worker_type": frozenset({"WorkflowWorker", "ActivityWorker"}),
}
# Labels Prometheus adds to every scraped series (`namespace` and `pod` by Kubernetes
# discovery or a ServiceMonitor; it renames the SDK's own `namespace` to
# `exported_namespace` there). The dashboard and rules use only `namespace`.
TARGET_LABELS = frozenset({"namespace", "job", "instance", "pod"})
SUFFIXES = {_HISTOGRAM: ("_bucket", "_count", "_sum"), _COUNTER: ("",), _GAUGE: ("",)}

SEVERITIES = frozenset({"critical", "warning", "info"})
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ANNOTATION_LABEL = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")
DURATION = re.compile(r"^\d+[smhd]$")


@cache
def app_series() -> dict[str, tuple[str, frozenset[str]]]:
    """Series names the application's metrics expose, with their metric type and labels."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    registered = REGISTRY._names_to_collectors
    research = {
        collector
        for name, collector in registered.items()
        if name.startswith("research_") and isinstance(collector, MetricWrapperBase)
    }
    defined = {m for m in vars(app_metrics).values() if isinstance(m, MetricWrapperBase)}
    # What the workers serve is the default registry, so a metric defined but not registered
    # (or registered elsewhere) must not count as exported.
    assert research == defined, "research_shared.metrics and the registry disagree"
    for collector in research:
        # Type and labels are private attributes: prometheus_client has no public accessor
        # for the label names of a metric that has no children yet.
        kind = collector._type
        assert kind in SUFFIXES, f"{collector._name}: no checks for type {kind}"
        base = collector._name + ("_total" if kind == _COUNTER else "")
        for suffix in SUFFIXES[kind]:
            assert registered.get(base + suffix) is collector, base + suffix
            found[base + suffix] = (kind, frozenset(collector._labelnames))
    return found


@cache
def sdk_series() -> dict[str, tuple[str, frozenset[str]]]:
    """Series names of `SDK_METRICS`, suffixed as the exporter writes them."""
    return {
        name + suffix: (kind, labels)
        for name, (kind, labels) in SDK_METRICS.items()
        for suffix in SUFFIXES[kind]
    }


@cache
def label_domains() -> dict[str, frozenset[str]]:
    """The values a label may take, for the labels whose values the project fixes."""
    error_types = frozenset(
        value for key, value in vars(errors).items() if key.isupper() and isinstance(value, str)
    )
    activities = frozenset(value for key, value in vars(names).items() if key.endswith("_ACTIVITY"))
    queues = frozenset(value for key, value in vars(names).items() if key.endswith("_QUEUE"))
    return {
        "outcome": error_types | {"ok"},
        "activity": activities,
        "activity_type": activities,
        "step": activities,
        "task_queue": queues,
        **SDK_LABEL_VALUES,
    }


def label_domain(metric: str, label: str) -> frozenset[str] | None:
    """The values `label` takes on `metric`, or None where the project does not fix them."""
    if metric.startswith(app_metrics.ACTIVITY_SECONDS._name) and label == "outcome":
        # track_activity records the exception's class name (ApplicationError, CancelledError),
        # not its error type: only `ok` is a value a query can rely on.
        return frozenset({"ok"})
    return label_domains().get(label)


def series_labels(metric: str) -> frozenset[str] | None:
    """The labels a series can be filtered or grouped on, or None if no worker exports it."""
    known = app_series().get(metric) or sdk_series().get(metric)
    if known is None:
        return None
    extra = {"le"} if metric.endswith("_bucket") and known[0] == _HISTOGRAM else set()
    return known[1] | TARGET_LABELS | extra


def matcher_values(op: str, value: str) -> list[str]:
    """The literal values a matcher names; a regex must be a plain alternation of them."""
    if op in ("=", "!="):
        return [value]
    alternatives = value.split("|")
    for alternative in alternatives:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", alternative):
            raise ValueError(f"regex {value!r} is not an alternation of literal values")
    return alternatives


def problems(expr: str) -> list[str]:
    """What is wrong with the series, labels and label values an expression uses."""
    try:
        query = parse(expr)
    except ValueError as err:
        return [str(err)]
    found: list[str] = []
    if not query.selectors:
        found.append("selects no series")
    usable: set[str] = set()
    for selector in query.selectors:
        labels = series_labels(selector.metric)
        if labels is None:
            found.append(f"{selector.metric}: no worker exports this series")
            continue
        usable |= labels
        for label, op, value in selector.matchers:
            if label not in labels:
                found.append(f"{selector.metric}: has no label {label!r}")
                continue
            domain = label_domain(selector.metric, label)
            if domain is None or "$" in value:
                continue
            try:
                literals = matcher_values(op, value)
            except ValueError as err:
                found.append(f"{selector.metric}: {err}")
                continue
            for literal in literals:
                if literal not in domain:
                    found.append(f"{selector.metric}: {label}={literal!r} is not a real value")
    for label in sorted(query.grouping - usable):
        found.append(f"groups on {label!r}, which none of its series has")
    return found


def load_yaml(path: Path) -> Any:
    """A YAML file, read when a test needs it (the workflow sandbox re-imports this module)."""
    import yaml

    return yaml.safe_load(path.read_text())


@cache
def dashboard() -> dict[str, Any]:
    """The dashboard's JSON model."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def all_panels() -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_targets() -> list[tuple[str, dict[str, Any]]]:
    """(panel title, query) for every query of every panel."""
    return [
        (panel["title"], target) for panel in all_panels() for target in panel.get("targets", [])
    ]


def variable_queries() -> list[tuple[str, str]]:
    """(name, query) of the dashboard's query variables."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        found.append((variable["name"], query["query"] if isinstance(query, dict) else query))
    return found


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of every group of the PrometheusRule."""
    return [rule for group in load_yaml(RULES)["spec"]["groups"] for rule in group["rules"]]


def all_expressions() -> list[str]:
    """Every PromQL expression of the dashboard and the rules."""
    return [target["expr"] for _, target in dashboard_targets()] + [
        rule["expr"] for rule in alert_rules()
    ]


def test_every_dashboard_query_uses_real_series_labels_and_values() -> None:
    targets = dashboard_targets()
    assert targets, "the dashboard has no queries"
    found = {f"{title} [{target['refId']}]": problems(target["expr"]) for title, target in targets}
    assert {where: issues for where, issues in found.items() if issues} == {}


def test_every_legend_names_a_label_its_query_keeps() -> None:
    for title, target in dashboard_targets():
        kept = parse(target["expr"]).grouping
        for label in LEGEND_LABEL.findall(target.get("legendFormat", "")):
            assert label in kept, f"{title}: the legend shows {label!r}, which the sum drops"


def test_every_variable_query_reads_a_real_label() -> None:
    queries = variable_queries()
    assert {name for name, _ in queries} >= {"namespace", "task_queue"}
    for name, text in queries:
        match = LABEL_VALUES.match(text)
        assert match is not None, f"${name}: {text!r} is not label_values(selector, label)"
        selector = match.group("selector")
        assert selector is not None, f"${name}: label_values without a series scans everything"
        assert problems(selector) == [], name
        (series,) = parse(selector).selectors
        labels = series_labels(series.metric)
        assert labels is not None
        assert match.group("label") in labels, f"${name}: {series.metric} has no such label"


def test_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = list(all_panels())
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the dashboard"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_dashboard_queries_go_through_the_datasource_variable() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    for panel in all_panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == wanted, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target.get("datasource", wanted) == wanted, panel["title"]
    for name, variable in variables.items():
        if variable["type"] == "query":
            assert variable["datasource"] == wanted, name


def test_dashboard_shows_each_signal_the_pools_are_watched_by() -> None:
    used = {
        s.metric for e in (t["expr"] for _, t in dashboard_targets()) for s in parse(e).selectors
    }
    assert used >= {
        "research_activity_duration_seconds_count",  # attempts/s by activity and outcome
        "research_provider_requests_total",  # provider requests by outcome
        "research_activity_duration_seconds_bucket",  # activity p50/p95
        "temporal_activity_schedule_to_start_latency_bucket",  # the activity backlog
        "temporal_workflow_task_schedule_to_start_latency_bucket",  # the workflow backlog
        "research_activity_in_flight",
        "temporal_worker_task_slots_available",
        "research_llm_tokens_total",
        "research_search_hits_total",
    }


def test_every_alert_uses_real_series_labels_and_values() -> None:
    found = {rule["alert"]: problems(rule["expr"]) for rule in alert_rules()}
    assert {alert: issues for alert, issues in found.items() if issues} == {}


def test_every_alert_says_what_happened_how_bad_and_what_to_do() -> None:
    rules = alert_rules()
    assert rules
    alerts = [rule["alert"] for rule in rules]
    assert len(alerts) == len(set(alerts)), "duplicate alert names"
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations.get("summary", "").strip(), f"{name} has no summary"
        assert len(annotations.get("description", "")) > 100, f"{name}: describe the action"
        if "for" in rule:
            assert DURATION.match(rule["for"]), f"{name}: for: {rule['for']!r}"
        # A label the expression aggregates away renders as an empty string in the page.
        query = parse(rule["expr"])
        available = query.grouping | {
            label for s in query.selectors for label, op, _ in s.matchers if op == "="
        }
        for text in annotations.values():
            for label in ANNOTATION_LABEL.findall(text):
                assert label in available, f"{name}: $labels.{label} is not in its result"


def test_alerts_cover_the_failures_retries_cannot_fix_and_a_stuck_queue() -> None:
    matched = {
        (s.metric, label, value)
        for rule in alert_rules()
        for s in parse(rule["expr"]).selectors
        for label, _, value in s.matchers
    }
    for error_type in (
        errors.PROVIDER_AUTH,
        errors.PROVIDER_QUOTA,
        errors.PROVIDER_RATE_LIMITED,
        errors.PROVIDER_UNAVAILABLE,
    ):
        assert ("research_provider_requests_total", "outcome", error_type) in matched
    assert (
        "research_activity_duration_seconds_count",
        "activity",
        names.SYNTHESIZE_ACTIVITY,
    ) in matched
    # The orchestrator's queue is watched for a worker that polls it; the activity pools may
    # scale to zero when idle (components/keda), so an absent poller there is no alert.
    polled = {
        value
        for metric, label, value in matched
        if metric == "temporal_num_pollers" and label == "task_queue"
    }
    assert polled == {names.ORCHESTRATOR_QUEUE}
    used = {s.metric for rule in alert_rules() for s in parse(rule["expr"]).selectors}
    assert "temporal_activity_schedule_to_start_latency_bucket" in used


def test_the_runbook_says_what_to_do_for_every_alert() -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    headings = set(re.findall(r"^### (\w+) \((critical|warning|info)\)$", runbook, re.MULTILINE))
    wanted = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert headings == wanted


def test_rules_are_a_prometheus_rule_whose_spec_is_a_plain_rules_file() -> None:
    document = load_yaml(RULES)
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    # What `yq .spec` hands plain Prometheus: a rules file has `groups` and nothing else.
    assert set(document["spec"]) == {"groups"}
    groups = [group["name"] for group in document["spec"]["groups"]]
    assert len(groups) == len(set(groups))
    for group in document["spec"]["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("rate(research_llm_token_total[5m])", "no worker exports"),
        ("rate(research_llm_tokens[5m])", "no worker exports"),  # a counter needs _total
        ("rate(temporal_request_total[5m])", "no worker exports"),  # the SDK adds none
        ('research_activity_in_flight{step="plan"}', "has no label 'step'"),
        ('research_provider_requests_total{outcome="RateLimited"}', "not a real value"),
        ('research_activity_duration_seconds_count{outcome="ProviderAuthError"}', "real value"),
        ('research_activity_in_flight{activity=~"plan|search"}', "not a real value"),
        ('temporal_num_pollers{task_queue="research-llm", poller_type="nexus"}', "real value"),
        ("sum by (task_queue) (research_activity_in_flight)", "groups on 'task_queue'"),
        ("histogram_quantile(0.9, sum by (le) (temporal_request_latency_count))", "groups on"),
        ("rates(research_search_hits_total[5m])", "unknown function"),
    ],
)
def test_the_checks_reject_what_would_show_nothing(expr: str, complaint: str) -> None:
    assert any(complaint in issue for issue in problems(expr)), problems(expr)


# --- promtool: the rules load, and each alert fires on its condition and only then ------------


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plain_rules_file_is_the_prometheus_rules_spec() -> None:
    """prometheus/alerts.yml (what compose's Prometheus loads) is generated from the
    PrometheusRule; run `python deploy/observability/sync_rules.py` after editing that."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_rules", OBSERVABILITY / "sync_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert PLAIN_RULES.read_text() == module.rendered(), "run deploy/observability/sync_rules.py"
    assert load_yaml(PLAIN_RULES) == load_yaml(RULES)["spec"]


def test_promtool_checks_the_rules_and_the_scrape_configuration() -> None:
    rules = promtool("check", "rules", PLAIN_RULES.name, cwd=PROMETHEUS_DIR)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout, rules.stdout
    config = promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS_DIR)
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_unit_tests_pass_and_cover_every_alert(tmp_path: Path) -> None:
    tests = load_yaml(RULE_TESTS)
    assert tests["rule_files"] == [PLAIN_RULES.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert firing == alerts, f"no test where these fire: {sorted(alerts - firing)}"
    assert quiet == alerts, f"no test where these stay quiet: {sorted(alerts - quiet)}"
    # promtool compares annotations exactly, and ours are prose: the tests expect labels
    # only, so they run against the rules with the annotations left out.
    import yaml

    plain = load_yaml(PLAIN_RULES)
    for group in plain["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / PLAIN_RULES.name).write_text(yaml.safe_dump(plain))
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    done = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_would_catch_a_broken_alert(tmp_path: Path) -> None:
    """A rule whose threshold is off no longer passes its tests: the tests can fail."""
    import yaml

    plain = load_yaml(PLAIN_RULES)
    for group in plain["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
            if rule["alert"] == "ResearchProviderRateLimited":
                rule["expr"] = rule["expr"].replace("> 0.2", "> 0.6")
    (tmp_path / PLAIN_RULES.name).write_text(yaml.safe_dump(plain))
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    done = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0
    assert "ResearchProviderRateLimited" in done.stdout + done.stderr


# --- Grafana provisioning --------------------------------------------------------------------


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    compose = load_yaml(ROOT / "docker-compose.yml")["services"]
    (source,) = load_yaml(GRAFANA / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    host, _, port = source["url"].removeprefix("http://").partition(":")
    assert host in compose, f"{source['url']}: no compose service {host}"
    assert f"--web.listen-address=:{port}" in compose[host]["command"]
    # The dashboard's data source variable lists data sources of this type.
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["query"] == source["type"]
    (provider,) = load_yaml(GRAFANA / "dashboards" / "deep-research.yml")["providers"]
    mounts = {}
    for volume in compose["grafana"]["volumes"]:
        source_path, target = volume.split(":")[:2]
        mounts[target] = (ROOT / source_path).resolve()
    assert mounts["/etc/grafana/provisioning"] == GRAFANA.resolve()
    folder = provider["options"]["path"]
    dashboards = [path for target, path in mounts.items() if target.startswith(folder + "/")]
    assert dashboards == [DASHBOARD.resolve()], mounts


# --- The recorded SDK series against a live worker -------------------------------------------


@activity.defn(name="observability_probe")
async def flaky_probe() -> str:
    """Fails its first attempt, so the SDK records an activity failure too."""
    if activity.info().attempt == 1:
        raise ApplicationError("first attempt fails on purpose", type="ProbeFailure")
    return "ok"


@workflow.defn(name="ObservabilityProbeWorkflow")
class ProbeWorkflow:
    """Runs the probe activity once, with a quick retry."""

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            flaky_probe,
            start_to_close_timeout=timedelta(seconds=20),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100)),
        )


@asynccontextmanager
async def tcp_forwarder(target_port: int) -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A local TCP forwarder to the server; setting the event cuts every connection."""
    cut = asyncio.Event()
    links: set[asyncio.StreamWriter] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if cut.is_set():
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        links.update((writer, up_writer))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)

    async def cut_when_asked() -> None:
        await cut.wait()
        server.close()
        for link in links:
            link.close()

    cutter = asyncio.create_task(cut_when_asked())
    try:
        yield server.sockets[0].getsockname()[1], cut
    finally:
        cut.set()
        await cutter


def scrape(port: int) -> dict[str, set[str]]:
    """Series names on a /metrics endpoint, with the label names seen on each."""
    return metrics_text.label_names(metrics_text.scrape(port, timeout=5))


async def test_recorded_sdk_series_are_what_a_live_worker_exports(
    dev_server: DevServer, client: Client, task_queue: str
) -> None:
    """The SDK series the dashboard and alerts use, scraped from a worker built the way the
    pools build theirs (`sdk_runtime`), after a run with a failed attempt and with the
    connection to the server cut (so poll failures are recorded too)."""
    used = {s.metric for expr in all_expressions() for s in parse(expr).selectors}
    used_sdk = {metric for metric in used if metric in sdk_series()}
    assert used_sdk, "the dashboard and rules use no SDK series"
    port = free_port()
    # This process finalizes normally, so the core's lines are not forwarded into it.
    runtime = sdk_runtime(port, forward_logs=False)
    async with tcp_forwarder(dev_server.port) as (proxy_port, cut):
        worker_client = await connect(
            TemporalSettings(address=f"127.0.0.1:{proxy_port}", namespace="default"), runtime
        )
        async with Worker(
            worker_client,
            task_queue=task_queue,
            workflows=[ProbeWorkflow],
            activities=[flaky_probe],
            max_cached_workflows=0,
        ):
            result = await client.execute_workflow(
                ProbeWorkflow.run,
                id=f"observability-{task_queue}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=30),
            )
            assert result == "ok"
            cut.set()
            scraped: dict[str, set[str]] = {}
            for _ in range(100):
                scraped = await asyncio.to_thread(scrape, port)
                if used_sdk <= scraped.keys():
                    break
                await asyncio.sleep(0.2)
    missing = used_sdk - scraped.keys()
    assert not missing, f"the SDK no longer exports {sorted(missing)}"
    for metric in used_sdk:
        assert scraped[metric] == set(sdk_series()[metric][1]), metric
