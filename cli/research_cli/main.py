"""`deep-research`: run the embedded stack, run one worker pool, start and follow research runs.

Errors a user can fix (bad input, no server) print one line and exit non-zero; they never
print a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from research_shared.models import (
    DEFAULT_MAX_SEARCHES,
    Phase,
    ResearchReport,
    ResearchRequest,
    ResearchStatus,
    describe_validation_error,
)
from research_shared.names import STATUS_QUERY, WORKFLOW_TYPE
from research_shared.settings import QueueSettings, TemporalSettings, default_data_dir

DEMO_QUESTION = "How should I choose between asyncio tasks and threads for I/O-bound work?"


class CliError(Exception):
    """An error the user can act on: printed as one line, exit code 1 or 2."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- helpers shared by the commands ----------------------------------------------------------


def validated_request(args: argparse.Namespace) -> ResearchRequest:
    fields: dict[str, Any] = {"question": args.question, "max_searches": args.max_searches}
    if args.results_per_search is not None:
        fields["results_per_search"] = args.results_per_search
    try:
        return ResearchRequest(**fields)
    except ValidationError as err:
        raise CliError(
            f"invalid research request: {describe_validation_error(err)}", code=2
        ) from None


async def connect_client(settings: TemporalSettings | None = None) -> Client:
    from research_shared.temporal_client import connect

    settings = settings or TemporalSettings()
    try:
        return await connect(settings)
    except (RuntimeError, OSError) as err:
        raise CliError(f"cannot reach Temporal at {settings.address}: {err}") from None


def progress_line(status: ResearchStatus) -> str:
    if status.phase is Phase.SEARCHING:
        done = status.searches_succeeded + status.searches_failed
        line = (
            f"searching: {done}/{status.searches_planned} done, {status.searches_running} running"
        )
        return line + (f", {status.searches_failed} failed" if status.searches_failed else "")
    if status.phase is Phase.SYNTHESIZING:
        return f"synthesizing a report from {status.sources_retrieved} sources"
    return status.phase.value


async def follow(handle: WorkflowHandle[Any, ResearchReport], quiet: bool) -> ResearchReport:
    """Show progress while the run goes on, then return its report."""
    result = asyncio.ensure_future(handle.result())
    last = ""
    while not result.done():
        if not quiet:
            try:
                status = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
            except RPCError:
                status = None  # no orchestrator worker has picked the run up yet
            line = progress_line(status) if status else "waiting for an orchestrator worker"
            if line != last:
                print(f"  {line}", file=sys.stderr, flush=True)
                last = line
        await asyncio.wait([result], timeout=0.5)
    try:
        return result.result()
    except WorkflowFailureError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        raise CliError(f"research {handle.id} failed: {message}") from None


def write_report(report: ResearchReport, workflow_id: str, out: Path | None) -> Path:
    path = out or Path("reports") / f"{workflow_id}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.report_markdown, encoding="utf-8")
    return path


def print_outcome(
    report: ResearchReport, workflow_id: str, path: Path, as_json: bool, elapsed: float
) -> None:
    if as_json:
        data = report.model_dump(mode="json")
        data.update({"workflow_id": workflow_id, "report_path": str(path)})
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    s = report.stats
    print(f"\n{report.summary}\n")
    print(
        f"searches: {s.searches_succeeded} ok, {s.searches_failed} failed; "
        f"sources: {s.sources_retrieved}; model calls: {s.llm_calls}; "
        f"tokens: {s.total_tokens}; wall time: {elapsed:.1f}s"
    )
    for failure in report.failed_searches:
        print(f"failed search '{failure.query}': {failure.error_type}: {failure.message}")
    print(f"report written to {path}")


async def research(client: Client, args: argparse.Namespace, request: ResearchRequest) -> int:
    queues = QueueSettings()
    workflow_id = args.id or f"research-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        request,
        id=workflow_id,
        task_queue=queues.orchestrator_queue,
        result_type=ResearchReport,
    )
    if not args.json:
        print(f"started {workflow_id}: {request.question}", file=sys.stderr)
    if args.detach:
        print(workflow_id)
        return 0
    report = await follow(handle, quiet=args.json)
    path = write_report(report, workflow_id, args.out)
    print_outcome(report, workflow_id, path, args.json, time.monotonic() - started)
    return 0


# -- commands ----------------------------------------------------------------------------------


async def cmd_run(args: argparse.Namespace) -> int:
    request = validated_request(args)
    client = await connect_client()
    return await research(client, args, request)


async def cmd_status(args: argparse.Namespace) -> int:
    client = await connect_client()
    handle = client.get_workflow_handle(args.workflow_id)
    try:
        status = await handle.query(STATUS_QUERY, result_type=ResearchStatus)
        description = await handle.describe()
    except RPCError as err:
        raise CliError(f"cannot read the status of {args.workflow_id}: {err.message}") from None
    data = status.model_dump(mode="json")
    data["run_status"] = description.status.name if description.status else "UNKNOWN"
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"{args.workflow_id}: {data['run_status'].lower()}, {progress_line(status)}")
    return 0


async def cmd_result(args: argparse.Namespace) -> int:
    client = await connect_client()
    handle = client.get_workflow_handle(args.workflow_id, result_type=ResearchReport)
    try:
        report = await follow(handle, quiet=True)
    except RPCError as err:
        raise CliError(f"cannot read the result of {args.workflow_id}: {err.message}") from None
    path = write_report(report, args.workflow_id, args.out)
    print_outcome(report, args.workflow_id, path, args.json, report.stats.wall_time_seconds)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    if args.pool == "orchestrator":
        from research_orchestrator.worker import main
    elif args.pool == "search":
        from research_search.worker import main
    else:
        from research_llm.worker import main
    main()
    return 0


async def cmd_dev(args: argparse.Namespace) -> int:
    from research_cli.embedded import EmbeddedStack, start_worker

    stack = EmbeddedStack(data_dir=args.data_dir, port=args.port, ui_port=args.ui_port)
    try:
        await stack.start()
        print(f"Temporal dev server on {stack.address} (SQLite: {stack.data_dir / 'temporal.db'})")
        if args.ui_port:
            print(f"Temporal UI on http://127.0.0.1:{args.ui_port}")
        print(f"workers: {', '.join(stack.workers)}; logs in {stack.log_dir}")
        print(f"try: TEMPORAL_ADDRESS={stack.address} deep-research run 'your question'")
        print("Ctrl-C stops everything.")
        while True:
            await asyncio.sleep(1)
            for pool in stack.dead_workers():
                print(f"worker {pool} exited; restarting it (log: {stack.log_dir}/{pool}.log)")
                stack.workers[pool] = start_worker(
                    pool, stack.worker_env(), stack.log_dir / f"{pool}.log"
                )
    finally:
        print("stopping the embedded stack", file=sys.stderr)
        stack.stop()


async def cmd_demo(args: argparse.Namespace) -> int:
    from research_cli.embedded import EmbeddedStack, free_port, port_is_free

    request = validated_request(args)
    port = args.port if port_is_free(args.port) else free_port()
    stack = EmbeddedStack(data_dir=args.data_dir, port=port)
    print(f"starting the embedded stack in {args.data_dir} (logs: {stack.log_dir})")
    try:
        client = await stack.start()
        return await research(client, args, request)
    finally:
        stack.stop()


# -- argument parsing -------------------------------------------------------------------------


def _add_request_args(p: argparse.ArgumentParser, question_optional: bool = False) -> None:
    if question_optional:
        p.add_argument("question", nargs="?", default=DEMO_QUESTION)
    else:
        p.add_argument("question")
    p.add_argument("--max-searches", type=int, default=DEFAULT_MAX_SEARCHES)
    p.add_argument("--results-per-search", type=int, default=None)
    p.add_argument("--id", help="workflow id (default: research-<random>)")
    p.add_argument("--out", type=Path, help="report file (default: reports/<id>.md)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--detach", action="store_true", help="start the run and print its id")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deep-research", description="Durable deep research on Temporal."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="start the embedded dev server and the three workers")
    dev.add_argument("--data-dir", type=Path, default=default_data_dir())
    dev.add_argument("--port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233, help="0 turns the web UI off")

    demo = sub.add_parser("demo", help="start the embedded stack, research a question, stop")
    _add_request_args(demo, question_optional=True)
    demo.add_argument("--data-dir", type=Path, default=default_data_dir())
    demo.add_argument("--port", type=int, default=7233)

    worker = sub.add_parser("worker", help="run one worker pool (what a container runs)")
    worker.add_argument("pool", choices=["orchestrator", "search", "llm"])

    run = sub.add_parser("run", help="research a question and write the report")
    _add_request_args(run)

    status = sub.add_parser("status", help="show the phase and progress of a run")
    status.add_argument("workflow_id")
    status.add_argument("--json", action="store_true")

    result = sub.add_parser("result", help="wait for a run's report and write it")
    result.add_argument("workflow_id")
    result.add_argument("--out", type=Path)
    result.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "worker":
            return cmd_worker(args)
        command = {
            "dev": cmd_dev,
            "demo": cmd_demo,
            "run": cmd_run,
            "status": cmd_status,
            "result": cmd_result,
        }[args.command]
        return asyncio.run(command(args))
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return 130


def entrypoint() -> None:
    """The console script: run, flush, and leave without interpreter finalization.

    The Temporal SDK's Rust core keeps threads that can touch the interpreter while it
    finalizes, which aborts a short-lived client process now and then (temporalio/sdk-python
    issue 300). Everything this process writes is flushed and closed by now, so skipping
    finalization loses nothing.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
