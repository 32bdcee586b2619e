"""The HTTP API as a process, against the session's dev server and real offline worker pools:
every route, the owners' isolation, the errors, the event stream and the rendered reports."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from research_cli.embedded import free_port
from tests.helpers.api import (
    ApiServer,
    read_events,
    saw,
    start_api,
    wait_for_phase,
    wait_for_result,
)
from tests.helpers.processes import DevServer

pytestmark = pytest.mark.e2e

VAGUE = "Which is better for parsing dates?"  # the offline triage asks about it first


@pytest.fixture
async def alice(api_server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with api_server.client("alice") as client:
        yield client


@pytest.fixture
async def bob(api_server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with api_server.client("bob") as client:
        yield client


async def start(client: httpx.AsyncClient, **fields: Any) -> str:
    answer = await client.post("/v1/research", json=fields)
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["id"]
    return run_id


async def test_probes_docs_and_the_openapi_document(api_server: ApiServer) -> None:
    async with api_server.client() as anyone:
        assert (await anyone.get("/healthz")).json() == {"status": "ok"}
        assert (await anyone.get("/readyz")).status_code == 200
        assert "swagger" in (await anyone.get("/docs")).text.lower()
        document = (await anyone.get("/openapi.json")).json()
        page = await anyone.get("/")
    paths = document["paths"]
    for path in (
        "/v1/research",
        "/v1/research/{id}",
        "/v1/research/{id}/answers",
        "/v1/research/{id}/plan-review",
        "/v1/research/{id}/pause",
        "/v1/research/{id}/resume",
        "/v1/research/{id}/cancel",
        "/v1/research/{id}/result",
        "/v1/research/{id}/report.md",
        "/v1/research/{id}/report.html",
        "/v1/research/{id}/report.pdf",
        "/v1/research/{id}/events",
    ):
        assert path in paths, path
    # The workflow's input model is the body: its fields are documented as they are.
    schemas = document["components"]["schemas"]
    assert {"question", "max_searches", "clarify", "approve_plan"} <= set(
        schemas["ResearchRequest"]["properties"]
    )
    assert paths["/v1/research/{id}"]["get"]["responses"]["404"]
    assert page.status_code == 200 and "<main" in page.text


async def test_a_key_is_required_and_never_echoed(api_server: ApiServer) -> None:
    async with api_server.client() as anyone:
        missing = await anyone.get("/v1/research")
        wrong = await anyone.get("/v1/research", headers={"X-API-Key": "not-a-key"})
        header = await anyone.get("/v1/research", headers={"X-API-Key": api_server.keys["bob"]})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401 and "not-a-key" not in wrong.text
    assert header.status_code == 200


async def test_a_whole_run_with_a_clarification_and_a_plan_edit(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, api_server: ApiServer
) -> None:
    request = {"question": VAGUE, "clarify": True, "approve_plan": True, "max_searches": 3}
    key = {"Idempotency-Key": f"whole-run-{free_port()}"}
    first = await alice.post("/v1/research", json=request, headers=key)
    assert first.status_code == 201, first.text
    run_id = first.json()["id"]
    assert first.json()["status_url"].endswith(f"/v1/research/{run_id}")
    again = await alice.post("/v1/research", json=request, headers=key)
    assert (again.status_code, again.json()["id"]) == (200, run_id)
    other = await alice.post("/v1/research", json={**request, "max_searches": 2}, headers=key)
    assert other.status_code == 409, other.text
    # The same key of another owner names another run.
    bobs = await bob.post(
        "/v1/research", json={"question": VAGUE, "approve_plan": True}, headers=key
    )
    assert bobs.status_code == 201 and bobs.json()["id"] != run_id
    await bob.post(f"/v1/research/{bobs.json()['id']}/cancel")

    seen: list[tuple[str, dict[str, Any]]] = []
    events = asyncio.ensure_future(read_events(alice, f"/v1/research/{run_id}/events", seen))
    waiting = await wait_for_phase(alice, run_id, "awaiting_answers")
    pending = waiting["status"]["questions_pending"]
    assert pending
    await saw(seen, "questions")

    # Another owner's run does not exist for bob, on every route.
    assert (await bob.get(f"/v1/research/{run_id}")).status_code == 404
    assert (await bob.post(f"/v1/research/{run_id}/pause")).status_code == 404
    assert run_id not in {r["id"] for r in (await bob.get("/v1/research")).json()["runs"]}

    refused = await alice.post(
        f"/v1/research/{run_id}/answers", json={"answers": [{"index": 9, "answer": "x"}]}
    )
    assert refused.status_code == 409 and refused.json()["error_type"] == "UpdateRefused"
    assert "there is no question 9" in refused.json()["detail"]
    empty = await alice.post(
        f"/v1/research/{run_id}/answers", json={"answers": [{"index": 0, "answer": " "}]}
    )
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "answers.0.answer"
    answers = [{"index": i, "answer": "dates in log files"} for i in pending]
    answered = await alice.post(f"/v1/research/{run_id}/answers", json={"answers": answers})
    assert answered.status_code == 200 and answered.json()["questions_pending"] == []

    plan = (await wait_for_phase(alice, run_id, "awaiting_approval"))["status"]["queries"]
    await saw(seen, "plan")
    too_long = [{"query": f"query {n}"} for n in range(4)]
    refused = await alice.post(
        f"/v1/research/{run_id}/plan-review", json={"decision": "edit", "queries": too_long}
    )
    assert refused.status_code == 409 and "at most 3 queries" in refused.json()["detail"]
    twice = [{"query": "datetime strptime"}, {"query": "Datetime  strptime"}]
    refused = await alice.post(
        f"/v1/research/{run_id}/plan-review", json={"decision": "edit", "queries": twice}
    )
    assert refused.status_code == 422 and refused.json()["error_type"] == "InvalidResearchRequest"
    edited = [{"query": "datetime strptime format codes"}, {"query": plan[0]["query"]}]
    reviewed = await alice.post(
        f"/v1/research/{run_id}/plan-review", json={"decision": "edit", "queries": edited}
    )
    assert reviewed.status_code == 200, reviewed.text
    assert [q["query"] for q in reviewed.json()["queries"]] == [q["query"] for q in edited]

    stream = await asyncio.wait_for(events, 120)
    kinds = [kind for kind, _ in stream]
    assert kinds[-1] == "done" and stream[-1][1]["execution_status"] == "completed"
    assert stream[-1][1]["outcome"] == "completed"
    phases = [data["phase"] for kind, data in stream if kind == "phase"]
    assert "awaiting_approval" in phases, stream
    assert phases.index("awaiting_answers") < phases.index("awaiting_approval")
    assert phases.index("awaiting_approval") < phases.index("searching")
    assert "questions" in kinds and "plan" in kinds
    started = {data["query"] for kind, data in stream if kind == "search_started"}
    finished = {data["query"]: data for kind, data in stream if kind == "search_finished"}
    assert started == set(finished) == {q["query"] for q in edited}
    assert all(f["outcome"] == "ok" and f["hits"] >= 0 for f in finished.values())
    assert kinds.index("search_started") < kinds.index("search_finished")

    done = await alice.get(f"/v1/research/{run_id}/result")
    assert done.status_code == 200
    report = done.json()
    assert [c["answer"] for c in report["clarifications"]] == ["dates in log files"] * len(pending)
    assert [q["query"] for q in report["queries"]] == [q["query"] for q in edited]
    info = (await alice.get(f"/v1/research/{run_id}")).json()
    assert info["execution_status"] == "completed" and info["closed_at"]
    assert info["question"] == VAGUE

    markdown = await alice.get(f"/v1/research/{run_id}/report.md")
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text == report["report_markdown"]
    html = await alice.get(f"/v1/research/{run_id}/report.html")
    assert html.headers["content-type"].startswith("text/html")
    cited = {int(n) for n in re.findall(r'href="#source-(\d+)"', html.text)}
    anchored = {int(n) for n in re.findall(r'id="source-(\d+)"', html.text)}
    assert cited and cited <= anchored == {s["id"] for s in report["sources"]}
    pdf = await alice.get(f"/v1/research/{run_id}/report.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and len(pdf.content) > 1000

    # A finished run can no longer be steered; its stream replays and ends.
    late = await alice.post(f"/v1/research/{run_id}/pause")
    assert late.status_code == 409 and "has ended" in late.json()["detail"]
    replay = await read_events(alice, f"/v1/research/{run_id}/events")
    assert replay[-1][0] == "done"
    assert {d["query"] for k, d in replay if k == "search_finished"} == set(finished)

    for key_text in api_server.keys.values():
        assert key_text not in api_server.log()


async def test_pause_resume_cancel_and_the_result_while_running(alice: httpx.AsyncClient) -> None:
    run_id = await start(alice, question="How do I use the zlib module?", approve_plan=True)
    await wait_for_phase(alice, run_id, "awaiting_approval")
    running = await alice.get(f"/v1/research/{run_id}/result")
    assert running.status_code == 202 and running.json()["execution_status"] == "running"
    assert (await alice.get(f"/v1/research/{run_id}/report.md")).status_code == 409

    paused = await alice.post(f"/v1/research/{run_id}/pause")
    assert paused.status_code == 202 and paused.json() == {"id": run_id, "signal": "pause"}
    for _ in range(50):
        if (await alice.get(f"/v1/research/{run_id}")).json()["status"]["paused"]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the run did not pause")
    assert (await alice.post(f"/v1/research/{run_id}/resume")).status_code == 202
    for _ in range(50):
        if not (await alice.get(f"/v1/research/{run_id}")).json()["status"]["paused"]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the run did not resume")
    cancelled = await alice.post(f"/v1/research/{run_id}/cancel", json={"reason": "seen enough"})
    assert cancelled.status_code == 202
    result = await wait_for_result(alice, run_id)
    assert result["outcome"] == "cancelled"
    assert result["outcome_reason"] == "seen enough"


async def all_pages(client: httpx.AsyncClient, size: int, status: str | None = None) -> list[str]:
    """The ids of every page of GET /v1/research, in order, checking each page's size."""
    ids: list[str] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"page_size": size}
        if status:
            params["status"] = status
        if token:
            params["page_token"] = token
        answer = await client.get("/v1/research", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        ids += [run["id"] for run in page["runs"]]
        token = page["next_page_token"]
        if token is None:
            assert len(page["runs"]) <= size
            return ids
        assert len(page["runs"]) == size


async def test_list_is_newest_first_across_pages_whatever_order_runs_close_in(
    dev_server: DevServer, client: Client, tmp_path: Path
) -> None:
    """Visibility lists closed runs by when they closed: runs that close in another order
    than they started still list newest first, on every page size and with a status filter.
    The API's orchestrator queue has no worker, so the runs stay as the test leaves them, and
    an owner of its own sees only them."""
    queue = {"RESEARCH_ORCHESTRATOR_QUEUE": f"unpolled-{uuid.uuid4().hex[:8]}"}
    server = start_api(dev_server.address, tmp_path, keys={"lister": "lister-key"}, env=queue)
    try:
        async with server.client("lister") as lister:
            ids = [await start(lister, question=f"Which run is number {n}?") for n in range(5)]
            # Closed 1, then 3, then 0: by close time, visibility gives 4, 2 (running), 0, 3, 1.
            for n in (1, 3, 0):
                await client.get_workflow_handle(ids[n]).terminate(reason="closed out of order")
            for _ in range(100):
                terminated = await all_pages(lister, 100, "terminated")
                if len(terminated) == 3 and len(await all_pages(lister, 100)) == 5:
                    break
                await asyncio.sleep(0.1)
            newest_first = ids[::-1]
            for size in (1, 2, 3, 5, 100):
                assert await all_pages(lister, size) == newest_first, size
            assert await all_pages(lister, 2, "terminated") == [ids[3], ids[1], ids[0]]
            assert await all_pages(lister, 1, "running") == [ids[4], ids[2]]
            assert await all_pages(lister, 2, "completed") == []
            listed = (await lister.get("/v1/research", params={"page_size": 1})).json()
            assert listed["runs"][0]["question"] == "Which run is number 4?"
            bad = await lister.get("/v1/research", params={"page_token": "%%%"})
            assert bad.status_code == 422 and "page token" in bad.json()["detail"]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/research/no-such-run"),
        ("GET", "/v1/research/no-such-run/result"),
        ("GET", "/v1/research/no-such-run/report.pdf"),
        ("GET", "/v1/research/no-such-run/events"),
        ("POST", "/v1/research/no-such-run/pause"),
        ("POST", "/v1/research/no-such-run/cancel"),
    ],
)
async def test_an_unknown_run_is_404(alice: httpx.AsyncClient, method: str, path: str) -> None:
    answer = await alice.request(method, path)
    assert answer.status_code == 404, answer.text
    assert answer.json()["detail"] == "there is no research run no-such-run"


async def test_invalid_bodies_are_422_naming_the_field(alice: httpx.AsyncClient) -> None:
    bad = await alice.post("/v1/research", json={"question": "ok", "max_searches": "5"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "max_searches"
    unknown = await alice.post("/v1/research", json={"question": "ok", "colour": "red"})
    assert unknown.json()["errors"][0]["field"] == "colour"
    control = await alice.post("/v1/research", json={"question": "a\u0000b"})
    assert control.status_code == 422 and "U+0000" in control.json()["detail"]
    not_json = await alice.post(
        "/v1/research", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422 and "Traceback" not in not_json.text
    key = await alice.post(
        "/v1/research", json={"question": "ok"}, headers={"Idempotency-Key": "with space"}
    )
    assert key.status_code == 422 and key.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_metrics_count_requests_by_route_and_status(api_server: ApiServer) -> None:
    async with api_server.client("alice") as c:
        await c.get("/v1/research/metrics-probe")
        text = (await c.get("/metrics")).text
    pattern = (
        r'research_api_requests_total\{method="GET",route="/v1/research/\{id\}",'
        r'status="404"\} ([\d.]+)'
    )
    found = re.search(pattern, text)
    assert found and float(found[1]) >= 1, text[-3000:]
    assert "research_api_request_duration_seconds_bucket" in text


async def test_temporal_unreachable_is_503_and_not_ready(tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    server = start_api(nowhere, tmp_path, keys={})
    try:
        async with server.client() as anyone:
            assert (await anyone.get("/healthz")).status_code == 200
            ready = await anyone.get("/readyz")
            listed = await anyone.get("/v1/research")
            started = await anyone.post("/v1/research", json={"question": "ok"})
    finally:
        server.stop()
    assert ready.status_code == 503
    assert listed.status_code == 503 and started.status_code == 503
    assert "Traceback" not in server.log()


def run_api(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "research_cli", "api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_api_refuses_to_listen_beyond_loopback_without_keys(
    dev_server: DevServer,
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("RESEARCH_API")}
    done = run_api({**env, "RESEARCH_API_HOST": "0.0.0.0", "TEMPORAL_ADDRESS": dev_server.address})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "set RESEARCH_API_KEYS" in done.stderr
    done = run_api({**env, "RESEARCH_API_KEYS": "alice:not-a-hash"})
    assert done.returncode == 2 and "not 64 hexadecimal digits" in done.stderr
    assert "not-a-hash" not in done.stderr


async def test_deep_run_routes_sign_off_edits_and_finish(alice: httpx.AsyncClient) -> None:
    """The report's sign-off, a refused search edit (409) and a bad one (422), finish now."""
    run_id = await start(
        alice,
        question="How do I use the zlib module?",
        max_rounds=1,
        max_review_rounds=0,
        approve_report=True,
    )
    status = await wait_for_phase(alice, run_id, "awaiting_report_review")
    assert status["status"]["draft_report"].startswith("# How do I use the zlib module?")
    refused = await alice.post(f"/v1/research/{run_id}/searches", json={"add": [{"query": "x"}]})
    assert refused.status_code == 409 and "no round is searching now" in refused.json()["detail"]
    bad = await alice.post(f"/v1/research/{run_id}/searches", json={"add": "not a list"})
    assert bad.status_code == 422
    empty = await alice.post(f"/v1/research/{run_id}/report-review", json={"decision": "revise"})
    assert empty.status_code == 422 and "needs notes" in empty.text
    approved = await alice.post(
        f"/v1/research/{run_id}/report-review", json={"decision": "approve"}
    )
    assert approved.status_code == 200 and approved.json()["decision"] == "approve"
    result = await wait_for_result(alice, run_id)
    assert not result["partial"]
    assert [r["by"] for r in result["review"]] == ["person"]

    waiting = await start(alice, question="How do I use the gzip module?", approve_plan=True)
    await wait_for_phase(alice, waiting, "awaiting_approval")
    finished = await alice.post(f"/v1/research/{waiting}/finish", json={"reason": "enough"})
    assert finished.status_code == 202 and finished.json()["signal"] == "finish_now"
    result = await wait_for_result(alice, waiting)
    assert result["outcome_reason"] == "finished on request: enough"
