"""End to end: the three worker pools as real processes against the session's dev server.

Runs research with the offline providers (the default corpus and the offline model), then
reads the run's event history to check where each activity ran and with which options.
Also: a run started by the `temporal` CLI binary, the `deep-research` CLI, and a run with
the real Tavily and OpenAI clients against wire-compatible local servers.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError

from research_cli.embedded import free_port
from research_shared import errors, retry
from research_shared.models import (
    MAX_CLARIFYING_QUESTIONS,
    Outcome,
    Phase,
    ResearchReport,
    ResearchRequest,
    ResearchStatus,
)
from research_shared.names import (
    ANSWER_UPDATE,
    LLM_QUEUE,
    ORCHESTRATOR_QUEUE,
    SEARCH_QUEUE,
    STATUS_QUERY,
    WORKFLOW_TYPE,
)
from tests.helpers.durability import after_the_draft
from tests.helpers.fakes.openai_server import FakeOpenAIServer
from tests.helpers.fakes.tavily_server import FakeTavilyServer
from tests.helpers.metrics import Series, series, values
from tests.helpers.metrics import scrape as metrics_scrape
from tests.helpers.processes import OFFLINE_PROVIDERS, DevServer, WorkerProcesses, own_queues
from tests.helpers.temporal_cli import start_with_cli
from tests.helpers.terminal import run_at_a_terminal

pytestmark = pytest.mark.e2e

CITATION = re.compile(r"\[(\d+)\](?!\()")
QUESTION = "How do I compress data with gzip and zlib?"


@pytest.fixture(scope="module")
def offline_workers(
    dev_server: DevServer, session_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcesses]:
    """The three pools on the default queues, with the offline providers and default corpus."""
    workers = WorkerProcesses(
        address=dev_server.address,
        log_dir=tmp_path_factory.mktemp("offline-logs"),
        env={
            "RESEARCH_DATA_DIR": str(session_data_dir),
            **OFFLINE_PROVIDERS,
        },
        pool_env={
            pool: {"RESEARCH_METRICS_PORT": str(free_port())}
            for pool in ("orchestrator", "search", "llm")
        },
    )
    workers.start("orchestrator", "search", "llm")
    yield workers
    workers.stop_all()


def scrape(workers: WorkerProcesses, pool: str) -> dict[Series, float]:
    """The value of each series on the pool's /metrics."""
    return values(metrics_scrape(int(workers.pool_env[pool]["RESEARCH_METRICS_PORT"])))


async def test_workers_serve_prometheus_metrics(
    client: Client, offline_workers: WorkerProcesses
) -> None:
    await client.execute_workflow(
        WORKFLOW_TYPE,
        {"question": "How do I read a CSV file with the csv module?", "max_searches": 2},
        id=f"e2e-metrics-{uuid.uuid4().hex[:8]}",
        task_queue=ORCHESTRATOR_QUEUE,
        result_type=ResearchReport,
    )
    search = scrape(offline_workers, "search")
    llm = scrape(offline_workers, "llm")
    durations = "research_activity_duration_seconds_count"
    assert search[series(durations, activity="web_search", outcome="ok")] >= 2
    assert search[series("research_search_hits_total", provider="local")] > 0
    assert search[series("research_activity_in_flight", activity="web_search")] == 0
    requests = series("research_provider_requests_total", outcome="ok", provider="offline")
    assert llm[requests] >= 2
    assert llm[series("research_llm_tokens_total", direction="output", step="synthesize")] > 0
    assert series(durations, activity="plan", outcome="ok") in llm


def scheduled_activities(history: WorkflowHistory) -> list[Any]:
    return [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def assert_citations_resolve(report: ResearchReport) -> None:
    ids = {s.id for s in report.sources}
    cited = {int(n) for n in CITATION.findall(report.report_markdown + report.summary)}
    assert cited, "the report cites nothing"
    assert cited <= ids, f"citations {sorted(cited - ids)} name no retrieved source"


async def test_offline_research_end_to_end(
    client: Client, offline_workers: WorkerProcesses
) -> None:
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        # One round and no review: the single fan-out this test checks. Deeper runs are the
        # subject of test_depth.py.
        ResearchRequest(question=QUESTION, max_searches=4, max_rounds=1, max_review_rounds=0),
        id=f"e2e-{uuid.uuid4().hex[:8]}",
        task_queue=ORCHESTRATOR_QUEUE,
        result_type=ResearchReport,
    )
    report = await handle.result()

    # A real report from real retrieved text, with citations that resolve.
    assert report.question == QUESTION
    assert "No language model wrote this report" in report.report_markdown
    assert_citations_resolve(report)
    assert 1 <= report.stats.searches_planned <= 4
    assert report.stats.searches_succeeded == report.stats.searches_planned
    assert report.stats.llm_calls == 2
    assert report.stats.total_tokens > 0
    assert report.stats.wall_time_seconds > 0
    assert report.summary and report.follow_up_questions
    files = [Path(s.url) for s in report.sources]
    assert all(f.is_file() for f in files), "local sources are files of the corpus"
    assert any(f.name in ("gzip.md", "zlib.md") for f in files)
    # Quoted sentences are really in the cited files (whitespace aside).
    corpus_text = " ".join(" ".join(f.read_text().split()) for f in files)
    quoted = [
        line[2:].rsplit(" [", 1)[0]
        for line in report.report_markdown.splitlines()
        if line.startswith("- ") and CITATION.search(line)
    ]
    assert quoted and all(" ".join(q.split()) in corpus_text for q in quoted[:5])

    history = await handle.fetch_history()
    events = scheduled_activities(history)
    by_type: dict[str, list[Any]] = {}
    for e in events:
        attrs = e.activity_task_scheduled_event_attributes
        by_type.setdefault(attrs.activity_type.name, []).append(attrs)
    assert len(by_type["plan"]) == 1 and len(by_type["synthesize"]) == 1
    assert len(by_type["web_search"]) == report.stats.searches_planned
    assert by_type["plan"][0].task_queue.name == LLM_QUEUE
    assert by_type["synthesize"][0].task_queue.name == LLM_QUEUE
    assert {a.task_queue.name for a in by_type["web_search"]} == {SEARCH_QUEUE}
    # The fan-out: every search scheduled by the same workflow task.
    assert len({a.workflow_task_completed_event_id for a in by_type["web_search"]}) == 1
    # Each activity carries its own preset's retry policy and heartbeat timeout.
    for name, preset in (
        ("plan", retry.PLAN),
        ("web_search", retry.WEB_SEARCH),
        ("synthesize", retry.SYNTHESIZE),
    ):
        for attrs in by_type[name]:
            assert attrs.heartbeat_timeout.ToTimedelta() == preset.heartbeat
            assert attrs.start_to_close_timeout.ToTimedelta() == preset.start_to_close
            assert attrs.retry_policy.maximum_attempts == preset.retry.maximum_attempts
            assert attrs.retry_policy.initial_interval.ToTimedelta() == (
                preset.retry.initial_interval
            )
            assert set(attrs.retry_policy.non_retryable_error_types) == set(errors.NON_RETRYABLE)

    # The pools stayed in their lanes.
    assert "search started" in offline_workers.log("search")
    assert "model step started" in offline_workers.log("llm")
    assert "search started" not in offline_workers.log("llm")


async def test_run_started_by_temporal_cli_completes(
    client: Client, dev_server: DevServer, offline_workers: WorkerProcesses
) -> None:
    workflow_id = await start_with_cli(
        dev_server,
        "research-orchestrator",
        "--input",
        json.dumps({"question": "How do I parse command line arguments?"}),
    )
    report = await client.get_workflow_handle(workflow_id, result_type=ResearchReport).result()
    assert_citations_resolve(report)
    assert any(Path(s.url).name == "argparse.md" for s in report.sources)

    # Bad input from any client fails at once, with our error type and no activity.
    bad_id = await start_with_cli(
        dev_server,
        "research-orchestrator",
        "--input",
        json.dumps({"question": "ok", "max_searches": 99}),
    )
    handle = client.get_workflow_handle(bad_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == errors.INVALID_REQUEST
    assert not scheduled_activities(await handle.fetch_history())


def deep_research(dev_server: DevServer, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "research_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**_env(), "TEMPORAL_ADDRESS": dev_server.address},
        check=False,
    )


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_cli_run_status_result(
    dev_server: DevServer, offline_workers: WorkerProcesses, tmp_path: Path
) -> None:
    run = deep_research(
        dev_server, "run", "How does sqlite3 handle transactions?", "--json", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    report_path = Path(data["report_path"])
    if not report_path.is_absolute():
        report_path = tmp_path / report_path
    assert report_path.read_text() == data["report_markdown"]
    assert data["stats"]["searches_succeeded"] >= 1

    status = deep_research(dev_server, "status", data["workflow_id"], "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["phase"] == "completed"
    assert json.loads(status.stdout)["run_status"] == "COMPLETED"

    # The same id again follows the finished run rather than paying for a second one.
    again = deep_research(
        dev_server, "run", "Same id", "--id", data["workflow_id"], "--json", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert f"a run with id {data['workflow_id']} exists; following it" in again.stderr
    assert json.loads(again.stdout)["report_markdown"] == data["report_markdown"]

    out = tmp_path / "again.md"
    result = deep_research(
        dev_server, "result", data["workflow_id"], "--out", str(out), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text() == data["report_markdown"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "   "], "invalid research request: question: the question is empty"),
        (["run", "ok", "--max-searches", "0"], "invalid research request: max_searches"),
        (["run", "x" * 2500], "the limit is 2000"),
    ],
)
def test_cli_rejects_bad_input_in_one_line(
    dev_server: DevServer, tmp_path: Path, args: list[str], expected: str
) -> None:
    result = deep_research(dev_server, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "reports").exists()


def test_cli_reports_unreachable_server_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "research_cli", "status", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_env(), "TEMPORAL_ADDRESS": "127.0.0.1:1"},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach Temporal at 127.0.0.1:1")
    assert "Traceback" not in result.stderr


async def research_on_own_pools(
    client: Client,
    dev_server: DevServer,
    log_dir: Path,
    env: dict[str, str],
    question: str,
) -> tuple[ResearchReport, WorkerProcesses, str]:
    """Start the three pools on fresh queues with `env`, research `question`, stop the pools.

    Returns the report, the (stopped) pools for their logs, and the run's workflow id.
    """
    suffix = uuid.uuid4().hex[:6]
    queues = own_queues("own")
    workers = WorkerProcesses(address=dev_server.address, log_dir=log_dir, env={**queues, **env})
    workflow_id = f"own-pools-{suffix}"
    try:
        workers.start("orchestrator", "search", "llm")
        report = await client.execute_workflow(
            WORKFLOW_TYPE,
            # One round, no review: these runs are about providers, not depth.
            {"question": question, "max_rounds": 1, "max_review_rounds": 0},
            id=workflow_id,
            task_queue=queues["RESEARCH_ORCHESTRATOR_QUEUE"],
            result_type=ResearchReport,
        )
    finally:
        workers.stop_all()
    return report, workers, workflow_id


PLAN_JSON = json.dumps(
    {
        "searches": [
            {"query": "durable execution", "reason": "the core idea"},
            {"query": "workflow replay", "reason": "how recovery works"},
        ]
    }
)


def fake_model(body: dict[str, Any]) -> str:
    """Plans two searches; writes a report that cites source 1 and a source that does not
    exist, which the synthesize activity must remove."""
    later = after_the_draft(body)
    if later is not None:
        return later
    if "report_markdown" not in json.dumps(body):
        return PLAN_JSON
    return json.dumps(
        {
            "report_markdown": "# Report\n\nDurable execution resumes work [1]. Invented [42].",
            "summary": "It resumes [1][42].",
            "follow_up_questions": ["What about versioning?"],
        }
    )


async def test_real_clients_against_wire_compatible_servers(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """Tavily search with an OpenAI-compatible model (Chat Completions), real clients,
    workers as processes on their own queues."""
    with (
        FakeTavilyServer() as tavily,
        FakeOpenAIServer(responder=fake_model) as openai_server,
    ):
        assert isinstance(tavily, FakeTavilyServer)
        assert isinstance(openai_server, FakeOpenAIServer)
        report, workers, workflow_id = await research_on_own_pools(
            client,
            dev_server,
            tmp_path / "logs",
            {
                "RESEARCH_SEARCH_PROVIDER": "tavily",
                "TAVILY_API_KEY": tavily.api_key,
                "TAVILY_BASE_URL": tavily.base_url,
                "RESEARCH_LLM_PROVIDER": "openai",
                "OPENAI_API_KEY": openai_server.api_key,
                "OPENAI_BASE_URL": openai_server.api_base_url,
                "RESEARCH_OPENAI_API": "chat_completions",
                "RESEARCH_PLAN_MODEL": "planner-model",
                "RESEARCH_SYNTHESIZE_MODEL": "writer-model",
            },
            "What is durable execution?",
        )

        assert sorted(tavily.queries_received()) == ["durable execution", "workflow replay"]
        requests = openai_server.requests_for("chat_completions")
        assert [r.model for r in requests] == ["planner-model", "writer-model"]
        assert all(r.bearer == openai_server.api_key for r in requests)
        assert openai_server.calls_for("responses") == []

    assert "Invented [42]" not in report.report_markdown
    assert "Durable execution resumes work [1]." in report.report_markdown
    assert report.summary == "It resumes [1]."
    assert_citations_resolve(report)
    assert report.stats.llm_calls == 2
    assert report.stats.input_tokens > 0
    # The keys stayed out of the logs and the history.
    for pool in ("search", "llm", "orchestrator"):
        assert tavily.api_key not in workers.log(pool)
        assert openai_server.api_key not in workers.log(pool)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    raw = history.to_json()
    assert tavily.api_key not in raw and openai_server.api_key not in raw


async def test_offline_clarification_end_to_end(
    client: Client, offline_workers: WorkerProcesses
) -> None:
    """The offline model asks sensible questions; the answers reach the plan and report."""
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        {"question": "Which is better for parsing dates?", "clarify": True, "max_review_rounds": 0},
        id=f"e2e-clarify-{uuid.uuid4().hex[:8]}",
        task_queue=ORCHESTRATOR_QUEUE,
        result_type=ResearchReport,
    )
    async with asyncio.timeout(60):
        while True:
            status = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
            if status.phase is Phase.AWAITING_ANSWERS:
                break
            await asyncio.sleep(0.1)
    assert 1 <= len(status.questions_pending) <= 3
    assert all(c.question.endswith("?") for c in status.clarifications)
    answers = [
        {"index": i, "answer": "datetime and zoneinfo in Python 3.11"}
        for i in status.questions_pending
    ]
    await handle.execute_update(ANSWER_UPDATE, {"answers": answers})
    report = await handle.result()

    assert report.outcome is Outcome.COMPLETED
    assert all(c.answer for c in report.clarifications)
    assert "## Clarifications" in report.report_markdown
    assert any("datetime" in q.query or "zoneinfo" in q.query for q in report.queries)
    assert_citations_resolve(report)
    # triage, clarify, plan, the reflection after the first of two rounds, synthesize.
    assert report.stats.llm_calls == 5


def test_cli_asks_a_person_at_the_terminal(
    dev_server: DevServer, offline_workers: WorkerProcesses, tmp_path: Path
) -> None:
    """At a terminal, `run` turns clarification on, asks, and sends the answers."""
    # Each question prompt ("  > ") is answered as it appears, however many the triage asks.
    code, text, answered = run_at_a_terminal(
        [sys.executable, "-m", "research_cli", "run", "Which is better for parsing dates?"],
        {**_env(), "TEMPORAL_ADDRESS": dev_server.address},
        tmp_path,
        [("  > ", "the zoneinfo module")] * MAX_CLARIFYING_QUESTIONS,
        within=90,
    )
    assert "A few questions first" in text
    assert answered >= 1
    assert code == 0, text
    assert "report written to" in text
    report = next((tmp_path / "reports").glob("*.md")).read_text()
    assert "the zoneinfo module" in report


async def test_research_over_a_folder_the_user_names(
    client: Client, dev_server: DevServer, tmp_path: Path
) -> None:
    """RESEARCH_CORPUS_DIR: the md, txt and html files of any folder become the corpus."""
    corpus = tmp_path / "notes"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "tides.md").write_text(
        "# Tides\n\nTides are caused by the gravitational pull of the Moon and the Sun. "
        "Spring tides happen when the Sun and Moon align.\n"
    )
    (corpus / "sub" / "moon.html").write_text(
        "<html><head><title>The Moon</title><script>var x = 1;</script></head><body>"
        "<p>The Moon orbits the Earth every 27.3 days &amp; raises tides in the oceans.</p>"
        "</body></html>"
    )
    (corpus / "bread.txt").write_text("Bread rises because yeast produces carbon dioxide.\n")
    report, _, _ = await research_on_own_pools(
        client,
        dev_server,
        tmp_path / "logs",
        {
            "RESEARCH_DATA_DIR": str(tmp_path / "data"),
            "RESEARCH_CORPUS_DIR": str(corpus),
            "RESEARCH_SEARCH_PROVIDER": "local",
            "RESEARCH_LLM_PROVIDER": "offline",
        },
        "What causes ocean tides and how does the Moon raise them?",
    )

    names = {Path(s.url).name for s in report.sources}
    assert {"tides.md", "moon.html"} <= names
    assert "bread.txt" not in names
    assert_citations_resolve(report)
    assert "var x" not in report.report_markdown
    assert "gravitational pull of the Moon" in report.report_markdown


@pytest.mark.parametrize("mix", ["tavily+offline", "local+openai-responses"])
async def test_providers_are_chosen_independently(
    client: Client, dev_server: DevServer, session_data_dir: Path, tmp_path: Path, mix: str
) -> None:
    """Each pool picks its provider on its own: a real search with the offline model, and the
    offline corpus with a real model (Responses API)."""
    with (
        FakeTavilyServer() as tavily,
        FakeOpenAIServer(responder=fake_model) as openai_server,
    ):
        assert isinstance(tavily, FakeTavilyServer)
        assert isinstance(openai_server, FakeOpenAIServer)
        if mix == "tavily+offline":
            env = {
                "TAVILY_API_KEY": tavily.api_key,
                "TAVILY_BASE_URL": tavily.base_url,
                "RESEARCH_LLM_PROVIDER": "offline",
            }
        else:
            env = {
                "RESEARCH_SEARCH_PROVIDER": "local",
                "RESEARCH_DATA_DIR": str(session_data_dir),
                "OPENAI_API_KEY": openai_server.api_key,
                "OPENAI_BASE_URL": openai_server.api_base_url,
            }
        report, _, _ = await research_on_own_pools(
            client,
            dev_server,
            tmp_path / "logs",
            env,
            "What is durable execution in workflow engines?",
        )
        tavily_calls = len(tavily.calls_to("/search"))
        model_calls = len(openai_server.calls_for("responses"))

    assert_citations_resolve(report)
    if mix == "tavily+offline":
        # Chosen by the key alone (RESEARCH_SEARCH_PROVIDER left at auto).
        assert tavily_calls == report.stats.searches_planned >= 1
        assert model_calls == 0
        assert "No language model wrote this report" in report.report_markdown
        assert all(s.url.startswith("http") for s in report.sources)
    else:
        assert tavily_calls == 0
        assert model_calls == 2
        assert all(Path(s.url).is_file() for s in report.sources)
