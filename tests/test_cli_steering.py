"""The `deep-research answer|approve|pause|resume|cancel` commands, as a person would use them,
against a run served by stub workers on the real dev server; and the report's sign-off asked
at a terminal, against real worker processes."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from research_shared.models import Outcome, Phase, ResearchReport
from tests.helpers.processes import DevServer, offline_pools
from tests.helpers.terminal import run_at_a_terminal
from tests.helpers.workflow_stubs import Stubs, running_workers, start, status_of, wait_for


async def cli(dev_server: DevServer, queue: str, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_server.address,
        "RESEARCH_ORCHESTRATOR_QUEUE": queue,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "research_cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_person_steers_a_run_from_the_cli(
    client: Client, dev_server: DevServer, task_queue: str
) -> None:
    stubs = Stubs(gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        handle: Any = await start(
            client, task_queue, clarify=True, approve_plan=True, max_searches=3
        )
        run_id = handle.id
        await wait_for(handle, Phase.AWAITING_ANSWERS)

        code, out, _ = await cli(dev_server, task_queue, "status", run_id)
        assert code == 0 and "question 0: Which version?" in out

        code, _, err = await cli(dev_server, task_queue, "answer", run_id, "--index", "9", "x")
        assert code == 2 and err.count("\n") == 1
        assert "refused: there is no question 9" in err

        code, out, _ = await cli(dev_server, task_queue, "answer", run_id, "--index", "2", "deep")
        assert code == 0 and "2 questions still pending" in out
        code, out, _ = await cli(dev_server, task_queue, "answer", run_id, "3.11", "a talk")
        assert code == 0 and "0 questions still pending" in out

        await wait_for(handle, Phase.AWAITING_APPROVAL)
        planned = [q.query for q in (await status_of(handle)).queries]
        code, _, err = await cli(
            dev_server, task_queue, "approve", run_id, "--replace", "abc", "beta rewritten"
        )
        assert code == 2 and err.count("\n") == 1, err
        assert "the query number must be a whole number, not 'abc'" in err
        code, _, err = await cli(dev_server, task_queue, "approve", run_id, "--remove", "9")
        assert code == 2 and err.count("\n") == 1, err
        assert "there is no query 9 in the plan" in err
        status = await status_of(handle)
        assert status.phase is Phase.AWAITING_APPROVAL
        assert [q.query for q in status.queries] == planned

        code, out, _ = await cli(
            dev_server,
            task_queue,
            "approve",
            run_id,
            "--remove",
            "0",
            "--replace",
            "1",
            "beta rewritten",
            "--add",
            "delta",
        )
        assert code == 0, out
        assert "plan edited; 3 searches will run" in out and "  - delta" in out

        await wait_for(handle, Phase.SEARCHING)
        code, _, _ = await cli(dev_server, task_queue, "pause", run_id)
        assert code == 0 and (await status_of(handle)).paused
        code, _, _ = await cli(dev_server, task_queue, "resume", run_id)
        assert code == 0 and not (await status_of(handle)).paused

        code, out, _ = await cli(
            dev_server, task_queue, "cancel", run_id, "--reason", "seen enough"
        )
        assert code == 0 and "cancel sent" in out
        report = await handle.result()

    assert [c.answer for c in report.clarifications] == ["3.11", "a talk", "deep"]
    assert [q.query for q in report.queries] == ["beta rewritten", "gamma", "delta"]
    assert report.outcome is Outcome.CANCELLED
    assert report.outcome_reason == "seen enough"


async def test_steering_a_missing_run_is_one_line(dev_server: DevServer, task_queue: str) -> None:
    code, _, err = await cli(dev_server, task_queue, "approve", "no-such-run")
    assert code == 1 and err.startswith("error: cannot update no-such-run")
    assert "Traceback" not in err


async def test_deep_runs_are_steered_from_the_cli(
    client: Client, dev_server: DevServer, task_queue: str
) -> None:
    """Run options for depth and budget, `searches` while a round runs, `review-report` on the
    draft, and `finish`."""
    stubs = Stubs(gate=asyncio.Event())
    async with running_workers(client, task_queue, stubs):
        code, out, err = await cli(
            dev_server,
            task_queue,
            "run",
            "What is x?",
            "--detach",
            "--max-rounds",
            "1",
            "--max-review-rounds",
            "0",
            "--approve-report",
            "--max-searches-total",
            "9",
            "--priority",
            "2",
            "--fairness-key",
            "tenant-7",
        )
        assert code == 0, err
        run_id = out.strip()
        handle = client.get_workflow_handle(run_id)
        started = (await handle.fetch_history()).events[0]
        [sent] = await client.data_converter.decode(
            started.workflow_execution_started_event_attributes.input.payloads
        )
        assert (sent["priority"], sent["fairness_key"]) == (2, "tenant-7")
        status = await wait_for(handle, Phase.SEARCHING)
        assert status.budget.lines[0].name == "max_searches_total"

        code, _, err = await cli(dev_server, task_queue, "searches", run_id, "--remove", "omega")
        assert code == 2 and err.count("\n") == 1 and "round 1 has no query 'omega'" in err
        code, out, err = await cli(
            dev_server, task_queue, "searches", run_id, "--add", "delta", "--remove", "gamma"
        )
        assert code == 0, err
        assert "round 1 now searches 3 queries" in out and "- delta" in out
        code, _, err = await cli(dev_server, task_queue, "searches", run_id)
        assert code == 2 and "give --add QUERY or --remove QUERY" in err

        stubs.gate.set()  # type: ignore[union-attr]
        await wait_for(handle, Phase.AWAITING_REPORT_REVIEW)
        code, out, _ = await cli(dev_server, task_queue, "status", run_id)
        assert (
            code == 0 and "round 1: 4 queries, 3 ok" in out and "budget max_searches_total" in out
        )
        code, out, err = await cli(
            dev_server, task_queue, "review-report", run_id, "--revise", "say more"
        )
        assert code == 0 and "sent back to be revised" in out, err
        await wait_for(handle, Phase.AWAITING_REPORT_REVIEW)
        code, out, _ = await cli(dev_server, task_queue, "review-report", run_id, "--approve")
        assert code == 0 and "report approved" in out
        report = await handle.result()
        assert report["report_markdown"] == "revision 1: say more"
        code, _, err = await cli(dev_server, task_queue, "review-report", run_id, "--approve")
        assert code != 0 and err.count("\n") == 1

        # finish: a run that searches stops and writes at once.
        stubs.gate.clear()  # type: ignore[union-attr]
        code, out, _ = await cli(dev_server, task_queue, "run", "What is y?", "--detach")
        second = client.get_workflow_handle(out.strip())
        await wait_for(second, Phase.SEARCHING)
        code, out, _ = await cli(dev_server, task_queue, "finish", second.id, "--reason", "enough")
        assert code == 0 and "finish sent" in out
        finished = await second.result()
    assert finished["outcome_reason"] == "finished on request: enough"


DRAFT_PROMPT = "Approve [a], send it back with notes [r], or leave it for later [Enter]? "
NOTES = "say which module parses subcommands"


async def test_a_person_signs_the_report_off_at_the_terminal(
    client: Client,
    dev_server: DevServer,
    session_data_dir: Path,
    tmp_path: Path,
) -> None:
    """`run --approve-report` at a terminal shows the draft and asks: sent back with notes
    once, the revision is shown and asked about again, and approved. Real worker processes
    (offline providers) on queues of their own, the CLI on a pseudo-terminal."""
    suffix = uuid.uuid4().hex[:8]
    queues = {
        "RESEARCH_ORCHESTRATOR_QUEUE": f"signoff-orch-{suffix}",
        "RESEARCH_SEARCH_QUEUE": f"signoff-search-{suffix}",
        "RESEARCH_LLM_QUEUE": f"signoff-llm-{suffix}",
    }
    workers = offline_pools(dev_server.address, tmp_path / "logs", session_data_dir, queues)
    try:
        code, text, answered = await asyncio.to_thread(
            run_at_a_terminal,
            [
                sys.executable,
                "-m",
                "research_cli",
                "run",
                "How do I parse command line arguments with subcommands?",
                "--no-clarify",
                "--max-rounds",
                "1",
                "--max-review-rounds",
                "0",
                "--approve-report",
            ],
            {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, **queues},
            tmp_path,
            [(DRAFT_PROMPT, "r"), ("What should change? ", NOTES), (DRAFT_PROMPT, "a")],
        )
    finally:
        workers.stop_all()

    assert answered == 3, text
    assert code == 0, text
    assert text.count("The draft report:") == 2
    assert "Traceback" not in text
    started = re.search(r"started (\S+): ", text)
    assert started, text
    handle = client.get_workflow_handle(started.group(1), result_type=ResearchReport)
    report: ResearchReport = await handle.result()
    assert [(r.by, r.approved, r.notes) for r in report.review] == [
        ("person", False, [NOTES]),
        ("person", True, []),
    ]
    assert report.outcome is Outcome.COMPLETED and not report.partial
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled.count("revise") == 1 and "review" not in scheduled
    written = tmp_path / "reports" / f"{handle.id}.md"
    assert written.read_text(encoding="utf-8") == report.report_markdown


async def test_ctrl_c_at_a_prompt_ends_the_command(
    client: Client, dev_server: DevServer, task_queue: str
) -> None:
    """Ctrl-C while `run` asks its questions ends the command at once, though no line was
    typed (the run itself goes on: it is durable)."""
    stubs = Stubs(gate=asyncio.Event())
    primary, secondary = pty.openpty()  # a terminal: `run` asks its questions there
    async with running_workers(client, task_queue, stubs):
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "research_cli", "run", "What is x?", "--clarify"),
            env={
                **os.environ,
                "TEMPORAL_ADDRESS": dev_server.address,
                "RESEARCH_ORCHESTRATOR_QUEUE": task_queue,
            },
            stdin=secondary,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        os.close(secondary)
        try:
            assert proc.stderr is not None
            seen = b""
            async with asyncio.timeout(60):
                while b"A few questions first" not in seen:
                    line = await proc.stderr.readline()
                    assert line, seen.decode()
                    seen += line
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(proc.wait(), 60) == 128 + signal.SIGINT
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            os.close(primary)
