"""`deep-research`: run the embedded stack, run one worker pool, start and follow research runs.

Errors a user can fix (bad input, no server) print one line and exit non-zero; they never
print a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from pydantic import ValidationError

from research_cli.embedded import POOLS, EmbeddedError
from research_cli.supervisor import StopSignals
from research_cli.texts import text_problem
from research_shared.client import (
    ResearchClient,
    ResearchClientError,
    RunFailed,
    StatusUnavailable,
    UpdateRejected,
    new_run_id,
)
from research_shared.encryption import EncryptionError
from research_shared.models import (
    DEFAULT_MAX_SEARCHES,
    ClarificationState,
    Phase,
    PlanReviewResult,
    ResearchReport,
    ResearchRequest,
    ResearchStatus,
    describe_validation_error,
)
from research_shared.settings import PayloadSettings, TemporalSettings, default_data_dir
from research_shared.store import StoreError

if TYPE_CHECKING:
    from research_shared.payloads import Payloads

T = TypeVar("T")

DEMO_QUESTION = "How should I choose between asyncio tasks and threads for I/O-bound work?"


class CliError(Exception):
    """An error the user can act on: printed as one line, exit code 1 or 2."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- helpers shared by the commands ----------------------------------------------------------


def checked_text(what: str, value: str) -> str:
    """`value`, or a `CliError` (exit 2) saying why it is not acceptable text."""
    problem = text_problem(value)
    if problem is not None:
        raise CliError(f"invalid {what}: {problem}", code=2)
    return value


def plan_index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CliError(
            f"invalid --replace: the query number must be a whole number, not {text!r}", code=2
        ) from None


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse, before anything starts or is sent, a text argument that is not clean text
    and a --replace whose query number is not a number."""
    texts: list[tuple[str, str | None]] = [
        ("research request: question", getattr(args, "question", None)),
        ("--id", getattr(args, "id", None)),
        ("workflow id", getattr(args, "workflow_id", None)),
        ("--reject reason", getattr(args, "reject", None)),
        ("--reason", getattr(args, "reason", None)),
        ("--fairness-key", getattr(args, "fairness_key", None)),
    ]
    texts += [(f"answer {n}", a) for n, a in enumerate(getattr(args, "answers", None) or [], 1)]
    texts += [("--add query", query) for query in getattr(args, "add", None) or []]
    texts += [("--remove query", q) for q in getattr(args, "remove_query", None) or []]
    texts += [("--revise notes", getattr(args, "revise", None))]
    replace = getattr(args, "replace", None) or []
    texts += [(f"--replace query for {index}", query) for index, query in replace]
    for what, value in texts:
        if value is not None:
            checked_text(what, value)
    if replace:
        args.replace = [(plan_index(index), query) for index, query in replace]


def validated_request(args: argparse.Namespace) -> ResearchRequest:
    fields: dict[str, Any] = {"question": args.question, "max_searches": args.max_searches}
    if args.results_per_search is not None:
        fields["results_per_search"] = args.results_per_search
    # A person at the terminal can answer clarifying questions; a script cannot. The demo
    # runs straight through unless asked.
    clarify = args.clarify
    if clarify is None:
        clarify = interactive(args) and args.command == "run"
    fields["clarify"] = clarify
    fields["approve_plan"] = args.approve_plan
    fields["approve_report"] = args.approve_report
    for name in ("max_rounds", "max_review_rounds", "priority", "fairness_key"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    budget = {
        "max_total_tokens": args.max_tokens,
        "max_cost_usd": args.max_cost,
        "max_searches_total": args.max_searches_total,
        "max_wall_seconds": args.max_seconds,
    }
    fields["budget"] = {k: v for k, v in budget.items() if v is not None}
    try:
        return ResearchRequest(**fields)
    except ValidationError as err:
        raise CliError(
            f"invalid research request: {describe_validation_error(err)}", code=2
        ) from None


def cli_payloads() -> Payloads:
    """This process's payload store and keys, from its environment; bad settings are one
    line and exit 2."""
    from research_shared.payloads import open_payloads
    from research_shared.settings import describe_settings_error

    try:
        return open_payloads(PayloadSettings())
    except ValidationError as err:
        raise CliError(describe_settings_error(err) or str(err), code=2) from None


async def connect_client(settings: TemporalSettings | None = None) -> ResearchClient:
    payloads = cli_payloads()
    try:
        return await ResearchClient.connect(settings, data_converter=payloads.converter)
    except ResearchClientError as err:
        raise CliError(err.message) from None


def interactive(args: argparse.Namespace) -> bool:
    return sys.stdin.isatty() and not args.json and not args.detach


def progress_line(status: ResearchStatus) -> str:
    if status.paused:
        return f"paused in {status.phase.value}"
    if status.phase is Phase.AWAITING_ANSWERS:
        return f"waiting for answers to {len(status.questions_pending)} clarifying questions"
    if status.phase is Phase.AWAITING_APPROVAL:
        return f"waiting for the plan of {len(status.queries)} searches to be reviewed"
    if status.phase is Phase.SEARCHING:
        done = status.searches_succeeded + status.searches_failed
        line = (
            f"searching: {done}/{status.searches_planned} done, {status.searches_running} running"
        )
        if status.max_rounds > 1:
            line = f"round {status.round} of at most {status.max_rounds}, {line}"
        return line + (f", {status.searches_failed} failed" if status.searches_failed else "")
    if status.phase is Phase.REFLECTING:
        return f"reflecting on round {status.round}: {status.sources_retrieved} sources so far"
    if status.phase is Phase.REVIEWING:
        return f"reviewing draft {len(status.review) + 1}"
    if status.phase is Phase.REVISING:
        return "revising the draft by the review's notes"
    if status.phase is Phase.AWAITING_REPORT_REVIEW:
        return "waiting for the report to be signed off"
    if status.phase is Phase.SYNTHESIZING:
        return f"synthesizing a report from {status.sources_retrieved} sources"
    return status.phase.value


async def follow(
    research: ResearchClient, run_id: str, quiet: bool, ask: bool = False
) -> ResearchReport:
    """Show progress while the run goes on, then return its report. With `ask`, a person at
    the terminal answers clarifying questions and reviews the plan when the run waits."""
    result = asyncio.ensure_future(research.wait(run_id))
    last = ""
    asked: set[str] = set()
    try:
        while not result.done():
            if not quiet:
                try:
                    status: ResearchStatus | None = await research.status(run_id)
                except StatusUnavailable:
                    status = None  # no orchestrator worker has picked the run up yet
                line = progress_line(status) if status else "waiting for an orchestrator worker"
                if line != last:
                    print(f"  {line}", file=sys.stderr, flush=True)
                    last = line
                if ask and status is not None and status.phase.value not in asked:
                    if status.phase is Phase.AWAITING_ANSWERS and status.questions_pending:
                        asked.add(status.phase.value)
                        await ask_clarifications(research, run_id, status)
                    elif status.phase is Phase.AWAITING_APPROVAL:
                        asked.add(status.phase.value)
                        await ask_plan_review(research, run_id, status)
                    elif status.phase is Phase.AWAITING_REPORT_REVIEW:
                        # Asked again for each new draft: a revision comes back for review.
                        key = f"{status.phase.value}-{len(status.review)}"
                        if key not in asked:
                            asked.add(key)
                            await ask_report_review(research, run_id, status)
            await asyncio.wait([result], timeout=0.5)
        return result.result()
    except ResearchClientError as err:
        raise CliError(err.message) from None
    finally:
        result.cancel()


async def read_line(text: str) -> str:
    """`input(text)` in a daemon thread of its own.

    A thread of asyncio's default executor would hold the process at exit until a line is
    typed, so a Ctrl-C at a prompt would cancel the command and then wait; this thread is
    left behind with the prompt.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def settle(line: str | None, error: BaseException | None) -> None:
        if answer.done():  # the prompt was cancelled
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(line or "")

    def read() -> None:
        line, error = None, None
        try:
            line = input(text)
        except Exception as err:  # EOFError, UnicodeDecodeError: the caller's to judge
            error = err
        # The loop is closed when the command ended while this thread waited.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, line, error)

    threading.Thread(target=read, name="prompt", daemon=True).start()
    return await answer


async def prompt(text: str, what: str) -> str:
    """A line typed at the terminal ("" at end of input), refused if it is not clean text."""
    try:
        line = await read_line(text)
    except EOFError:
        return ""
    except UnicodeDecodeError as err:
        byte = err.object[err.start]
        raise CliError(f"invalid {what}: is not valid UTF-8 text (byte 0x{byte:02x})", 2) from None
    return checked_text(what, line.strip())


async def ask_clarifications(research: ResearchClient, run_id: str, status: ResearchStatus) -> None:
    print("\nA few questions first (Enter: no preference):", file=sys.stderr)
    answers = []
    for index in status.questions_pending:
        question = status.clarifications[index].question
        answer = await prompt(f"  {question}\n  > ", f"answer to question {index}")
        answers.append({"index": index, "answer": answer or "no preference"})
    await steer(research.answer(run_id, {"answers": answers}), run_id)


async def ask_plan_review(research: ResearchClient, run_id: str, status: ResearchStatus) -> None:
    print("\nThe plan:", file=sys.stderr)
    for n, q in enumerate(status.queries):
        print(f"  {n}. {q.query}  ({q.reason})", file=sys.stderr)
    choice = await prompt("Approve [a], reject [r], or leave it for later [Enter]? ", "choice")
    if choice.lower().startswith("a"):
        await steer(research.review_plan(run_id, {"decision": "approve"}), run_id)
    elif choice.lower().startswith("r"):
        reason = await prompt("Why? ", "reason")
        await steer(research.review_plan(run_id, {"decision": "reject", "reason": reason}), run_id)


async def ask_report_review(research: ResearchClient, run_id: str, status: ResearchStatus) -> None:
    print("\nThe draft report:\n", file=sys.stderr)
    print(status.draft_report, file=sys.stderr)
    choice = await prompt(
        "Approve [a], send it back with notes [r], or leave it for later [Enter]? ", "choice"
    )
    if choice.lower().startswith("a"):
        await steer(research.review_report(run_id, {"decision": "approve"}), run_id)
    elif choice.lower().startswith("r"):
        notes = await prompt("What should change? ", "notes")
        if notes:
            review = {"decision": "revise", "notes": notes}
            await steer(research.review_report(run_id, review), run_id)


async def steer(update: Awaitable[T], run_id: str) -> T:
    """Await an update; a rejection or a missing run is one line for the user."""
    try:
        return await update
    except UpdateRejected as err:
        raise CliError(f"{run_id} refused: {err.message}", code=2) from None
    except ResearchClientError as err:
        raise CliError(f"cannot update {run_id}: {err.message}") from None


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
    if report.partial:
        print(f"\n{report.outcome.value}: {report.outcome_reason}")
    print(f"\n{report.summary}\n")
    print(
        f"searches: {s.searches_succeeded} ok, {s.searches_failed} failed; "
        f"sources: {s.sources_retrieved}; model calls: {s.llm_calls}; "
        f"tokens: {s.total_tokens}; wall time: {elapsed:.1f}s"
    )
    if report.rounds:
        reviews = sum(r.by == "reviewer" for r in report.review)
        cost = f"${s.cost_usd:.4f}" + ("" if s.cost_complete else " (some models unpriced)")
        print(
            f"rounds: {len(report.rounds)}; reviews: {reviews}; citations: {s.citations} "
            f"({s.unsupported_sentences} unsupported); cost: {cost}"
        )
    for failure in report.failed_searches:
        print(f"failed search '{failure.query}': {failure.error_type}: {failure.message}")
    for warning in report.warnings:
        print(f"left out: {warning}")
    print(f"report written to {path}")


async def research(
    client: ResearchClient, args: argparse.Namespace, request: ResearchRequest
) -> int:
    workflow_id = args.id or new_run_id()
    started = time.monotonic()
    try:
        run = await client.start(request, id=workflow_id)
    except ResearchClientError as err:
        raise CliError(f"cannot start the run: {err.message}") from None
    if not run.created:
        print(f"a run with id {workflow_id} exists; following it", file=sys.stderr)
    if not args.json:
        print(f"started {workflow_id}: {request.question}", file=sys.stderr)
    if args.detach:
        print(workflow_id)
        return 0
    report = await follow(client, workflow_id, quiet=args.json, ask=interactive(args))
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
    try:
        info = await client.get(args.workflow_id)
        if info.status is None:
            raise StatusUnavailable("no orchestrator worker answered the status query")
    except ResearchClientError as err:
        raise CliError(f"cannot read the status of {args.workflow_id}: {err.message}") from None
    status = info.status
    data = status.model_dump(mode="json")
    data["run_status"] = info.execution_status.value.upper()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{args.workflow_id}: {data['run_status'].lower()}, {progress_line(status)}")
    for index in status.questions_pending:
        print(f"  question {index}: {status.clarifications[index].question}")
    if status.awaiting_approval:
        for n, q in enumerate(status.queries):
            print(f"  query {n}: {q.query}  ({q.reason})")
    for r in status.rounds:
        gaps = f"; gaps: {'; '.join(r.gaps)}" if r.gaps else ""
        ended = f"; {r.done_reason}" if r.done_reason else ""
        print(
            f"  round {r.round}: {len(r.queries)} queries, {r.searches_succeeded} ok, "
            f"{r.sources_new} new sources{gaps}{ended}"
        )
    for line in status.budget.lines:
        print(f"  budget {line.name}: {line.used:g} used of {line.limit:g}, {line.left:g} left")
    if not status.budget.cost_complete:
        print(f"  cost not counted for: {', '.join(status.budget.unpriced_models)}")
    if status.awaiting_report_review:
        print("  the draft waits for its sign-off: deep-research review-report ID --approve")
    return 0


async def cmd_result(args: argparse.Namespace) -> int:
    client = await connect_client()
    try:
        report = await client.wait(args.workflow_id)
    except ResearchClientError as err:
        message = err.message
        if not isinstance(err, RunFailed):
            message = f"cannot read the result of {args.workflow_id}: {message}"
        raise CliError(message) from None
    path = write_report(report, args.workflow_id, args.out)
    print_outcome(report, args.workflow_id, path, args.json, report.stats.wall_time_seconds)
    return 0


async def cmd_answer(args: argparse.Namespace) -> int:
    client = await connect_client()
    if args.index is not None:
        if len(args.answers) != 1:
            raise CliError("with --index, give exactly one answer", code=2)
        answers = [{"index": args.index, "answer": args.answers[0]}]
    else:
        status = await query_status(client, args.workflow_id)
        pending = status.questions_pending
        if len(args.answers) > len(pending):
            raise CliError(
                f"{len(args.answers)} answers for {len(pending)} pending questions", code=2
            )
        answers = [{"index": i, "answer": a} for i, a in zip(pending, args.answers, strict=False)]
    state: ClarificationState = await steer(
        client.answer(args.workflow_id, {"answers": answers}), args.workflow_id
    )
    left = len(state.questions_pending)
    print(f"answered; {left} question{'s' if left != 1 else ''} still pending")
    return 0


async def cmd_approve(args: argparse.Namespace) -> int:
    client = await connect_client()
    review: dict[str, Any]
    if args.reject is not None:
        review = {"decision": "reject", "reason": args.reject}
    elif args.add or args.remove or args.replace:
        queries = [q.model_dump() for q in (await query_status(client, args.workflow_id)).queries]
        for position, text in args.replace or []:
            _check_in_plan(position, queries)
            queries[position] = {"query": text, "reason": "rewritten by a person"}
        for position in sorted(set(args.remove or []), reverse=True):
            _check_in_plan(position, queries)
            del queries[position]
        queries += _added_by_a_person(args.add)
        review = {"decision": "edit", "queries": queries}
    else:
        review = {"decision": "approve"}
    result: PlanReviewResult = await steer(
        client.review_plan(args.workflow_id, review), args.workflow_id
    )
    if result.decision.value == "reject":
        print("plan rejected; the run ends")
    else:
        verb = {"approve": "approved", "edit": "edited"}[result.decision.value]
        _print_queries(
            f"plan {verb}; {len(result.queries)} searches will run:",
            [q.query for q in result.queries],
        )
    return 0


def _check_in_plan(position: int, queries: list[dict[str, Any]]) -> None:
    if not 0 <= position < len(queries):
        raise CliError(f"there is no query {position} in the plan", code=2)


def _added_by_a_person(texts: list[str] | None) -> list[dict[str, str]]:
    """Queries typed at the command line, as a plan review or a search edit takes them."""
    return [{"query": text, "reason": "added by a person"} for text in texts or []]


def _print_queries(heading: str, queries: list[str]) -> None:
    print(heading)
    for query in queries:
        print(f"  - {query}")


async def cmd_searches(args: argparse.Namespace) -> int:
    client = await connect_client()
    edit = {
        "add": _added_by_a_person(args.add),
        "remove": args.remove_query or [],
    }
    if not edit["add"] and not edit["remove"]:
        raise CliError("give --add QUERY or --remove QUERY (or several)", code=2)
    result = await steer(client.edit_searches(args.workflow_id, edit), args.workflow_id)
    _print_queries(
        f"round {result.round} now searches {len(result.queries)} queries:", result.queries
    )
    return 0


async def cmd_review_report(args: argparse.Namespace) -> int:
    client = await connect_client()
    if args.revise is not None:
        review = {"decision": "revise", "notes": args.revise}
    else:
        review = {"decision": "approve"}
    result = await steer(client.review_report(args.workflow_id, review), args.workflow_id)
    if result.decision.value == "approve":
        print("report approved; the run delivers it")
    else:
        print("report sent back to be revised; it comes back for review")
    return 0


async def cmd_signal(args: argparse.Namespace) -> int:
    client = await connect_client()
    try:
        if args.command == "pause":
            await client.pause(args.workflow_id)
        elif args.command == "resume":
            await client.resume(args.workflow_id)
        elif args.command == "finish":
            await client.finish_now(args.workflow_id, args.reason)
        else:
            await client.cancel(args.workflow_id, args.reason)
    except ResearchClientError as err:
        raise CliError(f"cannot signal {args.workflow_id}: {err.message}") from None
    print(f"{args.command} sent to {args.workflow_id}")
    return 0


async def query_status(client: ResearchClient, run_id: str) -> ResearchStatus:
    try:
        return await client.status(run_id)
    except ResearchClientError as err:
        raise CliError(f"cannot read the status of {run_id}: {err.message}") from None


# The optional dependencies each process may import, by the extra (pyproject.toml) that has
# them, as their modules are named: Tavily's client and the local corpus's markdown and html
# readers for the search pool, the Agents SDK for the LLM pool, the web stack for the API.
_EXTRA_MODULES = {
    "search": {"httpx", "tavily", "markdown_it", "selectolax"},
    "llm": {"agents", "openai"},
    "api": {"fastapi", "starlette", "uvicorn", "sse_starlette", "markdown_it", "weasyprint"},
}


def _extra_of(module: str | None, process: str) -> str | None:
    """The extra that provides `module`, the one of `process` first."""
    top = (module or "").partition(".")[0]
    if top in _EXTRA_MODULES.get(process, set()):
        return process
    return next((extra for extra, found in _EXTRA_MODULES.items() if top in found), None)


@contextlib.contextmanager
def _settings_and_start_errors() -> Iterator[None]:
    """A process (a pool, the API) that cannot start for its settings (exit 2) or its
    environment (the error's code) says so in one line."""
    from research_shared.serving import WorkerError
    from research_shared.settings import describe_settings_error

    try:
        yield
    except ValidationError as err:
        message = describe_settings_error(err)
        if message is None:
            raise
        raise CliError(message, code=2) from None
    except WorkerError as err:
        raise CliError(str(err), code=err.code) from None


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one pool until SIGTERM; a pool that cannot start is one line and exit 1 or 2."""
    with _settings_and_start_errors():
        try:
            # Imported here, not at the top: each pool's image carries only its own extras.
            if args.pool == "orchestrator":
                from research_orchestrator.worker import main
            elif args.pool == "search":
                from research_search.worker import main
            else:
                from research_llm.worker import main
            main()
        except ModuleNotFoundError as err:
            extra = _extra_of(err.name, args.pool)
            if extra is None:
                raise  # not an optional dependency: a broken install or a bug, worth a traceback
            raise CliError(
                f"the {args.pool} worker needs the '{extra}' extra: "
                f"pip install 'deep-research[{extra}]'"
            ) from None
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """Run the HTTP API until SIGTERM (what its container runs)."""
    with _settings_and_start_errors():
        try:
            from research_api.server import main  # the API's image carries the 'api' extra

            main()
        except ModuleNotFoundError as err:
            if _extra_of(err.name, "api") is None:
                raise
            raise CliError(
                "the API needs the 'api' extra: pip install 'deep-research[api]'"
            ) from None
    return 0


def api_port(requested: int | None) -> int:
    """The API port of `dev`: --api-port, else RESEARCH_API_PORT (8234)."""
    if requested is not None:
        if not 0 <= requested <= 65535:
            raise CliError(f"invalid --api-port {requested}: a port is 0 to 65535", code=2)
        return requested
    from research_shared.settings import ApiSettings, describe_settings_error

    try:
        return ApiSettings(api_host="127.0.0.1").api_port
    except ValidationError as err:
        raise CliError(describe_settings_error(err) or str(err), code=2) from None


def announce_restart(pool: str, code: int, log: Path) -> None:
    print(f"worker {pool} exited with code {code}; restarted it (log: {log})", file=sys.stderr)


async def cmd_dev(args: argparse.Namespace) -> int:
    from research_cli.embedded import EmbeddedStack

    stack = EmbeddedStack(
        data_dir=args.data_dir,
        port=args.port,
        ui_port=args.ui_port,
        api_port=api_port(args.api_port),
    )
    try:
        await stack.start()
        print(f"Temporal dev server on {stack.address} (SQLite: {stack.data_dir / 'temporal.db'})")
        if args.ui_port:
            print(f"Temporal UI on http://127.0.0.1:{args.ui_port}")
            if stack.codec_endpoint:
                print("the UI decrypts payloads through the codec server (log: codec.log)")
        if stack.api_address:
            print(f"research page and HTTP API on {stack.api_address} (docs: /docs)")
        pools = [name for name in stack.workers if name in POOLS]
        print(f"workers: {', '.join(pools)}; logs in {stack.log_dir}")
        default_store = PayloadSettings().store_url()
        store = (
            ""
            if stack.payload_store == default_store
            else (f"RESEARCH_PAYLOAD_STORE={stack.payload_store} ")
        )
        print(f"try: TEMPORAL_ADDRESS={stack.address} {store}deep-research run 'your question'")
        print("Ctrl-C stops everything.", flush=True)
        await stack.watch(announce_restart)
    finally:
        print("stopping the embedded stack", file=sys.stderr, flush=True)
        stack.stop()


async def cmd_gc(args: argparse.Namespace) -> int:
    from research_cli.store_commands import StoreCommandError, collect_garbage, print_gc

    payloads = cli_payloads()
    research = await connect_client()
    try:
        report = await collect_garbage(
            payloads,
            research,
            grace_seconds=args.grace_seconds,
            search_cache_seconds=args.search_cache_seconds,
            dry_run=args.dry_run,
        )
    except StoreCommandError as err:
        raise CliError(str(err), code=err.code) from None
    except ResearchClientError as err:
        raise CliError(f"cannot read the workflows Temporal knows: {err.message}") from None
    print_gc(report, args.dry_run, args.json)
    return 0


async def cmd_audit(args: argparse.Namespace) -> int:
    from research_cli.store_commands import StoreCommandError, check_audit, print_audit

    payloads = cli_payloads()
    research = await connect_client()
    try:
        check = await check_audit(payloads, research, args.workflow_id)
    except StoreCommandError as err:
        raise CliError(str(err), code=err.code) from None
    except ResearchClientError as err:
        raise CliError(f"cannot read the run's history: {err.message}") from None
    print_audit(check, args.json)
    if check.history_sha256 is not None and not check.verified:
        raise CliError(f"the audit of {args.workflow_id} does not verify against the store")
    return 0


async def cmd_codec_server(args: argparse.Namespace) -> int:
    from research_cli.store_commands import StoreCommandError, run_codec_server
    from research_shared.settings import CodecServerSettings, describe_settings_error

    payloads = cli_payloads()
    try:
        settings = CodecServerSettings()
    except ValidationError as err:
        raise CliError(describe_settings_error(err) or str(err), code=2) from None
    if settings.codec_auth_token is None:
        raise CliError(
            "the codec server needs RESEARCH_CODEC_AUTH_TOKEN (16 characters or more)", 2
        )
    if payloads.keyring is None:
        print("warning: no encryption key is set; payloads are shown as they are", file=sys.stderr)
    try:
        await run_codec_server(
            payloads,
            settings.codec_auth_token.get_secret_value(),
            settings.origins(),
            args.host,
            args.port,
        )
    except StoreCommandError as err:
        raise CliError(str(err), code=err.code) from None
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    from research_cli.embedded import EmbeddedStack, free_port, port_is_free

    request = validated_request(args)
    port = args.port if port_is_free(args.port) else free_port()
    stack = EmbeddedStack(data_dir=args.data_dir, port=port)
    # On stderr: with --json, stdout holds the result alone.
    print(
        f"starting the embedded stack in {args.data_dir} (logs: {stack.log_dir})",
        file=sys.stderr,
        flush=True,
    )
    try:
        client = ResearchClient(await stack.start())
        return await stack.run(research(client, args, request), announce_restart)
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
    p.add_argument(
        "--clarify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask clarifying questions first (default: on when run from a terminal)",
    )
    p.add_argument("--approve-plan", action="store_true", help="wait for the plan to be reviewed")
    p.add_argument("--max-rounds", type=int, help="rounds of searches, 1 to 6 (default 2)")
    p.add_argument("--max-review-rounds", type=int, help="reviews of the draft, 0 to 3 (default 1)")
    p.add_argument(
        "--approve-report", action="store_true", help="wait for the report to be signed off"
    )
    p.add_argument("--priority", type=int, help="1 (first) to 5 (last); default 3")
    p.add_argument(
        "--fairness-key",
        metavar="KEY",
        help="the tenant this run shares the worker pools as (default: none)",
    )
    p.add_argument("--max-tokens", type=int, help="budget: model tokens in all")
    p.add_argument("--max-cost", type=float, help="budget: model cost in US dollars")
    p.add_argument("--max-searches-total", type=int, help="budget: searches over all rounds")
    p.add_argument("--max-seconds", type=int, help="budget: time from start to the report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deep-research", description="Durable deep research on Temporal."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="start the embedded dev server and the three workers")
    dev.add_argument("--data-dir", type=Path, default=default_data_dir())
    dev.add_argument("--port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233, help="0 turns the web UI off")
    dev.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="the page and HTTP API (default: RESEARCH_API_PORT or 8234); 0 turns them off",
    )

    demo = sub.add_parser("demo", help="start the embedded stack, research a question, stop")
    _add_request_args(demo, question_optional=True)
    demo.add_argument("--data-dir", type=Path, default=default_data_dir())
    demo.add_argument("--port", type=int, default=7233)

    worker = sub.add_parser("worker", help="run one worker pool (what a container runs)")
    worker.add_argument("pool", choices=["orchestrator", "search", "llm"])

    sub.add_parser("api", help="run the HTTP API and its page (what a container runs)")

    run = sub.add_parser("run", help="research a question and write the report")
    _add_request_args(run)

    status = sub.add_parser("status", help="show the phase and progress of a run")
    status.add_argument("workflow_id")
    status.add_argument("--json", action="store_true")

    answer = sub.add_parser("answer", help="answer a run's clarifying questions")
    answer.add_argument("workflow_id")
    answer.add_argument("answers", nargs="+", help="answers, in the order of pending questions")
    answer.add_argument("--index", type=int, help="answer this question only")

    approve = sub.add_parser("approve", help="approve, edit or reject a run's plan")
    approve.add_argument("workflow_id")
    approve.add_argument("--add", action="append", metavar="QUERY", help="add a query")
    approve.add_argument("--remove", action="append", type=int, metavar="N", help="drop query N")
    approve.add_argument(
        "--replace", action="append", nargs=2, metavar=("N", "QUERY"), help="rewrite query N"
    )
    approve.add_argument("--reject", metavar="REASON", help="reject the plan; the run ends")

    searches = sub.add_parser("searches", help="add or drop queries of the round searching now")
    searches.add_argument("workflow_id")
    searches.add_argument("--add", action="append", metavar="QUERY", help="search this too")
    searches.add_argument(
        "--remove", dest="remove_query", action="append", metavar="QUERY", help="drop this query"
    )

    report_review = sub.add_parser("review-report", help="approve a run's report or send it back")
    report_review.add_argument("workflow_id")
    decision = report_review.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", action="store_true", help="deliver the report as it is")
    decision.add_argument("--revise", metavar="NOTES", help="revise it by these notes")

    for name, text in (
        ("pause", "stop scheduling new activities (running ones finish)"),
        ("resume", "continue a paused run"),
        ("finish", "stop searching and write the report now from what was gathered"),
        ("cancel", "stop a run; it returns a partial report"),
    ):
        steer = sub.add_parser(name, help=text)
        steer.add_argument("workflow_id")
        if name in ("cancel", "finish"):
            steer.add_argument("--reason", default="")

    gc = sub.add_parser("gc", help="delete what no workflow references from the local store")
    gc.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    gc.add_argument(
        "--grace-seconds",
        type=float,
        default=3600.0,
        help="never delete an object younger than this (default 3600)",
    )
    gc.add_argument(
        "--search-cache-seconds",
        type=float,
        default=7 * 24 * 3600.0,
        help="delete cached searches older than this (default 7 days)",
    )
    gc.add_argument("--json", action="store_true")

    audit = sub.add_parser("audit", help="print a run's audit manifest and verify it")
    audit.add_argument("workflow_id")
    audit.add_argument("--json", action="store_true")

    codec = sub.add_parser("codec-server", help="decrypt payloads for the Temporal Web UI")
    codec.add_argument("--host", default="127.0.0.1")
    codec.add_argument("--port", type=int, default=8081)

    result = sub.add_parser("result", help="wait for a run's report and write it")
    result.add_argument("workflow_id")
    result.add_argument("--out", type=Path)
    result.add_argument("--json", action="store_true")
    return parser


async def until_stopped(
    command: Callable[[argparse.Namespace], Awaitable[int]], args: Any, stop: StopSignals
) -> int:
    stop.install()
    return await command(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = StopSignals()
    try:
        if args.command == "worker":
            return cmd_worker(args)
        if args.command == "api":
            return cmd_api(args)
        check_arguments(args)
        command = {
            "dev": cmd_dev,
            "demo": cmd_demo,
            "run": cmd_run,
            "status": cmd_status,
            "result": cmd_result,
            "answer": cmd_answer,
            "approve": cmd_approve,
            "pause": cmd_signal,
            "resume": cmd_signal,
            "cancel": cmd_signal,
            "finish": cmd_signal,
            "searches": cmd_searches,
            "review-report": cmd_review_report,
            "gc": cmd_gc,
            "audit": cmd_audit,
            "codec-server": cmd_codec_server,
        }[args.command]
        return asyncio.run(until_stopped(command, args, stop))
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    except EmbeddedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (EncryptionError, StoreError) as err:
        # Reading a run's payloads needs the key that wrote them and the store holding them.
        print(f"error: cannot read the run's payloads: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the command's task ran, or a second signal
        return stop.exit_code if stop.received else 130
    except asyncio.CancelledError:
        # SIGINT or SIGTERM cancelled the command, whose `finally` blocks have stopped what it
        # started.
        return stop.exit_code


def exit_without_finalizing(code: int) -> NoReturn:
    """Flush, and leave without interpreter finalization.

    The Temporal SDK's Rust core keeps threads that can touch the interpreter while it
    finalizes, which aborts a short-lived client process now and then (temporalio/sdk-python
    issue 300). Everything this process writes is flushed and closed by now, so skipping
    finalization loses nothing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def entrypoint() -> None:
    """The console script: run, then leave without interpreter finalization."""
    exit_without_finalizing(main())
